#!/usr/bin/env python3
"""The PyTorch reference for `cargo bench --bench train -- step`: the same Llama shape
(transformers' LlamaForCausalLM), batch, sequence length and thread count, full updates
(forward, cross-entropy, backward, clipping, AdamW) on random tokens, in eager mode.

    python3 scripts/bench_train_torch.py --preset tiny --batch 8 --seq 512 --steps 5 --threads 1

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
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    hidden, inter, layers, heads, kv = PRESETS[a.preset]
    config = LlamaConfig(vocab_size=a.vocab, hidden_size=hidden, intermediate_size=inter,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                         max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM._from_config(config, attn_implementation=a.attention).float().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    batches = [torch.randint(0, a.vocab, (a.batch, a.seq + 1)) for _ in range(a.steps + 1)]

    def update(rows):
        logits = model(input_ids=rows[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, a.vocab), rows[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    update(batches[0])
    start = time.perf_counter()
    for rows in batches[1:]:
        loss = update(rows)
    seconds = time.perf_counter() - start
    print(json.dumps({
        "engine": f"pytorch {torch.__version__} ({a.attention})", "preset": a.preset,
        "parameters": sum(p.numel() for p in model.parameters()), "threads": a.threads,
        "batch": a.batch, "seq": a.seq, "steps": a.steps, "step_s": seconds / a.steps,
        "tokens_per_s": a.steps * a.batch * a.seq / seconds, "last_loss": loss,
    }))


if __name__ == "__main__":
    main()
