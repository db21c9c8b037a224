//! The benchmark side of decontamination: every word n-gram of every benchmark item (its
//! question followed by its solution, so an n-gram may span the two, as they would in a
//! page that copies the item), and every item's whole question. Benchmarks are small
//! (MATH test is 5,000 items), so the index lives in memory; the training side streams
//! past it.
//!
//! An item of fewer than n words (one of MATH test's 5,000) is indexed whole, as one
//! shorter n-gram, when it has at least [`MIN_WHOLE_ITEM_WORDS`]; shorter ones only match
//! a record with the same question.
//!
//! Asymptote figure code (`[asy]...[/asy]`) is left out of items: its boilerplate
//! (`label("$A$",A,N); label("$B$",B,SW);`) recurs across hundreds of unrelated MATH
//! problems, and with it in, a third of MATH test's items overlapped MATH train.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::text::{Prehashed, WordScratch, for_each_ngram, sequence_hash, word_hashes, words};

/// An item shorter than n words is matched whole only from this many words: a record
/// holding "2 2" is not a copy of the item "2+2?".
pub const MIN_WHOLE_ITEM_WORDS: usize = 8;

/// One benchmark item as the index keeps it.
#[derive(Debug)]
pub struct Item {
    pub benchmark: u32,
    pub id: String,
    /// Its normalized words (question, then solution), to quote matches.
    words: Vec<String>,
    /// Its question's words, to quote a question match.
    question_words: usize,
    /// Distinct n-grams (1 for an item indexed whole).
    pub ngrams: u32,
}

/// Where an n-gram occurs: an item, and the word position of its first occurrence.
#[derive(Debug, Clone, Copy)]
struct Posting {
    item: u32,
    position: u32,
}

/// What one training record shares with one item.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub item: u32,
    /// Distinct n-grams of the item found in the record.
    pub matched: u32,
    /// The record's question equals the item's, word for word.
    pub question_match: bool,
    /// One matched n-gram (or the question), as normalized words.
    pub example: String,
}

#[derive(Debug)]
pub struct BenchmarkIndex {
    ngram: usize,
    pub benchmarks: Vec<String>,
    pub items: Vec<Item>,
    /// n-gram hash -> range of `postings`.
    grams: HashMap<u64, (u32, u32), Prehashed>,
    postings: Vec<Posting>,
    /// Postings as items add them, until `finish` sorts them by n-gram.
    pending: Vec<(u64, Posting)>,
    /// Bit k set: some item is indexed whole with k words.
    whole_lengths: u64,
    /// A bit per value of an n-gram hash's top 24 bits, set when some item has such an
    /// n-gram (2 MiB; the 680,701 n-grams of GSM8K, MATH and MATH500 test set 4% of them).
    filter: Vec<u64>,
    /// Hash of a whole question's words -> items with that question.
    questions: HashMap<u64, Vec<u32>, Prehashed>,
}

/// Buffers reused between training records.
#[derive(Debug, Default)]
pub struct HitScratch {
    words: WordScratch,
    hashes: Vec<u64>,
    /// (item, n-gram hash, posting) of each match.
    matches: Vec<(u32, u64, Posting)>,
}

impl BenchmarkIndex {
    pub fn new(ngram: usize) -> BenchmarkIndex {
        assert!((1..64).contains(&ngram), "n-grams of 1 to 63 words");
        BenchmarkIndex {
            ngram,
            benchmarks: Vec::new(),
            items: Vec::new(),
            grams: HashMap::default(),
            postings: Vec::new(),
            pending: Vec::new(),
            whole_lengths: 0,
            filter: vec![0; (1 << 24) / 64],
            questions: HashMap::default(),
        }
    }

    /// Adds an item: its question and its solution or answer. Call
    /// [`BenchmarkIndex::finish`] after the last.
    pub fn add(&mut self, benchmark: &str, id: &str, question: &str, solution: &str) {
        let benchmark = match self.benchmarks.iter().position(|b| b == benchmark) {
            Some(b) => b as u32,
            None => {
                self.benchmarks.push(benchmark.to_string());
                self.benchmarks.len() as u32 - 1
            }
        };
        let item = self.items.len() as u32;
        let (question, solution) = (without_figures(question), without_figures(solution));
        let mut scratch = WordScratch::default();
        let mut hashes = Vec::new();
        word_hashes(&question, &mut scratch, &mut hashes);
        let question_words = hashes.len();
        if question_words > 0 {
            self.questions.entry(sequence_hash(&hashes)).or_default().push(item);
        }
        word_hashes(&solution, &mut scratch, &mut hashes);
        let mut grams = Vec::new();
        if hashes.len() >= self.ngram {
            for_each_ngram(&hashes, self.ngram, |position, hash| {
                grams.push(hash);
                self.pending.push((hash, Posting { item, position: position as u32 }));
            });
        } else if hashes.len() >= MIN_WHOLE_ITEM_WORDS {
            grams.push(sequence_hash(&hashes));
            self.pending.push((sequence_hash(&hashes), Posting { item, position: 0 }));
            self.whole_lengths |= 1 << hashes.len();
        }
        let mut words = words(&question);
        words.extend(crate::text::words(&solution));
        grams.sort_unstable();
        grams.dedup();
        self.items.push(Item { benchmark, id: id.to_string(), words, question_words, ngrams: grams.len() as u32 });
    }

