//! Fused kernels, with hand-written backward passes, for the two widest tensors of a
//! training step: the attention weights `[rows, heads, T, T]` and the logits
//! `[rows * T, vocab]`.
//!
//! Composed from candle's small ops, a masked softmax allocates five tensors of that size
//! and cross-entropy about as many, and page faults on those buffers were a third of a
//! step on the CPU; on a GPU those elementwise passes were nine tenths of it. Each op here
//! reads its input once and writes one output; its backward pass is one more kernel. They
//! run on the CPU in f32 and f64 and, built with the `cuda` feature, on CUDA in f32 and
//! bf16 (computing in f32; the kernels are in `kernels.cu`). Other devices and dtypes use
//! the composed ops in `model.rs`, which compute the same function, with the softmax's
//! gradient from `with_softmax_gradient`.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor, WithDType, bail};
use rayon::prelude::*;

/// The float types the kernels run in.
trait Real: WithDType + Copy + Send + Sync + PartialOrd {
    fn exp(self) -> Self;
    fn ln(self) -> Self;
}

impl Real for f32 {
    fn exp(self) -> Self {
        f32::exp(self)
    }
    fn ln(self) -> Self {
        f32::ln(self)
    }
}

impl Real for f64 {
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn ln(self) -> Self {
        f64::ln(self)
    }
}

/// Whether the fused kernels serve tensors of this device and dtype.
pub fn fused(t: &Tensor) -> bool {
    match t.dtype() {
        DType::F32 => t.device().is_cpu() || (cfg!(feature = "cuda") && t.device().is_cuda()),
        DType::F64 => t.device().is_cpu(),
        DType::BF16 => cfg!(feature = "cuda") && t.device().is_cuda(),
        _ => false,
    }
}

/// Runs `$body` with the type `$t` as f32 or f64, whichever `$storage` holds, and wraps
/// the `Vec` it returns in that dtype's storage.
macro_rules! float_kernel {
    ($name:expr, $storage:expr, |$t:ident| $body:expr) => {
        match $storage {
            CpuStorage::F32(_) => {
                type $t = f32;
                CpuStorage::F32($body)
            }
            CpuStorage::F64(_) => {
                type $t = f64;
                CpuStorage::F64($body)
            }
            _ => bail!("{} runs in f32 or f64", $name),
        }
    };
}

fn contiguous<'a, T: WithDType>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> candle_core::Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&storage.as_slice::<T>()?[start..end]),
        None => bail!("{op} needs contiguous inputs"),
    }
}

/// `softmax(scale * scores + mask)` over the last dimension, for scores `[b, h, t, s]` and
/// an additive mask `[b, 1, t, s]` shared by the heads, in the dtype of the scores. On the
/// CPU the mask has that dtype too; on CUDA it is f32.
pub fn attention_softmax(scores: &Tensor, mask: &Tensor, scale: f64) -> candle_core::Result<Tensor> {
    scores.apply_op2(mask, AttentionSoftmax { scale })
}

struct AttentionSoftmax {
    scale: f64,
}

impl AttentionSoftmax {
    fn forward<T: Real>(&self, scores: &[T], mask: &[T], dims: &[usize]) -> Vec<T> {
        let (heads, t, s) = (dims[1], dims[2], dims[3]);
        let scale = T::from_f64(self.scale);
        let mut out = vec![T::zero(); scores.len()];
        out.par_chunks_mut(s).zip(scores.par_chunks(s)).enumerate().for_each(|(r, (y, x))| {
            let (batch, row) = (r / (heads * t), r % t);
            let m = &mask[(batch * t + row) * s..(batch * t + row + 1) * s];
            let mut max = T::from_f64(f64::NEG_INFINITY);
            for j in 0..s {
                y[j] = x[j] * scale + m[j];
                if y[j] > max {
                    max = y[j];
                }
            }
            let mut sum = T::zero();
            for v in y.iter_mut() {
                *v = (*v - max).exp();
                sum += *v;
            }
            let inv = T::one() / sum;
            for v in y.iter_mut() {
                *v *= inv;
            }
        });
        out
    }
}

