"""Data: tokenizers and text corpora (02_attention), with more sets to come (detection shapes in
03, tabular sets in 05). Everything works offline; real loaders verify checksums."""

from mlcraft.data.text import TokenBlockDataset, fetch_text, stdlib_corpus
from mlcraft.data.tokenizers import ByteTokenizer, CharTokenizer

__all__ = ["ByteTokenizer", "CharTokenizer", "TokenBlockDataset", "fetch_text", "stdlib_corpus"]
