//! AdamW with decoupled weight decay, the learning-rate schedule and gradient clipping.
//!
//! Written here rather than taken from candle-nn so that the moments can be saved and
//! restored exactly (a resumed run continues bit for bit) and so that weight decay skips
//! the norm gains, as is usual for transformers.

use std::collections::HashMap;

use candle_core::{D, DType, Tensor, Var, backprop::GradStore};
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

    /// One update with learning rate `lr` from `grads` (already clipped). Matrices decay;
    /// vectors (norm gains) do not.
    pub fn update(&mut self, parameters: &[(String, &Var)], grads: &[Tensor], lr: f64) -> Result<()> {
        let AdamWConfig { beta1, beta2, eps, weight_decay } = self.config;
        self.step += 1;
        let correction1 = 1.0 - beta1.powi(self.step as i32);
        let correction2 = 1.0 - beta2.powi(self.step as i32);
        for (((_, p), g), state) in parameters.iter().zip(grads).zip(&mut self.moments) {
            state.m = ((&state.m * beta1)? + (g * (1.0 - beta1))?)?;
            state.v = ((&state.v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let m_hat = (&state.m / correction1)?;
            let v_hat = (&state.v / correction2)?;
            let step = (m_hat / (v_hat.sqrt()? + eps)?)?;
            let decayed =
                if p.rank() > 1 { (p.as_tensor() * (1.0 - lr * weight_decay))? } else { p.as_tensor().clone() };
            p.set(&(decayed - (step * lr)?)?)?;
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

/// The gradients' global L2 norm, and the gradients scaled down to norm `max_norm` when it
/// is exceeded (`max_norm` 0: never).
pub fn clip(grads: Vec<Tensor>, max_norm: f64) -> Result<(Vec<Tensor>, f64)> {
    let norm = global_norm(&grads)?;
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        let scaled = grads.iter().map(|g| g * scale).collect::<candle_core::Result<_>>()?;
        return Ok((scaled, norm));
    }
    Ok((grads, norm))
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
        opt.update(&params, &[gw, gg], 0.01)?;
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

    #[test]
    fn clipping_scales_to_the_max_norm() -> Result<()> {
        let dev = Device::Cpu;
        let p = Var::from_tensor(&Tensor::zeros(2, DType::F32, &dev)?)?;
        let loss = (p.as_tensor() * &Tensor::new(&[3.0f32, 4.0], &dev)?)?.sum_all()?;
        let grads = loss.backward()?;
        let params = vec![("p".to_string(), &p)];
        let grads = gradients(&params, &grads)?;
        let (clipped, norm) = clip(grads.clone(), 1.0)?;
        assert!((norm - 5.0).abs() < 1e-9);
        let g = clipped[0].to_vec1::<f32>()?;
        assert!((g[0] - 0.6).abs() < 1e-5 && (g[1] - 0.8).abs() < 1e-5, "{g:?}");
        let (unclipped, _) = clip(grads, 10.0)?;
        assert_eq!(unclipped[0].to_vec1::<f32>()?, [3.0, 4.0]);
        Ok(())
    }
}
