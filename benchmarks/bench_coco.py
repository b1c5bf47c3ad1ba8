"""COCO mAP speed: ``mlcraft.evaluation.coco_evaluate`` vs pycocotools' ``COCOeval`` (evaluate,
accumulate, summarize) on the same 500-image set, same run; the 12 numbers must be identical.

The set: 10 classes, 1-11 objects per image (sides 4-300 px, so every area range is used),
1-3 jittered detections per object (some with the wrong class) and up to 30 false positives
per image, about 13k detections in all.

    python benchmarks/bench_coco.py [--images 500] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from mlcraft.evaluation import coco_evaluate
from mlcraft.evaluation.coco import STAT_NAMES, run_cocoeval

Image = dict[str, torch.Tensor]


def make_set(images: int, classes: int = 10, seed: int = 0) -> tuple[list[Image], list[Image]]:
    rng = np.random.default_rng(seed)
    gts, dts = [], []
    for _ in range(images):
        g = int(rng.integers(1, 12))
        corner = rng.uniform(0, 500, size=(g, 2))
        gt_boxes = np.concatenate([corner, corner + np.exp(rng.uniform(np.log(4), np.log(300), size=(g, 2)))], 1)
        gt_labels = rng.integers(1, classes + 1, g)
        boxes, labels = [], []
        for box, label in zip(gt_boxes, gt_labels, strict=True):
            for _ in range(int(rng.integers(1, 4))):
                boxes.append(box + rng.normal(0, 0.1, 4) * np.tile(box[2:] - box[:2], 2))
                labels.append(label if rng.random() < 0.9 else rng.integers(1, classes + 1))
        for _ in range(int(rng.integers(0, 30))):
            c = rng.uniform(0, 500, 2)
            boxes.append(np.concatenate([c, c + np.exp(rng.uniform(np.log(4), np.log(300), 2))]))
            labels.append(rng.integers(1, classes + 1))
        dt = np.array(boxes)
        dt[:, 2:] = np.maximum(dt[:, 2:], dt[:, :2] + 0.5)
        gts.append({"boxes": torch.tensor(gt_boxes), "labels": torch.tensor(gt_labels)})
        dts.append(
            {
                "boxes": torch.tensor(dt),
                "labels": torch.tensor(np.array(labels)),
                "scores": torch.tensor(rng.random(len(dt))),
            }
        )
    return gts, dts


def pycocotools_stats(gts: list[Image], dts: list[Image]) -> np.ndarray[Any, Any]:
    return np.asarray(run_cocoeval(gts, dts).stats)


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    gts, dts = make_set(args.images)
    ours = coco_evaluate(gts, dts)
    ref = pycocotools_stats(gts, dts)
    diff = max(abs(ours[name] - ref[k]) for k, name in enumerate(STAT_NAMES))
    assert diff <= 1e-12, f"numbers differ from pycocotools by {diff}"
    # Interleave the two so load on the machine falls on both alike; pycocotools' time includes
    # building its index from the same json our inputs become (to_coco_json).
    ours_times, peer_times = [], []
    for _ in range(args.repeats):
        ours_times.append(median_time(lambda: coco_evaluate(gts, dts), 1))
        peer_times.append(median_time(lambda: pycocotools_stats(gts, dts), 1))
    a, b = statistics.median(ours_times), statistics.median(peer_times)
    detections = sum(len(d["boxes"]) for d in dts)
    print(f"{args.images} images, {detections} detections; AP {ours['AP']:.4f} AP50 {ours['AP50']:.4f}")
    print(f"max |ours - pycocotools| over the 12 summary numbers: {diff:.1e}")
    print(f"coco_evaluate {a:.3f} s   pycocotools COCOeval {b:.3f} s   speed-up {b / a:.2f}x")


if __name__ == "__main__":
    main()
