//! A fast encoder for byte-level BPE `tokenizer.json` files (GPT-2's family) that gives
//! the same ids as Hugging Face tokenizers.
//!
//! HF's encoder spends most of its time around the BPE rather than in it: in the regex
//! pre-tokenizer and the string and offset bookkeeping of every piece. Here the GPT-2
//! split is a scanner over the text's bytes whose character classes come from the Unicode
//! tables of the regex engines (`\p{L}`, `\p{N}`, `\s`; Oniguruma, which HF uses, has the
//! same ones), and each piece's ids come from a per-thread cache, so the merges run once
//! per distinct piece. The merge loop is HF's: lowest rank first, leftmost on ties.
//!
//! What the fast path supports is checked when a file is loaded ([`FastBpe::from_json`]);
//! the encoder falls back to HF tokenizers for anything else. `tests/it/tokenize_parity.rs`
//! proves the ids equal on real and generated text.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex_syntax::hir::{Class, HirKind};
use rustc_hash::FxHashMap;
use serde_json::Value;
use thread_local::ThreadLocal;
use unicode_normalization_alignments::{IsNormalized, UnicodeNormalization, is_nfc_quick};

/// Pieces of at most this many bytes are cached; longer ones are rare and merged each time.
const CACHED_PIECE_BYTES: usize = 64;
/// A thread's cache is emptied when it holds this many pieces (tens of MB at most).
const CACHED_PIECES: usize = 1 << 18;

/// Bytes that never occur in UTF-8 (overlong lead bytes and leads past U+10FFFF). Text
/// never reaches their tokens, so a vocabulary may lack them, as several widely used
/// byte-level tokenizers do.
fn never_in_utf8(byte: u8) -> bool {
    matches!(byte, 0xC0 | 0xC1 | 0xF5..=0xFF)
}

pub struct FastBpe {
    /// The token of each byte alone (`u32::MAX` for a byte the vocabulary lacks, which
    /// [`never_in_utf8`] allows).
    byte_ids: [u32; 256],
    /// (left, right) token ids -> (rank, merged id), as `left << 32 | right` -> `rank << 32 | id`.
    merges: FxHashMap<u64, u64>,
    /// Bytes of each token id the merges can produce; 0 for others.
    token_len: Vec<u32>,
    /// `ignore_merges`: a piece that is a whole token is that token.
    whole_pieces: Option<FxHashMap<Box<[u8]>, u32>>,
    nfc: bool,
    add_prefix_space: bool,
    /// Added tokens matched in the raw text, then in the normalized text (HF's order).
    raw_added: Option<AddedTokens>,
    normalized_added: Option<AddedTokens>,
    caches: ThreadLocal<RefCell<PieceCache>>,
}

struct AddedTokens {
    matcher: AhoCorasick,
    ids: Vec<u32>,
}

/// A thread's pieces and their ids. Short pieces (nearly all) are keyed by their bytes
/// packed in a `u128` with their ids inline, so a lookup touches one table slot.
struct PieceCache {
    /// The most recent short piece at each slot of its hash: small enough to stay in
    /// the core's cache, where the frequent pieces (most of a text) are found.
    hot: Box<[(u128, ShortIds)]>,
    short: FxHashMap<u128, ShortIds>,
    /// Longer pieces, and short ones of more than [`SHORT_IDS`] tokens.
    long: FxHashMap<Box<[u8]>, Box<[u32]>>,
    merge: MergeScratch,
}

impl Default for PieceCache {
    fn default() -> PieceCache {
        let empty = (0, ShortIds { ids: [0; SHORT_IDS], len: 0 });
        PieceCache {
            hot: vec![empty; 1 << HOT_BITS].into_boxed_slice(),
            short: FxHashMap::default(),
            long: FxHashMap::default(),
            merge: MergeScratch::default(),
        }
    }
}

