// CUDA versions of the fused kernels of src/train/ops.rs: the attention softmax and the
// cross-entropy, each with its backward pass. One thread block per row of the last
// dimension; values are read in their own dtype (f32 or bf16) and computed in f32, so a
// bf16 step reads and writes the attention weights once each in bf16 instead of casting
// them to f32 and back around half a dozen elementwise passes.
//
// build.rs compiles this file to PTX with nvcc when the `cuda` feature is on; candle loads
// the PTX at run time (CudaDevice::get_or_load_custom_func).

#include <cuda_bf16.h>
#include <math_constants.h>
#include <stdint.h>

__device__ __forceinline__ float load(const float* p, size_t i) { return p[i]; }
__device__ __forceinline__ float load(const __nv_bfloat16* p, size_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void store(float* p, size_t i, float v) { p[i] = v; }
__device__ __forceinline__ void store(__nv_bfloat16* p, size_t i, float v) { p[i] = __float2bfloat16(v); }

// A running maximum and the sum of exp(x - max) over the values seen so far.
struct MaxSum {
    float max;
    float sum;
};

__device__ __forceinline__ MaxSum add(MaxSum a, float v) {
    if (v > a.max) {
        // a.max may be -inf with a.sum 0: the product is 0, not NaN, since expf(-inf) = 0.
        return {v, a.sum * expf(a.max - v) + 1.0f};
    }
    if (v == -CUDART_INF_F) {
        return a;  // masked out
    }
    return {a.max, a.sum + expf(v - a.max)};
}

__device__ __forceinline__ MaxSum merge(MaxSum a, MaxSum b) {
    float m = fmaxf(a.max, b.max);
    if (m == -CUDART_INF_F) {
        return {m, 0.0f};
    }
    return {m, a.sum * expf(a.max - m) + b.sum * expf(b.max - m)};
}

// Block-wide reductions; blockDim.x is a multiple of 32 and at most 1024. Every thread
// gets the result.
__device__ MaxSum block_max_sum(MaxSum v) {
    __shared__ MaxSum warps[32];
    for (int offset = 16; offset > 0; offset /= 2) {
        MaxSum other = {__shfl_xor_sync(0xffffffff, v.max, offset), __shfl_xor_sync(0xffffffff, v.sum, offset)};
        v = merge(v, other);
    }
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, count = blockDim.x / 32;
    if (lane == 0) warps[warp] = v;
    __syncthreads();
    v = lane < count ? warps[lane] : MaxSum{-CUDART_INF_F, 0.0f};
    for (int offset = 16; offset > 0; offset /= 2) {
        MaxSum other = {__shfl_xor_sync(0xffffffff, v.max, offset), __shfl_xor_sync(0xffffffff, v.sum, offset)};
        v = merge(v, other);
    }
    return v;
}

__device__ float block_sum(float v) {
    __shared__ float warps[32];
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffff, v, offset);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, count = blockDim.x / 32;
    if (lane == 0) warps[warp] = v;
    __syncthreads();
    v = lane < count ? warps[lane] : 0.0f;
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffff, v, offset);
    return v;
}

// softmax(scale * x + mask) over rows of length s, for x [b, heads, t, s] and an additive
// mask [b, 1, t, s] (f32) shared by the heads. One block per row of x.
template <typename T>
__device__ void attention_softmax(const T* x, const float* mask, T* y, uint32_t heads, uint32_t t, uint32_t s,
                                  float scale) {
    size_t r = blockIdx.x;
    size_t batch = r / ((size_t)heads * t), row = r % t;
    const T* xr = x + r * s;
    T* yr = y + r * s;
    const float* mr = mask + (batch * t + row) * s;
    MaxSum acc = {-CUDART_INF_F, 0.0f};
    for (uint32_t j = threadIdx.x; j < s; j += blockDim.x) acc = add(acc, load(xr, j) * scale + mr[j]);
    acc = block_max_sum(acc);
    float inv = 1.0f / acc.sum;
    for (uint32_t j = threadIdx.x; j < s; j += blockDim.x) {
        store(yr, j, expf(load(xr, j) * scale + mr[j] - acc.max) * inv);
    }
}

