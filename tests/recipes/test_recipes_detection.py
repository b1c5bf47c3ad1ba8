"""The detector recipe: training with the course's Trainer (seeded once) and COCO evaluation."""

from __future__ import annotations

import math

import pytest
import torch

from mlcraft.config.training import TrainingConfig
from mlcraft.data.detection import collate_detection
from mlcraft.data.shapes import ShapesDetection
from mlcraft.evaluation import coco_evaluate
from mlcraft.models.detector import DetectorConfig, ShapesDetector
from mlcraft.recipes.detection import evaluate_detector, train_detector

SMALL = DetectorConfig(widths=(8, 16, 32), head_width=16, head_depth=1)  # fast model for shape/gradient tests


def test_overfits_eight_shapes_images() -> None:
    data = ShapesDetection(8, seed=3)
    config = DetectorConfig(widths=(16, 32, 64), head_width=32, head_depth=1)
    training = TrainingConfig(
        lr=5e-3, batch_size=8, max_steps=60, warmup_steps=10, grad_clip_norm=10.0, progress=False, log_every=1000
    )
    model, trainer = train_detector(data, config=config, training=training, device="cpu")
    assert trainer.state.step == 60
    assert trainer.history[-1]["loss"] < trainer.history[0]["loss"] / 3, "loss must fall"
    metrics = evaluate_detector(model, data, progress=False)
    assert metrics["AP50"] > 0.9, f"AP50 {metrics['AP50']:.3f} on the 8 training images"


def test_train_detector_reports_validation_loss() -> None:
    training = TrainingConfig(batch_size=2, max_steps=2, eval_every=1, progress=False)
    model, trainer = train_detector(
        ShapesDetection(4, seed=0), ShapesDetection(2, seed=1), config=SMALL, training=training, device="cpu"
    )
    assert trainer.state.step == 2 and len(trainer.eval_history) == 2
    assert all(math.isfinite(entry["val_loss"]) for entry in trainer.eval_history), trainer.eval_history
    assert isinstance(model, ShapesDetector) and model.config == SMALL


def test_evaluate_detector_equals_coco_evaluate_of_predict() -> None:
    torch.manual_seed(0)
    model = ShapesDetector(SMALL)
    data = ShapesDetection(5, seed=0)
    metrics = evaluate_detector(model, data, batch_size=3, progress=False)  # batches of 3 and 2
    assert model.training, "train mode is restored"
    images, targets = collate_detection([data[i] for i in range(5)])
    expected = coco_evaluate([{"boxes": t["boxes"], "labels": t["labels"]} for t in targets], model.predict(images))
    for name in ("AP", "AP50", "AR100"):
        assert metrics[name] == pytest.approx(expected[name], abs=1e-12), name
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_detector(model, data, batch_size=0)


class _Oracle(torch.nn.Module):
    """A torchvision-style model (list of images in, detections out) that returns the ground truth."""

    def __init__(self, data: ShapesDetection) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))  # evaluate_detector reads the device from it
        self.truth = {round(float(image.sum()), 2): target for image, target in (data[i] for i in range(len(data)))}

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        found = [self.truth[round(float(image.sum()), 2)] for image in images]
        return [
            {
                "boxes": t["boxes"].as_subclass(torch.Tensor),
                "scores": torch.ones(len(t["labels"])),
                "labels": t["labels"],
            }
            for t in found
        ]


def test_evaluate_detector_with_a_torchvision_style_model() -> None:
    data = ShapesDetection(5, seed=0)
    oracle = _Oracle(data)
    metrics = evaluate_detector(oracle, data, batch_size=2, progress=False)
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AR100"] == pytest.approx(1.0), metrics["AP_per_class"]
    assert oracle.training, "train mode is restored"


def test_the_run_is_seeded_once_and_reproducible() -> None:
    """Two runs with one seed give the same weights; the model is built after the Trainer seeds."""
    training = TrainingConfig(batch_size=2, max_steps=1, progress=False, seed=7)
    first, _ = train_detector(ShapesDetection(2, seed=0), config=SMALL, training=training, device="cpu")
    torch.manual_seed(12345)  # the global state before the call must not matter
    second, _ = train_detector(ShapesDetection(2, seed=0), config=SMALL, training=training, device="cpu")
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
