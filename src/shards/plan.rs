//! The plan of a build: which records (and how much of each) every sequence holds, from
//! record lengths alone, before any token is read.
//!
//! Per source: records whose id hashes under the validation fraction are held out; the
//! rest are drawn in a seeded shuffle, pass after pass (each pass a new shuffle) until
//! the source's budget is met. CPT cuts the last record to meet the budget exactly; SFT
//! never cuts a record, drops records longer than a row, and fills the budget with
//! whichever records still fit. Then the pieces of every source are put in one order:
//! CPT shuffles them; SFT packs them best-fit into rows and shuffles the rows.

use std::collections::BTreeSet;

use serde::Serialize;

use super::mixture::Mode;
pub use crate::random::{SplitMix, streams};

/// A tokenized record as the plan sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// xxh3-64 of the id.
    pub handle: u64,
    pub tokens: u32,
}

/// Which split a record belongs to: a pure function of seed and id.
pub fn held_out(seed: u64, handle: u64, fraction: f64) -> bool {
    let draw = SplitMix::new(seed, &[streams::HOLD_OUT, handle]).next_u64();
    (draw >> 11) as f64 / (1u64 << 53) as f64 <= fraction && fraction > 0.0
}

/// The first `tokens` tokens of a record, in a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub source: u16,
    pub handle: u64,
    pub tokens: u32,
    /// SFT: the piece opens a new row.
    pub row_start: bool,
}

/// What a source asked for and what the plan drew, per split.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Drawn {
    pub requested_tokens: u64,
    pub available_tokens: u64,
    pub available_records: u64,
    pub emitted_tokens: u64,
    pub emitted_records: u64,
    /// Emitted over available: above 1 is upsampling.
    pub epochs: f64,
    /// SFT records longer than a row, left out.
    pub too_long_records: u64,
}

/// Tokens of the records a mode can use: SFT cannot use records longer than a row.
pub fn usable_tokens(records: &[Record], mode: Mode, row_tokens: usize) -> u64 {
    records.iter().filter(|r| mode == Mode::Cpt || r.tokens as usize <= row_tokens).map(|r| r.tokens as u64).sum()
}

/// Draws `requested` tokens of `records` for source `source`.
pub fn draw(
    records: &[Record],
    requested: u64,
    source: u16,
    mode: Mode,
    row_tokens: usize,
    seed: u64,
) -> (Vec<Piece>, Drawn) {
    let fits = |r: &&Record| mode == Mode::Cpt || r.tokens as usize <= row_tokens;
    let usable: Vec<Record> = records.iter().filter(fits).copied().collect();
    let available = usable_tokens(&usable, mode, row_tokens);
    let mut drawn = Drawn {
        requested_tokens: requested,
        available_tokens: available,
        available_records: usable.len() as u64,
        too_long_records: (records.len() - usable.len()) as u64,
        ..Default::default()
    };
    let mut pieces = Vec::new();
    let mut left = requested;
    let mut pass = 0u64;
    while left > 0 && available > 0 {
        let mut order: Vec<usize> = (0..usable.len()).collect();
        SplitMix::new(seed, &[streams::DRAW, source as u64, pass]).shuffle(&mut order);
        let before = left;
        for i in order {
            let r = usable[i];
            let take = match mode {
                Mode::Cpt => (r.tokens as u64).min(left),
                Mode::Sft if r.tokens as u64 <= left => r.tokens as u64,
                Mode::Sft => continue,
            };
            if take == 0 {
                continue;
            }
            pieces.push(Piece { source, handle: r.handle, tokens: take as u32, row_start: false });
            left -= take;
            if left == 0 {
                break;
            }
        }
        pass += 1;
        if left == before {
            break; // SFT: nothing left that fits the budget.
        }
    }
    drawn.emitted_tokens = requested - left;
    drawn.emitted_records = pieces.len() as u64;
    drawn.epochs = if available > 0 { drawn.emitted_tokens as f64 / available as f64 } else { 0.0 };
    (pieces, drawn)
}

