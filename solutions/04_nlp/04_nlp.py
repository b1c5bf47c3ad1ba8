# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] nbgrader={"grade": false, "grade_id": "intro", "locked": true, "schema_version": 3, "solution": false, "task": false}
# # Module 04 — NLP: byte-level BPE, TF-IDF, pooling, sub-token labels, entity F1 and BM25
#
# **You will be able to**
# - train a byte-level BPE tokenizer with a stated tie rule, and encode any string with it exactly
#   as Hugging Face `tokenizers` does given the same merges;
# - compute TF-IDF features equal to scikit-learn's `TfidfVectorizer` at its defaults;
# - pool token vectors into a sentence vector that padding cannot change;
# - align word-level labels to sub-tokens for token classification;
# - score named entities the way the CoNLL shared task does, and rank documents with BM25.
#
# **Prerequisites**: lesson `04_nlp` (sections 1, 2, 3, 5, 7 and 8 above all); lessons `00_orientation`
# and `02_attention`; Python strings and bytes, dictionaries, NumPy arrays and PyTorch tensors.
#
# **Time**: reading 15 min; exercises 2–3 h; the reference solution runs top to bottom in about
# 30 seconds on a 2-core CPU, hidden tests included.
#
# **Further reading**: Sennrich, Haddow and Birch (2016), *Neural machine translation of rare words
# with subword units*; Radford et al. (2019), *Language models are unsupervised multitask learners*
# (byte-level BPE); the Hugging Face `tokenizers` documentation (*Pre-tokenizers*, *Models: BPE*);
# scikit-learn user guide, *Text feature extraction* (tf–idf term weighting); Reimers and Gurevych
# (2019), *Sentence-BERT*; the Hugging Face course, *Token classification*; Tjong Kim Sang and
# De Meulder (2003), *Introduction to the CoNLL-2003 shared task*; Robertson and Zaragoza (2009),
# *The probabilistic relevance framework: BM25 and beyond*.
#
# Seven functions, each the core of something a text pipeline uses every day:
#
# | Task | Function | Points |
# |------|----------|--------|
# | 1 | `train_bpe(text, num_merges)` | 3 |
# | 2 | `bpe_encode(text, merges)` and `bpe_decode(ids, merges)` | 3 |
# | 3 | `tfidf(docs)` | 2 |
# | 4 | `masked_mean_pool(hidden, attention_mask)` | 2 |
# | 5 | `align_labels(word_labels, word_ids, label_all_subtokens=False, ignore_index=-100)` | 2 |
# | 6 | `entity_scores(y_true, y_pred)` | 3 |
# | 7 | `bm25_scores(query, docs, k1=1.2, b=0.75)` | 3 |
#
# **How this notebook works.** Replace each `raise NotImplementedError()` with your code, then
# run the test cell below it. The visible tests are a first check only: when the notebook is
# graded, each test cell also runs hidden tests. These check the edge cases named in the task
# statement, so read each statement to the end. Run the notebook from top to bottom before you
# submit, and do not change or delete the test cells.
#
# Nothing here needs a GPU: Task 4 takes PyTorch tensors on whatever device they are on.
#
# **How grading works.** When your notebook is graded, your cells run in a sandbox and the
# test cells run in the grader, apart from your code: the tests call your functions with data
# (strings, lists, arrays, tensors...) and check what comes back against answers the grader
# computes itself. So return exactly what each task asks for; nothing else in your notebook can
# change a test's verdict.
#
# Previous: lesson [`04_nlp`](../../course/04_nlp.ipynb) · Next: lesson
# [`05_tabular`](../../course/05_tabular.ipynb).


# %%
# Set-up: on Colab, install the course package; everywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "mlcraft[course] @ git+https://github.com/mlcraft/mlcraft"],
        check=True,
    )


# %% nbgrader={"grade": false, "grade_id": "imports", "locked": true, "schema_version": 3, "solution": false, "task": false}
import math
import os
import re

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here downloads
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import regex
import sklearn
import tokenizers
import torch
from sklearn.feature_extraction.text import TfidfVectorizer

from mlcraft.classroom.testing import assert_close, call_without, grading_seed, in_kernel

#: GPT-2's pre-tokenizer: words with their leading space, numbers, runs of punctuation, whitespace.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def pretokenize(text: str) -> list[str]:
    """Split ``text`` into GPT-2's chunks; ``"".join(pretokenize(text)) == text``. BPE never merges across chunks."""
    return regex.findall(GPT2_PATTERN, text)


print(pretokenize("Hello world, it's 2024!  Bye"))
print(f"torch {torch.__version__}, tokenizers {tokenizers.__version__}, scikit-learn {sklearn.__version__}")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-train-bpe", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 1 — Train a byte-level BPE (3 points)
#
# Byte-level BPE starts from the 256 byte values, so it can encode any string, and learns
# *merges*: pairs of adjacent tokens that become one new token, most frequent pair first.
#
# Write `train_bpe(text, num_merges)` that returns the list of merges, each a tuple
# `(left_id, right_id)` of two Python ints, in the order they were learned:
#
# - **Token ids.** Ids 0–255 are the bytes of UTF-8. The merge at index `k` of the list (counting from
#   0) creates the token with id `256 + k`.
# - **Chunks.** Split `text` with the `pretokenize` function above; each chunk starts as the list of
#   its UTF-8 bytes. Merges never cross chunk boundaries. A chunk that occurs several times in the
#   text counts as many times (you may count each distinct chunk once with its frequency).
# - **One step.** Count every adjacent pair of tokens inside every chunk, over all chunks (in a chunk
#   whose tokens are `a a a` the pair `(a, a)` counts twice). Take the pair with the highest count;
#   **if several pairs share the highest count, take the smallest one, comparing `(left_id, right_id)`
#   as tuples** (so `(32, 116)` comes before `(101, 32)`, and `(97, 98)` before `(97, 99)`). Append it
#   to the merges, then replace it in every chunk, scanning each chunk from left to right:
#   wherever the pair occurs, the two tokens become the new token, and the scan goes on after it
#   (so `a a a` becomes `aa a`).
# - Repeat until you have `num_merges` merges, or stop earlier as soon as no chunk has two tokens
#   left (every pair has count 0). An empty text gives `[]`; `num_merges=0` gives `[]`.
# - Raise `ValueError` if `num_merges` is negative.
#
# Do not call Hugging Face `tokenizers` or the course package's `mlcraft.data.bpe`.


# %% nbgrader={"grade": false, "grade_id": "train-bpe-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train_bpe(text: str, num_merges: int) -> list[tuple[int, int]]:
    """Merges ``(left_id, right_id)`` learned from ``text``; merge ``k`` creates id ``256 + k``."""
    ### BEGIN SOLUTION
    if num_merges < 0:
        raise ValueError(f"num_merges must be >= 0, got {num_merges}")
    counts: dict[tuple[int, ...], int] = {}
    for chunk in pretokenize(text):
        key = tuple(chunk.encode("utf-8"))
        counts[key] = counts.get(key, 0) + 1
    words = [list(key) for key in counts]
    freqs = list(counts.values())
    merges: list[tuple[int, int]] = []
    for new_id in range(256, 256 + num_merges):
        pairs: dict[tuple[int, int], int] = {}
        for word, freq in zip(words, freqs):
            for pair in zip(word, word[1:]):
                pairs[pair] = pairs.get(pair, 0) + freq
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        for w, word in enumerate(words):
            merged, skip = [], False
            for left, right in zip(word, [*word[1:], None]):
                if skip:
                    skip = False
                elif (left, right) == best:
                    merged.append(new_id)
                    skip = True
                else:
                    merged.append(left)
            words[w] = merged
    return merges
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-train-bpe", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# One chunk, "aaabdaaabac": (a, a) occurs 4 times -> 256 = "aa"; then (256, a) and (256, b)... see below.
merges_1 = train_bpe("aaabdaaabac", 3)
assert isinstance(merges_1, list) and all(isinstance(m, tuple) and len(m) == 2 for m in merges_1), (
    f"return a list of (left_id, right_id) tuples, got {merges_1!r}"
)
# Step 1: (97, 97) "aa" counts 4 (twice in each "aaa") -> 256. The text is now [256, a, b, d, 256, a, b, a, c].
# Step 2: (256, 97) and (97, 98) both count 2: the smaller tuple (97, 98) wins -> 257 = "ab".
# Step 3: (256, 257) counts 2 -> 258.
assert merges_1 == [(97, 97), (97, 98), (256, 257)], f"expected [(97, 97), (97, 98), (256, 257)], got {merges_1}"
# Two chunks "ab" and " ab": the pair (98, 32) "b " never counts, because it crosses chunks.
assert train_bpe("ab ab", 2) == [(97, 98), (32, 256)], f"got {train_bpe('ab ab', 2)}"
assert train_bpe("", 5) == [] and train_bpe("hello", 0) == [], "empty text or num_merges=0: no merges"
assert len(train_bpe("abc", 10)) == 2, "'abc' is one chunk of 3 bytes: only 2 merges can be learned"
### BEGIN HIDDEN TESTS
from mlcraft.data.bpe import train_bpe as _train_reference
from mlcraft.data.text import stdlib_corpus

