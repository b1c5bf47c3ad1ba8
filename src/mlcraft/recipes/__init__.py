"""Recipes: complete training runs built from the layers below (models, data, training,
evaluation). Each module's recipe lives here: the detector of 03_detection, the tabular MLP of
07_mlops."""

from mlcraft.recipes.detection import DEFAULT_DETECTOR_TRAINING, evaluate_detector, train_detector
from mlcraft.recipes.tabular import DEFAULT_TABULAR_TRAINING, accuracy_sums, train_tabular_mlp

__all__ = [
    "DEFAULT_DETECTOR_TRAINING",
    "DEFAULT_TABULAR_TRAINING",
    "accuracy_sums",
    "evaluate_detector",
    "train_detector",
    "train_tabular_mlp",
]
