//! The generation loop behind `mathlake serve`: one thread owns the model, and every
//! decoding step advances all admitted requests together ([`Llama::decode_batch`]), so that
//! concurrent requests share each pass over the weights. A request joins at the next step
//! after it arrives (its prompt is read in that step) and leaves when it finishes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};

use candle_core::{D, DType, Tensor};
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::random::SplitMix;
use crate::tokenize::encoder::Encoder;
use crate::train::model::{KvCache, Llama};

/// How to draw tokens, as the OpenAI API names the settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    pub max_tokens: usize,
    /// 0 is greedy.
    pub temperature: f64,
    pub top_p: f64,
    pub seed: u64,
    /// Generation ends before the first of these in the text.
    pub stop: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Finish {
    /// The model ended (EOS) or a stop string came.
    Stop,
    /// `max_tokens` or the context ran out.
    Length,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub finish: Finish,
}

struct Request {
    prompt: Vec<u32>,
    sampling: Sampling,
    reply: oneshot::Sender<Result<Completion>>,
}

/// The handle the HTTP side holds; cloning it is cheap.
#[derive(Clone)]
pub struct Engine {
    requests: Sender<Request>,
    pub context: usize,
    pub stats: Arc<Stats>,
}

/// Counters since the start, for `/health`: they show whether requests share steps.
#[derive(Debug, Default)]
pub struct Stats {
    pub completions: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
    /// Forward passes of the model, each over every request decoding at the time.
    pub steps: AtomicU64,
    pub largest_batch: AtomicU64,
    /// Requests dropped unfinished because their client hung up.
    pub cancelled: AtomicU64,
}

impl Stats {
    pub fn to_json(&self) -> serde_json::Value {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        serde_json::json!({
            "completions": get(&self.completions),
            "prompt_tokens": get(&self.prompt_tokens),
            "completion_tokens": get(&self.completion_tokens),
            "steps": get(&self.steps),
            "largest_batch": get(&self.largest_batch),
            "cancelled": get(&self.cancelled),
        })
    }
}

impl Engine {
    /// Starts the model thread. At most `max_batch` requests decode together; more wait.
    pub fn start(model: Llama, encoder: Arc<Encoder>, max_batch: usize) -> Result<Engine> {
        let context = model.config.max_position_embeddings;
        let (requests, receiver) = channel();
        let stats = Arc::new(Stats::default());
        let counters = stats.clone();
        std::thread::Builder::new()
            .name("mathlake-serve-model".into())
            .spawn(move || run(&model, &encoder, max_batch.max(1), &receiver, &counters))?;
        Ok(Engine { requests, context, stats })
    }

    /// Generates a completion of `prompt` (token ids).
    pub async fn complete(&self, prompt: Vec<u32>, sampling: Sampling) -> Result<Completion> {
        if prompt.is_empty() {
            return Err(Error::user("the prompt is empty"));
        }
        if prompt.len() >= self.context {
            return Err(Error::user(format!(
                "the prompt has {} tokens; the model's context is {}: shorten the prompt",
                prompt.len(),
                self.context
            )));
        }
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request { prompt, sampling, reply })
            .map_err(|_| Error::Internal("the model thread has stopped".into()))?;
        answer.await.map_err(|_| Error::Internal("the model thread dropped a request".into()))?
    }
}

/// A request being decoded.
struct Sequence {
    request: Request,
    cache: KvCache,
    /// Tokens to feed at the next step: the prompt first, then each drawn token.
    pending: Vec<u32>,
    generated: Vec<u32>,
    rng: SplitMix,
}

