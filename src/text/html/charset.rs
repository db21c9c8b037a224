//! The character set of a web page, in the order browsers decide it (WHATWG "encoding
//! sniffing"): a byte order mark, the HTTP `Content-Type` header, a `<meta>` tag in the
//! first 1024 bytes, and only then a guess: valid UTF-8 is UTF-8, anything else is what
//! chardetng (Firefox's detector) says, with the page's top-level domain as its hint.

use encoding_rs::{Encoding, UTF_8};

/// How far into a page browsers look for a `<meta charset>`.
const PRESCAN_BYTES: usize = 1024;

/// Where a page's encoding came from; kept with the document so a wrong guess can be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CharsetSource {
    ByteOrderMark,
    HttpHeader,
    MetaTag,
    Detected,
}

impl CharsetSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CharsetSource::ByteOrderMark => "bom",
            CharsetSource::HttpHeader => "http",
            CharsetSource::MetaTag => "meta",
            CharsetSource::Detected => "detected",
        }
    }
}

/// A page's bytes as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub text: String,
    /// The encoding's WHATWG name, e.g. `windows-1252`.
    pub encoding: &'static str,
    pub source: CharsetSource,
    /// Byte sequences the encoding could not map, each now U+FFFD.
    pub malformed: bool,
}

/// Decodes `bytes` by the first charset that is named: BOM, `http_charset` (the HTTP
/// header's `charset=` value), a meta tag; else guesses. `tld` (such as `ru`) helps the guess.
pub fn decode(bytes: &[u8], http_charset: Option<&str>, tld: Option<&[u8]>) -> Decoded {
    let (encoding, source) = if let Some((encoding, _)) = Encoding::for_bom(bytes) {
        (encoding, CharsetSource::ByteOrderMark)
    } else if let Some(encoding) = http_charset.and_then(|label| Encoding::for_label(label.trim().as_bytes())) {
        (encoding, CharsetSource::HttpHeader)
    } else if let Some(encoding) = meta_charset(&bytes[..bytes.len().min(PRESCAN_BYTES)]) {
        (encoding, CharsetSource::MetaTag)
    } else if std::str::from_utf8(bytes).is_ok() {
        (UTF_8, CharsetSource::Detected)
    } else {
        let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Allow);
        detector.feed(bytes, true);
        (detector.guess(tld, chardetng::Utf8Detection::Allow), CharsetSource::Detected)
    };
    let (text, used, malformed) = encoding.decode(bytes);
    Decoded { text: text.into_owned(), encoding: used.name(), source, malformed }
}

/// The charset a `<meta charset=...>` or `<meta http-equiv="Content-Type" content="...;
/// charset=...">` names in `head`, as the HTML standard's prescan reads it (simplified:
/// attributes in any order, quoted or not).
fn meta_charset(head: &[u8]) -> Option<&'static Encoding> {
    let lower = head.to_ascii_lowercase();
    let mut at = 0;
    while let Some(found) = memchr::memmem::find(&lower[at..], b"<meta") {
        let start = at + found + 5;
        let end = memchr::memchr(b'>', &lower[start..]).map_or(lower.len(), |e| start + e);
        let tag = &lower[start..end];
        if let Some(pos) = memchr::memmem::find(tag, b"charset") {
            let value = tag[pos + 7..].trim_ascii_start();
            if let Some(value) = value.strip_prefix(b"=") {
                let value = value.trim_ascii_start();
                let value = value.strip_prefix(b"\"").or_else(|| value.strip_prefix(b"'")).unwrap_or(value);
                let len = value
                    .iter()
                    .position(|b| matches!(b, b'"' | b'\'' | b';' | b' ' | b'/' | b'\t' | b'\n' | b'\r'))
                    .unwrap_or(value.len());
                if let Some(encoding) = Encoding::for_label(&value[..len]) {
                    // The standard's rule: a meta tag that names UTF-16 means UTF-8, since the
                    // tag itself was readable as ASCII.
                    return Some(encoding.output_encoding());
                }
            }
        }
        at = end;
    }
    None
}

/// The `charset=` parameter of a `Content-Type` header value.
pub fn header_charset(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim().eq_ignore_ascii_case("charset").then(|| value.trim().trim_matches(['"', '\'']))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_meta_and_detection_in_that_order() {
        let latin1 = b"<html><head><meta charset=\"iso-8859-1\"></head><body>caf\xe9</body></html>";
        let from_meta = decode(latin1, None, None);
        assert_eq!((from_meta.encoding, from_meta.source), ("windows-1252", CharsetSource::MetaTag));
        assert!(from_meta.text.contains("café"));
        // The header wins over the meta tag, as in browsers.
        let utf8 = "<meta charset=\"iso-8859-1\"><p>café</p>".as_bytes();
        let from_header = decode(utf8, Some("utf-8"), None);
        assert_eq!((from_header.encoding, from_header.source), ("UTF-8", CharsetSource::HttpHeader));
        assert!(from_header.text.contains("café") && !from_header.malformed);
        // No label at all: valid UTF-8 stays UTF-8, Cyrillic windows-1251 is recognised.
        assert_eq!(decode("<p>π ≈ 3.14</p>".as_bytes(), None, None).encoding, "UTF-8");
        let (cyrillic, _, _) =
            encoding_rs::WINDOWS_1251.encode("<p>Теорема Пифагора для прямоугольного треугольника</p>");
        let guessed = decode(&cyrillic, None, Some(b"ru"));
        assert_eq!((guessed.encoding, guessed.source), ("windows-1251", CharsetSource::Detected));
        assert!(guessed.text.contains("Теорема"));
    }

    #[test]
    fn meta_http_equiv_bom_and_unknown_labels() {
        let page = b"<meta http-equiv='Content-Type' content='text/html; charset=Shift_JIS'>";
        assert_eq!(meta_charset(page).map(|e| e.name()), Some("Shift_JIS"));
        assert_eq!(meta_charset(b"<meta charset=utf-16>").map(|e| e.name()), Some("UTF-8"));
        assert_eq!(meta_charset(b"<meta charset=klingon><meta name=x>"), None);
        let bom = decode(b"\xef\xbb\xbf<p>x</p>", Some("iso-8859-1"), None);
        assert_eq!((bom.encoding, bom.source, bom.text.as_str()), ("UTF-8", CharsetSource::ByteOrderMark, "<p>x</p>"));
        assert_eq!(header_charset("text/html; Charset=\"UTF-8\""), Some("UTF-8"));
        assert_eq!(header_charset("text/html"), None);
        // A label nobody knows falls through to the next rule instead of failing.
        assert_eq!(decode(b"<p>x</p>", Some("x-unknown"), None).source, CharsetSource::Detected);
    }
}
