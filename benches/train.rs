//! Training throughput and checkpoint logits, for BENCHMARKS.md and the Hugging Face check.
//!
//! ```text
//! cargo bench --bench train -- step --preset tiny --batch 8 --seq 512 --steps 5
//! cargo bench --features cuda --bench train -- step --preset small --device cuda --dtype bf16 --batch 16 --seq 1024
//! cargo bench --bench train -- logits --checkpoint RUN/checkpoints/step-000100 --out logits.safetensors
//! ```
//!
//! `step` times full optimizer updates (forward, backward, clipping, AdamW) of a preset
//! model on synthetic packed rows (documents of 64 to 512 tokens) and prints one JSON line
//! with each update's loss and the model FLOPs per second (PaLM's count: 6 per matrix
//! weight and 12 x layers x hidden x sequence length per token; `--peak-tflops` turns it
//! into MFU) and the process's CPU seconds over the timed updates; threads follow
//! RAYON_NUM_THREADS; SYSTEM_MALLOC=1 leaves glibc's malloc settings as they are (to
//! measure what `keep_freed_memory` gains). `logits` runs a checkpoint on fixed token ids
//! and writes the ids and logits, which `scripts/hf_parity.py` compares with transformers.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use mathlake::lake::Location;
use mathlake::shards::loader::Batch;
use mathlake::shards::plan::SplitMix;
use mathlake::train::checkpoint;
use mathlake::train::config::{DeviceKind, Precision};
use mathlake::train::model::{Context, Llama, Preset};
use mathlake::train::optim::{AdamW, AdamWConfig};
use mathlake::train::update;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn number(args: &[String], name: &str, default: usize) -> usize {
    arg(args, name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// User and system CPU seconds of this process so far. On a shared machine whose other
/// tenants take the CPU for seconds at a time, a one-thread run's tokens per CPU-second
/// vary much less than its tokens per second.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes the struct it is given; zeroed is a valid rusage.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Packed rows of random tokens: documents of 64 to 512 tokens, every target in the loss
/// except those that open a document.
fn synthetic_batch(rows: usize, length: usize, vocab: usize, seed: u64) -> Batch {
    let mut rng = SplitMix::new(seed, &[]);
    let mut batch = Batch::empty(rows, length, 1);
    for _ in 0..rows {
        let (mut segment, mut position, mut left) = (0u32, 0u32, 64 + rng.below(449));
        for _ in 0..length {
            if left == 0 {
                (segment, position, left) = (segment + 1, 0, 64 + rng.below(449));
            }
            batch.inputs.push(rng.below(vocab) as u32);
            batch.targets.push(rng.below(vocab) as u32);
            batch.loss_mask.push(left > 1);
            batch.positions.push(position);
            batch.segments.push(segment);
            (position, left) = (position + 1, left - 1);
        }
    }
    batch
}

fn step(args: &[String]) -> mathlake::Result<()> {
    let preset = match arg(args, "--preset").as_deref() {
        Some("small") => Preset::Small,
        _ => Preset::Tiny,
    };
    let (rows, length, steps) = (number(args, "--batch", 8), number(args, "--seq", 512), number(args, "--steps", 5));
    let vocab = number(args, "--vocab", 8192);
    let device_kind = match arg(args, "--device").as_deref() {
        Some("cuda") => DeviceKind::Cuda,
        _ => DeviceKind::Cpu,
    };
    let precision = match arg(args, "--dtype").as_deref() {
        Some("bf16") => Precision::Bf16,
        _ => Precision::F32,
    };
    let device = device_kind.open()?;
    if std::env::var_os("SYSTEM_MALLOC").is_none() {
        mathlake::malloc::keep_freed_memory();
    }
    let config = preset.config(vocab);
    let model = Llama::init(config.clone(), 1, precision.dtype(), &device)?;
    let mut optimizer = AdamW::new(AdamWConfig::default(), &model.parameters())?;
    let batches: Vec<Batch> = (0..=steps).map(|i| synthetic_batch(rows, length, vocab, i as u64)).collect();
    // The first update pays for first-touch allocations (and on a GPU, kernel loading);
    // time the rest. Each update reads its loss back, so the clock sees finished work.
    let first = update(&model, &mut optimizer, &batches[..1], 1e-4, 1.0, &device)?.loss;
    let started = std::time::Instant::now();
    let cpu_started = cpu_seconds();
    let mut losses = vec![first];
    for batch in &batches[1..] {
        losses.push(update(&model, &mut optimizer, std::slice::from_ref(batch), 1e-4, 1.0, &device)?.loss);
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_started;
    let tokens = (steps * rows * length) as f64;
    // Matrices multiply; norms do not, nor does an untied embedding (a lookup).
    let matrix_weights: usize = config
        .parameter_shapes()
        .iter()
        .filter(|(name, shape)| shape.len() == 2 && (config.tie_word_embeddings || name != "model.embed_tokens.weight"))
        .map(|(_, shape)| shape.iter().product::<usize>())
        .sum();
    let (hidden, layers) = (config.hidden_size, config.num_hidden_layers);
    let flops_per_token = 6.0 * matrix_weights as f64 + 12.0 * (layers * hidden * length) as f64;
    let tflops = flops_per_token * tokens / seconds / 1e12;
    let peak = arg(args, "--peak-tflops").and_then(|v| v.parse::<f64>().ok());
    println!(
        "{}",
        serde_json::json!({
            "engine": "mathlake",
            "preset": format!("{preset:?}").to_lowercase(),
            "parameters": config.parameter_count(),
            "device": format!("{device_kind:?}").to_lowercase(),
            "dtype": format!("{precision:?}").to_lowercase(),
            "threads": candle_core::utils::get_num_threads(),
            "batch": rows,
            "seq": length,
            "steps": steps,
            "step_s": seconds / steps as f64,
            "tokens_per_s": tokens / seconds,
            "cpu_s": cpu,
            "tokens_per_cpu_s": tokens / cpu,
            "model_tflops": tflops,
            "mfu": peak.map(|p| tflops / p),
            "losses": losses,
        })
    );
    Ok(())
}

async fn logits(args: &[String]) -> mathlake::Result<()> {
    let dir = arg(args, "--checkpoint").ok_or_else(|| mathlake::Error::user("--checkpoint DIR"))?;
    let out = arg(args, "--out").ok_or_else(|| mathlake::Error::user("--out FILE"))?;
    let device = Device::Cpu;
    let saved = checkpoint::load(&Location::parse(&dir)?, &device).await?;
    let vocab = saved.config.vocab_size;
    let model = Llama::from_tensors(saved.config, saved.tensors, DType::F32)?;
    let (rows, length) = (2, 64);
    let mut rng = SplitMix::new(42, &[]);
    let ids: Vec<u32> = (0..rows * length).map(|_| rng.below(vocab) as u32).collect();
    let positions: Vec<u32> = (0..rows).flat_map(|_| 0..length as u32).collect();
    let context = Context::new(&model.config, &positions, &vec![0; rows * length], rows, length, DType::F32, &device)?;
    let inputs = Tensor::from_vec(ids, (rows, length), &device)?;
    let logits = model.forward(&inputs, &context)?.reshape((rows, length, vocab))?;
    let tensors =
        HashMap::from([("input_ids".to_string(), inputs.to_dtype(DType::I64)?), ("logits".to_string(), logits)]);
    candle_core::safetensors::save(&tensors, &out)?;
    println!("wrote {out}: logits of {rows} x {length} tokens");
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let result = match args.get(1).map(String::as_str) {
        Some("step") => step(&args),
        Some("logits") => runtime.block_on(logits(&args)),
        _ => Err(mathlake::Error::user(
            "usage: train step [--preset tiny|small] ... | train logits --checkpoint DIR --out FILE",
        )),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