fn run(model: &Llama, encoder: &Encoder, max_batch: usize, receiver: &Receiver<Request>, stats: &Stats) {
    let mut active: Vec<Sequence> = Vec::new();
    loop {
        // Block while idle; otherwise take whatever has arrived, up to the batch size.
        while active.len() < max_batch {
            let request = if active.is_empty() {
                match receiver.recv() {
                    Ok(r) => r,
                    Err(_) => return,
                }
            } else {
                match receiver.try_recv() {
                    Ok(r) => r,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            };
            let rng = SplitMix::new(request.sampling.seed, &[]);
            active.push(Sequence {
                pending: request.prompt.clone(),
                request,
                cache: KvCache::new(&model.config),
                generated: Vec::new(),
                rng,
            });
        }
        // A request whose client hung up is not worth another step.
        let before = active.len();
        active.retain(|s| !s.request.reply.is_closed());
        stats.cancelled.fetch_add((before - active.len()) as u64, Ordering::Relaxed);
        if active.is_empty() {
            continue;
        }
        stats.steps.fetch_add(1, Ordering::Relaxed);
        stats.largest_batch.fetch_max(active.len() as u64, Ordering::Relaxed);
        let logits = {
            let mut batch: Vec<(&[u32], &mut KvCache)> =
                active.iter_mut().map(|s| (s.pending.as_slice(), &mut s.cache)).collect();
            model.decode_batch(&mut batch)
        };
        let logits = match logits {
            Ok(l) => l,
            Err(e) => {
                for s in active.drain(..) {
                    let _ = s.request.reply.send(Err(Error::Internal(format!("the model failed: {e}"))));
                }
                continue;
            }
        };
        let mut still = Vec::with_capacity(active.len());
        for (i, mut s) in active.drain(..).enumerate() {
            match advance(&mut s, &logits, i, model.config.max_position_embeddings, encoder) {
                Ok(None) => still.push(s),
                Ok(Some(done)) => {
                    stats.completions.fetch_add(1, Ordering::Relaxed);
                    stats.prompt_tokens.fetch_add(done.prompt_tokens as u64, Ordering::Relaxed);
                    stats.completion_tokens.fetch_add(done.completion_tokens as u64, Ordering::Relaxed);
                    let _ = s.request.reply.send(Ok(done));
                }
                Err(e) => {
                    let _ = s.request.reply.send(Err(e));
                }
            }
        }
        active = still;
    }
}

/// Draws sequence `i`'s next token from its row of `logits`; returns the completion when
/// it is finished.
fn advance(
    s: &mut Sequence,
    logits: &Tensor,
    i: usize,
    context: usize,
    encoder: &Encoder,
) -> Result<Option<Completion>> {
    let sampling = &s.request.sampling;
    let next = draw(&logits.get(i)?, sampling, &mut s.rng)?;
    let done = |s: &Sequence, text: String, finish| Completion {
        text,
        prompt_tokens: s.request.prompt.len(),
        completion_tokens: s.generated.len(),
        finish,
    };
    if next == encoder.info.eos_id {
        return Ok(Some(done(s, encoder.decode(&s.generated)?, Finish::Stop)));
    }
    s.generated.push(next);
    let text = encoder.decode(&s.generated)?;
    if let Some(cut) = sampling.stop.iter().filter_map(|stop| text.find(stop.as_str())).min() {
        return Ok(Some(done(s, text[..cut].to_string(), Finish::Stop)));
    }
    if s.generated.len() >= sampling.max_tokens || s.request.prompt.len() + s.generated.len() >= context {
        return Ok(Some(done(s, text, Finish::Length)));
    }
    s.pending = vec![next];
    Ok(None)
}

/// The next token from logits `[vocab]`: the most likely at temperature 0, else a draw
/// from the smallest set of most likely tokens whose probability reaches `top_p`.
fn draw(logits: &Tensor, sampling: &Sampling, rng: &mut SplitMix) -> Result<u32> {
    if sampling.temperature <= 0.0 {
        return Ok(logits.argmax(D::Minus1)?.to_scalar::<u32>()?);
    }
    let logits: Vec<f32> = (logits.to_dtype(DType::F32)? / sampling.temperature)?.to_vec1()?;
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut order: Vec<(u32, f32)> = logits.iter().enumerate().map(|(id, &l)| (id as u32, (l - max).exp())).collect();
    let total: f32 = order.iter().map(|(_, p)| p).sum();
    order.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut kept = 0.0;
    let mut n = 0;
    for (_, p) in &order {
        kept += p / total;
        n += 1;
        if kept as f64 >= sampling.top_p {
            break;
        }
    }
    let kept_mass: f32 = order[..n].iter().map(|(_, p)| p).sum();
    let mut target = ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) as f32 * kept_mass;
    for (id, p) in &order[..n] {
        if target < *p {
            return Ok(*id);
        }
        target -= p;
    }
    Ok(order[n - 1].0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn sampling(temperature: f64, top_p: f64) -> Sampling {
        Sampling { max_tokens: 8, temperature, top_p, seed: 3, stop: vec![] }
    }

    #[test]
    fn greedy_takes_the_most_likely_and_top_p_cuts_the_tail() -> Result<()> {
        let logits = Tensor::new(&[0.0f32, 3.0, 2.9, -5.0], &Device::Cpu)?;
        let mut rng = SplitMix::new(1, &[]);
        assert_eq!(draw(&logits, &sampling(0.0, 1.0), &mut rng)?, 1);
        // Tokens 1 and 2 hold about 97% of the mass: top_p 0.9 never draws 0 or 3.
        let mut seen = [0usize; 4];
        for _ in 0..2000 {
            seen[draw(&logits, &sampling(1.0, 0.9), &mut rng)? as usize] += 1;
        }
        assert_eq!((seen[0], seen[3]), (0, 0), "{seen:?}");
        assert!(seen[1] > 850 && seen[2] > 750, "{seen:?}");
        // Without the cut, token 0 comes up now and then (about 2.6%).
        let mut seen = [0usize; 4];
        for _ in 0..2000 {
            seen[draw(&logits, &sampling(1.0, 1.0), &mut rng)? as usize] += 1;
        }
        assert!(seen[0] > 20 && seen[0] < 100, "{seen:?}");
        Ok(())
    }

    #[test]
    fn the_same_seed_draws_the_same_tokens() -> Result<()> {
        let logits = Tensor::new(&[0.5f32, 0.4, 0.3, 0.2, 0.1], &Device::Cpu)?;
        let run = |seed| -> Result<Vec<u32>> {
            let mut rng = SplitMix::new(seed, &[]);
            (0..32).map(|_| draw(&logits, &sampling(1.0, 1.0), &mut rng)).collect()
        };
        assert_eq!(run(7)?, run(7)?);
        assert_ne!(run(7)?, run(8)?);
        Ok(())
    }
}
