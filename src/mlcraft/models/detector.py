"""A small anchor-free detector (FCOS on a tiny CNN) for the synthetic shapes set, and the library route.

Follows FCOS (Tian et al., 2019, "FCOS: Fully Convolutional One-Stage Object Detection",
https://arxiv.org/abs/1904.01355), simplified to one feature map of stride 8: every location
predicts K class logits, its distances (l, t, r, b) to the sides of a box and a centerness
logit. Shapes are 16-48 px on 128 px images, all inside FCOS's size range for stride 8
(up to 64 px), so the other pyramid levels of FCOS would stay empty; instead the deeper
backbone stages are merged into the stride-8 map top-down, as in an FPN (Lin et al., 2017),
to give each location the context of a whole object. Conv-BN-ReLU throughout (BatchNorm, not
FCOS's GroupNorm: it trains faster on a CPU at batch 32). Targets and loss live in
:mod:`mlcraft.models.detection_loss`; inference scores are ``sqrt(sigmoid(cls) *
sigmoid(centerness))``, then a score threshold, top-k, class-wise NMS and ``max_detections``,
as torchvision's ``FCOS.postprocess_detections``.

Training and evaluation recipes are in :mod:`mlcraft.recipes.detection`.
:func:`fasterrcnn_for_shapes` is the library route on the same data: torchvision's
``fasterrcnn_mobilenet_v3_large_fpn`` built from scratch (no weights are ever downloaded).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F  # noqa: N812
from pydantic import Field, model_validator
from torch import nn

from mlcraft.config.base import FrozenConfig
from mlcraft.models.detection_loss import decode_ltrb, detection_loss
from mlcraft.ops.boxes import clip_boxes
from mlcraft.ops.nms import batched_nms

if TYPE_CHECKING:
    from torchvision.models.detection import FasterRCNN

__all__ = [
    "DetectorConfig",
    "ShapesDetector",
    "fasterrcnn_for_shapes",
    "feature_points",
    "postprocess",
]

Detections = list[dict[str, torch.Tensor]]
STRIDE = 8  # stride of the feature map the head reads (the third backbone stage)
MAX_LOG_DISTANCE = 8.0  # box distances are stride * exp(raw), raw clamped here (exp(8) * 8 px ~ 24k px)


class DetectorConfig(FrozenConfig):
    """Shape of the detector, its loss and its inference."""

    num_classes: int = Field(default=3, ge=1, le=1000)  # object classes; labels 1..num_classes, 0 is background
    widths: tuple[int, ...] = (16, 32, 64, 128)  # backbone stage channels; stage i has stride 2 ** (i + 1)
    head_width: int = Field(default=64, ge=1, le=1024)  # channels of the merged stride-8 map and the head towers
    head_depth: int = Field(default=2, ge=0, le=8)  # Conv-BN-ReLU layers in each head tower (FCOS: 4)
    center_sampling_radius: float | None = Field(default=1.5, gt=0)  # positives within radius * stride of a box centre
    focal_alpha: float = Field(default=0.25, ge=0, le=1)  # focal loss weight of positives (RetinaNet: 0.25)
    focal_gamma: float = Field(default=2.0, ge=0, le=10)  # focal loss focusing exponent (RetinaNet: 2)
    prior_prob: float = Field(default=0.01, gt=0, lt=1)  # initial foreground probability of every class logit
    score_threshold: float = Field(default=0.05, ge=0, lt=1)  # drop detections scoring at most this
    pre_nms_top_n: int = Field(default=1000, ge=1)  # best candidates per image kept before NMS
    iou_threshold: float = Field(default=0.6, gt=0, le=1)  # class-wise NMS threshold (FCOS: 0.6)
    max_detections: int = Field(default=100, ge=1, le=10_000)  # detections kept per image, best first

    @model_validator(mode="after")
    def _check_widths(self) -> DetectorConfig:
        if len(self.widths) < 3 or min(self.widths) < 1:
            raise ValueError(f"widths needs >= 3 positive stages (the head reads stride 8), got {self.widths}")
        return self


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def feature_points(
    feature_size: tuple[int, int], stride: int, *, device: torch.device | str | None = None
) -> torch.Tensor:
    """``(H*W, 2)`` float32 ``(x, y)`` image-pixel centres of a feature map's cells, row-major:
    cell ``(i, j)`` covers pixels ``[j*stride, (j+1)*stride)`` and its point is ``((j + 0.5) * stride, (i + 0.5) * stride)``."""
    height, width = feature_size
    if height < 1 or width < 1 or stride < 1:
        raise ValueError(f"need a positive feature size and stride, got {feature_size} and {stride}")
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * stride
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")  # (H, W) each
    return torch.stack((grid_x.reshape(-1), grid_y.reshape(-1)), dim=1)


class ShapesDetector(nn.Module):
    """``forward(images (B, 3, H, W))`` -> raw head outputs, one row per stride-8 location (L = ceil(H/8) * ceil(W/8)):

    - ``cls_logits`` (B, L, K), ``centerness`` (B, L): logits;
    - ``box_regression`` (B, L, 4) float32: distances (l, t, r, b) > 0 in pixels, ``stride * exp(raw)``;
    - ``points`` (L, 2): each location's (x, y) in pixels; ``strides`` (L,).

    ``loss(outputs, targets)`` is the FCOS loss with this config; ``predict(images)`` the detections.
    """

    def __init__(self, config: DetectorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or DetectorConfig()
        stages, in_channels = [], 3
        for width in config.widths:
            stages.append(nn.Sequential(_conv_bn_relu(in_channels, width, stride=2), _conv_bn_relu(width, width)))
            in_channels = width
        self.stages = nn.ModuleList(stages)
        width = config.head_width
        self.laterals = nn.ModuleList(nn.Conv2d(w, width, 1) for w in config.widths[2:])  # stride 8, 16, ...
        self.cls_tower = nn.Sequential(*(_conv_bn_relu(width, width) for _ in range(config.head_depth)))
        self.box_tower = nn.Sequential(*(_conv_bn_relu(width, width) for _ in range(config.head_depth)))
        self.cls_logits = nn.Conv2d(width, config.num_classes, 3, padding=1)
        self.box_regression = nn.Conv2d(width, 4, 3, padding=1)
        self.centerness = nn.Conv2d(width, 1, 3, padding=1)
        for head in (self.cls_logits, self.box_regression, self.centerness):
            nn.init.normal_(head.weight, std=0.01)
            nn.init.zeros_(head.bias)  # type: ignore[arg-type]
        prior = torch.tensor(config.prior_prob)
        nn.init.constant_(self.cls_logits.bias, float(torch.log(prior / (1 - prior))))  # type: ignore[arg-type]

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The merged stride-8 map ``(B, head_width, ceil(H/8), ceil(W/8))``."""
        maps = []
        x = images
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index >= 2:
                maps.append(x)
        merged: torch.Tensor = self.laterals[-1](maps[-1])
        for lateral, fmap in zip(reversed(self.laterals[:-1]), reversed(maps[:-1]), strict=True):
            merged = lateral(fmap) + F.interpolate(merged, size=fmap.shape[-2:], mode="nearest")
        return merged

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
        fmap = self.features(images)
        batch, _, height, width = fmap.shape
        cls_features, box_features = self.cls_tower(fmap), self.box_tower(fmap)
        logits = self.cls_logits(cls_features).flatten(2).transpose(1, 2)  # (B, H*W, K)
        raw = self.box_regression(box_features).flatten(2).transpose(1, 2).float()  # (B, H*W, 4)
        centerness = self.centerness(box_features).reshape(batch, height * width)  # (B, H*W)
        points = feature_points((height, width), STRIDE, device=images.device)
        return {
            "cls_logits": logits,
            "box_regression": STRIDE * torch.exp(raw.clamp(max=MAX_LOG_DISTANCE)),
            "centerness": centerness,
            "points": points,
            "strides": torch.full((height * width,), float(STRIDE), device=images.device),
        }

    def points(self, image_size: tuple[int, int]) -> torch.Tensor:
        """``(L, 2)`` location centres for images of ``image_size = (H, W)`` (each stride-2 stage rounds up)."""
        height, width = image_size
        for _ in range(3):
            height, width = (height + 1) // 2, (width + 1) // 2
        return feature_points((height, width), STRIDE)

    def loss(self, outputs: Mapping[str, torch.Tensor], targets: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """:func:`mlcraft.models.detection_loss.detection_loss` with this config's settings."""
        cfg = self.config
        return detection_loss(
            outputs,
            targets,
            center_sampling_radius=cfg.center_sampling_radius,
            focal_alpha=cfg.focal_alpha,
            focal_gamma=cfg.focal_gamma,
        )

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> Detections:
        """Detections for ``images (B, 3, H, W)`` in eval mode (the previous mode is restored)."""
        was_training = self.training
        self.eval()
        try:
            outputs = self(images)
        finally:
            self.train(was_training)
        cfg = self.config
        return postprocess(
            outputs,
            (int(images.shape[-2]), int(images.shape[-1])),
            score_threshold=cfg.score_threshold,
            pre_nms_top_n=cfg.pre_nms_top_n,
            iou_threshold=cfg.iou_threshold,
            max_detections=cfg.max_detections,
        )


def postprocess(
    outputs: Mapping[str, torch.Tensor],
    image_size: tuple[int, int],
    *,
    score_threshold: float = 0.05,
    pre_nms_top_n: int = 1000,
    iou_threshold: float = 0.6,
    max_detections: int = 100,
) -> Detections:
    """Raw outputs of :class:`ShapesDetector` -> one dict per image, best first.

    Each location and class scores ``sqrt(sigmoid(cls) * sigmoid(centerness))``; candidates
    scoring above ``score_threshold`` (at most ``pre_nms_top_n``) are decoded, clipped to
    ``image_size = (H, W)``, dropped when empty after clipping, suppressed by
    :func:`mlcraft.ops.batched_nms` per class, and cut to ``max_detections``.

    Returns:
        ``[{"boxes": Tensor[N, 4] float32 xyxy, "scores": Tensor[N], "labels": Tensor[N] int64 in 1..K}]``.
    """
    if not 0 <= score_threshold < 1 or not 0 < iou_threshold <= 1 or pre_nms_top_n < 1 or max_detections < 1:
        raise ValueError(
            f"bad postprocess settings: score_threshold={score_threshold}, iou_threshold={iou_threshold}, "
            f"pre_nms_top_n={pre_nms_top_n}, max_detections={max_detections}"
        )
    logits = outputs["cls_logits"].float()  # (B, L, K)
    num_classes = logits.shape[-1]
    scores = torch.sqrt(torch.sigmoid(logits) * torch.sigmoid(outputs["centerness"].float())[..., None])  # (B, L, K)
    boxes = decode_ltrb(outputs["points"].float(), outputs["box_regression"].float())  # (B, L, 4)
    detections = []
    for image_scores, image_boxes in zip(scores, boxes, strict=True):
        flat = image_scores.flatten()  # (L*K,), location-major
        candidates = torch.where(flat > score_threshold)[0]
        top = flat[candidates].topk(min(pre_nms_top_n, candidates.numel()))
        candidates, kept_scores = candidates[top.indices], top.values
        locations, classes = candidates // num_classes, candidates % num_classes
        kept_boxes = clip_boxes(image_boxes[locations], image_size)
        nonempty = (kept_boxes[:, 2] > kept_boxes[:, 0]) & (kept_boxes[:, 3] > kept_boxes[:, 1])
        kept_boxes, kept_scores, classes = kept_boxes[nonempty], kept_scores[nonempty], classes[nonempty]
        keep = batched_nms(kept_boxes, kept_scores, classes, iou_threshold)[:max_detections]
        detections.append({"boxes": kept_boxes[keep], "scores": kept_scores[keep], "labels": classes[keep] + 1})
    return detections


#: The training run measured for the lesson, about a minute on 2 CPU cores (see :func:`train_detector`).
def fasterrcnn_for_shapes(
    num_classes: int = 3,
    image_size: int = 128,
    anchor_sizes: tuple[int, ...] = (16, 32, 64, 128, 256),
) -> FasterRCNN:
    """torchvision's ``fasterrcnn_mobilenet_v3_large_fpn`` from scratch for ``image_size`` px images.

    ``weights=None, weights_backbone=None``: nothing is downloaded, every weight is random.
    ``num_classes + 1`` outputs (torchvision counts the background); images are kept at their
    size (``min_size = max_size = image_size``) and the RPN's anchors shrink to ``anchor_sizes``
    (5 sizes x 3 ratios per level, as the default 32..512, so the RPN head is unchanged).
    """
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    if num_classes < 1 or image_size < 32 or len(anchor_sizes) != 5:
        raise ValueError(
            f"need num_classes >= 1, image_size >= 32 and 5 anchor sizes, got {num_classes}, {image_size}, {anchor_sizes}"
        )
    model: FasterRCNN = fasterrcnn_mobilenet_v3_large_fpn(
        weights=None, weights_backbone=None, num_classes=num_classes + 1, min_size=image_size, max_size=image_size
    )
    model.rpn.anchor_generator = AnchorGenerator((anchor_sizes,) * 3, ((0.5, 1.0, 2.0),) * 3)
    return model
