//! The OpenAI-compatible HTTP/1.1 side of `mathlake serve`: `GET /v1/models`,
//! `POST /v1/chat/completions`, `POST /v1/completions` and `GET /health`, JSON in and out,
//! connections kept alive. Requests are parsed by `httparse` (hyper's parser, already
//! built for the S3 client), bodies need a Content-Length, replies are not streamed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::chat::{ChatTemplate, Message};
use super::engine::{Completion, Engine, Sampling};
use crate::error::Result;
use crate::tokenize::encoder::Encoder;

/// Request heads longer than this are refused (431).
const MAX_HEAD: usize = 64 * 1024;
/// Request bodies longer than this are refused (413).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Everything a request needs.
pub struct App {
    pub engine: Engine,
    pub encoder: Arc<Encoder>,
    pub template: ChatTemplate,
    /// The model id that `/v1/models` lists and requests must name (or leave out).
    pub name: String,
    /// Prepended to every prompt when the model asks for it.
    pub bos: Option<u32>,
    pub created: u64,
    pub requests: AtomicU64,
}

/// Answers connections on `listener` until the process ends.
pub async fn serve(listener: TcpListener, app: Arc<App>) -> Result<()> {
    loop {
        // A failed accept (out of file descriptors, a connection reset before it was taken)
        // concerns that connection, not the server.
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("accepting a connection failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let app = app.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &app).await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}

/// One connection: requests one after another until the client closes it.
async fn connection(mut stream: TcpStream, app: &App) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(8192);
    loop {
        let head = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut request = httparse::Request::new(&mut headers);
            match request.parse(&buf) {
                Ok(httparse::Status::Complete(length)) => break Head::new(&request, length),
                Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                    return reply(&mut stream, 431, &error_body("the request head is too long"), true).await;
                }
                Ok(httparse::Status::Partial) => {
                    if read_more(&mut stream, &mut buf).await? == 0 {
                        return Ok(());
                    }
                }
                Err(e) => return reply(&mut stream, 400, &error_body(&format!("bad request: {e}")), true).await,
            }
        };
        if head.chunked {
            return reply(&mut stream, 411, &error_body("send the body with a Content-Length"), true).await;
        }
        if head.content_length > MAX_BODY {
            return reply(&mut stream, 413, &error_body("the request body is over 16 MB"), true).await;
        }
        if head.expect_continue && buf.len() < head.length + head.content_length {
            stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        while buf.len() < head.length + head.content_length {
            if read_more(&mut stream, &mut buf).await? == 0 {
                return Ok(());
            }
        }
        let body: Vec<u8> = buf.drain(..head.length + head.content_length).skip(head.length).collect();
        // While the model works, a client that hangs up (a timeout, a killed run) cancels
        // its request: dropping `answer` drops the reply channel, and the engine lets go.
        let answer = route(app, &head.method, &head.path, &body);
        tokio::pin!(answer);
        let (status, answer) = loop {
            tokio::select! {
                done = &mut answer => break done,
                read = read_more(&mut stream, &mut buf) => if read? == 0 { return Ok(()) },
            }
        };
        reply(&mut stream, status, &answer, head.close).await?;
        if head.close {
            return Ok(());
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// What the server needs of a request head.
struct Head {
    method: String,
    path: String,
    /// Bytes of the head, blank line included.
    length: usize,
    content_length: usize,
    chunked: bool,
    expect_continue: bool,
    close: bool,
}

impl Head {
    fn new(request: &httparse::Request, length: usize) -> Head {
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
        };
        let path = request.path.unwrap_or("/");
        Head {
            method: request.method.unwrap_or("").to_string(),
            path: path.split('?').next().unwrap_or(path).to_string(),
            length,
            content_length: header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0),
            chunked: header("transfer-encoding").is_some_and(|v| v.contains("chunked")),
            expect_continue: header("expect").is_some_and(|v| v == "100-continue"),
            // HTTP/1.0 closes unless asked not to; 1.1 keeps the connection unless asked to close.
            close: match header("connection") {
                Some(v) if v == "close" => true,
                Some(v) if v == "keep-alive" => false,
                _ => request.version == Some(0),
            },
        }
    }
}

async fn reply(stream: &mut TcpStream, status: u16, body: &Value, close: bool) -> std::io::Result<()> {
    let body = body.to_string();
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    };
    let connection = if close { "close" } else { "keep-alive" };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.flush().await
}

/// The OpenAI API's error shape.
fn error_body(message: &str) -> Value {
    json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}})
}