_forbidden_bpe = (
    "mlcraft.data.bpe.train_bpe",
    "mlcraft.data.bpe.BPETokenizer.__init__",
    "mlcraft.data.bpe.encode_chunk",
    "tokenizers.Tokenizer.__init__",
    "tokenizers.Tokenizer.from_str",
    "tokenizers.Tokenizer.from_file",
    "tokenizers.trainers.BpeTrainer.__init__",
)


def _check_train(name, text, num_merges):
    got = call_without(train_bpe, text, num_merges, forbidden=_forbidden_bpe)
    assert isinstance(got, list), f"{name}: return a list of merges, got {type(got).__name__}"
    for m in got:
        assert isinstance(m, tuple) and len(m) == 2 and all(type(v) is int for v in m), (
            f"{name}: each merge should be a tuple of two Python ints, got {m!r} ({', '.join(type(v).__name__ for v in m)})"
        )
    want = _train_reference(text, num_merges)
    assert len(got) == len(want), f"{name} (num_merges={num_merges}): expected {len(want)} merges, got {len(got)}"
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"{name} (num_merges={num_merges}): merge {k} should be {w}, got {g} (earlier merges agree)"


_rng = np.random.default_rng(grading_seed("test-train-bpe", 4))
_prose = stdlib_corpus(max_chars=2500)
_alphabet = list("ab  ") + ["é", "ñ", "日", "本", "😀", "👍🏽", "\u0301", "\n", "\t", "1", "2", "!", "'"]
_train_cases = {
    "the example": ("aaabdaaabac", 3),
    "the example, all merges": ("aaabdaaabac", 20),
    "a run of one letter (overlapping pairs)": ("aaaaaaa", 4),
    "two letters alternating": ("abababab", 5),
    "ties everywhere: every pair once": ("abcdefgh", 7),
    "the same word repeated is counted with its frequency": ("low low low lower newest newest widest", 12),
    # chunks "xy" once, " xy" twice, " zzzz" once: with frequencies (x, y) counts 3 and ties (z, z), and the
    # smaller tuple wins; counting each distinct chunk once would put (z, z) first
    "a frequent chunk beats a long one": ("xy xy xy zzzz", 3),
    "pairs across chunks never count": ("a.a.a.a.a b!b!b!", 6),
    "numbers and punctuation": ("3.14159 is pi; 2.71828 is e!!! 3.14159", 15),
    "whitespace runs and newlines": ("a  b   c\n\n\td  \n e", 8),
    "accents, CJK and emoji (multi-byte)": ("café café naïve 日本語 日本 😀😀 👍🏽👍🏽", 25),
    "contractions": ("it's I'm we'll you're they've he'd don't", 10),
    "one byte": ("x", 3),
    "only spaces": ("     ", 4),
    "random text from a small alphabet": ("".join(_rng.choice(_alphabet, 400)), 30),
    "2,500 characters of standard-library source and docstrings": (_prose, 40),
}
for _name, (_text, _k) in _train_cases.items():
    _check_train(_name, _text, _k)

for _bad in (-1, -10):
    try:
        train_bpe("abc", _bad)
    except ValueError:
        pass
    else:
        raise AssertionError(f"num_merges={_bad} should raise ValueError")