    /// Sorts the postings by n-gram, once, after the last item; the index answers
    /// [`BenchmarkIndex::hits`] after this.
    pub fn finish(&mut self) {
        let mut keyed = std::mem::take(&mut self.pending);
        keyed.sort_by_key(|(hash, p)| (*hash, p.item, p.position));
        // One posting per (n-gram, item): its first occurrence.
        keyed.dedup_by_key(|(hash, p)| (*hash, p.item));
        self.grams.clear();
        let mut start = 0;
        while start < keyed.len() {
            let hash = keyed[start].0;
            let end = start + keyed[start..].iter().take_while(|(h, _)| *h == hash).count();
            self.grams.insert(hash, (start as u32, (end - start) as u32));
            let (word, bit) = filter_slot(hash);
            self.filter[word] |= bit;
            start = end;
        }
        self.postings.extend(keyed.into_iter().map(|(_, p)| p));
    }

    /// Distinct n-grams in the index.
    pub fn ngrams(&self) -> usize {
        self.grams.len()
    }

    /// The items that the text `fields` of a training record share n-grams with (each
    /// field on its own); `question` is the record's question, compared whole with every
    /// item's.
    pub fn hits(&self, fields: &[&str], question: Option<&str>, scratch: &mut HitScratch) -> Vec<Hit> {
        scratch.matches.clear();
        for text in fields {
            scratch.hashes.clear();
            word_hashes(text, &mut scratch.words, &mut scratch.hashes);
            let mut lookup = |hash: u64| {
                // Most n-grams of a training text are in no item: the filter answers those
                // from 2 MiB that stay in cache, before the map would miss it.
                let (word, bit) = filter_slot(hash);
                if self.filter[word] & bit == 0 {
                    return;
                }
                if let Some(&(first, len)) = self.grams.get(&hash) {
                    for posting in &self.postings[first as usize..(first + len) as usize] {
                        scratch.matches.push((posting.item, hash, *posting));
                    }
                }
            };
            for_each_ngram(&scratch.hashes, self.ngram, |_, hash| lookup(hash));
            let mut lengths = self.whole_lengths;
            while lengths != 0 {
                let length = lengths.trailing_zeros() as usize;
                for_each_ngram(&scratch.hashes, length, |_, hash| lookup(hash));
                lengths &= lengths - 1;
            }
        }
        let mut hits: Vec<Hit> = Vec::new();
        if !scratch.matches.is_empty() {
            scratch.matches.sort_unstable_by_key(|(item, hash, _)| (*item, *hash));
            scratch.matches.dedup_by_key(|(item, hash, _)| (*item, *hash));
            // Per item: how many n-grams, and the earliest one in the item to quote.
            let mut found: Vec<(u32, u32, Posting)> = Vec::new();
            for &(item, _, posting) in &scratch.matches {
                match found.last_mut() {
                    Some((last, matched, first)) if *last == item => {
                        *matched += 1;
                        if posting.position < first.position {
                            *first = posting;
                        }
                    }
                    _ => found.push((item, 1, posting)),
                }
            }
            hits.extend(found.into_iter().map(|(item, matched, first)| Hit {
                item,
                matched,
                question_match: false,
                example: self.quote(first),
            }));
        }
        if let Some(question) = question {
            scratch.hashes.clear();
            word_hashes(question, &mut scratch.words, &mut scratch.hashes);
            let same =
                (!scratch.hashes.is_empty()).then(|| self.questions.get(&sequence_hash(&scratch.hashes))).flatten();
            for &item in same.into_iter().flatten() {
                match hits.iter_mut().find(|h| h.item == item) {
                    Some(hit) => hit.question_match = true,
                    None => {
                        let it = &self.items[item as usize];
                        hits.push(Hit {
                            item,
                            matched: 0,
                            question_match: true,
                            example: it.words[..it.question_words].join(" "),
                        })
                    }
                }
            }
        }
        hits
    }