// The softmax Jacobian: dx = scale * y * (g - sum(g * y)) per row of length s.
template <typename T>
__device__ void softmax_grad(const T* y, const T* g, T* dx, uint32_t s, float scale) {
    size_t offset = (size_t)blockIdx.x * s;
    const T* yr = y + offset;
    const T* gr = g + offset;
    float dot = 0.0f;
    for (uint32_t j = threadIdx.x; j < s; j += blockDim.x) dot += load(gr, j) * load(yr, j);
    dot = block_sum(dot);
    for (uint32_t j = threadIdx.x; j < s; j += blockDim.x) {
        store(dx + offset, j, scale * load(yr, j) * (load(gr, j) - dot));
    }
}

// Per row of logits [n, vocab], the negative log-likelihood of its target; NaN for a
// target outside the vocabulary, which the trainer reports as a non-finite loss.
template <typename T>
__device__ void cross_entropy(const T* logits, const uint32_t* targets, T* nll, uint32_t vocab) {
    size_t r = blockIdx.x;
    const T* row = logits + r * vocab;
    MaxSum acc = {-CUDART_INF_F, 0.0f};
    for (uint32_t j = threadIdx.x; j < vocab; j += blockDim.x) acc = add(acc, load(row, j));
    acc = block_max_sum(acc);
    if (threadIdx.x == 0) {
        uint32_t target = targets[r];
        store(nll, r, target < vocab ? logf(acc.sum) + acc.max - load(row, target) : CUDART_NAN_F);
    }
}

// dlogits = (softmax(logits) - onehot(target)) * g per row; zeros where g is 0.
template <typename T>
__device__ void cross_entropy_grad(const T* logits, const uint32_t* targets, const T* g, T* dx, uint32_t vocab) {
    size_t r = blockIdx.x;
    const T* row = logits + r * vocab;
    T* out = dx + r * vocab;
    float weight = load(g, r);
    if (weight == 0.0f) {
        for (uint32_t j = threadIdx.x; j < vocab; j += blockDim.x) store(out, j, 0.0f);
        return;  // a position out of the loss; the whole block takes this branch
    }
    MaxSum acc = {-CUDART_INF_F, 0.0f};
    for (uint32_t j = threadIdx.x; j < vocab; j += blockDim.x) acc = add(acc, load(row, j));
    acc = block_max_sum(acc);
    float shift = acc.max + logf(acc.sum);
    uint32_t target = targets[r];
    for (uint32_t j = threadIdx.x; j < vocab; j += blockDim.x) {
        float d = expf(load(row, j) - shift) * weight;
        store(out, j, j == target ? d - weight : d);
    }
}

#define INSTANTIATE(SUFFIX, T)                                                                                     \
    extern "C" __global__ void attention_softmax_##SUFFIX(const T* x, const float* mask, T* y, uint32_t heads,     \
                                                          uint32_t t, uint32_t s, float scale) {                   \
        attention_softmax(x, mask, y, heads, t, s, scale);                                                         \
    }                                                                                                              \
    extern "C" __global__ void softmax_grad_##SUFFIX(const T* y, const T* g, T* dx, uint32_t s, float scale) {     \
        softmax_grad(y, g, dx, s, scale);                                                                          \
    }                                                                                                              \
    extern "C" __global__ void cross_entropy_##SUFFIX(const T* logits, const uint32_t* targets, T* nll,            \
                                                      uint32_t vocab) {                                            \
        cross_entropy(logits, targets, nll, vocab);                                                                \
    }                                                                                                              \
    extern "C" __global__ void cross_entropy_grad_##SUFFIX(const T* logits, const uint32_t* targets, const T* g,   \
                                                           T* dx, uint32_t vocab) {                                \
        cross_entropy_grad(logits, targets, g, dx, vocab);                                                         \
    }

INSTANTIATE(f32, float)
INSTANTIATE(bf16, __nv_bfloat16)
