# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Attention and transformers from scratch
#
# A transformer is one idea, attention, wrapped in some plumbing. This lesson builds the idea in a
# few lines of PyTorch, checks every piece against a reference implementation, trains a small GPT
# on your CPU, and ends with what changes at scale:
#
# 1. attention as a soft dictionary lookup, in five lines;
# 2. masks (causal, padding, fully masked rows) and why the scores are divided by √d;
# 3. multi-head attention, checked against `torch.nn.MultiheadAttention`;
# 4. positional information: sinusoidal, learned and rotary encodings;
# 5. the transformer block and a small GPT, checked against Hugging Face's GPT-2;
# 6. a LLaMA-style block (RMSNorm, SwiGLU, RoPE, grouped key/value heads), checked against Hugging
#    Face's LLaMA layer;
# 7. training the GPT on Python's own source code; perplexity, bits per character, and the FLOPs
#    the run cost;
# 8. sampling: greedy, temperature, top-k, top-p;
# 9. the KV cache, and what it buys;
# 10. attention at scale: online softmax (FlashAttention), grouped-query attention and the memory
#     of the KV cache, sliding windows;
# 11. what the trained attention heads look at.
#
# The reference code lives in `mlcraft.models`, `mlcraft.inference` and `mlcraft.data`. Each
# section writes the idea by hand first, then checks it against the library with an explicit
# tolerance.
#
# **You will be able to…**
#
# - write scaled dot-product attention from its formula, with boolean, additive, causal, padding
#   and sliding-window masks, check it against `F.scaled_dot_product_attention` to 1e-12 in
#   float64, and explain the √d scale and the NaN of fully masked rows;
# - assemble multi-head attention from a fused QKV projection and compare it with
#   `nn.MultiheadAttention`, mask the right way round; compare sinusoidal, learned and rotary
#   position encodings;
# - build a GPT-2-style model and a LLaMA-style block that equal Hugging Face's GPT-2 and LLaMA
#   layer to 1e-5, and name what RMSNorm, SwiGLU and grouped key/value heads change;
# - train the GPT on a CPU, explain its loss at initialisation, report its perplexity and bits per
#   character, and account for its FLOPs with 6ND;
# - sample from it (greedy, temperature, top-k, top-p), check that a KV cache changes no token,
#   and compute the cache's memory for multi-head, grouped-query and multi-query attention;
# - compute exact attention blockwise with a running max and sum (the FlashAttention recurrence),
#   and read the attention maps of trained heads.
#
# **Prerequisites**: lessons `00_orientation` (the course set-up and the checklist for a first
# training run, used in section 7) and `01_training_loops` (the `Trainer`, `TrainingConfig`,
# warm-up and cosine decay, `HistoryCallback`, used in section 7). Outside the course: PyTorch
# tensors, broadcasting and `nn.Module`; matrix products and dot products; softmax and
# cross-entropy.
#
# **Time**: reading about 80 min; exercise `exercises/02_attention` 90–120 min; running the whole
# notebook took 59 s on a 2-core CPU (its cells, under `pytest --nbval-lax` with one intra-op thread
# and two notebooks at a time); the full 800-step training run (`FULL_RUN`, on by default on a GPU)
# adds about 2 min; GPU: not measured.


# %%
# Set-up: on Colab, install the course package; everywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "mlcraft[course] @ git+https://github.com/mlcraft/mlcraft"], check=True)


# %%
import json
import math
import os
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F  # noqa: N812 (the conventional alias)
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mlcraft.config import TrainingConfig
from mlcraft.data import CharTokenizer, TokenBlockDataset, stdlib_corpus
from mlcraft.inference import filter_logits, generate
from mlcraft.models import (
    GPT,
    GPTConfig,
    LearnedPositionalEmbedding,
    LlamaBlock,
    MultiHeadAttention,
    RMSNorm,
    RotaryEmbedding,
    SwiGLU,
    apply_rotary,
    causal_mask,
    kv_cache_bytes,
    llama_block_config_from_hf,
    load_hf_gpt2_weights,
    load_hf_llama_layer,
    merge_heads,
    online_softmax_attention,
    repeat_kv,
    scaled_dot_product_attention,
    sinusoidal_encoding,
    sliding_window_mask,
    split_heads,
)
from mlcraft.training import HistoryCallback, Trainer
from mlcraft.utils import best_device, configure_logging, seed_everything

# Quiet the trainer's per-step log lines. Any time works: loggers read the level when they log.
configure_logging("WARNING")

plt.rcParams.update({"axes.grid": True, "grid.alpha": 0.3})
device = best_device()
print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} CPU threads")


# %% [markdown]
# ## 1. Attention is a soft dictionary lookup
#
# A Python `dict` takes a query, finds the key that **equals** it, and returns that key's value.
# Attention makes each step differentiable:
#
# 1. score the query against every key with a dot product: $s_j = q \cdot k_j$;
# 2. turn the scores into weights that are positive and sum to 1: $w = \mathrm{softmax}(s)$;
# 3. return the weighted average of the values: $\sum_j w_j v_j$.
#
# Four orthogonal keys, four values, and a query that mostly points at key 2:
#
# **Predict, then run.** The query is multiplied by 1, 4 and 16 before the lookup. Which way does
# the output move as the factor grows, and towards which value?


# %%
keys = torch.eye(4)  # (4 keys, 4 dims): key j is the j-th unit vector
values = torch.tensor([[10.0], [20.0], [30.0], [40.0]])  # (4 keys, 1 dim)
query = torch.tensor([0.1, 0.2, 1.0, 0.0])  # closest to key 2

for sharpness in (1, 4, 16):
    weights = torch.softmax(keys @ (sharpness * query), dim=0)  # (4,)
    print(f"query × {sharpness:>2}: weights {weights.numpy().round(3)}  ->  output {(weights @ values).item():.2f}")


# %% [markdown]
# With small scores, the output is a blend of all four values. As the scores grow apart, the
# weights approach one-hot and the lookup turns hard: the output goes to 30, the value of key 2.
# A network learns what to put in queries, keys and values, so it learns *what to look up*.
#
# With many queries at once, stacked as the rows of $Q$ $(T_q, d)$, and keys and values as the
# rows of $K$ $(T_k, d)$ and $V$ $(T_k, d_v)$:
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d}}\right) V$$
#
# with the softmax taken over each row (over the keys). Section 2.5 explains the $\sqrt{d}$.
# First, literally, one query at a time:


# %%
def attention_loop(q, k, v):
    """q (T_q, d), k (T_k, d), v (T_k, d_v) -> (T_q, d_v), one query at a time."""
    out = torch.empty(q.shape[0], v.shape[-1], dtype=q.dtype)
    for i in range(q.shape[0]):
        scores = k @ q[i] / math.sqrt(q.shape[-1])  # (T_k,): query i against every key
        out[i] = torch.softmax(scores, dim=0) @ v  # (d_v,): weighted average of the values
    return out


# %% [markdown]
# The loop does the same thing for every query, so it vectorizes into one matrix product for the
# scores and one for the output. Writing the transpose as `k.transpose(-2, -1)` makes the function
# work for any leading batch dimensions, such as `(batch, heads, T, d)`:
#
# **Predict, then run.** With `q`, `k` and `v` of shape `(2, 3, 7, 8)`, what shape comes out? Will
# the loop, the vectorized version and PyTorch's fused function agree to 1e-12 in float64, or only
# to about 1e-6?


