//! Packing pieces into rows of `sequence_length + 1` tokens, and rows into shard files.
//!
//! A shard is an Arrow IPC file (memory-mappable, readable by pyarrow and DataFusion) of
//! rows with four columns:
//! - `tokens`: fixed-size list of `sequence_length + 1` u16 (vocabularies up to 65,536)
//!   or u32;
//! - `loss_mask`: fixed-size list of booleans, one per token: whether it is a target the
//!   loss counts (CPT: every real token; SFT: the response and EOS; padding never);
//! - `doc_starts`: where each record (or the rest of one cut at the previous row's end)
//!   starts in the row, so attention and positions can restart there;
//! - `doc_sources`: the mixture source of each of those segments, by index.
//!
//! Beside the shards, `records.parquet` names the record of every segment (see
//! [`Segments`]), so a row of a shard leads back to its records and, through them, to
//! their source objects.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, FixedSizeListArray, ListArray, PrimitiveArray, RecordBatch, UInt16Array, UInt32Array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt32Type};
use datafusion::arrow::ipc::writer::FileWriter;

use super::mixture::Mode;
use super::plan::Piece;
use crate::error::{Error, Result};

/// Bytes per token in the `tokens` column.
pub fn token_width(vocab_size: u32) -> u8 {
    if vocab_size <= 1 << 16 { 2 } else { 4 }
}

pub fn shard_schema(width: u8, row_tokens: usize) -> SchemaRef {
    let token = if width == 2 { DataType::UInt16 } else { DataType::UInt32 };
    let item = |t: DataType| Arc::new(Field::new_list_field(t, false));
    Arc::new(Schema::new(vec![
        Field::new("tokens", DataType::FixedSizeList(item(token), row_tokens as i32), false),
        Field::new("loss_mask", DataType::FixedSizeList(item(DataType::Boolean), row_tokens as i32), false),
        Field::new("doc_starts", DataType::List(item(DataType::UInt32)), false),
        Field::new("doc_sources", DataType::List(item(DataType::UInt16)), false),
    ]))
}

/// Finished rows, column by column.
#[derive(Debug, Default)]
pub struct Rows {
    tokens: Vec<u32>,
    mask: Vec<bool>,
    starts: Vec<u32>,
    sources: Vec<u16>,
    /// Per segment, like `starts`: its length, its record's id and where in the record it
    /// begins.
    lengths: Vec<u32>,
    ids: Vec<String>,
    record_offsets: Vec<u32>,
    /// Into `starts` / `sources`, one more than there are rows.
    segment_offsets: Vec<usize>,
}

/// The segments of the rows one [`Rows::take`] returned, in row order: which record each
/// holds and which of its tokens.
#[derive(Debug, Default, PartialEq)]
pub struct Segments {
    /// The row of the batch, from 0.
    pub rows: Vec<u32>,
    /// Where the segment starts in its row, and how many tokens it has.
    pub starts: Vec<u32>,
    pub lengths: Vec<u32>,
    pub sources: Vec<u16>,
    pub ids: Vec<String>,
    /// The token of the record it starts at: 0 unless the record was cut at a row end.
    pub record_offsets: Vec<u32>,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.segment_offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first `n` rows as a shard batch, with their segments; the rest stay.
    pub fn take(&mut self, n: usize, schema: &SchemaRef, row_tokens: usize) -> Result<(RecordBatch, Segments)> {
        let n = n.min(self.len());
        let segments = self.segment_offsets[n];
        let tokens: Vec<u32> = self.tokens.drain(..n * row_tokens).collect();
        let mask: Vec<bool> = self.mask.drain(..n * row_tokens).collect();
        let starts: Vec<u32> = self.starts.drain(..segments).collect();
        let sources: Vec<u16> = self.sources.drain(..segments).collect();
        let offsets: Vec<i32> = self.segment_offsets[..=n].iter().map(|&o| o as i32).collect();
        self.segment_offsets = self.segment_offsets[n..].iter().map(|o| o - segments).collect();

        let found = Segments {
            rows: (0..n)
                .flat_map(|row| std::iter::repeat_n(row as u32, (offsets[row + 1] - offsets[row]) as usize))
                .collect(),
            starts: starts.clone(),
            lengths: self.lengths.drain(..segments).collect(),
            sources: sources.clone(),
            ids: self.ids.drain(..segments).collect(),
            record_offsets: self.record_offsets.drain(..segments).collect(),
        };

        let field = |i: usize| match schema.field(i).data_type() {
            DataType::FixedSizeList(f, _) | DataType::List(f) => f.clone(),
            _ => unreachable!("shard_schema's columns are lists"),
        };
        let token_values: ArrayRef = match field(0).data_type() {
            DataType::UInt16 => Arc::new(UInt16Array::from(
                tokens
                    .iter()
                    .map(|&t| u16::try_from(t).map_err(|_| Error::Internal(format!("token {t} is over u16"))))
                    .collect::<Result<Vec<u16>>>()?,
            )),
            _ => Arc::new(PrimitiveArray::<UInt32Type>::from(tokens)),
        };
        let offsets = OffsetBuffer::new(offsets.into());
        let columns: Vec<ArrayRef> = vec![
            Arc::new(FixedSizeListArray::try_new(field(0), row_tokens as i32, token_values, None)?),
            Arc::new(FixedSizeListArray::try_new(
                field(1),
                row_tokens as i32,
                Arc::new(BooleanArray::from(mask)),
                None,
            )?),
            Arc::new(ListArray::try_new(field(2), offsets.clone(), Arc::new(UInt32Array::from(starts)), None)?),
            Arc::new(ListArray::try_new(field(3), offsets, Arc::new(UInt16Array::from(sources)), None)?),
        ];
        Ok((RecordBatch::try_new(schema.clone(), columns)?, found))
    }
}

