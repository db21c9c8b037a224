//! Parquet inputs: each row becomes the JSON object a JSONL record of the same data would
//! parse to, and is then mapped exactly like one, so presets, `--map` paths into struct
//! columns, type checks and the metadata of unmapped columns behave the same for both
//! formats.
//!
//! String columns, where the long texts are, go straight from their Arrow arrays into
//! the object; only the other columns (numbers, structs, lists) are rendered by Arrow's
//! JSON writer and parsed back. Rendering and reparsing every text was a fifth of a
//! Parquet ingest.

use std::collections::VecDeque;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ParquetRecordBatchStreamBuilder;
use datafusion::parquet::arrow::async_reader::ParquetRecordBatchStream;
use futures::StreamExt;
use indicatif::ProgressBar;
use serde_json::{Map, Value};
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
        let rows = objects(&batch).map_err(|e| std::io::Error::other(format!("{}: {e}", self.name)))?;
        for (i, row) in rows.into_iter().enumerate() {
            self.row += 1;
            self.pending.push_back(match row {
                Some(object) => RawRecord::fields(self.row, object),
                // Its JSON is left to the JSONL path, which quarantines it with serde_json's reason.
                None => {
                    let line = json_lines(&batch.slice(i, 1))
                        .map_err(|e| std::io::Error::other(format!("{}: {e}", self.name)))?;
                    let line = line.trim_ascii_end().to_vec();
                    RawRecord { position: self.row, size: line.len() as u64, bytes: line, kind: RawKind::Json }
                }
            });
        }
        self.progress.inc((batch.num_rows() as f64 * self.bytes_per_row) as u64);
        Ok(true)
    }
}

/// A string column, whichever of Arrow's three layouts it has.
enum Strings<'a> {
    Utf8(&'a datafusion::arrow::array::StringArray),
    LargeUtf8(&'a datafusion::arrow::array::LargeStringArray),
    View(&'a datafusion::arrow::array::StringViewArray),
}

impl<'a> Strings<'a> {
    fn of(array: &'a dyn Array) -> Option<Strings<'a>> {
        match array.data_type() {
            DataType::Utf8 => Some(Strings::Utf8(array.as_string::<i32>())),
            DataType::LargeUtf8 => Some(Strings::LargeUtf8(array.as_string::<i64>())),
            DataType::Utf8View => Some(Strings::View(array.as_string_view())),
            _ => None,
        }
    }

    /// Row `i`, or `None` when it is null (the JSON writer leaves null fields out).
    fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            Strings::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
            Strings::LargeUtf8(a) => a.is_valid(i).then(|| a.value(i)),
            Strings::View(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }
}

/// Each row of `batch` as the JSON object its JSONL rendering parses to; `None` for a row
/// whose rendering serde_json refuses (nested deeper than it allows).
fn objects(batch: &RecordBatch) -> std::result::Result<Vec<Option<Map<String, Value>>>, String> {
    let schema = batch.schema();
    let mut strings = Vec::new();
    let mut others = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        match Strings::of(batch.column(i).as_ref()) {
            Some(column) => strings.push((field.name().as_str(), column)),
            None => others.push(i),
        }
    }
    let mut objects = vec![Some(Map::new()); batch.num_rows()];
    if !others.is_empty() {
        let json = json_lines(&batch.project(&others).map_err(|e| e.to_string())?)?;
        let lines: Vec<_> = json.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
        if lines.len() != objects.len() {
            return Err(format!("{} rows rendered as {} JSON lines", objects.len(), lines.len()));
        }
        for (object, line) in objects.iter_mut().zip(lines) {
            *object = serde_json::from_slice(line).ok();
        }
    }
    for (row, object) in objects.iter_mut().enumerate() {
        let Some(object) = object else { continue };
        for (name, column) in &strings {
            if let Some(value) = column.get(row) {
                object.insert(name.to_string(), Value::String(value.to_string()));
            }
        }
    }
    Ok(objects)
}

/// Arrow's JSONL rendering of `batch`, a line per row.
fn json_lines(batch: &RecordBatch) -> std::result::Result<Vec<u8>, String> {
    let mut json = Vec::new();
    let mut writer = LineDelimitedWriter::new(&mut json);
    writer.write(batch).and_then(|_| writer.finish()).map_err(|e| format!("a column cannot be read as JSON: {e}"))?;
    Ok(json)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        ArrayRef, Int64Array, LargeStringArray, ListArray, StringArray, StringViewArray, StructArray,
    };
    use datafusion::arrow::buffer::OffsetBuffer;
    use datafusion::arrow::datatypes::Field;

    use super::*;

    fn rendered(batch: &RecordBatch) -> Vec<Option<Map<String, Value>>> {
        let json = json_lines(batch).unwrap();
        json.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).ok()).collect()
    }

    #[test]
    fn rows_are_the_objects_their_json_parses_to() {
        let meta = StructArray::from(vec![
            (
                Arc::new(Field::new("kind", DataType::Utf8, true)),
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])) as ArrayRef,
            ),
            (
                Arc::new(Field::new("pass", DataType::Int64, true)),
                Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
            ),
        ]);
        let batch = RecordBatch::try_from_iter(vec![
            ("text", Arc::new(StringArray::from(vec![Some("x = \"1\"\n\\y"), None, Some("é ∑")])) as ArrayRef),
            ("large", Arc::new(LargeStringArray::from(vec!["l1", "l2", "l3"])) as ArrayRef),
            (
                "view",
                Arc::new(StringViewArray::from(vec![Some("a view longer than twelve bytes"), Some("v"), None]))
                    as ArrayRef,
            ),
            ("n", Arc::new(Int64Array::from(vec![Some(7), None, Some(-1)])) as ArrayRef),
            ("metadata", Arc::new(meta) as ArrayRef),
        ])
        .unwrap();
        let rows = objects(&batch).unwrap();
        assert_eq!(rows, rendered(&batch));
        let first = rows[0].as_ref().unwrap();
        assert_eq!(first["text"], "x = \"1\"\n\\y");
        assert_eq!(first["metadata"]["pass"], 1);
        assert!(!rows[1].as_ref().unwrap().contains_key("text"), "a null is left out, as the JSON writer does");
        // Only strings: no JSON is written at all, and the objects are the same.
        let strings = batch.project(&[0, 1, 2]).unwrap();
        assert_eq!(objects(&strings).unwrap(), rendered(&strings));
    }

    #[test]
    fn a_row_nested_deeper_than_serde_json_takes_is_left_to_it() {
        let mut values: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        for _ in 0..130 {
            let field = Arc::new(Field::new("item", values.data_type().clone(), true));
            values = Arc::new(ListArray::new(field, OffsetBuffer::from_lengths([1]), values, None));
        }
        let batch = RecordBatch::try_from_iter(vec![
            ("text", Arc::new(StringArray::from(vec!["t"])) as ArrayRef),
            ("deep", values),
        ])
        .unwrap();
        assert_eq!(objects(&batch).unwrap(), vec![None]);
    }
}
