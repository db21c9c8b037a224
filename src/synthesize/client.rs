//! The client of an OpenAI-compatible chat endpoint (`POST {base}/chat/completions`,
//! non-streaming), as synthesis calls it at scale: at most `concurrency` requests in
//! flight, a timeout per request, and retries with exponential backoff and jitter on what
//! another try can fix (429, 5xx, timeouts, dropped connections, a garbled body), waiting
//! as long as `Retry-After` asks. What no retry fixes ends the run when it concerns every
//! request (401, 403, 404: a wrong key, model or URL) and fails only the one request
//! otherwise (another 4xx, such as a prompt over the context length).
//!
//! The API key comes from an environment variable and is sent as a bearer token; it is
//! never printed, logged or stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::random::SplitMix;

/// Where to send requests and how hard to try.
#[derive(Debug, Clone)]
pub struct EndpointOptions {
    /// Up to and including `/v1`: `http://127.0.0.1:8000/v1`, `https://api.openai.com/v1`.
    pub base_url: String,
    pub model: String,
    /// The API key itself, read from the environment variable the settings name.
    pub api_key: Option<String>,
    pub concurrency: usize,
    pub timeout: Duration,
    /// Tries after the first.
    pub max_retries: u32,
    /// The first backoff; each retry doubles it, up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

/// How to sample a reply.
#[derive(Debug, Clone, Serialize)]
pub struct Sampling {
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

/// The request body: the model, the messages and the sampling settings. Its bytes are
/// what the response cache keys on, so a changed template or setting misses the cache.
#[derive(Debug, Clone, Serialize)]
pub struct ChatRequest<'a> {
    pub model: &'a str,
    pub messages: &'a [Message],
    #[serde(flatten)]
    pub sampling: &'a Sampling,
}

/// What came back for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub text: String,
    /// `stop`, `length` (cut at max_tokens), ... as the endpoint says.
    pub finish_reason: Option<String>,
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// The endpoint's response id, when it gives one.
    pub id: Option<String>,
    /// The response body as received.
    pub raw: String,
    /// Tries it took, the first included.
    pub attempts: u32,
}

/// Why a request has no reply.
#[derive(Debug)]
pub enum CallError {
    /// No request can succeed (wrong key, model or URL): the run stops with this.
    Fatal(Error),
    /// This request failed after its retries, or was refused for itself (a 400).
    Failed { reason: String, attempts: u32 },
}

/// Counts over every request of a client, for progress and the run's summary.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub failures: AtomicU64,
    pub tokens_in: AtomicU64,
    pub tokens_out: AtomicU64,
}

impl Counters {
    /// Requests, retries, failures, tokens in and tokens out, as they stand.
    pub fn snapshot(&self) -> [u64; 5] {
        [&self.requests, &self.retries, &self.failures, &self.tokens_in, &self.tokens_out]
            .map(|c| c.load(Ordering::Relaxed))
    }
}

pub struct Client {
    http: reqwest::Client,
    url: String,
    options: EndpointOptions,
    permits: Arc<Semaphore>,
    pub counters: Arc<Counters>,
}

/// What one try gave.
enum Try {
    Done(Reply),
    /// Worth another try, after at least this long (from `Retry-After`).
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    Refused(String),
    Fatal(Error),
}

impl Client {
    pub fn new(options: EndpointOptions) -> Result<Client> {
        if options.concurrency == 0 {
            return Err(Error::user("concurrency must be at least 1"));
        }
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .pool_max_idle_per_host(options.concurrency)
            .build()
            .map_err(|e| Error::user(format!("cannot set up the HTTP client: {e}")))?;
        let url = format!("{}/chat/completions", options.base_url.trim_end_matches('/'));
        Ok(Client {
            http,
            url,
            permits: Arc::new(Semaphore::new(options.concurrency)),
            options,
            counters: Arc::new(Counters::default()),
        })
    }

    /// The model every request names.
    pub fn model(&self) -> &str {
        &self.options.model
    }

