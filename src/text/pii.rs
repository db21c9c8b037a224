//! Personal data in web text: e-mail addresses, public IP addresses and, when asked for,
//! phone numbers, found and replaced by fixed placeholders as datatrove's PII formatter
//! does (its first placeholders, so a run gives the same text every time).
//!
//! Math is left alone: a match that touches a formula (`$...$`, `$$...$$`, `\(...\)`,
//! `\[...\]`, a `\begin{...}...\end{...}` environment) is not personal data, so
//! `$a@b.c$` or `\[ 192.168.0.1 \]` stay as written.

use std::net::Ipv4Addr;
use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

/// What replaces an e-mail address.
pub const EMAIL_PLACEHOLDER: &str = "email@example.com";
/// What replaces a public IPv4 address.
pub const IP_PLACEHOLDER: &str = "22.214.171.124";
/// What replaces a phone number: a number reserved for fiction.
pub const PHONE_PLACEHOLDER: &str = "555-0100";

/// The kinds of personal data [`find`] looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds {
    pub phones: bool,
}

/// One piece of personal data: where it is and what replaces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub span: Range<usize>,
    pub placeholder: &'static str,
}

// RFC 5322's dot-atom local part and a domain of at least two labels (datatrove's pattern).
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?",
    )
    .expect("the e-mail pattern compiles")
});
static IPV4: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\b",
    )
    .expect("the IPv4 pattern compiles")
});
// North American numbers with separators: (555) 123-4567, 555-123-4567, +1 555.123.4567.
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\+1[\s.-]?)?(?:\(\d{3}\)\s?|\b\d{3}[\s.-])\d{3}[\s.-]\d{4}\b").expect("the phone pattern compiles")
});
static MATH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?s)\$\$.*?\$\$|\$[^$]+?\$|\\\(.*?\\\)|\\\[.*?\\\]|\\begin\{[A-Za-z*]+\}.*?\\end\{[A-Za-z*]+\}")
        .expect("the math pattern compiles")
});

/// The personal data of `text`, in order and not overlapping, formulas left out.
pub fn find(text: &str, kinds: Kinds) -> Vec<Match> {
    let mut found = Vec::new();
    if text.contains('@') {
        found.extend(EMAIL.find_iter(text).map(|m| Match { span: m.range(), placeholder: EMAIL_PLACEHOLDER }));
    }
    found.extend(
        IPV4.find_iter(text)
            .filter(|m| !in_longer_number(text, m.range()) && m.as_str().parse().is_ok_and(is_public))
            .map(|m| Match { span: m.range(), placeholder: IP_PLACEHOLDER }),
    );
    if kinds.phones {
        found.extend(PHONE.find_iter(text).map(|m| Match { span: m.range(), placeholder: PHONE_PLACEHOLDER }));
    }
    if found.is_empty() {
        return found;
    }
    found.sort_by_key(|m| (m.span.start, std::cmp::Reverse(m.span.end)));
    let math: Vec<Range<usize>> = MATH.find_iter(text).map(|m| m.range()).collect();
    let mut kept: Vec<Match> = Vec::with_capacity(found.len());
    for m in found {
        let overlaps_kept = kept.last().is_some_and(|last| m.span.start < last.span.end);
        let in_math = math.iter().any(|f| m.span.start < f.end && f.start < m.span.end);
        if !overlaps_kept && !in_math {
            kept.push(m);
        }
    }
    kept
}

