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
    /// Its n-grams in order, in `BenchmarkIndex::steps`.
    steps: std::ops::Range<usize>,
}

/// One n-gram of an item, in the item's order, with its postings.
#[derive(Debug, Clone, Copy)]
struct Step {
    hash: u64,
    postings: Postings,
}

/// Where an n-gram occurs: an item, and the word position of its first occurrence.
#[derive(Debug, Clone, Copy)]
struct Posting {
    item: u32,
    position: u32,
}

/// The postings of one n-gram. Most n-grams are in one item only; theirs stays in the
/// table's slot, which saves a cache miss on every match.
#[derive(Debug, Clone, Copy)]
enum Postings {
    One(Posting),
    /// A range of `BenchmarkIndex::postings`.
    Many {
        first: u32,
        len: u32,
    },
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
    /// Whether n-grams of bare numbers count (see [`BenchmarkIndex::new`]).
    numeric: bool,
    pub benchmarks: Vec<String>,
    pub items: Vec<Item>,
    /// n-gram hash -> its postings.
    grams: GramTable,
    /// The postings of n-grams in more than one item.
    postings: Vec<Posting>,
    /// Every item's n-grams, item after item.
    steps: Vec<Step>,
    /// Postings as items add them, until `finish` sorts them by n-gram.
    pending: Vec<(u64, Posting)>,
    /// Bit k set: some item is indexed whole with k words.
    whole_lengths: u64,
    /// The n-grams of items, in 2 MiB: the 680,701 of GSM8K, MATH and MATH500 test set 4%
    /// of its bits.
    filter: BitFilter,
    /// The items indexed whole (32 in those benchmarks, of 5 lengths), in 512 bytes: every
    /// run of those lengths in a record is looked up, so their filter must stay in L1.
    whole_filter: BitFilter,
    /// Hashes of the items indexed whole, until `finish`.
    whole_pending: Vec<u64>,
    /// Hash of a whole question's words -> items with that question.
    questions: HashMap<u64, Vec<u32>, Prehashed>,
}

/// Buffers reused between training records.
#[derive(Debug, Default)]
pub struct HitScratch {
    words: WordScratch,
    hashes: Vec<u64>,
    /// A field's n-gram hashes (then its runs of the lengths of items indexed whole), and
    /// the runs that pass their filter.
    grams: Vec<u64>,
    passed: Vec<u64>,
    /// Each match as its posting, `item << 32 | position`: a posting's position is the
    /// first of its n-gram in the item, so distinct postings are distinct (item, n-gram)
    /// pairs, and sorted they come item by item, earliest n-gram first.
    matches: Vec<u64>,
}