    /// The request body for these messages, as sent.
    pub fn body(&self, messages: &[Message], sampling: &Sampling) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(&ChatRequest { model: &self.options.model, messages, sampling })?)
    }

    /// Sends `body` (from [`Client::body`]) until it is answered, refused, or out of tries.
    pub async fn send(&self, body: Vec<u8>) -> Result<Reply, CallError> {
        let mut jitter = SplitMix::new(nanos(), &[body.len() as u64]);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let outcome = {
                let _permit =
                    self.permits.acquire().await.map_err(|e| CallError::Fatal(Error::Internal(e.to_string())))?;
                self.counters.requests.fetch_add(1, Ordering::Relaxed);
                self.try_once(body.clone()).await
            };
            match outcome {
                Try::Done(mut reply) => {
                    reply.attempts = attempts;
                    self.counters.tokens_in.fetch_add(reply.tokens_in, Ordering::Relaxed);
                    self.counters.tokens_out.fetch_add(reply.tokens_out, Ordering::Relaxed);
                    return Ok(reply);
                }
                Try::Fatal(error) => return Err(CallError::Fatal(error)),
                Try::Refused(reason) => {
                    self.counters.failures.fetch_add(1, Ordering::Relaxed);
                    return Err(CallError::Failed { reason, attempts });
                }
                Try::Retry { reason, after } => {
                    if attempts > self.options.max_retries {
                        self.counters.failures.fetch_add(1, Ordering::Relaxed);
                        return Err(CallError::Failed {
                            reason: format!("{reason} (after {attempts} tries)"),
                            attempts,
                        });
                    }
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(self.delay(attempts, after, &mut jitter)).await;
                }
            }
        }
    }

    /// Exponential backoff with jitter (half fixed, half random), never shorter than what
    /// the server asked for.
    fn delay(&self, attempts: u32, asked: Option<Duration>, jitter: &mut SplitMix) -> Duration {
        let doubled = self.options.backoff.saturating_mul(1 << (attempts - 1).min(20));
        let capped = doubled.min(self.options.max_backoff);
        let random = (jitter.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let backoff = capped.mul_f64(0.5 + 0.5 * random);
        asked.map_or(backoff, |asked| asked.max(backoff))
    }

    async fn try_once(&self, body: Vec<u8>) -> Try {
        let mut request = self.http.post(&self.url).header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(key) = &self.options.api_key {
            request = request.bearer_auth(key);
        }
        let response = match request.body(body).send().await {
            Ok(response) => response,
            Err(e) if e.is_timeout() => return Try::Retry { reason: "timeout".into(), after: None },
            Err(e) => return Try::Retry { reason: format!("connection: {}", root_cause(&e)), after: None },
        };
        let status = response.status();
        let after = retry_after(response.headers());
        let text = match response.text().await {
            Ok(text) => text,
            Err(e) if e.is_timeout() => return Try::Retry { reason: "timeout".into(), after: None },
            Err(e) => return Try::Retry { reason: format!("connection: {}", root_cause(&e)), after: None },
        };
        match status.as_u16() {
            200..=299 => match parse_reply(&text) {
                Some(reply) => Try::Done(reply),
                None => Try::Retry { reason: "garbled_response".into(), after: None },
            },
            408 | 429 | 500..=599 => Try::Retry { reason: format!("http_{}", status.as_u16()), after },
            401 | 403 => Try::Fatal(
                Error::user(format!("{} refused the API key (HTTP {status}): {}", self.url, snippet(&text)))
                    .hint("set the key in the variable the settings name (api_key_env); it is never printed"),
            ),
            404 => Try::Fatal(
                Error::user(format!(
                    "{} answered 404 for model `{}`: {}",
                    self.url,
                    self.options.model,
                    snippet(&text)
                ))
                .hint("check the endpoint (up to /v1) and the model name; GET {endpoint}/models lists them"),
            ),
            code => Try::Refused(format!("http_{code}: {}", snippet(&text))),
        }
    }
}

/// The reply's text, finish reason, token counts and id; `None` when the body is not an
/// OpenAI chat completion with a message.
pub(super) fn parse_reply(body: &str) -> Option<Reply> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let choice = value.get("choices")?.get(0)?;
    let text = choice.get("message")?.get("content")?.as_str()?.to_string();
    let usage = value.get("usage");
    let count = |key: &str| usage.and_then(|u| u.get(key)).and_then(serde_json::Value::as_u64).unwrap_or(0);
    Some(Reply {
        text,
        finish_reason: choice.get("finish_reason").and_then(|f| f.as_str()).map(str::to_string),
        tokens_in: count("prompt_tokens"),
        tokens_out: count("completion_tokens"),
        id: value.get("id").and_then(|i| i.as_str()).map(str::to_string),
        raw: body.to_string(),
        attempts: 0,
    })
}