# %%
def attention(q, k, v, mask=None):
    """q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v) -> (..., T_q, d_v). mask: True = may attend."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # blocked keys get weight exp(-inf) = 0
    return torch.softmax(scores, dim=-1) @ v  # (..., T_q, d_v)


g = torch.Generator().manual_seed(0)
B, H, T, D = 2, 3, 7, 8
q, k, v = (torch.randn(B, H, T, D, generator=g, dtype=torch.float64) for _ in range(3))

reference = F.scaled_dot_product_attention(q, k, v)
print(f"q, k, v {tuple(q.shape)} -> output {tuple(reference.shape)}")
torch.testing.assert_close(attention(q, k, v), reference, rtol=1e-12, atol=1e-12)
torch.testing.assert_close(attention_loop(q[1, 2], k[1, 2], v[1, 2]), reference[1, 2], rtol=1e-12, atol=1e-12)
print("loop and vectorized versions match F.scaled_dot_product_attention to 1e-12 (float64)")


# %% [markdown]
# Checking in float64 with a tolerance of 1e-12 leaves no room for a formula that is only nearly
# right: a missing scale or a softmax over the wrong dimension would be off by far more.
#
# ## 2. Masks
#
# A mask says which keys each query may use. It has shape `(T_q, T_k)`, or anything that
# broadcasts to `(B, H, T_q, T_k)`.
#
# ### 2.1 Boolean and additive masks
#
# PyTorch accepts two kinds. A **boolean** mask is True where a query *may* attend. A **float**
# mask is *added* to the scores: 0 keeps a key, `-inf` removes it (its weight becomes
# `exp(-inf) = 0`). Both express the same pattern here:
#
# **Predict, then run.** What does the additive mask hold where the boolean mask is 1, and where
# it is 0?


# %%
T = 5
allowed = torch.rand(T, T, generator=g) > 0.4  # an arbitrary pattern: query i may see key j where True
allowed[:, 0] = True  # every query sees at least one key (section 2.4 covers the other case)
additive = torch.zeros(T, T, dtype=torch.float64).masked_fill(~allowed, float("-inf"))
print("boolean mask (1 = may attend):\n", allowed.int())
print("additive mask:\n", additive)

q5, k5, v5 = (torch.randn(1, 1, T, D, generator=g, dtype=torch.float64) for _ in range(3))
out_ours = attention(q5, k5, v5, mask=allowed)
for mask in (allowed, additive):
    torch.testing.assert_close(out_ours, F.scaled_dot_product_attention(q5, k5, v5, attn_mask=mask), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out_ours, scaled_dot_product_attention(q5, k5, v5, attn_mask=mask), rtol=1e-12, atol=1e-12)
print("boolean and additive masks give the same output, in ours, PyTorch's and mlcraft's attention")


# %% [markdown]
# A float mask can hold more than 0 and `-inf`: any finite bias nudges a score up or down.
# Relative-position schemes such as ALiBi use exactly that. Watch out for one convention clash:
# `torch.nn.MultiheadAttention` reads a *boolean* mask the other way round (True = blocked).
# Section 3 shows what that does.
#
# ### 2.2 The causal mask
#
# A language model predicts token $t+1$ from tokens $1..t$, so position $t$ must not see later
# positions. That is the lower-triangular **causal mask**. `mlcraft.models.causal_mask(T_q, T_k)`
# also covers decoding with a cache (section 9), where a few new queries meet many keys: the
# queries are then the *last* positions, and the triangle is aligned to the bottom right.
#
# **Predict, then run.** Sketch `causal_mask(3, 8)` before you look: which keys may the first of
# the three new tokens (position 5) see? Then the cell changes the last key and value by 100:
# which outputs move, and by how much do the others move?


# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), gridspec_kw={"width_ratios": [8, 8]})
for ax, (t_q, t_k), title in zip(
    axes, [(8, 8), (3, 8)], ["causal_mask(8): training", "causal_mask(3, 8): 3 new tokens, 5 cached"], strict=True
):
    ax.imshow(causal_mask(t_q, t_k).numpy(), cmap="Blues", vmin=0, vmax=1.3)
    ax.set_xticks(range(t_k))
    ax.set_yticks(range(t_q), labels=[str(t_k - t_q + i) for i in range(t_q)])
    ax.set_xlabel("key position")
    ax.set_ylabel("query position")
    ax.set_title(title, fontsize=10)
    ax.grid(False)
plt.tight_layout()
plt.show()

T = 7
torch.testing.assert_close(
    attention(q, k, v, mask=causal_mask(T)), F.scaled_dot_product_attention(q, k, v, is_causal=True), rtol=1e-12, atol=1e-12
)
torch.testing.assert_close(
    scaled_dot_product_attention(q, k, v, is_causal=True),
    F.scaled_dot_product_attention(q, k, v, is_causal=True),
    rtol=1e-12,
    atol=1e-12,
)

# Causality, checked directly: change the last key and value; no earlier output may move.
k_changed, v_changed = k.clone(), v.clone()
k_changed[..., -1, :] += 100.0
v_changed[..., -1, :] += 100.0
before = attention(q, k, v, mask=causal_mask(T))
after = attention(q, k_changed, v_changed, mask=causal_mask(T))
torch.testing.assert_close(after[..., :-1, :], before[..., :-1, :], rtol=0, atol=0)
print(f"last position changed by {(after - before)[..., -1, :].abs().max():.1f}; earlier positions bitwise unchanged")


# %% [markdown]
# The masked scores become `-inf`, their weights exactly 0, and `0 × v` is exactly 0, so the
# earlier outputs do not change by a single bit (`rtol=0, atol=0`).
#
# ### 2.3 Padding masks
#
# Sequences in a batch have different lengths, so the short ones get padded to the longest. The
# padding positions hold junk, and no query may read them. The mask comes from the lengths,
# shaped `(B, 1, 1, T_k)`, so it broadcasts over heads and queries:
#
# **Predict, then run.** Sequence 1 has 4 real tokens and junk of size 1000 in its two padding
# positions. Will the outputs of its real tokens be merely close to those of the same 4 tokens run
# alone, or equal to 1e-12?


# %%
lengths = torch.tensor([6, 4])  # two sequences, padded to 6
T = int(lengths.max())
valid = torch.arange(T) < lengths[:, None]  # (B, T): True on real tokens
key_mask = valid[:, None, None, :]  # (B, 1, 1, T_k)
print("valid tokens:\n", valid.int())

qp, kp, vp = (torch.randn(2, 1, T, D, generator=g, dtype=torch.float64) for _ in range(3))
kp[1, :, 4:] = 1e3 * torch.randn(1, 2, D, generator=g, dtype=torch.float64)  # junk in the padding
vp[1, :, 4:] = 1e3
padded_out = attention(qp, kp, vp, mask=key_mask)

alone = attention(qp[1:, :, :4], kp[1:, :, :4], vp[1:, :, :4])  # sequence 1 on its own, no padding
torch.testing.assert_close(padded_out[1:, :, :4], alone, rtol=1e-12, atol=1e-12)
print("real tokens of the padded sequence = the same sequence run alone: the junk is invisible")


# %% [markdown]
# ### 2.4 Fully masked rows
#
# Now mask the *queries* on padding too (a common way to build one mask for both sides), or
# combine left padding with a causal mask: some rows of the mask are then all False. Such a query
# has nothing to attend to, its scores are all `-inf`, and softmax computes `0 / 0`:
#
# **Predict, then run.** The padded positions get loss weight 0. Will the masked loss be finite?
# And which gradients will hold NaN: only those of sequence 1's padding, all of sequence 1's, or
# those of both sequences?


# %%
both_sides = valid[:, None, :, None] & valid[:, None, None, :]  # (B, 1, T_q, T_k): query and key must be real
naive = attention(qp, kp, vp, mask=both_sides)
print("naive attention, sequence 1, first value of each position:", naive[1, 0, :, 0].numpy().round(3))

loss_weights = valid[:, None, :, None]  # ignore padded positions in the loss...
print("masked loss with the naive output:", (naive * loss_weights).sum().item())  # ...NaN anyway: 0 × NaN = NaN

v_leaf = vp.clone().requires_grad_()
(attention(qp, kp, v_leaf, mask=both_sides) * loss_weights).sum().backward()
print("NaN in the gradient of the values, per sequence:", v_leaf.grad.isnan().flatten(1).any(1).tolist())


# %% [markdown]
# The NaN does not stay in the padding. Multiplying it by a zero loss weight still gives NaN, so
# the loss is NaN, and the gradient of every value vector of sequence 1, real tokens included, is
# NaN: one optimizer step would write NaN into the weights that produced them.
#
# `mlcraft.models.scaled_dot_product_attention` detects rows with no visible key and returns
# zeros there. Compare with what PyTorch's own function returns on your install: recent versions
# return zeros as well, older ones return NaN, so do not rely on it without checking:


# %%
safe = scaled_dot_product_attention(qp, kp, vp, attn_mask=both_sides)
fused_out = F.scaled_dot_product_attention(qp, kp, vp, attn_mask=both_sides)
print("mlcraft, sequence 1:", safe[1, 0, :, 0].numpy().round(3))
print(f"F.scaled_dot_product_attention (torch {torch.__version__}):", fused_out[1, 0, :, 0].numpy().round(3))
print("masked loss with mlcraft's output:", round((safe * loss_weights).sum().item(), 4))
torch.testing.assert_close(safe[1, :, 4:], torch.zeros_like(safe[1, :, 4:]), rtol=0, atol=0)
torch.testing.assert_close(safe[..., :4, :], naive[..., :4, :], rtol=1e-12, atol=1e-12)

v_leaf = vp.clone().requires_grad_()
(scaled_dot_product_attention(qp, kp, v_leaf, attn_mask=both_sides) * loss_weights).sum().backward()
print("NaN in the gradient of the values, per sequence:", v_leaf.grad.isnan().flatten(1).any(1).tolist())
assert v_leaf.grad.isfinite().all(), "mlcraft's attention must give finite gradients on fully masked rows"


# %% [markdown]
# The fix is two lines: fill fully masked rows with any finite score before the softmax, then
# multiply their weights by zero. Rows with at least one visible key are untouched (the check
# against the naive output), and the gradients stay finite.
#
# ### 2.5 Why divide by √d
#
# If the entries of $q$ and $k$ are independent with mean 0 and variance 1, then
# $q \cdot k = \sum_{i=1}^{d} q_i k_i$ is a sum of $d$ terms of variance 1: its standard
# deviation is $\sqrt{d}$. Without the scale, wider heads give wider scores:
#
# **Predict, then run.** For $d$ = 16, 256 and 1024, what standard deviation of $q \cdot k$ do you
# expect, and what after dividing by $\sqrt{d}$?


# %%
for d in (16, 256, 1024):
    dots = (torch.randn(10_000, d, generator=g) * torch.randn(10_000, d, generator=g)).sum(dim=-1)
    print(f"d = {d:>4}: std of q·k = {dots.std():6.2f}   (√d = {math.sqrt(d):5.2f});   std of q·k/√d = {(dots / math.sqrt(d)).std():.2f}")


# %% [markdown]
# Section 1 showed what wide scores do to a softmax: the weights go one-hot. A one-hot softmax
# also stops learning. Its Jacobian is $\mathrm{diag}(w) - w w^\top$, which is zero when $w$ is
# one-hot, so almost no gradient flows back to the queries and keys. Here is the entropy of the
# attention weights over 64 keys (ln 64 ≈ 4.16 means uniform, 0 means one-hot) and the size of
# the softmax Jacobian, as the head width grows:
#
# **Predict, then run.** As $d$ goes from 2 to 1024, what happens to the entropy of the unscaled
# weights, and to that of the scaled ones?


# %%
dims = [2**i for i in range(1, 11)]
n_keys = 64
curves = {"scaled by 1/√d": ([], []), "unscaled": ([], [])}
for d in dims:
    qd = torch.randn(256, d, generator=g)
    kd = torch.randn(n_keys, d, generator=g)
    for name, scale in (("scaled by 1/√d", 1 / math.sqrt(d)), ("unscaled", 1.0)):
        log_w = torch.log_softmax(qd @ kd.T * scale, dim=-1)  # (256 queries, 64 keys)
        w = log_w.exp()
        entropy = -(w * log_w).sum(dim=-1).mean()
        jacobian = torch.diag_embed(w) - w[:, :, None] * w[:, None, :]  # (256, 64, 64)
        curves[name][0].append(entropy.item())
        curves[name][1].append(torch.linalg.matrix_norm(jacobian).mean().item())

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for name, (entropies, jac_norms) in curves.items():
    axes[0].plot(dims, entropies, "o-", label=name)
    axes[1].plot(dims, jac_norms, "o-", label=name)
axes[0].axhline(math.log(n_keys), color="grey", ls="--", lw=0.8, label="ln 64: uniform")
axes[0].set_ylabel("mean entropy of the weights (nats)")
axes[0].set_title("Attention entropy over 64 keys")
axes[1].set_ylabel("mean ‖diag(w) − wwᵀ‖ (Frobenius)")
axes[1].set_title("Softmax Jacobian: how much gradient gets through")
for ax in axes:
    ax.set_xscale("log", base=2)
    ax.set_xlabel("head dimension d")
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
print(f"d = {dims[-1]}: entropy {curves['unscaled'][0][-1]:.2f} unscaled vs {curves['scaled by 1/√d'][0][-1]:.2f} scaled")


# %% [markdown]
# With the scale, both curves stay flat at every width: the scores have standard deviation 1
# whatever $d$ is. Without it, the entropy collapses towards 0. The Jacobian first grows (a
# moderately peaked softmax is the most sensitive one; a nearly uniform one over 64 keys is not
# very sensitive either), then falls towards zero once the weights are close to one-hot.
# Random initial weights give exactly this kind of $q$ and $k$, so an unscaled wide head would
# start out saturated and barely train. That is the whole reason for the $1/\sqrt{d}$, and why
# every attention function takes a `scale=` argument defaulting to it.
#
# ## 3. Multi-head attention
#
# One attention computes one weighted average per query: one question per position. **Multi-head**
# attention splits the model width $C$ into $H$ heads of $D = C / H$ channels, runs attention in
# each head independently, and concatenates the results. Each position asks $H$ different
# questions for the cost of one wide attention.
#
# ### 3.1 Splitting and merging heads
#
# Splitting is a reshape plus a transpose: head $h$ owns channels $hD$ to $(h+1)D - 1$, and the
# head axis moves in front of time so that it acts as a batch dimension:
#
# **Predict, then run.** `x` has shape `(2, 5, 12)` and is split into 3 heads. What shape does
# `split_heads` return, and is the result contiguous in memory?


# %%
B, T, C, H = 2, 5, 12, 3  # D = C / H = 4
x = torch.randn(B, T, C, generator=g)
xh = split_heads(x, H)  # (B, T, C) -> (B, T, H, D) -> (B, H, T, D)
print(f"x {tuple(x.shape)} -> split_heads {tuple(xh.shape)} -> merge_heads {tuple(merge_heads(xh).shape)}")
print(f"split_heads returns a view; contiguous: {xh.is_contiguous()}")

torch.testing.assert_close(xh[:, 1], x[..., 4:8], rtol=0, atol=0)  # head 1 = channels 4..7
torch.testing.assert_close(merge_heads(xh), x, rtol=0, atol=0)  # exact round trip


# %% [markdown]
# `split_heads` returns a non-contiguous view, so `merge_heads` has to use `reshape` (which copies
# when it must); `view` would raise here.
#
# ### 3.2 Multi-head attention by hand
#
# Queries, keys and values are three linear maps of the same input. Stacking their weights into one
# `(3C, C)` matrix computes all three in a single matmul (the **fused QKV** projection); a final
# linear layer mixes the heads' outputs:
#
# **Predict, then run.** How many parameters does a multi-head attention layer of width $C = 12$
# have? Would the number change with 6 heads instead of 3?


# %%
def mha_by_hand(x, qkv, proj, n_heads, mask=None):
    q, k, v = qkv(x).split(x.shape[-1], dim=-1)  # (B, T, 3C) -> 3 × (B, T, C)
    q, k, v = (split_heads(t, n_heads) for t in (q, k, v))  # 3 × (B, H, T, D)
    out = attention(q, k, v, mask)  # (B, H, T, D): every head at once
    return proj(merge_heads(out))  # (B, T, C): concatenate the heads, then mix them


x64 = x.double()
for fused in (True, False):
    torch.manual_seed(0)
    mha = MultiHeadAttention(C, H, causal=True, fused=fused).double()
    out_lib, _ = mha(x64)
    torch.testing.assert_close(mha_by_hand(x64, mha.qkv, mha.proj, H, causal_mask(T)), out_lib, rtol=1e-12, atol=1e-12)
print("mha_by_hand matches mlcraft's MultiHeadAttention, fused=True and fused=False")
n_params = sum(p.numel() for p in mha.parameters())
print(f"parameters: {n_params} = 4·C² + 4·C = {4 * C * C + 4 * C} (qkv: 3C² + 3C, proj: C² + C)")


# %% [markdown]
# ### 3.3 Against `torch.nn.MultiheadAttention`
#
# `mlcraft`'s `qkv.weight` is laid out as `[W_q; W_k; W_v]`, the same as
# `nn.MultiheadAttention.in_proj_weight`, so the weights copy over one to one. Mind the mask:
# `nn.MultiheadAttention` reads a boolean mask as **True = blocked**, the opposite of
# `F.scaled_dot_product_attention`. Passing our mask unchanged is a silent bug:
#
# **Predict, then run.** With our causal mask passed unchanged, will `nn.MultiheadAttention` raise
# an error? If not, which keys does each query then see?


# %%
torch_mha = nn.MultiheadAttention(C, H, batch_first=True).double()
with torch.no_grad():
    torch_mha.in_proj_weight.copy_(mha.qkv.weight)
    torch_mha.in_proj_bias.copy_(mha.qkv.bias)
    torch_mha.out_proj.weight.copy_(mha.proj.weight)
    torch_mha.out_proj.bias.copy_(mha.proj.bias)

out_lib, _ = mha(x64)
out_torch, _ = torch_mha(x64, x64, x64, attn_mask=~causal_mask(T), need_weights=False)  # True = blocked here
torch.testing.assert_close(out_lib, out_torch, rtol=1e-12, atol=1e-12)
print("mlcraft MultiHeadAttention == nn.MultiheadAttention with copied weights (float64, 1e-12)")

wrong, _ = torch_mha(x64, x64, x64, attn_mask=causal_mask(T), need_weights=False)  # our convention: wrong here
print(f"with the mask not inverted: no error, max difference {(wrong - out_lib).abs().max():.2f}")


# %% [markdown]
# With the mask not inverted, each query sees only the keys strictly *after* it, and the last
# position sees none at all. Nothing raises; the answer is simply wrong. Always check a new
# attention call on a case where you know the answer.
#
# ## 4. Positional information
#
# ### 4.1 Attention does not know the order
#
# Self-attention without a mask treats its input as a *set*: shuffle the tokens and the outputs are
# shuffled the same way, nothing else changes. It is **permutation-equivariant**:


# %%
torch.manual_seed(0)
set_attn = MultiHeadAttention(C, H, causal=False).double()
perm = torch.randperm(T, generator=g)
out_then_perm = set_attn(x64)[0][:, perm]
perm_then_out = set_attn(x64[:, perm])[0]
torch.testing.assert_close(perm_then_out, out_then_perm, rtol=1e-12, atol=1e-12)
print(f"permutation {perm.tolist()}: attention(x[perm]) == attention(x)[perm]")


# %% [markdown]
# So without extra information, `a = b - c` and `c = b - a` look alike to the model: same tokens,
# same outputs, only reordered. A causal mask breaks part of the symmetry, but every practical model
# adds positions explicitly. Three common ways follow.
#
# ### 4.2 Sinusoidal encodings
#
# The original transformer adds a fixed vector to each token embedding:
# $PE[p, 2i] = \sin(p\,\omega_i)$ and $PE[p, 2i+1] = \cos(p\,\omega_i)$ with
# $\omega_i = 10000^{-2i/d}$. Each pair of dimensions is a clock turning at its own speed, from one
# turn every $2\pi$ positions down to one every $2\pi \cdot 10000$ positions:
#
# **Predict, then run.** In the similarity matrix $PE \cdot PE^\top$ (right panel), where will the
# values be largest? Does the similarity of positions $p$ and $p + k$ depend on $p$?


# %%
pe = sinusoidal_encoding(128, 64)  # (positions, d_model)
p, i = 37, 5
torch.testing.assert_close(pe[p, 2 * i].item(), math.sin(p * 10000 ** (-2 * i / 64)), rtol=1e-6, atol=1e-6)
torch.testing.assert_close(pe[p, 2 * i + 1].item(), math.cos(p * 10000 ** (-2 * i / 64)), rtol=1e-6, atol=1e-6)

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
im = axes[0].imshow(pe.T.numpy(), aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1)
axes[0].set_xlabel("position p")
axes[0].set_ylabel("dimension")
axes[0].set_title("sinusoidal_encoding(128, 64)ᵀ")
fig.colorbar(im, ax=axes[0])
im = axes[1].imshow((pe @ pe.T).numpy(), cmap="viridis")
axes[1].set_xlabel("position")
axes[1].set_ylabel("position")
axes[1].set_title("PE · PEᵀ: similarity between positions")
fig.colorbar(im, ax=axes[1])
for ax in axes:
    ax.grid(False)
plt.tight_layout()
plt.show()


# %% [markdown]
# The right panel has constant diagonals: the similarity of two positions depends only on their
# distance, because $\sin a \sin b + \cos a \cos b = \cos(a - b)$, so
# $PE[p] \cdot PE[p + k] = \sum_i \cos(k\,\omega_i)$ whatever $p$ is:


# %%
for k_off in (1, 8):
    dots = [(pe[p] @ pe[p + k_off]).item() for p in (0, 20, 100)]
    print(f"PE[p] · PE[p + {k_off}] for p = 0, 20, 100: {[round(s, 4) for s in dots]}")
    torch.testing.assert_close(torch.tensor(dots), torch.full((3,), dots[0]), rtol=1e-5, atol=1e-5)


# %% [markdown]
# ### 4.3 Learned positions
#
# GPT-2, and the GPT in this lesson, simply learn one vector per position: an `nn.Embedding` with
# `block_size` rows, trained like any other weight. It is simple and works well, but it has no row
# for a position it was not built for:
#
# **Predict, then run.** A table built for 64 positions is asked for positions 0 to 64. Does it
# raise, wrap around, or return something for position 64?


# %%
learned = LearnedPositionalEmbedding(max_positions=64, d_model=16)
print("positions 0..63 ->", tuple(learned(torch.arange(64)).shape))
try:
    learned(torch.arange(65))
except ValueError as err:
    print("positions 0..64 -> ValueError:", err)


# %% [markdown]
# ### 4.4 Rotary embeddings (RoPE)
#
# Most recent open models (LLaMA and its relatives) use rotary embeddings instead. Nothing is added
# to the input. Inside each attention layer, the query and the key at position $p$ are **rotated**:
# dimension $i$ is paired with dimension $i + D/2$, and each pair is turned by the angle
# $p\,\theta_i$. A rotation keeps lengths, and rotating $q$ by angle $m\theta$ and $k$ by $n\theta$
# leaves their dot product depending only on $n - m$. The score then carries the *relative*
# position. Nothing is learned per position: the angles are a formula, so the cos/sin table
# (`max_positions` rows, precomputed for speed) can be made as long as needed, where a learned
# table has no row past the length it was trained to:
#
# **Predict, then run.** Which of the five (query, key) position pairs below give the same score?


# %%
rope = RotaryEmbedding(head_dim=16, max_positions=4096)
q1 = torch.randn(16, generator=g, dtype=torch.float64)
k1 = torch.randn(16, generator=g, dtype=torch.float64)


def rope_score(m, n):
    """q rotated to position m, dotted with k rotated to position n."""
    cos, sin = rope(torch.tensor([m, n]), dtype=torch.float64)  # (2, 16) each
    return (apply_rotary(q1, cos[0], sin[0]) @ apply_rotary(k1, cos[1], sin[1])).item()


for m, n in [(0, 2), (5, 7), (1000, 1002), (3000, 3002), (5, 6)]:
    print(f"query at {m:>4}, key at {n:>4} (distance {n - m}): score {rope_score(m, n):+.6f}")
torch.testing.assert_close(rope_score(3000, 3002), rope_score(0, 2), rtol=1e-9, atol=1e-9)

cos, sin = rope(torch.tensor([123]), dtype=torch.float64)
torch.testing.assert_close(apply_rotary(q1, cos[0], sin[0]).norm(), q1.norm(), rtol=1e-12, atol=1e-12)
print("the score depends only on the distance, and the rotation keeps |q|")


# %% [markdown]
# Distance 2 gives the same score at positions 0, 5, 1000 and 3000; distance 1 gives a different
# one. The model in this lesson stays with GPT-2's learned positions, so that it can be checked
# number for number against Hugging Face's GPT-2.
#
# ## 5. The transformer block and a small GPT
#
# A GPT is a stack of identical **blocks** on a *residual stream* of width $C$. Each block reads
# the stream, computes something, and adds it back. GPT-2's block is **pre-norm**: the LayerNorm
# sits inside each branch, so the identity path from input to output is never normalised away.
#
# ```text
# x = x + attn(ln1(x))   # tokens exchange information (causal multi-head attention)
# x = x + mlp(ln2(x))    # each token is processed on its own: Linear(C, 4C), GELU, Linear(4C, C)
# ```
#
# Token and position embeddings go in at the bottom; a final LayerNorm and a linear layer to the
# vocabulary come out at the top. The output layer shares its weight with the token embedding
# (**weight tying**), which saves $V \cdot C$ parameters.


# %%
text = stdlib_corpus(max_chars=None)  # Python's own standard library source: no download
tokenizer = CharTokenizer.fit(text)
V = tokenizer.vocab_size

seed_everything(0)
config = GPTConfig(vocab_size=V, block_size=64, n_layer=4, n_head=4, d_model=128, dropout=0.0)
model = GPT(config)
print(config)

blk = model.blocks[0]
xb = torch.randn(2, 10, config.d_model, generator=g)
by_hand = xb + blk.attn(blk.ln1(xb))[0]
by_hand = by_hand + blk.mlp(blk.ln2(by_hand))
torch.testing.assert_close(by_hand, blk(xb)[0], rtol=1e-6, atol=1e-6)
print("block by hand == model.blocks[0]")


# %% [markdown]
# Where the parameters are, for vocabulary $V$, context $T$, width $C$ and $L$ blocks:
#
# | part | parameters |
# |---|---|
# | token embedding (shared with the output layer) | $V C$ |
# | position embedding | $T C$ |
# | each block: 2 LayerNorms, attention, MLP | $4C + (4C^2 + 4C) + (8C^2 + 5C) = 12C^2 + 13C$ |
# | final LayerNorm | $2C$ |
#
# **Predict, then run.** With $C = 128$, $L = 4$, $T = 64$ and a vocabulary of about a hundred
# characters, roughly how many parameters does the model have, and what share of them sits in the
# blocks?


# %%
Cm, L, T = config.d_model, config.n_layer, config.block_size
formula = V * Cm + T * Cm + L * (12 * Cm**2 + 13 * Cm) + 2 * Cm
print(f"V = {V}, T = {T}, C = {Cm}, L = {L}")
print(f"formula {formula:,}   model.num_parameters() {model.num_parameters():,}")
print(f"blocks hold {L * (12 * Cm**2 + 13 * Cm) / formula:.0%} of the parameters; output layer tied: {model.lm_head.weight is model.wte.weight}")
assert formula == model.num_parameters()


# %% [markdown]
# ### 5.1 Parity with Hugging Face's GPT-2
#
# The architecture is GPT-2's, so a `GPT2LMHeadModel` of the same shape must give the same logits
# once its weights are copied in. `load_hf_gpt2_weights` does the copying. Its one subtlety:
# Hugging Face stores GPT-2's linear layers as `Conv1D` with weights of shape `(in, out)`, the
# transpose of `nn.Linear`'s, so those weights are transposed on the way. A random GPT-2 is enough:
# we are checking the wiring, not the training. Dropout is off on both sides, since it would
# randomise the outputs.
#
# **Predict, then run.** How far apart will the logits of two independently initialised models be
# before the copy, and how close after it?


# %%
import transformers
from transformers import GPT2Config, GPT2LMHeadModel

transformers.utils.logging.set_verbosity_error()  # no chatter about configs

torch.manual_seed(1)
hf = GPT2LMHeadModel(
    GPT2Config(
        vocab_size=V, n_positions=config.block_size, n_embd=config.d_model, n_layer=config.n_layer,
        n_head=config.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
    )
).eval()
ours = GPT(config).eval()
ids = torch.randint(0, V, (2, config.block_size), generator=g)
with torch.no_grad():
    hf_logits = hf(ids).logits
    print(f"before copying: max |difference| {(ours(ids) - hf_logits).abs().max():.3f}")
    load_hf_gpt2_weights(ours, hf)
    our_logits = ours(ids)
print(f"after copying:  max |difference| {(our_logits - hf_logits).abs().max():.1e}  (logits {tuple(our_logits.shape)})")
torch.testing.assert_close(our_logits, hf_logits, rtol=1e-5, atol=1e-5)


# %% [markdown]
# With a network, the same call copies the pretrained GPT-2 small checkpoint
# (`GPT2LMHeadModel.from_pretrained("gpt2")`, about 550 MB) into
# `GPT(GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, d_model=768))`. Here we
# train our own small model instead, after one look at how newer models change the block.
#
# ## 6. A LLaMA-style block
#
# GPT-2's block is from 2019. LLaMA (2023) and most open models since keep its shape, a pre-norm
# residual stream with an attention branch and an MLP branch, and change four parts of it:
#
# - **RMSNorm** instead of LayerNorm: $x / \sqrt{\mathrm{mean}(x^2) + \epsilon} \cdot g$, with no
#   mean subtraction and no bias: one statistic instead of two, and the same quality in practice;
# - a **SwiGLU** MLP, $W_{down}\,(\mathrm{silu}(W_{gate}\,x) \odot W_{up}\,x)$: a gated MLP, better
#   per parameter in Shazeer's comparison. Three matrices of width $\approx 8C/3$ hold as many
#   weights as GPT-2's two of width $4C$;
# - **RoPE** (section 4.4) on the queries and keys of every layer, instead of learned positions
#   added at the bottom;
# - **grouped-query attention** (GQA): fewer key/value heads than query heads, each shared by a
#   group of query heads, which shrinks the KV cache (section 10.2 counts it). And no biases.
#
# ```text
# x = x + attn(rmsnorm_1(x))   # causal attention, RoPE on q and k, n_kv_heads shared key/value heads
# x = x + mlp(rmsnorm_2(x))    # SwiGLU
# ```
#
# `mlcraft.models.llama` writes these parts out. RMSNorm first:
#
# **Predict, then run.** RMSNorm skips the mean subtraction of LayerNorm. On a vector whose entries
# have mean 0, how far apart are the two (without their learned scale and bias)? And on one whose
# mean is 3?


# %%
x_norm = torch.randn(4, 64, generator=g)
rms_by_hand = x_norm / torch.sqrt(x_norm.pow(2).mean(dim=-1, keepdim=True) + 1e-6)  # (4, 64)
torch.testing.assert_close(RMSNorm(64, eps=1e-6)(x_norm), rms_by_hand, rtol=1e-6, atol=1e-6, msg="mlcraft RMSNorm")
torch.testing.assert_close(nn.RMSNorm(64, eps=1e-6)(x_norm), rms_by_hand, rtol=1e-6, atol=1e-6, msg="torch.nn.RMSNorm")
for mean in (0.0, 3.0):
    shifted = x_norm - x_norm.mean(dim=-1, keepdim=True) + mean  # every row has this mean
    gap = (RMSNorm(64, eps=1e-6)(shifted) - F.layer_norm(shifted, (64,), eps=1e-6)).abs().max().item()
    print(f"rows with mean {mean}: max |RMSNorm - LayerNorm| = {gap:.1e}")

C_l = 64
print(f"SwiGLU(64, 172): {sum(p.numel() for p in SwiGLU(C_l, 172).parameters()):,} weights; GPT-2's MLP without biases: {2 * C_l * 4 * C_l:,}")


# %% [markdown]
# On centred rows the root mean square *is* the standard deviation, so the two norms agree to
# rounding; with a mean of 3 they differ by far more than rounding. RMSNorm assumes the residual
# stream needs no re-centring, and training copes. SwiGLU's width 172 (8 · 64 / 3, rounded up to
# a multiple of 4) gives it almost exactly the weights of GPT-2's MLP.
#
# ### 6.1 Parity with Hugging Face's LLaMA layer
#
# `LlamaBlock` must give the same output as Hugging Face's `LlamaDecoderLayer` with the same
# weights, and `load_hf_llama_layer` copies them (names differ, shapes do not: LLaMA uses plain
# `nn.Linear`). Two details of the Hugging Face layer: it does not compute RoPE itself but takes
# `position_embeddings=(cos, sin)` from `LlamaRotaryEmbedding`, computed once per model and shared
# by every layer; and its attention depends on `attn_implementation`. We ask for `"eager"`, the
# written-out attention, which *adds* whatever mask it is given: a causal mask has to be passed as
# an additive `(B, 1, T, T)` tensor, or the layer attends to the future. Under `"sdpa"`, the
# default of a whole Hugging Face model, a missing mask with more than one query is taken as causal
# (SDPA's `is_causal` flag), so there the same mistake goes unnoticed.
#
# **Predict, then run.** The Hugging Face layer has 4 query heads and 2 key/value heads. How many
# rows does its `k_proj.weight` have, compared with `q_proj.weight`?


# %%
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRotaryEmbedding

hf_llama_config = LlamaConfig(
    hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=172, num_hidden_layers=1, vocab_size=V,
    attn_implementation="eager",  # the written-out attention, which adds our mask
)  # fmt: skip
torch.manual_seed(2)
hf_layer = LlamaDecoderLayer(hf_llama_config, layer_idx=0).eval()
with torch.no_grad():  # Hugging Face starts the norm weights at 1: make them random so their copy is checked too
    for norm in (hf_layer.input_layernorm, hf_layer.post_attention_layernorm):
        norm.weight.normal_(1.0, 0.1)
print(f"q_proj {tuple(hf_layer.self_attn.q_proj.weight.shape)}, k_proj {tuple(hf_layer.self_attn.k_proj.weight.shape)}, v_proj {tuple(hf_layer.self_attn.v_proj.weight.shape)}")

llama_block = LlamaBlock(llama_block_config_from_hf(hf_llama_config)).eval()
print(llama_block.config)
T_l = 12
xl = torch.randn(2, T_l, 64, generator=g)
position_ids = torch.arange(T_l)[None].expand(2, T_l)  # (B, T)
cos_sin = LlamaRotaryEmbedding(hf_llama_config)(xl, position_ids)  # ((B, T, D), (B, T, D)), shared by every layer
additive_causal = torch.zeros(T_l, T_l).masked_fill(~causal_mask(T_l), float("-inf"))[None, None]  # (1, 1, T, T)
with torch.no_grad():
    hf_out = hf_layer(xl, attention_mask=additive_causal, position_ids=position_ids, position_embeddings=cos_sin)
    hf_out = hf_out[0] if isinstance(hf_out, tuple) else hf_out  # transformers 4.x returned a tuple
    print(f"before copying: max |difference| {(llama_block(xl) - hf_out).abs().max():.3f}")
    load_hf_llama_layer(llama_block, hf_layer)
    ours_l = llama_block(xl)
print(f"after copying:  max |difference| {(ours_l - hf_out).abs().max():.1e}")
torch.testing.assert_close(ours_l, hf_out, rtol=1e-5, atol=1e-5, msg="LlamaBlock vs LlamaDecoderLayer")

gpt_block_weights = 12 * C_l**2  # GPT-2 block of width 64, weights only: attention 4C², MLP 8C²
llama_block_weights = sum(p.numel() for p in llama_block.parameters())
print(f"weights per block at width 64: GPT-2 {gpt_block_weights:,}, LLaMA-style {llama_block_weights:,} (2 of 4 heads' K/V removed)")


# %% [markdown]
# The key and value projections have half the rows of the query projection: 2 key/value heads of
# width 16 each serve 4 query heads, and inside the attention `repeat_kv` repeats each key/value
# head for its group of 2 query heads. The block then has fewer weights than GPT-2's, and what
# matters more for serving, half the KV cache per token. The rest of the lesson trains GPT-2's
# block, so that the model stays comparable number for number with Hugging Face's GPT-2.
#
# ## 7. Training the small GPT on CPU
#
# The corpus is the source code of a few standard-library modules (`argparse`, `pathlib`,
# `typing`, ...), read from your Python installation: code, comments and docstrings in English. The
# tokenizer maps each distinct character to an id. Character-level models need long sequences,
# but the vocabulary is tiny and there is nothing to download.


# %%
ids_all = tokenizer.encode(text)
n_train = int(0.9 * len(ids_all))
train_ids, val_ids = ids_all[:n_train], ids_all[n_train:]  # contiguous split: val is unseen text
print(f"{len(text):,} characters, vocabulary of {V}: {''.join(tokenizer.itos[1:60])!r}...")
print(f"train {len(train_ids):,} tokens, val {len(val_ids):,} tokens")
sample_at = max(text.find("class HelpFormatter"), 0)  # a docstring from argparse
print("a sample of the training text:\n" + text[sample_at : sample_at + 300])


# %% [markdown]
# `TokenBlockDataset` cuts the token stream into windows of `block_size + 1` tokens: the input is
# the first `block_size`, the target is the same window shifted by one. Every position in a window
# is a training example, predicting the next character from everything before it. With `stride=1`
# a window starts at every character, so shuffled batches are random crops of the text. For
# validation, non-overlapping windows avoid counting the same text twice.
#
# **Predict, then run.** With $N$ training tokens, windows of 65 tokens and `stride=1`, how many
# training windows are there? How does the target line printed below relate to the input line?


# %%
block_size = config.block_size
train_ds = TokenBlockDataset(train_ids, block_size, stride=1)  # a window starting at every character
val_all = TokenBlockDataset(val_ids, block_size)  # non-overlapping windows
val_ds = torch.utils.data.Subset(val_all, range(0, len(val_all), 4))  # a quarter of them: enough, and fast
xw, yw = train_ds[sample_at]
print(f"{len(train_ds):,} training windows, {len(val_ds)} validation windows")
print(f"input : {tokenizer.decode(xw[:40])!r}")
print(f"target: {tokenizer.decode(yw[:40])!r}")


def lm_loss(logits, y):
    return F.cross_entropy(logits.flatten(0, 1), y.flatten())  # (B·T, V) against (B·T,)


# %% [markdown]
# **Check the loss at initialisation first** (the checklist from module 00). The weights start
# small, so the model should predict a nearly uniform distribution over $V$ characters, and the
# cross-entropy should be $\ln V$. We measure it for our model and for a copy that does not tie
# the output layer to the token embedding:
#
# **Predict, then run.** Will both models start at $\ln V$? If one does not, will it start above or
# below?


# %%
xv = torch.stack([val_all[i][0] for i in range(64)])  # (64, T): a fixed validation batch
yv = torch.stack([val_all[i][1] for i in range(64)])
untied = GPT(GPTConfig(**{**config.model_dump(), "tie_weights": False}))
with torch.no_grad():
    init_logits = model(xv)
    init_loss = lm_loss(init_logits, yv).item()
    untied_loss = lm_loss(untied(xv), yv).item()
print(f"ln V = ln {V} = {math.log(V):.3f}")
print(f"loss at init: untied {untied_loss:.3f}, tied (our model) {init_loss:.3f}")
torch.testing.assert_close(untied_loss, math.log(V), rtol=0, atol=0.05)


# %% [markdown]
# The untied model lands on $\ln V$. Ours starts *below* it, and a loss that is off from the
# expected value has to be explained before any training. Here is the explanation. The last hidden
# state of a position still contains that position's own token embedding, and with tied weights the
# logit of token $j$ is the hidden state dotted with embedding $j$. For the input token itself that
# is an embedding dotted with (mostly) itself: positive. For every other token it is a random
# number around zero. So the fresh model predicts "the next character repeats this one" a little
# more often than $1/V$, and in Python source, where indentation is runs of spaces, that guess is
# often right. If that is the whole story, those two numbers predict the loss:


# %%
p_repeat = init_logits.softmax(-1).gather(-1, xv[..., None]).mean().item()  # P(next char = this char)
r = (yv == xv).float().mean().item()  # how often the next character really is the same one
predicted = -(r * math.log(p_repeat) + (1 - r) * math.log((1 - p_repeat) / (V - 1)))
print(f"model's P(repeat) {p_repeat:.3f} (uniform: 1/V = {1 / V:.3f}); repeats in the data: {r:.0%}")
print(f"predicted loss {predicted:.3f}, measured {init_loss:.3f}")
torch.testing.assert_close(predicted, init_loss, rtol=0, atol=0.05)


# %% [markdown]
# Now train with the `Trainer` from module 01: AdamW, linear warm-up then cosine decay, and
# gradient clipping. Autocast is on for a GPU only: how fast bf16 runs on a CPU depends on the CPU
# model, and a model this small has little to gain from it there. `HistoryCallback` keeps the
# logged metrics for the plot.
#
# The full run is 800 steps: about two and a half minutes on two CPU cores, seconds on a GPU. On
# a CPU the lesson runs a 250-step version by default (under a minute), and the plot shows the
# full run's curves beside it, read from a small file that the full run wrote once. The cosine
# schedule is stretched over whichever number of steps runs, so the short run also ends at a
# learning rate near 0.


# %%
# The full run takes about 2.5 min on a 2-core CPU and seconds on a GPU. It is on by default on a GPU;
# set MLCRAFT_FULL_RUN=1 (or change this line to True) to run it on a CPU.
FULL_RUN = device.type == "cuda" or os.environ.get("MLCRAFT_FULL_RUN") == "1"
FULL_STEPS, SHORT_STEPS = 800, 250
FULL_RUN_FILE = Path("assets") / "02_gpt_full_run.json"  # relative to the notebook's folder, course/
# Only an explicit MLCRAFT_FULL_RUN=1 rewrites the committed curve; a full run that is on because a GPU
# is there (or because the line above was edited) writes its curve to a temporary file instead.
REFRESH_SAVED_RUN = os.environ.get("MLCRAFT_FULL_RUN") == "1"


def save_loss_curve(history, path, seconds, every=5):
    """Write the run's train loss (every `every`-th step) and its validation evals as JSON.

    The committed assets/02_gpt_full_run.json was made by this function on the full path: 800 steps,
    seed 0, on a 2-core AMD EPYC CPU with one intra-op thread (MLCRAFT_FULL_RUN=1, pytest --nbval-lax),
    on 2026-12-04.
    """
    record = {
        "made_by": "course/02_attention.py, save_loss_curve (MLCRAFT_FULL_RUN=1)",
        "steps": int(history.steps[-1]["step"]),
        "seed": train_config.seed,
        "seconds": round(seconds, 1),
        "train": [[int(s["step"]), round(s["loss"], 4)] for s in history.steps[::every]] + [[int(history.steps[-1]["step"]), round(history.steps[-1]["loss"], 4)]],
        "val": [[int(e["step"]), round(e["val_loss"], 4)] for e in history.evals],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")


def load_loss_curve(path):
    """The saved full run as a dict, or None (with a note) where the file is not there, e.g. on Colab."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        print(f"no saved full run to compare with ({err.__class__.__name__}: {path}); the plot shows this run only")
        return None


