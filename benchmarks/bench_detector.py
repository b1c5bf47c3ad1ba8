"""Inference speed of the FCOS shapes detector beside torchvision's Faster R-CNN (MobileNetV3-Large
FPN, built from scratch by ``fasterrcnn_for_shapes``): images per second, same input, same run.

Both run in eval mode under ``torch.inference_mode`` on one batch of synthetic shapes images,
postprocessing (score threshold, NMS) included; timings are interleaved (see ``_timing``). The
weights are untrained, which is the worst case for our postprocessing: every location scores
about ``sqrt(0.01 * 0.5) = 0.07`` > the 0.05 threshold, so all of them go through NMS (a trained
model passes a few dozen per image). Our network alone (no postprocessing) is timed too.

    python benchmarks/bench_detector.py [--batch-size 16] [--image-size 128] [--repeats 10]
"""

from __future__ import annotations

import argparse

import torch
from _timing import interleaved_medians

from mlcraft.data.detection import collate_detection
from mlcraft.data.shapes import ShapesConfig, ShapesDetection
from mlcraft.models.detector import ShapesDetector, fasterrcnn_for_shapes
from mlcraft.utils import best_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    device = best_device()
    torch.manual_seed(0)
    data = ShapesDetection(args.batch_size, ShapesConfig(image_size=args.image_size), seed=0)
    images, _ = collate_detection([data[i] for i in range(len(data))])
    images = images.to(device)
    ours = ShapesDetector().to(device).eval()
    theirs = fasterrcnn_for_shapes(image_size=args.image_size).to(device).eval()
    image_list = list(images)

    def run_ours() -> object:
        with torch.inference_mode():
            return ours.predict(images)

    def run_ours_network() -> object:
        with torch.inference_mode():
            return ours(images)

    def run_theirs() -> object:
        with torch.inference_mode():
            return theirs(image_list)

    runs = {"ours": run_ours, "ours_network": run_ours_network, "fasterrcnn": run_theirs}
    times = interleaved_medians(runs, device, args.repeats)
    params_ours = sum(p.numel() for p in ours.parameters()) / 1e6
    params_theirs = sum(p.numel() for p in theirs.parameters()) / 1e6
    print(
        f"device {device}, {torch.get_num_threads()} threads, batch {args.batch_size} x {args.image_size}px, "
        f"median of {args.repeats} interleaved runs"
    )
    rows = [
        ("FCOS shapes detector, predict", times["ours"], params_ours),
        ("FCOS shapes detector, network only", times["ours_network"], params_ours),
        ("fasterrcnn_mobilenet_v3_large_fpn", times["fasterrcnn"], params_theirs),
    ]
    for name, seconds, params in rows:
        print(f"  {name:36s} {args.batch_size / seconds:9.1f} images/s   {params:6.2f} M parameters")
    print(f"  speed-up ours (predict) / Faster R-CNN {times['fasterrcnn'] / times['ours']:6.2f}x")


if __name__ == "__main__":
    main()