/// Puts the pieces of every source in their final order. CPT: one seeded shuffle (they
/// are then cut into rows as they come). SFT: best-fit decreasing into rows of
/// `row_tokens`, rows shuffled, each row's first piece marked.
pub fn order(mut pieces: Vec<Piece>, mode: Mode, row_tokens: usize, seed: u64) -> Vec<Piece> {
    let mut rng = SplitMix::new(seed, &[streams::ORDER]);
    match mode {
        Mode::Cpt => {
            rng.shuffle(&mut pieces);
            pieces
        }
        Mode::Sft => {
            // Longest first; ties in draw order, so the result depends on nothing else.
            let mut by_length: Vec<usize> = (0..pieces.len()).collect();
            by_length.sort_by_key(|&i| (std::cmp::Reverse(pieces[i].tokens), i));
            let mut rows: Vec<Vec<usize>> = Vec::new();
            // (space left, row): the fullest row that still fits comes first in range().
            let mut open: BTreeSet<(usize, usize)> = BTreeSet::new();
            for i in by_length {
                let need = pieces[i].tokens as usize;
                match open.range((need, 0)..).next().copied() {
                    Some((space, row)) => {
                        open.remove(&(space, row));
                        rows[row].push(i);
                        if space > need {
                            open.insert((space - need, row));
                        }
                    }
                    None => {
                        rows.push(vec![i]);
                        if row_tokens > need {
                            open.insert((row_tokens - need, rows.len() - 1));
                        }
                    }
                }
            }
            rng.shuffle(&mut rows);
            rows.into_iter()
                .flat_map(|row| row.into_iter().enumerate())
                .map(|(k, i)| Piece { row_start: k == 0, ..pieces[i] })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(lengths: &[u32]) -> Vec<Record> {
        lengths.iter().enumerate().map(|(i, &t)| Record { handle: i as u64 + 1, tokens: t }).collect()
    }

    #[test]
    fn cpt_meets_the_budget_exactly_and_upsamples_with_fresh_shuffles() {
        let recs = records(&[10, 20, 30, 40]);
        let (pieces, drawn) = draw(&recs, 250, 0, Mode::Cpt, 16, 7);
        assert_eq!(drawn.emitted_tokens, 250);
        assert_eq!(pieces.iter().map(|p| p.tokens as u64).sum::<u64>(), 250);
        assert!((drawn.epochs - 2.5).abs() < 1e-9);
        // Every record appears twice in the first two passes.
        for r in &recs {
            assert!(pieces[..8].iter().filter(|p| p.handle == r.handle).count() == 2);
        }
        let (again, _) = draw(&recs, 250, 0, Mode::Cpt, 16, 7);
        assert_eq!(pieces, again, "a pure function of the seed");
        let (other, _) = draw(&recs, 250, 0, Mode::Cpt, 16, 8);
        assert_ne!(pieces, other);
    }

    #[test]
    fn sft_never_cuts_and_leaves_out_records_longer_than_a_row() {
        let recs = records(&[5, 9, 12, 30, 7]);
        let (pieces, drawn) = draw(&recs, 40, 3, Mode::Sft, 16, 1);
        assert_eq!(drawn.too_long_records, 1);
        assert!(
            pieces.iter().all(|p| p.tokens != 30 && recs.iter().any(|r| r.handle == p.handle && r.tokens == p.tokens))
        );
        assert!(drawn.emitted_tokens <= 40 && drawn.emitted_tokens >= 40 - 5, "{drawn:?}");
        let ordered = order(pieces.clone(), Mode::Sft, 16, 1);
        assert_eq!(ordered.len(), pieces.len());
        // Rows never overflow.
        let mut row = 0;
        for p in &ordered {
            row = if p.row_start { p.tokens } else { row + p.tokens };
            assert!(row <= 16);
        }
    }

    #[test]
    fn hold_out_takes_about_the_fraction() {
        let held = (0..100_000u64).filter(|&h| held_out(1, h, 0.05)).count();
        assert!((4_700..5_300).contains(&held), "{held}");
        assert_eq!((0..1000u64).filter(|&h| held_out(1, h, 0.0)).count(), 0);
    }
}
