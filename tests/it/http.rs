//! Reading HTTP/1.1 requests off a keep-alive connection, for the stand-in model endpoints
//! of the synthesis tests (tests/it/endpoint.rs) and of the client benchmark
//! (benches/endpoint.rs, which includes this file).

use std::io::BufRead;

/// The next request on the connection: its request line and body; `None` once the client
/// has closed the connection or sent less than it announced.
pub fn read_request(reader: &mut impl BufRead) -> Option<(String, Vec<u8>)> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).ok()? == 0 {
        return None;
    }
    let mut length = 0;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((request_line, body))
}
