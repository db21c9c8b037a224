#!/usr/bin/env python3
"""Loads a mathlake checkpoint in transformers' LlamaForCausalLM and compares its logits
with mathlake's own on the same token ids.

    cargo bench --bench train -- logits --checkpoint RUN/checkpoints/step-000100 --out logits.safetensors
    python3 scripts/hf_parity.py RUN/checkpoints/step-000100 logits.safetensors

Needs torch, transformers and safetensors. Exits 1 when the largest difference is above
1e-4 (f32 throughout).
"""
import sys

import torch
from safetensors.torch import load_file
from transformers import LlamaForCausalLM


def main():
    checkpoint, logits_file = sys.argv[1], sys.argv[2]
    model = LlamaForCausalLM.from_pretrained(checkpoint, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    ours = load_file(logits_file)
    with torch.no_grad():
        theirs = model(input_ids=ours["input_ids"]).logits
    diff = (theirs - ours["logits"]).abs().max().item()
    scale = ours["logits"].abs().max().item()
    agree = (theirs.argmax(-1) == ours["logits"].argmax(-1)).float().mean().item()
    print(f"transformers LlamaForCausalLM vs mathlake: max |logit difference| {diff:.3e} "
          f"(largest logit {scale:.3f}), argmax agreement {agree:.4f}, "
          f"{sum(p.numel() for p in model.parameters())} parameters")
    sys.exit(0 if diff < 1e-4 else 1)


if __name__ == "__main__":
    main()
