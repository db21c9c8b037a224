//! Rows to Arrow record batches, in the column order of `schemas/`. A batch is cut at a
//! row count or a text size, whichever comes first, so long documents do not pile up.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, StringArray, StringBuilder};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use super::mapping::Target;
use super::record::{RAW_KEEP, Rejection, Row};
use crate::error::Result;

const BATCH_ROWS: usize = 8192;
const BATCH_BYTES: usize = 16 << 20;

/// Accumulates rows for `documents` or `problems`.
pub struct RowBatch {
    target: Target,
    schema: SchemaRef,
    source: String,
    input: String,
    rows: Vec<Row>,
    bytes: usize,
}

impl RowBatch {
    pub fn new(target: Target, schema: SchemaRef, source: &str) -> RowBatch {
        RowBatch { target, schema, source: source.to_string(), input: String::new(), rows: Vec::new(), bytes: 0 }
    }

    /// The input the next rows come from; call [`RowBatch::take`] first if rows are pending.
    pub fn set_input(&mut self, input: &str) {
        self.input = input.to_string();
    }

    /// Adds a row; returns true when the batch is full.
    pub fn push(&mut self, row: Row) -> bool {
        self.bytes += row.text.len() + row.solution.len() + row.metadata.as_ref().map_or(0, String::len);
        self.rows.push(row);
        self.rows.len() >= BATCH_ROWS || self.bytes >= BATCH_BYTES
    }

    pub fn take(&mut self) -> Result<Option<RecordBatch>> {
        if self.rows.is_empty() {
            return Ok(None);
        }
        let rows = std::mem::take(&mut self.rows);
        self.bytes = 0;
        let n = rows.len();
        let text_bytes: usize = rows.iter().map(|r| r.text.len()).sum();
        let strings = |f: &dyn Fn(&Row) -> Option<&str>| -> ArrayRef {
            let mut b = StringBuilder::with_capacity(n, 16 * n);
            rows.iter().for_each(|r| b.append_option(f(r)));
            Arc::new(b.finish())
        };
        let long = |f: &dyn Fn(&Row) -> &str, bytes: usize| -> ArrayRef {
            let mut b = StringBuilder::with_capacity(n, bytes);
            rows.iter().for_each(|r| b.append_value(f(r)));
            Arc::new(b.finish())
        };
        let id = strings(&|r| Some(&r.id));
        let source = constant(&self.source, n);
        let source_id = strings(&|r| r.source_id.as_deref());
        let metadata = strings(&|r| r.metadata.as_deref());
        let input = constant(&self.input, n);
        let mut position = Int64Builder::with_capacity(n);
        rows.iter().for_each(|r| position.append_value(r.position as i64));
        let position: ArrayRef = Arc::new(position.finish());
        let columns: Vec<ArrayRef> = match self.target {
            Target::Documents => {
                let url = strings(&|r| r.url.as_deref());
                let text = long(&|r| &r.text, text_bytes);
                vec![id, source, source_id, url, text, metadata, input, position]
            }
            Target::Problems => {
                let split = strings(&|r| r.split.as_deref());
                let question = long(&|r| &r.text, text_bytes);
                let solution = long(&|r| &r.solution, rows.iter().map(|r| r.solution.len()).sum());
                let answer = strings(&|r| r.final_answer.as_deref());
                let mut level = Int32Builder::with_capacity(n);
                rows.iter().for_each(|r| level.append_option(r.level));
                let subject = strings(&|r| r.subject.as_deref());
                vec![
                    id,
                    source,
                    split,
                    question,
                    solution,
                    answer,
                    Arc::new(level.finish()),
                    subject,
                    source_id,
                    metadata,
                    input,
                    position,
                ]
            }
        };
        Ok(Some(RecordBatch::try_new(self.schema.clone(), columns)?))
    }
}

/// A column that holds one value in every row (the source, the input).
fn constant(value: &str, rows: usize) -> ArrayRef {
    Arc::new(StringArray::from(vec![value; rows]))
}

/// A record for the quarantine table.
pub struct Quarantined {
    pub id: String,
    pub position: u64,
    pub rejection: Rejection,
    pub raw: Vec<u8>,
    pub raw_bytes: u64,
}

/// Accumulates quarantine rows.
pub struct QuarantineBatch {
    schema: SchemaRef,
    target: String,
    source: String,
    input: String,
    rows: Vec<Quarantined>,
}

impl QuarantineBatch {
    pub fn new(schema: SchemaRef, target: &str, source: &str) -> QuarantineBatch {
        QuarantineBatch { schema, target: target.into(), source: source.into(), input: String::new(), rows: Vec::new() }
    }

    pub fn set_input(&mut self, input: &str) {
        self.input = input.to_string();
    }

    pub fn push(&mut self, mut row: Quarantined) -> bool {
        row.raw.truncate(RAW_KEEP);
        self.rows.push(row);
        self.rows.len() >= 1024
    }

    pub fn take(&mut self) -> Result<Option<RecordBatch>> {
        if self.rows.is_empty() {
            return Ok(None);
        }
        let rows = std::mem::take(&mut self.rows);
        let strings = |f: &dyn Fn(&Quarantined) -> &str| -> ArrayRef {
            let mut b = StringBuilder::new();
            rows.iter().for_each(|r| b.append_value(f(r)));
            Arc::new(b.finish())
        };
        let ints = |f: &dyn Fn(&Quarantined) -> u64| -> ArrayRef {
            let mut b = Int64Builder::new();
            rows.iter().for_each(|r| b.append_value(f(r) as i64));
            Arc::new(b.finish())
        };
        let mut raw = BinaryBuilder::new();
        rows.iter().for_each(|r| raw.append_value(&r.raw));
        let columns: Vec<ArrayRef> = vec![
            strings(&|r| &r.id),
            constant(&self.target, rows.len()),
            constant(&self.source, rows.len()),
            constant(&self.input, rows.len()),
            ints(&|r| r.position),
            strings(&|r| r.rejection.reason.as_str()),
            strings(&|r| &r.rejection.detail),
            Arc::new(raw.finish()),
            ints(&|r| r.raw_bytes),
        ];
        Ok(Some(RecordBatch::try_new(self.schema.clone(), columns)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::record::Reason;
    use crate::lake::schema;

    #[test]
    fn batches_match_the_schema_files() {
        for target in [Target::Documents, Target::Problems] {
            let schema = schema::builtin(target.table()).unwrap().arrow().unwrap();
            let mut batch = RowBatch::new(target, schema.clone(), "src");
            batch.set_input("file:///x.jsonl");
            batch.push(Row {
                id: "a".into(),
                text: "t".into(),
                position: 3,
                split: Some("test".into()),
                ..Row::default()
            });
            let rb = batch.take().unwrap().unwrap();
            assert_eq!(rb.schema(), schema);
            assert_eq!(rb.num_rows(), 1);
            assert!(batch.take().unwrap().is_none());
        }
        let schema = schema::builtin("quarantine").unwrap().arrow().unwrap();
        let mut batch = QuarantineBatch::new(schema.clone(), "documents", "cc");
        let rejection = Rejection { reason: Reason::EmptyText, detail: "text is empty".into() };
        batch.push(Quarantined {
            id: "q".into(),
            position: 1,
            rejection,
            raw: vec![b'x'; RAW_KEEP + 5],
            raw_bytes: 99,
        });
        let rb = batch.take().unwrap().unwrap();
        assert_eq!(rb.schema(), schema);
        assert_eq!(rb.column(7).len(), 1);
    }
}
