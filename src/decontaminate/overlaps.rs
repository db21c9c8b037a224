//! `benchmark_overlaps(items, ngram, numeric, min_overlap, question, text [, text ...])`: the
//! comparison of decontamination as a SQL function, so that Ballista's executors run it
//! next to the data. `items` is the URL of a Parquet file of benchmark items (benchmark,
//! id, question, answer), which the driver writes once per set of items under a name made
//! from their content; each process builds the index from it once and keeps it. `numeric`
//! says whether n-grams of bare numbers count (`BenchmarkIndex::new`).
//!
//! Each row gives a list of overlaps: the item's number (its row in `items`), n-grams
//! matched, whether the questions are the same, whether the overlap removes the record,
//! and an example. A NULL text counts as absent; the list is empty without overlaps.

use std::sync::{Arc, LazyLock, Mutex};

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanBuilder, ListBuilder, RecordBatch, StringArray, StringBuilder, StructBuilder, UInt32Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::common::{Result as DFResult, ScalarValue, exec_err};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Error, Result};
use crate::lake::{Lake, Location, block_on_own_thread, get_optional, put};
use crate::text::benchmark_index::{BenchmarkIndex, Hit, HitScratch};
use crate::text::texts;

pub const NAME: &str = "benchmark_overlaps";

/// How many indexes a process keeps: one per benchmark set in use.
const CACHED_INDEXES: usize = 4;

/// The columns of the items file, in index order.
pub fn items_schema() -> SchemaRef {
    let text = |name| Field::new(name, DataType::Utf8, false);
    Arc::new(Schema::new(vec![text("benchmark"), text("id"), text("question"), text("answer")]))
}

/// The index of `items` (rows of [`items_schema`]), item numbers in row order.
pub fn index_of(items: &RecordBatch, ngram: usize, numeric: bool) -> Result<BenchmarkIndex> {
    let mut index = BenchmarkIndex::new(ngram, numeric);
    let columns: Vec<_> = (0..4).map(|c| texts(items.column(c))).collect::<Result<_, _>>()?;
    let [benchmark, id, question, answer] =
        <[_; 4]>::try_from(columns).map_err(|_| Error::Internal("benchmark items have four columns".into()))?;
    for (((benchmark, id), question), answer) in benchmark.zip(id).zip(question).zip(answer) {
        index.add(benchmark.unwrap_or(""), id.unwrap_or(""), question.unwrap_or(""), answer.unwrap_or(""));
    }
    index.finish();
    Ok(index)
}

/// Puts `items` in the lake under a name made from their content (written once, never
/// changed, so a process's cached index of that URL stays right); returns the URL.
pub async fn put_items(lake: &Lake, items: &RecordBatch) -> Result<String> {
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, items.schema(), None)?;
    writer.write(items)?;
    writer.close()?;
    let hash = xxhash_rust::xxh3::xxh3_128(&bytes);
    let location = lake.root().join(&format!("_decontaminate/items-{hash:032x}.parquet"));
    if get_optional(&location).await?.is_none() {
        put(&location, bytes).await?;
    }
    Ok(location.url())
}

/// The fields of each overlap in the function's list.
fn overlap_fields() -> Fields {
    Fields::from(vec![
        Field::new("item", DataType::UInt32, false),
        Field::new("matched", DataType::UInt32, false),
        Field::new("question_match", DataType::Boolean, false),
        Field::new("removes", DataType::Boolean, false),
        Field::new("example", DataType::Utf8, false),
    ])
}

/// The list type the function returns.
fn returns() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Struct(overlap_fields()), true)))
}

pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(BenchmarkOverlaps { signature: Signature::variadic_any(Volatility::Immutable) })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct BenchmarkOverlaps {
    signature: Signature,
}

