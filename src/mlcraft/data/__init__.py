"""Data: tokenizers and text corpora (02_attention), synthetic shapes for detection and the VOC
route (03_detection), a synthetic table (07_mlops). Everything works offline; real loaders verify
checksums or say how to get the data."""

from mlcraft.data.detection import VOC_CLASSES, collate_detection, voc_detection
from mlcraft.data.shapes import SHAPE_CLASSES, ShapesConfig, ShapesDetection, make_shapes_image
from mlcraft.data.tabular import TabularData, make_tabular_data
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
    "TokenBlockDataset",
    "collate_detection",
    "fetch_text",
    "make_shapes_image",
    "make_tabular_data",
    "stdlib_corpus",
    "voc_detection",
]