### END HIDDEN TESTS
print("train_bpe: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-bpe-encode", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 2 — Encode and decode with the merges (3 points)
#
# A trained BPE encodes new text by replaying its merges, **lowest rank first** (the rank of a merge
# is its index in the list), as GPT-2 does:
#
# Write `bpe_encode(text, merges)` returning a list of int token ids, and `bpe_decode(ids, merges)`
# returning a string:
#
# - `merges` is a list of `(left_id, right_id)` pairs as in Task 1 (merge `k` creates id `256 + k`,
#   and each merge only uses ids that exist before it). It may come from your `train_bpe` or from
#   anywhere else, so a pair may also be a list of two ints (as merges read back from JSON are).
# - **Encoding.** Split `text` with `pretokenize`; each chunk starts as its UTF-8 bytes. In each
#   chunk, repeatedly find, among the adjacent pairs that are in `merges`, the one with the lowest
#   rank, and replace it everywhere in the chunk, left to right without overlap (as in Task 1);
#   stop when no adjacent pair is in `merges`. The ids of all chunks, in order, are the result. An
#   empty text gives `[]`.
# - This is exactly what Hugging Face `tokenizers` does with a `models.BPE` built from the same merges
#   and a `pre_tokenizers.ByteLevel(add_prefix_space=False)` pre-tokenizer: the hidden tests
#   compare your ids with its ids.
# - **Decoding.** Each id stands for a byte string (a byte for ids below 256; the two parts joined for
#   a merge). Join the byte strings of all ids and decode them as UTF-8, replacing invalid bytes
#   with U+FFFD (`errors="replace"`), since a slice of ids may cut a character in two.
#   `bpe_decode(bpe_encode(text, merges), merges) == text` for every string UTF-8 can encode.
# - `bpe_decode` raises `ValueError` for an id that is negative or not below `256 + len(merges)`.
#
# Do not call Hugging Face `tokenizers` or the course package's `mlcraft.data.bpe`.


# %% nbgrader={"grade": false, "grade_id": "bpe-encode-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def bpe_encode(text: str, merges: list[tuple[int, int]]) -> list[int]:
    """Token ids of ``text``: each pre-tokenized chunk's bytes, merged lowest rank first."""
    ### BEGIN SOLUTION
    ranks = {tuple(pair): rank for rank, pair in enumerate(merges)}
    ids: list[int] = []
    for chunk in pretokenize(text):
        word = list(chunk.encode("utf-8"))
        for _ in range(len(word) - 1):  # each round merges at least one pair
            ranked = [ranks[pair] for pair in zip(word, word[1:]) if pair in ranks]
            if not ranked:
                break
            rank = min(ranked)
            pair, new_id = tuple(merges[rank]), 256 + rank
            merged, skip = [], False
            for left, right in zip(word, [*word[1:], None]):
                if skip:
                    skip = False
                elif (left, right) == pair:
                    merged.append(new_id)
                    skip = True
                else:
                    merged.append(left)
            word = merged
        ids.extend(word)
    return ids
    ### END SOLUTION


def bpe_decode(ids: list[int], merges: list[tuple[int, int]]) -> str:
    """The text that ``ids`` stand for (invalid UTF-8 becomes U+FFFD)."""
    ### BEGIN SOLUTION
    vocab = [bytes([b]) for b in range(256)]
    for left, right in merges:
        vocab.append(vocab[left] + vocab[right])
    pieces = []
    for token_id in ids:
        if not 0 <= token_id < len(vocab):
            raise ValueError(f"token id {token_id} is not in [0, {len(vocab)})")
        pieces.append(vocab[token_id])
    return b"".join(pieces).decode("utf-8", errors="replace")
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-bpe-encode", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
merges_2 = [(104, 101), (256, 108), (257, 108), (32, 119), (259, 111)]  # "he", "hel", "hell", " w", " wo"
ids_2 = bpe_encode("hello world", merges_2)
assert ids_2 == [258, 111, 260, 114, 108, 100], f"expected [258, 111, 260, 114, 108, 100], got {ids_2}"
assert bpe_decode(ids_2, merges_2) == "hello world", (
    f"decode should give back 'hello world', got {bpe_decode(ids_2, merges_2)!r}"
)
# Lowest rank first, not left to right: with (b, c) ranked before (a, b), "abc" becomes [a, bc].
assert bpe_encode("abc", [(98, 99), (97, 98)]) == [97, 256], f"got {bpe_encode('abc', [(98, 99), (97, 98)])}"
assert bpe_encode("", merges_2) == [] and bpe_decode([], merges_2) == "", "empty in, empty out"
assert bpe_decode([0xC3], []) == "\ufffd", "half of a two-byte character decodes to U+FFFD"
_text_2 = "naïve café 😀, it's 42!"
assert bpe_decode(bpe_encode(_text_2, merges_2), merges_2) == _text_2, "decode(encode(text)) should be text"
### BEGIN HIDDEN TESTS
from mlcraft.data.bpe import BPETokenizer as _Reference

_forbidden_encode = (
    "mlcraft.data.bpe.BPETokenizer.__init__",
    "mlcraft.data.bpe.encode_chunk",
    "tokenizers.Tokenizer.__init__",
    "tokenizers.Tokenizer.from_str",
    "tokenizers.Tokenizer.from_file",
    "tokenizers.models.BPE.__init__",
)
_prose_2 = stdlib_corpus(max_chars=30000)
_merges_prose = _train_reference(_prose_2[:20000], 300)
_merges_small = _train_reference("aaabdaaabac low lower lowest 日本 日本 😀😀", 20)


def _check_encode(name, text, merges):
    got = call_without(bpe_encode, text, merges, forbidden=_forbidden_encode)
    assert isinstance(got, list), f"{name}: bpe_encode should return a list, got {type(got).__name__}"
    got = [int(v) for v in got]
    reference = _Reference(merges)
    want = reference.encode(text)
    hf = reference.to_hf().encode(text).ids
    assert want == hf, f"{name}: the grader's references disagree; please report this"
    if got != want:
        first = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
        raise AssertionError(
            f"{name}: {len(want)} ids expected, got {len(got)}; first difference at position {first}: "
            f"expected {want[first : first + 5]}, got {got[first : first + 5]} (text {text[:40]!r}...)"
        )
    back = call_without(bpe_decode, got, merges, forbidden=_forbidden_encode)
    assert back == text, f"{name}: bpe_decode(bpe_encode(text)) should give text back, got {back[:60]!r}"


_points = list(range(0x20, 0x7F)) + [0xA0, 0xE9, 0xDF, 0x301, 0x3A9, 0x416, 0x5D0, 0x627, 0x93F, 0x4E2D, 0x65E5]
_points += [0xAC00, 0x1F600, 0x1F44D, 0x1F3FD, 0x200D, 0x2764, 0xFE0F, 0x1F1EB, 0x1F1F7, 0x9, 0xA, 0xD, 0x3000]
_rng = np.random.default_rng(grading_seed("test-bpe-encode", 2))
_random_texts = ["".join(chr(c) for c in _rng.choice(_points, n)) for n in (1, 5, 40, 300)]
_encode_cases = {
    "standard-library prose (300 merges)": (_prose_2[20000:23000], _merges_prose),
    "the text the merges came from": (_prose_2[:3000], _merges_prose),
    "no merges: bytes only": ("naïve 日本 😀", []),
    "merges learned on other text": ("aaabdaaabac lowest low 日本語 😀😀😀", _merges_small),
    "a word made of one ranked pair many times": ("aaaaaaaaa", [(97, 97), (256, 256), (257, 97)]),
    "lowest rank first, not left to right": ("abcabc", [(98, 99), (97, 98), (97, 256)]),
    "a later merge made of an earlier one": ("abab abab", [(97, 98), (256, 256), (32, 257)]),
    "merges of the leading space": ("  the  the\n the", [(32, 116), (256, 104), (257, 101), (32, 32)]),
    "whitespace only": (" \n\t  \n", _merges_small),
    "emoji with skin tone, ZWJ and flags": ("👍🏽 👩\u200d💻 🇫🇷 ❤️", _merges_small),
    "combining accent vs precomposed": ("e\u0301 é", _merges_small),
    "numbers and punctuation": ("3.14, 2.71!!! ((x)) 1,000,000", _merges_prose),
    "merges as lists of two ints (read back from JSON)": (_prose_2[:2000], [list(m) for m in _merges_prose]),
}
for _i, _t in enumerate(_random_texts):
    _encode_cases[f"random Unicode text {_i} ({len(_t)} characters)"] = (_t, _merges_prose)
for _name, (_text, _merges) in _encode_cases.items():
    _check_encode(_name, _text, _merges)

# decode on its own: merges' byte strings, invalid UTF-8 replaced, ids out of range refused
_m = [(0xE6, 0x97), (256, 0xA5)]  # 257 is the three bytes of "日"
for _name, (_ids, _want) in {
    "a merged three-byte character": ([257, 0x21], "日!"),
    "a character cut after two bytes": ([256], "\ufffd"),
    "the last byte id 255 and the last merge id": ([255, 257], "\ufffd日"),
    "ids as a tuple": ((104, 105), "hi"),
    "id 0 is the byte 0": ([0, 104, 0], "\x00h\x00"),
}.items():
    _got = call_without(bpe_decode, _ids, _m, forbidden=_forbidden_encode)
    assert type(_got) is str and _got == _want, f"bpe_decode, {_name}: expected {_want!r}, got {_got!r}"
for _bad in ([258], [-1], [97, 1000]):
    try:
        bpe_decode(_bad, _m)
    except ValueError:
        pass
    else:
        raise AssertionError(f"bpe_decode({_bad}) with {len(_m)} merges should raise ValueError")
### END HIDDEN TESTS
print("bpe_encode, bpe_decode: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-tfidf", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 3 — TF-IDF equal to scikit-learn (2 points)
#
# Before any neural network, a TF-IDF vector and a linear model are the baseline to beat. Write
# `tfidf(docs)` returning `(matrix, vocabulary)` equal to scikit-learn's `TfidfVectorizer()` with
# its defaults:
#
# - `docs`: an iterable of strings (a list, a tuple, or a generator that can be read only once).
# - **Tokens**: lowercase each document with `str.lower()`, then take every match of the regular
#   expression `r"(?u)\b\w\w+\b"` (words of two or more word characters; `re.findall`).
# - `vocabulary`: the distinct tokens of all documents, sorted (Python's string order), as a list of
#   `str`. Column `j` of the matrix is `vocabulary[j]`.
# - `tf[d, t]` is the number of times token `t` occurs in document `d`; `df[t]` the number of documents
#   it occurs in; with `n` documents, `idf[t] = ln((1 + n) / (1 + df[t])) + 1`; each row of
#   `tf * idf` is then divided by its Euclidean norm. A document with no token is a row of zeros.
# - `matrix` is a dense NumPy `float64` array of shape `(n, len(vocabulary))`.
# - Raise `ValueError` if there is no token at all (no documents, or only empty ones).
#
# Do not use scikit-learn's text vectorizers or the course package's `mlcraft.data.text_features`.


# %% nbgrader={"grade": false, "grade_id": "tfidf-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def tfidf(docs) -> tuple[np.ndarray, list[str]]:
    """TF-IDF rows (float64, ``(n_docs, V)``) and the sorted vocabulary, as ``TfidfVectorizer()``."""
    ### BEGIN SOLUTION
    tokenized = [re.findall(r"(?u)\b\w\w+\b", doc.lower()) for doc in docs]
    vocabulary = sorted({token for tokens in tokenized for token in tokens})
    if not vocabulary:
        raise ValueError("empty vocabulary: the documents hold no token of two or more word characters")
    column = {token: j for j, token in enumerate(vocabulary)}
    tf = np.zeros((len(tokenized), len(vocabulary)))
    for d, tokens in enumerate(tokenized):
        for token in tokens:
            tf[d, column[token]] += 1
    df = (tf > 0).sum(axis=0)
    idf = np.log((1 + len(tokenized)) / (1 + df)) + 1
    weighted = tf * idf
    norms = np.linalg.norm(weighted, axis=1, keepdims=True)
    return np.divide(weighted, norms, out=np.zeros_like(weighted), where=norms > 0), vocabulary
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-tfidf", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
docs_3 = ["The cat sat.", "The cat sat on the mat!", "Dogs bark"]
matrix_3, vocab_3 = tfidf(docs_3)
assert vocab_3 == ["bark", "cat", "dogs", "mat", "on", "sat", "the"], f"vocabulary: got {vocab_3}"
assert isinstance(matrix_3, np.ndarray) and matrix_3.dtype == np.float64 and matrix_3.shape == (3, 7), (
    f"a float64 (3, 7) array, got {type(matrix_3).__name__} {getattr(matrix_3, 'dtype', '')} {getattr(matrix_3, 'shape', '')}"
)
_vec_3 = TfidfVectorizer()
_want_3 = _vec_3.fit_transform(docs_3).toarray()
assert_close(matrix_3, _want_3, rtol=1e-12, atol=1e-12, msg="equal to TfidfVectorizer()")
assert tfidf(["Hello there", "a b c"])[0][1].tolist() == [0.0, 0.0], "a document with no token is a row of zeros"
### BEGIN HIDDEN TESTS
from mlcraft.data.intents import load_reviews

_forbidden_tfidf = (
    "sklearn.feature_extraction.text.TfidfVectorizer.__init__",
    "sklearn.feature_extraction.text.TfidfTransformer.__init__",
    "sklearn.feature_extraction.text.CountVectorizer.__init__",
    "sklearn.feature_extraction.text.HashingVectorizer.__init__",
    "mlcraft.data.text_features.tfidf",
)


def _check_tfidf(name, docs_list, make=list):
    got = call_without(tfidf, make(docs_list), forbidden=_forbidden_tfidf)
    assert isinstance(got, tuple) and len(got) == 2, f"{name}: return (matrix, vocabulary), got {type(got).__name__}"
    matrix, vocab = got
    vectorizer = TfidfVectorizer()
    want = vectorizer.fit_transform(docs_list).toarray()
    want_vocab = vectorizer.get_feature_names_out().tolist()
    assert list(vocab) == want_vocab, (
        f"{name}: vocabulary should have {len(want_vocab)} words starting {want_vocab[:5]}, "
        f"got {len(vocab)} starting {list(vocab)[:5]}"
    )
    assert all(isinstance(v, str) for v in vocab), f"{name}: vocabulary entries should be str"
    assert isinstance(matrix, np.ndarray) and matrix.dtype == np.float64, (
        f"{name}: the matrix should be a float64 NumPy array, got {type(matrix).__name__} {getattr(matrix, 'dtype', '')}"
    )
    assert matrix.shape == want.shape, f"{name}: shape should be {want.shape}, got {matrix.shape}"
    assert_close(matrix, want, rtol=1e-12, atol=1e-12, msg=f"tfidf, {name}")


_reviews = [text for text, _ in load_reviews()]
_tfidf_cases = {
    "the example": docs_3,
    "200 product reviews": _reviews[:200],
    "a word repeated in one document": ["spam spam spam spam eggs", "eggs ham", "ham"],
    "one document": ["only one document here, only one"],
    "an empty document among others": ["first doc", "", "second doc"],
    "a document of one-letter words only": ["a b c d", "real words here"],
    "case folding": ["Apple APPLE apple", "aPPle pie"],
    "accents, ß and CJK word characters": ["Naïve café crème brûlée", "Straße STRASSE", "日本語 テキスト 中文"],
    # "İ".lower() is "i" plus a combining dot above (two characters); "Σ" lowers to "σ" even at a word's end
    "lowercasing that changes length or form": ["İstanbul İZMİR", "ΟΔΟΣ οδος ΟΔΌΣ", "ǅemal ǄEMAL"],
    "digits and underscores are word characters": ["x_1 = 42 + y_2", "42 is 42", "__init__ and 3.14"],
    "apostrophes split words": ["don't won't it's", "dont wont its"],
    "punctuation and newlines only between words": ["hello,world\nnew-line\ttab", "world!!!hello"],
    "a term in every document": ["common one", "common two", "common three"],
    # idf of a word in every document is exactly 1, so this row's norm is exactly 1 before normalizing
    "a document whose only word is in every document": ["common", "common ground", "common sense"],
}
for _name, _docs in _tfidf_cases.items():
    _check_tfidf(_name, _docs)
_check_tfidf("documents as a tuple", docs_3, make=tuple)


@in_kernel
def _tfidf_from_generator(texts):
    """Your tfidf on a generator, built in your kernel (it can be read only once)."""
    matrix, vocab = tfidf(text for text in texts)
    return np.asarray(matrix), list(vocab)


_gm, _gv = _tfidf_from_generator(_reviews[:50])
_gwant = TfidfVectorizer().fit(_reviews[:50])
assert list(_gv) == _gwant.get_feature_names_out().tolist(), "documents as a generator: vocabulary differs"
assert_close(_gm, _gwant.transform(_reviews[:50]).toarray(), rtol=1e-12, atol=1e-12, msg="documents as a generator")

for _name, _docs in {
    "no documents": [],
    "only empty documents": ["", ""],
    "only one-letter words": ["a b", "c"],
}.items():
    try:
        tfidf(_docs)
    except ValueError:
        pass
    else:
        raise AssertionError(f"{_name}: tfidf should raise ValueError (no token at all)")
### END HIDDEN TESTS
print("tfidf: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-pool", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 4 — Masked mean pooling (2 points)
#
# A sentence encoder (Sentence-BERT, all-MiniLM-L6-v2) turns its token vectors into one sentence
# vector by averaging them. In a batch, short sentences are padded, and a plain `hidden.mean(1)`
# averages the padding in too: the same sentence gets a different vector depending on its
# neighbours in the batch.
#
# Write `masked_mean_pool(hidden, attention_mask)` returning a `(B, D)` tensor:
#
# - `hidden`: a `(B, T, D)` floating tensor (float16, bfloat16, float32 or float64).
#   `attention_mask`: a `(B, T)` tensor, 1 (or `True`) at real tokens and 0 (or `False`) at padding,
#   of dtype bool, an integer dtype or a floating dtype. Padding may be on the right or on the left.
# - Row `b` of the result is the mean of `hidden[b, t]` over the positions `t` where the mask is 1.
#   **Padded positions must not affect the result whatever they hold, NaN and infinity included.**
# - A row whose mask is all 0 gives a row of zeros.
# - The result has `hidden`'s dtype and device (any device, `meta` included). Sums are taken in
#   float32 at least (float16 and bfloat16 are upcast; float64 stays float64): 4,096 float16 values
#   of 30 sum to more than float16 can hold.
# - The result is differentiable with respect to `hidden`.
# - Raise `ValueError` if `hidden` is not 3-D or the mask's shape is not `(B, T)`.
#
# Do not call the course package's `mlcraft.models.pooling`.


# %% nbgrader={"grade": false, "grade_id": "pool-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def masked_mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (B, T, D) over the real tokens of ``attention_mask`` (B, T): (B, D)."""
    ### BEGIN SOLUTION
    if hidden.dim() != 3 or tuple(attention_mask.shape) != tuple(hidden.shape[:2]):
        raise ValueError(
            f"expected hidden (B, T, D) and attention_mask (B, T), got {tuple(hidden.shape)} and {tuple(attention_mask.shape)}"
        )
    accumulate = torch.promote_types(hidden.dtype, torch.float32)
    real = attention_mask.to(torch.bool).unsqueeze(-1)  # (B, T, 1)
    summed = torch.where(real, hidden.to(accumulate), 0).sum(dim=1)  # (B, D)
    counts = real.sum(dim=1).to(accumulate).clamp(min=1)  # (B, 1)
    return (summed / counts).to(hidden.dtype)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-pool", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
hidden_4 = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[5.0, 6.0], [7.0, 8.0], [9.0, 10.0]]])
mask_4 = torch.tensor([[1, 1, 0], [1, 1, 1]])
pooled_4 = masked_mean_pool(hidden_4, mask_4)
assert isinstance(pooled_4, torch.Tensor) and pooled_4.shape == (2, 2), f"expected a (2, 2) tensor, got {pooled_4!r}"
assert_close(pooled_4, torch.tensor([[2.0, 3.0], [7.0, 8.0]]), rtol=1e-6, atol=1e-6, msg="masked mean")
assert masked_mean_pool(hidden_4, torch.zeros(2, 3)).abs().sum() == 0, "an all-padding row gives zeros"
_nan_4 = hidden_4.clone()
_nan_4[0, 2] = float("nan")
assert_close(masked_mean_pool(_nan_4, mask_4), pooled_4, rtol=1e-6, atol=1e-6, msg="NaN at a padded position")
### BEGIN HIDDEN TESTS
from mlcraft.models.pooling import masked_mean_pool as _pool_reference

