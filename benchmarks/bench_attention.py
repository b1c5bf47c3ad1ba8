"""Attention speed: our MultiHeadAttention (fused path) vs ``torch.nn.MultiheadAttention`` vs raw
``F.scaled_dot_product_attention`` on the same shapes; and our written-out teaching path vs
SDPA restricted to its math backend. Same run, same inputs; medians of repeated calls.

    python benchmarks/bench_attention.py [--batch 8] [--seq 256] [--d-model 512] [--heads 8]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F  # noqa: N812
from _timing import interleaved_medians
from torch.nn.attention import SDPBackend, sdpa_kernel

from mlcraft.models import MultiHeadAttention, causal_mask, merge_heads, scaled_dot_product_attention, split_heads
from mlcraft.utils import best_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--d-model", type=int, default=512)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    device = best_device()
    torch.manual_seed(0)
    ours = MultiHeadAttention(args.d_model, args.heads, causal=True).to(device).eval()
    peer = torch.nn.MultiheadAttention(args.d_model, args.heads, batch_first=True).to(device).eval()
    with torch.no_grad():
        peer.in_proj_weight.copy_(ours.qkv.weight)
        peer.in_proj_bias.copy_(ours.qkv.bias)
        peer.out_proj.weight.copy_(ours.proj.weight)
        peer.out_proj.bias.copy_(ours.proj.bias)
    x = torch.randn(args.batch, args.seq, args.d_model, device=device)
    blocked = ~causal_mask(args.seq, device=device)  # nn.MultiheadAttention: True = blocked

    def raw_sdpa() -> torch.Tensor:
        q, k, v = ours.qkv(x).split(args.d_model, dim=-1)
        q, k, v = (split_heads(t, args.heads) for t in (q, k, v))
        return ours.proj(merge_heads(F.scaled_dot_product_attention(q, k, v, is_causal=True)))

    with torch.inference_mode():
        torch.testing.assert_close(
            ours(x)[0], peer(x, x, x, attn_mask=blocked, need_weights=False)[0], rtol=1e-4, atol=1e-4
        )
        q, k, v = (
            torch.randn(args.batch, args.heads, args.seq, args.d_model // args.heads, device=device) for _ in range(3)
        )

        def math_sdpa() -> torch.Tensor:
            with sdpa_kernel(SDPBackend.MATH):
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)

        t = interleaved_medians(
            {
                "ours": lambda: ours(x),
                "peer": lambda: peer(x, x, x, attn_mask=blocked, need_weights=False),
                "sdpa": raw_sdpa,
                "teach": lambda: scaled_dot_product_attention(q, k, v, is_causal=True),
                "math": math_sdpa,
            },
            device,
            args.repeats,
        )
    t_ours, t_peer, t_sdpa, t_teach, t_math = (t[name] for name in ("ours", "peer", "sdpa", "teach", "math"))
    print(
        f"device {device}, B={args.batch} T={args.seq} C={args.d_model} H={args.heads}, causal, median of {args.repeats}"
    )
    print(f"  MultiHeadAttention (fused)    {t_ours * 1e3:8.3f} ms")
    print(f"  nn.MultiheadAttention         {t_peer * 1e3:8.3f} ms   ours/peer {t_ours / t_peer:5.2f}x")
    print(f"  raw SDPA + projections        {t_sdpa * 1e3:8.3f} ms   ours/sdpa {t_ours / t_sdpa:5.2f}x (goal <= 1.05)")
    print(f"  teaching path (written out)   {t_teach * 1e3:8.3f} ms")
    print(f"  SDPA math backend             {t_math * 1e3:8.3f} ms   teaching/math {t_teach / t_math:5.2f}x")


if __name__ == "__main__":
    main()
