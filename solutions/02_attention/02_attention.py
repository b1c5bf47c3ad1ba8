# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] nbgrader={"grade": false, "grade_id": "intro", "locked": true, "schema_version": 3, "solution": false, "task": false}
# # Module 02 — Attention and transformers from scratch
#
# **You will be able to**
# - write scaled dot-product attention with boolean and additive masks;
# - split and merge heads and assemble multi-head attention from its weights;
# - apply rotary position embeddings (RoPE) at any position;
# - decode one token at a time with a key/value cache.
#
# **Prerequisites**: lessons `00_orientation` to `02_attention`; matrix products and broadcasting in PyTorch.
#
# **Time**: reading 15 min; exercises 90–120 min; the reference solution runs top to bottom in under a minute on a 2-core
# CPU, hidden tests included.
#
# **Further reading**: Vaswani et al., *Attention Is All You Need*, 2017; Su et al., *RoFormer: Enhanced Transformer with Rotary Position Embedding*, 2021; PyTorch `scaled_dot_product_attention` and `nn.MultiheadAttention` docs.
#
# Every large language model, most vision models and many tabular models are built from one
# operation, **scaled dot-product attention** (Vaswani et al., 2017, "Attention Is All You
# Need"). Libraries ship fast fused kernels for it, and you will use them in practice. You
# still need to know exactly what they compute: their mask conventions differ, a reshape in
# the wrong order trains without an error but learns nothing useful, and an inference server
# that caches keys and values must give the same answer as the model it serves.
#
# You will write the pieces of a transformer's attention layer and check each one against
# PyTorch's own implementation:
#
# | Task | Function | Points |
# |------|----------|--------|
# | 1 | `scaled_dot_product_attention(q, k, v, mask=None)` | 3 |
# | 2 | `causal_mask(T, device=None)` | 2 |
# | 3 | `split_heads(x, n_heads)` and `merge_heads(x)` | 2 |
# | 4 | `multi_head_self_attention(x, w_qkv, b_qkv, w_out, b_out, n_heads, causal=False)` | 3 |
# | 5 | `apply_rope(x, positions, base=10000.0)` | 3 |
# | 6 | `decode_step(x_t, cache_k, cache_v, w_q, w_k, w_v, n_heads)` | 3 |
#
# **Shapes.** The letters used throughout: `B` batch size, `T` sequence length (tokens), `C`
# model width (channels per token), `H` number of heads, `D = C // H` width of one head. A
# sequence of token vectors is `(B, T, C)`; the same sequence split into heads is
# `(B, H, T, D)`. When queries and keys have different lengths, `T_q` is the number of
# queries and `T_k` the number of keys.
#
# **How this notebook works.** Replace each `raise NotImplementedError()` with your code, then
# run the test cell below it. The visible tests are a first check only: when the notebook is
# graded, each test cell also runs hidden tests. These check the edge cases named in the task
# statement, so read each statement to the end. Later tasks call the functions of earlier ones
# (that is the point: you build the layer from your own parts), so fix a failing task before
# moving on. Run the notebook from top to bottom before you submit, and do not change or
# delete the test cells.
#
# **How grading works.** When your notebook is graded, your cells run in a sandbox and the
# test cells run in the grader, apart from your code: the tests call your functions with data
# (tensors, numbers, masks...) and compare what comes back with PyTorch's own attention,
# `nn.MultiheadAttention` and reference implementations computed in the grader. Every function
# of this module takes tensors and returns tensors, so almost every check is a plain call. The
# one exception: Tasks 1, 4, 5 and 6 promise that your function does **not modify its inputs**,
# and the hidden tests that check it are marked `@in_kernel`: they run beside your code, call
# your function there and report the inputs as your code left them (shape, dtype and values),
# which the grader compares with the originals. So return exactly what each task asks for;
# nothing else in your notebook can change a test's verdict.
#
# The tests put their tensors on `DEVICE`, the best device present (CUDA, then Apple MPS, then
# CPU), so your code must work on whatever device its input is on. The checks that need
# `float64` run on `DEVICE64`, which is `DEVICE` except on Apple MPS (no `float64` there),
# where it is the CPU. A few hidden tests also call your functions with tensors on PyTorch's
# `meta` device, which have a shape and a dtype but no values: they check that every result is
# on its inputs' device, which a grader without a GPU could not otherwise tell. So create each
# new tensor on the device of your inputs (`device=x.device`, `torch.zeros_like(...)`), and do
# not turn tensor values into Python values (`.item()`, `.tolist()`, `if t.any():`).
#
# Previous: lesson [`02_attention`](../../course/02_attention.ipynb) · Next: lesson
# [`03_detection`](../../course/03_detection.ipynb).


# %%
# Set-up: on Colab, install the course package; everywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "mlcraft[course] @ git+https://github.com/mlcraft/mlcraft"], check=True
    )


# %% nbgrader={"grade": false, "grade_id": "imports", "locked": true, "schema_version": 3, "solution": false, "task": false}
import math

import torch
import torch.nn.functional as F  # noqa: N812 (the conventional alias)
from torch import nn

from mlcraft.classroom.testing import DEVICE, assert_close, call_without, grading_seed, in_kernel

# Apple MPS has no float64: the float64 checks run on the CPU there.
DEVICE64 = torch.device("cpu") if DEVICE.type == "mps" else DEVICE

print(f"torch {torch.__version__}; tests run on DEVICE = {DEVICE}, float64 checks on DEVICE64 = {DEVICE64}")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-sdpa", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 1 — Scaled dot-product attention (3 points)
#
# Each query asks "which keys are relevant to me?". Its score for key $j$ is the dot product
# $q \cdot k_j$; a softmax over the keys turns the scores into weights that sum to 1, and the
# output is the weighted average of the values:
#
# $$\operatorname{Attention}(Q, K, V) = \operatorname{softmax}\!\left(\frac{Q K^\top}{\sqrt{D}} + M\right) V$$
#
# The softmax runs over the **keys** (the last axis of the `(T_q, T_k)` score matrix): each
# query's weights sum to 1. The division by $\sqrt{D}$ keeps the scores' spread independent of
# the head width: the dot product of two random vectors with unit-variance entries has variance
# $D$, and without the scale a wide head would put almost all its weight on a single key.
#
# Write `scaled_dot_product_attention(q, k, v, mask=None) -> torch.Tensor`:
#
# - `q` is `(..., T_q, D)`, `k` is `(..., T_k, D)`, `v` is `(..., T_k, D_v)`, with the same
#   leading dimensions (usually `(B, H)`, but there may be none, one or more), the same dtype
#   and the same device. The result is `(..., T_q, D_v)`, with `q`'s dtype and device. There is
#   at least one key (`T_k >= 1`); the leading dimensions and `T_q` may be 1 or 0 (an empty
#   result).
# - `mask` is `None` or a tensor that broadcasts to `(..., T_q, T_k)`, for example `(T_q, T_k)`,
#   `(B, 1, T_q, T_k)` or `(B, 1, 1, T_k)`. The same two conventions as
#   `torch.nn.functional.scaled_dot_product_attention`:
#   - a **boolean** mask is `True` where the query **may attend** to the key, `False` where it
#     may not: blocked keys get weight exactly 0;
#   - a **float** mask (with `q`'s dtype) is **added** to the scaled scores before the softmax:
#     `0` keeps a score as it is, `-inf` blocks the key, other values shift the score.
# - A query that may attend to **no** key at all (its row of the boolean mask is all `False`, or
#   its row of the float mask is all `-inf`) gets an output of **zeros**, never `NaN`.
#   (`softmax` of a row of only `-inf` is `0 / 0 = NaN`; handle that row separately.)
# - It stays finite and accurate for large scores: adding 1000 to every score (a float mask
#   full of `1000.0`) must not change the result, although `exp(1000)` overflows even `float64`.
# - It does not modify its inputs.
#
# You may use `torch.softmax` (or `torch.nn.functional.softmax`). Do not call
# `torch.nn.functional.scaled_dot_product_attention` or any other attention function of
# PyTorch, in any spelling: the hidden tests check this.