_forbidden_pool = ("mlcraft.models.pooling.masked_mean_pool",)


def _pool_loop(hidden, mask):
    """float64 reference: a loop over rows and positions."""
    h, m = hidden.double().cpu(), mask.cpu()
    out = torch.zeros(h.shape[0], h.shape[2], dtype=torch.float64)
    for b in range(h.shape[0]):
        rows = [h[b, t] for t in range(h.shape[1]) if bool(m[b, t])]
        if rows:
            out[b] = torch.stack(rows).sum(0) / len(rows)
    return out


def _check_pool(name, hidden, mask, tol):
    got = call_without(masked_mean_pool, hidden, mask, forbidden=_forbidden_pool)
    assert isinstance(got, torch.Tensor), f"{name}: return a tensor, got {type(got).__name__}"
    want_shape = (hidden.shape[0], hidden.shape[2])
    assert tuple(got.shape) == want_shape and got.dtype == hidden.dtype, (
        f"{name}: expected {hidden.dtype} {want_shape}, got {got.dtype} {tuple(got.shape)}"
    )
    assert torch.isfinite(got).all(), f"{name}: the result holds NaN or inf"
    assert_close(got.double(), _pool_loop(hidden, mask), rtol=tol, atol=tol, msg=f"masked_mean_pool, {name}")
    assert_close(got, _pool_reference(hidden, mask), rtol=tol, atol=tol, msg=f"masked_mean_pool, {name}")
    return got