impl ScalarUDFImpl for BenchmarkOverlaps {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DFResult<DataType> {
        if args.len() < 6 {
            return exec_err!("{NAME} takes items, ngram, numeric, min_overlap, question and at least one text");
        }
        Ok(returns())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let constant = |n: usize| match &args.args[n] {
            ColumnarValue::Scalar(value) => Ok(value.clone()),
            ColumnarValue::Array(_) => exec_err!("{NAME}: argument {} must be a constant", n + 1),
        };
        let url = match constant(0)? {
            ScalarValue::Utf8(Some(url)) | ScalarValue::Utf8View(Some(url)) | ScalarValue::LargeUtf8(Some(url)) => url,
            other => return exec_err!("{NAME}: items must be a URL, not {other}"),
        };
        let ngram = match constant(1)?.cast_to(&DataType::UInt64)? {
            ScalarValue::UInt64(Some(n)) if (1..64).contains(&n) => n as usize,
            other => return exec_err!("{NAME}: ngram must be 1 to 63 words, not {other}"),
        };
        let numeric = match constant(2)? {
            ScalarValue::Boolean(Some(numeric)) => numeric,
            other => return exec_err!("{NAME}: numeric must be true or false, not {other}"),
        };
        let min_overlap = match constant(3)?.cast_to(&DataType::Float64)? {
            ScalarValue::Float64(Some(share)) if (0.0..=1.0).contains(&share) => share,
            other => return exec_err!("{NAME}: min_overlap must be 0 to 1, not {other}"),
        };
        let index = cached_index(&url, ngram, numeric).map_err(|e| DataFusionError::External(e.into()))?;
        let arrays = ColumnarValue::values_to_arrays(&args.args[4..])?;
        Ok(ColumnarValue::Array(overlaps(&index, &arrays, min_overlap)?))
    }
}

/// The overlaps of each row: `arrays` are the question, then the texts.
fn overlaps(index: &BenchmarkIndex, arrays: &[ArrayRef], min_overlap: f64) -> DFResult<ArrayRef> {
    let question = as_texts(&arrays[0])?;
    let fields = arrays[1..].iter().map(as_texts).collect::<DFResult<Vec<_>>>()?;
    let item = StructBuilder::from_fields(overlap_fields(), 0);
    let mut out =
        ListBuilder::new(item).with_field(Arc::new(Field::new_list_field(DataType::Struct(overlap_fields()), true)));
    let mut scratch = HitScratch::default();
    let mut texts = Vec::with_capacity(fields.len());
    for row in 0..question.len() {
        texts.clear();
        texts.extend(fields.iter().filter(|f| f.is_valid(row)).map(|f| f.value(row)));
        let question = question.is_valid(row).then(|| question.value(row));
        for (hit, removes) in index.overlaps(&texts, question, min_overlap, &mut scratch) {
            append(out.values(), &hit, removes);
        }
        out.append(true);
    }
    Ok(Arc::new(out.finish()))
}

fn append(item: &mut StructBuilder, hit: &Hit, removes: bool) {
    if let Some(b) = item.field_builder::<UInt32Builder>(0) {
        b.append_value(hit.item);
    }
    if let Some(b) = item.field_builder::<UInt32Builder>(1) {
        b.append_value(hit.matched);
    }
    if let Some(b) = item.field_builder::<BooleanBuilder>(2) {
        b.append_value(hit.question_match);
    }
    if let Some(b) = item.field_builder::<BooleanBuilder>(3) {
        b.append_value(removes);
    }
    if let Some(b) = item.field_builder::<StringBuilder>(4) {
        b.append_value(&hit.example);
    }
    item.append(true);
}

fn as_texts(array: &ArrayRef) -> DFResult<StringArray> {
    let cast = datafusion::arrow::compute::cast(array, &DataType::Utf8)?;
    Ok(cast.as_any().downcast_ref::<StringArray>().cloned().unwrap_or_else(|| StringArray::new_null(array.len())))
}