# %% nbgrader={"grade": false, "grade_id": "sdpa-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``softmax(q kᵀ / sqrt(D) + mask) v`` over the last two dimensions; rows with no visible key are zeros.

    ``mask``: boolean (True = may attend) or float (added to the scores), broadcastable to ``(..., T_q, T_k)``.
    """
    ### BEGIN SOLUTION
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # (..., T_q, T_k)
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask.to(scores.dtype)
    # A row with no visible key is all -inf, and its softmax is 0/0 = NaN: give it zero weights.
    has_key = (scores != float("-inf")).any(dim=-1, keepdim=True)  # (..., T_q, 1)
    weights = torch.softmax(scores.masked_fill(~has_key, 0.0), dim=-1) * has_key
    return weights @ v  # (..., T_q, D_v)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-sdpa", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
_g = torch.Generator().manual_seed(0)
B, H, T, D = 2, 3, 5, 8
q, k, v = (torch.randn(B, H, T, D, generator=_g, dtype=torch.float64).to(DEVICE64) for _ in range(3))

out = scaled_dot_product_attention(q, k, v)
assert isinstance(out, torch.Tensor), f"scaled_dot_product_attention should return a tensor, got {type(out).__name__}"
assert out.shape == (B, H, T, D), (
    f"q, k, v of shape {(B, H, T, D)} should give shape {(B, H, T, D)}, got {tuple(out.shape)}"
)
expected = F.scaled_dot_product_attention(q, k, v)  # PyTorch's own attention, the reference
assert_close(out, expected, rtol=1e-10, atol=1e-10, check_device=True, msg="no mask (float64)")

# Boolean mask: True = may attend. Every query keeps key 0 here, so no row is fully blocked.
keep = torch.rand(T, T, generator=_g) < 0.6
keep[:, 0] = True
keep = keep.to(DEVICE64)
assert_close(
    scaled_dot_product_attention(q, k, v, keep),
    F.scaled_dot_product_attention(q, k, v, attn_mask=keep),
    rtol=1e-10,
    atol=1e-10,
    check_device=True,
    msg="boolean mask (True = may attend)",
)

# Float mask: added to the scaled scores; -inf blocks a key.
bias = torch.randn(T, T, generator=_g, dtype=torch.float64).to(DEVICE64).masked_fill(~keep, float("-inf"))
assert_close(
    scaled_dot_product_attention(q, k, v, bias),
    F.scaled_dot_product_attention(q, k, v, attn_mask=bias),
    rtol=1e-10,
    atol=1e-10,
    check_device=True,
    msg="additive float mask",
)

# Adding 1000 to every score changes nothing, although exp(1000) overflows float64.
plus_1000 = torch.full((T, T), 1000.0, dtype=torch.float64, device=DEVICE64)
shifted = scaled_dot_product_attention(q, k, v, plus_1000)
assert torch.isfinite(shifted).all(), "a float mask of +1000 everywhere gave inf or NaN: subtract the row maximum"
assert_close(shifted, expected, rtol=1e-9, atol=1e-9, msg="adding 1000 to every score should not change the output")
### BEGIN HIDDEN TESTS
_forbidden_attention = (
    "torch.nn.functional.scaled_dot_product_attention",
    "torch._C._nn.scaled_dot_product_attention",
    "torch.nn.functional.multi_head_attention_forward",
)


def _unmodified(after, before):
    """An input as the learner's code left it equals its copy from before the call (shape, dtype, device, values).

    Shape and dtype too: an in-place ``unsqueeze_`` or a ``.data`` swap modifies an input as well.
    """
    return before is None or (
        isinstance(after, torch.Tensor)
        and (after.shape, after.dtype, after.device) == (before.shape, before.dtype, before.device)
        and torch.equal(after, before)
    )


@in_kernel
def _sdpa_run(q_, k_, v_, mask_):
    """Your scaled_dot_product_attention(q_, k_, v_, mask_), and its inputs as your code left them."""
    return scaled_dot_product_attention(q_, k_, v_, mask_), [q_, k_, v_, mask_]


def _sdpa(q_, k_, v_, mask_=None):
    """The learner's attention, without PyTorch's attention functions, with its inputs left unchanged."""
    before = [None if t is None else t.clone() for t in (q_, k_, v_, mask_)]
    result, after = call_without(_sdpa_run, q_, k_, v_, mask_, forbidden=_forbidden_attention)
    for _name, _b, _a in zip(("q", "k", "v", "mask"), before, after, strict=True):
        assert _unmodified(_a, _b), f"scaled_dot_product_attention must not modify its inputs ({_name} was changed)"
    assert isinstance(result, torch.Tensor), "scaled_dot_product_attention should return a tensor"
    return result


def _check_sdpa(q_, k_, v_, mask_, what, rtol=1e-10, atol=1e-10):
    got = _sdpa(q_, k_, v_, mask_)
    want = F.scaled_dot_product_attention(q_, k_, v_, attn_mask=mask_)
    assert got.shape == want.shape, f"{what}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}"
    assert got.dtype == q_.dtype, f"{what}: the output should have q's dtype {q_.dtype}, got {got.dtype}"
    assert_close(got, want, rtol=rtol, atol=atol, check_device=True, msg=what)
    return got


_check_sdpa(q, k, v, None, "no mask")
_check_sdpa(q, k, v, keep, "boolean mask")
_check_sdpa(q, k, v, bias, "float mask")
_check_sdpa(q, k, v, torch.randn(T, T, generator=_g, dtype=torch.float64).to(DEVICE64), "finite float mask")
_check_sdpa(q * 300, k, v, None, "very large scores (q * 300)", rtol=1e-9, atol=1e-9)

# A query that may attend to no key gets zeros, never NaN; the other queries are unaffected.
_keep_row = keep.clone()
_keep_row[2] = False
_res = _sdpa(q, k, v, _keep_row)
assert not torch.isnan(_res).any(), "a query whose boolean mask row is all False should get zeros, not NaN"
assert (_res[..., 2, :] == 0).all(), "a query whose boolean mask row is all False should get an output of zeros"
_rows = [0, 1, 3, 4]
assert_close(
    _res[..., _rows, :],
    F.scaled_dot_product_attention(q, k, v, attn_mask=keep)[..., _rows, :],
    rtol=1e-10,
    atol=1e-10,
    msg="the other queries, next to a fully masked one",
)
_bias_row = bias.clone()
_bias_row[4] = float("-inf")
_res = _sdpa(q, k, v, _bias_row)
assert not torch.isnan(_res).any(), "a query whose float mask row is all -inf should get zeros, not NaN"
assert (_res[..., 4, :] == 0).all(), "a query whose float mask row is all -inf should get an output of zeros"
assert_close(
    _res[..., :4, :],
    F.scaled_dot_product_attention(q, k, v, attn_mask=bias)[..., :4, :],
    rtol=1e-10,
    atol=1e-10,
    msg="the other queries, next to a float-masked one",
)
_res = _sdpa(q, k, v, torch.zeros(T, T, dtype=torch.bool, device=DEVICE64))
assert not torch.isnan(_res).any() and (_res == 0).all(), "with every key blocked, every output should be zeros"

# Masks that broadcast: per batch element (B, 1, T, T) and key padding (B, 1, 1, T).
_per_batch = torch.rand(B, 1, T, T, generator=_g).to(DEVICE64) < 0.7
_per_batch[..., 1] = True
_check_sdpa(q, k, v, _per_batch, "boolean mask of shape (B, 1, T, T)")
_padding = torch.ones(B, 1, 1, T, dtype=torch.bool, device=DEVICE64)
_padding[0, ..., 3:] = False
_check_sdpa(q, k, v, _padding, "key padding mask of shape (B, 1, 1, T)")
_check_sdpa(q, k, v, torch.where(_padding, 0.0, float("-inf")).double(), "float key padding mask (B, 1, 1, T)")

# Different numbers of queries and keys, and values of another width.
_q3 = torch.randn(B, H, 3, D, generator=_g, dtype=torch.float64).to(DEVICE64)
_k7 = torch.randn(B, H, 7, D, generator=_g, dtype=torch.float64).to(DEVICE64)
_v7 = torch.randn(B, H, 7, 5, generator=_g, dtype=torch.float64).to(DEVICE64)
_check_sdpa(_q3, _k7, _v7, None, "T_q=3, T_k=7, D_v=5")
_keep37 = torch.rand(3, 7, generator=_g).to(DEVICE64) < 0.5
_keep37[:, -1] = True
_check_sdpa(_q3, _k7, _v7, _keep37, "T_q=3, T_k=7 with a (3, 7) boolean mask")

# No head dimension: (B, T, D); a single query and key.
_check_sdpa(q[:, 0], k[:, 0], v[:, 0], keep, "3-D inputs (B, T, D)")
_check_sdpa(q[..., :1, :], k[..., :1, :], v[..., :1, :], None, "one query, one key")

# float32 on DEVICE with large scores, against a float64 reference.
_q32, _k32, _v32 = (torch.randn(B, H, 6, 16, generator=_g) for _ in range(3))
_q32 = _q32 * 30
_want32 = F.scaled_dot_product_attention(_q32.double(), _k32.double(), _v32.double()).float().to(DEVICE)
_got32 = _sdpa(_q32.to(DEVICE), _k32.to(DEVICE), _v32.to(DEVICE))
assert _got32.dtype == torch.float32, f"float32 inputs should give a float32 output, got {_got32.dtype}"
assert_close(_got32, _want32, rtol=1e-4, atol=1e-5, check_device=True, msg="float32 with large scores (q * 30)")
_causal32 = torch.ones(6, 6, dtype=torch.bool).tril().to(DEVICE)
_want32 = F.scaled_dot_product_attention(_q32.double(), _k32.double(), _v32.double(), is_causal=True).float().to(DEVICE)
assert_close(
    _sdpa(_q32.to(DEVICE), _k32.to(DEVICE), _v32.to(DEVICE), _causal32),
    _want32,
    rtol=1e-4,
    atol=1e-5,
    check_device=True,
    msg="float32 with a causal boolean mask",
)

# No leading dimension at all, three leading dimensions, and a head width of 1.
_check_sdpa(q[0, 0], k[0, 0], v[0, 0], keep, "2-D inputs (T, D), boolean mask (T, T)")
_q5, _k5, _v5 = (torch.randn(2, 2, 3, 4, 6, generator=_g, dtype=torch.float64).to(DEVICE64) for _ in range(3))
_keep5 = torch.rand(2, 1, 1, 4, 4, generator=_g).to(DEVICE64) < 0.7
_keep5[..., 0] = True
_check_sdpa(_q5, _k5, _v5, None, "five dimensions (2, 2, 3, 4, 6)")
_check_sdpa(_q5, _k5, _v5, _keep5, "five dimensions with a (2, 1, 1, 4, 4) boolean mask")
_check_sdpa(q[..., :1], k[..., :1], v, None, "D = 1 (q and k of shape (B, H, T, 1))")

# Empty dimensions: no batch element, no query.
for _what, (_qs, _ks, _vs) in {
    "B = 0": ((0, 3, 5, 8), (0, 3, 4, 8), (0, 3, 4, 2)),
    "T_q = 0": ((2, 3, 0, 8), (2, 3, 4, 8), (2, 3, 4, 2)),
}.items():
    _qe, _ke, _ve = (torch.randn(_s, generator=_g, dtype=torch.float64).to(DEVICE64) for _s in (_qs, _ks, _vs))
    for _me in (None, torch.ones(_qs[-2], _ks[-2], dtype=torch.bool, device=DEVICE64)):
        _oe = _sdpa(_qe, _ke, _ve, _me)
        _want_shape = (*_qs[:-1], _vs[-1])
        _mask_what = "no mask" if _me is None else "a boolean mask"
        assert _oe.shape == _want_shape and _oe.dtype == torch.float64, (
            f"{_what} ({_mask_what}): q {_qs}, k {_ks}, v {_vs} should give an empty float64 output of shape "
            f"{_want_shape}, got {tuple(_oe.shape)} {_oe.dtype}"
        )

# bfloat16 inputs with a causal mask: the output stays bfloat16, close to the float64 answer.
_qb, _kb, _vb = (torch.randn(2, 3, 6, 16, generator=_g).bfloat16() for _ in range(3))
_want_b = F.scaled_dot_product_attention(_qb.double(), _kb.double(), _vb.double(), is_causal=True)
_got_b = _sdpa(_qb.to(DEVICE), _kb.to(DEVICE), _vb.to(DEVICE), _causal32)
assert _got_b.dtype == torch.bfloat16, (
    f"bfloat16 inputs (2, 3, 6, 16) should give a bfloat16 output, got {_got_b.dtype}"
)
assert_close(
    _got_b.double(), _want_b.to(DEVICE), rtol=5e-2, atol=5e-2, check_device=True, msg="bfloat16 (2, 3, 6, 16), causal"
)

# The device: with inputs on the meta device (no values), the output must be there too.
_qm = torch.empty(2, 3, 5, 8, dtype=torch.float64, device="meta")
_km = torch.empty(2, 3, 7, 8, dtype=torch.float64, device="meta")
_vm = torch.empty(2, 3, 7, 4, dtype=torch.float64, device="meta")
for _what, _mm in {
    "no mask": None,
    "boolean mask (5, 7)": torch.empty(5, 7, dtype=torch.bool, device="meta"),
    "float mask (2, 1, 1, 7)": torch.empty(2, 1, 1, 7, dtype=torch.float64, device="meta"),
}.items():
    _om = scaled_dot_product_attention(_qm, _km, _vm, _mm)
    assert isinstance(_om, torch.Tensor) and _om.device.type == "meta", (
        f"meta inputs q (2, 3, 5, 8), k (2, 3, 7, 8), v (2, 3, 7, 4), {_what}: the output should be on meta"
    )
    assert _om.shape == (2, 3, 5, 4) and _om.dtype == torch.float64, (
        f"meta inputs, {_what}: expected a float64 (2, 3, 5, 4) output, got {_om.dtype} {tuple(_om.shape)}"
    )
### END HIDDEN TESTS
print("scaled_dot_product_attention: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-causal-mask", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 2 — The causal mask (2 points)
#
# A language model is trained to predict token $t+1$ from tokens $0, \dots, t$. During training
# the whole sequence goes through the model at once, so attention must be stopped from
# looking ahead: query $i$ may attend to key $j$ only if $j \le i$. If it could see token
# $i+1$, predicting it would be copying, the training loss would be excellent, and the model
# would be useless at generation time, when the future does not exist yet.
#
# Write `causal_mask(T: int, device=None) -> torch.Tensor`: a **boolean** `(T, T)` tensor that
# is `True` where query $i$ may attend to key $j$, that is **on and below the diagonal**
# ($j \le i$), and `False` above it. For `T = 3`:
#
# ```
# [[ True, False, False],
#  [ True,  True, False],
#  [ True,  True,  True]]
# ```
#
# - It follows Task 1's convention (True = may attend), so
#   `scaled_dot_product_attention(q, k, v, causal_mask(T))` is causal attention. Careful:
#   `torch.nn.MultiheadAttention`'s `attn_mask` uses the **opposite** convention (True = blocked).
# - The mask is on `device` (a `torch.device` or a string such as `"cpu"` or `"meta"`; `None`
#   means the default device, the CPU).
# - `T = 1` gives `[[True]]`: a single token sees itself. `T = 0` gives an empty `(0, 0)` mask.
#
# The hidden tests also run a **future-leak probe**: they change token $t+1$ (its query, key and
# value) and check that the output at positions $0, \dots, t$ does not change, once with your
# mask in your Task 1 attention and once with your mask in PyTorch's. Any route by which a token
# learns about later tokens fails it.


# %% nbgrader={"grade": false, "grade_id": "causal-mask-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def causal_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean ``(T, T)``: True where query i may attend to key j, i.e. ``j <= i``."""
    ### BEGIN SOLUTION
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-causal-mask", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
m3 = causal_mask(3)
assert isinstance(m3, torch.Tensor), f"causal_mask should return a tensor, got {type(m3).__name__}"
assert m3.dtype == torch.bool, f"causal_mask should return a boolean tensor, got {m3.dtype}"
assert m3.shape == (3, 3), f"causal_mask(3) should have shape (3, 3), got {tuple(m3.shape)}"
expected3 = torch.tensor([[True, False, False], [True, True, False], [True, True, True]])
assert torch.equal(m3.cpu(), expected3), (
    f"causal_mask(3) should be True on and below the diagonal (query i sees keys j <= i), got\n{m3}"
)
assert not causal_mask(4)[0, 1], "query 0 must not see key 1: the next token is the future"
assert causal_mask(4, device=DEVICE).device.type == DEVICE.type, "causal_mask(T, device) should be on that device"
### BEGIN HIDDEN TESTS
for _t in (1, 2, 5, 9):
    _m = causal_mask(_t)
    assert _m.dtype == torch.bool and _m.shape == (_t, _t), (
        f"causal_mask({_t}) should be a boolean ({_t}, {_t}) tensor, got {_m.dtype} {tuple(_m.shape)}"
    )
    _expected = torch.tensor([[j <= i for j in range(_t)] for i in range(_t)], dtype=torch.bool)
    assert torch.equal(_m.cpu(), _expected), f"causal_mask({_t}) should be True exactly where j <= i, got\n{_m}"
