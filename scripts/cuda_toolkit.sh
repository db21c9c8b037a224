#!/usr/bin/env bash
# A CUDA 13.0 toolkit for `cargo build --features cuda` on a machine without one (no GPU
# needed to build), from NVIDIA's wheels on PyPI: nvcc, headers, cudart, cuBLAS, cuRAND,
# NVRTC, plus a link-time stand-in for the driver's libcuda.so (the real one comes with
# the GPU's driver where the program runs).
#
#   scripts/cuda_toolkit.sh DIR        # then: . DIR/env.sh
#   cargo build --release --features cuda
#
# 13.0 matches driver 580; PTX from a newer nvcc does not load on an older driver.
# CUDA_COMPUTE_CAP (default 90, Hopper) picks the GPU generation the kernels are built for.
set -euo pipefail
dir=$(mkdir -p "$1" && cd "$1" && pwd)
wheels="$dir/wheels"
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$wheels" \
  'nvidia-cuda-nvcc==13.0.*' 'nvidia-cuda-runtime==13.0.*' 'nvidia-cuda-cccl==13.0.*' 'nvidia-nvvm==13.0.*' \
  'nvidia-cuda-crt==13.0.*' 'nvidia-cublas==13.0.*' 'nvidia-curand==10.4.0.*' 'nvidia-cuda-nvrtc==13.0.*'
for wheel in "$wheels"/*.whl; do
  python3 -m zipfile -e "$wheel" "$dir/unpacked"
done
rm -rf "$wheels"
home="$dir/unpacked/nvidia/cu13"
chmod +x "$home"/bin/* "$home"/nvvm/bin/*
for lib in cudart cublas cublasLt curand nvrtc; do
  soname=$(cd "$home/lib" && ls "lib$lib.so."* | head -1)
  ln -sf "$soname" "$home/lib/lib$lib.so"
done

# cudarc links against libcuda.so; the stand-in defines the driver API's names (from
# cudarc's bindings) so that the link succeeds, and records libcuda.so.1 as needed.
(cd "$(dirname "$0")/.." && cargo fetch --quiet)
cudarc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* | tail -1)
mkdir -p "$home/lib/stubs"
grep -oE '^\s+fn cu[A-Za-z0-9_]+\(' "$cudarc/src/driver/sys/mod.rs" | grep -oE 'cu[A-Za-z0-9_]+' | sort -u |
  awk '{print "void " $1 "(void) {}"}' >"$dir/libcuda_stub.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$home/lib/stubs/libcuda.so" "$dir/libcuda_stub.c"

cat >"$dir/env.sh" <<EOF
export CUDA_HOME=$home
export PATH=$home/bin:\$PATH
export CUDA_COMPUTE_CAP=\${CUDA_COMPUTE_CAP:-90}
export LIBRARY_PATH=$home/lib:$home/lib/stubs
EOF
echo "source $dir/env.sh, then cargo build --release --features cuda"
