//! HTTP bodies as a crawler stored them: chunked transfer coding and gzip, deflate or zstd
//! content coding undone, the way a browser reads them. WARC keeps the bytes the server
//! sent, so both codings occur.

use std::borrow::Cow;
use std::io::Read;

/// A body that decompresses beyond this is refused: a page is never this large, a
/// compression bomb is.
const MAX_BODY: u64 = 64 << 20;

/// The body's bytes with `transfer` (`Transfer-Encoding`) and `encoding`
/// (`Content-Encoding`) undone, or why they cannot be.
pub fn body<'a>(bytes: &'a [u8], transfer: Option<&str>, encoding: Option<&str>) -> Result<Cow<'a, [u8]>, String> {
    let mut body = Cow::Borrowed(bytes);
    if transfer.is_some_and(|t| t.contains("chunked")) {
        // Some crawlers store the body already dechunked but keep the header.
        if let Some(joined) = dechunk(bytes) {
            body = Cow::Owned(joined);
        }
    }
    let coding = encoding.map(|e| e.trim().to_ascii_lowercase()).unwrap_or_default();
    let decoded = match coding.as_str() {
        "" | "identity" | "none" | "utf-8" => return Ok(body),
        "gzip" | "x-gzip" => read_all(flate2::read::MultiGzDecoder::new(&*body)),
        "deflate" => {
            // Servers send zlib-wrapped (the standard) or raw deflate; try both.
            read_all(flate2::read::ZlibDecoder::new(&*body))
                .or_else(|_| read_all(flate2::read::DeflateDecoder::new(&*body)))
        }
        "zstd" => zstd::stream::read::Decoder::new(&*body).map_err(|e| e.to_string()).and_then(read_all),
        other => return Err(format!("content encoding `{other}` is not supported (gzip, deflate, zstd are)")),
    };
    match decoded {
        Ok(bytes) => Ok(Cow::Owned(bytes)),
        // A body stored decoded under its original header is readable as it is.
        Err(_) if looks_like_markup(&body) => Ok(body),
        Err(e) => Err(format!("cannot undo content encoding `{coding}`: {e}")),
    }
}

fn read_all(reader: impl Read) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    reader.take(MAX_BODY + 1).read_to_end(&mut out).map_err(|e| e.to_string())?;
    if out.len() as u64 > MAX_BODY {
        return Err(format!("the body decompresses to more than {} MiB", MAX_BODY >> 20));
    }
    Ok(out)
}

fn looks_like_markup(bytes: &[u8]) -> bool {
    bytes.trim_ascii_start().first() == Some(&b'<')
}

/// The chunks of a chunked body joined, or `None` when it is not chunked after all.
fn dechunk(mut bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    loop {
        let line_end = memchr::memchr(b'\n', bytes)?;
        let line = std::str::from_utf8(&bytes[..line_end]).ok()?.trim();
        let size = line.split(';').next()?.trim();
        let size = usize::from_str_radix(size, 16).ok()?;
        bytes = &bytes[line_end + 1..];
        if size == 0 {
            return Some(out);
        }
        // A last chunk cut short by the crawler keeps what arrived.
        let take = size.min(bytes.len());
        out.extend_from_slice(&bytes[..take]);
        bytes = &bytes[take..];
        if bytes.is_empty() {
            return Some(out);
        }
        bytes = bytes.strip_prefix(b"\r\n").or_else(|| bytes.strip_prefix(b"\n")).unwrap_or(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn chunked_and_compressed_bodies_are_undone() {
        let chunked = b"7\r\n<p>Hell\r\n5;ext=1\r\no, wo\r\n4\r\nrld.\r\n0\r\n\r\n";
        assert_eq!(&*body(chunked, Some("chunked"), None).unwrap(), b"<p>Hello, world.");
        // Stored already dechunked under a chunked header: kept as it is.
        assert_eq!(&*body(b"<p>plain</p>", Some("chunked"), None).unwrap(), b"<p>plain</p>");
        let page = b"<html><body><p>x</p></body></html>";
        assert_eq!(&*body(&gzip(page), None, Some("gzip")).unwrap(), page);
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(page).unwrap();
        assert_eq!(&*body(&zlib.finish().unwrap(), None, Some("deflate")).unwrap(), page);
        assert_eq!(&*body(page, None, Some("gzip")).unwrap(), page, "stored decoded under its header");
    }

    #[test]
    fn undecodable_bodies_say_why() {
        assert!(body(b"\x00\x01binary", None, Some("br")).unwrap_err().contains("`br` is not supported"));
        assert!(
            body(b"\x00\x01binary", None, Some("gzip")).unwrap_err().contains("cannot undo content encoding `gzip`")
        );
        let bomb = gzip(&vec![b'a'; (MAX_BODY + 10) as usize]);
        assert!(body(&bomb, None, Some("gzip")).unwrap_err().contains("more than 64 MiB"));
    }
}
