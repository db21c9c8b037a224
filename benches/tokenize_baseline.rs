//! The reference of `scripts/bench_tokenize.sh`: the bare tokenizers crate's batch
//! encoding (`encode_batch_fast`, no offsets) of the texts of a lake query, on a pool of
//! the given number of threads. Only the encoding is timed; the texts are read first.
//!
//!   cargo bench --bench tokenize_baseline -- LAKE "SELECT text FROM documents" TOKENIZER THREADS

use std::time::Instant;

use datafusion::arrow::array::AsArray;
use mathlake::lake::{Lake, SessionOptions};
use tokenizers::Tokenizer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let [lake, sql, tokenizer, threads] = args.as_slice() else {
        return Err("usage: tokenize_baseline LAKE SQL TOKENIZER THREADS".into());
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let texts: Vec<String> = runtime.block_on(async {
        let ctx = mathlake::curate::session(&Lake::open(lake)?, &SessionOptions::default()).await?;
        let batches = ctx.sql(sql).await?.collect().await?;
        let mut texts = Vec::new();
        for batch in &batches {
            let column =
                datafusion::arrow::compute::cast(batch.column(0), &datafusion::arrow::datatypes::DataType::Utf8)?;
            texts.extend(column.as_string::<i32>().iter().flatten().map(str::to_owned));
        }
        Ok::<_, Box<dyn std::error::Error>>(texts)
    })?;
    let tokenizer = Tokenizer::from_file(tokenizer).map_err(|e| e.to_string())?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads.parse()?).build()?;
    let bytes: usize = texts.iter().map(String::len).sum();
    let started = Instant::now();
    let tokens: usize = pool.install(|| -> Result<usize, String> {
        let mut tokens = 0;
        for chunk in texts.chunks(4096) {
            let inputs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let encodings = tokenizer.encode_batch_fast(inputs, false).map_err(|e| e.to_string())?;
            tokens += encodings.iter().map(|e| e.get_ids().len()).sum::<usize>();
        }
        Ok(tokens)
    })?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({ "texts": texts.len(), "bytes": bytes, "tokens": tokens, "seconds": seconds, "threads": threads })
    );
    Ok(())
}
