"""Recipes for 03_detection: train the FCOS-style :class:`~mlcraft.models.detector.ShapesDetector`
with the course's Trainer, and score any detector with COCO metrics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from mlcraft.config.training import TrainingConfig
from mlcraft.data.detection import collate_detection
from mlcraft.evaluation.coco import CocoMetrics, coco_evaluate
from mlcraft.models.detector import Detections, DetectorConfig, ShapesDetector
from mlcraft.training.callbacks import Callback
from mlcraft.training.trainer import Trainer

__all__ = ["DEFAULT_DETECTOR_TRAINING", "evaluate_detector", "train_detector"]

DEFAULT_DETECTOR_TRAINING = TrainingConfig(
    lr=3e-3, weight_decay=1e-4, batch_size=32, max_steps=400, warmup_steps=40, grad_clip_norm=10.0, log_every=50
)


def train_detector(
    train_data: Dataset[Any],
    val_data: Dataset[Any] | None = None,
    *,
    config: DetectorConfig | None = None,
    training: TrainingConfig | None = None,
    device: torch.device | str | None = None,
    callbacks: Iterable[Callback] = (),
) -> tuple[ShapesDetector, Trainer]:
    """Build a :class:`ShapesDetector` (the Trainer seeds the run with ``training.seed``, then builds it) and train it with the :class:`Trainer`.

    ``train_data`` / ``val_data`` yield ``(image (3, H, W), {"boxes", "labels"})`` like
    :class:`mlcraft.data.shapes.ShapesDetection`; ``val_data`` gives the Trainer's ``val_loss``.
    Defaults: ``DetectorConfig()`` (0.46 M parameters) and :data:`DEFAULT_DETECTOR_TRAINING`:
    AdamW at lr 3e-3, weight decay 1e-4, batches of 32, 400 steps (40 of linear warm-up, then
    cosine decay to 0), gradient clipping at norm 10, bf16 autocast on CPU, seed 0.

    Measured with train ``ShapesDetection(2048, ShapesConfig(), seed=0)`` and validation
    ``ShapesDetection(256, ShapesConfig(), seed=1)`` (COCO AP by :func:`evaluate_detector`),
    training wall time on 2 cores (2 threads) of an Intel Xeon with AMX-bf16, about 0.16 s a step:

    - 300 steps, 47 s: AP50 1.000, AP 0.906
    - 400 steps, 65 s (the default): AP50 1.000, AP 0.926
    - 600 steps, 96 s: AP50 1.000, AP 0.943 (lr 2e-3: 0.939, lr 5e-3: 0.947)
    - 1800 steps, 297 s: AP50 1.000, AP 0.961
    - ``ShapesConfig(clutter=0.5, occlusion=0.3)``: 600 steps AP50 0.991, AP 0.878; 1800 steps 0.990, 0.902
    """
    training = training or DEFAULT_DETECTOR_TRAINING

    def loss(outputs: Mapping[str, torch.Tensor], targets: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        return cast(ShapesDetector, trainer.model).loss(outputs, targets)  # trainer is bound before fit() runs

    trainer = Trainer(
        lambda: ShapesDetector(config),  # built after the Trainer seeds the run: one seed per run
        training,
        train_data,
        loss,
        val_data=val_data,
        device=device,
        callbacks=callbacks,
        collate_fn=collate_detection,
    )
    trainer.fit()
    return cast(ShapesDetector, trainer.model), trainer


def _plain_target(target: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    return {key: target[key].as_subclass(torch.Tensor).cpu() for key in ("boxes", "labels")}


@torch.no_grad()
def evaluate_detector(
    model: nn.Module,
    dataset: Dataset[Any],
    *,
    batch_size: int = 32,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> CocoMetrics:
    """COCO metrics (:func:`mlcraft.evaluation.coco_evaluate`) of ``model``'s detections on ``dataset``.

    ``model`` is a :class:`ShapesDetector` (through ``predict``) or a torchvision detection
    model (called in eval mode on a list of images); its train/eval mode is restored afterwards.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    ground_truths: list[dict[str, torch.Tensor]] = []
    detections: Detections = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_detection)
    try:
        for images, targets in tqdm(loader, desc="evaluate", unit="batch", disable=not progress, leave=False):
            if isinstance(model, ShapesDetector):
                predicted = model.predict(images.to(device))
            else:
                predicted = model([image.to(device) for image in images])
            detections += [{key: value.cpu() for key, value in det.items()} for det in predicted]
            ground_truths += [_plain_target(target) for target in targets]
    finally:
        model.train(was_training)
    return coco_evaluate(ground_truths, detections)
