//! The shard loader's throughput: every training row of a shard set, batch after batch,
//! on one runtime thread, as plain batches and as candle tensors on the CPU.
//!
//!   cargo bench --bench loader -- SHARDS_URL BATCH_SIZE

use std::time::Instant;

use candle_core::Device;
use mathlake::shards::loader::{Loader, LoaderOptions, ShardSet, Split};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let [url, batch_size] = args.as_slice() else {
        return Err("usage: loader SHARDS_URL BATCH_SIZE".into());
    };
    let batch_size: usize = batch_size.parse()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let set = ShardSet::open(url).await?;
        for tensors in [false, true] {
            let options =
                LoaderOptions { split: Split::Train, batch_size, seed: 1, rank: 0, world: 1, start: 0, prefetch: 2 };
            let mut loader = Loader::new(set.clone(), options)?;
            let batches = loader.samples_per_epoch() / batch_size as u64;
            let started = Instant::now();
            let mut tokens = 0u64;
            for _ in 0..batches {
                let batch = loader.next_batch().await?;
                tokens += batch.inputs.len() as u64;
                if tensors {
                    std::hint::black_box(batch.tensors(&Device::Cpu)?);
                }
            }
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "{}",
                serde_json::json!({ "tensors": tensors, "batches": batches, "tokens": tokens, "seconds": seconds,
                    "tokens_per_second": tokens as f64 / seconds })
            );
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
