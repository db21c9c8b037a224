//! With the `cuda` feature, compiles the trainer's CUDA kernels (src/train/kernels.cu) to
//! PTX, which src/train/cuda.rs embeds and candle loads at run time. nvcc is already
//! needed for that feature: candle's own kernels are built the same way.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=src/train/kernels.cu");
    println!("cargo::rerun-if-env-changed=CUDA_COMPUTE_CAP");
    println!("cargo::rerun-if-env-changed=CUDA_HOME");
    if env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("train_kernels.ptx");
    // PTX for an older architecture is compiled for the GPU at load time; bf16 needs 8.0.
    let arch = env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "80".into());
    let nvcc =
        env::var_os("CUDA_HOME").map_or_else(|| PathBuf::from("nvcc"), |home| PathBuf::from(home).join("bin/nvcc"));
    let status = Command::new(&nvcc)
        .args(["--ptx", "-O3", "-std=c++17", &format!("-arch=compute_{arch}"), "src/train/kernels.cu", "-o"])
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{} failed on src/train/kernels.cu ({s}); its messages are above", nvcc.display()),
        Err(e) => panic!(
            "cannot run {} for the cuda feature: {e}. Put nvcc on PATH or set CUDA_HOME; without a CUDA \
             toolkit, scripts/cuda_toolkit.sh DIR fetches one (then source DIR/env.sh)",
            nvcc.display()
        ),
    }
}
