//! Writes a stream of record batches into a table's data files: zstd Parquet, row groups
//! cut by size rather than row count (the default 1M rows of long documents would buffer
//! gigabytes), files rolled at a size cap, uploads streamed through object_store's
//! multipart `BufWriter`. Files become part of the table only when a commit lists them.

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::basic::{Compression, Encoding, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use object_store::buffered::BufWriter;

use super::Location;
use super::table::{DataFile, Table};
use crate::error::{Context, Result};

/// Size limits of the files a [`TableWriter`] produces.
#[derive(Debug, Clone, Copy)]
pub struct FileLimits {
    /// A file is closed once it reaches about this many bytes.
    pub max_file_bytes: u64,
    /// A row group is flushed once its estimated encoded size reaches this many bytes.
    pub row_group_bytes: usize,
    /// ... or this many rows, whichever comes first.
    pub row_group_rows: usize,
}

impl Default for FileLimits {
    /// Row groups of 16 MiB: a writer buffers one and a reader loads one per column, so this
    /// sets most of a stage's memory. Measured on the 500 MB benchmark corpus against 64 MiB:
    /// a COPY's peak fell from 331 to 242 MiB and a scan's from 183 to 135 MiB, with ingest
    /// and curation as fast and the files as small.
    fn default() -> Self {
        FileLimits { max_file_bytes: 256 << 20, row_group_bytes: 16 << 20, row_group_rows: 65_536 }
    }
}

/// String columns that repeat a few values (source, split, input): these keep dictionary
/// encoding and statistics; every other string or binary column is long text and gets neither.
const LOW_CARDINALITY: &[&str] = &["source", "split", "subject", "input", "target", "reason"];

pub struct TableWriter {
    table: Table,
    run_id: String,
    schema: SchemaRef,
    props: WriterProperties,
    limits: FileLimits,
    open: Option<OpenFile>,
    files: Vec<DataFile>,
}

struct OpenFile {
    writer: AsyncArrowWriter<BufWriter>,
    relative: String,
    rows: u64,
}

impl TableWriter {
    pub fn new(table: Table, run_id: &str, schema: SchemaRef, limits: FileLimits) -> TableWriter {
        let props = writer_properties(&schema, &limits);
        TableWriter { table, run_id: run_id.to_string(), schema, props, limits, open: None, files: Vec::new() }
    }

    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let file = match &mut self.open {
            Some(file) => file,
            None => {
                let (path, relative) = self.table.data_file_path(&self.run_id, self.files.len());
                let sink = BufWriter::new(self.table.store().clone(), path);
                let writer = AsyncArrowWriter::try_new(sink, self.schema.clone(), Some(self.props.clone()))?;
                self.open.insert(OpenFile { writer, relative, rows: 0 })
            }
        };
        file.writer.write(batch).await.with_context(|| format!("writing {}", file.relative))?;
        file.rows += batch.num_rows() as u64;
        let size = (file.writer.bytes_written() + file.writer.in_progress_size()) as u64;
        if size >= self.limits.max_file_bytes {
            self.close_file().await?;
        }
        Ok(())
    }

    async fn close_file(&mut self) -> Result<()> {
        if let Some(mut file) = self.open.take() {
            file.writer.finish().await.with_context(|| format!("finishing {}", file.relative))?;
            let bytes = file.writer.bytes_written() as u64;
            self.files.push(DataFile { path: file.relative, rows: file.rows, bytes });
        }
        Ok(())
    }

    /// Closes the last file and returns every file written, for a commit to list.
    pub async fn finish(mut self) -> Result<Vec<DataFile>> {
        self.close_file().await?;
        Ok(self.files)
    }
}

/// One Parquet object, not part of any table, written through a multipart upload: it
/// appears whole when [`ParquetFileWriter::finish`] completes, or not at all.
pub struct ParquetFileWriter {
    writer: AsyncArrowWriter<BufWriter>,
    url: String,
}

impl ParquetFileWriter {
    pub fn new(location: &Location, schema: SchemaRef) -> Result<ParquetFileWriter> {
        let sink = BufWriter::new(location.store()?, location.path().clone());
        let props = writer_properties(&schema, &FileLimits::default());
        Ok(ParquetFileWriter { writer: AsyncArrowWriter::try_new(sink, schema, Some(props))?, url: location.url() })
    }

    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).await.with_context(|| format!("writing {}", self.url))
    }

    /// Completes the upload; returns the bytes written.
    pub async fn finish(mut self) -> Result<u64> {
        self.writer.finish().await.with_context(|| format!("finishing {}", self.url))?;
        Ok(self.writer.bytes_written() as u64)
    }
}

