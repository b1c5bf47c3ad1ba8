# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] nbgrader={"grade": false, "grade_id": "intro", "locked": true, "schema_version": 3, "solution": false, "task": false}
# # Module 00 — Orientation: reproducibility, devices and dtypes, numerical stability
#
# **You will be able to**
# - seed every random number generator a run draws from, and prove it;
# - pick the autocast dtype for a CPU, a CUDA card with or without bf16, and Apple MPS;
# - write log-sum-exp and softmax that neither overflow nor underflow, in any dtype and on any device;
# - read a hidden test's failure message and find the input that broke your code.
#
# **Prerequisites**: lesson `00_orientation`; Python functions and exceptions; PyTorch tensors, dtypes and devices.
#
# **Time**: reading 10 min; exercises 45–60 min; the reference solution runs top to bottom in under a minute on a 2-core
# CPU, hidden tests included.
#
# **Further reading**: PyTorch, *Reproducibility* notes (docs.pytorch.org/docs/stable/notes/randomness.html); *Automatic Mixed Precision* (`torch.amp`) docs; Blanchard, Higham and Higham, *Accurately computing the log-sum-exp and softmax functions*, IMA J. Numer. Anal. 2021.
#
# Three habits separate ML code that works in production from code that works once:
#
# 1. **Reproducibility.** A run that cannot be repeated cannot be debugged. Every random
#    number generator the run draws from must be seeded.
# 2. **Devices and dtypes.** The same code runs on a laptop CPU, a Colab GPU and an Apple
#    laptop. Which low-precision dtype mixed-precision training should use depends on the
#    hardware.
# 3. **Numerical stability.** `exp` overflows `float32` at about 88.7. Formulas that are
#    correct on paper return `inf` or `NaN` unless they are written with care.
#
# You will write four small functions, one or two per habit:
#
# | Task | Function | Points |
# |------|----------|--------|
# | 1 | `seed_all(seed)` | 2 |
# | 2 | `choose_amp_dtype(device_type, bf16_supported)` | 2 |
# | 3 | `logsumexp(x, dim=-1)` | 3 |
# | 4 | `softmax(x, dim=-1)` | 3 |
#
# **How this notebook works.** Replace each `raise NotImplementedError()` with your code, then
# run the test cell below it. The visible tests are a first check only: when the notebook is
# graded, each test cell also runs hidden tests. These check the edge cases named in the task
# statement, so read each statement to the end. Run the notebook from top to bottom before you
# submit, and do not change or delete the test cells.
#
# The tests put their tensors on `DEVICE`, the best device present (CUDA, then Apple MPS,
# then CPU), so your code must work on whatever device its input is on.
#
# **How grading works.** When your notebook is graded, your cells run in a sandbox and the
# test cells run in the grader, apart from your code: the tests call your functions with data
# (tensors, numbers, lists...) and check what comes back. Parts of a test that need your code's
# side effects (here: the random generators your `seed_all` seeds) are marked `@in_kernel`:
# they run beside your code and report what they saw. So return exactly what each task asks
# for; nothing else in your notebook can change a test's verdict.
#
# Previous: lesson [`00_orientation`](../../course/00_orientation.ipynb) · Next: lesson
# [`01_training_loops`](../../course/01_training_loops.ipynb).


# %%
# Set-up: on Colab, install the course package; everywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "mlcraft[course] @ git+https://github.com/mlcraft/mlcraft"], check=True
    )


# %% nbgrader={"grade": false, "grade_id": "imports", "locked": true, "schema_version": 3, "solution": false, "task": false}
import random

import numpy as np
import torch

from mlcraft.classroom.testing import DEVICE, assert_close, call_without, in_kernel

print(f"torch {torch.__version__}, numpy {np.__version__}; tests run on DEVICE = {DEVICE}")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-seed-all", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 1 — Seed every generator (2 points)
#
# A typical training run draws random numbers from three places: Python's `random` module
# (e.g. shuffling a list of file names), NumPy's global generator (`np.random.rand`, data
# augmentation libraries) and PyTorch (weight initialisation, dropout, `torch.randn`, on the
# CPU and on the GPU). Seeding only one of them is the most common reason why "the same run"
# gives different results.
#
# Write `seed_all(seed: int) -> None` that
#
# - seeds Python's `random` module, NumPy's **global** generator and PyTorch (CPU and every
#   GPU), so that after `seed_all(s)` the draws from all three are the same every time, and a
#   different `s` gives different draws. `torch.manual_seed(s)` seeds the CPU and every GPU
#   (it calls `torch.cuda.manual_seed_all(s)`, which you may also call yourself); the hidden
#   tests check that every GPU gets `s`, even on a machine without one;
# - raises `TypeError` if `seed` is not an `int` (for example `1.5` or `"3"`), and also for
#   `True` and `False`: Python counts a `bool` as an `int`, but it is not a seed;
# - raises `ValueError` if `seed` is outside `[0, 2**32 - 1]`, the range NumPy accepts
#   (for example `-1`).
#
# It returns nothing. Check the argument **before** seeding anything.
#
# Write it yourself: do not call `mlcraft.utils.seed_everything`, the course package's
# version of this function.


