//! WARC and WET files (`.warc`, `.warc.gz`, `.wet.gz`), record by record.
//!
//! A record is a version line, `Name: value` headers, a blank line, `Content-Length` bytes
//! of block and a blank line; a `.warc.gz` is one gzip member per record, which is what
//! lets a crawl index name a record by the byte offset of its member. The reader keeps
//! that offset as each record's position, so a quarantined record can be found again
//! (`warcio extract FILE OFFSET`).
//!
//! No kept crate fits: `warc` reads a `.gz` as one stream, so it can neither name a
//! record's offset nor go on past a bad member. Here a bad member (a broken deflate
//! stream, a CRC mismatch, a cut file) becomes one quarantined record and reading resumes
//! at the next gzip header; in a plain `.warc` at the next `WARC/` line.
//!
//! What becomes a document: `response` records whose HTTP status is 2xx and whose content
//! type is HTML (a missing type is sniffed), `resource` records of HTML, and WET
//! `conversion` records (text already extracted). Everything else is counted by kind and
//! skipped: `request`, `metadata`, `warcinfo`, `revisit`, and responses of other types
//! (`response application/pdf`) or statuses (`response status 404`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::rc::Rc;

use flate2::bufread::GzDecoder;

use super::record::{PageMeta, RAW_KEEP, RawKind, RawRecord};

/// A header line longer than this, or more header lines than `MAX_HEADERS`, is no WARC.
const MAX_HEADER_LINE: usize = 64 << 10;
const MAX_HEADERS: usize = 512;
/// The compressed bytes kept for finding the next member after a bad one.
const MAX_RECORDING: usize = 64 << 20;
/// HTTP headers are read from at most this much of a response before its type is known.
const HTTP_HEAD: usize = 64 << 10;

/// Records skipped, by kind (`request`, `response image/png`, ...).
pub type Skipped = Rc<RefCell<BTreeMap<String, u64>>>;

/// The records of one WARC or WET file that can become documents; the others are counted
/// in `skipped`.
pub struct WarcRecords {
    source: Source,
    gzip: bool,
    /// The gzip member being read and the offset where it starts.
    member: Option<(BufReader<GzDecoder<Source>>, u64)>,
    max_record_bytes: u64,
    skipped: Skipped,
    done: bool,
}

/// What one record turned out to be.
enum Found {
    Record(RawRecord),
    Skipped(String),
}

impl WarcRecords {
    /// `raw` is the file's bytes as stored (compressed when `gzip`).
    pub fn new(raw: Box<dyn BufRead + Send>, gzip: bool, max_record_bytes: u64, skipped: Skipped) -> WarcRecords {
        let source = Source { inner: raw, offset: 0, replay: Vec::new(), replay_at: 0, recording: None };
        WarcRecords { source, gzip, member: None, max_record_bytes, skipped, done: false }
    }

    fn next_plain(&mut self) -> std::io::Result<Option<Found>> {
        // Line ends between records are padding; what follows them must be a version line.
        while let Some(b'\r' | b'\n') = self.source.fill_buf()?.first() {
            self.source.consume(1);
        }
        let offset = self.source.offset;
        let available = self.source.fill_buf()?;
        let result = if available.is_empty() || available.starts_with(b"WARC/") {
            read_record(&mut self.source, self.max_record_bytes, offset)
        } else {
            let line = &available[..memchr::memchr(b'\n', available).unwrap_or(available.len()).min(40)];
            Err(Bad::Record(format!("no WARC version line: `{}`", String::from_utf8_lossy(line).trim_end())))
        };
        match result {
            Ok(record) => Ok(record),
            Err(Bad::Io(e)) => Err(e),
            Err(Bad::Record(detail)) => {
                // Skip to the next line that starts a record.
                let mut skipped = Vec::new();
                let mut size = 0u64;
                loop {
                    let available = self.source.fill_buf()?;
                    if available.is_empty() || (size > 0 && available.starts_with(b"WARC/")) {
                        break;
                    }
                    let line = memchr::memchr(b'\n', available).map_or(available.len(), |i| i + 1);
                    let keep = line.min(RAW_KEEP.saturating_sub(skipped.len()));
                    skipped.extend_from_slice(&available[..keep]);
                    size += line as u64;
                    self.source.consume(line);
                }
                Ok(Some(corrupt(offset, skipped, size.max(1), detail)))
            }
        }
    }