# %% [markdown]
# **Predict, then run.** At the end of the run, will the validation loss be above or below the
# training loss? Will it still be falling at the end, or already rising?


# %%
max_steps = FULL_STEPS if FULL_RUN else SHORT_STEPS
train_config = TrainingConfig(
    lr=3e-3, batch_size=32, max_steps=max_steps, warmup_steps=50, grad_clip_norm=1.0,
    amp=device.type == "cuda",  # bf16 autocast on recent GPUs, fp16 with a GradScaler on older ones
    eval_every=100 if FULL_RUN else 50,  # both divide their run, so the last evaluation is at the last step
    log_every=1, progress=False, seed=0,
)
history = HistoryCallback()
trainer = Trainer(model, train_config, train_ds, lm_loss, val_data=val_ds, callbacks=[history])
start = time.perf_counter()
trainer.fit()
train_seconds = time.perf_counter() - start
final_train = sum(s["loss"] for s in history.steps[-20:]) / 20
final_val = history.evals[-1]["val_loss"]
assert history.evals[-1]["step"] == max_steps, "the final validation loss is that of the final weights"
print(f"{'full' if FULL_RUN else 'short'} run: {max_steps} steps in {train_seconds:.0f} s on {trainer.device} ({train_seconds / max_steps * 1e3:.0f} ms/step)")
print(f"final train loss (mean of the last 20 steps) {final_train:.3f}, val loss {final_val:.3f}")
predictions = max_steps * train_config.batch_size * block_size
print(f"{predictions:,} next-character predictions: each training character came round {predictions / len(train_ids):.1f} times")
assert final_val < math.log(V) - 1.0, "training should take the validation loss well below the uniform guess"
if FULL_RUN:
    curve_file = FULL_RUN_FILE if REFRESH_SAVED_RUN else Path(tempfile.gettempdir()) / FULL_RUN_FILE.name
    save_loss_curve(history, curve_file, train_seconds)
    print(f"this run's curve written to {curve_file}" + ("" if REFRESH_SAVED_RUN else f"; {FULL_RUN_FILE} is rewritten only with MLCRAFT_FULL_RUN=1"))
