"""Data: tokenizers and text corpora (02_attention), synthetic shapes for detection and the VOC
route (03_detection), byte-level BPE, text batching, TF-IDF and BM25, BIO labels and the module's
labelled text (04_nlp), splits, target encoding and a subscriptions table (05_tabular), a synthetic
table (07_mlops). Everything works offline; real loaders verify checksums or say how to get the data."""

from mlcraft.data.bpe import GPT2_PATTERN, BPETokenizer, encode_chunk, pretokenize, train_bpe
from mlcraft.data.detection import VOC_CLASSES, collate_detection, voc_detection
from mlcraft.data.intents import IntentExample, load_pydoc_queries, load_pydoc_topics, load_reviews, make_intents
from mlcraft.data.ner import align_labels, bio_spans
from mlcraft.data.shapes import SHAPE_CLASSES, ShapesConfig, ShapesDetection, make_shapes_image
from mlcraft.data.splits import group_time_split, time_series_folds
from mlcraft.data.subscriptions import make_subscriptions
from mlcraft.data.tabular import TabularData, make_tabular_data
from mlcraft.data.target_encoding import TargetEncoding, fit_target_encoding, target_encode_oof
from mlcraft.data.text import TokenBlockDataset, fetch_text, stdlib_corpus
from mlcraft.data.text_batching import length_bucketed_batches, pad_batch, padding_fraction, sliding_windows
from mlcraft.data.text_features import BM25, bm25_scores, tfidf, word_tokens
from mlcraft.data.tokenizers import ByteTokenizer, CharTokenizer

__all__ = [
    "BM25",
    "GPT2_PATTERN",
    "SHAPE_CLASSES",
    "VOC_CLASSES",
    "BPETokenizer",
    "ByteTokenizer",
    "CharTokenizer",
    "IntentExample",
    "ShapesConfig",
    "ShapesDetection",
    "TabularData",
    "TargetEncoding",
    "TokenBlockDataset",
    "align_labels",
    "bio_spans",
    "bm25_scores",
    "collate_detection",
    "encode_chunk",
    "fetch_text",
    "fit_target_encoding",
    "group_time_split",
    "length_bucketed_batches",
    "load_pydoc_queries",
    "load_pydoc_topics",
    "load_reviews",
    "make_intents",
    "make_shapes_image",
    "make_subscriptions",
    "make_tabular_data",
    "pad_batch",
    "padding_fraction",
    "pretokenize",
    "sliding_windows",
    "stdlib_corpus",
    "target_encode_oof",
    "tfidf",
    "time_series_folds",
    "train_bpe",
    "voc_detection",
    "word_tokens",
]
