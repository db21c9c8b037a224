//! AdamW with decoupled weight decay, the learning-rate schedule and gradient clipping.
//!
//! Written here rather than taken from candle-nn so that the moments can be saved and
//! restored exactly (a resumed run continues bit for bit) and so that weight decay skips
//! the norm gains, as is usual for transformers.

use std::collections::HashMap;

use candle_core::{CpuStorage, D, DType, InplaceOp2, InplaceOp3, Layout, Tensor, Var, backprop::GradStore, bail};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// AdamW's settings; the learning rate comes from the [`Schedule`] each step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 }
    }
}

/// One parameter's moments.
struct Moments {
    m: Tensor,
    v: Tensor,
}

pub struct AdamW {
    config: AdamWConfig,
    /// Updates applied so far (the bias corrections need it).
    pub step: u64,
    moments: Vec<Moments>,
}

impl AdamW {
    pub fn new(config: AdamWConfig, parameters: &[(String, &Var)]) -> Result<AdamW> {
        let moments = parameters
            .iter()
            .map(|(_, p)| Ok(Moments { m: p.zeros_like()?, v: p.zeros_like()? }))
            .collect::<Result<_>>()?;
        Ok(AdamW { config, step: 0, moments })
    }

    /// One update with learning rate `lr` from `grads` times `grad_scale` (the clipping
    /// factor of [`clip`]). Matrices decay; vectors (norm gains) do not.
    ///
    /// On the CPU in f32 the moments and the weights are updated in place, three passes a
    /// parameter ([`Moment`], [`Step`]); composed from tensor ops the update took a dozen
    /// passes, each into a freshly allocated tensor. Other devices and dtypes compose it.
    pub fn update(&mut self, parameters: &[(String, &Var)], grads: &[Tensor], grad_scale: f64, lr: f64) -> Result<()> {
        let AdamWConfig { beta1, beta2, eps, weight_decay } = self.config;
        self.step += 1;
        let correction1 = 1.0 - beta1.powi(self.step as i32);
        let correction2 = 1.0 - beta2.powi(self.step as i32);
        for (((_, p), g), state) in parameters.iter().zip(grads).zip(&mut self.moments) {
            let decay = if p.rank() > 1 { 1.0 - lr * weight_decay } else { 1.0 };
            if [p.as_tensor(), g, &state.m, &state.v].iter().all(|t| t.device().is_cpu() && t.dtype() == DType::F32) {
                let g = g.contiguous()?;
                state.m.inplace_op2(&g, &Moment { beta: beta1, scale: grad_scale, square: false })?;
                state.v.inplace_op2(&g, &Moment { beta: beta2, scale: grad_scale, square: true })?;
                let step = Step { decay, lr, correction1, correction2, eps };
                p.as_tensor().inplace_op3(&state.m, &state.v, &step)?;
                continue;
            }
            let g = (g * grad_scale)?;
            state.m = ((&state.m * beta1)? + (&g * (1.0 - beta1))?)?;
            state.v = ((&state.v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let m_hat = (&state.m / correction1)?;
            let v_hat = (&state.v / correction2)?;
            let step = (m_hat / (v_hat.sqrt()? + eps)?)?;
            p.set(&((p.as_tensor() * decay)? - (step * lr)?)?)?;
        }
        Ok(())
    }

    /// The moments under `{name}.exp_avg` and `{name}.exp_avg_sq` (PyTorch's names).
    pub fn state_tensors(&self, parameters: &[(String, &Var)]) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for ((name, _), state) in parameters.iter().zip(&self.moments) {
            out.insert(format!("{name}.exp_avg"), state.m.clone());
            out.insert(format!("{name}.exp_avg_sq"), state.v.clone());
        }
        out
    }

    /// Restores the moments saved by [`AdamW::state_tensors`].
    pub fn restore(
        &mut self,
        parameters: &[(String, &Var)],
        mut saved: HashMap<String, Tensor>,
        step: u64,
    ) -> Result<()> {
        for ((name, p), state) in parameters.iter().zip(&mut self.moments) {
            for (suffix, slot) in [("exp_avg", &mut state.m), ("exp_avg_sq", &mut state.v)] {
                let key = format!("{name}.{suffix}");
                let t = saved
                    .remove(&key)
                    .ok_or_else(|| Error::user(format!("the optimizer state has no tensor {key}")))?;
                if t.dims() != p.dims() {
                    return Err(Error::user(format!(
                        "optimizer tensor {key} has shape {:?}, the parameter {:?}",
                        t.dims(),
                        p.dims()
                    )));
                }
                *slot = t.to_dtype(p.dtype())?.to_device(p.device())?;
            }
        }
        self.step = step;
        Ok(())
    }
}

/// Linear warmup, then a cosine from the peak down to the minimum at the last step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub peak: f64,
    pub min: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
}

