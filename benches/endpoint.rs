//! A stand-in model endpoint with a fixed latency, for the synthesis client's overhead
//! benchmark (scripts/bench_synthesize.sh): every POST is answered LATENCY_MS after its body
//! arrived, with the same well-formed chat completion, over HTTP/1.1 with keep-alive on a
//! loopback port, one thread per connection. The endpoint adds next to nothing itself, so
//! a client without overhead reaches concurrency / latency requests per second.
//!
//!   cargo bench --bench endpoint -- PORT LATENCY_MS

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

#[path = "../tests/it/http.rs"]
mod http;
use http::read_request;

/// A response_diversity reply in the template's form: a solution, its final answer and an
/// accepting self-check.
const REPLY: &str = "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\
    \"message\":{\"role\":\"assistant\",\"content\":\"First we add the quantities.\\nThen we take \
    the difference.\\n#### 7\\nVerdict: accept\"},\"finish_reason\":\"stop\"}],\
    \"usage\":{\"prompt_tokens\":120,\"completion_tokens\":20}}";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let [port, latency_ms] = args.as_slice() else {
        return Err("usage: endpoint PORT LATENCY_MS".into());
    };
    let latency = Duration::from_millis(latency_ms.parse()?);
    let listener = TcpListener::bind(("127.0.0.1", port.parse::<u16>()?))?;
    eprintln!("endpoint: http://{}/v1, {} ms per request", listener.local_addr()?, latency.as_millis());
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || serve(stream, latency));
    }
    Ok(())
}

/// Answers the requests of one connection until the client closes it.
fn serve(stream: TcpStream, latency: Duration) {
    // Without it, the reply would wait for the client's delayed ACK (40 ms on Linux).
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    let response =
        format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{REPLY}", REPLY.len());
    while read_request(&mut reader).is_some() {
        std::thread::sleep(latency);
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}