full_run = load_loss_curve(FULL_RUN_FILE)


# %%
fig, ax = plt.subplots(figsize=(8, 4))
if full_run is not None and not FULL_RUN:
    ax.plot(*zip(*full_run["train"], strict=True), lw=0.8, alpha=0.5, color="tab:grey", label=f"full run, train ({full_run['steps']} steps, saved)")
    ax.plot(*zip(*full_run["val"], strict=True), "s--", ms=4, color="tab:grey", label="full run, validation (saved)")
steps = [s["step"] for s in history.steps]
ax.plot(steps, [s["loss"] for s in history.steps], lw=0.8, alpha=0.7, color="tab:blue", label=f"this run, train ({max_steps} steps)")
ax.plot([e["step"] for e in history.evals], [e["val_loss"] for e in history.evals], "o-", color="tab:orange", label="this run, validation")
ax.axhline(math.log(V), color="grey", ls="--", lw=0.8, label=f"ln {V}: uniform guess")
ax.set_xlabel("step")
ax.set_ylabel("cross-entropy (nats per character)")
ax.set_title(f"Small GPT on Python source, {model.num_parameters() / 1e6:.2f} M parameters")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
if full_run is not None and not FULL_RUN:
    gap = final_val - full_run["val"][-1][1]
    print(f"validation loss: this run {final_val:.3f} after {max_steps} steps; full run {full_run['val'][-1][1]:.3f} after {full_run['steps']}: {gap:.2f} nats apart")
    assert gap > 0, "the short run should end above the full one"


