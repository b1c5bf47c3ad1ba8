"""Sentence vectors from token vectors: masked mean, [CLS] and last-token pooling.

Mean pooling over the real tokens is the pooling of Sentence-BERT (Reimers & Gurevych, 2019,
"Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks", https://arxiv.org/abs/1908.10084,
section 3) and of ``sentence_transformers.models.Pooling(pooling_mode="mean")``, which the tests
use as the oracle. [CLS] pooling reads the first position (BERT, Devlin et al. 2019); last-token
pooling reads the last real token of each row (decoder-style embedders), whatever the padding side.

Conventions: ``hidden`` is ``(B, T, D)``, ``attention_mask`` is ``(B, T)`` with 1 on real tokens and
0 on padding (bool, integer or float). Padding never contributes to the result, whatever it holds:
it is selected away with ``torch.where``, not multiplied by 0 (``NaN * 0`` is NaN).
"""

from __future__ import annotations

import torch

__all__ = ["cls_pool", "last_token_pool", "masked_mean_pool"]


def _check_hidden(hidden: torch.Tensor) -> None:
    if not isinstance(hidden, torch.Tensor):
        raise TypeError(f"hidden must be a torch.Tensor, got {type(hidden).__name__}")
    if hidden.dim() != 3:
        raise ValueError(f"hidden must have shape (B, T, D), got {tuple(hidden.shape)}")
    if not hidden.is_floating_point():
        raise TypeError(f"hidden must have a floating dtype, got {hidden.dtype}")


def _real_tokens(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Boolean ``(B, T)``: True on real tokens. Checks the shape, and the 0/1 values except on ``meta``."""
    if not isinstance(attention_mask, torch.Tensor):
        raise TypeError(f"attention_mask must be a torch.Tensor, got {type(attention_mask).__name__}")
    if tuple(attention_mask.shape) != tuple(hidden.shape[:2]):
        raise ValueError(
            f"attention_mask must have shape (B, T) = {tuple(hidden.shape[:2])} to match hidden "
            f"{tuple(hidden.shape)}, got {tuple(attention_mask.shape)}"
        )
    if attention_mask.dtype == torch.bool:
        return attention_mask
    if attention_mask.is_complex():
        raise TypeError(f"attention_mask must be bool, integer or float, got {attention_mask.dtype}")
    if attention_mask.device.type != "meta":  # a meta tensor has no values to check
        bad = (attention_mask != 0) & (attention_mask != 1)
        if bool(bad.any()):
            values = attention_mask[bad].unique()[:5].tolist()
            raise ValueError(f"attention_mask must hold only 0 and 1, found {values}")
    return attention_mask != 0


def masked_mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of each row's token vectors over its real tokens.

    Args:
        hidden (Tensor[B, T, D]): token vectors, float16, bfloat16, float32 or float64.
        attention_mask (Tensor[B, T]): 1 (or True) on real tokens, 0 on padding; bool, integer or float.

    Returns:
        Tensor[B, D] in ``hidden``'s dtype and device: ``sum_t m[b, t] h[b, t] / sum_t m[b, t]``.
        Padded positions never contribute, even when they hold NaN or inf. A row with no real
        token gives zeros. The sums run in float32 (float64 stays float64), so half-precision
        inputs neither overflow nor lose the small terms.

    Raises:
        TypeError: ``hidden`` is not a floating tensor, or the mask has a complex dtype.
        ValueError: wrong shapes, or mask values other than 0 and 1.
    """
    _check_hidden(hidden)
    real = _real_tokens(hidden, attention_mask)  # (B, T) bool
    acc_dtype = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    zero = torch.zeros((), dtype=acc_dtype, device=hidden.device)
    kept = torch.where(real[..., None], hidden.to(acc_dtype), zero)  # (B, T, D), padding -> 0 (NaN included)
    counts = real.sum(dim=1, keepdim=True).to(acc_dtype).clamp(min=1.0)  # (B, 1); an empty row divides 0 by 1
    return (kept.sum(dim=1) / counts).to(hidden.dtype)  # (B, D)


def cls_pool(hidden: torch.Tensor) -> torch.Tensor:
    """The first token's vector of each row, ``hidden[:, 0]``: BERT's [CLS] position.

    Args:
        hidden (Tensor[B, T, D]) with ``T >= 1``. Assumes the [CLS] token is first (right padding);
        with left padding use :func:`last_token_pool` or :func:`masked_mean_pool`.

    Returns:
        Tensor[B, D], a view of ``hidden`` (same dtype and device).
    """
    _check_hidden(hidden)
    if hidden.shape[1] == 0:
        raise ValueError(f"cls_pool needs at least one position, got hidden of shape {tuple(hidden.shape)}")
    return hidden[:, 0]


def last_token_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The vector of each row's last real token (the highest position whose mask is 1).

    Works for right padding (position ``length - 1``), left padding (position ``T - 1``) and any
    other mask pattern.

    Args:
        hidden (Tensor[B, T, D]): token vectors, any floating dtype.
        attention_mask (Tensor[B, T]): 1 on real tokens, 0 on padding (bool, integer or float).

    Returns:
        Tensor[B, D] in ``hidden``'s dtype; zeros for a row with no real token.
    """
    _check_hidden(hidden)
    real = _real_tokens(hidden, attention_mask)  # (B, T) bool
    b, t, d = hidden.shape
    if t == 0:  # no positions at all: every row is empty
        return hidden.new_zeros(b, d)
    positions = torch.arange(t, device=hidden.device).expand(b, t)  # (B, T)
    last = torch.where(real, positions, -1).amax(dim=1)  # (B,), -1 for a row with no real token
    index = last.clamp(min=0)[:, None, None].expand(b, 1, d)  # (B, 1, D)
    picked = hidden.gather(1, index).squeeze(1)  # (B, D)
    return torch.where((last >= 0)[:, None], picked, torch.zeros((), dtype=hidden.dtype, device=hidden.device))
