"""Data: generated and package-bundled data sets, tokenizers and loaders (all offline-first).

Filled by the modules that need them: text corpora and tokenizers (02_attention), synthetic
detection shapes (03_detection), tabular sets (05_tabular).
"""