    fn next_gzip(&mut self) -> std::io::Result<Option<Found>> {
        let (mut member, start) = match self.member.take() {
            Some(open) => open,
            None => {
                if self.source.fill_buf()?.is_empty() {
                    return Ok(None);
                }
                let start = self.source.offset;
                self.source.recording = Some(Vec::new());
                let source = std::mem::replace(&mut self.source, Source::empty());
                (BufReader::with_capacity(1 << 16, GzDecoder::new(source)), start)
            }
        };
        let result = read_record(&mut member, self.max_record_bytes, start).and_then(|record| {
            // One record per member is the rule; the rest of a member that holds more is
            // read on the next call, at the same position.
            let ended = member.fill_buf()?.is_empty();
            Ok((record, ended))
        });
        match result {
            Ok((Some(record), false)) => {
                member.get_mut().get_mut().recording = None;
                self.member = Some((member, start));
                Ok(Some(record))
            }
            Ok((record, _)) => {
                self.source = member.into_inner().into_inner();
                self.source.recording = None;
                match record {
                    Some(record) => Ok(Some(record)),
                    None => self.next_gzip(),
                }
            }
            Err(bad) => {
                self.source = member.into_inner().into_inner();
                let detail = match bad {
                    Bad::Io(e) => format!("gzip member unreadable: {e}"),
                    Bad::Record(detail) => detail,
                };
                let (raw, size) = self.source.resync()?;
                Ok(Some(corrupt(start, raw, size, detail)))
            }
        }
    }
}

