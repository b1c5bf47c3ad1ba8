"""Attends over the old cache only and appends the new key and value afterwards: the new token does not see itself."""

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
    out = scaled_dot_product_attention(q, cache_k, cache_v)
    return merge_heads(out), torch.cat([cache_k, k], dim=2), torch.cat([cache_v, v], dim=2)