assert torch.equal(causal_mask(1).cpu(), torch.tensor([[True]])), "causal_mask(1) should be [[True]]"
_m = causal_mask(6, device=DEVICE)
assert _m.device.type == DEVICE.type, f"causal_mask(6, device=DEVICE) should be on {DEVICE}, got {_m.device}"
assert causal_mask(6, DEVICE.type).device.type == DEVICE.type, "causal_mask should accept the device as a string"
assert causal_mask(6).device.type == "cpu", "causal_mask(T) without a device should be on the CPU"

# With PyTorch's attention: the same as is_causal=True.
_g = torch.Generator().manual_seed(grading_seed("test-causal-mask", 2))
_T = 7
_q, _k, _v = (torch.randn(2, 2, _T, 4, generator=_g, dtype=torch.float64).to(DEVICE64) for _ in range(3))
assert_close(
    F.scaled_dot_product_attention(_q, _k, _v, attn_mask=causal_mask(_T, device=DEVICE64)),
    F.scaled_dot_product_attention(_q, _k, _v, is_causal=True),
    rtol=1e-10,
    atol=1e-10,
    msg="causal_mask(T) as attn_mask should equal is_causal=True",
)


# The future-leak probe: change token t + 1 onwards; outputs 0..t must stay the same, output t + 1 must change.
def _probe(attention, name):
    mask = causal_mask(_T, device=DEVICE64)
    base_out = attention(_q, _k, _v, mask)
    for _t in range(_T - 1):
        q2, k2, v2 = _q.clone(), _k.clone(), _v.clone()
        for _x in (q2, k2, v2):
            _x[..., _t + 1 :, :] = torch.randn(_x[..., _t + 1 :, :].shape, generator=_g, dtype=torch.float64).to(
                DEVICE64
            )
        changed = attention(q2, k2, v2, mask)
        assert not torch.isnan(changed).any(), f"{name}: causal attention returned NaN"
        assert_close(
            changed[..., : _t + 1, :],
            base_out[..., : _t + 1, :],
            rtol=1e-10,
            atol=1e-10,
            msg=f"{name}: the output at positions 0..{_t} changed when token {_t + 1} changed (a future leak)",
        )
        assert (changed[..., _t + 1, :] - base_out[..., _t + 1, :]).abs().max() > 1e-6, (
            f"{name}: token {_t + 1} should see itself, but changing it did not change its output"
        )


_probe(lambda a, b, c, m: F.scaled_dot_product_attention(a, b, c, attn_mask=m), "your mask in PyTorch's attention")
_probe(scaled_dot_product_attention, "your mask in your scaled_dot_product_attention")

# The device argument on a device that is not the default one (meta: no values), given three ways.
for _what, _m in {
    "causal_mask(5, 'meta')": causal_mask(5, "meta"),
    "causal_mask(5, device='meta')": causal_mask(5, device="meta"),
    "causal_mask(5, device=torch.device('meta'))": causal_mask(5, device=torch.device("meta")),
}.items():
    assert isinstance(_m, torch.Tensor) and _m.device.type == "meta", f"{_what} should be on the meta device"
    assert _m.dtype == torch.bool and _m.shape == (5, 5), (
        f"{_what} should be a boolean (5, 5) tensor, got {_m.dtype} {tuple(_m.shape)}"
    )