impl Schedule {
    /// The learning rate of update `step` (0-based).
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.peak * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / decay_steps as f64).min(1.0);
        self.min + 0.5 * (self.peak - self.min) * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// The gradient of each parameter (zeros for one that got none).
pub fn gradients(parameters: &[(String, &Var)], grads: &GradStore) -> Result<Vec<Tensor>> {
    Ok(parameters
        .iter()
        .map(|(_, p)| match grads.get(p.as_tensor()) {
            Some(g) => Ok(g.clone()),
            None => p.zeros_like(),
        })
        .collect::<candle_core::Result<_>>()?)
}

/// The gradients' global L2 norm, and the factor that scales them down to norm `max_norm`
/// when it is exceeded (`max_norm` 0: never), 1 otherwise. [`AdamW::update`] applies it.
pub fn clip(grads: &[Tensor], max_norm: f64) -> Result<(f64, f64)> {
    let norm = global_norm(grads)?;
    let scale = if max_norm > 0.0 && norm > max_norm { max_norm / (norm + 1e-6) } else { 1.0 };
    Ok((scale, norm))
}

/// The L2 norm of all tensors together. Squares are summed per row where the tensors are
/// (on a GPU a whole-tensor sum runs in a single block, and each read-back waits for the
/// device), the row sums in f64, and one number is read back for all tensors.
pub fn global_norm(tensors: &[Tensor]) -> Result<f64> {
    let mut sums = Vec::with_capacity(tensors.len());
    for t in tensors {
        let t = if t.rank() == 0 { t.reshape(1)? } else { t.clone() };
        sums.push(t.sqr()?.sum_keepdim(D::Minus1)?.to_dtype(DType::F64)?.sum_all()?);
    }
    if sums.is_empty() {
        return Ok(0.0);
    }
    Ok(Tensor::stack(&sums, 0)?.sum_all()?.to_scalar::<f64>()?.sqrt())
}

/// Elements per rayon task in the in-place kernels: big enough to pay for the task, small
/// enough that a 2-core machine splits even the norm gains' vectors.
const CHUNK: usize = 1 << 14;

fn contiguous_mut<'a>(storage: &'a mut CpuStorage, layout: &Layout) -> candle_core::Result<&'a mut [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((start, end))) => Ok(&mut v[start..end]),
        _ => bail!("the in-place AdamW kernels take contiguous f32 tensors"),
    }
}

fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((start, end))) => Ok(&v[start..end]),
        _ => bail!("the in-place AdamW kernels take contiguous f32 tensors"),
    }
}