# %% [markdown]
# The loss falls fast from $\ln V$ as the model learns character frequencies, then keeps falling as
# it learns spelling, indentation and common keywords. The validation loss is still falling at the
# end of both runs: no sign of overfitting, which is why dropout stays off. Even in the full run
# each character came round only a couple of times, each time at a different place in its window.
# Validation stays above training because it is different text: the last 10% of the corpus, which
# lies in the last module of the list (`typing.py`), with its own style. The short run stops above
# the full one, by the gap printed under the plot; 800 steps is itself a short run, and more steps
# and a larger model bring the loss down further. The sections below use whichever model you
# trained: the short one samples worse text and has blurrier heads, but every check holds for both.
#
# ### 7.1 Perplexity and bits per character
#
# A loss in nats is hard to feel. Two readings of the same number are standard. **Perplexity**,
# $\exp(\text{mean NLL})$, is the number of equally likely choices the model is as unsure as: a
# uniform guess over $V$ characters has perplexity exactly $V$. **Bits per character**,
# $\text{NLL} / \ln 2$, is the size a compressor driven by the model would reach: 8 for plain
# ASCII, less for a model that predicts well. Both are per *token*, so they compare models only on
# the same tokenization: a character model and a word model with the same perplexity are not
# equally good.
#
# **Predict, then run.** Where will a **unigram** model (each character with its training
# frequency, ignoring the context) land: closer to the uniform guess or to the trained GPT?


# %%
model.eval()
ppl_x, ppl_y = (torch.stack(parts) for parts in zip(*(val_all[i] for i in range(8)), strict=True))  # 8 windows: 512 characters
with torch.no_grad():
    ppl_logits = model(ppl_x.to(trainer.device)).double().cpu()  # (8, T, V)
nll = F.cross_entropy(ppl_logits.flatten(0, 1), ppl_y.flatten(), reduction="none")  # (8·T,) nats per character


def nll_loop(logits, targets):
    """-log p(target) one character at a time, in Python floats: log-sum-exp written out."""
    out = []
    for row, target in zip(logits.reshape(-1, logits.shape[-1]).tolist(), targets.flatten().tolist(), strict=True):
        top = max(row)
        out.append(-(row[target] - top - math.log(sum(math.exp(z - top) for z in row))))
    return out


torch.testing.assert_close(nll, torch.tensor(nll_loop(ppl_logits, ppl_y), dtype=torch.float64), rtol=1e-12, atol=1e-12)
print(f"512 characters: mean NLL {nll.mean():.3f} nats, perplexity exp(mean NLL) = {nll.mean().exp():.2f} (loop agrees to 1e-12)")

counts = torch.bincount(train_ids, minlength=V).double() + 1.0  # +1: a character unseen in training still gets a probability
unigram_nll = -(counts / counts.sum()).log()[val_ids].mean().item()
rows = {"uniform over the vocabulary": math.log(V), "unigram (character frequencies)": unigram_nll, f"this GPT ({max_steps} steps)": final_val}
if full_run is not None and not FULL_RUN:
    rows[f"the full run ({full_run['steps']} steps, saved)"] = full_run["val"][-1][1]
print(f"\n{'validation text':38} {'nats/char':>9} {'bits/char':>9} {'perplexity':>10}")
for name, nats in rows.items():
    print(f"{name:38} {nats:9.3f} {nats / math.log(2):9.2f} {math.exp(nats):10.2f}")
assert final_val < unigram_nll < math.log(V), "the GPT must beat the unigram model, which must beat the uniform guess"


# %% [markdown]
# The loop and `F.cross_entropy` agree, so perplexity is nothing more than the exponential of the
# loss we trained on. The uniform guess scores $V$; the unigram model, which knows only that spaces
# and `e` are common, already cuts that several times; the GPT, which reads the context, cuts it
# several times again. At about 3 bits per character (2 for the full run) a model-driven
# compressor would store this code in well under half of its ASCII size.
#
# ### 7.2 What the run cost in FLOPs
#
# The standard estimate of training compute (Kaplan et al., 2020) is $6ND$ floating-point
# operations for $N$ non-embedding parameters and $D$ training tokens: each weight does a
# multiply-add (2 FLOPs) per token in the forward pass, and twice that in the backward pass (one
# product for the gradient of the input, one for the gradient of the weight). A forward pass alone,
# which is what generation runs, costs about $2N$ per token. The rule leaves out the attention
# scores themselves: $QK^\top$ and the weighted sum of values cost $2 \cdot 2 \cdot T \cdot C$ per
# token and layer forward, three times that with the backward pass, so $12 L T C$ per token. It also
# leaves out the output layer, which is tied to the embedding and so not counted in $N$. PyTorch's
# `FlopCounterMode` counts the FLOPs of every matrix product that really runs:
#
# **Predict, then run.** Will the counted FLOPs of one training step be above or below $6ND$, and by
# more or less than 10%?


# %%
N_non_embedding = sum(p.numel() for name, p in model.named_parameters() if name not in ("wte.weight", "wpe.weight"))
tokens_per_step = train_config.batch_size * block_size
rule = 6 * N_non_embedding * tokens_per_step

counting_model = GPT(config)  # the count does not depend on the weights
for blk in counting_model.blocks:
    blk.attn.fused = False  # written-out attention: its two matmuls are visible to the counter on every device
xb, yb = (torch.stack(parts) for parts in zip(*(train_ds[i] for i in range(train_config.batch_size)), strict=True))
with FlopCounterMode(display=False) as counter:
    lm_loss(counting_model(xb), yb).backward()  # one forward and backward pass of a (32, 64) batch
counted = counter.get_total_flops()

matmul_weights = L * 12 * Cm**2  # N without biases and norm gains: elementwise work the counter does not count
attention_term = 12 * L * block_size * Cm * tokens_per_step
output_layer = 6 * V * Cm * tokens_per_step
assert counted == 6 * matmul_weights * tokens_per_step + attention_term + output_layer
print(f"N = {N_non_embedding:,} non-embedding parameters, D = {tokens_per_step:,} tokens per step")
print(f"6ND = {rule / 1e9:.2f} GFLOP per step; FlopCounterMode counts {counted / 1e9:.2f} GFLOP: ratio {counted / rule:.3f}")
print(f"  = 6·(matmul weights)·D {6 * matmul_weights * tokens_per_step / 1e9:.2f} + attention 12·L·T·C·D {attention_term / 1e9:.2f} + output layer 6·V·C·D {output_layer / 1e9:.2f}")
print(f"forward only, per token: 2N = {2 * N_non_embedding / 1e6:.1f} MFLOP")
run_flops = counted * max_steps
print(f"this training run: {max_steps} steps × {counted / 1e9:.1f} GFLOP = {run_flops / 1e12:.1f} TFLOP in {train_seconds:.0f} s: {run_flops / train_seconds / 1e9:.0f} GFLOP/s achieved on {trainer.device}")


# %% [markdown]
# The count lands within 10% of $6ND$, and the identity asserted above says exactly where the
# difference is. With $N \approx 12 L C^2$, the attention term is $12LTC / 6N \approx T / (6C)$ of the
# rule: small while the context is short compared with the width (here $T = 64$, $C = 128$: about
# 8%), dominant at long contexts. The output layer adds about $V / (12 L C)$, under 2% here. With the fused attention of the other
# sections, this version of PyTorch counts nothing for attention on a CPU (its CPU kernel has no
# FLOP formula), hence the written-out attention here. The achieved rate includes the evaluations and
# the optimizer, so it is a lower bound; compare it with the tens of GFLOP/s one CPU core can reach
# in float32 and the roughly $10^{15}$ FLOP/s of a data-centre GPU in bf16. The same rule sizes real
# runs: GPT-3 (175 B parameters, 300 B tokens) took $6 \cdot 1.75 \cdot 10^{11} \cdot 3 \cdot 10^{11}
# \approx 3.1 \cdot 10^{23}$ FLOPs.
#
#
# ## 8. Sampling
#
# The model outputs a distribution over the next character. How we pick from it matters as much as
# the model. At each step, `generate` takes the logits of the last position and
#
# - **greedy** (`temperature=0`): takes the most likely token;
# - **temperature** $\tau$: samples from $\mathrm{softmax}(z / \tau)$: $\tau < 1$ sharpens the
#   distribution, $\tau > 1$ flattens it;
# - **top-k**: samples only among the $k$ most likely tokens;
# - **top-p** (nucleus): samples among the smallest set of most likely tokens whose probabilities
#   add up to $p$, so the set is small when the model is sure and large when it is not.
#
# Here is the model's distribution after a prompt, and what top-k and top-p keep of it:
#
# **Predict, then run.** After `"    def __init__(self, "`, which character do you expect the model to
# rank first? Will top-p = 0.9 keep more tokens than top-k = 5, or fewer?


# %%
prompt = "    def __init__(self, "
prompt_ids = tokenizer.encode(prompt)[None].to(trainer.device)  # (1, T)
model.eval()
with torch.no_grad():
    next_logits = model(prompt_ids)[:, -1, :].float()  # (1, V)
probs = torch.softmax(next_logits, dim=-1)[0]
kept_k = filter_logits(next_logits, top_k=5)[0].isfinite()
kept_p = filter_logits(next_logits, top_p=0.9)[0].isfinite()
print(f"after {prompt!r}:")
for tok in probs.argsort(descending=True)[:10].tolist():
    print(f"  {tokenizer.itos[tok]!r:6} p = {probs[tok]:.3f}   top-k=5 keeps: {kept_k[tok].item()!s:5}  top-p=0.9 keeps: {kept_p[tok].item()}")