fn writer_properties(schema: &SchemaRef, limits: &FileLimits) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        // Level 1: measured on the benchmark corpus, ingest's largest cost dropped by about
        // half against level 3, for 16% more bytes (196 MB instead of 169 MB per 500 MB).
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("1 is a valid zstd level")))
        .set_max_row_group_row_count(Some(limits.row_group_rows))
        .set_max_row_group_bytes(Some(limits.row_group_bytes))
        .set_statistics_truncate_length(Some(64));
    for field in schema.fields() {
        let long = matches!(
            field.data_type(),
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Binary
                | DataType::LargeBinary
                | DataType::BinaryView
        ) && !LOW_CARDINALITY.contains(&field.name().as_str());
        if long {
            let column = ColumnPath::from(field.name().as_str());
            builder = builder
                .set_column_dictionary_enabled(column.clone(), false)
                .set_column_statistics_enabled(column, EnabledStatistics::None);
        }
        // Lists of numbers are token ids: interning every value in a dictionary cost the
        // tokenize stage an eighth of its time. Split into byte streams, the ids' high bytes
        // (zero below 65,536) cost zstd next to nothing: a third less CPU to write the
        // column and half to read it, for 3% more bytes (BENCHMARKS.md, "Tokenize").
        if let DataType::List(item) = field.data_type()
            && item.data_type().is_primitive()
        {
            let column = ColumnPath::new(vec![field.name().clone(), "list".into(), item.name().clone()]);
            builder = builder
                .set_column_dictionary_enabled(column.clone(), false)
                .set_column_encoding(column.clone(), Encoding::BYTE_STREAM_SPLIT)
                .set_column_statistics_enabled(column, EnabledStatistics::None);
        }
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, AsArray, ListArray, StringArray, UInt32Array};
    use datafusion::arrow::buffer::OffsetBuffer;
    use datafusion::arrow::datatypes::{Field, Schema, UInt32Type};
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;

    /// Token ids are split into byte streams and read back as written; long text keeps
    /// plain encoding, a low-cardinality column its dictionary.
    #[test]
    fn token_lists_are_byte_stream_split_and_round_trip() -> Result<()> {
        let ids: Vec<u32> = (0..10_000u32).map(|i| (i * 7_919) % 50_257).collect();
        let tokens = ListArray::new(
            Arc::new(Field::new_list_field(DataType::UInt32, false)),
            OffsetBuffer::new(vec![0i32, 3_000, 10_000].into()),
            Arc::new(UInt32Array::from(ids.clone())),
            None,
        );
        let schema = Arc::new(Schema::new(vec![
            Field::new("text", DataType::Utf8, false),
            Field::new("source", DataType::Utf8, false),
            Field::new("tokens", tokens.data_type().clone(), false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["a long text", "another"])),
                Arc::new(StringArray::from(vec!["cc", "cc"])),
                Arc::new(tokens),
            ],
        )?;
        let mut bytes = Vec::new();
        let mut writer =
            ArrowWriter::try_new(&mut bytes, schema.clone(), Some(writer_properties(&schema, &FileLimits::default())))?;
        writer.write(&batch)?;
        writer.close()?;

        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))?;
        let columns = reader.metadata().row_group(0).columns();
        let encodings = |i: usize| columns[i].encodings().collect::<Vec<_>>();
        assert!(encodings(2).contains(&Encoding::BYTE_STREAM_SPLIT), "{:?}", encodings(2));
        assert!(!encodings(0).contains(&Encoding::RLE_DICTIONARY), "{:?}", encodings(0));
        assert!(encodings(1).contains(&Encoding::RLE_DICTIONARY), "{:?}", encodings(1));
        let read = reader.build()?.next().expect("one batch")?;
        let list = read.column(2).as_list::<i32>();
        assert_eq!(list.value_offsets(), &[0, 3_000, 10_000]);
        assert_eq!(list.values().as_primitive::<UInt32Type>().values().as_ref(), ids.as_slice());
        assert_eq!(read.column(0).len(), 2);
        Ok(())
    }
}