impl CustomOp2 for AttentionSoftmax {
    fn name(&self) -> &'static str {
        "attention-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = check_attention(l1, l2)?;
        let name = self.name();
        let out =
            float_kernel!(name, s1, |T| self.forward::<T>(contiguous(s1, l1, name)?, contiguous(s2, l2, name)?, dims));
        Ok((out, l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        check_attention(l1, l2)?;
        super::cuda::attention_softmax(self.scale, s1, l1, s2, l2)
    }

    /// The softmax Jacobian: `dx = scale * y * (g - sum(g * y))`; the mask is a constant.
    fn bwd(
        &self,
        _: &Tensor,
        _: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = res.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxGrad { scale: self.scale })?;
        Ok((Some(grad), None))
    }
}

/// The dims of scores `[b, h, t, s]` that fit a mask `[b, 1, t, s]`.
fn check_attention<'a>(scores: &'a Layout, mask: &Layout) -> candle_core::Result<&'a [usize]> {
    let dims = scores.dims();
    if dims.len() != 4 || mask.dims() != [dims[0], 1, dims[2], dims[3]] {
        bail!("attention-softmax: scores {:?} and mask {:?} do not fit", dims, mask.dims());
    }
    Ok(dims)
}

struct SoftmaxGrad {
    scale: f64,
}

impl SoftmaxGrad {
    fn backward<T: Real>(&self, y: &[T], g: &[T], s: usize) -> Vec<T> {
        let scale = T::from_f64(self.scale);
        let mut out = vec![T::zero(); y.len()];
        out.par_chunks_mut(s).zip(y.par_chunks(s).zip(g.par_chunks(s))).for_each(|(dx, (y, g))| {
            let mut dot = T::zero();
            for j in 0..s {
                dot += g[j] * y[j];
            }
            for j in 0..s {
                dx[j] = scale * y[j] * (g[j] - dot);
            }
        });
        out
    }
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "attention-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let s = check_same_shape(self.name(), l1, l2)?;
        let name = self.name();
        let out =
            float_kernel!(name, s1, |T| self.backward::<T>(contiguous(s1, l1, name)?, contiguous(s2, l2, name)?, s));
        Ok((out, l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        check_same_shape(self.name(), l1, l2)?;
        super::cuda::softmax_grad(self.scale, s1, l1, s2, l2)
    }
}

/// The length of the last dimension of two tensors of the same shape.
fn check_same_shape(op: &str, a: &Layout, b: &Layout) -> candle_core::Result<usize> {
    if a.dims() != b.dims() {
        bail!("{op}: shapes {:?} and {:?} differ", a.dims(), b.dims());
    }
    Ok(*a.dims().last().unwrap_or(&1))
}

/// `softmax` (the softmax of `x` over its last dimension, computed outside the graph),
/// with the gradient of that softmax towards `x`: `y * (g - sum(g * y))`, four passes over
/// the tensor on any device.
pub fn with_softmax_gradient(x: &Tensor, softmax: &Tensor) -> candle_core::Result<Tensor> {
    x.apply_op2(softmax, SoftmaxGradient)
}

struct SoftmaxGradient;

impl SoftmaxGradient {
    /// The value is the second argument, copied: a custom op returns new storage.
    fn copy<S: BackendStorage>(storage: &S, layout: &Layout) -> candle_core::Result<(S, Shape)> {
        if !layout.is_contiguous() || layout.start_offset() != 0 {
            bail!("with_softmax_gradient needs a softmax that owns its contiguous storage");
        }
        Ok((storage.try_clone(layout)?, layout.shape().clone()))
    }
}

impl CustomOp2 for SoftmaxGradient {
    fn name(&self) -> &'static str {
        "softmax-gradient"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        Self::copy(s2, l2)
    }

    fn cuda_fwd(
        &self,
        _: &CudaStorage,
        _: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        Self::copy(s2, l2)
    }

    fn bwd(
        &self,
        _: &Tensor,
        _: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let gy = (grad * y)?;
        let dx = (&gy - y.broadcast_mul(&gy.sum_keepdim(candle_core::D::Minus1)?)?)?;
        Ok((Some(dx), None))
    }
}

