//! The encoders of `scripts/bench_shards.sh`: Hugging Face tokenizers' batch encoding
//! (`encode_batch_fast`, no offsets) and the project's fast encoder (`Encoder::encode`
//! with the fast engine, EOS and loss mask included) on the texts of a lake query, each on
//! a pool of the given number of threads, in the same run. Only the encoding is timed;
//! the texts are read first. Every text's ids are compared and mismatches counted.
//!
//!   cargo bench --bench tokenize -- LAKE "SELECT text FROM documents" TOKENIZER THREADS [fast]
//!
//! `fast` times only the fast encoder (three runs), for work on it.

use std::time::Instant;

use datafusion::arrow::array::AsArray;
use mathlake::lake::{Lake, SessionOptions};
use mathlake::tokenize::{Encoder, Engine};
use rayon::prelude::*;
use tokenizers::Tokenizer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let (lake, sql, tokenizer, threads, fast_only) = match args.as_slice() {
        [lake, sql, tokenizer, threads] => (lake, sql, tokenizer, threads, false),
        [lake, sql, tokenizer, threads, only] if only == "fast" => (lake, sql, tokenizer, threads, true),
        _ => return Err("usage: tokenize LAKE SQL TOKENIZER THREADS [fast]".into()),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let texts: Vec<String> = runtime.block_on(async {
        let ctx = mathlake::lake::session(&Lake::open(lake)?, &SessionOptions::default()).await?;
        let batches = ctx.sql(sql).await?.collect().await?;
        let mut texts = Vec::new();
        for batch in &batches {
            let column =
                datafusion::arrow::compute::cast(batch.column(0), &datafusion::arrow::datatypes::DataType::Utf8)?;
            texts.extend(column.as_string::<i32>().iter().flatten().map(str::to_owned));
        }
        Ok::<_, Box<dyn std::error::Error>>(texts)
    })?;
    let bytes: usize = texts.iter().map(String::len).sum();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads.parse()?).build()?;

    let encoder = Encoder::from_bytes(tokenizer, &std::fs::read(tokenizer)?, None, Engine::Fast)?;
    let encode_fast = || {
        let started = Instant::now();
        let encoded =
            pool.install(|| texts.par_iter().map(|text| encoder.encode(text, 0)).collect::<Result<Vec<_>, _>>());
        encoded.map(|e| (e, started.elapsed().as_secs_f64()))
    };
    if fast_only {
        for _ in 0..3 {
            let (_, seconds) = encode_fast()?;
            println!(
                "{}",
                serde_json::json!({ "fast": { "seconds": seconds, "mb_per_s": bytes as f64 / 1e6 / seconds } })
            );
        }
        return Ok(());
    }

    let hf = Tokenizer::from_file(tokenizer).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let hf_ids: Vec<Vec<u32>> = pool.install(|| -> Result<_, String> {
        let mut ids = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(4096) {
            let inputs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let encodings = hf.encode_batch_fast(inputs, false).map_err(|e| e.to_string())?;
            ids.extend(encodings.into_iter().map(|e| e.get_ids().to_vec()));
        }
        Ok(ids)
    })?;
    let hf_seconds = started.elapsed().as_secs_f64();

    let (fast, fast_seconds) = encode_fast()?;
    let mismatches = fast.iter().zip(&hf_ids).filter(|(f, h)| f.ids[..f.ids.len() - 1] != h[..]).count();

    let mb = bytes as f64 / 1e6;
    println!(
        "{}",
        serde_json::json!({
            "texts": texts.len(), "bytes": bytes, "threads": threads.parse::<usize>()?,
            "hf": { "tokens": hf_ids.iter().map(Vec::len).sum::<usize>(), "seconds": hf_seconds, "mb_per_s": mb / hf_seconds },
            "fast": { "tokens": fast.iter().map(|e| e.ids.len() - 1).sum::<usize>(), "seconds": fast_seconds, "mb_per_s": mb / fast_seconds },
            "mismatching_texts": mismatches,
        })
    );
    Ok(())
}
