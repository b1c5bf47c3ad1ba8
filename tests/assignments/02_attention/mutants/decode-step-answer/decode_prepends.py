"""Puts the new key and value at the front of the cache: the output is right (attention without
positions ignores the order of the keys), but the cache is newest first."""

# fails: test-decode-step
# %% grade_id=decode-step-answer
import torch


def decode_step(
    x_t: torch.Tensor,
    cache_k: torch.Tensor,
    cache_v: torch.Tensor,
    w_q: torch.Tensor,
    w_k: torch.Tensor,
    w_v: torch.Tensor,
    n_heads: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Attend from the new token ``x_t`` ``(B, 1, C)`` over the cache plus itself."""
    q, k, v = (split_heads(x_t @ w.T, n_heads) for w in (w_q, w_k, w_v))
    new_k = torch.cat([k, cache_k], dim=2)
    new_v = torch.cat([v, cache_v], dim=2)
    out = scaled_dot_product_attention(q, new_k, new_v)
    return merge_heads(out), new_k, new_v