/// Per row of `logits` `[n, vocab]`, the negative log-likelihood of its target `[n]` (u32).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    logits.apply_op2(targets, CrossEntropy)
}

struct CrossEntropy;

/// The row's maximum and log-sum-exp.
fn log_sum_exp<T: Real>(row: &[T]) -> (T, T) {
    let mut max = T::from_f64(f64::NEG_INFINITY);
    for &v in row {
        if v > max {
            max = v;
        }
    }
    let mut sum = T::zero();
    for &v in row {
        sum += (v - max).exp();
    }
    (max, sum.ln())
}

impl CrossEntropy {
    fn forward<T: Real>(logits: &[T], targets: &[u32], vocab: usize) -> candle_core::Result<Vec<T>> {
        if let Some(t) = targets.iter().find(|&&t| t as usize >= vocab) {
            bail!("cross-entropy: target {t} is not below the vocabulary size {vocab}");
        }
        let mut out = vec![T::zero(); targets.len()];
        out.par_iter_mut().zip(logits.par_chunks(vocab).zip(targets.par_iter())).for_each(|(nll, (row, &t))| {
            let (max, lse) = log_sum_exp(row);
            *nll = lse - (row[t as usize] - max);
        });
        Ok(out)
    }
}

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = check_logits(l1, l2)?;
        let targets: &[u32] = contiguous(s2, l2, self.name())?;
        let name = self.name();
        let out = float_kernel!(name, s1, |T| Self::forward::<T>(contiguous(s1, l1, name)?, targets, dims[1])?);
        Ok((out, Shape::from(dims[0])))
    }

    /// A target outside the vocabulary gives a NaN loss there: checking on the host would
    /// wait for the GPU at every step.
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        check_logits(l1, l2)?;
        super::cuda::cross_entropy(s1, l1, s2, l2)
    }

    /// `dlogits = (softmax(logits) - onehot(target)) * g` per row; targets get none.
    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = logits.apply_op3_no_bwd(targets, &grad.contiguous()?, &CrossEntropyGrad)?;
        Ok((Some(grad), None))
    }
}

/// The dims of logits `[n, vocab]` that fit targets `[n]`.
fn check_logits<'a>(logits: &'a Layout, targets: &Layout) -> candle_core::Result<&'a [usize]> {
    let dims = logits.dims();
    if dims.len() != 2 || targets.dims() != [dims[0]] {
        bail!("cross-entropy: logits {:?} and targets {:?} do not fit", dims, targets.dims());
    }
    Ok(dims)
}

struct CrossEntropyGrad;

impl CrossEntropyGrad {
    fn backward<T: Real>(logits: &[T], targets: &[u32], g: &[T], vocab: usize) -> Vec<T> {
        let mut out = vec![T::zero(); logits.len()];
        out.par_chunks_mut(vocab).zip(logits.par_chunks(vocab)).zip(targets.par_iter().zip(g.par_iter())).for_each(
            |((dx, row), (&t, &g))| {
                if g == T::zero() {
                    return; // a position out of the loss
                }
                let (max, lse) = log_sum_exp(row);
                for (d, &v) in dx.iter_mut().zip(row) {
                    *d = (v - max - lse).exp() * g;
                }
                dx[t as usize] -= g;
            },
        );
        out
    }
}

impl CustomOp3 for CrossEntropyGrad {
    fn name(&self) -> &'static str {
        "cross-entropy-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let vocab = l1.dims()[1];
        let targets: &[u32] = contiguous(s2, l2, self.name())?;
        let name = self.name();
        let out = float_kernel!(name, s1, |T| Self::backward::<T>(
            contiguous(s1, l1, name)?,
            targets,
            contiguous(s3, l3, name)?,
            vocab
        ));
        Ok((out, l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        s3: &CudaStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        check_logits(l1, l2)?;
        super::cuda::cross_entropy_grad(s1, l1, s2, l2, s3, l3)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{D, Device, Var};

    use super::*;
    use crate::random::SplitMix;
    use crate::train::model::{composed_nll, softmax_last_dim};

    fn random(shape: &[usize], seed: u64) -> candle_core::Result<Tensor> {
        let mut rng = SplitMix::new(seed, &[]);
        let n = shape.iter().product();
        let values: Vec<f64> =
            (0..n).map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 6.0 - 3.0).collect();
        Tensor::from_vec(values, shape, &Device::Cpu)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).and_then(|d| d.abs()?.max_all()?.to_scalar::<f64>()).unwrap_or(f64::INFINITY)
    }