_g = torch.Generator().manual_seed(grading_seed("test-pool", 0))
_lengths = torch.tensor([7, 1, 4, 0, 7])
_T = 7
_right = (torch.arange(_T)[None, :] < _lengths[:, None]).long()  # (5, 7) right padding
_left = _right.flip(1)
_h = torch.randn(5, _T, 6, generator=_g, dtype=torch.float64)
_pool_cases = {
    "right padding, int64 mask, float64": (_h, _right, 1e-12),
    "left padding, bool mask": (_h.float(), _left.bool(), 1e-6),
    "float mask": (_h.float(), _right.float(), 1e-6),
    "one token (T=1)": (_h[:, :1], _right[:, :1], 1e-12),
    "one row (B=1)": (_h[:1], _right[:1], 1e-12),
    "D=1": (_h[:, :, :1], _left, 1e-12),
    "int32 mask, values near 1e4": (_h * 1e4, _right.int(), 1e-9),
}
for _name, (_hh, _mm, _tol) in _pool_cases.items():
    _check_pool(_name, _hh, _mm, _tol)

# Padding invariance: the same sentences with more padding holding anything (random, NaN, inf).
_base = _check_pool("before padding", _h.float(), _right, 1e-6)
for _fill_name, _fill in {
    "random values": None,
    "NaN": float("nan"),
    "+inf": float("inf"),
    "-inf": -float("inf"),
}.items():
    for _side in ("right", "left"):
        _extra = torch.randn(5, 3, 6, generator=_g) * 50 if _fill is None else torch.full((5, 3, 6), _fill)
        _hp = _h.float().clone()
        _hp[_right == 0] = 7.0 if _fill is None else _fill  # the existing padding too
        _hp = torch.cat([_hp, _extra], 1) if _side == "right" else torch.cat([_extra, _hp], 1)
        _mp = (
            torch.cat([_right, torch.zeros(5, 3, dtype=torch.long)], 1)
            if _side == "right"
            else torch.cat([torch.zeros(5, 3, dtype=torch.long), _right], 1)
        )
        _gp = _check_pool(f"padding holding {_fill_name}, 3 more on the {_side}", _hp, _mp, 1e-6)
        assert_close(_gp, _base, rtol=1e-6, atol=1e-6, msg=f"padding ({_fill_name}, {_side}) changed the result")

# NaN or inf at a real position is part of the mean: it shows in that row (and only there).
_hn = _h.clone()
_hn[0, 2, 1] = float("nan")
_hn[2, 0, 3] = float("inf")
_gn = call_without(masked_mean_pool, _hn, _right, forbidden=_forbidden_pool)
assert torch.isnan(_gn[0, 1]) and torch.isinf(_gn[2, 3]) and _gn[2, 3] > 0, (
    "NaN or +inf at a real position should show in the mean (row 0 column 1 NaN, row 2 column 3 +inf)"
)
_keep = torch.ones_like(_gn, dtype=torch.bool)
_keep[0, 1] = _keep[2, 3] = False
assert_close(_gn[_keep], _pool_loop(_h, _right)[_keep], rtol=1e-12, atol=1e-12, msg="the other columns are unchanged")

# Low precision: the sum must not overflow float16; bfloat16 and float16 keep their dtype.
_big = torch.full((2, 4096, 3), 30.0, dtype=torch.float16)
_got = _check_pool("4,096 float16 values of 30", _big, torch.ones(2, 4096, dtype=torch.long), 1e-3)
assert_close(_got.float(), torch.full((2, 3), 30.0), rtol=1e-3, atol=1e-3, msg="float16 mean of 4,096 values of 30")
_check_pool("bfloat16, left padding", _h.bfloat16(), _left, 2e-2)
# 257 real tokens of 100 (257 is not a bfloat16 number): the mean is exactly 100 only if the count stays exact.
_h257 = torch.full((2, 300, 2), 100.0, dtype=torch.bfloat16)
_m257 = (torch.arange(300)[None, :] < torch.tensor([[257], [300]])).long()
_got = _check_pool("bfloat16, 257 and 300 real tokens", _h257, _m257, 0.0)
assert _got.float().eq(100.0).all(), (
    f"the mean of 257 bfloat16 values of 100 should be exactly 100, got {_got.tolist()}"
)
_check_pool("float16 hidden, float64 mask (mixed dtypes)", _h.half(), _right.double(), 2e-3)
_check_pool("float64 hidden, bool mask", _h, _right.bool(), 1e-12)

# Devices: meta tensors (no values) stay on meta, with the right shape and dtype.
_meta = call_without(
    masked_mean_pool,
    torch.empty(3, 5, 4, dtype=torch.bfloat16, device="meta"),
    torch.empty(3, 5, dtype=torch.long, device="meta"),
    forbidden=_forbidden_pool,
)
assert _meta.device.type == "meta" and _meta.shape == (3, 4) and _meta.dtype == torch.bfloat16, (
    f"meta bfloat16 (3, 5, 4) with a meta mask: expected meta bfloat16 (3, 4), got {_meta.device} {_meta.dtype} {tuple(_meta.shape)}"
)


# Gradient: d(mean)/d(hidden[b, t]) = mask[b, t] / count[b], and no NaN from the padding.
@in_kernel
def _pool_grad(hidden, mask):
    hidden = hidden.clone().requires_grad_(True)
    masked_mean_pool(hidden, mask).sum().backward()
    return hidden.grad


_hg = _h.clone()
_hg[_right == 0] = float("nan")
_grad = _pool_grad(_hg, _right)
_want_grad = (_right.double() / _right.sum(1, keepdim=True).clamp(min=1).double())[:, :, None].expand(5, _T, 6)
assert isinstance(_grad, torch.Tensor), "masked_mean_pool should be differentiable with respect to hidden"
assert_close(_grad, _want_grad, rtol=1e-12, atol=1e-12, msg="gradient of the sum of the pooled vectors")

for _name, (_hh, _mm) in {
    "2-D hidden": (torch.zeros(2, 3), torch.ones(2, 3)),
    "mask (B, T+1)": (torch.zeros(2, 3, 4), torch.ones(2, 4)),
    "mask (B, T, 1)": (torch.zeros(2, 3, 4), torch.ones(2, 3, 1)),
    "mask for a different batch size": (torch.zeros(2, 3, 4), torch.ones(3, 3)),
}.items():
    try:
        masked_mean_pool(_hh, _mm)
    except ValueError:
        pass
    else:
        raise AssertionError(f"{_name}: masked_mean_pool should raise ValueError")