/// 65536 hot slots of 32 bytes: 2 MiB.
const HOT_BITS: u32 = 16;
const SHORT_PIECE_BYTES: usize = 15;
const SHORT_IDS: usize = 3;

#[derive(Clone, Copy)]
struct ShortIds {
    ids: [u32; SHORT_IDS],
    /// How many of `ids` are used; more than [`SHORT_IDS`]: the ids are in `long`.
    len: u8,
}

impl ShortIds {
    /// Appends the ids. All [`SHORT_IDS`] are copied and the unused cut off: a copy of a
    /// fixed size is a few moves, where one of `len` ids was a call to `memcpy`.
    #[inline(always)]
    fn push_to(&self, ids: &mut Vec<u32>) {
        let len = ids.len() + self.len as usize;
        ids.extend_from_slice(&self.ids);
        ids.truncate(len);
    }
}

/// The merge loop's buffers, kept between pieces.
#[derive(Default)]
struct MergeScratch {
    ids: Vec<u32>,
    next: Vec<u32>,
    prev: Vec<u32>,
    removed: Vec<bool>,
    /// (rank, position, merged id), lowest rank and then leftmost first.
    queue: BinaryHeap<Reverse<(u32, u32, u32)>>,
}

/// Where a token ends in the encoded text, for each token (a byte offset).
pub type TokenEnds = Vec<usize>;

impl FastBpe {
    /// The fast encoder for a tokenizer.json, or why it cannot encode it exactly as HF does.
    pub fn from_json(bytes: &[u8]) -> Result<FastBpe, String> {
        let json: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        for setting in ["truncation", "padding"] {
            if !json[setting].is_null() {
                return Err(format!("it sets {setting}"));
            }
        }
        let nfc = match &json["normalizer"] {
            Value::Null => false,
            n if n["type"] == "NFC" => true,
            n if n["type"] == "Sequence" => match n["normalizers"].as_array().map(Vec::as_slice) {
                Some([]) => false,
                Some([one]) if one["type"] == "NFC" => true,
                _ => return Err(format!("its normalizer is {n}")),
            },
            n => return Err(format!("its normalizer is {n}")),
        };
        let pre_tokenizer = match &json["pre_tokenizer"] {
            p if p["type"] == "Sequence" => match p["pretokenizers"].as_array().map(Vec::as_slice) {
                Some([one]) => one,
                _ => return Err(format!("its pre-tokenizer is {p}")),
            },
            p => p,
        };
        if pre_tokenizer["type"] != "ByteLevel" || pre_tokenizer["use_regex"] == false {
            return Err(format!("its pre-tokenizer is {pre_tokenizer}, not ByteLevel with GPT-2's split"));
        }
        let add_prefix_space = pre_tokenizer["add_prefix_space"] == true;

        let model = &json["model"];
        if !(model["type"] == "BPE" || model["type"].is_null()) {
            return Err(format!("its model is {}, not BPE", model["type"]));
        }
        if !(model["dropout"].is_null() || model["dropout"] == 0.0) {
            return Err("its BPE has dropout".into());
        }
        for affix in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if !(model[affix].is_null() || model[affix] == "") {
                return Err(format!("its BPE sets {affix}"));
            }
        }
        let vocab: FxHashMap<&str, u32> = model["vocab"]
            .as_object()
            .ok_or("its BPE has no vocabulary")?
            .iter()
            .map(|(token, id)| Ok((token.as_str(), id.as_u64().and_then(|i| u32::try_from(i).ok()).ok_or("bad id")?)))
            .collect::<Result<_, &str>>()?;