# %% nbgrader={"grade": false, "grade_id": "seed-all-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def seed_all(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and all GPUs) with ``seed``.

    Raises:
        TypeError: if ``seed`` is not an int.
        ValueError: if ``seed`` is outside ``[0, 2**32 - 1]``.
    """
    ### BEGIN SOLUTION
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    if not 0 <= seed <= 2**32 - 1:
        raise ValueError(f"seed must be in [0, 2**32 - 1], got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds the CPU generator and every CUDA device
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-seed-all", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def _draw_all():
    """One draw from each generator a run uses."""
    return (
        random.random(),
        np.random.rand(3).tolist(),
        torch.rand(3).tolist(),
        torch.rand(3, device=DEVICE).tolist(),
    )


@in_kernel
def _seed_and_draw(seed):
    """Your seed_all(seed), then one draw from each generator."""
    seed_all(seed)
    return _draw_all()


def _expected_draws(seed):
    """The same draws after seeding each generator directly."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return _draw_all()


assert _seed_and_draw(0) == _expected_draws(0), "after seed_all(0), each generator should give the draws seed 0 gives"
assert _seed_and_draw(1) == _expected_draws(1), "after seed_all(1), each generator should give the draws seed 1 gives"

try:
    seed_all(1.5)
except TypeError:
    pass
else:
    raise AssertionError("seed_all(1.5) should raise TypeError: a seed must be an int")
### BEGIN HIDDEN TESTS
_generators = ("Python's random", "NumPy's global generator", "torch on the CPU", f"torch on {DEVICE.type}")


@in_kernel
def _seed_draw_twice(seed):
    """seed_all(seed), two draws of every kind (so only re-seeding can bring the first back), and torch.randint."""
    seed_all(seed)
    first = _draw_all()
    _draw_all()
    return first, torch.randint(0, 1000, (5,)).tolist()


for _seed in (0, 1234, 4321, 2**32 - 1):  # 2**32 - 1: the largest valid seed must be accepted
    _got, _got_int = _seed_draw_twice(_seed)
    _want = _expected_draws(_seed)
    _draw_all()
    _want_int = torch.randint(0, 1000, (5,)).tolist()
    for _name, _g, _w in zip(_generators, _got, _want, strict=True):
        assert _g == _w, (
            f"{_name}: after seed_all({_seed}) the draws should be those of seed {_seed}, got {_g}, want {_w}"
        )
    assert _got_int == _want_int, f"torch.randint after seed_all({_seed}): got {_got_int}, want {_want_int}"

for _bad in (1.5, "3", None, 2.0, True, False):  # a bool is an int subclass, but not a seed
    try:
        seed_all(_bad)
    except TypeError:
        pass
    else:
        raise AssertionError(f"seed_all({_bad!r}) should raise TypeError: a seed must be an int")

for _bad in (-1, -(2**40), 2**32, 2**64):
    try:
        seed_all(_bad)
    except ValueError:
        pass
    else:
        raise AssertionError(f"seed_all({_bad}) should raise ValueError: a seed must be in [0, 2**32 - 1]")


@in_kernel
def _draws_after_rejected(good, bad):
    """seed_all(good), then seed_all(bad), which must raise before seeding anything: the draws."""
    seed_all(good)
    try:
        seed_all(bad)
    except (TypeError, ValueError):
        return True, _draw_all()
    return False, _draw_all()


# The argument is checked before anything is seeded: a rejected seed leaves the generators alone.
for _bad in (-1, 1.5, 2**32):
    _raised, _draws = _draws_after_rejected(99, _bad)
    assert _raised, f"seed_all({_bad!r}) should raise"
    assert _draws == _expected_draws(99), (
        f"a rejected seed ({_bad!r}) must not re-seed any generator: check the argument first"
    )

# It returns nothing.
_returned = seed_all(7)
assert _returned is None, f"seed_all(7) should return None, got {_returned!r}"


@in_kernel
def _gpu_seeds(seed):
    """seed_all(seed) while torch.cuda.manual_seed_all (which seeds every GPU) only records its argument.

    CUDA is reported present meanwhile, so that seeding guarded by torch.cuda.is_available() runs on
    a grader without a GPU too. Returns the seeds every GPU was given, in order.
    """
    calls = []
    real = torch.cuda.manual_seed_all, torch.cuda.is_available
    torch.cuda.manual_seed_all = lambda s: calls.append(int(s))
    torch.cuda.is_available = lambda: True
    try:
        seed_all(seed)
    finally:
        torch.cuda.manual_seed_all, torch.cuda.is_available = real
    return calls


