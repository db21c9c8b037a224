//! `records.parquet`: the record behind every segment of every shard row, so that SQL can
//! walk from a row a model trained on to the record's id, and from there to the source
//! object it was ingested from (`documents.input` or `problems.input`) and the run that
//! read that object (`mathlake_objects`, `mathlake_versions.run_id`):
//!
//! ```sql
//! SELECT r.id, d.input, v.run_id
//! FROM 'lake/shards/cpt/records.parquet' r
//! JOIN documents d ON d.id = r.id
//! JOIN mathlake_objects o ON o.table_name = 'documents' AND o.url = d.input
//! JOIN mathlake_versions v ON v.table_name = o.table_name AND v.version = o.version
//! WHERE r.split = 'train' AND r.shard = 0 AND r.shard_row = 7
//! ```

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use super::pack::Segments;
use crate::error::Result;
use crate::lake::{Location, ParquetFileWriter};

pub const RECORDS: &str = "records.parquet";

/// The record index as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordIndexFile {
    /// Relative to the shard set's folder.
    pub path: String,
    /// One row per segment of a shard row.
    pub segments: u64,
    pub bytes: u64,
}

/// Writes `records.parquet` as the shards are packed: one row per segment.
pub struct RecordIndex {
    writer: ParquetFileWriter,
    schema: SchemaRef,
    /// The mixture's source names, by index.
    sources: Vec<String>,
    segments: u64,
}

impl RecordIndex {
    pub fn create(set: &Location, sources: Vec<String>) -> Result<RecordIndex> {
        let text = |name: &str| Field::new(name, DataType::Utf8, false);
        let count = |name: &str| Field::new(name, DataType::UInt32, false);
        let schema = Arc::new(Schema::new(vec![
            text("split"),
            // The shard's number in its split: `train-00003.arrow` is 3.
            count("shard"),
            count("shard_row"),
            // The segment's first token in the row, and how many tokens it has.
            count("start"),
            count("tokens"),
            // The mixture source's name.
            text("source"),
            text("id"),
            // The segment's first token in its record: 0 unless a record was cut at a row end.
            count("record_offset"),
        ]));
        let writer = ParquetFileWriter::new(&set.join(RECORDS), schema.clone())?;
        Ok(RecordIndex { writer, schema, sources, segments: 0 })
    }

    /// Adds the segments of shard `shard` of `split`.
    pub async fn write(&mut self, split: &str, shard: usize, segments: Segments) -> Result<()> {
        let n = segments.ids.len();
        let name = |s: &u16| self.sources.get(*s as usize).map_or("", String::as_str);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![split; n])),
            Arc::new(UInt32Array::from(vec![shard as u32; n])),
            Arc::new(UInt32Array::from(segments.rows)),
            Arc::new(UInt32Array::from(segments.starts)),
            Arc::new(UInt32Array::from(segments.lengths)),
            Arc::new(StringArray::from_iter_values(segments.sources.iter().map(name))),
            Arc::new(StringArray::from(segments.ids)),
            Arc::new(UInt32Array::from(segments.record_offsets)),
        ];
        self.segments += n as u64;
        self.writer.write(&RecordBatch::try_new(self.schema.clone(), columns)?).await
    }

    pub async fn finish(self) -> Result<RecordIndexFile> {
        let bytes = self.writer.finish().await?;
        Ok(RecordIndexFile { path: RECORDS.into(), segments: self.segments, bytes })
    }
}
