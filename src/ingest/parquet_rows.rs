//! Parquet inputs: each row is rendered as a JSON object and then mapped exactly like a
//! JSONL record, so presets, `--map` paths into struct columns, type checks and the
//! metadata of unmapped columns behave the same for both formats.

use std::collections::VecDeque;

use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::parquet::arrow::ParquetRecordBatchStreamBuilder;
use datafusion::parquet::arrow::async_reader::ParquetRecordBatchStream;
use futures::StreamExt;
use indicatif::ProgressBar;
use tokio::runtime::Handle;

use super::inputs::Input;
use super::record::{RawKind, RawRecord};
use crate::error::{Context, Result};
use crate::lake::ParquetReader;

pub struct ParquetRows {
    stream: ParquetRecordBatchStream<ParquetReader>,
    handle: Handle,
    progress: ProgressBar,
    /// Input bytes not yet counted: the file is counted as its row groups are read.
    bytes_per_row: f64,
    row: u64,
    pending: VecDeque<RawRecord>,
    name: String,
}

impl ParquetRows {
    pub fn open(input: &Input, handle: &Handle, progress: &ProgressBar) -> Result<ParquetRows> {
        let store = input.location.store()?;
        let reader = ParquetReader::new(store, input.location.path().clone(), input.size);
        let builder = handle
            .block_on(ParquetRecordBatchStreamBuilder::new(reader))
            .with_context(|| format!("opening Parquet file {}", input.location))?;
        let rows = builder.metadata().file_metadata().num_rows().max(1) as f64;
        let stream = builder.with_batch_size(1024).build()?;
        Ok(ParquetRows {
            stream,
            handle: handle.clone(),
            progress: progress.clone(),
            bytes_per_row: input.size as f64 / rows,
            row: 0,
            pending: VecDeque::new(),
            name: input.location.to_string(),
        })
    }

    fn next_batch(&mut self) -> std::io::Result<bool> {
        let Some(batch) = self.handle.block_on(self.stream.next()) else { return Ok(false) };
        let batch = batch.map_err(|e| std::io::Error::other(format!("{}: {e}", self.name)))?;
        let mut json = Vec::new();
        let mut writer = LineDelimitedWriter::new(&mut json);
        writer
            .write(&batch)
            .and_then(|_| writer.finish())
            .map_err(|e| std::io::Error::other(format!("{}: a column cannot be read as JSON: {e}", self.name)))?;
        for line in json.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            self.row += 1;
            self.pending.push_back(RawRecord {
                position: self.row,
                bytes: line.to_vec(),
                size: line.len() as u64,
                kind: RawKind::Json,
            });
        }
        self.progress.inc((batch.num_rows() as f64 * self.bytes_per_row) as u64);
        Ok(true)
    }
}

impl Iterator for ParquetRows {
    type Item = std::io::Result<RawRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(record) = self.pending.pop_front() {
                return Some(Ok(record));
            }
            match self.next_batch() {
                Ok(true) => continue,
                Ok(false) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