        let char_byte = char_bytes();
        let mut byte_ids = [u32::MAX; 256];
        for (byte, id) in (0..=u8::MAX).zip(byte_ids.iter_mut()) {
            match vocab.get(BYTE_CHARS[byte as usize].to_string().as_str()) {
                Some(&token) => *id = token,
                None if never_in_utf8(byte) => {}
                None => return Err(format!("its vocabulary lacks the byte {byte:#04x}")),
            }
        }
        let max_id = vocab.values().copied().max().unwrap_or(0) as usize;
        let mut token_len = vec![0u32; max_id + 1];
        let mut whole_pieces = (model["ignore_merges"] == true).then(FxHashMap::default);
        for (&token, &id) in &vocab {
            let bytes: Option<Vec<u8>> = token.chars().map(|c| char_byte.get(&c).copied()).collect();
            if let Some(bytes) = bytes {
                token_len[id as usize] = bytes.len() as u32;
                if let Some(whole) = &mut whole_pieces {
                    whole.insert(bytes.into_boxed_slice(), id);
                }
            }
        }

        let mut merges = FxHashMap::default();
        let lines = model["merges"].as_array().ok_or("its BPE has no merges")?;
        for (rank, line) in lines.iter().enumerate() {
            let (left, right) = match line {
                Value::String(s) => s.split_once(' ').ok_or_else(|| format!("bad merge `{s}`"))?,
                Value::Array(pair) => match pair.as_slice() {
                    [Value::String(a), Value::String(b)] => (a.as_str(), b.as_str()),
                    _ => return Err(format!("bad merge {line}")),
                },
                _ => return Err(format!("bad merge {line}")),
            };
            let id = |token: &str| vocab.get(token).copied().ok_or_else(|| format!("merge token `{token}` is unknown"));
            let merged = id(&format!("{left}{right}"))?;
            // A later duplicate replaces an earlier one, as in HF's merge map.
            merges.insert((id(left)? as u64) << 32 | id(right)? as u64, (rank as u64) << 32 | merged as u64);
        }

