#!/usr/bin/env bash
# The trainer on a CUDA GPU, for BENCHMARKS.md: first a check that CUDA computes what the
# CPU computes (the same four updates of the tiny preset, f32 on both, then bf16), then
# tokens/s and MFU of full updates against PyTorch on the same shapes, one after the other.
#
#   scripts/bench_train_gpu.sh BENCH [PEAK_TFLOPS]
#
# BENCH is benches/train.rs built with `--features cuda` (`cargo bench --features cuda
# --bench train --no-run` prints its path); PEAK_TFLOPS is the card's dense bf16 peak for
# MFU (default 989, an H100 SXM's). The CUDA libraries (cudart, cuBLAS, cuRAND, NVRTC)
# must be on the loader's path. Prints one JSON line per run.
set -uo pipefail
bench=$1
peak=${2:-989}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader

echo "# CUDA against the CPU: tiny preset, 4 updates of 4 x 256 (losses should agree to ~1e-5 in f32)"
for run in "cpu f32" "cuda f32" "cuda bf16"; do
  set -- $run
  "$bench" step --preset tiny --batch 4 --seq 256 --steps 3 --device "$1" --dtype "$2" ||
    echo "{\"failed\": \"tiny $1 $2\"}"
done

echo "# Throughput: full updates, vocabulary 8,192"
for shape in "small 16 1024 bf16" "small 16 1024 f32" "small 32 512 bf16" "tiny 32 1024 bf16"; do
  set -- $shape
  "$bench" step --preset "$1" --batch "$2" --seq "$3" --steps 10 --device cuda --dtype "$4" --peak-tflops "$peak" ||
    echo "{\"failed\": \"mathlake $shape\"}"
  for attention in sdpa eager; do
    python3 scripts/bench_train_torch.py --preset "$1" --batch "$2" --seq "$3" --steps 10 --device cuda \
      --dtype "$4" --attention "$attention" --peak-tflops "$peak" ||
      echo "{\"failed\": \"pytorch $attention $shape\"}"
  done
done
