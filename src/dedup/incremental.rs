//! An incremental dedup: the rows the input gained are checked against the signature index
//! of every document seen before, and the output, clusters and index gain rows; nothing old
//! is read again but the index's keys and the clusters.
//!
//! It reaches the tables a full run over everything would, because a full run pairs each
//! document with the earliest document sharing a key and keeps each cluster's earliest
//! member, and a document only ever joins an earlier one: while the new rows come after
//! the old in ingest order, they never change an old pair or an old cluster. Where they
//! would, new rows that sort before old ones (an object whose name sorts before objects
//! already read), the run says so and rebuilds in full.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use indicatif::ProgressBar;
use serde::Deserialize;

use super::index::{self, Place, Seen};
use super::{DedupOptions, DedupReport, SAME_SETTINGS, scan, u64_column, write_kept};
use crate::error::{Error, Result};
use crate::lake::incremental::{self as lake_incremental, Update};
use crate::lake::{CommitMode, Lake, Output, Target, register_table};
use crate::text::minhash::{document, estimated_jaccard};
use crate::text::texts;

const INDEX: &str = "dedup_index";
const CLUSTERS: &str = "dedup_clusters";

/// What the output's last version recorded of the tables beside it.
#[derive(Debug, Deserialize)]
pub struct Recorded {
    index_version: Option<u64>,
    clusters_version: Option<u64>,
    /// The latest document in ingest order it saw.
    last: Option<Place>,
}

/// How to bring the output up to date, and, to append, what it last recorded.
pub async fn decide(
    lake: &Lake,
    options: &DedupOptions,
    details: &serde_json::Value,
) -> Result<(Update, Option<Recorded>)> {
    let (Target::Table(to), Some(Target::Table(clusters)), Some(index)) =
        (&options.to, &options.clusters, &options.index)
    else {
        return Err(Error::Internal("incremental dedup without its tables".into()));
    };
    let update = lake_incremental::update(lake, to, details, SAME_SETTINGS, Some(&options.input)).await?;
    if !matches!(update, Update::Append { .. }) {
        return Ok((update, None));
    }
    let Some(last) = lake.table(to)?.latest().await? else {
        return Ok((Update::Full(format!("`{to}` does not exist yet")), None));
    };
    let recorded: Recorded = serde_json::from_value(last.details).unwrap_or(Recorded {
        index_version: None,
        clusters_version: None,
        last: None,
    });
    for (table, version) in [(index, recorded.index_version), (clusters, recorded.clusters_version)] {
        let now = lake.table(table)?.latest().await?.map(|v| v.version);
        if version.is_none() || now != version {
            return Ok((Update::Full(format!("`{table}` is not the one the last dedup left")), None));
        }
    }
    Ok((update, Some(recorded)))
}

/// The earlier document a new one joins: an old one, by its place, or a new one, by its
/// index among the new.
enum Joined {
    Old(Place),
    New(usize),
}

impl Joined {
    fn doc(&self, new: &[Seen]) -> u64 {
        match self {
            Joined::Old(place) => place.doc,
            Joined::New(j) => new[*j].place.doc,
        }
    }

    /// Whether it comes before `other` in ingest order: every old document before every
    /// new one, new ones in the order they were sorted in.
    fn before(&self, other: &Joined, new: &[Seen]) -> bool {
        match (self, other) {
            (Joined::Old(a), Joined::Old(b)) => a < b,
            (Joined::Old(_), Joined::New(_)) => true,
            (Joined::New(_), Joined::Old(_)) => false,
            (Joined::New(a), Joined::New(b)) => {
                (new[*a].ordinal, new[*a].place.doc) < (new[*b].ordinal, new[*b].place.doc)
            }
        }
    }
}

/// The result of trying to append.
pub enum Outcome {
    Appended(Box<DedupReport>),
    Rebuild(String),
}

/// A document's earliest holder of a key among the old ones: from the index.
struct Hub {
    place: Place,
    id: String,
    signature: Option<Box<[u8]>>,
}

/// What an incremental run works with.
pub struct Run<'a> {
    pub ctx: &'a SessionContext,
    pub lake: &'a Lake,
    pub options: &'a DedupOptions,
    pub column: &'a str,
    pub progress: &'a ProgressBar,
}