/// Turns pieces, in plan order, into rows.
pub struct Packer {
    mode: Mode,
    row_tokens: usize,
    pad: u32,
    row: Rows,
    pub rows: Rows,
    /// Real tokens placed, per source.
    pub source_tokens: Vec<u64>,
    /// Of which in the loss.
    pub source_loss_tokens: Vec<u64>,
}

impl Packer {
    /// Rows of `row_tokens`; padding is `pad` (EOS) and never in the loss.
    pub fn new(mode: Mode, row_tokens: usize, pad: u32, sources: usize) -> Packer {
        Packer {
            mode,
            row_tokens,
            pad,
            row: Rows::default(),
            rows: Rows { segment_offsets: vec![0], ..Default::default() },
            source_tokens: vec![0; sources],
            source_loss_tokens: vec![0; sources],
        }
    }

    /// Adds a piece of record `id`: its tokens, of which the first `prompt` are the
    /// template's prompt. CPT trains on every token and cuts pieces at row ends; SFT starts
    /// a row where the plan says and trains on the tokens after the prompt.
    pub fn add(&mut self, piece: &Piece, id: &str, tokens: &[u32], prompt: usize) {
        if self.mode == Mode::Sft && piece.row_start && !self.row.tokens.is_empty() {
            self.finish_row();
        }
        let source = piece.source as usize;
        let mut at = 0;
        while at < tokens.len() {
            if self.row.tokens.len() == self.row_tokens {
                self.finish_row();
            }
            let n = (self.row_tokens - self.row.tokens.len()).min(tokens.len() - at);
            self.row.starts.push(self.row.tokens.len() as u32);
            self.row.sources.push(piece.source);
            self.row.lengths.push(n as u32);
            self.row.ids.push(id.to_string());
            self.row.record_offsets.push(at as u32);
            self.row.tokens.extend_from_slice(&tokens[at..at + n]);
            let loss = match self.mode {
                Mode::Cpt => {
                    self.row.mask.extend(std::iter::repeat_n(true, n));
                    n
                }
                Mode::Sft => {
                    self.row.mask.extend((at..at + n).map(|t| t >= prompt));
                    at + n - prompt.clamp(at, at + n)
                }
            };
            self.source_tokens[source] += n as u64;
            self.source_loss_tokens[source] += loss as u64;
            at += n;
        }
    }

    /// Pads and emits the row in progress, if any.
    pub fn finish(&mut self) {
        if !self.row.tokens.is_empty() {
            self.finish_row();
        }
    }

