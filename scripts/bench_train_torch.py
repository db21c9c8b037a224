#!/usr/bin/env python3
"""The PyTorch reference for `cargo bench --bench train -- step`: the same Llama shape
(transformers' LlamaForCausalLM), batch, sequence length and thread count, full updates
(forward, cross-entropy, backward, clipping, AdamW) on random tokens, in eager mode.
On a GPU, `--dtype bf16` autocasts the forward pass to bf16 over f32 weights, as mathlake's
bf16 does.

    python3 scripts/bench_train_torch.py --preset tiny --batch 8 --seq 512 --steps 5 --threads 1
    python3 scripts/bench_train_torch.py --preset small --device cuda --dtype bf16 --batch 16 --seq 1024

Prints one JSON line like the Rust bench.
"""
import argparse
import json
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

# src/train/model.rs Preset::config: (hidden, intermediate, layers, heads, kv heads).
PRESETS = {"tiny": (256, 688, 4, 4, 2), "small": (640, 1728, 10, 10, 5)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="tiny", choices=PRESETS)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--attention", default="sdpa", choices=["sdpa", "eager"])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    p.add_argument("--peak-tflops", type=float)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    hidden, inter, layers, heads, kv = PRESETS[a.preset]
    config = LlamaConfig(vocab_size=a.vocab, hidden_size=hidden, intermediate_size=inter,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                         max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM._from_config(config, attn_implementation=a.attention).float().train().to(a.device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    batches = [torch.randint(0, a.vocab, (a.batch, a.seq + 1), device=a.device) for _ in range(a.steps + 1)]

    def update(rows):
        with torch.autocast(a.device, dtype=torch.bfloat16, enabled=a.dtype == "bf16"):
            logits = model(input_ids=rows[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, a.vocab), rows[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    # loss.item() waits for the update, so the clock sees finished work.
    losses = [update(batches[0])]
    start, cpu_start = time.perf_counter(), time.process_time()
    for rows in batches[1:]:
        losses.append(update(rows))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    # PaLM's count, as benches/train.rs: 6 per matrix weight, 12 x layers x hidden x seq.
    matrix_weights = sum(p.numel() for p in model.parameters() if p.dim() == 2)
    tflops = (6 * matrix_weights + 12 * layers * hidden * a.seq) * a.steps * a.batch * a.seq / seconds / 1e12
    print(json.dumps({
        "engine": f"pytorch {torch.__version__} ({a.attention})", "preset": a.preset,
        "parameters": sum(p.numel() for p in model.parameters()), "device": a.device, "dtype": a.dtype,
        "threads": a.threads, "batch": a.batch, "seq": a.seq, "steps": a.steps, "step_s": seconds / a.steps,
        "tokens_per_s": a.steps * a.batch * a.seq / seconds, "cpu_s": cpu,
        "tokens_per_cpu_s": a.steps * a.batch * a.seq / cpu, "model_tflops": tflops,
        "mfu": tflops / a.peak_tflops if a.peak_tflops else None, "losses": losses,
    }))


if __name__ == "__main__":
    main()