/// `Retry-After` in seconds (the HTTP-date form is not used by model endpoints), capped
/// at ten minutes.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds: f64 = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(600.0)))
}

/// The innermost cause of an HTTP error: reqwest's own message is only "error sending request".
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn snippet(text: &str) -> String {
    let cut: String = text.chars().take(200).collect();
    cut.replace('\n', " ")
}

fn nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// How the test endpoint answers one request.
    #[derive(Debug, Clone, Copy)]
    enum Answer {
        Ok,
        /// A completion after this many milliseconds.
        Slow(u64),
        /// 429 with `Retry-After` in seconds.
        TooMany(u32),
        ServerError,
        Garbled,
        /// Closes the connection without a response.
        Drop,
        /// Never answers.
        Hang,
        Unauthorized,
        NotFound,
        BadRequest,
    }

    const COMPLETION: &str = r#"{"id":"chatcmpl-7","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"The answer is 42."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#;

    /// A chat endpoint on a loopback port answering its n-th request by `schedule[n]`
    /// (then `Ok`): its base URL, the requests it got, and the most it held at once.
    async fn endpoint(schedule: Vec<Answer>) -> (String, Arc<AtomicU64>, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let (requests, most) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (seen, peak) = (requests.clone(), most.clone());
        let open = Arc::new(AtomicU64::new(0));
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let (seen, peak, open) = (seen.clone(), peak.clone(), open.clone());
                let schedule = schedule.clone();
                tokio::spawn(async move {
                    if !read_request(&mut socket).await {
                        return;
                    }
                    let n = seen.fetch_add(1, Ordering::SeqCst) as usize;
                    let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    let reply = schedule.get(n).copied().unwrap_or(Answer::Ok);
                    if let Answer::Slow(ms) = reply {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    // Before the reply: once it is written the client may send the next.
                    open.fetch_sub(1, Ordering::SeqCst);
                    answer(&mut socket, reply).await;
                });
            }
        });
        (url, requests, most)
    }

    /// Reads one request's head and body; false when the client went away first.
    async fn read_request(socket: &mut TcpStream) -> bool {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let Ok(n) = socket.read(&mut buf).await else { return false };
            if n == 0 {
                return false;
            }
            data.extend_from_slice(&buf[..n]);
            let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
            let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
            let length: usize =
                head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
            if data.len() >= end + 4 + length {
                let body: serde_json::Value = serde_json::from_slice(&data[end + 4..end + 4 + length]).unwrap();
                assert_eq!(body["model"], "tiny", "{body}");
                return true;
            }
        }
    }

    async fn answer(socket: &mut TcpStream, answer: Answer) {
        let (status, headers, body) = match answer {
            Answer::Ok | Answer::Slow(_) => ("200 OK", "", COMPLETION),
            Answer::TooMany(seconds) => {
                let header = format!("Retry-After: {seconds}\r\n");
                let text = format!(
                    "HTTP/1.1 429 Too Many Requests\r\n{header}Content-Length: 4\r\nConnection: close\r\n\r\nslow"
                );
                let _ = socket.write_all(text.as_bytes()).await;
                return;
            }
            Answer::ServerError => ("500 Internal Server Error", "", "{\"error\": \"overloaded\"}"),
            Answer::Garbled => ("200 OK", "", "{\"choices\": [{\"message\": "),
            Answer::Drop => return,
            Answer::Hang => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
            Answer::Unauthorized => ("401 Unauthorized", "", "{\"error\": \"invalid api key\"}"),
            Answer::NotFound => ("404 Not Found", "", "{\"error\": \"model not found\"}"),
            Answer::BadRequest => ("400 Bad Request", "", "{\"error\": \"prompt too long\"}"),
        };
        let text = format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = socket.write_all(text.as_bytes()).await;
    }

    fn client(url: &str, max_retries: u32, concurrency: usize) -> Client {
        Client::new(EndpointOptions {
            base_url: url.to_string(),
            model: "tiny".into(),
            api_key: Some("sk-not-for-printing".into()),
            concurrency,
            // Long enough that a loaded CI machine answers in time; the hang outlasts it.
            timeout: Duration::from_secs(2),
            max_retries,
            backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
        })
        .unwrap()
    }

    fn body(client: &Client) -> Vec<u8> {
        let messages = [Message { role: "user", content: "What is 6 x 7?".into() }];
        let sampling = Sampling { temperature: 0.0, top_p: 1.0, max_tokens: 16, seed: Some(1), stop: Vec::new() };
        client.body(&messages, &sampling).unwrap()
    }

    #[tokio::test]
    async fn every_transient_fault_is_retried_until_the_reply() {
        use Answer::*;
        let (url, requests, _) = endpoint(vec![TooMany(0), ServerError, Garbled, Drop, Hang]).await;
        let client = client(&url, 6, 4);
        let reply = client.send(body(&client)).await.unwrap();
        assert_eq!(reply.text, "The answer is 42.");
        assert_eq!((reply.tokens_in, reply.tokens_out), (12, 5));
        assert_eq!((reply.id.as_deref(), reply.finish_reason.as_deref()), (Some("chatcmpl-7"), Some("stop")));
        assert_eq!(reply.raw, COMPLETION);
        assert_eq!(reply.attempts, 6);
        assert_eq!(requests.load(Ordering::SeqCst), 6);
        let counters = &client.counters;
        assert_eq!(counters.requests.load(Ordering::SeqCst), 6);
        assert_eq!(counters.retries.load(Ordering::SeqCst), 5);
        assert_eq!(counters.failures.load(Ordering::SeqCst), 0);
        assert_eq!(counters.tokens_out.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn retry_after_is_waited_for() {
        let (url, requests, _) = endpoint(vec![Answer::TooMany(1)]).await;
        let client = client(&url, 2, 1);
        let started = Instant::now();
        let reply = client.send(body(&client)).await.unwrap();
        assert!(started.elapsed() >= Duration::from_secs(1), "retried after {:?}", started.elapsed());
        assert_eq!((reply.attempts, requests.load(Ordering::SeqCst)), (2, 2));
    }

    #[tokio::test]
    async fn out_of_tries_fails_the_request_with_its_last_reason() {
        let (url, requests, _) = endpoint(vec![Answer::ServerError; 3]).await;
        let client = client(&url, 2, 1);
        match client.send(body(&client)).await {
            Err(CallError::Failed { reason, attempts }) => {
                assert_eq!((reason.as_str(), attempts), ("http_500 (after 3 tries)", 3));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(requests.load(Ordering::SeqCst), 3);
        assert_eq!(client.counters.failures.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_refused_key_or_model_stops_at_once_and_a_bad_request_fails_alone() {
        for (answer, says) in
            [(Answer::Unauthorized, "refused the API key"), (Answer::NotFound, "answered 404 for model `tiny`")]
        {
            let (url, requests, _) = endpoint(vec![answer]).await;
            let client = client(&url, 5, 1);
            let Err(CallError::Fatal(error)) = client.send(body(&client)).await else { panic!("{answer:?} is fatal") };
            let message = format!("{error} {}", error.hint_text().unwrap_or_default());
            assert!(message.contains(says), "{message}");
            assert!(!message.contains("sk-not-for-printing"), "the key is never shown: {message}");
            assert_eq!(requests.load(Ordering::SeqCst), 1, "not retried");
        }
        let (url, requests, _) = endpoint(vec![Answer::BadRequest]).await;
        let client = client(&url, 5, 1);
        match client.send(body(&client)).await {
            Err(CallError::Failed { reason, attempts: 1 }) => assert!(reason.starts_with("http_400: "), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(requests.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_than_the_concurrency_is_in_flight() {
        let (url, requests, most) = endpoint(vec![Answer::Slow(40); 24]).await;
        let client = Arc::new(client(&url, 0, 4));
        let calls: Vec<_> = (0..24)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move { client.send(body(&client)).await.map(|r| r.attempts).ok() })
            })
            .collect();
        for call in calls {
            assert_eq!(call.await.unwrap(), Some(1));
        }
        assert_eq!(requests.load(Ordering::SeqCst), 24);
        assert_eq!(most.load(Ordering::SeqCst), 4, "four at a time, and all four used");
    }
}
