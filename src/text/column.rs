//! Reading text out of Arrow columns, whatever string type the table stored them as.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result as DFResult, exec_err};

/// The strings of a text column, whatever its string type; NULL columns read as NULLs.
pub fn texts(array: &ArrayRef) -> DFResult<Box<dyn Iterator<Item = Option<&str>> + '_>> {
    Ok(match array.data_type() {
        DataType::Utf8View => Box::new(array.as_string_view().iter()),
        DataType::Utf8 => Box::new(array.as_string::<i32>().iter()),
        DataType::LargeUtf8 => Box::new(array.as_string::<i64>().iter()),
        DataType::Null => Box::new(std::iter::repeat_n(None, array.len())),
        other => return exec_err!("expected text, found {other}"),
    })
}