impl Iterator for WarcRecords {
    type Item = std::io::Result<RawRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let next = if self.gzip { self.next_gzip() } else { self.next_plain() };
            match next {
                Ok(Some(Found::Record(record))) => return Some(Ok(record)),
                Ok(Some(Found::Skipped(kind))) => *self.skipped.borrow_mut().entry(kind).or_default() += 1,
                Ok(None) => self.done = true,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

fn corrupt(offset: u64, mut raw: Vec<u8>, size: u64, detail: String) -> Found {
    raw.truncate(RAW_KEEP);
    Found::Record(RawRecord { position: offset, bytes: raw, size, kind: RawKind::Corrupt(detail) })
}

enum Bad {
    /// The stream below failed (a bad gzip member, or the store).
    Io(std::io::Error),
    /// The bytes are readable but no WARC record.
    Record(String),
}

impl From<std::io::Error> for Bad {
    fn from(e: std::io::Error) -> Bad {
        Bad::Io(e)
    }
}

/// One record from `r`, or `None` at the end. Oversize blocks keep their first
/// `max_record_bytes` (the parser quarantines them); skipped ones keep nothing.
fn read_record(r: &mut impl BufRead, max_record_bytes: u64, offset: u64) -> Result<Option<Found>, Bad> {
    let mut line = Vec::new();
    // Blank lines between records are padding.
    loop {
        let Some(size) = super::inputs::read_line_capped(r, MAX_HEADER_LINE, &mut line)? else { return Ok(None) };
        if size > MAX_HEADER_LINE as u64 {
            return Err(Bad::Record(format!("a {size}-byte line where a WARC version line was expected")));
        }
        if !line.trim_ascii().is_empty() {
            break;
        }
    }
    if !line.starts_with(b"WARC/") {
        let shown = String::from_utf8_lossy(&line[..line.len().min(40)]).into_owned();
        return Err(Bad::Record(format!("no WARC version line: `{shown}`")));
    }
    let headers = read_headers(r)?;
    let length: u64 = headers
        .get("content-length")
        .ok_or_else(|| Bad::Record("the record has no Content-Length".into()))?
        .trim()
        .parse()
        .map_err(|_| Bad::Record("the record's Content-Length is not a number".into()))?;
    let kind = headers.get("warc-type").map(|t| t.trim().to_ascii_lowercase()).unwrap_or_default();
    let meta = || PageMeta {
        url: headers.get("warc-target-uri").map(|u| u.trim().trim_matches(['<', '>']).to_string()),
        date: headers.get("warc-date").map(|d| d.trim().to_string()),
        record_id: headers.get("warc-record-id").map(|d| d.trim().to_string()),
        ..PageMeta::default()
    };
    let mut block = (&mut *r).take(length);
    let record = match kind.as_str() {
        "response" => {
            let mut head = Vec::new();
            (&mut block).take(HTTP_HEAD as u64).read_to_end(&mut head)?;
            match http_page(&head) {
                Ok(Page { body_at, content_type, charset, transfer, encoding }) => {
                    let mut body = head.split_off(body_at.min(head.len()));
                    let size = length - body_at as u64;
                    keep_block(&mut block, &mut body, max_record_bytes)?;
                    let meta = PageMeta { content_type, charset, transfer, encoding, ..meta() };
                    Found::Record(RawRecord {
                        position: offset,
                        bytes: body,
                        size,
                        kind: RawKind::Html(Box::new(meta)),
                    })
                }
                Err(Skip(why)) => skip(&mut block, why)?,
            }
        }
        "resource" | "conversion" => {
            let content_type = headers.get("content-type").map(|t| t.trim().to_ascii_lowercase()).unwrap_or_default();
            let mut bytes = Vec::new();
            keep_block(&mut block, &mut bytes, max_record_bytes)?;
            let mime = content_type.split(';').next().unwrap_or_default().trim().to_string();
            let charset = crate::text::html::header_charset(&content_type).map(str::to_string);
            if is_html(&mime, &bytes) {
                let meta = PageMeta { content_type: Some(mime), charset, ..meta() };
                Found::Record(RawRecord { position: offset, bytes, size: length, kind: RawKind::Html(Box::new(meta)) })
            } else if kind == "conversion" && mime == "text/plain" {
                let meta = PageMeta { content_type: Some(mime), charset, ..meta() };
                Found::Record(RawRecord {
                    position: offset,
                    bytes,
                    size: length,
                    kind: RawKind::PageText(Box::new(meta)),
                })
            } else {
                Found::Skipped(format!("{kind} {}", short(&mime)))
            }
        }
        "" => return Err(Bad::Record("the record has no WARC-Type".into())),
        other => skip(&mut block, short(other))?,
    };
    if block.limit() > 0 {
        return Err(Bad::Record(format!("the file ends {} bytes into a {length}-byte block", length - block.limit())));
    }
    // The two line ends that close a record; lenient about their form.
    let mut closing = 0;
    while closing < 4 {
        match r.fill_buf()?.first() {
            Some(b'\r' | b'\n') => {
                r.consume(1);
                closing += 1;
            }
            _ => break,
        }
    }
    Ok(Some(record))
}

fn skip(block: &mut impl Read, why: String) -> Result<Found, Bad> {
    std::io::copy(block, &mut std::io::sink())?;
    Ok(Found::Skipped(why))
}

/// Reads the rest of `block` onto `bytes`, keeping at most `max` bytes; the rest is read
/// and dropped so the next record starts where it should.
fn keep_block(block: &mut impl Read, bytes: &mut Vec<u8>, max: u64) -> Result<(), Bad> {
    let room = max.saturating_sub(bytes.len() as u64);
    (&mut *block).take(room).read_to_end(bytes)?;
    std::io::copy(block, &mut std::io::sink())?;
    Ok(())
}

fn short(text: &str) -> String {
    text.chars().take(64).collect()
}

/// WARC headers by lowercased name; a repeated name keeps its first value.
fn read_headers(r: &mut impl BufRead) -> Result<std::collections::HashMap<String, String>, Bad> {
    let mut headers = std::collections::HashMap::new();
    let mut line = Vec::new();
    let mut last: Option<String> = None;
    for _ in 0..MAX_HEADERS {
        let Some(size) = super::inputs::read_line_capped(r, MAX_HEADER_LINE, &mut line)? else {
            return Err(Bad::Record("the file ends inside the record's headers".into()));
        };
        if size > MAX_HEADER_LINE as u64 {
            return Err(Bad::Record(format!("a {size}-byte header line")));
        }
        if line.is_empty() {
            return Ok(headers);
        }
        let text = String::from_utf8_lossy(&line);
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(value) = last.as_ref().and_then(|name| headers.get_mut(name)) {
                value.push(' ');
                value.push_str(text.trim());
            }
            continue;
        }
        let Some((name, value)) = text.split_once(':') else {
            return Err(Bad::Record(format!("header line without a colon: `{}`", short(&text))));
        };
        let name = name.trim().to_ascii_lowercase();
        headers.entry(name.clone()).or_insert_with(|| value.trim().to_string());
        last = Some(name);
    }
    Err(Bad::Record(format!("more than {MAX_HEADERS} header lines")))
}

struct Page {
    body_at: usize,
    content_type: Option<String>,
    charset: Option<String>,
    transfer: Option<String>,
    encoding: Option<String>,
}

/// Why a response is not a page; the key it is counted under.
struct Skip(String);

/// The HTTP head of a response block: where the body starts and how to read it, or why
/// the response is skipped. Unreadable heads are skipped as `response unreadable HTTP`
/// rather than quarantined: a crawler stores what servers send, and some send no HTTP.
fn http_page(head: &[u8]) -> Result<Page, Skip> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut response = httparse::Response::new(&mut headers);
    let parsed = httparse::ParserConfig::default()
        .allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .ignore_invalid_headers_in_responses(true)
        .parse_response(&mut response, head);
    let body_at = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Err(Skip("response unreadable HTTP".into())),
    };
    let status = response.code.unwrap_or(0);
    if !(200..300).contains(&status) {
        return Err(Skip(format!("response status {}", status / 100 * 100)));
    }
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let content_type = header("content-type");
    let mime = content_type.as_deref().unwrap_or_default().split(';').next().unwrap_or_default().trim().to_string();
    if !is_html(&mime, &head[body_at..]) {
        let mime = if mime.is_empty() { "without type".to_string() } else { short(&mime) };
        return Err(Skip(format!("response {mime}")));
    }
    let charset = content_type.as_deref().and_then(crate::text::html::header_charset).map(str::to_string);
    Ok(Page {
        body_at,
        content_type: Some(if mime.is_empty() { "text/html".into() } else { mime }),
        charset,
        transfer: header("transfer-encoding"),
        encoding: header("content-encoding"),
    })
}