async fn route(app: &App, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let path = path.trim_end_matches('/');
    match (method, path) {
        ("GET", "/v1/models") => (
            200,
            json!({"object": "list", "data": [
                {"id": app.name, "object": "model", "created": app.created, "owned_by": "mathlake"}
            ]}),
        ),
        ("GET", "/health") => {
            let mut health = app.engine.stats.to_json();
            health["status"] = json!("ok");
            (200, health)
        }
        ("POST", "/v1/chat/completions") => answer(app, body, Kind::Chat).await,
        ("POST", "/v1/completions") => answer(app, body, Kind::Text).await,
        (_, "/v1/models" | "/health" | "/v1/chat/completions" | "/v1/completions") => {
            (405, error_body(&format!("{method} is not allowed on {path}")))
        }
        _ => (404, error_body(&format!("no route {method} {path}"))),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Chat,
    Text,
}

/// The body of a chat or text completion request; settings it does not know are ignored,
/// as OpenAI-compatible servers do.
#[derive(Deserialize)]
struct CompletionRequest {
    model: Option<String>,
    messages: Option<Vec<Message>>,
    prompt: Option<String>,
    max_tokens: Option<usize>,
    max_completion_tokens: Option<usize>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    seed: Option<u64>,
    stop: Option<Stop>,
    n: Option<usize>,
    stream: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

async fn answer(app: &App, body: &[u8], kind: Kind) -> (u16, Value) {
    let request: CompletionRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return (400, error_body(&format!("the body is not a completion request: {e}"))),
    };
    match complete(app, request, kind).await {
        Ok(v) => (200, v),
        Err((status, message)) => (status, error_body(&message)),
    }
}

async fn complete(app: &App, request: CompletionRequest, kind: Kind) -> std::result::Result<Value, (u16, String)> {
    let bad = |message: String| (400, message);
    if let Some(model) = &request.model
        && *model != app.name
    {
        return Err((404, format!("the model `{model}` is not served here; this server serves `{}`", app.name)));
    }
    if request.n.unwrap_or(1) != 1 {
        return Err(bad("n must be 1".into()));
    }
    if request.stream == Some(true) {
        return Err(bad("streaming is not supported; send stream = false".into()));
    }
    let temperature = request.temperature.unwrap_or(1.0);
    let top_p = request.top_p.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(bad(format!("temperature must be between 0 and 2, not {temperature}")));
    }
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(bad(format!("top_p must be in (0, 1], not {top_p}")));
    }
    let prompt = match (kind, request.messages, request.prompt) {
        (Kind::Chat, Some(messages), _) if !messages.is_empty() => {
            app.template.render(&messages).map_err(|e| bad(e.to_string()))?
        }
        (Kind::Chat, _, _) => return Err(bad("messages must be a non-empty list".into())),
        (Kind::Text, _, Some(prompt)) => prompt,
        (Kind::Text, _, None) => return Err(bad("prompt is missing".into())),
    };
    let mut ids: Vec<u32> = app.bos.into_iter().collect();
    let mut encoded = app.encoder.encode(&prompt, 0).map_err(|e| (500, e.to_string()))?.ids;
    encoded.pop(); // the EOS that encode appends
    ids.extend(encoded);
    let room = app.engine.context.saturating_sub(ids.len());
    let max_tokens = request.max_completion_tokens.or(request.max_tokens).unwrap_or(room).min(room);
    let number = app.requests.fetch_add(1, Ordering::Relaxed);
    let sampling = Sampling {
        max_tokens: max_tokens.max(1),
        temperature,
        top_p,
        seed: request.seed.unwrap_or_else(|| now_nanos() ^ number),
        stop: match request.stop {
            None => vec![],
            Some(Stop::One(s)) => vec![s],
            Some(Stop::Many(v)) => v,
        }
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect(),
    };
    let done = app.engine.complete(ids, sampling).await.map_err(|e| match &e {
        crate::Error::User { .. } => (400, e.to_string()),
        _ => (500, e.to_string()),
    })?;
    Ok(completion_json(app, kind, number, &done))
}

fn completion_json(app: &App, kind: Kind, number: u64, done: &Completion) -> Value {
    let usage = json!({
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "total_tokens": done.prompt_tokens + done.completion_tokens,
    });
    let created = now_nanos() / 1_000_000_000;
    match kind {
        Kind::Chat => json!({
            "id": format!("chatcmpl-{number}"),
            "object": "chat.completion",
            "created": created,
            "model": app.name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": done.text},
                         "finish_reason": done.finish}],
            "usage": usage,
        }),
        Kind::Text => json!({
            "id": format!("cmpl-{number}"),
            "object": "text_completion",
            "created": created,
            "model": app.name,
            "choices": [{"index": 0, "text": done.text, "finish_reason": done.finish}],
            "usage": usage,
        }),
    }
}

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}
