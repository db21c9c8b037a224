//! The fast path for a JSONL record: a top-level object whose strings are decoded from
//! 64-byte block masks, a run of plain bytes at a time. serde_json decodes a string a
//! byte class at a time and grows its buffer as it goes; for corpora of long texts that
//! was a sixth of an ingest.
//!
//! Any record the fast path does not take exactly as serde_json would (an error of any
//! kind, a duplicate key, a lone surrogate) gives `None`, and the caller parses it with
//! serde_json, which then gives the same object or the error message. Values other than
//! strings (numbers, nested objects, arrays) are parsed by serde_json here too, each on
//! its own, so serde_json's nesting limit is checked here for the record as a whole.

use serde_json::{Map, Value};

use crate::text::block::{BLOCK, low_bits, range_masks};

/// `text` as a JSON object, or `None` when serde_json should decide.
pub fn object(text: &str) -> Option<Map<String, Value>> {
    let bytes = text.as_bytes();
    let mut at = skip_space(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_space(bytes, at + 1);
    let mut map = Map::new();
    if bytes.get(at) == Some(&b'}') {
        at += 1;
    } else {
        loop {
            let key = string(text, &mut at)?;
            at = skip_space(bytes, at);
            if bytes.get(at) != Some(&b':') {
                return None;
            }
            at = skip_space(bytes, at + 1);
            let value = match bytes.get(at)? {
                b'"' => Value::String(string(text, &mut at)?),
                _ => {
                    let mut values = serde_json::Deserializer::from_str(&text[at..]).into_iter::<Value>();
                    let value = values.next()?.ok()?;
                    if depth(&value) > MAX_FIELD_DEPTH {
                        return None; // serde_json refuses the record
                    }
                    at += values.byte_offset();
                    value
                }
            };
            if map.insert(key, value).is_some() {
                return None; // serde_json keeps the last; leave such records to it
            }
            at = skip_space(bytes, at);
            match bytes.get(at)? {
                b',' => at = skip_space(bytes, at + 1),
                b'}' => {
                    at += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_space(bytes, at) == bytes.len()).then_some(map)
}

/// The deepest nesting of arrays and objects serde_json takes inside a record's field:
/// its limit of 128 counts the record's own object and the end of input.
const MAX_FIELD_DEPTH: usize = 126;

/// How deep arrays and objects nest in `value` (`[]` is 1, a number 0).
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(fields) => 1 + fields.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(at) {
        at += 1;
    }
    at
}

/// The string whose opening quote is at `*at`; leaves `*at` past its closing quote.
fn string(text: &str, at: &mut usize) -> Option<String> {
    let bytes = text.as_bytes();
    if bytes.get(*at) != Some(&b'"') {
        return None;
    }
    let mut out = String::new();
    let mut run = *at + 1;
    let mut block = run;
    loop {
        if block >= bytes.len() {
            return None; // no closing quote
        }
        let [quote, backslash, control] = range_masks(&bytes[block..], [(b'"', b'"'), (b'\\', b'\\'), (0, 0x1f)]);
        // Bytes past the end read as 0, a control byte: the end stops the scan too.
        let mut stops = quote | backslash | control;
        while stops != 0 {
            let stop = block + stops.trailing_zeros() as usize;
            match bytes.get(stop)? {
                b'"' => {
                    if out.is_empty() {
                        out = String::from(&text[run..stop]);
                    } else {
                        out.push_str(&text[run..stop]);
                    }
                    *at = stop + 1;
                    return Some(out);
                }
                b'\\' => {
                    if out.capacity() == 0 {
                        // Decoding never lengthens: the rest of the line bounds the string.
                        out.reserve(bytes.len() - run);
                    }
                    out.push_str(&text[run..stop]);
                    run = stop + 2 + escape(bytes, stop + 1, &mut out)?;
                    stops &= !low_bits((run - block).min(BLOCK) as u32);
                }
                _ => return None, // a raw control character, which JSON forbids in strings
            }
        }
        block = run.max(block + BLOCK);
    }
}

/// Decodes the escape whose letter is at `at` into `out`; returns the bytes it used
/// after the letter (4 for `\uXXXX`, 10 for a surrogate pair).
fn escape(bytes: &[u8], at: usize, out: &mut String) -> Option<usize> {
    let plain = match bytes.get(at)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let unit = hex4(bytes, at + 1)?;
            let (c, used) = match unit {
                0xd800..=0xdbff => {
                    if bytes.get(at + 5..at + 7)? != b"\\u" {
                        return None;
                    }
                    let low = hex4(bytes, at + 7)?;
                    if !(0xdc00..=0xdfff).contains(&low) {
                        return None;
                    }
                    (char::from_u32(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00))?, 10)
                }
                _ => (char::from_u32(unit)?, 4), // a lone low surrogate is no char
            };
            out.push(c);
            return Some(used);
        }
        _ => return None,
    };
    out.push(plain);
    Some(0)
}

fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    digits.iter().try_fold(0u32, |n, &d| Some(n << 4 | char::from(d).to_digit(16)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: what serde_json makes of the line, when it is an object.
    fn serde(line: &str) -> Option<Map<String, Value>> {
        match serde_json::from_str(line) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        }
    }

    fn check(line: &str) {
        if let Some(fast) = object(line) {
            assert_eq!(Some(fast), serde(line), "{line:?}");
        }
    }

    #[test]
    fn agrees_with_serde_json_on_hand_picked_lines() {
        let taken = [
            r#"{}"#,
            r#" { "a" : "b" , "c":1.5e3,"d":[1,{"x":null}], "e": true } "#,
            r#"{"text": "caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t", "n": -0}"#,
            r#"{"k": "", "long": "0123456789012345678901234567890123456789012345678901234567890123456789"}"#,
            "{\"a\":\"\u{e9}\u{1f600} \u{7f}\"}",
            r#"{"a": {"b": {"c": "d"}}, "z": 12345678901234567890}"#,
        ];
        for line in taken {
            assert_eq!(object(line), serde(line), "{line}");
            assert!(object(line).is_some(), "the fast path should take {line}");
        }
        let left = [
            r#"{"a": "b", "a": "c"}"#,  // duplicate key
            r#"{"a": "\ud800"}"#,       // lone surrogate
            r#"{"a": "\udc00\ud800"}"#, // reversed pair
            r#"{"a": "\x"}"#,           // bad escape
            "{\"a\": \"tab\there\"}",   // raw control character
            r#"{"a": "b",}"#,           // trailing comma
            r#"{"a": "b"} x"#,          // trailing text
            r#"{"a": 1x}"#,             // bad number
            r#"{"a" "b"}"#,             // no colon
            r#"{"a": "b""#,             // no closing brace
            r#"{"a": "b"#,              // no closing quote
            r#"{"a": "\u12"}"#,         // short escape
            r#"[1, 2]"#,                // not an object
            r#""#,                      // empty
        ];
        for line in left {
            assert_eq!(object(line), None, "{line}");
        }
        // Nesting: taken up to serde_json's limit, left to it (and its error) past it.
        let nested = |depth: usize| format!("{{\"a\": {}{}}}", "[".repeat(depth), "]".repeat(depth));
        let deepest = nested(MAX_FIELD_DEPTH);
        assert!(object(&deepest).is_some() && object(&deepest) == serde(&deepest));
        let deeper = nested(MAX_FIELD_DEPTH + 1);
        assert_eq!((object(&deeper), serde(&deeper)), (None, None));
    }

    /// Random lines from a palette of JSON pieces, valid and broken: wherever the fast
    /// path gives an object it is serde_json's, and it takes most valid lines.
    #[test]
    fn agrees_with_serde_json_on_generated_lines() {
        let strings = [
            "plain",
            "",
            "caf\u{e9}",
            "\u{1f600}",
            "\\n",
            "\\\"",
            "\\\\",
            "\\u00e9",
            "\\ud83d\\ude00",
            "\\ud83d",
            "\\/",
            "\\q",
            "\t",
            "x\u{1}",
            "$\\\\frac{a}{b}$",
            "\\u0000",
        ];
        let others = ["1", "-2.5e-3", "true", "null", "[]", "[1,\"a\"]", "{\"m\":{\"n\":1}}", "1x", "{", "nul"];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let (mut taken, mut valid) = (0, 0);
        for _ in 0..20_000 {
            let mut line = String::from(["{", " {", "[", "{\n"][next(4)]);
            for field in 0..next(5) {
                if field > 0 {
                    line.push_str([",", " , ", ",,"][next(3).min(next(3))]);
                }
                line.push_str(&format!("\"k{field}\""));
                line.push_str([":", " : ", ""][next(3).min(next(3))]);
                if next(3) == 0 {
                    line.push_str(others[next(others.len())]);
                } else {
                    line.push('"');
                    for _ in 0..next(4) {
                        line.push_str(strings[next(strings.len())]);
                        line.push_str(&"long text ".repeat(next(20)));
                    }
                    line.push('"');
                }
            }
            line.push_str(["}", "} ", "", "}x"][next(4).min(next(4))]);
            check(&line);
            if serde(&line).is_some() {
                valid += 1;
                taken += usize::from(object(&line).is_some());
            }
        }
        assert!(valid > 1000, "the generator should give valid objects, gave {valid}");
        assert!(taken * 10 >= valid * 9, "the fast path took {taken} of {valid} valid lines");
    }
}