impl Run<'_> {
    /// Deduplicates the rows `INPUT` holds (the input's new rows) against the index and
    /// appends to the output, clusters and index; or says why a full run is needed.
    pub async fn append(
        &self,
        recorded: Recorded,
        mut details: serde_json::Value,
        started: Instant,
    ) -> Result<Outcome> {
        let (ctx, options) = (self.ctx, self.options);
        let (Some(Target::Table(clusters)), Some(index_table)) = (&options.clusters, &options.index) else {
            return Err(Error::Internal("incremental dedup without its tables".into()));
        };
        self.progress.set_message("dedup: new rows");
        let mut index =
            Output::open_with(self.lake, &Target::Table(index_table.clone()), index::schema(), CommitMode::Append)
                .await?;
        let mut new: Vec<Seen> = Vec::new();
        scan(
            ctx,
            &options.session.engine,
            self.column,
            options.near.as_ref(),
            Some(&mut index),
            None,
            self.progress,
            |seen| new.push(seen.clone()),
        )
        .await?;
        new.sort_by_key(|d| (d.ordinal, d.place.doc));
        let last_new = new.iter().map(|d| &d.place).max().cloned();
        if let (Some(first), Some(last)) = (new.iter().map(|d| &d.place).min(), &recorded.last)
            && first <= last
        {
            return Ok(Outcome::Rebuild(format!(
                "a new row ({} line {}) comes before rows deduplicated earlier ({} line {}) in ingest order",
                first.input, first.position, last.input, last.position
            )));
        }

        // The first new holder of each key, and the earliest old one.
        let mut first_new: HashMap<u64, usize> = HashMap::new();
        for (i, doc) in new.iter().enumerate() {
            for &key in &doc.keys {
                first_new.entry(key).or_insert(i);
            }
        }
        let hubs = self.old_hubs(index_table, recorded.index_version, &first_new).await?;

        // Each new document pairs with its keys' earliest holders, verified as a full run
        // does, and joins the cluster of the earliest that passes: an old one's (from the
        // index) or a new one's, found before it since they come in order.
        let verify = options.near.is_some() && options.min_similarity > 0.0;
        let similar = |a: Option<&[u8]>, b: Option<&[u8]>| match (a, b) {
            (Some(a), Some(b)) if verify => estimated_jaccard(a, b) >= options.min_similarity,
            _ => true,
        };
        let (mut candidate_pairs, mut rejected_pairs) = (0, 0);
        let mut joined: Vec<Option<Joined>> = Vec::with_capacity(new.len());
        for (i, doc) in new.iter().enumerate() {
            let mut seen: HashSet<u64> = HashSet::new();
            let mut earliest: Option<Joined> = None;
            for key in &doc.keys {
                let (hub, signature) = match hubs.get(key) {
                    Some(hub) => (Joined::Old(hub.place.clone()), hub.signature.as_deref()),
                    None => match first_new[key] {
                        j if j == i => continue,
                        j => (Joined::New(j), new[j].signature.as_deref()),
                    },
                };
                if !seen.insert(hub.doc(&new)) {
                    continue;
                }
                candidate_pairs += 1;
                if !similar(doc.signature.as_deref(), signature) {
                    rejected_pairs += 1;
                } else if earliest.as_ref().is_none_or(|e| hub.before(e, &new)) {
                    earliest = Some(hub);
                }
            }
            joined.push(earliest);
        }

        // The cluster each joins is named by the copy it kept: an old hub's from the
        // clusters table (itself when it was in none), a new hub's from its own join.
        let old_hubs: HashMap<u64, &Hub> = hubs.values().map(|h| (h.place.doc, h)).collect();
        let wanted: HashSet<u64> =
            joined.iter().flatten().filter_map(|j| if let Joined::Old(p) = j { Some(p.doc) } else { None }).collect();
        let listed = self.clusters_of(clusters, recorded.clusters_version, &wanted).await?;
        let mut roots: Vec<Option<String>> = Vec::with_capacity(new.len());
        let mut rows: Vec<(String, String, bool)> = Vec::new();
        let mut removed = HashSet::new();
        let mut new_roots: BTreeSet<String> = BTreeSet::new();
        let mut clusters_gaining: HashSet<String> = HashSet::new();
        for (i, join) in joined.iter().enumerate() {
            let root = match join {
                None => None,
                Some(Joined::Old(place)) => Some(match listed.get(&place.doc) {
                    Some(cluster) => cluster.clone(),
                    None => {
                        let id = old_hubs[&place.doc].id.clone();
                        if new_roots.insert(id.clone()) {
                            rows.push((id.clone(), id.clone(), true));
                        }
                        id
                    }
                }),
                Some(Joined::New(j)) => Some(match &roots[*j] {
                    Some(root) => root.clone(),
                    None => {
                        let id = new[*j].id.clone();
                        if new_roots.insert(id.clone()) {
                            rows.push((id.clone(), id.clone(), true));
                        }
                        id
                    }
                }),
            };
            if let Some(root) = &root {
                removed.insert(new[i].place.doc);
                rows.push((new[i].id.clone(), root.clone(), false));
                clusters_gaining.insert(root.clone());
            }
            roots.push(root);
        }

        // Commit the index, then the clusters, then the output, which records both.
        let index_version = index.finish("dedup index", serde_json::json!({})).await?.version.map(|v| v.version);
        let clusters_version = self.append_clusters(clusters, &rows).await?;
        if let Some(object) = details.as_object_mut() {
            object.insert("index_version".into(), index_version.into());
            object.insert("clusters_version".into(), clusters_version.into());
            object.insert("last".into(), serde_json::to_value(last_new.or(recorded.last))?);
        }
        self.progress.set_message("dedup: writing");
        let (input_rows, output_rows) =
            write_kept(ctx, self.lake, &options.to, CommitMode::Append, &removed, details, self.progress).await?;
        let clusters = clusters_gaining.len() as u64;
        Ok(Outcome::Appended(Box::new(DedupReport {
            input_rows,
            output_rows,
            removed: removed.len() as u64,
            clusters,
            candidate_pairs,
            rejected_pairs,
            seconds: started.elapsed().as_secs_f64(),
            ..DedupReport::of(options)
        })))
    }

    /// The earliest old document holding each key of `keys`, from the index as it was.
    async fn old_hubs(
        &self,
        table: &str,
        version: Option<u64>,
        keys: &HashMap<u64, usize>,
    ) -> Result<HashMap<u64, Hub>> {
        let table = self.lake.table(table)?;
        let version = table.version(version.unwrap_or_default()).await?;
        register_table(self.ctx, INDEX, &table, &version)?;
        let sql = format!("SELECT id, doc, input, position, keys, signature FROM {INDEX}");
        let mut stream = self.ctx.sql(&sql).await?.execute_stream().await?;
        let mut hubs: HashMap<u64, Hub> = HashMap::new();
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let docs = u64_column(&batch, 1)?;
            let positions = batch.column(3).as_primitive::<Int64Type>();
            let lists = batch.column(4).as_list::<i32>();
            let signature = batch.column(5);
            let signature = |row: usize| -> Option<Box<[u8]>> {
                match signature.data_type() {
                    DataType::BinaryView => signature
                        .as_binary_view()
                        .is_valid(row)
                        .then(|| Box::from(signature.as_binary_view().value(row))),
                    _ => signature
                        .as_binary::<i32>()
                        .is_valid(row)
                        .then(|| Box::from(signature.as_binary::<i32>().value(row))),
                }
            };
            for (row, (id, input)) in texts(batch.column(0))?.zip(texts(batch.column(2))?).enumerate() {
                let keys_of_row = lists.value(row);
                let keys_of_row = keys_of_row.as_primitive::<datafusion::arrow::datatypes::UInt64Type>();
                for &key in keys_of_row.values() {
                    if !keys.contains_key(&key) {
                        continue;
                    }
                    let place = Place {
                        input: input.unwrap_or_default().into(),
                        position: positions.value(row),
                        doc: docs[row],
                    };
                    if hubs.get(&key).is_none_or(|hub| place < hub.place) {
                        hubs.insert(key, Hub { place, id: id.unwrap_or_default().into(), signature: signature(row) });
                    }
                }
            }
        }
        self.ctx.deregister_table(INDEX)?;
        Ok(hubs)
    }

    /// The cluster (the id it keeps) of each document of `docs` listed in the clusters
    /// table as it was.
    async fn clusters_of(
        &self,
        table: &str,
        version: Option<u64>,
        docs: &HashSet<u64>,
    ) -> Result<HashMap<u64, String>> {
        let table = self.lake.table(table)?;
        let version = table.version(version.unwrap_or_default()).await?;
        register_table(self.ctx, CLUSTERS, &table, &version)?;
        let mut stream =
            self.ctx.sql(&format!("SELECT id, cluster_id FROM {CLUSTERS}")).await?.execute_stream().await?;
        let mut found = HashMap::new();
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            for (id, cluster) in texts(batch.column(0))?.zip(texts(batch.column(1))?) {
                if let (Some(id), Some(cluster)) = (id, cluster)
                    && docs.contains(&document(id))
                {
                    found.insert(document(id), cluster.to_string());
                }
            }
        }
        self.ctx.deregister_table(CLUSTERS)?;
        Ok(found)
    }

    /// Appends (id, cluster_id, kept) rows to the clusters table; returns its new version.
    async fn append_clusters(&self, table: &str, rows: &[(String, String, bool)]) -> Result<Option<u64>> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("cluster_id", DataType::Utf8, false),
            Field::new("kept", DataType::Boolean, false),
        ]));
        let target = Target::Table(table.to_string());
        let mut output = Output::open_with(self.lake, &target, schema.clone(), CommitMode::Append).await?;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0.as_str()))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1.as_str()))),
            Arc::new(rows.iter().map(|r| Some(r.2)).collect::<BooleanArray>()),
        ];
        output.write(&RecordBatch::try_new(schema, columns)?).await?;
        Ok(output.finish("dedup clusters", serde_json::json!({})).await?.version.map(|v| v.version))
    }
}
