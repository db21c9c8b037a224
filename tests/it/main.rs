//! Integration tests: the real `mathlake` binary on real data from `../shared/data`,
//! on local lakes and on a local S3 server. One binary, so the crate links once.

mod common;
mod curate;
mod decontaminate;
mod dedup;
#[cfg(feature = "distributed")]
mod distributed;
mod endpoint;
mod eval;
mod experiment;
mod http;
mod incremental;
mod ingest_bad_input;
mod ingest_kill;
mod ingest_s3;
mod ingest_shared_data;
mod ingest_web;
mod inspect;
mod job;
mod schedule;
mod serve;
mod shards;
mod synthesize;
mod tokenize;
mod tokenize_parity;
mod train;