    /// The fused kernels and the composed ops give the same values and gradients.
    #[test]
    fn fused_kernels_match_the_composed_ops() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let scores = Var::from_tensor(&random(&[2, 3, 5, 5], 1)?)?;
        let causal: Vec<f64> =
            (0..2 * 25).map(|i| if (i % 25) % 5 <= (i % 25) / 5 { 0.0 } else { f64::NEG_INFINITY }).collect();
        let mask = Tensor::from_vec(causal, (2, 1, 5, 5), &dev)?;
        let weights = random(&[2, 3, 5, 5], 2)?;
        let fused = attention_softmax(scores.as_tensor(), &mask, 0.7)?;
        let composed = softmax_last_dim(&(scores.as_tensor() * 0.7)?.broadcast_add(&mask)?).expect("composed");
        assert!(max_diff(&fused, &composed) < 1e-15);
        assert!(max_diff(&fused.sum(D::Minus1)?, &Tensor::ones((2, 3, 5), DType::F64, &dev)?) < 1e-15);
        let g1 = (fused * &weights)?.sum_all()?.backward()?;
        let g2 = (composed * &weights)?.sum_all()?.backward()?;
        let (g1, g2) = (g1.get(scores.as_tensor()).expect("grad"), g2.get(scores.as_tensor()).expect("grad"));
        assert!(max_diff(g1, g2) < 1e-14, "softmax gradients differ by {}", max_diff(g1, g2));