        let (mut raw, mut normalized) = (Vec::new(), Vec::new());
        for token in json["added_tokens"].as_array().into_iter().flatten() {
            let content = token["content"].as_str().ok_or("an added token has no content")?;
            for flag in ["single_word", "lstrip", "rstrip"] {
                if token[flag] == true {
                    return Err(format!("added token `{content}` sets {flag}"));
                }
            }
            let id = token["id"].as_u64().and_then(|i| u32::try_from(i).ok()).ok_or("an added token has no id")?;
            if content.is_empty() {
                continue;
            }
            if token["normalized"] == false {
                raw.push((content.to_owned(), id));
            } else {
                let content = if nfc { content.nfc().map(|(c, _)| c).collect() } else { content.to_owned() };
                normalized.push((content, id));
            }
        }
        Ok(FastBpe {
            byte_ids,
            merges,
            token_len,
            whole_pieces,
            nfc,
            add_prefix_space,
            raw_added: AddedTokens::new(raw)?,
            normalized_added: AddedTokens::new(normalized)?,
            caches: ThreadLocal::new(),
        })
    }

    /// Whether [`FastBpe::encode`] can place token ends in `text` exactly: it can unless
    /// normalization changes the text.
    pub fn exact_ends(&self, text: &str) -> bool {
        !self.nfc || is_nfc_quick(text.chars()) == IsNormalized::Yes
    }

    /// Appends the ids of `text` to `ids` and, when asked, where each token ends in `text`.
    pub fn encode(&self, text: &str, ids: &mut Vec<u32>, mut ends: Option<&mut TokenEnds>) {
        let mut cache = self.caches.get_or_default().borrow_mut();
        for (start, end, added) in AddedTokens::split(self.raw_added.as_ref(), text) {
            if let Some(id) = added {
                push(ids, &mut ends, id, end);
                continue;
            }
            let segment = &text[start..end];
            let normalized = if self.nfc && !self.exact_ends(segment) {
                std::borrow::Cow::Owned(segment.nfc().map(|(c, _)| c).collect::<String>())
            } else {
                std::borrow::Cow::Borrowed(segment)
            };
            for (from, to, added) in AddedTokens::split(self.normalized_added.as_ref(), &normalized) {
                // Offsets of a normalized segment that changed are approximate; callers
                // that need them check `exact_ends` first.
                let at = |offset: usize| (start + offset).min(end);
                if let Some(id) = added {
                    push(ids, &mut ends, id, at(to));
                    continue;
                }
                let part = &normalized[from..to];
                if self.add_prefix_space && !part.starts_with(' ') {
                    let prefixed = format!(" {part}");
                    self.encode_part(&prefixed, &mut cache, ids, &mut ends, |o| at(from + o.saturating_sub(1)));
                } else {
                    self.encode_part(part, &mut cache, ids, &mut ends, |o| at(from + o));
                }
            }
        }
    }

    /// Pre-tokenizes `part` and merges each piece; `place` maps an offset in `part` to
    /// one in the caller's text.
    fn encode_part(
        &self,
        part: &str,
        cache: &mut PieceCache,
        ids: &mut Vec<u32>,
        ends: &mut Option<&mut TokenEnds>,
        place: impl Fn(usize) -> usize,
    ) {
        for (start, end) in pieces(part) {
            let first = ids.len();
            self.piece(part.as_bytes(), start, end, cache, ids);
            if let Some(ends) = ends {
                let mut at = start;
                for &id in &ids[first..] {
                    at += self.token_len[id as usize] as usize;
                    ends.push(place(at));
                }
            }
        }
    }

    /// The ids of the piece `text[start..end]`, from the cache or merged.
    fn piece(&self, text: &[u8], start: usize, end: usize, cache: &mut PieceCache, ids: &mut Vec<u32>) {
        let piece = &text[start..end];
        if let [byte] = piece {
            ids.push(self.byte_ids[*byte as usize]);
            return;
        }
        if piece.len() <= SHORT_PIECE_BYTES {
            // The piece's bytes and, in the top byte, its length (never 0: at least 2).
            let bytes = match text.get(start..start + 16) {
                Some(window) => u128::from_le_bytes(window.try_into().expect("16 bytes")),
                None => {
                    let mut window = [0u8; 16];
                    window[..piece.len()].copy_from_slice(piece);
                    u128::from_le_bytes(window)
                }
            };
            let key = bytes & ((1u128 << (8 * piece.len())) - 1) | (piece.len() as u128) << 120;
            let slot =
                ((key as u64 ^ (key >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - HOT_BITS)) as usize;
            let (hot_key, hot) = cache.hot[slot];
            if hot_key == key {
                hot.push_to(ids);
                return;
            }
            match cache.short.get(&key) {
                Some(&known) if known.len as usize <= SHORT_IDS => {
                    known.push_to(ids);
                    cache.hot[slot] = (key, known);
                    return;
                }
                Some(_) => return self.cached_long(piece, cache, ids),
                None => {}
            }
            let first = ids.len();
            self.cached_long(piece, cache, ids);
            let merged = &ids[first..];
            let mut short = ShortIds { ids: [0; SHORT_IDS], len: merged.len().min(u8::MAX as usize) as u8 };
            if merged.len() <= SHORT_IDS {
                short.ids[..merged.len()].copy_from_slice(merged);
            }
            if cache.short.len() >= CACHED_PIECES {
                cache.short.clear();
            }
            cache.short.insert(key, short);
            if merged.len() <= SHORT_IDS {
                cache.hot[slot] = (key, short);
            }
        } else if piece.len() <= CACHED_PIECE_BYTES {
            self.cached_long(piece, cache, ids);
        } else {
            self.merge(piece, &mut cache.merge, ids);
        }
    }

    fn cached_long(&self, piece: &[u8], cache: &mut PieceCache, ids: &mut Vec<u32>) {
        if let Some(known) = cache.long.get(piece) {
            ids.extend_from_slice(known);
            return;
        }
        let first = ids.len();
        self.merge(piece, &mut cache.merge, ids);
        if ids.len() - first > SHORT_IDS || piece.len() > SHORT_PIECE_BYTES {
            if cache.long.len() >= CACHED_PIECES {
                cache.long.clear();
            }
            cache.long.insert(piece.into(), ids[first..].into());
        }
    }

    fn merge_of(&self, left: u32, right: u32) -> Option<(u32, u32)> {
        self.merges.get(&((left as u64) << 32 | right as u64)).map(|&m| ((m >> 32) as u32, m as u32))
    }

    /// HF's merge loop: the pair of lowest rank merges first, leftmost on ties; an entry
    /// whose pair has changed since it was queued is skipped.
    fn merge(&self, piece: &[u8], s: &mut MergeScratch, out: &mut Vec<u32>) {
        if let Some(whole) = &self.whole_pieces
            && let Some(&id) = whole.get(piece)
        {
            out.push(id);
            return;
        }
        let n = piece.len();
        s.ids.clear();
        s.ids.extend(piece.iter().map(|&b| self.byte_ids[b as usize]));
        s.next.clear();
        s.next.extend(1..=n as u32);
        s.prev.clear();
        s.prev.extend((0..n as u32).map(|i| i.wrapping_sub(1)));
        s.removed.clear();
        s.removed.resize(n, false);
        s.queue.clear();
        for i in 0..n - 1 {
            if let Some((rank, id)) = self.merge_of(s.ids[i], s.ids[i + 1]) {
                s.queue.push(Reverse((rank, i as u32, id)));
            }
        }
        while let Some(Reverse((_, pos, id))) = s.queue.pop() {
            let pos = pos as usize;
            let next = s.next[pos] as usize;
            if s.removed[pos] || next >= n || self.merge_of(s.ids[pos], s.ids[next]).map(|m| m.1) != Some(id) {
                continue;
            }
            s.ids[pos] = id;
            s.removed[next] = true;
            let after = s.next[next];
            s.next[pos] = after;
            if (after as usize) < n {
                s.prev[after as usize] = pos as u32;
                if let Some((rank, id)) = self.merge_of(id, s.ids[after as usize]) {
                    s.queue.push(Reverse((rank, pos as u32, id)));
                }
            }
            let before = s.prev[pos];
            if (before as usize) < n
                && let Some((rank, id)) = self.merge_of(s.ids[before as usize], s.ids[pos])
            {
                s.queue.push(Reverse((rank, before, id)));
            }
        }
        let mut at = 0;
        while at < n {
            out.push(s.ids[at]);
            at = s.next[at] as usize;
        }
    }
}