/// The overlaps of each row of the function's output, as the comparison gives them.
pub fn decode(array: &ArrayRef) -> Result<Vec<Vec<(Hit, bool)>>> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::UInt32Type;
    let lists =
        array.as_list_opt::<i32>().ok_or_else(|| Error::Internal(format!("{NAME} gave {}", array.data_type())))?;
    let items = lists.values().as_struct();
    let (item, matched) = (items.column(0).as_primitive::<UInt32Type>(), items.column(1).as_primitive::<UInt32Type>());
    let (question_match, removes) = (items.column(2).as_boolean(), items.column(3).as_boolean());
    let example: Vec<Option<&str>> = texts(items.column(4))?.collect();
    Ok((0..lists.len())
        .map(|row| {
            let offsets = lists.value_offsets();
            (offsets[row] as usize..offsets[row + 1] as usize)
                .map(|i| {
                    let hit = Hit {
                        item: item.value(i),
                        matched: matched.value(i),
                        question_match: question_match.value(i),
                        example: example[i].unwrap_or_default().to_string(),
                    };
                    (hit, removes.value(i))
                })
                .collect()
        })
        .collect())
}

/// Indexes built in this process: (items URL, n, numeric) -> index, the newest last.
type Cache = Vec<((String, usize, bool), Arc<BenchmarkIndex>)>;

/// The index of the items at `url`, built once per process.
fn cached_index(url: &str, ngram: usize, numeric: bool) -> Result<Arc<BenchmarkIndex>> {
    static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(Default::default);
    let lock = || CACHE.lock().map_err(|_| Error::Internal("the benchmark index cache was poisoned".into()));
    if let Some((_, index)) = lock()?.iter().find(|((u, n, numbers), _)| u == url && *n == ngram && *numbers == numeric)
    {
        return Ok(index.clone());
    }
    let bytes = block_on_own_thread(get_optional(&Location::parse(url)?))?
        .ok_or_else(|| Error::user(format!("{NAME}: no benchmark items at {url}")))?;
    let mut batches = Vec::new();
    for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()? {
        batches.push(batch?);
    }
    let items = datafusion::arrow::compute::concat_batches(&items_schema(), &batches)?;
    let index = Arc::new(index_of(&items, ngram, numeric)?);
    let mut cache = lock()?;
    cache.push(((url.to_string(), ngram, numeric), index.clone()));
    if cache.len() > CACHED_INDEXES {
        cache.remove(0);
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> RecordBatch {
        let column = |values: &[&str]| Arc::new(StringArray::from(values.to_vec())) as ArrayRef;
        let question = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.";
        RecordBatch::try_new(
            items_schema(),
            vec![
                column(&["gsm8k", "gsm8k"]),
                column(&["test-1", "test-2"]),
                column(&[question, "What is two plus two, written as a number and not as a word?"]),
                column(&["Natalia sold 48/2 = 24 clips in May. #### 72", "#### 4"]),
            ],
        )
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_function_gives_what_the_index_gives_from_items_in_the_lake() {
        let lake = Lake::open("memory://overlaps-test").unwrap();
        let items = items();
        let url = put_items(&lake, &items).await.unwrap();
        assert_eq!(put_items(&lake, &items).await.unwrap(), url, "the name follows the content");
        let texts: ArrayRef = Arc::new(StringArray::from(vec![
            Some(
                "Copied: Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. Nice.",
            ),
            None,
            Some("Nothing alike here at all."),
        ]));
        let questions: ArrayRef = Arc::new(StringArray::from(vec![
            None,
            Some("What is two plus two, written as a number and not as a word?"),
            None,
        ]));
        let index = cached_index(&url, 13, false).unwrap();
        let got = decode(&overlaps(&index, &[questions.clone(), texts], 0.5).unwrap()).unwrap();
        let direct = index_of(&items, 13, false).unwrap();
        let mut scratch = HitScratch::default();
        let expected = vec![
            direct.overlaps(&["Copied: Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. Nice."], None, 0.5, &mut scratch),
            direct.overlaps(&[], Some("What is two plus two, written as a number and not as a word?"), 0.5, &mut scratch),
            Vec::new(),
        ];
        assert_eq!(got, expected);
        assert_eq!(got[0].len(), 1, "the copied question is found");
        assert!(got[1][0].0.question_match && got[1][0].1, "the same question removes");
    }

    #[test]
    fn missing_items_are_named() {
        let error =
            cached_index("memory://overlaps-test/_decontaminate/none.parquet", 13, false).unwrap_err().to_string();
        assert!(error.contains("no benchmark items at memory://overlaps-test/_decontaminate/none.parquet"), "{error}");
    }
}
