"""fp32 vs autocast (bf16 on CPU and recent GPUs, fp16 on older GPUs): time per training step
and memory, on the device present, same run.

Memory: on CUDA the peak allocated bytes; everywhere, the bytes of activations autograd saves
for the backward pass (counted with ``saved_tensors_hooks``), which is what autocast shrinks.

    python benchmarks/bench_amp.py [--hidden 2048] [--batch-size 256] [--repeats 10]
"""

from __future__ import annotations

import argparse
from contextlib import nullcontext
from typing import Any

import torch
from _timing import median_seconds
from torch import nn

from mlcraft.utils import amp_dtype, best_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    device = best_device()
    low = amp_dtype(device)
    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(4) for m in (nn.Linear(args.hidden, args.hidden), nn.GELU())]).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=low == torch.float16)
    inputs = torch.randn(args.batch_size, args.hidden, device=device)

    def context(dtype: torch.dtype | None) -> Any:
        return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()

    def step(dtype: torch.dtype | None) -> None:
        optimizer.zero_grad(set_to_none=True)
        with context(dtype):
            loss = model(inputs).float().pow(2).mean()
        scaler.scale(loss).backward() if dtype == torch.float16 else loss.backward()
        if dtype == torch.float16:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()

    def saved_bytes(dtype: torch.dtype | None) -> int:
        total = 0

        def pack(t: torch.Tensor) -> torch.Tensor:
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), context(dtype):
            model(inputs).float().pow(2).mean()
        return total

    def peak_cuda(dtype: torch.dtype | None) -> float:
        torch.cuda.reset_peak_memory_stats(device)
        step(dtype)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20

    t32 = median_seconds(lambda: step(None), device, args.repeats, warmup=2)
    tlow = median_seconds(lambda: step(low), device, args.repeats, warmup=2)
    m32, mlow = saved_bytes(None) / 2**20, saved_bytes(low) / 2**20
    print(f"device {device}, MLP 4x{args.hidden}, batch {args.batch_size}, median of {args.repeats} steps")
    print(f"  fp32                 {t32 * 1e3:8.2f} ms/step   saved activations {m32:8.1f} MiB")
    print(
        f"  autocast {str(low).removeprefix('torch.'):11s} {tlow * 1e3:8.2f} ms/step   saved activations {mlow:8.1f} MiB"
    )
    print(f"  speed-up fp32/autocast {t32 / tlow:6.2f}x   activation memory autocast/fp32 {mlow / m32:6.2f}x")
    if device.type == "cuda":
        p32, plow = peak_cuda(None), peak_cuda(low)
        print(f"  peak CUDA memory     fp32 {p32:8.1f} MiB   autocast {plow:8.1f} MiB   ratio {plow / p32:6.2f}x")


if __name__ == "__main__":
    main()