for _seed in (3, 2**32 - 1):
    _calls = _gpu_seeds(_seed)
    assert _calls and all(_c == _seed for _c in _calls), (
        f"seed_all({_seed}) should seed every GPU with {_seed} (torch.manual_seed or torch.cuda.manual_seed_all); "
        f"torch.cuda.manual_seed_all got {_calls}"
    )

# The library version must not be called, however it was imported.
call_without(seed_all, 5, forbidden=("mlcraft.utils.seed_everything",))
### END HIDDEN TESTS
print("seed_all: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-choose-amp-dtype", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 2 — Pick the mixed-precision dtype for a device (2 points)
#
# Automatic mixed precision (`torch.autocast`) runs most operations in a 16-bit float type.
# There are two, and they trade range for precision:
#
# | dtype | exponent bits | mantissa bits | largest finite value | smallest normal value |
# |-------|---------------|---------------|----------------------|-----------------------|
# | `torch.float16` | 5 | 10 | 65504 | about 6.1e-5 |
# | `torch.bfloat16` | 8 | 7 | about 3.4e38 (like `float32`) | about 1.2e-38 (like `float32`) |
#
# `bfloat16` has the range of `float32`, so nothing overflows that would not overflow anyway;
# `float16` overflows above 65504 and small gradients underflow to zero, so training in `float16`
# needs a gradient scaler. The rule used throughout this course:
#
# - `"cpu"` → `torch.bfloat16` (CPU autocast supports it well);
# - `"cuda"` → `torch.bfloat16` if the card supports it natively (`bf16_supported` is `True`,
#   Ampere or newer), otherwise `torch.float16`;
# - `"mps"` (Apple GPUs) → `torch.float16`;
# - any other device type → raise `ValueError`, with the device type in the message.
#
# Write `choose_amp_dtype(device_type: str, bf16_supported: bool) -> torch.dtype`.
# `device_type` is a device *type* such as `DEVICE.type`, never with an index like `"cuda:0"`.
# `bf16_supported` only matters for `"cuda"`. The function must not look at the hardware itself:
# the answer depends only on its two arguments.
#
# Do not call `mlcraft.utils.amp_dtype`, the course package's version.


# %% nbgrader={"grade": false, "grade_id": "choose-amp-dtype-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def choose_amp_dtype(device_type: str, bf16_supported: bool) -> torch.dtype:
    """The autocast dtype for ``device_type`` ("cpu", "cuda" or "mps").

    Raises:
        ValueError: for any other device type, naming it.
    """
    ### BEGIN SOLUTION
    if device_type == "cpu":
        return torch.bfloat16
    if device_type == "cuda":
        return torch.bfloat16 if bf16_supported else torch.float16
    if device_type == "mps":
        return torch.float16
    raise ValueError(f"no autocast dtype known for device type {device_type!r}; use 'cpu', 'cuda' or 'mps'")
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-choose-amp-dtype", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
assert choose_amp_dtype("cpu", False) == torch.bfloat16, "on the CPU, autocast should use torch.bfloat16"
assert choose_amp_dtype("cuda", True) == torch.bfloat16, "a CUDA card with native bf16 should use torch.bfloat16"
assert choose_amp_dtype("cuda", False) == torch.float16, "a CUDA card without native bf16 should use torch.float16"
assert choose_amp_dtype("mps", False) == torch.float16, "on Apple GPUs (mps), autocast should use torch.float16"

try:
    choose_amp_dtype("tpu", True)
except ValueError:
    pass
else:
    raise AssertionError("choose_amp_dtype('tpu', True) should raise ValueError")

# What this machine would use:
_bf16_here = DEVICE.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
print(f"On this machine (DEVICE = {DEVICE}), autocast would use {choose_amp_dtype(DEVICE.type, _bf16_here)}")
### BEGIN HIDDEN TESTS
_cases = {
    ("cpu", False): torch.bfloat16,
    ("cpu", True): torch.bfloat16,
    ("cuda", True): torch.bfloat16,
    ("cuda", False): torch.float16,
    ("mps", False): torch.float16,
    ("mps", True): torch.float16,
}
for (_device_type, _bf16), _want in _cases.items():
    _got = choose_amp_dtype(_device_type, _bf16)
    assert _got == _want, f"choose_amp_dtype({_device_type!r}, {_bf16}) should be {_want}, got {_got}"

assert choose_amp_dtype(DEVICE.type, _bf16_here) in (torch.bfloat16, torch.float16)
if DEVICE.type == "cpu":
    assert choose_amp_dtype(DEVICE.type, _bf16_here) == torch.bfloat16

for _unknown in ("tpu", "vulkan", "xla"):
    _message = None
    try:
        choose_amp_dtype(_unknown, True)
    except ValueError as _err:
        _message = str(_err)
    assert _message is not None, f"choose_amp_dtype({_unknown!r}, True) should raise ValueError"
    assert _unknown in _message, f"the ValueError for {_unknown!r} should name it, got: {_message}"

# The library version must not be called, however it was imported.
for _device_type in ("cpu", "cuda", "mps"):
    for _bf16 in (True, False):
        call_without(choose_amp_dtype, _device_type, _bf16, forbidden=("mlcraft.utils.amp_dtype",))
### END HIDDEN TESTS
print("choose_amp_dtype: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-logsumexp", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 3 — A numerically stable log-sum-exp (3 points)
#
# $$\operatorname{logsumexp}(x) = \log \sum_i e^{x_i}$$
#
# appears in every classifier's loss (cross-entropy), in attention and in probabilistic models.
# Written as it reads, `torch.log(torch.exp(x).sum(dim))`, it fails: in `float32`, `exp(89.0)`
# is already `inf`, and `exp(-104.0)` is already `0`, so the result is `inf` or `-inf` for
# inputs whose true answer is an ordinary number. The fix uses, for any constant $m$,
#
# $$\log \sum_i e^{x_i} = m + \log \sum_i e^{x_i - m}.$$
#
# With $m = \max_i x_i$, every exponent is $\le 0$ (no overflow) and the largest term is
# exactly $e^0 = 1$ (the sum cannot underflow to 0).
#
# Write `logsumexp(x: torch.Tensor, dim: int = -1) -> torch.Tensor` with the same result as
# `torch.logsumexp(x, dim)`:
#
# - `x` has any number of dimensions (at least one); `dim` is any valid dimension, negative
#   ones included. The result has `x`'s shape with `dim` removed (not kept as size 1), for
#   example shape `(4, 7)` with `dim=0` gives shape `(7,)`, and shape `(1, 7)` with `dim=1`
#   gives shape `(1,)`. Along `dim` there is at least one entry; the other dimensions may have
#   size 1 or 0 (shape `(0, 7)` with `dim=1` gives an empty result of shape `(0,)`).
# - The result has `x`'s dtype (`float32`, `float64` or `bfloat16`) and is on `x`'s device.
#   You may compute in a wider dtype and cast back, but never in a narrower one. The hidden
#   tests check the device with a tensor on PyTorch's `meta` device (a shape and a dtype, but no
#   values), so make every tensor you create from `x` (`torch.zeros_like(...)`,
#   `device=x.device`) and do not turn tensor values into Python values (`.item()`, `.tolist()`,
#   `if t.any():`).
# - It stays accurate for very large and very small inputs, such as `x + 1000`, `x - 1000`
#   and `x * 1e4`.
# - A slice that is entirely `-inf` (every term is $e^{-\infty} = 0$) gives `-inf`, not `NaN`.
#   You need not handle `+inf` or `NaN` inputs.
# - It does not modify `x`.
#
# Do not call `torch.logsumexp`, `torch.special.logsumexp` or any softmax or log-softmax
# function (`torch.softmax`, `torch.nn.functional.softmax`, `torch.log_softmax`,
# `torch.nn.functional.log_softmax`), in any spelling, including tensor methods such as
# `x.logsumexp(...)`. The hidden tests check this.


# %% nbgrader={"grade": false, "grade_id": "logsumexp-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def logsumexp(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``log(sum(exp(x), dim))`` computed without overflow or underflow; ``dim`` is removed."""
    ### BEGIN SOLUTION
    m = x.amax(dim=dim, keepdim=True)
    # A slice of only -inf has max -inf, and -inf - (-inf) is NaN: shift such slices by 0.
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    return (m + torch.log(torch.exp(x - m).sum(dim=dim, keepdim=True))).squeeze(dim)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-logsumexp", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
_g = torch.Generator().manual_seed(0)
x = torch.randn(4, 7, generator=_g).to(DEVICE)

out = logsumexp(x)
assert out.shape == (4,), f"logsumexp of shape (4, 7) over dim=-1 should have shape (4,), got {tuple(out.shape)}"
assert_close(out, torch.logsumexp(x, dim=-1), rtol=1e-5, atol=1e-5, check_device=True, msg="logsumexp(x) for float32 x")
assert_close(
    logsumexp(x, dim=1), torch.logsumexp(x, dim=1), rtol=1e-5, atol=1e-5, check_device=True, msg="logsumexp(x, dim=1)"
)

x64 = x.double()
assert_close(
    logsumexp(x64),
    torch.logsumexp(x64, dim=-1),
    rtol=1e-9,
    atol=1e-9,
    check_device=True,
    msg="logsumexp(x) for float64 x",
)

# Large inputs: exp(x + 1000) overflows float32, the log-sum-exp does not.
big = logsumexp(x + 1000)
assert torch.isfinite(big).all(), f"logsumexp(x + 1000) should be finite, got {big}"
assert_close(big, torch.logsumexp(x + 1000, dim=-1), rtol=1e-5, atol=1e-5, check_device=True, msg="logsumexp(x + 1000)")
### BEGIN HIDDEN TESTS
_forbidden_lse = (
    "torch.logsumexp",
    "torch.special.logsumexp",
    "torch.softmax",
    "torch.nn.functional.softmax",
    "torch.special.softmax",
    "torch.log_softmax",
    "torch.nn.functional.log_softmax",
    "torch.special.log_softmax",
)


def _check_lse(t, dim, rtol, atol, what):
    t_before = t.clone()
    got = call_without(logsumexp, t, dim, forbidden=_forbidden_lse)
    assert torch.equal(t, t_before), f"{what}: logsumexp must not modify its input"
    want = torch.logsumexp(t.double(), dim=dim).to(t.dtype)
    assert isinstance(got, torch.Tensor), f"{what}: logsumexp should return a tensor, got {type(got).__name__}"
    assert got.shape == want.shape, (
        f"{what}: expected shape {tuple(want.shape)} (dim {dim} removed), got {tuple(got.shape)}"
    )
    assert_close(got, want, rtol=rtol, atol=atol, check_device=True, msg=what)


_f32 = {"rtol": 1e-5, "atol": 1e-5}
_check_lse(x, -1, what="float32, dim=-1", **_f32)
_check_lse(x, 0, what="float32, dim=0", **_f32)
_check_lse(x, -2, what="float32, dim=-2", **_f32)
_check_lse(x64, 0, rtol=1e-9, atol=1e-9, what="float64, dim=0")

# Extreme values.
_check_lse(x + 1000, -1, what="x + 1000", **_f32)
_check_lse(x - 1000, -1, what="x - 1000 (exp underflows to 0)", **_f32)
_check_lse(x * 1e4, -1, what="x * 1e4", **_f32)
_check_lse(x * 1e4, 0, what="x * 1e4, dim=0", **_f32)
_check_lse(x64 * 1e6, -1, rtol=1e-9, atol=1e-9, what="float64 x * 1e6")
_check_lse(torch.full((3, 5), 88.0, device=DEVICE), -1, what="every entry 88.0", **_f32)

# Slices that are entirely -inf give -inf; partly -inf slices ignore the -inf entries.
_inf = x.clone()
_inf[1] = float("-inf")
_inf[2, :4] = float("-inf")
_res = call_without(logsumexp, _inf, forbidden=_forbidden_lse)
assert not torch.isnan(_res).any(), f"logsumexp of a row of only -inf should be -inf, not NaN; got {_res}"
assert _res[1].item() == float("-inf"), f"logsumexp of a row of only -inf should be -inf, got {_res[1].item()}"
_check_lse(_inf, -1, what="rows with -inf entries", **_f32)
_check_lse(_inf, 0, what="columns with -inf entries, dim=0", **_f32)
_check_lse(
    torch.full((2, 3), float("-inf"), device=DEVICE, dtype=torch.float64),
    0,
    rtol=1e-9,
    atol=1e-9,
    what="all -inf, float64",
)

# 3-D input, every dim.
_x3 = torch.randn(2, 3, 5, generator=_g).to(DEVICE) * 30
for _d in (0, 1, 2, -1, -2, -3):
    _check_lse(_x3, _d, what=f"shape (2, 3, 5), dim={_d}", **_f32)

# 1-D input.
_check_lse(torch.randn(11, generator=_g).to(DEVICE), 0, what="1-D input", **_f32)

# bfloat16: compared with the float64 answer rounded to bfloat16.
_xb = (torch.randn(6, 16, generator=_g) * 3).to(DEVICE, torch.bfloat16)
_check_lse(_xb, -1, rtol=2e-2, atol=2e-2, what="bfloat16, dim=-1")
_check_lse(_xb, 0, rtol=2e-2, atol=2e-2, what="bfloat16, dim=0")
_check_lse(_xb + 500, -1, rtol=2e-2, atol=2e-2, what="bfloat16, x + 500")
# bfloat16 beyond float16's range (65504): exp of these overflows any dtype without the shift.
_check_lse(_xb * 1e30, -1, rtol=2e-2, atol=2e-2, what="bfloat16, x * 1e30")
_check_lse(x * 1e30, 0, what="float32, x * 1e30, dim=0", **_f32)

# Size-1 and empty dimensions: only `dim` is removed, a size-1 dimension that is not `dim` stays.
_check_lse(torch.randn(1, 7, generator=_g).to(DEVICE), 1, what="shape (1, 7), dim=1", **_f32)
_check_lse(torch.randn(1, 7, generator=_g).to(DEVICE), -1, what="shape (1, 7), dim=-1", **_f32)
_check_lse(torch.randn(1, 7, generator=_g).to(DEVICE), 0, what="shape (1, 7), dim=0 (a size-1 slice)", **_f32)
_check_lse(torch.randn(4, 1, generator=_g).to(DEVICE), 1, what="shape (4, 1), dim=1", **_f32)
_check_lse(torch.randn(2, 1, 3, generator=_g).to(DEVICE), 2, what="shape (2, 1, 3), dim=2", **_f32)
_check_lse(torch.randn(1, generator=_g).to(DEVICE), 0, what="shape (1,), dim=0", **_f32)
_check_lse(torch.randn(0, 7, generator=_g).to(DEVICE), 1, what="shape (0, 7), dim=1 (empty result)", **_f32)
_check_lse(torch.randn(3, 0, 5, generator=_g).to(DEVICE), -1, what="shape (3, 0, 5), dim=-1", **_f32)

# The device: on the meta device (no data), the result must stay there with the right shape.
_meta = call_without(logsumexp, torch.empty(3, 1, 5, device="meta"), 2, forbidden=_forbidden_lse)
assert _meta.device.type == "meta", f"logsumexp of a meta tensor (3, 1, 5) should stay on meta, got {_meta.device}"
assert _meta.shape == (3, 1), (
    f"logsumexp of a meta tensor (3, 1, 5) over dim=2 should be (3, 1), got {tuple(_meta.shape)}"
)
assert _meta.dtype == torch.float32, f"logsumexp of a float32 meta tensor should be float32, got {_meta.dtype}"
### END HIDDEN TESTS
print("logsumexp: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-softmax", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 4 — A numerically stable softmax (3 points)
#
# $$\operatorname{softmax}(x)_i = \frac{e^{x_i}}{\sum_j e^{x_j}}$$
#
# turns scores into probabilities. Written as it reads, it returns `inf / inf = NaN` as soon as
# one score is above about 88.7 in `float32`. Shifting by a constant does not change the
# result, $\operatorname{softmax}(x) = \operatorname{softmax}(x - m)$, so subtract the maximum
# first, as in Task 3.
#
# Write `softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor` with the same result as
# `torch.softmax(x, dim)`:
#
# - `x` has any number of dimensions (at least one); `dim` is any valid dimension, negative
#   ones included. The result has `x`'s shape, dtype (`float32`, `float64` or `bfloat16`) and
#   device, and sums to 1 along `dim`. Along `dim` there is at least one entry; the other
#   dimensions may have size 1 or 0 (then the result is empty too). As in Task 3, the hidden
#   tests check the device with a `meta` tensor, which has no values to read.
# - It stays accurate for large inputs such as `x + 1000` and `x * 1e4` (no `NaN`, no `inf`).
# - An entry equal to `-inf` gets probability exactly `0` (a masked position, as in
#   attention), as long as its slice has at least one finite entry. A slice that is entirely
#   `-inf` has no defined softmax: the tests do not use one.
# - It does not modify `x`.
#
# Do not call any softmax or log-softmax function (`torch.softmax`, `torch.nn.functional.softmax`,
# `torch.special.softmax`, `torch.log_softmax`, `torch.nn.functional.log_softmax`,
# `torch.special.log_softmax`, or tensor methods such as `x.softmax(...)`), nor
# `torch.logsumexp` / `torch.special.logsumexp`. Calling **your own** `logsumexp` from Task 3
# is allowed. The hidden tests check this.


# %% nbgrader={"grade": false, "grade_id": "softmax-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``exp(x) / sum(exp(x), dim)`` computed without overflow; same shape as ``x``."""
    ### BEGIN SOLUTION
    e = torch.exp(x - x.amax(dim=dim, keepdim=True))
    return e / e.sum(dim=dim, keepdim=True)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-softmax", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
_g = torch.Generator().manual_seed(1)
x = torch.randn(4, 7, generator=_g).to(DEVICE)

p = softmax(x)
assert p.shape == x.shape, f"softmax should keep the shape {tuple(x.shape)}, got {tuple(p.shape)}"
assert_close(p, torch.softmax(x, dim=-1), rtol=1e-5, atol=1e-6, check_device=True, msg="softmax(x) for float32 x")
assert_close(
    p.sum(dim=-1), torch.ones(4, device=DEVICE), rtol=0.0, atol=1e-5, msg="each row of softmax(x) should sum to 1"
)

x64 = x.double()
assert_close(
    softmax(x64), torch.softmax(x64, dim=-1), rtol=1e-9, atol=1e-12, check_device=True, msg="softmax(x) for float64 x"
)

# Large inputs: exp(x + 1000) overflows float32, the softmax does not.
p_big = softmax(x + 1000)
assert not torch.isnan(p_big).any(), f"softmax(x + 1000) should contain no NaN, got {p_big}"
assert_close(p_big, torch.softmax((x + 1000).double(), dim=-1).float(), rtol=2e-4, atol=1e-6, msg="softmax(x + 1000)")
### BEGIN HIDDEN TESTS
_forbidden_softmax = (
    "torch.softmax",
    "torch.nn.functional.softmax",
    "torch.special.softmax",
    "torch.log_softmax",
    "torch.nn.functional.log_softmax",
    "torch.special.log_softmax",
    "torch.logsumexp",
    "torch.special.logsumexp",
)


def _check_softmax(t, dim, rtol, atol, what):
    t_before = t.clone()
    got = call_without(softmax, t, dim, forbidden=_forbidden_softmax)
    assert torch.equal(t, t_before), f"{what}: softmax must not modify its input"
    assert isinstance(got, torch.Tensor), f"{what}: softmax should return a tensor, got {type(got).__name__}"
    assert got.shape == t.shape, f"{what}: softmax should keep the shape {tuple(t.shape)}, got {tuple(got.shape)}"
    assert not torch.isnan(got).any(), f"{what}: softmax returned NaN"
    want = torch.softmax(t.double(), dim=dim).to(t.dtype)
    assert_close(got, want, rtol=rtol, atol=atol, check_device=True, msg=what)
    sums = got.double().sum(dim=dim)
    assert_close(
        sums, torch.ones_like(sums), rtol=0.0, atol=max(atol, 1e-5) * t.shape[dim], msg=f"{what}: sums along dim {dim}"
    )


_f32 = {"rtol": 2e-4, "atol": 1e-6}
_check_softmax(x, -1, what="float32, dim=-1", **_f32)
_check_softmax(x, 1, what="float32, dim=1", **_f32)
_check_softmax(x, 0, what="float32, dim=0", **_f32)
_check_softmax(x, -2, what="float32, dim=-2", **_f32)
_check_softmax(x64, 0, rtol=1e-9, atol=1e-12, what="float64, dim=0")

# Extreme values.
_check_softmax(x + 1000, -1, what="x + 1000", **_f32)
_check_softmax(x + 1000, 0, what="x + 1000, dim=0", **_f32)
_check_softmax(x - 1000, -1, what="x - 1000 (exp underflows to 0)", **_f32)
_check_softmax(x * 1e4, -1, what="x * 1e4", **_f32)
_check_softmax(torch.full((3, 5), 100.0, device=DEVICE), -1, what="every entry 100.0", **_f32)

# Masked (-inf) entries get exactly 0; the other entries of their row still sum to 1.
_masked = x.clone()
_masked[0, :3] = float("-inf")
_masked[2, 1:] = float("-inf")
_pm = call_without(softmax, _masked, forbidden=_forbidden_softmax)
assert not torch.isnan(_pm).any(), f"softmax of a row with some -inf entries should have no NaN, got {_pm}"
assert (_pm[0, :3] == 0).all(), f"-inf entries should get probability exactly 0, got {_pm[0, :3]}"
assert (_pm[2, 1:] == 0).all(), f"-inf entries should get probability exactly 0, got {_pm[2, 1:]}"
assert_close(
    _pm[2, 0],
    torch.tensor(1.0, device=DEVICE),
    rtol=0.0,
    atol=1e-6,
    msg="the only finite entry of a row gets probability 1",
)
_check_softmax(_masked, -1, what="rows with -inf entries", **_f32)
_check_softmax(_masked.T.contiguous(), 0, what="columns with -inf entries, dim=0", **_f32)

# 3-D input, every dim.
_x3 = torch.randn(2, 3, 5, generator=_g).to(DEVICE) * 30
for _d in (0, 1, 2, -1, -2, -3):
    _check_softmax(_x3, _d, what=f"shape (2, 3, 5), dim={_d}", **_f32)

# 1-D input.
_check_softmax(torch.randn(11, generator=_g).to(DEVICE), 0, what="1-D input", **_f32)

# bfloat16: compared with the float64 answer rounded to bfloat16.
_xb = (torch.randn(6, 16, generator=_g) * 3).to(DEVICE, torch.bfloat16)
_check_softmax(_xb, -1, rtol=5e-2, atol=1e-2, what="bfloat16, dim=-1")
_check_softmax(_xb, 0, rtol=5e-2, atol=1e-2, what="bfloat16, dim=0")
# Near 500, bfloat16 values are 2 apart, so only finiteness is checked there.
_pb = call_without(softmax, _xb + 500, forbidden=_forbidden_softmax)
assert _pb.dtype == torch.bfloat16, f"softmax of a bfloat16 tensor should be bfloat16, got {_pb.dtype}"
assert torch.isfinite(_pb).all(), f"softmax of bfloat16 x + 500 should be finite, got {_pb}"
# bfloat16 beyond float16's range (65504), and float32 near its largest value.
_check_softmax(_xb * 1e30, -1, rtol=5e-2, atol=1e-2, what="bfloat16, x * 1e30")
_check_softmax(x * 1e30, 0, what="float32, x * 1e30, dim=0", **_f32)

# Size-1 and empty dimensions.
_check_softmax(torch.randn(1, 7, generator=_g).to(DEVICE), -1, what="shape (1, 7), dim=-1", **_f32)
_check_softmax(
    torch.randn(1, 7, generator=_g).to(DEVICE), 0, what="shape (1, 7), dim=0 (every slice has 1 entry)", **_f32
)
_check_softmax(torch.randn(4, 1, 3, generator=_g).to(DEVICE), 1, what="shape (4, 1, 3), dim=1", **_f32)
_check_softmax(torch.randn(1, generator=_g).to(DEVICE), 0, what="shape (1,), dim=0", **_f32)
_check_softmax(torch.randn(0, 7, generator=_g).to(DEVICE), 1, what="shape (0, 7), dim=1 (empty)", **_f32)

# The device: on the meta device (no data), the result must stay there with x's shape and dtype.
_meta = call_without(softmax, torch.empty(3, 1, 5, device="meta", dtype=torch.float64), 0, forbidden=_forbidden_softmax)
assert _meta.device.type == "meta", f"softmax of a meta tensor (3, 1, 5) should stay on meta, got {_meta.device}"
assert _meta.shape == (3, 1, 5), f"softmax of a meta tensor (3, 1, 5) should keep its shape, got {tuple(_meta.shape)}"
assert _meta.dtype == torch.float64, f"softmax of a float64 meta tensor should be float64, got {_meta.dtype}"
### END HIDDEN TESTS
print("softmax: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "wrap-up", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Wrap-up
#
# - Seed every generator a run draws from, and reject seeds that would be silently changed.
# - The right 16-bit dtype depends on the hardware: `bfloat16` keeps `float32`'s range,
#   `float16` keeps more precision but needs loss scaling.
# - Subtract the maximum before `exp`, and guard the case where the maximum itself is `-inf`.
#
# The course package has production versions of the first two: `mlcraft.utils.seed_everything`
# and `mlcraft.utils.amp_dtype`. Later modules use them.


# %% [markdown] nbgrader={"grade": false, "grade_id": "self-check", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Self-check
#
# 1. `isinstance(True, int)` is `True`. What would `seed_all(True)` do if you did not reject it, and
#    why is that worse than an error?
# 2. Python's `random.seed` accepts `2**32`; NumPy's `np.random.seed` does not. If `seed_all(2**32)`
#    seeded `random` first and only then called NumPy, in what state would it leave the generators?
# 3. A test calls `seed_all(0)` twice and checks that the draws after each call are equal. Which
#    wrong `seed_all` passes it, and what comparison catches it?
# 4. Why does `choose_amp_dtype` take `bf16_supported` as an argument instead of asking `torch.cuda`
#    itself?
# 5. A gradient entry is `1e-8`. What does it become in `float16`, and in `bfloat16`? What does a
#    `GradScaler` with scale 65536 change?
# 6. For `x = [1000.0, 1000.0]` in `float32`, what does `torch.log(torch.exp(x).sum())` return, and
#    what is the right answer?
# 7. A slice of `x` is entirely `-inf`. Why does subtracting its maximum give `NaN`? What is
#    `logsumexp` of that slice, and why does `softmax` have no answer there?
#
# <details><summary>Answers</summary>
#
# 1. It would seed every generator with 1. A caller who passed a flag by mistake would get a run that
#    looks deliberately seeded, with no error pointing at the mistake.
# 2. Half seeded: `random` re-seeded with `2**32`, NumPy and PyTorch as they were, and an exception
#    that suggests nothing happened. Checking the argument first leaves every generator untouched.
# 3. One that ignores its argument and always seeds with the same constant; also one that seeds only
#    the generators the test happens to draw from. Compare, for two different seeds `s`, the draws
#    of every generator with those after seeding each one directly with `s`.
# 4. Its answer then depends only on its arguments, so every case (CUDA with and without bf16, MPS,
#    CPU) can be tested on any machine, a CPU-only grader included. A function that asks the
#    hardware can only be tested for the hardware it runs on.
# 5. `0` in `float16`: its smallest positive value (a subnormal) is about `6e-8`. In `bfloat16` it
#    stays about `1e-8`, since the range reaches `1.2e-38`. Scaled by 65536, it is about `6.6e-4`, an
#    ordinary `float16` number; the scaler divides by 65536 again before the optimizer step.
# 6. `inf`: `exp` overflows `float32` above about 88.7, and the log of `inf` is `inf`. The right
#    answer is `1000 + ln 2 ≈ 1000.693`.
# 7. The maximum is `-inf`, and `-inf - (-inf)` is `NaN`, which then spreads through `exp`, the sum
#    and the log. Every term is `exp(-inf) = 0`, so `logsumexp` is `log 0 = -inf`, a proper value.
#    A softmax would be `0 / 0`: no weights summing to 1 exist. An `-inf` entry in a slice with a
#    finite maximum `m` gets `exp(-inf - m) = 0` exactly.
#
# </details>