/// `text` with its personal data replaced by the placeholders.
pub fn redact(text: &str, kinds: Kinds) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for m in find(text, kinds) {
        out.push_str(&text[at..m.span.start]);
        out.push_str(m.placeholder);
        at = m.span.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Whether four dotted numbers at `span` are part of a longer dotted number, like the
/// section 1.2.3.4.5 of a book.
fn in_longer_number(text: &str, span: Range<usize>) -> bool {
    let dotted_digit = |s: &[u8]| s.len() == 2 && s[0] == b'.' && s[1].is_ascii_digit();
    let bytes = text.as_bytes();
    dotted_digit(&bytes[span.end..(span.end + 2).min(bytes.len())])
        || (span.start >= 2 && dotted_digit(&[bytes[span.start - 1], bytes[span.start - 2]]))
}

/// Whether an address is routed on the internet: not private, loopback, link-local,
/// shared (carrier NAT), documentation, broadcast, unspecified or reserved. Private
/// addresses name no one, as datatrove's `only_remove_public_ips` has it.
fn is_public(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b);
    let reserved = a >= 240 || a == 0;
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_documentation()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || shared
        || reserved)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: Kinds = Kinds { phones: false };

    #[test]
    fn emails_and_public_ips_are_replaced() {
        let text = "Write to jane.doe+lists@mail.example.co.uk or admin@uni.edu; the server is 8.8.8.8.";
        assert_eq!(
            redact(text, DEFAULT),
            "Write to email@example.com or email@example.com; the server is 22.214.171.124."
        );
        assert_eq!(find(text, DEFAULT).len(), 3);
    }

    #[test]
    fn private_and_reserved_addresses_and_version_like_numbers_stay() {
        for text in ["router at 192.168.1.1", "localhost 127.0.0.1", "10.0.0.7 inside", "see 203.0.113.5", "0.0.0.0"] {
            assert_eq!(redact(text, DEFAULT), text);
        }
        assert_eq!(redact("version 1.2.3", DEFAULT), "version 1.2.3", "three parts are not an address");
        assert_eq!(redact("999.1.1.1", DEFAULT), "999.1.1.1", "no octet above 255");
        assert_eq!(redact("in section 4.8.8.8.2", DEFAULT), "in section 4.8.8.8.2", "part of a longer number");
        assert_eq!(redact("section 2.4.8.8.8", DEFAULT), "section 2.4.8.8.8");
    }

    #[test]
    fn formulas_that_look_like_addresses_stay() {
        let text = "In $a@b.c$ and \\[ x@y.z = 8.8.8.8 \\] nothing is personal, but bob@site.org is.";
        assert_eq!(
            redact(text, DEFAULT),
            "In $a@b.c$ and \\[ x@y.z = 8.8.8.8 \\] nothing is personal, but email@example.com is."
        );
        let display = "$$\nu@v.w\n$$\n\\begin{align} p@q.r \\end{align}";
        assert_eq!(redact(display, DEFAULT), display);
        assert_eq!(
            redact("a@b is no address: its domain has one label", DEFAULT),
            "a@b is no address: its domain has one label"
        );
    }

    #[test]
    fn phones_only_when_asked() {
        let text = "Call (555) 123-4567 or +1 555.987.6543 before 5 pm.";
        assert_eq!(redact(text, DEFAULT), text);
        assert_eq!(redact(text, Kinds { phones: true }), "Call 555-0100 or 555-0100 before 5 pm.");
        assert_eq!(
            redact("x = 123 456 7890 is a phone, 1234567 is not", Kinds { phones: true }),
            "x = 555-0100 is a phone, 1234567 is not"
        );
    }

    /// The pages of ../shared/data: the Common Crawl sample's addresses go, StackMathQA's
    /// formulas stay byte for byte.
    #[test]
    fn real_pages_lose_their_addresses_and_keep_their_formulas() {
        use std::io::{BufRead, BufReader};
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data");
        let cc = std::fs::File::open(format!("{data}/general/cc_sample_697.jsonl.gz")).expect("the CC sample");
        let (mut pages, mut found) = (0, [0usize; 2]);
        for raw in BufReader::new(flate2::read::GzDecoder::new(cc)).lines() {
            let record: serde_json::Value = serde_json::from_str(&raw.expect("a line")).expect("JSON");
            let text = record["text"].as_str().unwrap_or_default();
            let matches = find(text, DEFAULT);
            found[0] += matches.iter().filter(|m| m.placeholder == EMAIL_PLACEHOLDER).count();
            found[1] += matches.iter().filter(|m| m.placeholder == IP_PLACEHOLDER).count();
            let redacted = redact(text, DEFAULT);
            assert!(find(&redacted, DEFAULT).iter().all(|m| &redacted[m.span.clone()] == m.placeholder));
            pages += 1;
        }
        println!("CC: {pages} pages, {} e-mail addresses, {} public IPs", found[0], found[1]);
        assert!(found[0] > 0, "the crawl sample has e-mail addresses");

        let stackmathqa = std::fs::read_to_string(format!("{data}/web/stackmathqa_987.jsonl")).expect("StackMathQA");
        let mut formulas = 0;
        for raw in stackmathqa.lines() {
            let record: serde_json::Value = serde_json::from_str(raw).expect("JSON");
            for field in ["Q", "A"] {
                let text = record[field].as_str().unwrap_or_default();
                let redacted = redact(text, Kinds { phones: true });
                for formula in MATH.find_iter(text) {
                    assert!(redacted.contains(formula.as_str()), "{}", formula.as_str());
                    formulas += 1;
                }
            }
        }
        println!("StackMathQA: {formulas} formulas kept");
        assert!(formulas > 1_000);
    }

    #[test]
    fn empty_and_plain_text_come_back_unchanged() {
        assert_eq!(redact("", DEFAULT), "");
        assert_eq!(
            redact("Nothing personal here: 2 + 2 = 4.", Kinds { phones: true }),
            "Nothing personal here: 2 + 2 = 4."
        );
    }
}