print(f"top-k=5 keeps {kept_k.sum().item()} tokens, top-p=0.9 keeps {kept_p.sum().item()}")


# %% [markdown]
# **Predict, then run.** Five ways to continue the same prompt. Which one will fall into a loop,
# and which one will give the least code-like text?


# %%
strategies = {
    "greedy": {"temperature": 0.0},
    "temperature 0.7": {"temperature": 0.7},
    "temperature 1.5": {"temperature": 1.5},
    "top-k 10": {"temperature": 1.0, "top_k": 10},
    "top-p 0.9": {"temperature": 1.0, "top_p": 0.9},
}
for name, kwargs in strategies.items():
    gen = torch.Generator(device=trainer.device).manual_seed(0)
    out = generate(model, prompt_ids, max_new_tokens=120, generator=gen, **kwargs)
    print(f"──── {name} ────")
    print(tokenizer.decode(out[0].cpu()))


# %% [markdown]
# Greedy decoding is deterministic and tends to fall into loops: it repeats whatever is most likely.
# A high temperature samples the tail of the distribution, producing characters the model itself
# considers unlikely. A low temperature, top-k and top-p all cut that tail in different ways, and
# give the most code-like text. None of this changes the model, only how we read its output.
#
# ## 9. The KV cache
#
# Generating token $t+1$ needs the attention of position $t$ over keys and values $1..t$. Without a
# cache, `generate` runs the whole context through the model at every step, recomputing keys and
# values that have not changed: with a context of length $t$, each step costs $O(t)$ projections.
# With a **KV cache**, each layer keeps the keys and values computed so far and the model runs
# only the newest token, appending its key and value. That is the `(k, v)` pair
# `MultiHeadAttention` returns and `GPT.forward_with_cache` threads through the layers.
#
# First, the cache must not change the numbers. Feeding a sequence one token at a time through the
# cache must reproduce the logits of one full forward pass:
#
# **Predict, then run.** After 20 tokens, what shape does each layer's cached key tensor have
# (4 heads of width 32)? Will the step-by-step logits equal the full pass bit for bit, or only to
# rounding?


# %%
seq = prompt_ids[:, :20]
with torch.no_grad():
    full_logits = model(seq)  # (1, 20, V) in one pass
    cache, steps_logits = None, []
    for t in range(seq.shape[1]):
        step_logits, cache = model.forward_with_cache(seq[:, t : t + 1], cache)  # one new token per step
        steps_logits.append(step_logits)
print(f"cache after 20 tokens: {len(cache)} layers × (keys, values), each {tuple(cache[0][0].shape)} = (B, H, T, D)")
torch.testing.assert_close(torch.cat(steps_logits, dim=1), full_logits, rtol=1e-5, atol=1e-5)

cached = generate(model, prompt_ids, 100, temperature=1.0, top_k=10, use_cache=True, generator=torch.Generator(device=trainer.device).manual_seed(7))
uncached = generate(model, prompt_ids, 100, temperature=1.0, top_k=10, use_cache=False, generator=torch.Generator(device=trainer.device).manual_seed(7))
torch.testing.assert_close(cached, uncached, rtol=0, atol=0)
print("step-by-step logits match one full pass; sampled tokens are identical with and without the cache")


# %% [markdown]
# The 100 generated tokens run past `block_size` (64). From there `generate` crops the context to
# the last 64 tokens, and the cache has to be rebuilt each step: with learned *absolute* positions,
# every cached key was computed at a position that has now shifted. The cache pays off within one
# window. To time it over a longer generation, we use a model with the same width and depth and a
# 512-token window. Its weights are random, which does not matter for speed:
#
# **Predict, then run.** Will the cache's speed-up be larger for 64 new tokens or for 256? And how
# many MiB does the cache of one sequence take (keys and values, every layer, every position), for
# this model at 512 tokens in float32 and for GPT-2 small (12 layers, width 768) at 1024 tokens in
# fp16?


# %%
timing_model = GPT(GPTConfig(**{**config.model_dump(), "block_size": 512})).to(trainer.device).eval()
start_ids = prompt_ids[:, :16]


def tokens_per_second(n_new, use_cache):
    t0 = time.perf_counter()
    out = generate(timing_model, start_ids, n_new, temperature=0.0, use_cache=use_cache)
    out.cpu()  # waits for the device to finish
    return n_new / (time.perf_counter() - t0)


for n_new in (64, 256):
    speeds = {True: [], False: []}
    for _ in range(2):  # interleaved repeats; keep the best of each (the least disturbed run)
        for use_cache in (True, False):
            speeds[use_cache].append(tokens_per_second(n_new, use_cache))
    with_cache, without_cache = max(speeds[True]), max(speeds[False])
    print(
        f"{n_new:>3} new tokens on {trainer.device}: {without_cache:6,.0f} tokens/s without the cache, "
        f"{with_cache:6,.0f} with it: speed-up {with_cache / without_cache:.1f}x"
    )

def kv_cache_mib(n_layer, d_model, tokens, bytes_per_number):
    return 2 * n_layer * tokens * d_model * bytes_per_number / 2**20  # keys and values, every layer


print(f"cache for one 512-token sequence of this model (float32): {kv_cache_mib(config.n_layer, config.d_model, 512, 4):.1f} MiB")
print(f"cache for one 1024-token sequence of GPT-2 small (fp16):   {kv_cache_mib(12, 768, 1024, 2):.0f} MiB")


# %% [markdown]
# The speed-up grows with the length of the generation: without the cache, the cost of a step
# grows with the context; with it, each step processes one token. The price is memory:
# $2 \times L \times T \times C$ numbers per sequence (keys and values, every layer, every
# position). That is small here, but it grows with every dimension of the model, and serving many
# long sequences at once is largely a matter of managing that memory. Section 10.2 shows how
# newer models shrink it.
#
# ## 10. Attention at scale
#
# Everything so far materialised the $T \times T$ score matrix, and at $T = 64$ that costs
# nothing. At long contexts, three things break first: the memory of the scores, the memory of the
# KV cache, and the quadratic cost itself. Each has a standard answer.
#
# ### 10.1 Online softmax: attention without the score matrix (FlashAttention)
#
# The softmax of a row needs its maximum (for stability) and its sum before any weight is known,
# which seems to require the whole row. It does not. Go through the keys in blocks and keep, for
# each query, the running maximum $m$, the running sum $\ell = \sum_j e^{s_j - m}$ and the
# unnormalised output $a = \sum_j e^{s_j - m} v_j$. When a block raises the maximum from $m$ to
# $m'$, everything summed so far is rescaled by $e^{m - m'}$:
#
# $$m' = \max(m, \max_{j \in \text{block}} s_j), \quad \ell' = \ell\, e^{m - m'} + \sum_{j \in \text{block}} e^{s_j - m'}, \quad a' = a\, e^{m - m'} + \sum_{j \in \text{block}} e^{s_j - m'} v_j,$$
#
# and at the end the output is $a / \ell$. This recurrence is the core of FlashAttention, whose
# kernels also tile the queries so that each tile fits in a GPU's on-chip memory: the scores never
# go to main memory, and the memory traffic, not the arithmetic, is what it saves.
#
# **Predict, then run.** With keys processed in blocks of 32, will the result equal the full
# softmax to 1e-12 in float64, or only approximate it, like a streaming estimate?


# %%
def online_attention_by_hand(q, k, v, block):
    """Exact attention over blocks of `block` keys; also returns the size of the largest score tensor."""
    m = torch.full((*q.shape[:-1], 1), float("-inf"), dtype=q.dtype)  # running max, (..., T_q, 1)
    l = torch.zeros_like(m)  # noqa: E741 (the running sum, named as in the paper)
    a = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype)  # unnormalised output, (..., T_q, D_v)
    largest = 0
    for start in range(0, k.shape[-2], block):
        s = q @ k[..., start : start + block, :].transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., T_q, block)
        largest = max(largest, s.numel())
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        p = torch.exp(s - m_new)
        correction = torch.exp(m - m_new)  # exp(-inf) = 0 on the first block
        l = l * correction + p.sum(dim=-1, keepdim=True)  # noqa: E741
        a = a * correction + p @ v[..., start : start + block, :]
        m = m_new
    return a / l, largest


T_long = 200  # 32 does not divide 200: the last block has 8 keys
ql, kl, vl = (torch.randn(2, 4, T_long, 16, generator=g, dtype=torch.float64) for _ in range(3))
by_hand, largest = online_attention_by_hand(ql, kl, vl, block=32)
torch.testing.assert_close(by_hand, F.scaled_dot_product_attention(ql, kl, vl), rtol=1e-12, atol=1e-12)
torch.testing.assert_close(
    online_softmax_attention(ql, kl, vl, block_size=32, causal=True),
    F.scaled_dot_product_attention(ql, kl, vl, is_causal=True),
    rtol=1e-12, atol=1e-12,
)
q32, k32, v32 = ql.float(), kl.float(), vl.float()
torch.testing.assert_close(
    online_softmax_attention(q32, k32, v32, block_size=32, causal=True),
    F.scaled_dot_product_attention(q32, k32, v32, is_causal=True),
    rtol=1e-5, atol=1e-5,  # float32: the blocks sum in a different order, so rounding differs
)
print("blocks of 32 = full softmax to 1e-12 (float64, with and without the causal mask), to 1e-5 in float32")
print(f"largest score tensor: {largest:,} numbers, against {ql.shape[0] * ql.shape[1] * T_long * T_long:,} for the full (B, H, T, T) matrix")

print("\nscores of ONE head, float32:        full T×T       one block of 128 queries × 128 keys")
for t_ctx in (2_048, 8_192, 131_072):
    print(f"  T = {t_ctx:>7,}: {t_ctx * t_ctx * 4 / 2**20:>14,.0f} MiB   {128 * 128 * 4 / 2**10:>10.0f} KiB")

t_time = 1024
qt, kt, vt = (torch.randn(1, 4, t_time, 64, generator=g) for _ in range(3))
times = {}
for name, fn in {
    "full matrix (section 1's attention)": lambda: attention(qt, kt, vt, mask=causal_mask(t_time)),
    "online softmax, blocks of 256 (Python loop)": lambda: online_softmax_attention(qt, kt, vt, block_size=256, causal=True),
    "F.scaled_dot_product_attention (fused kernel)": lambda: F.scaled_dot_product_attention(qt, kt, vt, is_causal=True),
}.items():
    fn()  # warm-up: the first call pays for allocations and kernel selection
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    times[name] = min(runs)
print(f"\nT = {t_time}, 4 heads of 64, float32, causal, on the CPU (best of 3 after a warm-up):")
for name, seconds in times.items():
    print(f"  {name:46} {seconds * 1e3:7.1f} ms")


# %% [markdown]
# The blockwise result is exact, not an estimate: the rescaling by $e^{m - m'}$ turns every
# earlier term into what it would have been under the final maximum. The score matrix of one head
# at 128k tokens would take 64 GiB; one 128 × 128 tile takes 64 KiB. On a CPU, our Python loop
# buys no speed: its time is of the same order as the full matrix's, ahead or behind depending on
# the machine and its load (compare the two printed times). The point of FlashAttention is the
# memory, and its speed on a GPU comes from not writing the scores to main memory. PyTorch's fused
# kernel is the fastest of the three by a wide margin: it runs the same blocked recurrence in
# compiled code, on a CPU as well.
#
# ### 10.2 Grouped-query attention and the memory of the KV cache
#
# When a model serves many users, the KV cache (section 9), not the weights, decides how many
# sequences fit on a device. Its size is
# $2 \cdot \text{layers} \cdot \text{kv\_heads} \cdot \text{head\_dim} \cdot \text{seq\_len} \cdot
# \text{batch} \cdot \text{bytes per number}$. **Multi-query attention** (Shazeer, 2019) keeps one
# key/value head for all query heads; **grouped-query attention** (Ainslie et al., 2023) keeps
# `n_kv_heads` of them, each shared by a group of `n_heads / n_kv_heads` query heads, and loses
# almost no quality. LLaMA-2 70B, LLaMA-3 and Mistral use 8 key/value heads. In the computation,
# `repeat_kv` simply repeats each key/value head for its group:
#
# **Predict, then run.** For a LLaMA-7B-like shape (32 layers, 32 query heads of width 128) and one
# sequence of 8k tokens in bf16, how many GiB does the cache take with 32 key/value heads, with 8
# and with 1?