fn push(ids: &mut Vec<u32>, ends: &mut Option<&mut TokenEnds>, id: u32, end: usize) {
    ids.push(id);
    if let Some(ends) = ends {
        ends.push(end);
    }
}

impl AddedTokens {
    fn new(tokens: Vec<(String, u32)>) -> Result<Option<AddedTokens>, String> {
        if tokens.is_empty() {
            return Ok(None);
        }
        let matcher = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(tokens.iter().map(|(content, _)| content))
            .map_err(|e| format!("cannot match its added tokens: {e}"))?;
        Ok(Some(AddedTokens { matcher, ids: tokens.into_iter().map(|(_, id)| id).collect() }))
    }

    /// `text` as (start, end, added token id) segments; empty segments are left out.
    fn split(tokens: Option<&AddedTokens>, text: &str) -> Vec<(usize, usize, Option<u32>)> {
        let mut segments = Vec::new();
        let mut at = 0;
        if let Some(tokens) = tokens {
            for found in tokens.matcher.find_iter(text) {
                if at < found.start() {
                    segments.push((at, found.start(), None));
                }
                segments.push((found.start(), found.end(), Some(tokens.ids[found.pattern().as_usize()])));
                at = found.end();
            }
        }
        if at < text.len() {
            segments.push((at, text.len(), None));
        }
        segments
    }
}

