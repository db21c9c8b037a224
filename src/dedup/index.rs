//! The signature index of a deduplicated table: a lake table with one row for every
//! document dedup has seen, kept or not, holding what a later run needs to check new
//! documents against the old without reading their texts again: the document's keys (its
//! exact hash and its LSH band hashes), the low bytes of its MinHash signature for
//! verification, and its place in ingest order.

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, Int64Builder, ListBuilder, RecordBatch, StringBuilder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Where a document stands in ingest order: its input object, then its position there,
/// then its handle (which only breaks ties). Each cluster keeps its earliest member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    pub input: String,
    pub position: i64,
    pub doc: u64,
}

impl Ord for Place {
    fn cmp(&self, other: &Self) -> Ordering {
        (&self.input, self.position, self.doc).cmp(&(&other.input, other.position, other.doc))
    }
}

impl PartialOrd for Place {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A document as the keys pass saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub id: String,
    pub place: Place,
    /// Its place as one number: the rank of its input among the run's inputs, then its
    /// position; orders as `place` does within one run.
    pub ordinal: u64,
    /// The exact key first, then one per band.
    pub keys: Vec<u64>,
    /// Low bytes of the signature; `None` without words or in exact-only dedup.
    pub signature: Option<Box<[u8]>>,
}

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("doc", DataType::UInt64, false),
        Field::new("input", DataType::Utf8, false),
        Field::new("position", DataType::Int64, false),
        Field::new("keys", DataType::List(Arc::new(Field::new_list_field(DataType::UInt64, false))), false),
        Field::new("signature", DataType::Binary, true),
    ]))
}

/// Index rows of the documents seen, a batch at a time.
pub struct IndexRows {
    schema: SchemaRef,
    ids: StringBuilder,
    docs: UInt64Builder,
    inputs: StringBuilder,
    positions: Int64Builder,
    keys: ListBuilder<UInt64Builder>,
    signatures: BinaryBuilder,
}

impl Default for IndexRows {
    fn default() -> IndexRows {
        let schema = schema();
        let item = match schema.field(4).data_type() {
            DataType::List(item) => item.clone(),
            _ => Arc::new(Field::new_list_field(DataType::UInt64, false)),
        };
        IndexRows {
            schema,
            ids: StringBuilder::new(),
            docs: UInt64Builder::new(),
            inputs: StringBuilder::new(),
            positions: Int64Builder::new(),
            keys: ListBuilder::new(UInt64Builder::new()).with_field(item),
            signatures: BinaryBuilder::new(),
        }
    }
}

impl IndexRows {
    pub fn push(&mut self, seen: &Seen) {
        self.ids.append_value(&seen.id);
        self.docs.append_value(seen.place.doc);
        self.inputs.append_value(&seen.place.input);
        self.positions.append_value(seen.place.position);
        self.keys.values().append_slice(&seen.keys);
        self.keys.append(true);
        self.signatures.append_option(seen.signature.as_deref());
    }

    /// The rows pushed since the last take.
    pub fn take(&mut self) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.ids.finish()),
            Arc::new(self.docs.finish()),
            Arc::new(self.inputs.finish()),
            Arc::new(self.positions.finish()),
            Arc::new(self.keys.finish()),
            Arc::new(self.signatures.finish()),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}