### END HIDDEN TESTS
print("masked_mean_pool: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-align", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 5 — Word labels onto sub-tokens (2 points)
#
# Named-entity data labels *words*; a WordPiece or BPE tokenizer splits words into *sub-tokens*
# and adds special tokens such as `[CLS]` and `[SEP]`. A fast tokenizer tells you, for each
# sub-token, which word it came from (`encoding.word_ids()`: an int, or `None` for a special token).
#
# Write `align_labels(word_labels, word_ids, label_all_subtokens=False, ignore_index=-100)`
# returning a list of ints, one per entry of `word_ids`:
#
# - `word_labels`: the label id (an int) of each word. `word_ids`: for each sub-token, the index of its
#   word in `word_labels`, or `None`.
# - A sub-token whose word id is `None` gets `ignore_index` (the loss skips it).
# - A sub-token whose word id differs from the previous sub-token's word id (or that is the first
#   sub-token) is the **first sub-token of its word**: it gets that word's label.
# - Any other sub-token (a later piece of the same word) gets `ignore_index`, or, when
#   `label_all_subtokens` is `True`, its word's label too.
# - `ignore_index` is -100 by default (what PyTorch's `cross_entropy` ignores); another value may be
#   given.
# - Raise `ValueError` if a word id is negative or not below `len(word_labels)`.
#
# Do not call the course package's `mlcraft.data.ner`.


# %% nbgrader={"grade": false, "grade_id": "align-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def align_labels(word_labels, word_ids, label_all_subtokens: bool = False, ignore_index: int = -100) -> list[int]:
    """One label per sub-token: the word's label on its first piece, ``ignore_index`` elsewhere."""
    ### BEGIN SOLUTION
    labels, previous = [], None
    for word in word_ids:
        if word is not None and not 0 <= word < len(word_labels):
            raise ValueError(f"word id {word} is out of range for {len(word_labels)} words")
        if word is None:
            labels.append(ignore_index)
        elif word != previous or label_all_subtokens:
            labels.append(int(word_labels[word]))
        else:
            labels.append(ignore_index)
        previous = word
    return labels
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-align", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Words "Anna lives in Zurich" with labels B-PER=1, O=0, O=0, B-LOC=3; "Zurich" splits into two pieces.
word_ids_5 = [None, 0, 1, 2, 3, 3, None]
labels_5 = align_labels([1, 0, 0, 3], word_ids_5)
assert labels_5 == [-100, 1, 0, 0, 3, -100, -100], f"expected [-100, 1, 0, 0, 3, -100, -100], got {labels_5}"
assert align_labels([1, 0, 0, 3], word_ids_5, label_all_subtokens=True) == [-100, 1, 0, 0, 3, 3, -100]
assert align_labels([1, 0, 0, 3], word_ids_5, ignore_index=-1) == [-1, 1, 0, 0, 3, -1, -1]
assert align_labels([], []) == [], "no sub-tokens: no labels"
### BEGIN HIDDEN TESTS
from mlcraft.data.ner import align_labels as _align_reference
from mlcraft.models.sentence_encoder import minilm_path

_forbidden_align = ("mlcraft.data.ner.align_labels",)


def _check_align(name, word_labels, word_ids, **kwargs):
    got = call_without(align_labels, word_labels, word_ids, forbidden=_forbidden_align, **kwargs)
    assert isinstance(got, list), f"{name}: return a list, got {type(got).__name__}"
    want = _align_reference(list(word_labels), list(word_ids), **kwargs)
    assert all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in got), (
        f"{name}: the labels should be ints, got {sorted({type(v).__name__ for v in got})}"
    )
    got = [int(v) for v in got]
    assert got == want, f"{name} {kwargs or ''}: expected {want}, got {got} (word_ids {list(word_ids)[:20]})"


# Real word ids: the WordPiece tokenizer of all-MiniLM-L6-v2, words given already split.
_wordpiece = tokenizers.Tokenizer.from_file(str(minilm_path() / "tokenizer.json"))
_sentences = [
    ["Angela", "Merkel", "visited", "Zurich", "on", "Tuesday"],
    ["Tokenization", "splits", "uncharacteristically", "long", "words", "."],
    ["Ünïcödé", "naïveté", "😀", "東京", "x"],
    ["a"],
]
_rng = np.random.default_rng(grading_seed("test-align", 6))
for _words in _sentences:
    _ids = _wordpiece.encode(_words, is_pretokenized=True).word_ids
    _labels = _rng.integers(0, 9, len(_words)).tolist()
    for _kw in (
        {},
        {"label_all_subtokens": True},
        {"ignore_index": -1},
        {"label_all_subtokens": True, "ignore_index": 99},
    ):
        _check_align(f"WordPiece ids of {' '.join(_words)!r}", _labels, _ids, **_kw)

_align_cases = {
    "no special tokens": ([4, 5, 6], [0, 1, 1, 1, 2]),
    "every word one piece": ([1, 2, 3], [None, 0, 1, 2, None]),
    "all special tokens": ([], [None, None]),
    "the same word again after a special token": ([7, 8], [None, 0, 0, None, 0, 1]),
    "a window that starts inside a word": ([3, 4, 5], [None, 1, 1, 2, 2, None]),
    "labels as a NumPy array": (np.array([2, 0, 1]), [None, 0, 0, 1, 2, 2, None]),
    "word ids as a tuple": ([5, 6], (None, 0, 1, 1, None)),
    "label 0 on a continuation piece": ([0, 0], [0, 0, 1, 1]),
}
for _name, (_labels, _ids) in _align_cases.items():
    for _kw in (
        {},
        {"label_all_subtokens": True},
        {"ignore_index": 0},
        {"label_all_subtokens": True, "ignore_index": -7},
    ):
        _check_align(_name, _labels, _ids, **_kw)

for _name, (_labels, _ids) in {
    "word id past the end": ([1, 2], [None, 0, 2, None]),
    "negative word id": ([1, 2], [0, -1]),
    "a word id with no words": ([], [0]),
}.items():
    try:
        align_labels(_labels, _ids)
    except ValueError:
        pass
    else:
        raise AssertionError(f"{_name}: align_labels should raise ValueError")