/// A moment in place: `m = beta * m + (1 - beta) * x` with `x` the scaled gradient, or its
/// square for the second moment.
struct Moment {
    beta: f64,
    scale: f64,
    square: bool,
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "adamw-moment"
    }

    fn cpu_fwd(&self, m: &mut CpuStorage, ml: &Layout, g: &CpuStorage, gl: &Layout) -> candle_core::Result<()> {
        let (m, g) = (contiguous_mut(m, ml)?, contiguous(g, gl)?);
        if m.len() != g.len() {
            bail!("adamw-moment: {} moments for {} gradients", m.len(), g.len());
        }
        // The same f32 roundings as the composed ops: candle multiplies a tensor by a scalar
        // cast to f32, and divides by one as a multiplication by its reciprocal.
        let (beta, rest, scale) = (self.beta as f32, (1.0 - self.beta) as f32, self.scale as f32);
        m.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).for_each(|(m, g)| {
            for (m, &g) in m.iter_mut().zip(g) {
                let x = g * scale;
                *m = beta * *m + rest * if self.square { x * x } else { x };
            }
        });
        Ok(())
    }
}

/// The weights in place from their moments:
/// `w = decay * w - lr * (m / c1) / (sqrt(v / c2) + eps)`, `c1` and `c2` the bias corrections.
struct Step {
    decay: f64,
    lr: f64,
    correction1: f64,
    correction2: f64,
    eps: f64,
}

