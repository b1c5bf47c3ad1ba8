"""Generation throughput (tokens/s) with and without the KV cache, same model, same run.

Without a cache every new token re-runs attention over the whole context (quadratic work);
with it each step processes one token. Both produce identical tokens (checked here).

    python benchmarks/bench_generate.py [--tokens 200] [--d-model 256] [--layers 4]
"""

from __future__ import annotations

import argparse

import torch
from _timing import interleaved_medians

from mlcraft.inference import generate
from mlcraft.models import GPT, GPTConfig
from mlcraft.utils import best_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = best_device()
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=256, block_size=args.tokens + 16, n_layer=args.layers, n_head=4, d_model=args.d_model)
    model = GPT(config).to(device).eval()
    prompt = torch.randint(0, 256, (1, 16), device=device)

    def run(use_cache: bool) -> torch.Tensor:
        gen = torch.Generator(device=device).manual_seed(0)
        return generate(model, prompt, args.tokens, temperature=1.0, top_k=50, use_cache=use_cache, generator=gen)

    assert torch.equal(run(True), run(False)), "cached and uncached generation must give the same tokens"
    t = interleaved_medians(
        {"cached": lambda: run(True), "uncached": lambda: run(False)}, device, args.repeats, warmup=0
    )
    cached, uncached = t["cached"], t["uncached"]
    print(f"device {device}, GPT {args.layers}x{args.d_model}, {args.tokens} new tokens, median of {args.repeats}")
    print(f"  with KV cache      {args.tokens / cached:9.1f} tokens/s")
    print(f"  without cache      {args.tokens / uncached:9.1f} tokens/s")
    print(f"  speed-up           {uncached / cached:9.2f}x")


if __name__ == "__main__":
    main()