### END HIDDEN TESTS
print("align_labels: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-entity", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 6 — Entity-level precision, recall and F1 (3 points)
#
# A tagger that writes `O` everywhere gets 90 % token accuracy on most NER data and finds nothing.
# NER is scored on **entities** (chunks): a predicted entity counts only if its type and both
# boundaries match a true one, as the CoNLL shared task's `conlleval` script does.
#
# Write `entity_scores(y_true, y_pred)` returning `{"precision": p, "recall": r, "f1": f}` (Python
# floats):
#
# - `y_true`, `y_pred`: lists of sentences, each a list of tags. A tag is `"O"`, or `"B-"` or `"I-"`
#   followed by a non-empty type (`"B-PER"`, `"I-LOC"`).
# - **Chunks** (the conlleval convention), within one sentence: `B-X` starts a chunk of type `X`.
#   `I-X` continues the current chunk if it is of type `X`; otherwise (after `O`, after a chunk
#   of another type, or at the start of the sentence) it starts a new chunk of type `X`. `O` ends the
#   current chunk, and so does the end of the sentence: chunks never span two sentences.
# - A chunk is identified by (sentence, type, first position, last position). Precision is the share
#   of predicted chunks that are also true chunks; recall the share of true chunks that are also
#   predicted; F1 = 2pr / (p + r). A ratio whose denominator is 0 is 0.0 (no predicted chunks gives
#   precision 0.0; p + r = 0 gives F1 0.0).
# - Raise `ValueError` if `y_true` and `y_pred` have different numbers of sentences, if a sentence
#   has a different length in the two, or for a tag that is not one of the forms above.
#
# Do not call the course package's `mlcraft.evaluation.ner` or `mlcraft.data.ner`.


# %% nbgrader={"grade": false, "grade_id": "entity-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def entity_scores(y_true, y_pred) -> dict[str, float]:
    """Micro-averaged entity precision, recall and F1 with conlleval's chunk rules."""

    ### BEGIN SOLUTION
    def chunks(sentences):
        found = set()
        for s, tags in enumerate(sentences):
            start, kind = None, None
            for i, tag in enumerate([*tags, "O"]):
                if tag != "O" and not (len(tag) > 2 and tag[:2] in ("B-", "I-")):
                    raise ValueError(f"sentence {s}, position {i}: tag {tag!r} is not O, B-TYPE or I-TYPE")
                continues = tag.startswith("I-") and tag[2:] == kind
                if start is not None and not continues:
                    found.add((s, kind, start, i - 1))
                    start, kind = None, None
                if tag != "O" and not continues:
                    start, kind = i, tag[2:]
        return found

    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true sentences but {len(y_pred)} predicted")
    for s, (t, p) in enumerate(zip(y_true, y_pred)):
        if len(t) != len(p):
            raise ValueError(f"sentence {s} has {len(t)} true tags but {len(p)} predicted")
    true, pred = chunks(y_true), chunks(y_pred)
    correct = len(true & pred)
    precision = correct / max(len(pred), 1)  # 0.0 when nothing is predicted
    recall = correct / max(len(true), 1)
    f1 = 2 * correct / max(len(true) + len(pred), 1)  # = 2pr / (p + r), and 0.0 when p + r = 0
    return {"precision": precision, "recall": recall, "f1": f1}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-entity", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
true_6 = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG", "I-ORG"]]
pred_6 = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "B-ORG", "I-ORG", "O"]]
scores_6 = entity_scores(true_6, pred_6)
assert isinstance(scores_6, dict) and set(scores_6) == {"precision", "recall", "f1"}, f"got {scores_6!r}"
# True chunks: PER(0-1), LOC(3), ORG(1-3 of sentence 2). Predicted: PER(0-1) right, ORG(3) wrong, ORG(1-2) too short.
assert_close(scores_6["precision"], 1 / 3, rtol=1e-12, atol=1e-12, msg="precision: 1 of 3 predicted chunks is right")
assert_close(scores_6["recall"], 1 / 3, rtol=1e-12, atol=1e-12, msg="recall: 1 of 3 true chunks is found")
assert_close(scores_6["f1"], 1 / 3, rtol=1e-12, atol=1e-12, msg="F1")
# I-PER after O starts a chunk, exactly like B-PER.
assert entity_scores([["O", "B-PER"]], [["O", "I-PER"]])["f1"] == 1.0, "I-X after O starts a chunk of type X"
assert entity_scores([["O", "O"]], [["O", "O"]])["f1"] == 0.0, "no chunks anywhere: every score is 0.0"
### BEGIN HIDDEN TESTS
from mlcraft.evaluation.ner import entity_scores as _entity_reference

_forbidden_entity = (
    "mlcraft.evaluation.ner.entity_scores",
    "mlcraft.evaluation.ner.per_type_scores",
    "mlcraft.data.ner.bio_spans",
)


def _check_entity(name, y_true, y_pred):
    got = call_without(entity_scores, y_true, y_pred, forbidden=_forbidden_entity)
    assert isinstance(got, dict) and set(got) == {"precision", "recall", "f1"}, (
        f"{name}: return a dict with keys precision, recall, f1, got {got!r}"
    )
    want = _entity_reference(y_true, y_pred)
    for key in ("precision", "recall", "f1"):
        assert isinstance(got[key], float), f"{name}: {key} should be a Python float, got {type(got[key]).__name__}"
        assert_close(got[key], want[key], rtol=1e-12, atol=1e-12, msg=f"{name}: {key}")


_entity_cases = {
    "the example": (true_6, pred_6),
    "perfect": (true_6, true_6),
    "nothing predicted": (true_6, [["O"] * 4, ["O"] * 4]),
    "nothing true, something predicted": ([["O", "O", "O"]], [["B-PER", "O", "I-LOC"]]),
    "I- at the start of a sentence": ([["I-LOC", "I-LOC", "O"]], [["B-LOC", "I-LOC", "O"]]),
    "I- of another type starts a new chunk": ([["B-PER", "I-LOC", "I-LOC"]], [["B-PER", "B-LOC", "I-LOC"]]),
    "B- right after the same type splits the chunk": ([["B-PER", "B-PER", "I-PER"]], [["B-PER", "I-PER", "I-PER"]]),
    "type right, boundary wrong": ([["B-ORG", "I-ORG", "O"]], [["B-ORG", "O", "O"]]),
    "boundary right, type wrong": ([["B-ORG", "I-ORG", "O"]], [["B-LOC", "I-LOC", "O"]]),
    "a chunk at the end of one sentence does not continue into the next": (
        [["O", "B-PER"], ["I-PER", "O"]],
        [["O", "B-PER"], ["B-PER", "O"]],
    ),
    "empty sentences": ([[], ["B-X"], []], [[], ["B-X"], []]),
    "one-token sentences": ([["B-A"], ["O"], ["I-A"]], [["I-A"], ["B-A"], ["B-A"]]),
    "types with dashes and long names": ([["B-MISC-EVENT", "I-MISC-EVENT"]], [["B-MISC-EVENT", "I-MISC-EVENT"]]),
    "no sentences": ([], []),
    "precision and recall differ": (
        [["B-PER", "O", "B-LOC", "O", "B-ORG"]],
        [["B-PER", "O", "O", "O", "O"]],
    ),
}
_rng = np.random.default_rng(grading_seed("test-entity", 9))
_tagset = np.array(["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"])
for _i in range(3):
    _lens = _rng.integers(0, 15, 60)
    _yt = [_rng.choice(_tagset, n).tolist() for n in _lens]
    _yp = [[t if _rng.uniform() < 0.7 else str(_rng.choice(_tagset)) for t in s] for s in _yt]
    _entity_cases[f"60 random sentences, 30% of tags changed ({_i})"] = (_yt, _yp)
for _name, (_yt, _yp) in _entity_cases.items():
    _check_entity(_name, _yt, _yp)

for _name, (_yt, _yp) in {
    "different numbers of sentences": ([["O"], ["O"]], [["O"]]),
    "a sentence of different length": ([["O", "B-X"]], [["O"]]),
    "an E- tag": ([["E-PER"]], [["O"]]),
    "a bare B-": ([["O"]], [["B-"]]),
    "a tag without prefix": ([["PER"]], [["O"]]),
}.items():
    try:
        entity_scores(_yt, _yp)
    except ValueError:
        pass
    else:
        raise AssertionError(f"{_name}: entity_scores should raise ValueError")