    fn quote(&self, posting: Posting) -> String {
        let words = &self.items[posting.item as usize].words;
        let start = posting.position as usize;
        words[start..words.len().min(start + self.ngram)].join(" ")
    }
}

/// The word of `BenchmarkIndex::filter` and the bit in it for an n-gram hash.
fn filter_slot(hash: u64) -> (usize, u64) {
    let slot = hash >> 40;
    ((slot / 64) as usize, 1 << (slot % 64))
}

/// `text` without its `[asy]...[/asy]` blocks (an unclosed block runs to the end).
fn without_figures(text: &str) -> Cow<'_, str> {
    if !text.contains("[asy]") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("[asy]") {
        out.push_str(&rest[..start]);
        out.push(' ');
        rest = match rest[start..].find("[/asy]") {
            Some(end) => &rest[start + end + "[/asy]".len()..],
            None => "",
        };
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> BenchmarkIndex {
        let mut index = BenchmarkIndex::new(4);
        index.add("gsm8k", "g1", "Janet's ducks lay 16 eggs per day.", "She sells the rest for $2 each.");
        index.add("math", "m1", "Compute 3+4.", "It is 7.");
        index.add("math", "m2", "Janet's ducks lay 16 eggs per week, how many?", "16/7");
        index.finish();
        index
    }

    #[test]
    fn overlapping_ngrams_are_found_and_quoted() {
        let index = index();
        let mut scratch = HitScratch::default();
        let hits = index.hits(&["Yesterday JANET'S ducks lay 16 eggs per day!"], None, &mut scratch);
        // "janet s ducks lay 16 eggs per day": 5 four-grams, all in g1; "janet s ducks lay"
        // through "lay 16 eggs per" (4) in m2 too.
        assert_eq!(hits.len(), 2);
        assert_eq!((hits[0].item, hits[0].matched), (0, 5));
        assert_eq!((hits[1].item, hits[1].matched), (2, 4));
        assert_eq!(hits[0].example, "janet s ducks lay");
        // 15 words: 12 four-grams, some spanning the question and the solution.
        assert_eq!(index.items[0].ngrams, 12);
        assert_eq!(index.hits(&["eggs per day she sells"], None, &mut scratch)[0].matched, 2);
        assert!(index.hits(&["nothing shared here at all"], None, &mut scratch).is_empty());
        // Fields of a record are compared one by one.
        assert!(index.hits(&["ducks lay", "16 eggs"], None, &mut scratch).is_empty());
    }

    #[test]
    fn questions_match_whole_and_short_items_are_indexed_whole() {
        let index = index();
        let mut scratch = HitScratch::default();
        let hits = index.hits(&["compute 3 + 4", "7"], Some("  COMPUTE 3 + 4 "), &mut scratch);
        assert_eq!(hits, [Hit { item: 1, matched: 0, question_match: true, example: "compute 3 4".into() }]);
        assert!(index.hits(&["compute 3 + 5"], Some("compute 3 + 5"), &mut scratch).is_empty());

        let mut index = BenchmarkIndex::new(13);
        index.add("math", "short", "What is $1^{(2^{235})}$?", "It is $\\boxed{1}$, always.");
        index.add("math", "tiny", "2+2?", "4");
        index.finish();
        assert_eq!(index.items[0].ngrams, 1);
        assert_eq!(index.items[1].ngrams, 0);
        let page = "Forum post: What is $1^{(2^{235})}$? It is $\\boxed{1}$, always. Thanks!";
        let hits = index.hits(&[page], None, &mut scratch);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].example, "what is 1 2 235 it is boxed 1 always");
        assert!(index.hits(&["so 2 + 2 4 as we know"], None, &mut scratch).is_empty());
    }

    #[test]
    fn figure_code_is_not_compared() {
        let figure = "[asy] draw((0,0)--(1,0)); label(\"$A$\",A,N); label(\"$B$\",B,SW); label(\"$C$\",C,SE); [/asy]";
        let mut index = BenchmarkIndex::new(4);
        index.add("math", "m1", &format!("In the triangle below, find angle ABC. {figure} Give degrees."), "It is 30.");
        index.finish();
        let mut scratch = HitScratch::default();
        assert!(index.hits(&[figure], None, &mut scratch).is_empty());
        let hits = index.hits(&["find angle ABC give degrees please"], None, &mut scratch);
        assert_eq!(hits.len(), 1, "the text around the figure joins up");
        assert_eq!(without_figures("a [asy] x [/asy] b [asy] open"), "a   b  ");
    }
}
