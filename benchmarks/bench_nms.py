"""NMS speed: ``mlcraft.ops.nms`` / ``batched_nms`` (plain PyTorch) vs torchvision's
compiled kernels, on the same boxes in the same run; results checked identical first.

Two kinds of input, 1k and 10k boxes each:

- ``uniform``: boxes scattered over a 1000 x 1000 canvas (sides 4-104), few overlaps;
- ``crowded``: what a detector emits before NMS, about 20 jittered candidates per object.

    python benchmarks/bench_nms.py [--sizes 1000 10000] [--repeats 15] [--device cpu]
"""

from __future__ import annotations

import argparse
from functools import partial

import torch
import torchvision.ops
from _timing import interleaved_medians

from mlcraft.ops import batched_nms, nms
from mlcraft.utils import best_device


def distinct_scores(n: int, g: torch.Generator) -> torch.Tensor:
    """No ties: with tied scores each library may keep a different, equally valid box."""
    return (torch.randperm(n, generator=g).float() + 1) / (n + 1)


def uniform(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    corner = torch.rand(n, 2, generator=g) * 1000
    size = torch.rand(n, 2, generator=g) * 100 + 4
    return torch.cat([corner, corner + size], dim=1), distinct_scores(n, g)


def crowded(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    objects = max(n // 20, 1)
    centre = torch.rand(objects, 2, generator=g) * 900 + 50
    size = torch.rand(objects, 2, generator=g) * 150 + 20
    which = torch.randint(0, objects, (n,), generator=g)
    c = centre[which] + torch.randn(n, 2, generator=g) * size[which] * 0.1
    s = size[which] * (1 + 0.1 * torch.randn(n, 2, generator=g))
    return torch.cat([c - s / 2, c + s / 2], dim=1), distinct_scores(n, g)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--device", default=None, help="default: the best device present")
    args = parser.parse_args()
    device = torch.device(args.device) if args.device else best_device()
    print(f"device {device}, torch {torch.__version__}, torchvision {torchvision.__version__}, IoU > {args.threshold}")
    print(f"{'input':>8} {'boxes':>6} {'kept':>6} {'op':>12} {'ours ms':>9} {'torchvision ms':>15} {'ratio':>6}")
    for name, make in (("uniform", uniform), ("crowded", crowded)):
        for n in args.sizes:
            boxes, scores = (t.to(device) for t in make(n, torch.Generator().manual_seed(n)))
            labels = torch.randint(0, 3, (n,), generator=torch.Generator().manual_seed(1)).to(device)
            t = args.threshold
            keep = nms(boxes, scores, t)
            assert torch.equal(keep, torchvision.ops.nms(boxes, scores, t)), "nms differs from torchvision"
            assert torch.equal(
                batched_nms(boxes, scores, labels, t), torchvision.ops.batched_nms(boxes, scores, labels, t)
            )
            pairs = {
                "nms": (partial(nms, boxes, scores, t), partial(torchvision.ops.nms, boxes, scores, t)),
                "batched_nms": (
                    partial(batched_nms, boxes, scores, labels, t),
                    partial(torchvision.ops.batched_nms, boxes, scores, labels, t),
                ),
            }
            for op, (ours, peer) in pairs.items():
                times = interleaved_medians({"ours": ours, "peer": peer}, device, args.repeats)
                print(
                    f"{name:>8} {n:>6} {keep.numel():>6} {op:>12} {times['ours'] * 1e3:>9.2f} "
                    f"{times['peer'] * 1e3:>15.2f} {times['ours'] / times['peer']:>5.2f}x"
                )


if __name__ == "__main__":
    main()
