//! The SQL function library, registered in every session mathlake opens: quality
//! signals, language, math score, problem analysis, the shared text normalization and
//! personal data.
//! `mathlake functions` lists them from the documentation each one carries.
//!
//! Functions never panic on input: a NULL text gives NULL; empty, huge or strange text
//! gives the value its definition implies (see `text/`). One file per family, each with
//! its tests; `library()` puts them together in the order `mathlake functions` shows.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{Result as DFResult, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, DocSection, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;

use crate::text::texts;

mod classify;
mod dedup;
mod metadata;
mod normalize;
mod problems;
mod quality;
mod web;

pub use classify::model as math_score_model;

type Eval = Box<dyn Fn(&[ArrayRef]) -> DFResult<ArrayRef> + Send + Sync>;

/// One SQL function: its name, types, documentation and what it computes per batch.
pub struct Function {
    name: &'static str,
    signature: Signature,
    returns: DataType,
    doc: Documentation,
    eval: Eval,
}

impl Function {
    pub fn name(&self) -> &str {
        self.name
    }

    pub fn doc(&self) -> &Documentation {
        &self.doc
    }
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function").field("name", &self.name).finish()
    }
}

// A function is known by its name: the session holds one of each.
impl PartialEq for Function {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for Function {}
impl Hash for Function {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for Function {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DFResult<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let constant = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let out = (self.eval)(&arrays)?;
        if constant {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.doc)
    }
}

/// Registers every function of the library in `ctx`.
pub fn register(ctx: &SessionContext) {
    for function in udfs() {
        ctx.register_udf(function);
    }
}

/// The functions whose arguments can name the lake's own tables (`url_in_list(url,
/// 'blocklist')`), registered over the library's in a session on `lake`.
pub fn register_for_lake(ctx: &SessionContext, lake: &crate::lake::Lake) {
    ctx.register_udf(ScalarUDF::new_from_impl(web::url_in_list(Some(lake.clone()))));
}

/// The library as DataFusion functions.
pub fn udfs() -> impl Iterator<Item = ScalarUDF> {
    library().into_iter().map(ScalarUDF::new_from_impl)
}

/// Every function of the library, grouped as `mathlake functions` shows them.
pub fn library() -> Vec<Function> {
    [
        quality::functions(),
        classify::functions(),
        problems::functions(),
        dedup::functions(),
        normalize::functions(),
        web::functions(),
        metadata::functions(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn section(label: &'static str, description: &'static str) -> DocSection {
    DocSection { include: true, label, description: Some(description) }
}

fn doc(section: &DocSection, description: &str, syntax: &str) -> Documentation {
    Documentation::builder(section.clone(), description, syntax).build()
}

/// What `name` gives for `args`, for the families' tests.
#[cfg(test)]
fn call(name: &str, args: Vec<ArrayRef>) -> ArrayRef {
    let function = library().into_iter().find(|f| f.name == name).unwrap();
    (function.eval)(&args).unwrap()
}

/// Applies `f` to each non-NULL text; NULL stays NULL.
fn map_text<T, A>(array: &ArrayRef, f: impl Fn(&str) -> Option<T>) -> DFResult<ArrayRef>
where
    A: Array + FromIterator<Option<T>> + 'static,
{
    Ok(Arc::new(texts(array)?.map(|t| t.and_then(&f)).collect::<A>()))
}

/// The last result of a struct-valued function on this thread, with the column it came
/// from. DataFusion 55 pushes `q['field']` down as `get_field(quality_signals(text), ...)`,
/// one copy of the call per field (and common-subexpression elimination leaves field
/// access alone), so the same batch arrives once per field; the memo computes it once.
/// Holding the input keeps its buffers alive, so pointer equality means the same data.
struct BatchMemo(std::cell::RefCell<Option<(ArrayRef, ArrayRef)>>);

impl BatchMemo {
    const fn new() -> Self {
        BatchMemo(std::cell::RefCell::new(None))
    }

    fn get_or_compute(&self, input: &ArrayRef, f: fn(&ArrayRef) -> DFResult<ArrayRef>) -> DFResult<ArrayRef> {
        if let Some((seen, output)) = &*self.0.borrow()
            && seen.to_data().ptr_eq(&input.to_data())
        {
            return Ok(output.clone());
        }
        let output = f(input)?;
        *self.0.borrow_mut() = Some((input.clone(), output.clone()));
        Ok(output)
    }
}

/// Objects a function reads by a URL argument (a model, a URL list), the last few kept.
type Cached<T> = std::sync::Mutex<Vec<(String, Arc<T>)>>;

/// How many objects of each kind a process keeps.
const CACHED_OBJECTS: usize = 4;

/// What `load` makes of the object at `url` (a path, `file://` or `s3://`; `None` when
/// there is none), read once per process and kept in `cache`: on a cluster every executor
/// reads it from where the URL points.
fn read_cached<T>(
    cache: &Cached<T>,
    url: &str,
    load: impl FnOnce(Option<bytes::Bytes>) -> crate::Result<T>,
) -> crate::Result<Arc<T>> {
    let mut cached = cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, object)) = cached.iter().find(|(u, _)| u == url) {
        return Ok(object.clone());
    }
    let location = crate::location::Location::parse(url)?;
    let object = Arc::new(load(crate::location::block_on_own_thread(crate::location::get_optional(&location))?)?);
    cached.push((url.to_string(), object.clone()));
    if cached.len() > CACHED_OBJECTS {
        cached.remove(0);
    }
    Ok(object)
}

/// The value of a constant integer argument (the first row's; SQL passes literals).
fn int_arg(array: &ArrayRef, name: &str) -> DFResult<i64> {
    let ints = datafusion::arrow::compute::cast(array, &DataType::Int64)?;
    match ints.as_primitive::<Int64Type>().iter().next() {
        Some(Some(value)) => Ok(value),
        _ => exec_err!("{name} must be an integer, not NULL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringViewArray};

    #[test]
    fn names_are_unique_and_documented() {
        let functions = library();
        let mut names: Vec<_> = functions.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), functions.len());
        assert!(functions.iter().all(|f| !f.doc.description.is_empty()));
    }

    #[test]
    fn null_empty_huge_and_garbage_text_give_values_not_panics() {
        let huge = "word ".repeat(2_000_000); // 10 MB
        let garbage: String =
            (0..100_000u32).filter_map(|i| char::from_u32(i.wrapping_mul(2_654_435_761) % 0x11_0000)).collect();
        let column: ArrayRef =
            Arc::new(StringViewArray::from(vec![None, Some(""), Some(huge.as_str()), Some(&garbage)]));
        let dir = tempfile::tempdir().expect("a temp folder");
        let list = dir.path().join("list.txt");
        std::fs::write(&list, "example.com\n").expect("written");
        let list = list.to_string_lossy().into_owned();
        for function in library() {
            let args = match function.name {
                "completeness" | "jaccard" | "json_field" => vec![column.clone(), column.clone()],
                "url_in_list" => vec![column.clone(), Arc::new(StringViewArray::from(vec![list.as_str(); 4]))],
                "minhash_bands" => {
                    let ints = |n: i64| Arc::new(Int64Array::from(vec![n; 4])) as ArrayRef;
                    vec![call("minhash", vec![column.clone()]), ints(14), ints(8)]
                }
                "difficulty" => {
                    vec![Arc::new(Int64Array::from(vec![None, Some(-1), Some(0), Some(i64::MAX)])) as ArrayRef]
                }
                _ => vec![column.clone()],
            };
            let out = (function.eval)(&args).unwrap_or_else(|e| panic!("{}: {e}", function.name));
            assert_eq!(out.len(), 4, "{}", function.name);
            if !matches!(function.name, "completeness" | "difficulty") {
                assert!(out.is_null(0), "{} of NULL", function.name);
            }
        }
        let words = call("word_count", vec![column.clone()]);
        assert_eq!(words.as_primitive::<datafusion::arrow::datatypes::Int64Type>().value(2), 2_000_000);
    }
}