# %%
n_q_heads, n_kv = 8, 2
qg = torch.randn(2, n_q_heads, 10, 16, generator=g, dtype=torch.float64)
kg, vg = (torch.randn(2, n_kv, 10, 16, generator=g, dtype=torch.float64) for _ in range(2))
group = n_q_heads // n_kv
gqa = F.scaled_dot_product_attention(qg, repeat_kv(kg, group), repeat_kv(vg, group), is_causal=True)
per_head = torch.stack(
    [F.scaled_dot_product_attention(qg[:, h], kg[:, h // group], vg[:, h // group], is_causal=True) for h in range(n_q_heads)],
    dim=1,
)  # query head h reads key/value head h // group
torch.testing.assert_close(gqa, per_head, rtol=1e-12, atol=1e-12)
torch.testing.assert_close(gqa, F.scaled_dot_product_attention(qg, kg, vg, is_causal=True, enable_gqa=True), rtol=1e-12, atol=1e-12)
print("repeat_kv + attention == a loop over query heads == F.scaled_dot_product_attention(enable_gqa=True)")

with torch.no_grad():
    _, real_cache = model.forward_with_cache(prompt_ids)  # the trained GPT: 4 heads, 4 key/value heads
allocated = sum(t.nbytes for pair in real_cache for t in pair)
formula = kv_cache_bytes(n_layers=config.n_layer, n_kv_heads=config.n_head, head_dim=config.d_model // config.n_head, seq_len=prompt_ids.shape[1], dtype=real_cache[0][0].dtype)
assert formula == allocated
# A GQA cache: the keys and values that 5 bf16 LLaMA-style blocks (section 6: 4 query heads, 2 key/value
# heads of 16) compute for 3 sequences of 100 tokens, caught on their way out of k_proj and v_proj
# (RoPE then rotates the keys without changing their size).
gqa_stack = nn.Sequential(*(LlamaBlock(llama_block.config) for _ in range(5))).to(torch.bfloat16).eval()
gqa_cache = []
hooks = [
    proj.register_forward_hook(lambda module, inputs, out: gqa_cache.append(out.detach()))
    for blk in gqa_stack for proj in (blk.attn.k_proj, blk.attn.v_proj)
]  # fmt: skip
with torch.no_grad():
    gqa_stack(torch.randn(3, 100, 64, generator=g).to(torch.bfloat16))
for hook in hooks:
    hook.remove()
gqa_bytes = sum(t.nbytes for t in gqa_cache)
assert len(gqa_cache) == 2 * 5 and all(t.dtype == torch.bfloat16 for t in gqa_cache)
assert gqa_bytes == kv_cache_bytes(n_layers=5, n_kv_heads=llama_block.config.n_kv_heads, head_dim=llama_block.config.head_dim, seq_len=100, batch_size=3, dtype=torch.bfloat16)
print(f"kv_cache_bytes = bytes of real caches: our GPT's after {prompt_ids.shape[1]} tokens ({allocated:,} B); "
      f"5 bf16 LLaMA-style blocks, 3 × 100 tokens ({gqa_bytes:,} B, half of what 4 key/value heads would hold)")  # fmt: skip

print("\nLLaMA-7B-like shape: 32 layers, 32 query heads × 128, 8,192 tokens, bf16")
for name, kv_heads in (("multi-head (32 K/V heads)", 32), ("grouped-query (8)", 8), ("multi-query (1)", 1)):
    per_seq = kv_cache_bytes(n_layers=32, n_kv_heads=kv_heads, head_dim=128, seq_len=8192, dtype=torch.bfloat16)
    print(f"  {name:26} {per_seq / 2**30:6.3f} GiB per sequence -> {int(60 * 2**30 // per_seq):4d} sequences in 60 GiB")


# %% [markdown]
# A multi-head cache of 4 GiB per 8k-token sequence means 15 sequences in 60 GiB left over after
# the weights. Eight key/value heads divide that by 4, a single one by 32. The attention
# arithmetic barely changes (every query head still attends over every position); what shrinks is
# the memory read at every decoding step, which is what limits decoding speed.
#
# ### 10.3 Sliding-window attention
#
# Full causal attention costs $O(T^2)$ per layer and needs a cache that grows with $T$. A
# **sliding window** lets each token see only the last $W$ positions (itself included): the cost is
# $O(T W)$ and the cache can be a ring buffer of $W$ entries. Information still travels further:
# layer 2 reads positions that themselves read $W - 1$ positions back, so after $L$ layers the
# last token can draw on $L (W - 1) + 1$ positions. Longformer combines such local windows with a
# few global tokens; Mistral 7B uses $W = 4096$ in all 32 layers.
#
# **Predict, then run.** With $W = 4$, how many positions can the last token of a 32-token sequence
# draw on after 1, 2 and 3 layers?


# %%
T_w, W = 12, 4
window_mask = sliding_window_mask(T_w, W)
by_loop = torch.tensor([[i - W < j <= i for j in range(T_w)] for i in range(T_w)])
assert torch.equal(window_mask, by_loop)

qw, kw, vw = (torch.randn(1, 2, T_w, 8, generator=g, dtype=torch.float64) for _ in range(3))
windowed = F.scaled_dot_product_attention(qw, kw, vw, attn_mask=window_mask)
for i in range(T_w):  # query i on the truncated context, keys max(0, i - W + 1) .. i, with no mask at all
    lo = max(0, i - W + 1)
    alone = F.scaled_dot_product_attention(qw[..., i : i + 1, :], kw[..., lo : i + 1, :], vw[..., lo : i + 1, :])
    torch.testing.assert_close(windowed[..., i : i + 1, :], alone, rtol=1e-12, atol=1e-12)
print("sliding-window attention == attention on the explicitly truncated context, for every query (float64)")

reach = torch.eye(32, dtype=torch.long)
for layers in (1, 2, 3):
    reach = (sliding_window_mask(32, W).long() @ reach).clamp_max(1)  # which inputs reach each position
    print(f"after {layers} layer(s) with W = {W}: the last token draws on {int(reach[-1].sum())} positions (L·(W−1)+1 = {layers * (W - 1) + 1})")
    assert int(reach[-1].sum()) == layers * (W - 1) + 1

with torch.no_grad():  # the LLaMA-style block of section 6 takes the window as its mask
    xw_changed = xl.clone()
    xw_changed[:, 2] += 10.0  # change token 2
    moved = (llama_block(xw_changed, attn_mask=sliding_window_mask(T_l, W)) - llama_block(xl, attn_mask=sliding_window_mask(T_l, W))).abs().amax(dim=(0, 2))
print(f"one LLaMA block with W = {W}: changing token 2 moves positions {(moved > 0).nonzero().flatten().tolist()}")
assert (moved > 0).nonzero().flatten().tolist() == [2, 3, 4, 5], "token 2 is in the window of positions 2 .. 2 + W - 1 only"
print(f"Mistral 7B: W = 4096, 32 layers -> reach {32 * 4095 + 1:,} positions; cache bounded at {kv_cache_bytes(n_layers=32, n_kv_heads=8, head_dim=128, seq_len=4096, dtype=torch.bfloat16) / 2**20:.0f} MiB per sequence")

fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
for ax, (mask, title) in zip(axes, [(causal_mask(T_w), "causal_mask(12)"), (window_mask, f"sliding_window_mask(12, {W})")], strict=True):
    ax.imshow(mask.numpy(), cmap="Blues", vmin=0, vmax=1.3)
    ax.set_xlabel("key position")
    ax.set_ylabel("query position")
    ax.set_title(title, fontsize=10)
    ax.grid(False)
plt.tight_layout()
plt.show()


# %% [markdown]
# The window is a band of width $W$ along the diagonal, and masking it is the same as cutting
# the context: each query sees exactly its last $W$ keys. One layer confines a change to the next
# $W - 1$ positions; stacking layers widens the reach by $W - 1$ each, so Mistral's 32 layers can
# carry information about 131k positions back while each layer, and the cache, stays at 4096.
#
# ## 11. What the trained heads look at
#
# Finally, open the model up. For a snippet of code, recompute one layer's queries and keys by
# hand from its fused `qkv` projection, and get the attention weights from
# `scaled_dot_product_attention(..., return_weights=True)`. Checking the result against the
# layer's own output makes sure these are the weights the model really used.
#
# **Predict, then run.** A head that only ever looks at the previous character would score 1 in the
# "previous character" rows of the table below, and a head that spreads its weight evenly would
# score far less. After this short training run, will any head of layer 0 come close to 1?


# %%
snippet = "    def __init__(self, name):\n        self.name = name\n"
snippet_ids = tokenizer.encode(snippet)[None].to(trainer.device)  # (1, T)


@torch.no_grad()
def attention_weights(model, idx):
    """Per layer: the (H, T, T) causal attention weights for the token ids idx (1, T)."""
    positions = torch.arange(idx.shape[1], device=idx.device)
    x = model.wte(idx) + model.wpe(positions)  # (1, T, C)
    per_layer = []
    for block in model.blocks:
        h = block.ln1(x)
        q, k, v = block.attn.qkv(h).split(model.config.d_model, dim=-1)  # 3 × (1, T, C)
        q, k, v = (split_heads(t, model.config.n_head) for t in (q, k, v))  # 3 × (1, H, T, D)
        out, w = scaled_dot_product_attention(q, k, v, is_causal=True, return_weights=True)  # w: (1, H, T, T)
        torch.testing.assert_close(block.attn.proj(merge_heads(out)), block.attn(h)[0], rtol=1e-4, atol=1e-4)
        per_layer.append(w[0].cpu())
        x = block(x)[0]
    return per_layer


weights = attention_weights(model, snippet_ids)
print(f"{len(weights)} layers, weights {tuple(weights[0].shape)} each = (heads, query, key)")
for w in weights:
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]), rtol=1e-5, atol=1e-5)  # each row is a distribution

newline = snippet.index("\n")  # the end of the first line
indent = slice(newline + 1, newline + 9)  # the 8 spaces that start the second line
scores = {
    "previous character": torch.stack([w.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1) for w in weights]),
    "the character itself": torch.stack([w.diagonal(dim1=-2, dim2=-1).mean(-1) for w in weights]),
    "indentation -> newline": torch.stack([w[:, indent, newline].mean(-1) for w in weights]),
}  # each (layers, heads): mean attention weight on that key
print(f"mean weight on ...          {'  '.join(f'head {h}' for h in range(config.n_head))}")
for name, table in scores.items():
    for layer, row in enumerate(table):
        print(f"{name if layer == 0 else '':24} L{layer}  " + "  ".join(f"{v:6.2f}" for v in row.tolist()))
even = (1 / torch.arange(2, len(snippet) + 1)).mean().item()  # query i spreading evenly gives 1/(i+1) to each key
print(f"a head that spreads its weight evenly scores {even:.2f} on the previous character")


# %% [markdown]
# **Predict, then run.** In every head's map, what will the first row (the first character as the
# query) look like, and what the part above the diagonal?


# %%
def show_heads(layer):
    labels = [{"\n": "⏎", " ": "·"}.get(ch, ch) for ch in snippet]
    _, axes = plt.subplots(2, 2, figsize=(12, 12))
    for head, ax in enumerate(axes.flat):
        ax.imshow(weights[layer][head].numpy(), cmap="magma", vmin=0, vmax=1)
        ax.set_xticks(range(len(labels)), labels=labels, fontsize=7, family="monospace")
        ax.set_yticks(range(len(labels)), labels=labels, fontsize=7, family="monospace")
        ax.set_xlabel("key (attended to)")
        ax.set_ylabel("query (attending)")
        prev, to_newline = scores["previous character"][layer, head], scores["indentation -> newline"][layer, head]
        ax.set_title(f"layer {layer}, head {head}: previous char {prev:.2f}, indentation -> newline {to_newline:.2f}", fontsize=9)
        ax.grid(False)
    plt.tight_layout()
    plt.show()


show_heads(0)


# %% [markdown]
# Each row is one query character, each column a character it may attend to; the upper triangle is
# empty because of the causal mask. Read the maps together with the table. Two patterns to look
# for in the first layer (the short run shows the second clearly and the first faintly, at a few
# times the even-spread score printed under the table):
#
# - A **previous-character head** is a bright line just below the diagonal, with a high "previous
#   character" score. It copies the last character forward, the raw material for anything that
#   depends on local context, such as spelling `self`.
# - An **indentation head** is a vertical bar: the spaces at the start of the second line all look
#   at the newline that began it (a high "indentation -> newline" score). It brings "a new line
#   started here" to every space of the indentation, and knowing where the line began is what
#   the model needs to predict where the indentation ends.
#
# The last layer works on what the earlier layers computed, so its maps are harder to read:


# %%
show_heads(config.n_layer - 1)