### END HIDDEN TESTS
print("entity_scores: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-bm25", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 7 — BM25 (3 points)
#
# BM25 ranks documents for a query by term frequency, saturated by `k1` and normalized for document
# length by `b`, weighted by how rare each term is. It is the lexical half of most hybrid search
# systems, and a strong baseline for dense retrieval.
#
# Write `bm25_scores(query, docs, k1=1.2, b=0.75)` returning a NumPy `float64` array with one score
# per document:
#
# - `query`: a list of tokens (strings). `docs`: a list of documents, each a list of tokens.
# - With `N` documents, `df(t)` the number of documents containing `t`, `tf(t, d)` the count of `t` in
#   `d`, `|d|` the number of tokens of `d` and `avgdl` the mean of `|d|` over all documents:
#
# $$\operatorname{score}(q, d) = \sum_{t \in q} \operatorname{idf}(t) \cdot \frac{\operatorname{tf}(t, d)\,(k_1 + 1)}{\operatorname{tf}(t, d) + k_1 \left(1 - b + b\,\frac{|d|}{\text{avgdl}}\right)}, \qquad \operatorname{idf}(t) = \ln\left(1 + \frac{N - \operatorname{df}(t) + 0.5}{\operatorname{df}(t) + 0.5}\right)$$
#
#   (Lucene's idf, which is never negative). The sum runs over the query's tokens **with
#   repetition**: a token that appears twice in the query adds its term twice.
# - A query token that is in no document adds 0; an empty query gives all zeros; no documents give an
#   empty array (shape `(0,)`); if every document is empty, every score is 0.
# - `k1` is a number `>= 0` and `b` a number in `[0, 1]`; raise `ValueError` otherwise.
#
# Do not call the course package's `mlcraft.data.text_features` or `mlcraft.inference.retrieval`.


# %% nbgrader={"grade": false, "grade_id": "bm25-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def bm25_scores(query, docs, k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    """BM25 score of every document for ``query`` (Lucene idf), float64 ``(len(docs),)``."""
    ### BEGIN SOLUTION
    if not k1 >= 0:
        raise ValueError(f"k1 must be >= 0, got {k1}")
    if not 0 <= b <= 1:
        raise ValueError(f"b must be in [0, 1], got {b}")
    counts = []
    for doc in docs:
        tf: dict[str, int] = {}
        for token in doc:
            tf[token] = tf.get(token, 0) + 1
        counts.append(tf)
    if not counts:
        return np.zeros(0)
    lengths = [sum(tf.values()) for tf in counts]
    avgdl = sum(lengths) / len(counts)
    scores = np.zeros(len(counts))
    for term in query:
        df = sum(term in tf for tf in counts)
        idf = math.log(1 + (len(counts) - df + 0.5) / (df + 0.5))
        for d, tf in enumerate(counts):
            f = tf.get(term, 0)
            if f:  # then avgdl > 0
                scores[d] += idf * f * (k1 + 1) / (f + k1 * (1 - b + b * lengths[d] / avgdl))
    return scores
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-bm25", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
docs_7 = [["the", "cat", "sat"], ["the", "dog", "sat", "on", "the", "cat"], ["a", "bird"]]
scores_7 = bm25_scores(["cat"], docs_7)
assert isinstance(scores_7, np.ndarray) and scores_7.dtype == np.float64 and scores_7.shape == (3,), (
    f"a float64 array of 3 scores, got {scores_7!r}"
)
# N = 3, df(cat) = 2, idf = ln(1 + 1.5 / 2.5); avgdl = 11 / 3.
_idf_7 = math.log(1 + 1.5 / 2.5)
_want_7 = [
    _idf_7 * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 3 / (11 / 3))),
    _idf_7 * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 6 / (11 / 3))),
    0.0,
]
assert_close(scores_7, np.array(_want_7), rtol=1e-12, atol=1e-12, msg="BM25 of 'cat'")
assert bm25_scores([], docs_7).tolist() == [0.0, 0.0, 0.0], "an empty query scores 0 everywhere"
assert bm25_scores(["cat"], []).shape == (0,), "no documents: an empty array"
### BEGIN HIDDEN TESTS
from mlcraft.data.text_features import bm25_scores as _bm25_reference
from mlcraft.data.text_features import word_tokens

_forbidden_bm25 = (
    "mlcraft.data.text_features.bm25_scores",
    "mlcraft.data.text_features.BM25.__init__",
    "mlcraft.inference.retrieval.LexicalIndex.__init__",
)


def _bm25_loop(query, docs, k1=1.2, b=0.75):
    """float64 reference, written straight from the formula."""
    n = len(docs)
    if n == 0:
        return np.zeros(0)
    avgdl = sum(len(d) for d in docs) / n
    out = np.zeros(n)
    for t in query:
        df = sum(1 for d in docs if t in d)
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for i, d in enumerate(docs):
            f = d.count(t)
            if f:
                out[i] += idf * f * (k1 + 1) / (f + k1 * (1 - b + b * len(d) / avgdl))
    return out


def _check_bm25(name, query, docs, **kwargs):
    got = call_without(bm25_scores, query, docs, forbidden=_forbidden_bm25, **kwargs)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64, (
        f"{name}: return a float64 NumPy array, got {type(got).__name__} {getattr(got, 'dtype', '')}"
    )
    want = _bm25_loop(list(query), [list(d) for d in docs], **kwargs)
    assert got.shape == want.shape, f"{name}: shape should be {want.shape}, got {got.shape}"
    assert_close(got, want, rtol=1e-12, atol=1e-12, msg=f"BM25, {name} {kwargs or ''}")
    assert_close(got, _bm25_reference(query, docs, **kwargs), rtol=1e-12, atol=1e-12, msg=f"BM25, {name}")


_corpus = [word_tokens(text) for text in _reviews[:300]]
_rng = np.random.default_rng(grading_seed("test-bm25", 3))
_bm25_cases = {
    "the example": (["cat"], docs_7, {}),
    "two query terms": (["cat", "dog"], docs_7, {}),
    "a repeated query term counts twice": (["cat", "cat", "bird"], docs_7, {}),
    "a term in no document": (["zebra", "cat"], docs_7, {}),
    "a term in every document": (["x"], [["x"], ["x", "y"], ["x", "x", "z"]], {}),
    "a term in more than half the documents (idf stays positive)": (["the"], docs_7, {}),
    "an empty document among others": (["cat"], [["cat", "cat"], [], ["dog"]], {}),
    "every document empty": (["cat"], [[], []], {}),
    "one document": (["b", "a"], [["a", "b", "a"]], {}),
    "k1 = 0 alone (term frequency ignored)": (["cat", "the"], docs_7, {"k1": 0.0}),
    "b = 0 alone (no length normalization)": (["cat", "sat"], docs_7, {"b": 0.0}),
    "b = 1 (full length normalization)": (["cat", "sat"], docs_7, {"b": 1.0}),
    "k1 and b both given": (["the", "cat"], docs_7, {"k1": 2.0, "b": 0.3}),
    "k1 and b as integers": (["the", "cat"], docs_7, {"k1": 2, "b": 1}),
    "300 reviews, a 6-word query": (["not", "worth", "the", "price", "battery", "great"], _corpus, {}),
    "300 reviews, random queries": (_rng.choice(sorted({t for d in _corpus for t in d}), 8).tolist(), _corpus, {}),
    "documents as tuples": (["cat"], [tuple(d) for d in docs_7], {}),
}
for _name, (_q, _d, _kw) in _bm25_cases.items():
    _check_bm25(_name, _q, _d, **_kw)

for _name, _kw in {
    "k1 < 0": {"k1": -0.1},
    "b < 0": {"b": -0.01},
    "b > 1": {"b": 1.01},
    "b NaN": {"b": float("nan")},
}.items():
    # Invalid parameters are invalid whatever the documents: also with none, or only empty ones.
    for _docs in (docs_7, [], [[], []]):
        try:
            bm25_scores(["cat"], _docs, **_kw)
        except ValueError:
            pass
        else:
            raise AssertionError(f"{_name}, {len(_docs)} documents: bm25_scores should raise ValueError")
### END HIDDEN TESTS
print("bm25_scores: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "self-check", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Self-check
#
# 1. Why can a byte-level BPE encode any string, while a character vocabulary built from training
#    text cannot?
# 2. Your `train_bpe` counts a chunk that occurs 1,000 times once per occurrence. What would go wrong
#    if it counted each distinct chunk once?
# 3. A TF-IDF row is a zero vector. What does a linear model predict for that document?
# 4. Why does a sentence embedding computed with a plain `hidden.mean(1)` change when the batch
#    changes, and why would that go unnoticed in a notebook that embeds one sentence at a time?
# 5. A tagger predicts `B-PER I-PER I-PER` where the truth is `B-PER I-PER O`. What is its token
#    accuracy on those three tokens, and its entity F1?
# 6. Why can a query word that appears in more than half of the documents still have a positive
#    weight with Lucene's idf, and what would the original BM25 idf give it?
#
# <details><summary>Answers</summary>
#
# 1. Every string is a sequence of bytes and every byte value is in the base vocabulary; a character
#    vocabulary has no id for a character it never saw.
# 2. The merges would follow the vocabulary of distinct words, not the text: a rare long word would
#    weigh as much as "the", and compression on real text would drop.
# 3. Only its bias (intercept): every feature is zero.
# 4. Padded positions enter the mean, and the amount of padding depends on the longest sentence in
#    the batch; with one sentence per call there is no padding at all.
# 5. Token accuracy 2/3; entity F1 0: the only predicted chunk has the wrong end.
# 6. Lucene adds 1 inside the logarithm, so the ratio is positive and the log of 1 + ratio is
#    positive; the original `ln((N - df + 0.5) / (df + 0.5))` is negative when `df > N / 2`.
#
# </details>
