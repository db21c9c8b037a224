//! A stand-in for an OpenAI-compatible model endpoint, for the synthesis tests: HTTP/1.1
//! with keep-alive on a loopback port, replies made by a rule over the prompt (so the same
//! request always gets the same reply), every request counted, and faults on a fixed
//! schedule over the order requests arrive in.

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::http::read_request;

/// What the n-th request (0-based, in arrival order) gets instead of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `Retry-After: 0`.
    TooMany,
    /// 500.
    ServerError,
    /// 200 with a body that is not JSON.
    Garbled,
    /// No answer for longer than the client's timeout.
    Hang,
    /// The connection closed without an answer.
    Drop,
}

pub struct Endpoint {
    pub url: String,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    /// Faults by arrival index.
    faults: HashMap<usize, Fault>,
    arrivals: AtomicUsize,
    /// Request bodies answered with a reply, in order.
    answered: Mutex<Vec<String>>,
    /// Faults served.
    faulted: AtomicUsize,
    /// After this many replies, requests are held and never answered.
    answer_limit: AtomicUsize,
    /// Gold answers by question, for the fake student.
    gold: HashMap<String, String>,
}

impl Endpoint {
    /// Serves until the test process ends. `gold` maps a question to its gold answer.
    pub fn start(gold: HashMap<String, String>, faults: HashMap<usize, Fault>) -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let state = Arc::new(State { faults, gold, answer_limit: AtomicUsize::new(usize::MAX), ..State::default() });
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        Endpoint { url, state }
    }

    /// Answers only `n` requests in all; later ones are held unanswered for good, as by a
    /// server that stops in the middle of a run.
    pub fn answer_at_most(&self, n: usize) {
        self.state.answer_limit.store(n, Ordering::SeqCst);
    }

    /// The bodies of the requests that got a reply, in order.
    pub fn answered(&self) -> Vec<String> {
        self.state.answered.lock().unwrap().clone()
    }

    pub fn arrivals(&self) -> usize {
        self.state.arrivals.load(Ordering::SeqCst)
    }

    pub fn faulted(&self) -> usize {
        self.state.faulted.load(Ordering::SeqCst)
    }
}

fn serve(stream: TcpStream, state: &State) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    while let Some((request_line, body)) = read_request(&mut reader) {
        if !request_line.starts_with("POST") {
            if writer.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").is_err() {
                return;
            }
            continue;
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        let n = state.arrivals.fetch_add(1, Ordering::SeqCst);
        if let Some(fault) = state.faults.get(&n) {
            state.faulted.fetch_add(1, Ordering::SeqCst);
            let head = match fault {
                Fault::TooMany => "HTTP/1.1 429 Too Many Requests\r\nretry-after: 0\r\ncontent-length: 4\r\n\r\nslow",
                Fault::ServerError => "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\noops",
                Fault::Garbled => {
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 9\r\n\r\n{\"choices"
                }
                Fault::Hang => {
                    std::thread::sleep(Duration::from_secs(4));
                    return;
                }
                Fault::Drop => return,
            };
            if writer.write_all(head.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        let reply = reply_to(&body, &state.gold);
        {
            let mut answered = state.answered.lock().unwrap();
            if answered.len() >= state.answer_limit.load(Ordering::SeqCst) {
                drop(answered);
                // Held: the connection stays open and silent until the client goes away.
                let _ = reader.read(&mut [0; 1]);
                return;
            }
            answered.push(body);
        }
        let head =
            format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", reply.len());
        if writer.write_all(head.as_bytes()).and_then(|_| writer.write_all(reply.as_bytes())).is_err() {
            return;
        }
    }
}

/// A chat completion for `body`, from rules over its prompt that exercise every branch of
/// the methods: a student right on a third of the problems, a teacher that checks against
/// the reference and sometimes answers out of form.
fn reply_to(body: &str, gold: &HashMap<String, String>) -> String {
    let request: serde_json::Value = serde_json::from_str(body).unwrap();
    let prompt = request["messages"][0]["content"].as_str().unwrap();
    let seed = request["seed"].as_u64().unwrap_or(0);
    let text = if let Some(attempt) = prompt.split("Student's solution:\n").nth(1) {
        let reference = between(prompt, "Reference solution:\n", "Student's solution:");
        let gold = reference.rsplit("####").next().unwrap_or_default().trim().to_string();
        let attempt_answer = between(attempt, "the result is ", ".\n").trim();
        let h = hash(reference);
        if h % 7 == 1 {
            "The student did fine, I think.".to_string()
        } else if h % 11 == 2 {
            format!("Verdict: wrong\nFirst wrong step: 99\nCorrection: Redo it.\n#### {gold}")
        } else if attempt_answer == gold {
            "Verdict: correct".to_string()
        } else {
            format!(
                "Verdict: wrong\nFirst wrong step: 2\nCorrection: Counting again, the total comes out right.\n#### {gold}"
            )
        }
    } else {
        let question = between(prompt, "Problem:\n", "\n\n").trim().to_string();
        let answer = gold.get(&question).cloned().unwrap_or_else(|| "0".into());
        let h = hash(&question) ^ seed;
        let answer = if h.is_multiple_of(3) { answer } else { format!("{answer}1") };
        format!(
            "First we read off the quantities given.\nThen we combine them step by step.\nSo the result is {answer}.\n#### {answer}"
        )
    };
    let id = format!("chatcmpl-{:x}", hash(body));
    serde_json::json!({
        "id": id,
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt.split_whitespace().count(), "completion_tokens": text.split_whitespace().count()},
    })
    .to_string()
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).map_or(0, |i| i + start.len());
    let rest = &text[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

fn hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3))
}