        let logits = Var::from_tensor(&random(&[6, 11], 3)?)?;
        let targets = Tensor::new(&[0u32, 10, 3, 3, 7, 1], &dev)?;
        let mask = Tensor::new(&[1.0f64, 1.0, 0.0, 1.0, 1.0, 0.5], &dev)?;
        let fused = cross_entropy(logits.as_tensor(), &targets)?;
        let composed = composed_nll(logits.as_tensor(), &targets).expect("composed");
        assert!(max_diff(&fused, &composed) < 1e-14);
        let g1 = (fused * &mask)?.sum_all()?.backward()?;
        let g2 = (composed * &mask)?.sum_all()?.backward()?;
        let (g1, g2) = (g1.get(logits.as_tensor()).expect("grad"), g2.get(logits.as_tensor()).expect("grad"));
        assert!(max_diff(g1, g2) < 1e-14, "cross-entropy gradients differ by {}", max_diff(g1, g2));
        // A target outside the vocabulary is an error, not a read past the row.
        assert!(cross_entropy(logits.as_tensor(), &Tensor::new(&[11u32, 0, 0, 0, 0, 0], &dev)?).is_err());
        Ok(())
    }

    /// The CUDA kernels give the values and gradients of the CPU's f64 kernels, from the
    /// same (rounded) inputs: within f32 rounding in f32, within bf16's in bf16. Rows of
    /// 37 and 300 attention weights and 3,001 logits take one, a few and many values per
    /// thread.
    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_kernels_match_the_cpu() -> candle_core::Result<()> {
        let gpu = Device::new_cuda(0)?;
        let relative = |a: &Tensor, b: &Tensor| -> candle_core::Result<f64> {
            let a = a.to_device(&Device::Cpu)?.to_dtype(DType::F64)?;
            let scale = b.abs()?.max_all()?.to_scalar::<f64>()?.max(1e-30);
            Ok(max_diff(&a, b) / scale)
        };
        for (dtype, tolerance) in [(DType::F32, 1e-5), (DType::BF16, 1e-2)] {
            for (rows, t) in [(2, 37), (1, 300)] {
                // Two packed documents per row: causal within each, none across.
                let mask: Vec<f64> = (0..rows * t * t)
                    .map(|i| {
                        let (q, k) = ((i / t) % t, i % t);
                        let same_document = (q < t / 2) == (k < t / 2);
                        if k <= q && same_document { 0.0 } else { f64::NEG_INFINITY }
                    })
                    .collect();
                let mask = Tensor::from_vec(mask, (rows, 1, t, t), &Device::Cpu)?;
                // Inputs rounded to the dtype first, so that both sides start from the same values.
                let scores = random(&[rows, 3, t, t], 4)?.to_dtype(dtype)?.to_dtype(DType::F64)?;
                let weights = random(&[rows, 3, t, t], 5)?;
                let cpu = Var::from_tensor(&scores)?;
                let cpu_y = attention_softmax(cpu.as_tensor(), &mask, 0.3)?;
                let cpu_grads = (&cpu_y * &weights)?.sum_all()?.backward()?;
                let cuda = Var::from_tensor(&scores.to_dtype(dtype)?.to_device(&gpu)?)?;
                let cuda_y = attention_softmax(cuda.as_tensor(), &mask.to_dtype(DType::F32)?.to_device(&gpu)?, 0.3)?;
                assert_eq!(cuda_y.dtype(), dtype);
                let loss = (cuda_y.to_dtype(DType::F32)? * weights.to_dtype(DType::F32)?.to_device(&gpu)?)?;
                let cuda_grads = loss.sum_all()?.backward()?;
                let err = relative(&cuda_y, &cpu_y)?;
                assert!(err < tolerance, "{dtype:?} attention softmax ({rows} x {t}) is off by {err}");
                let (g_cuda, g_cpu) = (cuda_grads.get(cuda.as_tensor()), cpu_grads.get(cpu.as_tensor()));
                let err = relative(g_cuda.expect("grad"), g_cpu.expect("grad"))?;
                assert!(err < tolerance, "{dtype:?} attention softmax gradient ({rows} x {t}) is off by {err}");
            }

            let (n, vocab) = (7, 3001);
            let logits = (random(&[n, vocab], 6)? * 3.0)?.to_dtype(dtype)?.to_dtype(DType::F64)?;
            let targets = Tensor::new(&[0u32, 3000, 17, 17, 2500, 1, 999], &Device::Cpu)?;
            let loss_mask = Tensor::new(&[1.0f64, 1.0, 0.0, 1.0, 0.5, 1.0, 1.0], &Device::Cpu)?;
            let cpu = Var::from_tensor(&logits)?;
            let cpu_nll = cross_entropy(cpu.as_tensor(), &targets)?;
            let cpu_grads = (&cpu_nll * &loss_mask)?.sum_all()?.backward()?;
            let cuda = Var::from_tensor(&logits.to_dtype(dtype)?.to_device(&gpu)?)?;
            let cuda_nll = cross_entropy(cuda.as_tensor(), &targets.to_device(&gpu)?)?;
            let weighted = (cuda_nll.to_dtype(DType::F32)? * loss_mask.to_dtype(DType::F32)?.to_device(&gpu)?)?;
            let cuda_grads = weighted.sum_all()?.backward()?;
            let err = relative(&cuda_nll, &cpu_nll)?;
            assert!(err < tolerance, "{dtype:?} cross-entropy is off by {err}");
            let err = relative(
                cuda_grads.get(cuda.as_tensor()).expect("grad"),
                cpu_grads.get(cpu.as_tensor()).expect("grad"),
            )?;
            assert!(err < tolerance, "{dtype:?} cross-entropy gradient is off by {err}");
            // A target outside the vocabulary makes that row's loss NaN, not a read past it.
            let bad = Tensor::new(&[0u32, 3001, 0, 0, 0, 0, 0], &gpu)?;
            let nll = cross_entropy(cuda.as_tensor(), &bad)?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            assert!(nll[1].is_nan() && nll[0].is_finite(), "{nll:?}");
        }
        Ok(())
    }
}
