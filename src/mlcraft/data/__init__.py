"""Data: tokenizers and text corpora (02_attention), synthetic shapes for detection and the VOC
route (03_detection), a synthetic table (07_mlops). Everything works offline; real loaders verify
checksums or say how to get the data."""

from mlcraft.data.detection import VOC_CLASSES, collate_detection, voc_detection
from mlcraft.data.shapes import SHAPE_CLASSES, ShapesConfig, ShapesDetection, make_shapes_image
from mlcraft.data.splits import group_time_split, time_series_folds
from mlcraft.data.subscriptions import make_subscriptions
from mlcraft.data.tabular import TabularData, make_tabular_data
from mlcraft.data.target_encoding import TargetEncoding, fit_target_encoding, target_encode_oof
from mlcraft.data.text import TokenBlockDataset, fetch_text, stdlib_corpus
from mlcraft.data.tokenizers import ByteTokenizer, CharTokenizer

__all__ = [
    "SHAPE_CLASSES",
    "VOC_CLASSES",
    "ByteTokenizer",
    "CharTokenizer",
    "ShapesConfig",
    "ShapesDetection",
    "TabularData",
    "TargetEncoding",
    "TokenBlockDataset",
    "collate_detection",
    "fetch_text",
    "fit_target_encoding",
    "group_time_split",
    "make_shapes_image",
    "make_subscriptions",
    "make_tabular_data",
    "stdlib_corpus",
    "target_encode_oof",
    "time_series_folds",
    "voc_detection",
]
