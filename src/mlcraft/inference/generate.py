"""Autoregressive generation: greedy, temperature, top-k and top-p (nucleus) sampling,
with or without a key/value cache.

Top-k follows Fan et al. (2018); top-p follows Holtzman et al. (2020,
https://arxiv.org/abs/1904.09751): keep the smallest set of tokens whose probability mass
reaches ``p`` (the most likely token is always kept). With a KV cache each step feeds only the
newest token; without it each step re-runs the whole context. Given the same random generator
both produce the same tokens (the tests check this).
"""

from __future__ import annotations

import torch

from mlcraft.models.gpt import GPT, KVCache

__all__ = ["filter_logits", "generate", "sample_next"]


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set the logits of tokens outside the top-k / top-p set to ``-inf``. ``logits``: ``(B, V)``."""
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        k = min(top_k, logits.shape[-1])
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if top_p is not None and top_p < 1.0:  # p = 1 keeps everything (float cumsums can reach 1 early)
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
        probs = torch.softmax(sorted_logits.double(), dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs  # mass of strictly more likely tokens
        drop_sorted = mass_before >= top_p  # the first token always has mass_before = 0: kept
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Next token ids ``(B, 1)`` from last-position logits ``(B, V)``; ``temperature=0`` is greedy."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    filtered = filter_logits(logits.float() / (temperature or 1.0), top_k, top_p)  # validates top_k / top_p
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = filtered
    return torch.multinomial(torch.softmax(logits, dim=-1), num_samples=1, generator=generator)


@torch.inference_mode()
def generate(
    model: GPT,
    idx: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Extend ``idx`` ``(B, T)`` by ``max_new_tokens`` tokens; returns ``(B, T + max_new_tokens)``.

    The context is cropped to the last ``block_size`` tokens when it grows longer; the cache is
    then rebuilt from the cropped context (positions are absolute in this model).
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if idx.dim() != 2 or idx.shape[1] == 0:
        raise ValueError(f"idx must be a non-empty (B, T) tensor of token ids, got shape {tuple(idx.shape)}")
    was_training = model.training
    model.eval()
    block = model.config.block_size
    cache: KVCache | None = None
    try:
        for _ in range(max_new_tokens):
            context = idx[:, -block:]
            if use_cache and cache is not None and idx.shape[1] <= block:
                logits, cache = model.forward_with_cache(idx[:, -1:], cache)
            elif use_cache:
                logits, cache = model.forward_with_cache(context)
            else:
                logits = model(context)
            next_token = sample_next(logits[:, -1, :], temperature, top_k, top_p, generator)
            idx = torch.cat([idx, next_token], dim=1)
            if use_cache and idx.shape[1] > block:
                cache = None  # the window slid: absolute positions changed, rebuild from the crop
    finally:
        model.train(was_training)
    return idx