/// GPT-2's byte alphabet: printable bytes stand for themselves, the others for
/// consecutive code points from U+0100.
static BYTE_CHARS: LazyLock<[char; 256]> = LazyLock::new(|| {
    let mut chars = ['\0'; 256];
    let mut shifted = 0;
    for (byte, c) in chars.iter_mut().enumerate() {
        let printable = matches!(byte, 33..=126 | 161..=172 | 174..=255);
        *c = if printable {
            char::from(byte as u8)
        } else {
            shifted += 1;
            char::from_u32(255 + shifted).expect("below U+0200")
        };
    }
    chars
});

fn char_bytes() -> FxHashMap<char, u8> {
    BYTE_CHARS.iter().enumerate().map(|(byte, &c)| (c, byte as u8)).collect()
}

/// The classes GPT-2's split tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CharClass {
    Letter,
    Number,
    Space,
    Other,
}

/// Every code point's class: a table for the Basic Multilingual Plane, ranges above it.
struct CharClasses {
    bmp: Vec<CharClass>,
    astral: Vec<(u32, u32, CharClass)>,
}

static CLASSES: LazyLock<CharClasses> = LazyLock::new(|| {
    let mut bmp = vec![CharClass::Other; 0x10000];
    let mut astral = Vec::new();
    for (pattern, class) in [(r"\p{L}", CharClass::Letter), (r"\p{N}", CharClass::Number), (r"\s", CharClass::Space)] {
        let hir = regex_syntax::Parser::new().parse(pattern).expect("a Unicode class");
        let HirKind::Class(Class::Unicode(ranges)) = hir.kind() else { unreachable!("{pattern} is a Unicode class") };
        for range in ranges.ranges() {
            let (start, end) = (range.start() as u32, range.end() as u32);
            for c in start..=end.min(0xFFFF) {
                bmp[c as usize] = class;
            }
            if end > 0xFFFF {
                astral.push((start.max(0x10000), end, class));
            }
        }
    }
    astral.sort_unstable_by_key(|&(start, _, _)| start);
    CharClasses { bmp, astral }
});

impl CharClasses {
    #[inline]
    fn of(&self, c: u32) -> CharClass {
        if c < 0x10000 {
            return self.bmp[c as usize];
        }
        match self.astral.binary_search_by(|&(start, end, _)| {
            if end < c {
                std::cmp::Ordering::Less
            } else if start > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        }) {
            Ok(i) => self.astral[i].2,
            Err(_) => CharClass::Other,
        }
    }
}

/// The code point at byte `i` of valid UTF-8, and its length.
#[inline(always)]
fn char_at(s: &[u8], i: usize) -> (u32, usize) {
    let b = s[i] as u32;
    let tail = |k: usize| (s[i + k] & 0x3F) as u32;
    match b {
        0..0x80 => (b, 1),
        0x80..0xE0 => ((b & 0x1F) << 6 | tail(1), 2),
        0xE0..0xF0 => ((b & 0x0F) << 12 | tail(1) << 6 | tail(2), 3),
        _ => ((b & 0x07) << 18 | tail(1) << 12 | tail(2) << 6 | tail(3), 4),
    }
}