    fn finish_row(&mut self) {
        let padding = self.row_tokens - self.row.tokens.len();
        self.row.tokens.extend(std::iter::repeat_n(self.pad, padding));
        self.row.mask.extend(std::iter::repeat_n(false, padding));
        self.rows.tokens.append(&mut self.row.tokens);
        self.rows.mask.append(&mut self.row.mask);
        self.rows.starts.append(&mut self.row.starts);
        self.rows.sources.append(&mut self.row.sources);
        self.rows.lengths.append(&mut self.row.lengths);
        self.rows.ids.append(&mut self.row.ids);
        self.rows.record_offsets.append(&mut self.row.record_offsets);
        self.rows.segment_offsets.push(self.rows.starts.len());
    }
}

/// A shard file's bytes: an Arrow IPC file of `batch`.
pub fn shard_bytes(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut writer = FileWriter::try_new(Vec::new(), &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    Ok(writer.into_inner()?)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::UInt16Type;

    use super::*;

    fn piece(source: u16, tokens: u32, row_start: bool) -> Piece {
        Piece { source, handle: 0, tokens, row_start }
    }

    #[test]
    fn cpt_cuts_pieces_at_row_ends_and_marks_each_segment() {
        let mut p = Packer::new(Mode::Cpt, 4, 99, 2);
        p.add(&piece(0, 3, false), "a", &[1, 2, 3], 3);
        p.add(&piece(1, 3, false), "b", &[4, 5, 6], 3);
        p.finish();
        let schema = shard_schema(2, 4);
        let (batch, segments) = p.rows.take(10, &schema, 4).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let tokens = batch.column(0).as_fixed_size_list();
        assert_eq!(tokens.value(0).as_primitive::<UInt16Type>().values(), &[1, 2, 3, 4]);
        assert_eq!(tokens.value(1).as_primitive::<UInt16Type>().values(), &[5, 6, 99, 99]);
        let mask = batch.column(1).as_fixed_size_list();
        let row1: Vec<bool> = mask.value(1).as_boolean().iter().map(Option::unwrap).collect();
        assert_eq!(row1, [true, true, false, false], "CPT trains on every real token, never on padding");
        let starts = batch.column(2).as_list::<i32>();
        assert_eq!(starts.value(0).as_primitive::<UInt32Type>().values(), &[0, 3]);
        assert_eq!(starts.value(1).as_primitive::<UInt32Type>().values(), &[0], "the cut record restarts");
        let sources = batch.column(3).as_list::<i32>();
        assert_eq!(sources.value(1).as_primitive::<UInt16Type>().values(), &[1]);
        assert_eq!((p.source_tokens.as_slice(), p.rows.len()), (&[3u64, 3][..], 0));
        let expected = Segments {
            rows: vec![0, 0, 1],
            starts: vec![0, 3, 0],
            lengths: vec![3, 1, 2],
            sources: vec![0, 1, 1],
            ids: vec!["a".into(), "b".into(), "b".into()],
            record_offsets: vec![0, 0, 1],
        };
        assert_eq!(segments, expected, "record b is cut after its first token and goes on at its second");
    }

    #[test]
    fn sft_keeps_the_template_mask_and_starts_rows_where_told() {
        let mut p = Packer::new(Mode::Sft, 5, 0, 1);
        p.add(&piece(0, 3, true), "q1", &[7, 8, 9], 1);
        p.add(&piece(0, 2, true), "q2", &[10, 11], 1);
        p.finish();
        let (batch, segments) = p.rows.take(1, &shard_schema(4, 5), 5).unwrap();
        assert_eq!((segments.ids, segments.lengths), (vec!["q1".to_string()], vec![3]));
        let mask: Vec<bool> =
            batch.column(1).as_fixed_size_list().value(0).as_boolean().iter().map(Option::unwrap).collect();
        assert_eq!(mask, [false, true, true, false, false]);
        assert_eq!(p.rows.len(), 1, "the second row waits for the next take");
        let (_, segments) = p.rows.take(1, &shard_schema(4, 5), 5).unwrap();
        assert_eq!((segments.rows, segments.ids), (vec![0], vec!["q2".to_string()]), "rows count from each take");
        assert_eq!(p.source_loss_tokens, [3]);
        let bytes = shard_bytes(&batch).unwrap();
        assert_eq!(&bytes[..6], b"ARROW1");
    }
}