impl BenchmarkIndex {
    /// An index of `ngram`-word n-grams. Unless `numeric`, an n-gram counts only when one of
    /// its words has a letter: a run of bare numbers ("1 2 3 ... 13", a table of values) is
    /// shared by pages that copy nothing, and removed clean ones.
    pub fn new(ngram: usize, numeric: bool) -> BenchmarkIndex {
        assert!((1..64).contains(&ngram), "n-grams of 1 to 63 words");
        BenchmarkIndex {
            ngram,
            numeric,
            benchmarks: Vec::new(),
            items: Vec::new(),
            grams: GramTable::with_capacity(0),
            postings: Vec::new(),
            steps: Vec::new(),
            pending: Vec::new(),
            whole_lengths: 0,
            filter: BitFilter::new(24),
            whole_filter: BitFilter::new(12),
            whole_pending: Vec::new(),
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
        let mut words = words(&question);
        words.extend(crate::text::words(&solution));
        // lettered[i]: how many of the first i words have a letter.
        let mut lettered = Vec::with_capacity(words.len() + 1);
        lettered.push(0u32);
        for word in &words {
            lettered.push(lettered[lettered.len() - 1] + u32::from(word.chars().any(char::is_alphabetic)));
        }
        let counts = |start: usize, len: usize| self.numeric || lettered[start + len] > lettered[start];
        let mut grams = Vec::new();
        let first_step = self.steps.len();
        if hashes.len() >= self.ngram {
            for_each_ngram(&hashes, self.ngram, |position, hash| {
                if !counts(position, self.ngram) {
                    return;
                }
                grams.push(hash);
                self.pending.push((hash, Posting { item, position: position as u32 }));
                self.steps.push(Step { hash, postings: Postings::Many { first: 0, len: 0 } });
            });
        } else if hashes.len() >= MIN_WHOLE_ITEM_WORDS && counts(0, hashes.len()) {
            grams.push(sequence_hash(&hashes));
            self.whole_pending.push(sequence_hash(&hashes));
            self.pending.push((sequence_hash(&hashes), Posting { item, position: 0 }));
            self.whole_lengths |= 1 << hashes.len();
        }
        grams.sort_unstable();
        grams.dedup();
        self.items.push(Item {
            benchmark,
            id: id.to_string(),
            words,
            question_words,
            ngrams: grams.len() as u32,
            steps: first_step..self.steps.len(),
        });
    }

    /// Sorts the postings by n-gram, once, after the last item; the index answers
    /// [`BenchmarkIndex::hits`] after this.
    pub fn finish(&mut self) {
        let mut keyed = std::mem::take(&mut self.pending);
        keyed.sort_by_key(|(hash, p)| (*hash, p.item, p.position));
        // One posting per (n-gram, item): its first occurrence.
        keyed.dedup_by_key(|(hash, p)| (*hash, p.item));
        self.postings.clear();
        let groups = keyed.chunk_by(|a, b| a.0 == b.0);
        self.grams = GramTable::with_capacity(groups.clone().count());
        for group in groups {
            let hash = group[0].0;
            let postings = match group {
                [(_, one)] => Postings::One(*one),
                _ => {
                    let first = self.postings.len() as u32;
                    self.postings.extend(group.iter().map(|(_, p)| *p));
                    Postings::Many { first, len: group.len() as u32 }
                }
            };
            self.grams.insert(hash, postings);
            self.filter.insert(hash);
        }
        for hash in std::mem::take(&mut self.whole_pending) {
            self.whole_filter.insert(hash);
        }
        for step in &mut self.steps {
            step.postings = self.grams.get(step.hash).expect("every item's n-gram is in the table");
        }
    }

    /// Distinct n-grams in the index.
    pub fn ngrams(&self) -> usize {
        self.grams.len()
    }

    /// [`hits`](Self::hits), each with whether it removes the record: the record has the
    /// item's question, or at least `min_overlap` of the item's n-grams (any, at 0).
    pub fn overlaps(
        &self,
        fields: &[&str],
        question: Option<&str>,
        min_overlap: f64,
        scratch: &mut HitScratch,
    ) -> Vec<(Hit, bool)> {
        self.hits(fields, question, scratch)
            .into_iter()
            .map(|hit| {
                let total = self.items[hit.item as usize].ngrams;
                let share = if total == 0 { 0.0 } else { hit.matched as f64 / total as f64 };
                let removes = hit.question_match || (hit.matched > 0 && share >= min_overlap);
                (hit, removes)
            })
            .collect()
    }

    /// The items that the text `fields` of a training record share n-grams with (each
    /// field on its own); `question` is the record's question, compared whole with every
    /// item's.
    pub fn hits(&self, fields: &[&str], question: Option<&str>, scratch: &mut HitScratch) -> Vec<Hit> {
        scratch.matches.clear();
        for text in fields {
            scratch.hashes.clear();
            word_hashes(text, &mut scratch.words, &mut scratch.hashes);
            let grams = &mut scratch.grams;
            grams.clear();
            for_each_ngram(&scratch.hashes, self.ngram, |_, hash| grams.push(hash));
            let ngrams = grams.len();
            let mut lengths = self.whole_lengths;
            while lengths != 0 {
                for_each_ngram(&scratch.hashes, lengths.trailing_zeros() as usize, |_, hash| grams.push(hash));
                lengths &= lengths - 1;
            }
            // Most n-grams of a training text are in no item: the filter answers those
            // before the table would miss. A copied item's n-grams come in the item's
            // order, so after a match the next n-gram is first compared with the item's
            // next one, read in sequence, and looked up only when they differ. (A step's
            // postings are its hash's, so whichever item's step matches serves.)
            let mut last: Option<usize> = None;
            for (i, &hash) in grams[..ngrams].iter().enumerate() {
                if let Some(&ahead) = grams.get(i + LOOKAHEAD) {
                    prefetch(self.filter.word(ahead));
                }
                let postings = match last {
                    Some(step) if step + 1 < self.steps.len() && self.steps[step + 1].hash == hash => {
                        last = Some(step + 1);
                        self.steps[step + 1].postings
                    }
                    _ => {
                        last = None;
                        if !self.filter.contains(hash) {
                            continue;
                        }
                        let Some(postings) = self.grams.get(hash) else { continue };
                        let posting = match postings {
                            Postings::One(posting) => posting,
                            Postings::Many { first, .. } => self.postings[first as usize],
                        };
                        last = Some(self.items[posting.item as usize].steps.start + posting.position as usize);
                        postings
                    }
                };
                self.push_matches(postings, &mut scratch.matches);
            }
            // Runs of the lengths of items indexed whole: a filter of 512 bytes, then the
            // table, without a branch per run so that their loads overlap.
            let passed = &mut scratch.passed;
            passed.resize(grams.len() - ngrams, 0);
            let mut kept = 0;
            for &hash in &grams[ngrams..] {
                passed[kept] = hash;
                kept += usize::from(self.whole_filter.contains(hash));
            }
            for (i, &hash) in passed[..kept].iter().enumerate() {
                if let Some(&ahead) = passed[..kept].get(i + LOOKAHEAD) {
                    prefetch(self.grams.home_slot(ahead));
                }
                if let Some(postings) = self.grams.get(hash) {
                    self.push_matches(postings, &mut scratch.matches);
                }
            }
        }
        let mut hits: Vec<Hit> = Vec::new();
        if !scratch.matches.is_empty() {
            scratch.matches.sort_unstable();
            scratch.matches.dedup();
            // Per item: how many n-grams, and the earliest one in the item to quote.
            let mut found: Vec<(u32, u32, Posting)> = Vec::new();
            for &key in &scratch.matches {
                let posting = Posting { item: (key >> 32) as u32, position: key as u32 };
                match found.last_mut() {
                    Some((last, matched, _)) if *last == posting.item => *matched += 1,
                    _ => found.push((posting.item, 1, posting)),
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

    fn push_matches(&self, postings: Postings, matches: &mut Vec<u64>) {
        let key = |p: &Posting| u64::from(p.item) << 32 | u64::from(p.position);
        match postings {
            Postings::One(posting) => matches.push(key(&posting)),
            Postings::Many { first, len } => {
                matches.extend(self.postings[first as usize..(first + len) as usize].iter().map(key))
            }
        }
    }

    fn quote(&self, posting: Posting) -> String {
        let words = &self.items[posting.item as usize].words;
        let start = posting.position as usize;
        words[start..words.len().min(start + self.ngram)].join(" ")
    }
}

/// How many n-grams ahead a lookup's cache line is requested.
const LOOKAHEAD: usize = 16;

/// Asks the CPU to start loading `value`'s cache line. The n-grams of a record are looked
/// up independently, and requested ahead their cache misses overlap instead of queuing.
#[inline(always)]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that reads nothing and cannot fault; the pointer comes
    // from a reference anyway.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// n-gram hash -> postings, open addressing with linear probing, at most 3/4 full. A
/// lookup reads one 16-byte slot (a few neighbours on a collision), whose cache line can be
/// requested ahead; a std map reads its control bytes and then its bucket.
#[derive(Debug)]
struct GramTable {
    slots: Vec<Slot>,
    len: usize,
    /// 64 minus log2 of the slot count: a hash's top bits are its home slot.
    shift: u32,
}

/// An n-gram hash and its postings in 16 bytes: `Postings::One` as (item, position),
/// `Postings::Many` as (`RANGE` | first, len); `a == FREE` marks a free slot.
#[derive(Debug, Clone, Copy)]
struct Slot {
    hash: u64,
    a: u32,
    b: u32,
}

const FREE: u32 = u32::MAX;
const RANGE: u32 = 1 << 31;

impl GramTable {
    fn with_capacity(grams: usize) -> GramTable {
        let size = (grams + grams / 3 + 1).next_power_of_two().max(2);
        GramTable { slots: vec![Slot { hash: 0, a: FREE, b: 0 }; size], len: 0, shift: 64 - size.trailing_zeros() }
    }

    fn home(&self, hash: u64) -> usize {
        (hash >> self.shift) as usize
    }

    fn home_slot(&self, hash: u64) -> &Slot {
        &self.slots[self.home(hash)]
    }

    /// Adds a hash not yet in the table.
    fn insert(&mut self, hash: u64, postings: Postings) {
        let (a, b) = match postings {
            Postings::One(p) if p.item < RANGE => (p.item, p.position),
            Postings::Many { first, len } if first < RANGE - 1 => (RANGE | first, len),
            _ => panic!("an index of 2^31 items or postings"),
        };
        // A free slot must remain, or a lookup of an absent hash would never end.
        assert!(self.len + 1 < self.slots.len(), "the table is sized for its n-grams");
        let mask = self.slots.len() - 1;
        let mut i = self.home(hash);
        while self.slots[i].a != FREE {
            i = (i + 1) & mask;
        }
        self.slots[i] = Slot { hash, a, b };
        self.len += 1;
    }

    fn get(&self, hash: u64) -> Option<Postings> {
        let mask = self.slots.len() - 1; // at least 2 slots, one of them free
        let mut i = self.home(hash);
        loop {
            let slot = self.slots[i];
            if slot.a == FREE {
                return None;
            }
            if slot.hash == hash {
                return Some(match slot.a & RANGE {
                    0 => Postings::One(Posting { item: slot.a, position: slot.b }),
                    _ => Postings::Many { first: slot.a & !RANGE, len: slot.b },
                });
            }
            i = (i + 1) & mask;
        }
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// A bit per value of a hash's top bits, set when some indexed n-gram has them.
#[derive(Debug)]
struct BitFilter {
    words: Vec<u64>,
    shift: u32,
}

impl BitFilter {
    fn new(bits: u32) -> BitFilter {
        BitFilter { words: vec![0; (1 << bits) / 64], shift: 64 - bits }
    }

    fn slot(&self, hash: u64) -> (usize, u64) {
        let slot = hash >> self.shift;
        ((slot / 64) as usize, 1 << (slot % 64))
    }

    fn insert(&mut self, hash: u64) {
        let (word, bit) = self.slot(hash);
        self.words[word] |= bit;
    }

    fn word(&self, hash: u64) -> &u64 {
        &self.words[self.slot(hash).0]
    }

    fn contains(&self, hash: u64) -> bool {
        let (word, bit) = self.slot(hash);
        self.words[word] & bit != 0
    }
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
        let mut index = BenchmarkIndex::new(4, false);
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

        let mut index = BenchmarkIndex::new(13, false);
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

    /// Every n-gram of `text` looked up in the table, as `hits` collects its matches.
    fn looked_up(index: &BenchmarkIndex, text: &str) -> Vec<u64> {
        let mut hashes = Vec::new();
        word_hashes(text, &mut WordScratch::default(), &mut hashes);
        let (mut matches, mut pairs) = (Vec::new(), Vec::new());
        for_each_ngram(&hashes, index.ngram, |_, hash| {
            if let Some(postings) = index.grams.get(hash) {
                let before = matches.len();
                index.push_matches(postings, &mut matches);
                pairs.extend(matches[before..].iter().map(|key| (key >> 32, hash)));
            }
        });
        matches.sort_unstable();
        matches.dedup();
        pairs.sort_unstable();
        pairs.dedup();
        assert_eq!(matches.len(), pairs.len(), "distinct postings are distinct (item, n-gram) pairs");
        matches
    }

    #[test]
    fn matches_found_in_sequence_equal_lookups_on_real_items() {
        // MATH500 items are MATH test items too: their n-grams have two postings each.
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/problems");
        let mut texts = Vec::new();
        let mut index = BenchmarkIndex::new(13, false);
        for (benchmark, file) in [("math500", "math500_test.jsonl"), ("math", "math_test.jsonl")] {
            let lines = std::fs::read_to_string(format!("{data}/{file}")).unwrap();
            for (i, line) in lines.lines().enumerate() {
                let item: serde_json::Value = serde_json::from_str(line).unwrap();
                let (problem, solution) = (item["problem"].as_str().unwrap(), item["solution"].as_str().unwrap());
                index.add(benchmark, &i.to_string(), problem, solution);
                texts.push(format!("{problem} {solution}"));
            }
        }
        index.finish();
        // Records: items whole, an item's second half then another's first, an item twice,
        // and an item with every seventh word dropped.
        let mut records = Vec::new();
        for (i, text) in texts.iter().enumerate().step_by(97) {
            let other = &texts[(i * 31 + 7) % texts.len()];
            records.push(text.clone());
            records.push(format!("{} {}", &text[text.len() / 2..], &other[..other.len() / 2]));
            records.push(format!("{text} intro {text}"));
            let words: Vec<&str> = text.split(' ').collect();
            let dropped: Vec<&str> = words.iter().enumerate().filter(|(k, _)| k % 7 != 3).map(|(_, w)| *w).collect();
            records.push(dropped.join(" "));
        }
        let mut scratch = HitScratch::default();
        let mut matched = 0;
        for record in &records {
            index.hits(&[record], None, &mut scratch);
            let found = scratch.matches.clone();
            assert_eq!(found, looked_up(&index, record));
            matched += found.len();
        }
        assert!(matched > 10_000, "the records share many n-grams with the items: {matched}");
    }

    /// A run of bare numbers shared with an item is no overlap unless asked for; an n-gram
    /// with a word around the numbers still is.
    #[test]
    fn runs_of_bare_numbers_count_only_when_asked() {
        let solution = "The terms are 1 2 3 4 5 6 7 8 9 10 11 12 13 14, so the sum is 105.";
        let counting = "Count along: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16.";
        let copied = "As the solution says, the terms are 1 2 3 4 5 6 7 8 9 10 and more.";
        let mut scratch = HitScratch::default();
        // 29 words, 17 13-grams, two of them ("1 ... 13", "2 ... 14") bare numbers.
        for (numeric, ngrams, counted) in [(false, 15, 0), (true, 17, 2)] {
            let mut index = BenchmarkIndex::new(13, numeric);
            index.add("aime", "a1", "Add the integers from 1 to 14.", solution);
            index.finish();
            assert_eq!(index.items[0].ngrams, ngrams);
            let hits = index.hits(&[counting], None, &mut scratch);
            assert_eq!(hits.iter().map(|h| h.matched).sum::<u32>(), counted, "numeric n-grams {numeric}");
            let hits = index.hits(&[copied], None, &mut scratch);
            assert_eq!((hits.len(), hits[0].matched), (1, 1));
            assert_eq!(hits[0].example, "the terms are 1 2 3 4 5 6 7 8 9 10");
        }
    }

    #[test]
    fn figure_code_is_not_compared() {
        let figure = "[asy] draw((0,0)--(1,0)); label(\"$A$\",A,N); label(\"$B$\",B,SW); label(\"$C$\",C,SE); [/asy]";
        let mut index = BenchmarkIndex::new(4, false);
        index.add("math", "m1", &format!("In the triangle below, find angle ABC. {figure} Give degrees."), "It is 30.");
        index.finish();
        let mut scratch = HitScratch::default();
        assert!(index.hits(&[figure], None, &mut scratch).is_empty());
        let hits = index.hits(&["find angle ABC give degrees please"], None, &mut scratch);
        assert_eq!(hits.len(), 1, "the text around the figure joins up");
        assert_eq!(without_figures("a [asy] x [/asy] b [asy] open"), "a   b  ");
    }
}