/// HTML by its type, or by its first bytes when the type says nothing.
fn is_html(mime: &str, body: &[u8]) -> bool {
    match mime {
        "text/html" | "application/xhtml+xml" => true,
        "" | "application/octet-stream" => {
            let start = body.trim_ascii_start();
            let start = &start[..start.len().min(14)].to_ascii_lowercase();
            start.starts_with(b"<!doctype html") || start.starts_with(b"<html")
        }
        _ => false,
    }
}

/// The stored bytes, counting the offset of the next one, keeping what a gzip member
/// consumed (to search it for the next member when it proves bad) and reading bytes given
/// back before the stream's own.
struct Source {
    inner: Box<dyn BufRead + Send>,
    offset: u64,
    replay: Vec<u8>,
    replay_at: usize,
    recording: Option<Vec<u8>>,
}

impl Source {
    fn empty() -> Source {
        Source { inner: Box::new(std::io::empty()), offset: 0, replay: Vec::new(), replay_at: 0, recording: None }
    }

    /// After a bad member: the bytes from its start up to the next gzip header (at most
    /// `RAW_KEEP` of them kept) and their count, leaving the stream at that header.
    fn resync(&mut self) -> std::io::Result<(Vec<u8>, u64)> {
        const MAGIC: &[u8] = &[0x1f, 0x8b, 0x08];
        let recorded = self.recording.take().unwrap_or_default();
        if let Some(at) = memchr::memmem::find(recorded.get(1..).unwrap_or_default(), MAGIC).map(|i| i + 1) {
            let mut back = recorded[at..].to_vec();
            back.extend_from_slice(&self.replay[self.replay_at..]);
            self.offset -= (recorded.len() - at) as u64;
            self.replay = back;
            self.replay_at = 0;
            return Ok((recorded[..at.min(RAW_KEEP)].to_vec(), at as u64));
        }
        let mut size = recorded.len() as u64;
        let mut kept = recorded;
        kept.truncate(RAW_KEEP);
        loop {
            let available = self.fill_buf()?;
            if available.is_empty() {
                return Ok((kept, size.max(1)));
            }
            // A header may straddle two reads: keep the last two bytes for the next search.
            match memchr::memmem::find(available, MAGIC) {
                Some(at) => {
                    self.consume(at);
                    return Ok((kept, size + at as u64));
                }
                None => {
                    let used = available.len().saturating_sub(2).max(1);
                    let room = RAW_KEEP.saturating_sub(kept.len()).min(used);
                    kept.extend_from_slice(&available[..room]);
                    size += used as u64;
                    self.consume(used);
                }
            }
        }
    }
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Source {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.replay_at < self.replay.len() {
            return Ok(&self.replay[self.replay_at..]);
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, n: usize) {
        let replaying = self.replay_at < self.replay.len();
        if let Some(recording) = self.recording.as_mut() {
            if recording.len() + n > MAX_RECORDING {
                self.recording = None;
            } else if replaying {
                recording.extend_from_slice(&self.replay[self.replay_at..self.replay_at + n]);
            } else if let Ok(bytes) = self.inner.fill_buf() {
                recording.extend_from_slice(&bytes[..n]);
            }
        }
        if replaying {
            self.replay_at += n;
            if self.replay_at == self.replay.len() {
                self.replay.clear();
                self.replay_at = 0;
            }
        } else {
            self.inner.consume(n);
        }
        self.offset += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn record(kind: &str, url: &str, block: &[u8]) -> Vec<u8> {
        let mut out = format!(
            "WARC/1.0\r\nWARC-Type: {kind}\r\nWARC-Target-URI: {url}\r\nWARC-Date: 2024-05-01T10:00:00Z\r\n\
             WARC-Record-ID: <urn:uuid:{kind}-{}>\r\nContent-Type: application/http; msgtype=response\r\n\
             Content-Length: {}\r\n\r\n",
            url.len(),
            block.len()
        )
        .into_bytes();
        out.extend_from_slice(block);
        out.extend_from_slice(b"\r\n\r\n");
        out
    }

    /// A `resource` record: the block is the object itself, typed by the WARC header.
    fn resource(url: &str, content_type: &str, body: &str) -> Vec<u8> {
        let head = format!(
            "WARC/1.1\r\nWARC-Type: resource\r\nWARC-Target-URI: {url}\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        [head.as_bytes(), body.as_bytes(), b"\r\n\r\n"].concat()
    }

    fn response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
        format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}", body.len())
            .into_bytes()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn read(bytes: Vec<u8>, gzip: bool) -> (Vec<RawRecord>, BTreeMap<String, u64>) {
        let skipped = Skipped::default();
        let records = WarcRecords::new(Box::new(std::io::Cursor::new(bytes)), gzip, 1 << 20, skipped.clone());
        let records = records.collect::<std::io::Result<Vec<_>>>().unwrap();
        (records, skipped.take())
    }

    fn records() -> Vec<Vec<u8>> {
        vec![
            record("warcinfo", "", b"software: test\r\n"),
            record("request", "http://a.org/", b"GET / HTTP/1.1\r\nHost: a.org\r\n\r\n"),
            record("response", "http://a.org/", &response("200 OK", "text/html; charset=utf-8", "<p>first page</p>")),
            record("response", "http://a.org/x.png", &response("200 OK", "image/png", "\u{89}PNG")),
            record("response", "http://a.org/gone", &response("404 Not Found", "text/html", "<p>missing</p>")),
            record("response", "http://b.org/", &response("200 OK", "text/html", "<p>second page</p>")),
            resource("http://b.org/robots.txt", "text/plain", "User-agent: *"),
        ]
    }

    fn check_pages(pages: &[RawRecord], offsets: &[u64]) {
        assert_eq!(pages.len(), 2);
        let RawKind::Html(meta) = &pages[0].kind else { panic!("{:?}", pages[0].kind) };
        assert_eq!(meta.url.as_deref(), Some("http://a.org/"));
        assert_eq!(meta.charset.as_deref(), Some("utf-8"));
        assert_eq!(meta.record_id.as_deref(), Some("<urn:uuid:response-13>"));
        assert_eq!(meta.date.as_deref(), Some("2024-05-01T10:00:00Z"));
        assert_eq!(pages[0].bytes, b"<p>first page</p>");
        assert_eq!(pages[1].bytes, b"<p>second page</p>");
        assert_eq!((pages[0].position, pages[1].position), (offsets[2], offsets[5]));
    }

    fn expected_skips() -> BTreeMap<String, u64> {
        [
            ("warcinfo", 1),
            ("request", 1),
            ("response image/png", 1),
            ("response status 400", 1),
            ("resource text/plain", 1),
        ]
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect()
    }

    fn offsets(parts: &[Vec<u8>]) -> Vec<u64> {
        parts.iter().scan(0u64, |at, p| Some(std::mem::replace(at, *at + p.len() as u64))).collect()
    }

    #[test]
    fn plain_and_gzip_files_give_pages_at_their_offsets_and_count_the_rest() {
        let plain = records();
        let (pages, skipped) = read(plain.concat(), false);
        check_pages(&pages, &offsets(&plain));
        assert_eq!(skipped, expected_skips());
        let members: Vec<_> = records().iter().map(|r| gzip(r)).collect();
        let (pages, skipped) = read(members.concat(), true);
        check_pages(&pages, &offsets(&members));
        assert_eq!(skipped, expected_skips());
    }

    #[test]
    fn a_bad_gzip_member_is_quarantined_and_reading_goes_on() {
        let mut members: Vec<_> = records().iter().map(|r| gzip(r)).collect();
        // Damage the deflate data of the first page's member.
        let middle = members[2].len() / 2;
        members[2][middle] ^= 0xff;
        members[2][middle + 1] ^= 0xff;
        let at = offsets(&members);
        let (found, skipped) = read(members.concat(), true);
        let corrupt: Vec<_> = found.iter().filter(|r| matches!(r.kind, RawKind::Corrupt(_))).collect();
        assert_eq!(corrupt.len(), 1, "{found:?}");
        assert_eq!((corrupt[0].position, corrupt[0].size), (at[2], members[2].len() as u64));
        let pages: Vec<_> = found.iter().filter(|r| matches!(r.kind, RawKind::Html(_))).collect();
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0].position, at[5]);
        assert_eq!(skipped, expected_skips());
        // A file cut inside its last member (the resource): it is quarantined, the rest read.
        let mut cut: Vec<u8> = records().iter().flat_map(|r| gzip(r)).collect();
        cut.truncate(cut.len() - 10);
        let (found, _) = read(cut, true);
        assert!(matches!(found.last().map(|r| &r.kind), Some(RawKind::Corrupt(_))), "{found:?}");
        assert_eq!(found.iter().filter(|r| matches!(r.kind, RawKind::Html(_))).count(), 2);
    }

    #[test]
    fn garbage_in_a_plain_file_is_quarantined_up_to_the_next_record() {
        let mut parts = records();
        parts.insert(3, b"this is not a record\nnor this\n".to_vec());
        let at = offsets(&parts);
        let (found, skipped) = read(parts.concat(), false);
        let RawKind::Corrupt(detail) = &found[1].kind else { panic!("{found:?}") };
        assert!(detail.contains("no WARC version line"), "{detail}");
        assert_eq!((found[1].position, found[1].bytes.as_slice()), (at[3], &parts[3][..]));
        assert_eq!(found.len(), 3);
        assert_eq!(skipped, expected_skips());
    }
}
