//! `tokenize_record(tokenizer, eos, encoder, prompt, response, column...)`: a record's
//! encoding as a SQL function, so that Ballista's executors tokenize next to the data.
//! The tokenizer is a tokenizer.json by URL (each process loads it once per URL, EOS and
//! encoder); `prompt` and `response` are the template, and the columns follow in the
//! order of `Template::columns`. It gives the record's tokens (EOS last), how many are
//! prompt, and its rendered text's length in bytes; NULL where a column the template
//! reads is NULL, as `mathlake tokenize` skips those rows.

use std::sync::{Arc, LazyLock, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListBuilder, StructBuilder, UInt32Builder, UInt64Builder};
use datafusion::arrow::datatypes::{DataType, Field, Fields, UInt32Type, UInt64Type};
use datafusion::common::{Result as DFResult, exec_err};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

use super::encoder::{Encoded, Encoder, Engine};
use super::template::Template;
use crate::error::{Error, Result};
use crate::lake::block_on_own_thread;
use crate::text::texts;

pub const NAME: &str = "tokenize_record";

/// How many encoders a process keeps: one per tokenizer in use.
const CACHED_ENCODERS: usize = 4;

fn encoding_fields() -> Fields {
    Fields::from(vec![
        Field::new("tokens", DataType::List(Arc::new(Field::new_list_field(DataType::UInt32, false))), false),
        Field::new("prompt_tokens", DataType::UInt64, false),
        Field::new("text_bytes", DataType::UInt64, false),
    ])
}

pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(TokenizeRecord { signature: Signature::variadic_any(Volatility::Immutable) })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TokenizeRecord {
    signature: Signature,
}

impl ScalarUDFImpl for TokenizeRecord {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DFResult<DataType> {
        if args.len() < 6 {
            return exec_err!("{NAME} takes tokenizer, eos, encoder, prompt, response and the template's columns");
        }
        Ok(DataType::Struct(encoding_fields()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let text = |n: usize| match &args.args[n] {
            ColumnarValue::Scalar(value) if value.is_null() => Ok(None),
            ColumnarValue::Scalar(value) => match value.try_as_str() {
                Some(Some(text)) => Ok(Some(text.to_string())),
                _ => exec_err!("{NAME}: argument {} must be text, not {value}", n + 1),
            },
            ColumnarValue::Array(_) => exec_err!("{NAME}: argument {} must be a constant", n + 1),
        };
        let external = |e: Error| DataFusionError::External(e.into());
        let Some(url) = text(0)? else { return exec_err!("{NAME}: the tokenizer's URL is NULL") };
        let eos = text(1)?;
        let encoder = match text(2)?.as_deref() {
            Some("fast") => Engine::Fast,
            Some("hf") => Engine::Hf,
            Some("auto") | None => Engine::Auto,
            Some(other) => return exec_err!("{NAME}: encoder is auto, fast or hf, not {other}"),
        };
        let template = Template::new(&text(3)?.unwrap_or_default(), &text(4)?.unwrap_or_default()).map_err(external)?;
        let encoder = cached_encoder(&url, eos, encoder).map_err(external)?;
        let arrays = ColumnarValue::values_to_arrays(&args.args[5..])?;
        let rows = arrays[0].len();
        let values: Vec<Vec<Option<&str>>> =
            arrays.iter().map(|a| texts(a).map(Iterator::collect)).collect::<DFResult<_>>()?;
        let encoded = super::encode_rows(&template.columns(), &values, rows, &encoder, &template).map_err(external)?;
        Ok(ColumnarValue::Array(build(encoded)))
    }
}

fn build(encoded: Vec<Option<(Encoded, usize)>>) -> ArrayRef {
    let tokens =
        ListBuilder::new(UInt32Builder::new()).with_field(Arc::new(Field::new_list_field(DataType::UInt32, false)));
    let fields = encoding_fields();
    let mut out = StructBuilder::new(
        fields.clone(),
        vec![Box::new(tokens), Box::new(UInt64Builder::new()), Box::new(UInt64Builder::new())],
    );
    for row in encoded {
        let (ids, prompt, bytes) = match &row {
            Some((e, bytes)) => (e.ids.as_slice(), e.prompt_tokens as u64, *bytes as u64),
            None => (&[][..], 0, 0),
        };
        if let Some(list) = out.field_builder::<ListBuilder<UInt32Builder>>(0) {
            list.values().append_slice(ids);
            list.append(true);
        }
        if let Some(b) = out.field_builder::<UInt64Builder>(1) {
            b.append_value(prompt);
        }
        if let Some(b) = out.field_builder::<UInt64Builder>(2) {
            b.append_value(bytes);
        }
        out.append(row.is_some());
    }
    Arc::new(out.finish())
}

/// Each row's encoding from the function's output, as `encode_rows` gives it.
pub fn decode(array: &ArrayRef) -> Result<Vec<Option<(Encoded, usize)>>> {
    let rows = array.as_struct_opt().ok_or_else(|| Error::Internal(format!("{NAME} gave {}", array.data_type())))?;
    let lists = rows.column(0).as_list::<i32>();
    let ids = lists.values().as_primitive::<UInt32Type>().values();
    let (prompts, bytes) = (rows.column(1).as_primitive::<UInt64Type>(), rows.column(2).as_primitive::<UInt64Type>());
    let offsets = lists.value_offsets();
    Ok((0..rows.len())
        .map(|row| {
            rows.is_valid(row).then(|| {
                let ids = ids[offsets[row] as usize..offsets[row + 1] as usize].to_vec();
                (Encoded { ids, prompt_tokens: prompts.value(row) as usize }, bytes.value(row) as usize)
            })
        })
        .collect())
}

/// Encoders loaded in this process: (URL, EOS, encoder) -> encoder, the newest last.
type Cache = Vec<((String, Option<String>, Engine), Arc<Encoder>)>;

/// The encoder of the tokenizer at `url`, loaded once per process.
fn cached_encoder(url: &str, eos: Option<String>, engine: Engine) -> Result<Arc<Encoder>> {
    static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(Default::default);
    let lock = || CACHE.lock().map_err(|_| Error::Internal("the encoder cache was poisoned".into()));
    let key = (url.to_string(), eos, engine);
    if let Some((_, encoder)) = lock()?.iter().find(|(k, _)| *k == key) {
        return Ok(encoder.clone());
    }
    let encoder = block_on_own_thread(Encoder::load(url, key.1.as_deref(), engine))?;
    let encoder = Arc::new(encoder);
    let mut cache = lock()?;
    cache.push((key, encoder.clone()));
    if cache.len() > CACHED_ENCODERS {
        cache.remove(0);
    }
    Ok(encoder)
}
