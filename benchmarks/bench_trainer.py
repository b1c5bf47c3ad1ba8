"""Trainer step time vs a bare hand-written PyTorch loop: same model, data, optimizer, same run.

The bare loop is the 6 lines everyone writes (DataLoader, zero_grad, forward, loss, backward,
step). The Trainer adds gradient-norm measurement, scheduling, NaN guards and bookkeeping;
the ratio is what that costs per step. Both run in fp32 without clipping, so the arithmetic
is identical. Runs alternate (bare, trainer, bare, ...) to spread machine noise evenly.

    python benchmarks/bench_trainer.py [--steps 200] [--repeats 5] [--hidden 1024]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _timing import sync
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mlcraft.config import TrainingConfig
from mlcraft.training import Trainer
from mlcraft.utils import best_device, configure_logging


def make_model(features: int, hidden: int, classes: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, classes)
    )


def bare_loop(model: nn.Module, data: TensorDataset, batch_size: int, steps: int, device: torch.device) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = DataLoader(data, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
    done = 0
    while done < steps:
        for inputs, targets in loader:
            inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(inputs), targets)
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps:
                break


def trainer_loop(model: nn.Module, data: TensorDataset, batch_size: int, steps: int, device: torch.device) -> None:
    config = TrainingConfig(
        lr=1e-3, batch_size=batch_size, max_steps=steps, amp=False, grad_clip_norm=None, progress=False, log_every=10**6
    )
    Trainer(model, config, data, nn.functional.cross_entropy, device=device).fit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    configure_logging("WARNING")
    device = best_device()
    generator = torch.Generator().manual_seed(0)
    features, classes = 256, 10
    data = TensorDataset(
        torch.randn(args.batch_size * 50, features, generator=generator),
        torch.randint(0, classes, (args.batch_size * 50,), generator=generator),
    )
    times: dict[str, list[float]] = {"bare loop": [], "Trainer": []}
    runners = {"bare loop": bare_loop, "Trainer": trainer_loop}
    for repeat in range(args.repeats + 1):  # the first round warms up caches and allocators
        for name, run in runners.items():
            model = make_model(features, args.hidden, classes).to(device)
            sync(device)
            start = time.perf_counter()
            run(model, data, args.batch_size, args.steps, device)
            sync(device)
            if repeat:
                times[name].append((time.perf_counter() - start) / args.steps)
    bare, ours = statistics.median(times["bare loop"]), statistics.median(times["Trainer"])
    print(
        f"device {device}, MLP {features}-{args.hidden}-{args.hidden}-{classes}, batch {args.batch_size}, {args.steps} steps, median of {args.repeats}"
    )
    print(f"  bare loop      {bare * 1e3:8.3f} ms/step")
    print(f"  Trainer        {ours * 1e3:8.3f} ms/step")
    print(f"  ratio Trainer/bare {ours / bare:6.3f}x  (overhead {100 * (ours / bare - 1):+.1f}%)")


if __name__ == "__main__":
    main()