# %% [markdown]
# Small models trained for a few hundred steps have blurry heads (the 250-step run blurrier than
# the 800-step one), and which head does what changes with the seed, the device and the Python
# version whose standard library you trained on, so compare your tables rather than these words. Longer training sharpens them, and larger models grow heads with
# more specific jobs, such as copying a name seen earlier in the context (the "induction heads" of
# Olsson et al., 2022).
#
# ## 12. What's next
#
# You have built attention from its formula, checked it against PyTorch and Hugging Face, trained a
# GPT and looked inside it.
#
# **A real corpus.** `mlcraft.data.fetch_text` downloads a text once, caches it, and refuses it
# unless its SHA-256 matches the one you give, so a changed or truncated file cannot slip into an
# experiment. With a network:
#
# ```python
# from mlcraft.data import fetch_text
#
# text = fetch_text(url, sha256=expected_sha256, cache_dir="data")  # ValueError on a mismatch
# ```
#
# Sections 7 to 11 then run on the new text. Change the prompt and the snippet to match its style:
# the character tokenizer only knows characters it has seen.
#
# ## Self-check
#
# 1. Why are attention scores divided by $\sqrt{d}$? What would happen to a wide head without it,
#    at initialisation?
#
#    <details><summary>Answer</summary>With entries of mean 0 and variance 1, <code>q · k</code> is a
#    sum of d terms and has standard deviation √d. Unscaled, the scores of a wide head are far
#    apart, the softmax is nearly one-hot, and its Jacobian <code>diag(w) − wwᵀ</code> is nearly
#    zero, so almost no gradient reaches the queries and keys. Dividing by √d keeps the scores at
#    standard deviation 1 for every width (section 2.5).</details>
#
# 2. A batch with left padding and a causal mask gives a NaN loss, although the padded positions
#    have loss weight 0. Why, and what fixes it?
#
#    <details><summary>Answer</summary>Some queries have no visible key: all their scores are
#    <code>-inf</code> and the softmax computes 0 / 0 = NaN. A zero loss weight does not help, since
#    0 × NaN = NaN, and the gradient of every value vector of that sequence becomes NaN. Give such
#    rows any finite score before the softmax and multiply their weights by zero, as
#    <code>mlcraft.models.scaled_dot_product_attention</code> does; PyTorch's own function returns
#    zeros in recent versions and NaN in older ones, so check yours (section 2.4).</details>
#
# 3. You pass the boolean causal mask you use with `F.scaled_dot_product_attention` to
#    `nn.MultiheadAttention`. What happens?
#
#    <details><summary>Answer</summary>No error, and wrong outputs. <code>nn.MultiheadAttention</code>
#    reads True as "blocked", so each query sees only the keys strictly after it and the last
#    position sees none. Pass <code>~mask</code>, and test every new attention call on a case whose
#    answer you know (section 3.3).</details>
#
# 4. Why does a transformer need positional information at all, and how do learned positions and
#    rotary embeddings differ at a position the model was not built for?
#
#    <details><summary>Answer</summary>Without a mask, attention is permutation-equivariant: shuffle
#    the tokens and the outputs are shuffled the same way, so the order is invisible. A learned
#    table has one trained row per position and none past <code>max_positions</code> (here a
#    <code>ValueError</code>). RoPE learns nothing per position: it rotates queries and keys by the
#    angle p θ_i, a formula defined for every position p, and the rotated score depends only on the
#    distance between query and key (section 4).</details>
#
# 5. Name the four changes a LLaMA-style block makes to GPT-2's, and what each one buys. Why must
#    a causal mask be passed to Hugging Face's eager `LlamaDecoderLayer` explicitly?
#
#    <details><summary>Answer</summary>RMSNorm instead of LayerNorm (no mean subtraction, no bias:
#    one statistic instead of two, same quality in practice); a SwiGLU MLP,
#    <code>down(silu(gate(x)) * up(x))</code>, with width ≈ 8C/3 so that its three matrices hold
#    as many weights as GPT-2's two of width 4C; RoPE on queries and keys inside every layer
#    instead of learned positions at the bottom; grouped-query attention, fewer key/value heads
#    than query heads, which shrinks the KV cache. And no biases. The eager attention adds the mask
#    it is given and adds nothing when given none, so without an additive causal mask the layer
#    attends to the future. (Under <code>"sdpa"</code>, a whole model's default, a missing mask with
#    more than one query is taken as causal, so the same call happens to be right there; section
#    6.)</details>
#
# 6. A freshly initialised GPT with tied weights has a loss below $\ln V$. Is it a bug?
#
#    <details><summary>Answer</summary>Not here, but it had to be explained before training. The last
#    hidden state still contains the input token's embedding, and with tied weights the logit of
#    that same token is the embedding dotted with itself, so the model predicts "the next character
#    repeats this one" a little more often than 1/V. In Python source (runs of spaces) that is
#    often right. The repeat probability and the repeat rate predict the measured loss; an untied
#    copy starts at ln V (section 7).</details>
#
# 7. A character model has a validation loss of 1.5 nats per character. What are its perplexity
#    and its bits per character, and can you compare that perplexity with a word-level model's?
#
#    <details><summary>Answer</summary>Perplexity e^1.5 ≈ 4.5: as unsure as a uniform choice among
#    4.5 characters. Bits per character 1.5 / ln 2 ≈ 2.2. A word-level model's perplexity is per
#    word, a much larger unit, so the numbers do not compare; compare bits per character (or per
#    byte) of the same text instead. A uniform guess scores perplexity V (section 7.1).</details>
#
# 8. Where does 6ND come from, and what does it leave out?
#
#    <details><summary>Answer</summary>Each of the N weights does one multiply-add (2 FLOPs) per
#    token in the forward pass and two in the backward pass (gradients of the input and of the
#    weight): 6 FLOPs per weight per token, for D tokens. It leaves out the attention scores,
#    12·L·T·C per token (QKᵀ and the weighted sum of values, forward and backward), which grow with
#    the context; the embedding layers, whose lookups cost nothing but whose tied output layer costs
#    6·V·C per token; and elementwise work (norms, activations, softmax). FlopCounterMode's count of
#    the small GPT is 6·(matmul weights)·D plus exactly those two terms (section 7.2).</details>
#
# 9. What does top-p sampling do that top-k does not?
#
#    <details><summary>Answer</summary>Top-k always keeps k tokens. Top-p keeps the smallest set of most
#    likely tokens whose probabilities add up to p, so it keeps few tokens when the model is sure
#    and many when it is not. Both cut the unlikely tail that a high temperature samples from
#    (section 8).</details>
#
# 10. What does a KV cache save, what must it not change, and what does it cost for GPT-2 small at
#    1024 tokens in fp16?
#
#    <details><summary>Answer</summary>Each step runs only the newest token instead of the whole
#    context, so the speed-up grows with the length of the generation. It must not change the
#    numbers: step-by-step logits equal a full pass, and sampled tokens are identical. It costs
#    2 × L × T × C numbers per sequence: 2 × 12 × 1024 × 768 × 2 bytes ≈ 36 MiB. With learned
#    absolute positions the cache has to be rebuilt once the context is cropped to the window
#    (section 9).</details>
#
# 11. The softmax of a row needs its maximum and its sum. How can attention then be computed one
#     block of keys at a time, exactly, and what does it save?
#
#     <details><summary>Answer</summary>Keep per query the running maximum m, the running sum
#     ℓ = Σ exp(s − m) and the unnormalised output a = Σ exp(s − m) v. When a block raises the
#     maximum to m', rescale ℓ and a by exp(m − m') before adding the block's terms; at the end
#     the output is a / ℓ, equal to the full softmax to rounding (1e-12 in float64). It never holds
#     the T × T score matrix, only one block of it: at 128k tokens, 64 GiB per head in float32
#     against 64 KiB for a 128 × 128 tile. That is FlashAttention's recurrence (section 10.1).</details>
#
# 12. A LLaMA-7B-like model (32 layers, 32 heads of width 128) serves 8k-token sequences in bf16.
#     How much KV cache does one sequence need with 32, 8 and 1 key/value heads?
#
#     <details><summary>Answer</summary>2 × 32 layers × kv_heads × 128 × 8192 tokens × 2 bytes:
#     4 GiB with 32 (multi-head), 1 GiB with 8 (grouped-query), 128 MiB with 1 (multi-query).
#     Query head h reads key/value head h // (n_heads / n_kv_heads), which
#     <code>repeat_kv</code> or <code>enable_gqa=True</code> arrange (section 10.2).</details>
#
# 13. With a sliding window of W keys (itself included), what does a layer cost, and how far back
#     can the last token draw information after L layers?
#
#     <details><summary>Answer</summary>O(T·W) instead of O(T²) per layer, and a cache of W
#     positions. Each layer widens the reach by W − 1, so after L layers the last token draws on
#     L·(W − 1) + 1 positions: Mistral 7B's W = 4096 and 32 layers reach about 131k (section
#     10.3).</details>
#
# ## Further reading
#
# - A. Vaswani et al. (2017), "Attention is all you need", NeurIPS,
#   https://arxiv.org/abs/1706.03762
# - A. Radford et al. (2019), "Language models are unsupervised multitask learners" (GPT-2),
#   OpenAI, https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf
# - R. Xiong et al. (2020), "On layer normalization in the transformer architecture" (pre-norm
#   blocks), ICML, https://arxiv.org/abs/2002.04745
# - O. Press, L. Wolf (2017), "Using the output embedding to improve language models" (weight
#   tying), EACL, https://arxiv.org/abs/1608.05859
# - J. Su et al. (2021), "RoFormer: enhanced transformer with rotary position embedding",
#   https://arxiv.org/abs/2104.09864
# - A. Fan, M. Lewis, Y. Dauphin (2018), "Hierarchical neural story generation" (top-k sampling),
#   ACL, https://arxiv.org/abs/1805.04833
# - A. Holtzman et al. (2020), "The curious case of neural text degeneration" (top-p sampling),
#   ICLR, https://arxiv.org/abs/1904.09751
# - R. Pope et al. (2022), "Efficiently scaling transformer inference" (KV-cache memory and
#   inference cost), https://arxiv.org/abs/2211.05102
# - C. Olsson et al. (2022), "In-context learning and induction heads", Transformer Circuits
#   Thread, https://transformer-circuits.pub/2022/in-context-learning-and-induction-heads/index.html
# - H. Touvron et al. (2023), "LLaMA: open and efficient foundation language models",
#   https://arxiv.org/abs/2302.13971
# - B. Zhang, R. Sennrich (2019), "Root mean square layer normalization" (RMSNorm), NeurIPS,
#   https://arxiv.org/abs/1910.07467
# - N. Shazeer (2020), "GLU variants improve transformer" (SwiGLU), https://arxiv.org/abs/2002.05202
# - J. Kaplan et al. (2020), "Scaling laws for neural language models" (the 6ND estimate, section
#   2.1), https://arxiv.org/abs/2001.08361
# - T. Dao et al. (2022), "FlashAttention: fast and memory-efficient exact attention with
#   IO-awareness", NeurIPS, https://arxiv.org/abs/2205.14135; T. Dao (2023), "FlashAttention-2:
#   faster attention with better parallelism and work partitioning", https://arxiv.org/abs/2307.08691
# - M. Milakov, N. Gimelshein (2018), "Online normalizer calculation for softmax" (the running max
#   and sum), https://arxiv.org/abs/1805.02867
# - N. Shazeer (2019), "Fast transformer decoding: one write-head is all you need" (multi-query
#   attention), https://arxiv.org/abs/1911.02150
# - J. Ainslie et al. (2023), "GQA: training generalized multi-query transformer models from
#   multi-head checkpoints", EMNLP, https://arxiv.org/abs/2305.13245
# - I. Beltagy, M. Peters, A. Cohan (2020), "Longformer: the long-document transformer" (sliding
#   windows), https://arxiv.org/abs/2004.05150
# - A. Jiang et al. (2023), "Mistral 7B" (sliding-window attention with a rolling cache),
#   https://arxiv.org/abs/2310.06825
# - A. Karpathy, nanoGPT: a small, readable GPT-2 in PyTorch, https://github.com/karpathy/nanoGPT
# - PyTorch: `torch.nn.functional.scaled_dot_product_attention`,
#   https://pytorch.org/docs/stable/generated/torch.nn.functional.scaled_dot_product_attention.html;
#   `torch.nn.MultiheadAttention`,
#   https://pytorch.org/docs/stable/generated/torch.nn.MultiheadAttention.html; `torch.nn.RMSNorm`,
#   https://pytorch.org/docs/stable/generated/torch.nn.RMSNorm.html;
#   `torch.utils.flop_counter.FlopCounterMode` (operators without a FLOP formula count zero),
#   https://docs.pytorch.org/docs/stable/generated/torch.utils.flop_counter.FlopCounterMode.html
# - Hugging Face Transformers: GPT-2, https://huggingface.co/docs/transformers/model_doc/gpt2;
#   LLaMA, https://huggingface.co/docs/transformers/model_doc/llama
#
# ---
#
# - **Previous lesson:** [01_training_loops.ipynb](01_training_loops.ipynb)
# - **Exercise:** [../exercises/02_attention/02_attention.ipynb](../exercises/02_attention/02_attention.ipynb).
#   Check it with `mlcraft check exercises/02_attention/02_attention.ipynb`.
# - **Next lesson:** [03_detection.ipynb](03_detection.ipynb)