/// GPT-2's split of `text` into pieces, as byte ranges: what the regex
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` matches,
/// alternatives tried in that order at each position.
pub fn pieces(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let (s, classes) = (text.as_bytes(), &*CLASSES);
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= s.len() {
            return None;
        }
        let start = at;
        at = piece_end(s, start, classes);
        Some((start, at))
    })
}

#[inline]
fn piece_end(s: &[u8], i: usize, classes: &CharClasses) -> usize {
    let n = s.len();
    let (c, len) = char_at(s, i);
    if c == u32::from(b'\'') && i + 1 < n {
        match (s[i + 1], s.get(i + 2)) {
            (b's' | b't' | b'm' | b'd', _) => return i + 2,
            (b'r' | b'v', Some(b'e')) | (b'l', Some(b'l')) => return i + 3,
            _ => {}
        }
    }
    let class = classes.of(c);
    if class != CharClass::Space {
        return run_end(s, i + len, class, classes);
    }
    if c == u32::from(b' ') && i + 1 < n {
        let (next, next_len) = char_at(s, i + 1);
        let next_class = classes.of(next);
        if next_class != CharClass::Space {
            return run_end(s, i + 1 + next_len, next_class, classes);
        }
    }
    // A run of whitespace: all of it at the end of the text, else all but its last
    // character (which may start the next piece), or the one character.
    let (mut j, mut last) = (i, i);
    while j < n {
        let (c, l) = char_at(s, j);
        if classes.of(c) != CharClass::Space {
            break;
        }
        last = j;
        j += l;
    }
    if j == n || last == i { j } else { last }
}

#[inline(always)]
fn run_end(s: &[u8], mut j: usize, class: CharClass, classes: &CharClasses) -> usize {
    while j < s.len() {
        if s[j] < 0x80 {
            if classes.bmp[s[j] as usize] != class {
                break;
            }
            j += 1;
            continue;
        }
        let (c, l) = char_at(s, j);
        if classes.of(c) != class {
            break;
        }
        j += l;
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<&str> {
        pieces(text).map(|(a, b)| &text[a..b]).collect()
    }

    #[test]
    fn splits_like_the_gpt2_regex() {
        assert_eq!(split("Hello world's 12 cats!!"), ["Hello", " world", "'s", " 12", " cats", "!!"]);
        // A space before an apostrophe joins it; other whitespace does not.
        assert_eq!(split("it 's"), ["it", " '", "s"]);
        assert_eq!(split("it\t's"), ["it", "\t", "'s"]);
        assert_eq!(split("it\u{a0}'s"), ["it", "\u{a0}", "'s"]);
        // Contractions are lower case only.
        assert_eq!(split("IT'S"), ["IT", "'", "S"]);
        // Whitespace runs leave their last character to the next piece, unless at the end.
        assert_eq!(split("a   b\t\tc  "), ["a", "  ", " b", "\t", "\t", "c", "  "]);
        assert_eq!(split("x\n\n  y"), ["x", "\n\n ", " y"]);
        assert_eq!(split("?'s ''s"), ["?'", "s", " ''", "s"]);
        assert_eq!(split("x²³ ٣٤ 𝑥𝑦"), ["x", "²³", " ٣٤", " 𝑥𝑦"]);
        assert_eq!(split(""), Vec::<&str>::new());
    }

    #[test]
    fn byte_alphabet_is_gpt2s() {
        assert_eq!(BYTE_CHARS[b' ' as usize], 'Ġ');
        assert_eq!(BYTE_CHARS[b'\n' as usize], 'Ċ');
        assert_eq!(BYTE_CHARS[b'a' as usize], 'a');
        assert_eq!(BYTE_CHARS[0xAD], '\u{143}');
        assert_eq!(char_bytes().len(), 256);
    }

    #[test]
    fn unsupported_files_say_why() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/tokenizers/gpt2.json");
        let mut json: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        assert!(FastBpe::from_json(&serde_json::to_vec(&json).unwrap()).is_ok());
        json["normalizer"] = serde_json::json!({"type": "Lowercase"});
        let why = FastBpe::from_json(&serde_json::to_vec(&json).unwrap()).err().unwrap();
        assert!(why.contains("normalizer"), "{why}");
        json["normalizer"] = Value::Null;
        json["added_tokens"][0]["lstrip"] = Value::Bool(true);
        let why = FastBpe::from_json(&serde_json::to_vec(&json).unwrap()).err().unwrap();
        assert!(why.contains("lstrip"), "{why}");
        assert!(FastBpe::from_json(b"{}").is_err());
    }
}
