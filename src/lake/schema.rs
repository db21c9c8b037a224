//! Table schemas. The files in `schemas/` are the source of truth: they are compiled in,
//! turned into Arrow schemas here, and written into every table version so that any
//! table (ours or one a SQL file made) can be read with its schema even when empty.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A table's columns as stored in `schemas/*.json` and in table versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSchema {
    pub table: String,
    #[serde(default)]
    pub doc: String,
    pub fields: Vec<FieldSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
    pub nullable: bool,
    #[serde(default)]
    pub doc: String,
}

/// The lake's own tables, in the order `mathlake tables` lists them.
pub const BUILTIN: [(&str, &str); 5] = [
    ("documents", include_str!("../../schemas/documents.json")),
    ("problems", include_str!("../../schemas/problems.json")),
    ("quarantine", include_str!("../../schemas/quarantine.json")),
    ("synthetic", include_str!("../../schemas/synthetic.json")),
    ("synthesis_cache", include_str!("../../schemas/synthesis_cache.json")),
];

/// The schema of one of the lake's own tables.
pub fn builtin(table: &str) -> Result<TableSchema> {
    let (_, text) = BUILTIN.iter().find(|(name, _)| *name == table).ok_or_else(|| {
        let known: Vec<_> = BUILTIN.iter().map(|(n, _)| *n).collect();
        Error::user(format!("no schema named `{table}`")).hint(format!("known schemas: {}", known.join(", ")))
    })?;
    serde_json::from_str(text).map_err(|e| Error::Internal(format!("schemas/{table}.json: {e}")))
}

impl TableSchema {
    pub fn arrow(&self) -> Result<SchemaRef> {
        let fields = self
            .fields
            .iter()
            .map(|f| Ok(Field::new(&f.name, parse_type(&f.data_type)?, f.nullable)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(Schema::new(fields)))
    }

    /// Describes an Arrow schema (one a SQL statement produced, say) in the same form.
    pub fn from_arrow(table: &str, schema: &Schema) -> Result<TableSchema> {
        let fields = schema
            .fields()
            .iter()
            .map(|f| {
                Ok(FieldSpec {
                    name: f.name().clone(),
                    data_type: type_name(f.data_type())?,
                    nullable: f.is_nullable(),
                    doc: String::new(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TableSchema { table: table.to_string(), doc: String::new(), fields })
    }
}

/// Types are named as in SQL-ish lower case; lists as `list<T>`.
fn parse_type(name: &str) -> Result<DataType> {
    Ok(match name {
        "utf8" => DataType::Utf8,
        "large_utf8" => DataType::LargeUtf8,
        "binary" => DataType::Binary,
        "bool" => DataType::Boolean,
        "int32" => DataType::Int32,
        "int64" => DataType::Int64,
        "uint32" => DataType::UInt32,
        "uint64" => DataType::UInt64,
        "float32" => DataType::Float32,
        "float64" => DataType::Float64,
        other => match other.strip_prefix("list<").and_then(|t| t.strip_suffix('>')) {
            Some(inner) => DataType::new_list(parse_type(inner)?, true),
            None => return Err(Error::user(format!("unknown column type `{other}` in a table schema"))),
        },
    })
}

fn type_name(data_type: &DataType) -> Result<String> {
    Ok(match data_type {
        DataType::Utf8 | DataType::Utf8View => "utf8".into(),
        DataType::LargeUtf8 => "large_utf8".into(),
        DataType::Binary | DataType::BinaryView => "binary".into(),
        DataType::Boolean => "bool".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::UInt32 => "uint32".into(),
        DataType::UInt64 => "uint64".into(),
        DataType::Float32 => "float32".into(),
        DataType::Float64 => "float64".into(),
        DataType::List(f) | DataType::LargeList(f) => format!("list<{}>", type_name(f.data_type())?),
        other => return Err(Error::user(format!("column type {other} cannot be stored in a lake table yet"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_file_loads_and_round_trips() {
        for (name, _) in BUILTIN {
            let schema = builtin(name).unwrap();
            assert_eq!(schema.table, name);
            assert_eq!(schema.fields[0].name, "id", "{name}: id comes first");
            assert!(schema.fields.iter().all(|f| !f.doc.is_empty()), "{name}: every column has a doc");
            let arrow = schema.arrow().unwrap();
            let back = TableSchema::from_arrow(name, &arrow).unwrap();
            assert_eq!(
                back.fields.iter().map(|f| (&f.name, &f.data_type)).collect::<Vec<_>>(),
                schema.fields.iter().map(|f| (&f.name, &f.data_type)).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn unknown_schema_names_the_known_ones() {
        let err = builtin("documnets").unwrap_err();
        assert!(err.hint_text().unwrap().contains("documents"));
        assert!(parse_type("list<int32>").is_ok());
        assert!(parse_type("decimal").is_err());
    }
}