# T = 0: an empty mask.
_m = causal_mask(0)
assert _m.dtype == torch.bool and _m.shape == (0, 0), (
    f"causal_mask(0) should be an empty boolean (0, 0) tensor, got {_m.dtype} {tuple(_m.shape)}"
)
### END HIDDEN TESTS
print("causal_mask: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-heads", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 3 — Split into heads and merge back (2 points)
#
# Multi-head attention runs `H` attentions side by side, each on its own `D = C // H` channels.
# The token vectors `(B, T, C)` are cut into heads, each head attends on its own, and the results
# are glued back into `(B, T, C)`. The convention of `torch.nn.MultiheadAttention` (and of
# GPT-2, LLaMA and most checkpoints you will load) is that **head `h` owns channels
# `h*D : (h+1)*D`** of every token:
#
# $$\text{heads}[b, h, t, d] = x[b, t, h \cdot D + d].$$
#
# Write
#
# - `split_heads(x, n_heads) -> torch.Tensor`: `(B, T, C)` to `(B, H, T, D)` with the layout
#   above. Raise `ValueError` if `C` is not divisible by `n_heads`.
# - `merge_heads(x) -> torch.Tensor`: `(B, H, T, D)` to `(B, T, H*D)`, the exact inverse:
#   `merge_heads(split_heads(x, H))` equals `x`, and channel `h*D + d` of token `t` comes from
#   `x[b, h, t, d]`.
#
# Both keep the dtype and device, and must work on any input, including tensors that are not
# contiguous in memory (such as the output of `transpose`) and tensors with an empty batch or
# time dimension (`B = 0` or `T = 0`). Watch out: `x.view(B, H, T, D)`
# (or `reshape`) has the right **shape** but the wrong **layout**: it cuts the flat memory
# `t0c0, t0c1, ..., t1c0, ...` into blocks of `T*D` values, so a "head" would hold pieces of
# several tokens. The tests compare the values, not only the shapes.


# %% nbgrader={"grade": false, "grade_id": "split-heads-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``(B, T, C) -> (B, H, T, D)``; head h owns channels ``h*D:(h+1)*D``."""
    ### BEGIN SOLUTION
    b, t, c = x.shape
    if c % n_heads:
        raise ValueError(f"the width {c} is not divisible by {n_heads} heads")
    return x.reshape(b, t, n_heads, c // n_heads).transpose(1, 2)  # (B, H, T, D)
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "merge-heads-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, T, D) -> (B, T, H*D)``, the inverse of ``split_heads``."""
    ### BEGIN SOLUTION
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)  # (B, T, H*D)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-split-merge-heads", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
_g = torch.Generator().manual_seed(3)
x = torch.randn(2, 5, 12, generator=_g).to(DEVICE)

heads = split_heads(x, 3)
assert isinstance(heads, torch.Tensor), f"split_heads should return a tensor, got {type(heads).__name__}"
assert heads.shape == (2, 3, 5, 4), (
    f"split_heads of (2, 5, 12) with 3 heads should be (2, 3, 5, 4), got {tuple(heads.shape)}"
)
# Head h holds channels h*D:(h+1)*D of every token.
expected_heads = torch.stack([x[:, :, h * 4 : (h + 1) * 4] for h in range(3)], dim=1)
assert torch.equal(heads, expected_heads), (
    "split_heads has the right shape but the wrong layout: heads[b, h, t, d] should be x[b, t, h*D + d]"
)

merged = merge_heads(expected_heads)
assert merged.shape == x.shape, f"merge_heads of (2, 3, 5, 4) should be (2, 5, 12), got {tuple(merged.shape)}"
assert torch.equal(merged, x), "merge_heads should put head h back into channels h*D:(h+1)*D of every token"
assert torch.equal(merge_heads(split_heads(x, 3)), x), "merge_heads(split_heads(x, H)) should give x back"
### BEGIN HIDDEN TESTS
for _shape, _h in (((1, 1, 6), 2), ((3, 7, 8), 1), ((3, 7, 8), 8), ((2, 4, 8), 2), ((2, 6, 30), 5)):
    _b, _t, _c = _shape
    _d = _c // _h
    for _dtype in (torch.float32, torch.float64, torch.int64):
        _dev = DEVICE64 if _dtype == torch.float64 else DEVICE
        _x = torch.arange(_b * _t * _c, dtype=_dtype).reshape(_shape).to(_dev)
        _s = split_heads(_x, _h)
        assert _s.shape == (_b, _h, _t, _d), (
            f"split_heads of {_shape} with {_h} heads should be {(_b, _h, _t, _d)}, got {tuple(_s.shape)}"
        )
        assert _s.dtype == _dtype and _s.device == _x.device, "split_heads should keep the dtype and device"
        _ref = torch.empty(_b, _h, _t, _d, dtype=_dtype, device=_dev)
        for _i in range(_h):
            _ref[:, _i] = _x[:, :, _i * _d : (_i + 1) * _d]
        assert torch.equal(_s, _ref), f"split_heads{_shape}, H={_h}: heads[b, h, t, d] should be x[b, t, h*D + d]"
        _m = merge_heads(_ref.contiguous())
        assert _m.shape == _shape, f"merge_heads should give {_shape}, got {tuple(_m.shape)}"
        assert _m.dtype == _dtype and _m.device == _x.device, "merge_heads should keep the dtype and device"
        assert torch.equal(_m, _x), f"merge_heads of a contiguous {(_b, _h, _t, _d)} tensor: wrong layout"
        assert torch.equal(merge_heads(split_heads(_x, _h)), _x), f"round trip failed for {_shape}, H={_h}"

# Inputs that are not contiguous in memory.
_x = torch.randn(2, 12, 6, generator=_g).to(DEVICE).transpose(1, 2)  # (2, 6, 12), not contiguous
_ref = torch.stack([_x[:, :, _i * 3 : (_i + 1) * 3] for _i in range(4)], dim=1)
assert torch.equal(split_heads(_x, 4), _ref), "split_heads of a non-contiguous input: wrong values"
_y = torch.randn(2, 6, 4, 3, generator=_g).to(DEVICE).transpose(1, 2)  # (2, 4, 6, 3), not contiguous
_ref = torch.cat([_y[:, _i] for _i in range(4)], dim=-1)
assert torch.equal(merge_heads(_y), _ref), "merge_heads of a non-contiguous input: wrong values"
_z = torch.randn(2, 6, 3, 4, generator=_g).to(DEVICE).permute(0, 3, 1, 2)  # (2, 4, 6, 3), not contiguous
assert torch.equal(merge_heads(_z), torch.cat([_z[:, _i] for _i in range(4)], dim=-1)), (
    "merge_heads of a permuted input: wrong values"
)

# A width the heads do not divide.
for _c, _h in ((10, 3), (12, 5), (7, 2)):
    try:
        split_heads(torch.zeros(1, 2, _c), _h)
    except ValueError:
        pass
    else:
        raise AssertionError(f"split_heads with width {_c} and {_h} heads should raise ValueError")

# Empty batch or time dimension.
for _shape, _h in (((0, 5, 12), 3), ((2, 0, 12), 4)):
    _b, _t, _c = _shape
    _s = split_heads(torch.randn(_shape, generator=_g).to(DEVICE), _h)
    assert _s.shape == (_b, _h, _t, _c // _h) and _s.dtype == torch.float32, (
        f"split_heads of an empty {_shape} float32 tensor with {_h} heads should be float32 "
        f"{(_b, _h, _t, _c // _h)}, got {_s.dtype} {tuple(_s.shape)}"
    )
    _m = merge_heads(torch.randn(_b, _h, _t, _c // _h, generator=_g).to(DEVICE))
    assert _m.shape == _shape and _m.dtype == torch.float32, (
        f"merge_heads of an empty {(_b, _h, _t, _c // _h)} float32 tensor should be float32 {_shape}, "
        f"got {_m.dtype} {tuple(_m.shape)}"
    )

# The device: meta tensors (no values) stay on meta.
_s = split_heads(torch.empty(2, 5, 12, dtype=torch.float64, device="meta"), 3)
assert _s.device.type == "meta" and _s.shape == (2, 3, 5, 4) and _s.dtype == torch.float64, (
    f"split_heads of a float64 meta tensor (2, 5, 12), 3 heads: expected meta float64 (2, 3, 5, 4), "
    f"got {_s.device} {_s.dtype} {tuple(_s.shape)}"
)
_m = merge_heads(torch.empty(2, 3, 5, 4, dtype=torch.float64, device="meta"))
assert _m.device.type == "meta" and _m.shape == (2, 5, 12) and _m.dtype == torch.float64, (
    f"merge_heads of a float64 meta tensor (2, 3, 5, 4): expected meta float64 (2, 5, 12), "
    f"got {_m.device} {_m.dtype} {tuple(_m.shape)}"
)
### END HIDDEN TESTS
print("split_heads and merge_heads: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-mha", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 4 — Multi-head self-attention (3 points)
#
# A multi-head self-attention layer projects each token to a query, a key and a value, splits
# them into heads, runs attention in every head, merges the heads, and applies an output
# projection. Real layers do the three input projections as **one** matrix multiply with a
# fused weight: it is faster, and it is how checkpoints store them. You will write it as a
# function of its weights (rather than an `nn.Module`) so that the tests can hand it the weights
# of `torch.nn.MultiheadAttention` and compare.
#
# Write `multi_head_self_attention(x, w_qkv, b_qkv, w_out, b_out, n_heads, causal=False)`:
#
# - `x`: `(B, T, C)`. The result is `(B, T, C)`, with `x`'s dtype and device. The weights and
#   biases have `x`'s dtype and device.
# - `w_qkv`: `(3C, C)`, `b_qkv`: `(3C,)` or `None` (no bias). This is
#   `nn.MultiheadAttention`'s `in_proj_weight` / `in_proj_bias` layout: the rows are the three
#   projections **stacked**, `[W_q; W_k; W_v]` — rows `0:C` give the queries, rows `C:2C` the
#   keys, rows `2C:3C` the values — and a projection is `x @ W.T + b`, as in `nn.Linear`.
#   So `x @ w_qkv.T + b_qkv` is `(B, T, 3C)`, with the queries in channels `0:C`, the keys in
#   `C:2C` and the values in `2C:3C`.
# - Then queries, keys and values are split into `n_heads` heads with **your** `split_heads`
#   (Task 3), attended with **your** `scaled_dot_product_attention` (Task 1), merged with your
#   `merge_heads`, and projected: `merged @ w_out.T + b_out`, with `w_out` `(C, C)` and
#   `b_out` `(C,)` or `None` (`nn.MultiheadAttention`'s `out_proj.weight` and `out_proj.bias`).
#   Either bias may be `None` on its own: a missing bias is a bias of zeros.
# - `causal=True` makes token $t$ attend only to tokens $0, \dots, t$ (use your `causal_mask`
#   from Task 2). Remember the mask conventions: **your** functions use True = may attend;
#   `nn.MultiheadAttention`'s `attn_mask` uses True = blocked. The tests translate; your code
#   only ever uses your own convention.
#
# The result equals `nn.MultiheadAttention(C, n_heads, batch_first=True)(x, x, x)[0]` with the
# same weights, to `1e-10` in `float64`. Do not call `nn.MultiheadAttention`,
# `torch.nn.functional.multi_head_attention_forward` or
# `torch.nn.functional.scaled_dot_product_attention` (the hidden tests check this); calling
# `torch.nn.functional.linear` is fine.


# %% nbgrader={"grade": false, "grade_id": "mha-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def multi_head_self_attention(
    x: torch.Tensor,
    w_qkv: torch.Tensor,
    b_qkv: torch.Tensor | None,
    w_out: torch.Tensor,
    b_out: torch.Tensor | None,
    n_heads: int,
    causal: bool = False,
) -> torch.Tensor:
    """Self-attention over ``x`` ``(B, T, C)`` with ``nn.MultiheadAttention``'s fused ``[W_q; W_k; W_v]`` layout."""
    ### BEGIN SOLUTION
    c = x.shape[-1]
    qkv = F.linear(x, w_qkv, b_qkv)  # (B, T, 3C)
    q, k, v = (split_heads(t, n_heads) for t in qkv.split(c, dim=-1))  # 3 x (B, H, T, D)
    mask = causal_mask(x.shape[1], device=x.device) if causal else None
    out = merge_heads(scaled_dot_product_attention(q, k, v, mask))  # (B, T, C)
    return F.linear(out, w_out, b_out)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-mha", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def _torch_mha(c, n_heads, w_qkv, b_qkv, w_out, b_out):
    """An nn.MultiheadAttention holding the given weights."""
    bias = b_qkv is not None
    mha = nn.MultiheadAttention(c, n_heads, bias=bias, batch_first=True, dtype=w_qkv.dtype, device=w_qkv.device)
    with torch.no_grad():
        mha.in_proj_weight.copy_(w_qkv)
        mha.out_proj.weight.copy_(w_out)
        if bias:
            mha.in_proj_bias.copy_(b_qkv)
            mha.out_proj.bias.copy_(b_out)
    return mha.eval()


def _mha_weights(c, generator, dtype, device, bias=True):
    w_qkv = torch.randn(3 * c, c, generator=generator, dtype=dtype) / math.sqrt(c)
    w_out = torch.randn(c, c, generator=generator, dtype=dtype) / math.sqrt(c)
    b_qkv = torch.randn(3 * c, generator=generator, dtype=dtype) if bias else None
    b_out = torch.randn(c, generator=generator, dtype=dtype) if bias else None
    return tuple(None if w is None else w.to(device) for w in (w_qkv, b_qkv, w_out, b_out))


_g = torch.Generator().manual_seed(4)
B, T, C, n_heads = 2, 5, 12, 3
x = torch.randn(B, T, C, generator=_g, dtype=torch.float64).to(DEVICE64)
w_qkv, b_qkv, w_out, b_out = _mha_weights(C, _g, torch.float64, DEVICE64)

out = multi_head_self_attention(x, w_qkv, b_qkv, w_out, b_out, n_heads)
assert isinstance(out, torch.Tensor), f"multi_head_self_attention should return a tensor, got {type(out).__name__}"
assert out.shape == (B, T, C), f"the output should have shape {(B, T, C)}, got {tuple(out.shape)}"
with torch.no_grad():
    expected = _torch_mha(C, n_heads, w_qkv, b_qkv, w_out, b_out)(x, x, x, need_weights=False)[0]
assert_close(out, expected, rtol=1e-10, atol=1e-10, check_device=True, msg="against nn.MultiheadAttention (float64)")
### BEGIN HIDDEN TESTS
_forbidden_mha = (
    "torch.nn.MultiheadAttention.forward",
    "torch.nn.functional.multi_head_attention_forward",
    "torch.nn.functional.scaled_dot_product_attention",
    "torch._C._nn.scaled_dot_product_attention",
)


def _unmodified(after, before):
    """An input as the learner's code left it equals its copy from before the call (shape, dtype, device, values).

    Shape and dtype too: an in-place ``unsqueeze_`` or a ``.data`` swap modifies an input as well.
    """
    return before is None or (
        isinstance(after, torch.Tensor)
        and (after.shape, after.dtype, after.device) == (before.shape, before.dtype, before.device)
        and torch.equal(after, before)
    )


@in_kernel
def _mha_run(x_, w_qkv_, b_qkv_, w_out_, b_out_, h, causal):
    """Your multi_head_self_attention, and its tensor inputs as your code left them."""
    got = multi_head_self_attention(x_, w_qkv_, b_qkv_, w_out_, b_out_, h, causal)
    return got, [x_, w_qkv_, b_qkv_, w_out_, b_out_]


def _check_mha(b, t, c, h, causal, dtype, device, bias, rtol, atol):
    what = f"B={b}, T={t}, C={c}, {h} heads, causal={causal}, {dtype}, bias={bias}"
    x_ = torch.randn(b, t, c, generator=_g, dtype=dtype).to(device)
    weights = _mha_weights(c, _g, dtype, device, bias)
    before = [None if w is None else w.clone() for w in (x_, *weights)]
    got, after = call_without(_mha_run, x_, *weights, h, causal, forbidden=_forbidden_mha)
    assert all(_unmodified(_a, _b) for _b, _a in zip(before, after, strict=True)), (
        f"{what}: the inputs must not be modified"
    )
    assert isinstance(got, torch.Tensor), f"{what}: multi_head_self_attention should return a tensor"
    assert got.shape == (b, t, c), f"{what}: the output should have shape {(b, t, c)}, got {tuple(got.shape)}"
    assert got.dtype == dtype, f"{what}: the output should be {dtype}, got {got.dtype}"
    # nn.MultiheadAttention's attn_mask is True where attention is BLOCKED: the opposite of ours.
    blocked = torch.ones(t, t, dtype=torch.bool, device=device).triu(diagonal=1) if causal else None
    with torch.inference_mode():
        want = _torch_mha(c, h, *weights)(x_, x_, x_, attn_mask=blocked, need_weights=False)[0]
    assert_close(got, want, rtol=rtol, atol=atol, check_device=True, msg=what)


for _causal in (False, True):
    _check_mha(2, 5, 12, 3, _causal, torch.float64, DEVICE64, True, 1e-10, 1e-10)
    _check_mha(3, 7, 16, 4, _causal, torch.float64, DEVICE64, False, 1e-10, 1e-10)
    _check_mha(2, 6, 8, 1, _causal, torch.float64, DEVICE64, True, 1e-10, 1e-10)
    _check_mha(2, 6, 8, 8, _causal, torch.float64, DEVICE64, True, 1e-10, 1e-10)
    _check_mha(1, 1, 12, 3, _causal, torch.float64, DEVICE64, True, 1e-10, 1e-10)
    _check_mha(2, 9, 32, 4, _causal, torch.float32, DEVICE, True, 1e-4, 1e-5)

# Causal: the first token's output depends on the first token only.
_x = torch.randn(1, 6, 12, generator=_g, dtype=torch.float64).to(DEVICE64)
_w = _mha_weights(12, _g, torch.float64, DEVICE64)
_x2 = _x.clone()
_x2[:, 1:] = torch.randn(1, 5, 12, generator=_g, dtype=torch.float64).to(DEVICE64)
assert_close(
    multi_head_self_attention(_x2, *_w, 3, True)[:, 0],
    multi_head_self_attention(_x, *_w, 3, True)[:, 0],
    rtol=1e-10,
    atol=1e-10,
    msg="with causal=True, the first token's output must not depend on later tokens",
)


def _check_mha_one_bias(missing, causal):
    """One bias None, the other given: the same as nn.MultiheadAttention with that bias set to zeros."""
    what = f"B=2, T=5, C=12, 3 heads, causal={causal}, float64, {missing}=None, the other bias given"
    x_ = torch.randn(2, 5, 12, generator=_g, dtype=torch.float64).to(DEVICE64)
    w_qkv_, b_qkv_, w_out_, b_out_ = _mha_weights(12, _g, torch.float64, DEVICE64)
    zeros = {"b_qkv": torch.zeros_like(b_qkv_), "b_out": torch.zeros_like(b_out_)}[missing]
    ref_b_qkv, ref_b_out = (zeros, b_out_) if missing == "b_qkv" else (b_qkv_, zeros)
    b_qkv_, b_out_ = (None, b_out_) if missing == "b_qkv" else (b_qkv_, None)
    got, _ = call_without(_mha_run, x_, w_qkv_, b_qkv_, w_out_, b_out_, 3, causal, forbidden=_forbidden_mha)
    blocked = torch.ones(5, 5, dtype=torch.bool, device=DEVICE64).triu(diagonal=1) if causal else None
    with torch.inference_mode():
        want = _torch_mha(12, 3, w_qkv_, ref_b_qkv, w_out_, ref_b_out)(
            x_, x_, x_, attn_mask=blocked, need_weights=False
        )[0]
    assert isinstance(got, torch.Tensor) and got.shape == (2, 5, 12), f"{what}: expected a (2, 5, 12) tensor"
    assert_close(got, want, rtol=1e-10, atol=1e-10, check_device=True, msg=what)


for _missing in ("b_qkv", "b_out"):
    for _causal in (False, True):
        _check_mha_one_bias(_missing, _causal)

# The device: with x and the weights on the meta device (no values), the output must be there too.
for _causal in (False, True):
    _meta = [
        torch.empty(*_s, dtype=torch.float64, device="meta") for _s in ((2, 5, 12), (36, 12), (36,), (12, 12), (12,))
    ]
    _om = multi_head_self_attention(*_meta, 3, _causal)
    assert isinstance(_om, torch.Tensor) and _om.device.type == "meta", (
        f"meta x (2, 5, 12) and weights, 3 heads, causal={_causal}: the output should be on meta"
    )
    assert _om.shape == (2, 5, 12) and _om.dtype == torch.float64, (
        f"meta x (2, 5, 12), causal={_causal}: expected a float64 (2, 5, 12) output, got {_om.dtype} {tuple(_om.shape)}"
    )
### END HIDDEN TESTS
print("multi_head_self_attention: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-rope", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 5 — Rotary position embeddings (3 points)
#
# Attention on its own is blind to order: permute the keys and values together and the output
# does not change. Models must be told where each token is. Rotary position embeddings (RoPE;
# Su et al., 2021, "RoFormer"), used by LLaMA, Mistral, Qwen and GPT-NeoX, **rotate** the query
# and the key of the token at position $m$ by an angle proportional to $m$. Since rotations
# preserve dot products, $(R_m q) \cdot (R_n k) = q \cdot (R_{n-m} k)$: the score depends only
# on the **distance** $m - n$, never on the absolute positions.
#
# The `D` channels of a head are cut into `D/2` pairs, and pair $i$ is rotated by the angle
# $m\,\theta_i$ with the frequencies
#
# $$\theta_i = \text{base}^{-2i/D}, \qquad i = 0, 1, \dots, D/2 - 1,$$
#
# so the first pair turns fastest (one radian per position) and the last one slowest. Use the
# **"rotate half"** pairing of Hugging Face's LLaMA and GPT-NeoX code: channel $i$ is paired with
# channel $i + D/2$ (not with channel $i + 1$). For a vector $x$ at position $m$, with
# $a = x_i$ and $b = x_{i + D/2}$:
#
# $$\text{out}_i = a \cos(m\theta_i) - b \sin(m\theta_i), \qquad \text{out}_{i + D/2} = a \sin(m\theta_i) + b \cos(m\theta_i).$$
#
# Write `apply_rope(x, positions, base=10000.0) -> torch.Tensor`:
#
# - `x` is `(..., T, D)` (for example `(B, H, T, D)` or `(T, D)`) with `D` even; raise
#   `ValueError` if `D` is odd.
# - `positions` is an integer tensor of shape `(T,)`, on `x`'s device: the position of each of
#   the `T` rows. They need not start at 0 or be in order (with a KV cache, new tokens sit at
#   positions 100, 101, ...), so use them; do not assume `0, 1, ..., T-1`. Any non-negative
#   position below `2**53` is valid: `float64` holds each of them exactly, `float32` only those
#   up to `2**24`.
# - The result has `x`'s shape, dtype and device. Compute the frequencies, the angles and their
#   cosines and sines in **`float64`**, and cast to `x`'s dtype only at the end: in `float32`,
#   `position * theta` at position 4000 is already off by about `1e-4` radians. Compute them on
#   `x`'s device (the hidden tests use the `meta` device too); only on Apple MPS, which has no
#   `float64`, compute them on the CPU and move the cosines and sines to `x`'s device.
# - It does not modify `x`.
#
# The result equals `transformers.models.llama.modeling_llama.apply_rotary_pos_emb` (with
# cos/sin tables built the LLaMA way). Rotating interleaved pairs $(2i, 2i+1)$, as the RoFormer
# paper and some other code bases do, is also a valid RoPE, but it is a **different layout**:
# weights trained with one do not work with the other, so it fails here.


# %% nbgrader={"grade": false, "grade_id": "rope-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def apply_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate channel pairs ``(i, i + D/2)`` of ``x`` ``(..., T, D)`` by ``positions * base**(-2i/D)``."""
    ### BEGIN SOLUTION
    d = x.shape[-1]
    if d % 2:
        raise ValueError(f"RoPE needs an even head width, got D={d}")
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64, device=x.device) / d)  # (D/2,)
    angles = positions.to(torch.float64).unsqueeze(-1) * theta  # (T, D/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]  # channel i pairs with channel i + D/2
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-rope", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def _rope_reference(x, positions, base=10000.0):
    """RoPE written pair by pair in float64: channel i with channel i + D/2, theta_i = base**(-2i/D)."""
    d = x.shape[-1]
    x64, pos = x.double(), positions.double()
    out = torch.empty_like(x64)
    for i in range(d // 2):
        angle = pos * base ** (-2 * i / d)  # (T,)
        c, s = torch.cos(angle), torch.sin(angle)
        a, b = x64[..., i], x64[..., i + d // 2]  # (..., T)
        out[..., i] = a * c - b * s
        out[..., i + d // 2] = a * s + b * c
    return out


_g = torch.Generator().manual_seed(5)
x = torch.randn(2, 3, 6, 8, generator=_g, dtype=torch.float64).to(DEVICE64)
positions = torch.arange(6, device=DEVICE64)

out = apply_rope(x, positions)
assert isinstance(out, torch.Tensor), f"apply_rope should return a tensor, got {type(out).__name__}"
assert out.shape == x.shape and out.dtype == x.dtype, (
    f"apply_rope should keep the shape {tuple(x.shape)} and dtype {x.dtype}, got {tuple(out.shape)} {out.dtype}"
)
assert_close(out[..., 0, :], x[..., 0, :], rtol=1e-12, atol=1e-12, msg="position 0 should not rotate anything")

# Channel 0 pairs with channel D/2 = 4: the unit vector e_0 at position 1 turns into cos(1) e_0 + sin(1) e_4.
e0 = torch.zeros(1, 8, dtype=torch.float64, device=DEVICE64)
e0[0, 0] = 1.0
turned = apply_rope(e0, torch.tensor([1], device=DEVICE64))
expected_turn = torch.zeros(1, 8, dtype=torch.float64, device=DEVICE64)
expected_turn[0, 0], expected_turn[0, 4] = math.cos(1.0), math.sin(1.0)
assert_close(turned, expected_turn, rtol=1e-12, atol=1e-12, msg="e_0 at position 1 (channel 0 pairs with channel D/2)")

assert_close(
    out, _rope_reference(x, positions), rtol=1e-10, atol=1e-10, check_device=True, msg="against RoPE in float64"
)
assert_close(
    out.norm(dim=-1), x.norm(dim=-1), rtol=1e-10, atol=1e-10, msg="a rotation must not change the vector's length"
)

# The score between a rotated query and key depends only on the distance m - n.
q1, k1 = torch.randn(2, 8, generator=_g, dtype=torch.float64).to(DEVICE64)


def score(m, n):
    rq = apply_rope(q1[None], torch.tensor([m], device=DEVICE64))
    rk = apply_rope(k1[None], torch.tensor([n], device=DEVICE64))
    return (rq * rk).sum()


for m, n in ((5, 2), (13, 10), (103, 100)):
    assert_close(score(m, n), score(3, 0), rtol=1e-9, atol=1e-9, msg=f"score at positions ({m}, {n}) vs (3, 0)")
### BEGIN HIDDEN TESTS
_x32 = torch.randn(2, 2, 6, 32, generator=_g).to(DEVICE64)


def _unmodified(after, before):
    """An input as the learner's code left it equals its copy from before the call (shape, dtype, device, values).

    Shape and dtype too: an in-place ``unsqueeze_`` or a ``.data`` swap modifies an input as well.
    """
    return before is None or (
        isinstance(after, torch.Tensor)
        and (after.shape, after.dtype, after.device) == (before.shape, before.dtype, before.device)
        and torch.equal(after, before)
    )


@in_kernel
def _rope_run(x_, pos_, base):
    """Your apply_rope (with its default base when ``base`` is None), and ``x_`` as your code left it."""
    got = apply_rope(x_, pos_) if base is None else apply_rope(x_, pos_, base=base)
    return got, x_


def _check_rope(x_, pos_, what, base=None, rtol=1e-10, atol=1e-10):
    before = x_.clone()
    got, x_after = _rope_run(x_, pos_, base)
    assert _unmodified(x_after, before), f"{what}: apply_rope must not modify its input"
    assert isinstance(got, torch.Tensor) and got.shape == x_.shape, f"{what}: the shape should be {tuple(x_.shape)}"
    assert got.dtype == x_.dtype, f"{what}: the dtype should stay {x_.dtype}, got {got.dtype}"
    want = _rope_reference(x_, pos_, 10000.0 if base is None else base).to(x_.dtype)
    assert_close(got, want, rtol=rtol, atol=atol, check_device=True, msg=what)
    return got


_check_rope(x, positions, "(2, 3, 6, 8), positions 0..5")
_check_rope(x, torch.arange(10, 16, device=DEVICE64), "positions 10..15 (not starting at 0)")
_check_rope(x, torch.tensor([3, 0, 7, 7, 100, 1], device=DEVICE64), "positions out of order and repeated")
_check_rope(x, torch.arange(6, device=DEVICE64), "base=500", base=500.0)
_check_rope(x, torch.arange(6, device=DEVICE64) * 37, "base=1e6, far positions", base=1e6)
_check_rope(torch.randn(5, 2, generator=_g, dtype=torch.float64).to(DEVICE64), torch.arange(5, device=DEVICE64), "D=2")
_check_rope(
    torch.randn(2, 4, 64, generator=_g, dtype=torch.float64).to(DEVICE64),
    torch.arange(50, 54, device=DEVICE64),
    "(B, T, D) = (2, 4, 64), positions 50..53",
)
_check_rope(
    torch.randn(1, 2, 3, 5, 16, generator=_g, dtype=torch.float64).to(DEVICE64),
    torch.arange(5, device=DEVICE64),
    "five dimensions",
)

# float32: angles computed in float64, so far positions stay accurate.
_check_rope(_x32, torch.arange(6, device=DEVICE64), "float32", rtol=1e-5, atol=1e-6)
_check_rope(_x32, torch.arange(4000, 4006, device=DEVICE64), "float32, positions 4000..4005", rtol=1e-5, atol=2e-6)

# The relative-position property, both signs of the distance.
for _m, _n, _m0, _n0 in ((9, 2, 7, 0), (2, 9, 0, 7), (1000, 1001, 0, 1)):
    assert_close(score(_m, _n), score(_m0, _n0), rtol=1e-8, atol=1e-8, msg=f"score({_m}, {_n}) vs score({_m0}, {_n0})")

# An odd head width has no pairs.
try:
    apply_rope(torch.zeros(3, 5, dtype=torch.float64, device=DEVICE64), torch.arange(3, device=DEVICE64))
except ValueError:
    pass
else:
    raise AssertionError("apply_rope with an odd D should raise ValueError")

# Positions as int32, a single row, no row at all.
_check_rope(x, torch.tensor([5, 1, 0, 9, 2, 2], dtype=torch.int32, device=DEVICE64), "int32 positions")
_check_rope(x[..., :1, :], torch.tensor([7], device=DEVICE64), "T = 1, position 7")
_check_rope(x[..., :0, :], torch.zeros(0, dtype=torch.int64, device=DEVICE64), "T = 0 (no rows)")

# Positions beyond 2**24, where float32 can no longer hold every integer (2**24 + 1 rounds to 2**24).
_far = torch.tensor([2**24 + 1, 2**24 + 3, 2**30 + 7, 2**40 + 1, 2**24, 3], device=DEVICE64)
_check_rope(x, _far, "positions 2**24 + 1, 2**24 + 3, 2**30 + 7, 2**40 + 1, 2**24, 3 (float64)", rtol=1e-6, atol=1e-6)

# The device: x and positions on the meta device (no values); the result must be there too.
_om = apply_rope(torch.empty(2, 3, 6, 8, device="meta"), torch.empty(6, dtype=torch.int64, device="meta"))
assert isinstance(_om, torch.Tensor) and _om.device.type == "meta", (
    "apply_rope of meta x (2, 3, 6, 8): should be on meta"
)
assert _om.shape == (2, 3, 6, 8) and _om.dtype == torch.float32, (
    f"apply_rope of a float32 meta x (2, 3, 6, 8): expected float32 (2, 3, 6, 8), got {_om.dtype} {tuple(_om.shape)}"
)
### END HIDDEN TESTS
print("apply_rope: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-decode-step", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 6 — One decoding step with a key/value cache (3 points)
#
# A language model generates one token at a time. Without a cache, each new token re-runs
# attention over the whole sequence: step $t$ recomputes the keys and values of tokens
# $0, \dots, t-1$ although they have not changed, so generating $T$ tokens costs $O(T^2)$
# projections. A **KV cache** keeps the keys and values of the tokens seen so far; each step
# computes the query, key and value of the **new** token only, appends the new key and value to
# the cache, and attends from the new query over the whole cache. Since the newest token is the
# last position, it may see every cached token and itself: no mask is needed.
#
# Write `decode_step(x_t, cache_k, cache_v, w_q, w_k, w_v, n_heads)`, returning the tuple
# `(out_t, new_cache_k, new_cache_v)`:
#
# - `x_t`: `(B, 1, C)`, the new token's vector. `w_q`, `w_k`, `w_v`: `(C, C)` projection
#   weights in `nn.Linear` layout (`q = x_t @ w_q.T`; no biases).
# - `cache_k`, `cache_v`: `(B, H, T_past, D)`, the keys and values of the `T_past` earlier
#   tokens, **oldest first**; `T_past` may be 0 (an empty cache, for the first token).
# - `new_cache_k`, `new_cache_v`: `(B, H, T_past + 1, D)`: the old cache with the new token's
#   key (value) **appended at the end** of the time axis. Nothing is dropped: the cache keeps
#   every token. Return new tensors; do not modify the caches you were given.
# - `out_t`: `(B, 1, C)`, the new query's attention over all `T_past + 1` keys and values,
#   with the heads merged (no output projection).
#
# Use your `split_heads`, `merge_heads` and `scaled_dot_product_attention`. Running
# `decode_step` on tokens $0, 1, \dots, T-1$ one after the other, starting from an empty
# cache, must give at step $t$ exactly row $t$ of full causal multi-head attention over the
# whole sequence, recomputed from scratch. The tests check this for several consecutive steps,
# and check the returned caches entry by entry, in order. Do not call
# `torch.nn.functional.scaled_dot_product_attention` (the hidden tests check this).


# %% nbgrader={"grade": false, "grade_id": "decode-step-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def decode_step(
    x_t: torch.Tensor,
    cache_k: torch.Tensor,
    cache_v: torch.Tensor,
    w_q: torch.Tensor,
    w_k: torch.Tensor,
    w_v: torch.Tensor,
    n_heads: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Attend from the new token ``x_t`` ``(B, 1, C)`` over the cache plus itself.

    Returns ``(out_t (B, 1, C), new_cache_k, new_cache_v)``, the caches ``(B, H, T_past + 1, D)``.
    """
    ### BEGIN SOLUTION
    q, k, v = (split_heads(x_t @ w.T, n_heads) for w in (w_q, w_k, w_v))  # 3 x (B, H, 1, D)
    new_k = torch.cat([cache_k, k], dim=2)  # (B, H, T_past + 1, D), oldest first
    new_v = torch.cat([cache_v, v], dim=2)
    out = scaled_dot_product_attention(q, new_k, new_v)  # (B, H, 1, D): the last token sees everything
    return merge_heads(out), new_k, new_v
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-decode-step", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def _full_causal(x, w_q, w_k, w_v, n_heads):
    """Causal multi-head attention over the whole sequence from scratch: (output, keys, values)."""
    b, t, c = x.shape
    q, k, v = ((x @ w.T).view(b, t, n_heads, c // n_heads).transpose(1, 2) for w in (w_q, w_k, w_v))  # (B, H, T, D)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
    return out.transpose(1, 2).reshape(b, t, c), k, v


_g = torch.Generator().manual_seed(6)
B, T, C, n_heads = 2, 6, 12, 3
x = torch.randn(B, T, C, generator=_g, dtype=torch.float64).to(DEVICE64)
w_q, w_k, w_v = (torch.randn(C, C, generator=_g, dtype=torch.float64).to(DEVICE64) / math.sqrt(C) for _ in range(3))
full_out, full_k, full_v = _full_causal(x, w_q, w_k, w_v, n_heads)

cache_k = torch.zeros(B, n_heads, 0, C // n_heads, dtype=torch.float64, device=DEVICE64)  # empty cache
cache_v = cache_k.clone()
for t in range(T):
    result = decode_step(x[:, t : t + 1], cache_k, cache_v, w_q, w_k, w_v, n_heads)
    assert isinstance(result, tuple) and len(result) == 3, "decode_step should return (out_t, new_cache_k, new_cache_v)"
    out_t, cache_k, cache_v = result
    assert out_t.shape == (B, 1, C), f"step {t}: out_t should have shape {(B, 1, C)}, got {tuple(out_t.shape)}"
    want_shape = (B, n_heads, t + 1, C // n_heads)
    assert cache_k.shape == want_shape and cache_v.shape == want_shape, (
        f"step {t}: the caches should have shape {want_shape} (one entry per token so far), "
        f"got {tuple(cache_k.shape)} and {tuple(cache_v.shape)}"
    )
    assert_close(cache_k, full_k[:, :, : t + 1], rtol=1e-12, atol=1e-12, msg=f"step {t}: cached keys, oldest first")
    assert_close(cache_v, full_v[:, :, : t + 1], rtol=1e-12, atol=1e-12, msg=f"step {t}: cached values, oldest first")
    assert_close(
        out_t,
        full_out[:, t : t + 1],
        rtol=1e-10,
        atol=1e-10,
        check_device=True,
        msg=f"step {t}: out_t vs row {t} of full causal attention",
    )
### BEGIN HIDDEN TESTS
_forbidden_decode = (
    "torch.nn.functional.scaled_dot_product_attention",
    "torch._C._nn.scaled_dot_product_attention",
    "torch.nn.functional.multi_head_attention_forward",
)


def _unmodified(after, before):
    """An input as the learner's code left it equals its copy from before the call (shape, dtype, device, values).

    Shape and dtype too: an in-place ``unsqueeze_`` or a ``.data`` swap modifies an input as well.
    """
    return before is None or (
        isinstance(after, torch.Tensor)
        and (after.shape, after.dtype, after.device) == (before.shape, before.dtype, before.device)
        and torch.equal(after, before)
    )


@in_kernel
def _decode_run(x_t, ck, cv, w_q_, w_k_, w_v_, h):
    """Your decode_step, and x_t and the caches as your code left them."""
    return decode_step(x_t, ck, cv, w_q_, w_k_, w_v_, h), [x_t, ck, cv]


def _check_decode(b, t_prefill, t_new, c, h, dtype, device, rtol, atol):
    what = f"B={b}, {t_prefill} cached tokens then {t_new} steps, C={c}, {h} heads, {dtype}"
    x_ = torch.randn(b, t_prefill + t_new, c, generator=_g, dtype=dtype).to(device)
    ws = [torch.randn(c, c, generator=_g, dtype=dtype).to(device) / math.sqrt(c) for _ in range(3)]
    full, k_all, v_all = _full_causal(x_, *ws, h)
    ck, cv = k_all[:, :, :t_prefill].clone(), v_all[:, :, :t_prefill].clone()
    for step in range(t_prefill, t_prefill + t_new):
        ck_before, cv_before, x_before = ck.clone(), cv.clone(), x_.clone()
        result, (x_t_after, ck_after, cv_after) = call_without(
            _decode_run, x_[:, step : step + 1], ck, cv, *ws, h, forbidden=_forbidden_decode
        )
        o, ck_new, cv_new = result
        assert _unmodified(ck_after, ck_before) and _unmodified(cv_after, cv_before), (
            f"{what}: decode_step must not modify the caches it is given"
        )
        assert _unmodified(x_t_after, x_before[:, step : step + 1]) and torch.equal(x_, x_before), (
            f"{what}: decode_step must not modify x_t"
        )
        assert ck_new.shape == (b, h, step + 1, c // h), (
            f"{what}: after token {step} the key cache should be {(b, h, step + 1, c // h)}, got {tuple(ck_new.shape)}"
        )
        assert o.dtype == dtype and ck_new.dtype == dtype, f"{what}: the outputs should stay {dtype}"
        assert_close(ck_new, k_all[:, :, : step + 1], rtol=rtol, atol=atol, msg=f"{what}: keys after token {step}")
        assert_close(cv_new, v_all[:, :, : step + 1], rtol=rtol, atol=atol, msg=f"{what}: values after token {step}")
        assert_close(
            o, full[:, step : step + 1], rtol=rtol, atol=atol, check_device=True, msg=f"{what}: output of token {step}"
        )
        ck, cv = ck_new, cv_new


_check_decode(2, 4, 3, 12, 3, torch.float64, DEVICE64, 1e-10, 1e-10)
_check_decode(1, 0, 5, 8, 1, torch.float64, DEVICE64, 1e-10, 1e-10)
_check_decode(2, 2, 3, 8, 8, torch.float64, DEVICE64, 1e-10, 1e-10)
_check_decode(3, 5, 4, 32, 4, torch.float32, DEVICE, 1e-4, 1e-5)

# The device: everything on the meta device (no values), with 4 cached tokens and with none.
for _t_past in (4, 0):
    _xm = torch.empty(2, 1, 12, device="meta")
    _cm = torch.empty(2, 3, _t_past, 4, device="meta")
    _wm = [torch.empty(12, 12, device="meta") for _ in range(3)]
    _om, _ckm, _cvm = decode_step(_xm, _cm, _cm, *_wm, 3)
    _want_shapes = [(2, 1, 12), (2, 3, _t_past + 1, 4), (2, 3, _t_past + 1, 4)]
    for _name, _t, _ws in zip(("out_t", "new_cache_k", "new_cache_v"), (_om, _ckm, _cvm), _want_shapes, strict=True):
        assert isinstance(_t, torch.Tensor) and _t.device.type == "meta" and _t.shape == _ws, (
            f"decode_step on meta tensors, x_t (2, 1, 12), caches (2, 3, {_t_past}, 4): {_name} should be a meta "
            f"tensor of shape {_ws}"
        )
### END HIDDEN TESTS
print("decode_step: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "wrap-up", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Wrap-up
#
# - Attention is `softmax(q kᵀ / sqrt(D) + mask) v`, with the softmax over the **keys**. Mask
#   **before** the softmax, so the weights of the visible keys still sum to 1; a query with
#   nothing to see gets zeros, not `NaN`.
# - Mask conventions differ between APIs: `F.scaled_dot_product_attention` takes True = may
#   attend, `nn.MultiheadAttention`'s `attn_mask` True = blocked. Check which one you call.
# - Heads are a layout: head `h` owns channels `h*D:(h+1)*D`. A `view` without the `transpose`
#   has the right shape and the wrong values; only a test against a trusted implementation
#   catches it.
# - RoPE makes scores depend on relative positions; the pairing (half or interleaved) is part
#   of a checkpoint's format.
# - A KV cache must give exactly what recomputing from scratch gives. Test it that way.
#
# The course package has production versions: `mlcraft.models.attention`
# (`scaled_dot_product_attention`, `MultiHeadAttention`, which uses PyTorch's fused kernel),
# `mlcraft.models.positional` (`RotaryEmbedding`) and `mlcraft.models.gpt` (a small GPT with a
# KV cache). Later modules use them.


# %% [markdown] nbgrader={"grade": false, "grade_id": "self-check", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Self-check
#
# 1. The entries of `q` and `k` are independent with variance 1 and `D = 64`. What is the standard
#    deviation of `q · k`, and of the score after dividing by `sqrt(D)`?
# 2. You pass your `causal_mask(T)` unchanged as `nn.MultiheadAttention`'s `attn_mask`. Which keys
#    may query `i` attend to, and which query is left with no key at all?
# 3. `x.view(B, H, T, D)` has the right shape. For `B = 1`, `T = 2`, `C = 4`, `H = 2`, with tokens
#    `(a0, a1, a2, a3)` and `(b0, b1, b2, b3)`, what does head 0 hold, and what should it hold? Why
#    would a test with `H = 1` or with `T = 1` not notice?
# 4. Without a causal mask and without position embeddings, what happens to the output of
#    `multi_head_self_attention` when you permute the tokens of `x`?
# 5. With `D = 4` and `base = 10000`, what are `θ_0` and `θ_1`? Which channels form pair 1 in the
#    rotate-half layout, and which in the interleaved one?
# 6. A test adds 100 to every position and checks that the scores `q · k` after `apply_rope` do not
#    change. Would it catch an `apply_rope` that ignores `positions` and uses `0, 1, ..., T-1`?
# 7. If `decode_step` put the new key and value at the front of the cache instead of the end, would
#    `out_t` change? What catches the mistake?
#
# <details><summary>Answers</summary>
#
# 1. `sqrt(64) = 8` for `q · k`, and 1 after the division: the softmax sees scores of the same
#    spread for any head width.
# 2. `attn_mask` means True = blocked, so query `i` could attend only to the keys `j > i`: the future
#    and nothing else. The last query has every key blocked.
# 3. `view` cuts the flat memory `a0 a1 a2 a3 b0 b1 b2 b3` in order, so head 0 gets
#    `[[a0, a1], [a2, a3]]`, all of token 0; it should get `[[a0, a1], [b0, b1]]`, channels 0–1 of
#    each token. With `H = 1` a head is a whole token, and with `T = 1` there is one token to cut:
#    in both cases `view` happens to give the right layout.
# 4. The output is permuted the same way, and nothing else changes: attention alone does not know
#    the order of the tokens, which is why positions must be added (Task 5).
# 5. `θ_0 = 1` and `θ_1 = 10000^(-2/4) = 0.01`. Rotate-half pairs channel `i` with `i + D/2`, so pair
#    1 is channels 1 and 3; the interleaved layout pairs channels 2 and 3.
# 6. No: such a function gives the same scores whatever the positions, so "unchanged" is trivially
#    true. Compare the rotated vectors themselves at positions such as 100, 101, ... with a
#    reference, or scores of a query and a key at different distances.
# 7. No: one query's output is a weighted sum over the keys and values, and reordering them together
#    changes neither the weights nor the sum. Only checking the returned caches entry by entry, in
#    order, catches it.
#
# </details>