impl InplaceOp3 for Step {
    fn name(&self) -> &'static str {
        "adamw-step"
    }

    fn cpu_fwd(
        &self,
        w: &mut CpuStorage,
        wl: &Layout,
        m: &CpuStorage,
        ml: &Layout,
        v: &CpuStorage,
        vl: &Layout,
    ) -> candle_core::Result<()> {
        let (w, m, v) = (contiguous_mut(w, wl)?, contiguous(m, ml)?, contiguous(v, vl)?);
        if w.len() != m.len() || w.len() != v.len() {
            bail!("adamw-step: {} weights for {} and {} moments", w.len(), m.len(), v.len());
        }
        let (decay, lr, eps) = (self.decay as f32, self.lr as f32, self.eps as f32);
        let (inv1, inv2) = ((1.0 / self.correction1) as f32, (1.0 / self.correction2) as f32);
        w.par_chunks_mut(CHUNK).zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK))).for_each(|(w, (m, v))| {
            for ((w, &m), &v) in w.iter_mut().zip(m).zip(v) {
                *w = *w * decay - (m * inv1) / ((v * inv2).sqrt() + eps) * lr;
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_the_minimum() {
        let s = Schedule { peak: 1e-4, min: 1e-5, warmup_steps: 10, total_steps: 110 };
        assert!((s.lr(0) - 1e-5).abs() < 1e-12);
        assert!((s.lr(9) - 1e-4).abs() < 1e-12);
        assert!((s.lr(10) - 1e-4).abs() < 1e-12);
        assert!((s.lr(60) - 5.5e-5).abs() < 1e-12, "half way down the cosine");
        assert!((s.lr(110) - 1e-5).abs() < 1e-12);
        assert!((1..110).all(|i| s.lr(i + 10) <= s.lr(i + 9) + 1e-15), "never rises after warmup");
    }

    /// One AdamW step against the update written out by hand.
    #[test]
    fn adamw_matches_the_textbook_update() -> Result<()> {
        let dev = Device::Cpu;
        let w = Var::from_tensor(&Tensor::new(&[[1.0f32, -2.0], [0.5, 3.0]], &dev)?)?;
        let gain = Var::from_tensor(&Tensor::new(&[1.0f32, 1.0], &dev)?)?;
        let params = vec![("w".to_string(), &w), ("gain".to_string(), &gain)];
        let config = AdamWConfig { beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.1 };
        let mut opt = AdamW::new(config, &params)?;
        let gw = Tensor::new(&[[0.1f32, -0.2], [0.0, 4.0]], &dev)?;
        let gg = Tensor::new(&[0.5f32, -0.5], &dev)?;
        opt.update(&params, &[gw, gg], 1.0, 0.01)?;
        // Step 1: m_hat = g, v_hat = g², so the step is g / (|g| + eps) = sign(g).
        let got = w.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        let want = [1.0 * 0.999 - 0.01, -2.0 * 0.999 + 0.01, 0.5 * 0.999, 3.0 * 0.999 - 0.01];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        let gain = gain.as_tensor().to_vec1::<f32>()?;
        assert!((gain[0] - 0.99).abs() < 1e-6 && (gain[1] - 1.01).abs() < 1e-6, "norm gains do not decay: {gain:?}");
        Ok(())
    }

    /// The in-place kernels (CPU, f32) against the composed ops in f64, over three updates
    /// of a matrix and a norm gain larger than a kernel's chunk, with a clipping factor.
    #[test]
    fn in_place_update_follows_the_composed_one() -> Result<()> {
        let dev = Device::Cpu;
        let n = 3 * CHUNK + 5;
        let wave = |phase: f64| -> Vec<f64> { (0..2 * n).map(|i| (i as f64 * 0.37 + phase).sin()).collect() };
        let config = AdamWConfig::default();
        let mut finals = Vec::new();
        for dtype in [DType::F32, DType::F64] {
            let w = Var::from_tensor(&Tensor::from_vec(wave(1.0), (2, n), &dev)?.to_dtype(dtype)?)?;
            let gain = Var::from_tensor(&Tensor::from_vec(wave(2.0), 2 * n, &dev)?.to_dtype(dtype)?)?;
            let params = vec![("w".to_string(), &w), ("gain".to_string(), &gain)];
            let mut opt = AdamW::new(config, &params)?;
            for step in 0..3 {
                let gw = (Tensor::from_vec(wave(3.0 + step as f64), (2, n), &dev)? * 0.01)?.to_dtype(dtype)?;
                let gg = (Tensor::from_vec(wave(5.0 + step as f64), 2 * n, &dev)? * 0.02)?.to_dtype(dtype)?;
                opt.update(&params, &[gw, gg], 0.5, 0.01)?;
            }
            let moments = opt.state_tensors(&params);
            let mut out = Vec::new();
            for t in [w.as_tensor(), gain.as_tensor(), &moments["w.exp_avg"], &moments["w.exp_avg_sq"]] {
                out.push(t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?);
            }
            finals.push(out);
        }
        let names = ["w", "gain", "w.exp_avg", "w.exp_avg_sq"];
        for ((name, fused), composed) in names.iter().zip(&finals[0]).zip(&finals[1]) {
            let scale = composed.iter().fold(0.0, |m: f64, b| m.max(b.abs()));
            let worst = fused.iter().zip(composed).fold(0.0, |m: f64, (a, b)| m.max((a - b).abs()));
            assert!(worst < 1e-6 * scale, "{name}: differs by {worst} at a scale of {scale}");
        }
        let moved = finals[0][0].iter().zip(wave(1.0)).filter(|(a, b)| (**a - b).abs() > 1e-3).count();
        assert!(moved > n, "the weights moved: {moved} of {}", 2 * n);
        Ok(())
    }

    #[test]
    fn clipping_scales_to_the_max_norm() -> Result<()> {
        let dev = Device::Cpu;
        let p = Var::from_tensor(&Tensor::zeros(2, DType::F32, &dev)?)?;
        let loss = (p.as_tensor() * &Tensor::new(&[3.0f32, 4.0], &dev)?)?.sum_all()?;
        let grads = loss.backward()?;
        let params = vec![("p".to_string(), &p)];
        let grads = gradients(&params, &grads)?;
        let (scale, norm) = clip(&grads, 1.0)?;
        assert!((norm - 5.0).abs() < 1e-9);
        let g = (&grads[0] * scale)?.to_vec1::<f32>()?;
        assert!((g[0] - 0.6).abs() < 1e-5 && (g[1] - 0.8).abs() < 1e-5, "{g:?}");
        assert_eq!(clip(&grads, 10.0)?, (1.0, 5.0));
        assert_eq!(clip(&grads, 0.0)?, (1.0, 5.0), "0 never clips");
        Ok(())
    }
}
