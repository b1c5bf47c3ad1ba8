# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Orientation
#
# Before any model: know your tools, your machine and your numbers. This lesson covers
#
# 1. how the course works (lessons, exercises, checking and grading);
# 2. what hardware you are on and what that means for precision;
# 3. reproducibility: what a seed fixes, what it does not, and what determinism costs;
# 4. floating-point formats: fp32, fp16, bf16, where each one breaks, and why autocast picks what it picks;
# 5. numerical stability: the softmax / log-sum-exp trick;
# 6. a checklist to run before every training job.
#
# Every claim comes with code you can run. Read the output and check it against the text.
#
# **You will be able to…**
#
# - check your work on an exercise with `mlcraft check`, and print the facts of your machine
#   (device, autocast dtype, thread count, versions) that every training log should start with;
# - seed every generator a run draws from (Python, NumPy, torch, generators you create, data-loader
#   workers, `PYTHONHASHSEED`), prove with a bitwise comparison that a run repeats, and use the
#   spread across seeds as the noise floor of a comparison;
# - name what a seed does not fix (summation order, thread count, hardware, nondeterministic
#   kernels), and measure what deterministic mode costs on your device before switching it on;
# - say where fp16 and bf16 overflow, underflow or lose precision, pick the autocast dtype for a
#   device, and decide when a `GradScaler` is needed;
# - keep running sums in fp32, and write softmax and log-sum-exp that do not overflow, checked
#   against PyTorch with a tolerance you state;
# - run the checklist before training: shapes and ranges of a batch, the loss at initialisation
#   against `ln C`, and one batch overfitted.
#
# **Prerequisites**: none from the course: this is the first lesson. Outside the course: Python
# (functions, exceptions, `subprocess` at reading level), NumPy, and PyTorch tensors, `nn.Module`
# and one training step (forward, loss, `backward()`, optimizer step) at the level of an
# introductory deep-learning course.
#
# **Time**: reading about 35 min; exercise `exercises/00_orientation` 45–60 min; running the whole
# notebook took 8 s on a 2-core CPU (its cells, under `pytest --nbval-lax` with one intra-op thread
# and two notebooks at a time); GPU: not measured.


# %%
# Set-up: on Colab, install the course package; everywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "mlcraft[course] @ git+https://github.com/mlcraft/mlcraft"], check=True)


# %% [markdown]
# ## 1. How the course works
#
# **Lessons** live in `course/`. Each lesson is a Jupyter notebook paired with a plain
# Python file (`NN_topic.py`, "py:percent" format) by [Jupytext](https://jupytext.readthedocs.io).
# Edit whichever you like: Jupytext keeps the two in sync, and the `.py` file gives clean diffs.
#
# **Exercises** live in `exercises/NN_topic/NN_topic.ipynb`. Each one has graded cells: you write
# the code, tests check it. Check your work as you go:
#
# ```bash
# mlcraft check exercises/00_orientation/00_orientation.ipynb
# ```
#
# This runs your notebook top to bottom in a fresh kernel and lists every graded cell as pass or
# fail, with its points, scored the way the grader scores it: an error, or anything written to
# stderr, in a test cell scores 0. The visible tests are there to help you; the instructor's
# grading also runs hidden tests, so passing `check` is necessary, not sufficient. Test the edge
# cases yourself.
#
# **Set-up check.** `mlcraft doctor` prints your Python and package versions, device, AMP dtype
# and CPU threads, and whether the Jupytext and nbgrader extensions are enabled. Run it once after
# installing, and again whenever something looks off.
#
# **Colab.** Open a notebook in Colab, pick *Runtime → Change runtime type → GPU* (T4 or
# better), then run the set-up cell at the top: it installs the `mlcraft` package. Everything
# else runs unchanged: the code asks which device it is on instead of assuming one.
#
# **Classroom grading.** An instructor collects submissions as
# `SUBMISSIONS_DIR/<student>/<module>/<module>.ipynb` and runs
#
# ```bash
# mlcraft grade SUBMISSIONS_DIR
# ```
#
# which runs the visible and hidden tests for every student and module and writes `grades.csv`,
# `report.json` and an HTML feedback page per student.
#
# **Modules.**
#
# | # | module | # | module |
# |---|---|---|---|
# | 00 | `00_orientation` (this one) | 05 | `05_tabular` |
# | 01 | `01_training_loops` | 06 | `06_data` |
# | 02 | `02_attention` | 07 | `07_mlops` |
# | 03 | `03_detection` | 08 | `08_debugging` |
# | 04 | `04_nlp` | 09 | `09_clean_code` |


# %%
import math
import os
import random
import statistics
import subprocess
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from mlcraft.utils import amp_dtype, best_device, deterministic, needs_grad_scaler, seed_everything

plt.rcParams.update({"axes.grid": True, "grid.alpha": 0.3})  # light grids help read log-scale plots


# %% [markdown]
# ## 2. Your machine
#
# Print this at the top of every training log. Half of "it works on my machine" is
# a different device, dtype or library version.
#
# **Predict, then run.** Which device will `best_device()` pick on the machine you are using? Will
# PyTorch's intra-op thread count equal the number of CPU cores that `os.cpu_count()` reports?


# %%
device = best_device()
low_dtype = amp_dtype(device)

print(f"python          {sys.version.split()[0]}")
print(f"torch           {torch.__version__}")
print(f"device          {device}")
if device.type == "cuda":
    print(f"  gpu           {torch.cuda.get_device_name(device)}")
    print(f"  capability    {torch.cuda.get_device_capability(device)}")
print(f"autocast dtype  {low_dtype}")
print(f"GradScaler?     {needs_grad_scaler(low_dtype)}")
print(f"CPU cores       {os.cpu_count()}")
print(f"torch threads   {torch.get_num_threads()} (intra-op)")


# %% [markdown]
# `best_device()` tries CUDA, then Apple's MPS, then falls back to the CPU. `amp_dtype(device)`
# is the low-precision dtype to use with autocast on that device; section 4 explains the
# choice. The thread count matters more than it looks: PyTorch splits CPU ops across threads,
# and a different thread count can change the order of a floating-point sum (section 3.3).


# %% [markdown]
# ## 3. Reproducibility
#
# A run is reproducible when the same code, data and seed give the same numbers. You need
# that to debug ("did my change fix it, or did I get a lucky seed?") and to compare
# experiments fairly.
#
# ### 3.1 Same seed, same run
#
# Here is a tiny regression job: an MLP with dropout trained by SGD on minibatches drawn at
# random. Randomness enters three times: weight init, dropout masks and batch sampling. All three
# draw from torch's global generator. The data set itself is built from its own
# `torch.Generator`, so it is the same whatever the global seed.
#
# **Predict, then run.** Three runs: seed 0, seed 1, seed 0 again. Which pairs will be bitwise
# equal, and will the two different seeds end at visibly different losses?


# %%
def make_data(n=512, d=16, seed=0):
    """A fixed regression data set; its own generator keeps it independent of the global seed."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    w = torch.randn(d, 1, generator=g)
    y = X @ w + 0.1 * torch.randn(n, 1, generator=g)
    return X, y


X_reg, y_reg = make_data()


def train_run(steps=60, batch_size=32, lr=0.02):
    """Train a small MLP; return the loss at every step as one tensor."""
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 1))  # random init
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(X_reg), (batch_size,))  # random batch
        loss = nn.functional.mse_loss(model(X_reg[idx]), y_reg[idx])  # random dropout mask inside
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return torch.stack(losses)


torch.manual_seed(0)
run_a = train_run()
torch.manual_seed(1)
run_b = train_run()
torch.manual_seed(0)
run_c = train_run()

print(f"seed 0 vs seed 1: bitwise equal = {torch.equal(run_a, run_b)}, final losses {run_a[-1]:.4f} vs {run_b[-1]:.4f}")
print(f"seed 0 vs seed 0: bitwise equal = {torch.equal(run_a, run_c)}")
torch.testing.assert_close(run_a, run_c, rtol=0, atol=0, msg="same seed must give bitwise-identical losses")
assert not torch.equal(run_a, run_b), "different seeds should give different runs"


# %% [markdown]
# `rtol=0, atol=0` asks for bitwise equality: on one machine, one PyTorch version, one thread
# count, a seeded CPU run reproduces exactly.
#
# The flip side matters just as much. Different seeds give different curves, and the spread
# between seeds is the noise floor of any comparison you make.
#
# **Predict, then run.** Six seeds, the same code and data. Will the spread of the final loss
# across seeds be a rounding-sized 0.1% of the loss, or a visible fraction of it?


# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
finals = []
for seed in range(6):
    torch.manual_seed(seed)
    losses = train_run()
    finals.append(losses[-10:].mean().item())
    ax.plot(losses.numpy(), lw=1.2, label=f"seed {seed}")
ax.set_yscale("log")
ax.set_xlabel("step")
ax.set_ylabel("training MSE (log scale)")
ax.set_title("Same code, same data, six seeds")
ax.legend(ncol=3, fontsize=8)
plt.tight_layout()
plt.show()
print(f"loss over the last 10 steps: {statistics.mean(finals):.3f} ± {statistics.stdev(finals):.3f} across seeds")


# %% [markdown]
# If a change improves the loss by less than that spread, one run per side proves nothing.
# Run a few seeds each.
#
# ### 3.2 What a seed covers, one generator at a time
#
# Python's `random`, NumPy and PyTorch each keep their **own** generator. Seeding one leaves the
# others alone.
#
# **Predict, then run.** After `torch.manual_seed(0)` twice, which of the three draws repeat?


# %%
def draw():
    return random.random(), np.random.rand(), torch.rand(1).item()


torch.manual_seed(0)
first = draw()
torch.manual_seed(0)
second = draw()
for name, u, v in zip(["random", "numpy", "torch"], first, second, strict=True):
    print(f"{name:7} {u:.6f}  {v:.6f}  {'same' if u == v else 'DIFFERENT'}")


# %% [markdown]
# Only torch repeats. A data pipeline that augments with `random` or `np.random` is still
# random. The fix by hand:


# %%
def seed_all(seed):
    """Naive version: seed the three global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


seed_all(0)
first = draw()
seed_all(0)
second = draw()
print("after seed_all:", first == second)
torch.testing.assert_close(torch.tensor(first), torch.tensor(second), rtol=0, atol=0, msg="seed_all must reset all three")


# %% [markdown]
# ### 3.3 What a seed does not cover
#
# **String hashing.** Python randomises `hash(str)` per process, so the iteration order of a
# `set` of strings changes from run to run. Build a vocabulary with `sorted(set(words))`,
# never `list(set(words))`. Watch four fresh interpreters.
#
# **Predict, then run.** Two interpreters start with `PYTHONHASHSEED` unset and two with it set
# to 0. Which lines will agree with each other?


# %%
snippet = "print(hash('mlcraft') % 10_000, list({'cat', 'dog', 'emu', 'fox', 'gnu', 'yak'}))"


def fresh_python(hash_seed):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    if hash_seed is not None:
        env["PYTHONHASHSEED"] = hash_seed
    out = subprocess.run([sys.executable, "-c", snippet], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


unseeded = [fresh_python(None) for _ in range(2)]
seeded = [fresh_python("0") for _ in range(2)]
for label, out in zip(["unset", "unset", "=0", "=0"], unseeded + seeded, strict=True):
    print(f"PYTHONHASHSEED {label:6}{out}")
assert seeded[0] == seeded[1], "PYTHONHASHSEED=0 must fix hashes and set order"


# %% [markdown]
# `PYTHONHASHSEED` is read when an interpreter **starts**. Setting `os.environ["PYTHONHASHSEED"]`
# inside a running process changes nothing for that process; it only reaches processes
# started afterwards (spawned data-loader workers, distributed ranks, subprocesses). For the
# main process, set it in the shell or job spec that launches it.
#
# **Data-loader workers.** With `num_workers > 0`, each worker is a separate process. PyTorch
# seeds `random`, `torch` and NumPy's global generator in every worker from a base seed it draws
# in the main process, so seeding torch covers those. It cannot reach a generator *you* created
# and stored on the data set: every worker gets an identical copy of it. The demo below uses
# forked workers, so it runs on Linux (Colab included) and is skipped elsewhere.
#
# **Predict, then run.** Six items, two workers, a generator created in `__init__`. Which of the
# six numbers in the first line will be equal to each other?


# %%
class NoisyDataset(torch.utils.data.Dataset):
    """Each item gets a random 'augmentation' from a generator created once, in __init__."""

    def __init__(self, n=6):
        self.n = n
        self.rng = np.random.default_rng(0)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return int(self.rng.integers(0, 1000))


def reseed_worker(worker_id):
    """worker_init_fn: give each worker its own stream, derived from PyTorch's per-worker seed."""
    info = torch.utils.data.get_worker_info()
    info.dataset.rng = np.random.default_rng(info.seed)  # info.seed = base seed + worker id


def draws(worker_init_fn=None, seed=0):
    loader = torch.utils.data.DataLoader(
        NoisyDataset(),
        batch_size=None,
        num_workers=2,
        worker_init_fn=worker_init_fn,
        generator=torch.Generator().manual_seed(seed),  # fixes the base seed (and the shuffle order, if any)
        multiprocessing_context="fork",
    )
    return list(loader)


if sys.platform.startswith("linux"):
    print("rng copied into workers:  ", draws())
    fixed, again = draws(reseed_worker), draws(reseed_worker)
    print("reseeded in worker_init_fn:", fixed)
    print("same again, same seed:     ", again)
    assert fixed == again, "worker streams should be reproducible from the loader's generator"
else:
    print("skipped: this demo uses fork()-ed workers (Linux only)")


# %% [markdown]
# With two workers, items 0, 2, 4 go to worker 0 and items 1, 3, 5 to worker 1. In the first line,
# neighbours come in equal pairs: both workers drew the same "random" numbers. Your augmentations
# would be correlated across workers and you would never notice from the loss. Reseeding from
# `get_worker_info().seed` gives each worker its own stream, and the loader's `generator=` makes
# that stream reproducible.
#
# **Floating-point order.** Float addition is not associative.
#
# **Predict, then run.** Are the two bracketings of `0.1 + 0.2 + 0.3` equal? And the float32 sum
# of a million numbers, added in two different orders: bitwise equal, close, or far apart?


# %%
print(f"(0.1 + 0.2) + 0.3 = {(0.1 + 0.2) + 0.3!r}")
print(f"0.1 + (0.2 + 0.3) = {0.1 + (0.2 + 0.3)!r}")

g = torch.Generator().manual_seed(0)
v = torch.randn(1_000_000, generator=g)
s_in_order = v.sum()
s_shuffled = v[torch.randperm(len(v), generator=g)].sum()
print(f"float32 sum, two orders: {s_in_order.item():.8f} vs {s_shuffled.item():.8f}")
torch.testing.assert_close(s_in_order, s_shuffled, rtol=1e-4, atol=1e-3, msg="same numbers, different order: close")


# %% [markdown]
# The two sums are close but usually not bitwise equal. Anything that changes the
# reduction order changes the last bits: a different thread count, a different GPU, a new
# library version, or a GPU kernel that accumulates with atomic adds (whose order depends on
# thread scheduling). Those last bits then grow over thousands of training steps.
#
# Summary of what a seed does and does not fix:
#
# | source of randomness | fixed by |
# |---|---|
# | `random`, `np.random.*`, `torch.*` global generators | seeding each one (`seed_all` above) |
# | generators you create (`np.random.default_rng`, `torch.Generator`) | seed them explicitly; reseed per worker |
# | string hashing, `set` order | `PYTHONHASHSEED`, set before the interpreter starts |
# | data-loader shuffle order and worker seeds | `DataLoader(generator=torch.Generator().manual_seed(s))` |
# | nondeterministic kernels (atomics, cuDNN autotuning) | deterministic mode, next section |
# | hardware, thread count, library versions | nothing: log them |
# | file listing order (`os.listdir`, `glob`) | `sorted(...)` |
#
# ### 3.4 The library version
#
# `mlcraft.utils.seed_everything` does what `seed_all` does, also exports `PYTHONHASHSEED` for
# child processes, validates its input, and returns the seed so you can log it.
#
# **Predict, then run.** `seed_everything` rejects `3.7`. What does `torch.manual_seed(3.7)` do
# instead: raise, or give the same draws as some other seed?


# %%
seed = seed_everything(42)
first = draw()
seed_everything(42)
second = draw()
print(f"seed={seed}  PYTHONHASHSEED={os.environ['PYTHONHASHSEED']}  draws repeat: {first == second}")
torch.testing.assert_close(torch.tensor(first), torch.tensor(second), rtol=0, atol=0, msg="seed_everything must reset all generators")

for bad in (3.7, -1):
    try:
        seed_everything(bad)
    except (TypeError, ValueError) as err:
        print(f"seed_everything({bad!r}) -> {type(err).__name__}: {err}")

torch.manual_seed(3.7)
a_ = torch.rand(3)
torch.manual_seed(3)
b_ = torch.rand(3)
print(f"torch.manual_seed(3.7) gives the same draws as torch.manual_seed(3): {torch.equal(a_, b_)}")


# %% [markdown]
# Why reject `3.7`? The last line shows it: `torch.manual_seed` quietly truncates a float seed,
# so `3.7` and `3.2` are "different" seeds that give the same run, while `np.random.seed(3.7)`
# raises. A loud error up front beats a silent collision.
#
# ### 3.5 What determinism costs
#
# Seeding fixes the random numbers. It does not fix kernels that are nondeterministic by design.
# On CUDA, cuDNN autotuning (`cudnn.benchmark = True`) may choose a different convolution
# algorithm each run, and some backward passes accumulate with atomic adds. Deterministic mode
# turns autotuning off and swaps in atomics-free kernels; `mlcraft.utils.deterministic()` is a
# context manager that switches it on and restores the previous settings on exit.
#
# Let's time a small conv net's forward and backward pass with the mode on and off. Each
# measurement is repeated and interleaved, and we keep the minimum, the run least disturbed by
# everything else on the machine.
#
# **Predict, then run.** On your device, will deterministic mode be slower, and by roughly what
# factor: 1×, 2× or 10×?


# %%
class TinyConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(8, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.head(x.mean(dim=(2, 3)))  # global average pool


torch.manual_seed(0)
convnet = TinyConvNet().to(device)
xb = torch.randn(32, 8, 32, 32, device=device)
yb = torch.randn(32, 10, device=device)


def sync():
    if device.type == "cuda":
        torch.cuda.synchronize()


def workload(steps=2):
    for _ in range(steps):
        convnet.zero_grad(set_to_none=True)
        nn.functional.mse_loss(convnet(xb), yb).backward()
    sync()


def time_workload(enabled):
    with deterministic(enabled):
        workload(1)  # warm-up: lets cuDNN autotune when benchmark mode is on
        t0 = time.perf_counter()
        workload()
        return time.perf_counter() - t0


times = {False: [], True: []}
for _ in range(10):
    for enabled in (False, True):
        times[enabled].append(time_workload(enabled))
t_fast, t_det = min(times[False]), min(times[True])
print(f"device {device}: default {t_fast * 1e3:.1f} ms, deterministic {t_det * 1e3:.1f} ms, ratio {t_det / t_fast:.2f}x")


# %% [markdown]
# On a CPU the ratio is usually close to 1 (within measurement noise): most CPU kernels are
# deterministic already. If you see a large ratio either way on a CPU, something else was
# competing for the cores while it ran; run the cell again. On a GPU the ratio can be much larger
# for convolution-heavy models, because the fastest cuDNN algorithms and the atomic-add backward
# kernels are exactly what deterministic mode gives up. Measure on your own model before deciding; a common policy is deterministic mode for
# debugging and tests, and the fast mode for long training runs (logging the seed either way).
#
# Deterministic mode has two more effects you can see on any device. Ops with no deterministic
# implementation raise instead of silently varying, and freshly allocated memory is filled with
# NaN, so reading uninitialised memory cannot go unnoticed:


# %%
with deterministic():
    print("torch.empty(3) ->", torch.empty(3))
    try:
        torch.zeros(4).put_(torch.tensor([0, 2]), torch.tensor([1.0, 2.0]))
    except RuntimeError as err:
        print("put_ ->", str(err).split(",")[0])
print("after the block, deterministic algorithms on:", torch.are_deterministic_algorithms_enabled())


# %% [markdown]
# More ops raise on CUDA only. For example, with a GPU:
#
# ```python
# with deterministic():
#     torch.histc(torch.randn(1000, device="cuda"), bins=10)
# ```
#
# ```text
# RuntimeError: _histc_cuda with floating point input does not have a deterministic implementation,
# but you set 'torch.use_deterministic_algorithms(True)'. You can turn off determinism just for this
# operation, or you can use the 'warn_only=True' option, if that's acceptable for your application. ...
# ```
#
# The exact wording varies between versions. The list lives in the docstring of
# `torch.use_deterministic_algorithms`. Escape hatches: compute that op on the CPU, replace it,
# or use `torch.use_deterministic_algorithms(True, warn_only=True)` to log a warning instead.
# (On CUDA, deterministic matmuls also need `CUBLAS_WORKSPACE_CONFIG=:4096:8` set before the
# first cuBLAS call; `set_deterministic` sets it if it is missing.)


# %% [markdown]
# ## 4. Devices and dtypes
#
# Mixed precision is the cheapest speed-up in deep learning: half the memory traffic, and
# much faster matrix units on GPUs. It is also where the numbers start to bite. First, the
# formats.
#
# **Predict, then run.** Of the two 16-bit formats, which one has the larger maximum value, and
# which one has the smaller `eps` (the finer precision)?


# %%
print(f"{'dtype':15}{'bits':>5}{'exp':>5}{'mant':>6}{'max':>12}{'smallest normal':>17}{'eps':>11}{'digits':>8}")
for dt in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
    fi = torch.finfo(dt)
    mant = round(-math.log2(fi.eps))
    exp = fi.bits - 1 - mant
    print(f"{dt!s:15}{fi.bits:>5}{exp:>5}{mant:>6}{fi.max:>12.3g}{fi.smallest_normal:>17.3g}{fi.eps:>11.3g}{-math.log10(fi.eps):>8.1f}")

torch.testing.assert_close(torch.finfo(torch.bfloat16).max, torch.finfo(torch.float32).max, rtol=1e-2, atol=0, msg="bf16 keeps fp32's range")


# %% [markdown]
# Both 16-bit formats trade away precision, in different places:
#
# - **fp16** keeps 10 mantissa bits (about 3 decimal digits) but only 5 exponent bits: the largest
#   value is 65504, and normal numbers stop at 6e-5.
# - **bf16** is fp32 with the mantissa cut to 7 bits: the same range as fp32 (up to 3e38), but
#   only about 2 decimal digits.
#
# Round-tripping numbers from 1e-8 to 1e6 through each format and measuring the relative error
# shows both limits at once:


# %%
x64 = torch.logspace(-8, 6, 3000, dtype=torch.float64)
styles = {torch.float16: "tab:red", torch.bfloat16: "tab:blue", torch.float32: "tab:green"}

fig, ax = plt.subplots(figsize=(8, 4.2))
for dt, color in styles.items():
    rel = ((x64.to(dt).to(torch.float64) - x64).abs() / x64).numpy()
    rel[~np.isfinite(rel) | (rel == 0)] = np.nan  # exact (0) or overflowed (inf): nothing to draw on a log axis
    ax.plot(x64.numpy(), rel, ".", ms=1.5, color=color, label=f"{str(dt).removeprefix('torch.')}")
    ax.axhline(torch.finfo(dt).eps / 2, color=color, lw=0.8, ls="--")
fp16 = torch.finfo(torch.float16)
ax.axvspan(1e-8, fp16.smallest_normal, color="tab:red", alpha=0.08)
ax.axvspan(fp16.max, 1e6, color="tab:red", alpha=0.2)
ax.text(1.3e-8, 2e-7, "fp16 subnormal:\nprecision drains away,\nthen 100% error (→ 0)", fontsize=8, color="tab:red")
ax.text(8e4, 3e-6, "fp16\n→ inf", fontsize=8, color="tab:red")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlim(1e-8, 1e6)
ax.set_xlabel("value x")
ax.set_ylabel("relative rounding error |fl(x) − x| / x")
ax.set_title("Rounding error by format (dashed: eps/2, the worst case for normal numbers)")
ax.legend(loc="center", bbox_to_anchor=(0.55, 0.43), ncol=3, markerscale=6)
plt.tight_layout()
plt.show()


# %% [markdown]
# Inside its normal range, each format has a constant worst-case relative error of eps/2, which
# is independent of magnitude. That is the whole point of floating point. fp16 falls off both
# ends: below 6e-5 the error grows until values round to zero, and above 65504 they become `inf`.
# bf16 is never more precise than fp16 in fp16's normal range, but it never runs out of range.
#
# Concretely. **Predict, then run.** What will fp16 and bf16 make of 70000, of `1 + 1e-3` and of
# `1e-8`?


# %%
probe = torch.tensor([70000.0, 1.0 + 1e-3, 1e-4, 1e-6, 1e-8], dtype=torch.float64)
print(f"{'value':>10}{'fp16':>14}{'bf16':>14}{'fp32':>14}")
for val in probe:
    row = [val.to(dt).item() for dt in (torch.float16, torch.bfloat16, torch.float32)]
    print(f"{val.item():>10.4g}" + "".join(f"{r:>14.6g}" for r in row))

assert torch.isinf(torch.tensor(70000.0).half()), "70000 overflows fp16"
torch.testing.assert_close(torch.tensor(1e-8).half().float(), torch.tensor(0.0), rtol=0, atol=0, msg="1e-8 underflows fp16")
torch.testing.assert_close(torch.tensor(1e-8).bfloat16().float(), torch.tensor(1e-8), rtol=1e-2, atol=0, msg="bf16 keeps 1e-8")


# %% [markdown]
# `1 + 1e-3` shows the precision side: bf16 cannot tell it from 1.0, while fp16 can.
#
# Underflow matters most for **gradients**. They are often tiny, and in fp16 a gradient below
# about 3e-8 becomes exactly zero: that weight stops learning, with no error message. Let's take a
# made-up but typical spread of gradient magnitudes (log-normal, centred on 1e-6) and see what
# survives.
#
# **Predict, then run.** Roughly what share of these gradients becomes exactly zero in fp16: under
# 1%, about 5%, or over 20%? And after multiplying them by 2¹⁶ first? And in bf16?


# %%
g = torch.Generator().manual_seed(0)
grads = 10 ** (-6 + 1.5 * torch.randn(200_000, generator=g))  # |gradient| values, float32
scale = 2.0**16  # a typical loss scale


def lost_fraction(values):
    v16 = values.half()
    return (v16 == 0).float().mean().item(), torch.isinf(v16).float().mean().item()


zero_raw, inf_raw = lost_fraction(grads)
zero_scaled, inf_scaled = lost_fraction(grads * scale)
zero_bf16 = (grads.bfloat16() == 0).float().mean().item()

fig, ax = plt.subplots(figsize=(10, 4))
bins = np.linspace(-14, 8, 110)
ax.hist(grads.log10().numpy(), bins=bins, alpha=0.6, color="tab:blue", label=f"gradients: {zero_raw:.1%} → 0 in fp16")
ax.hist(
    (grads * scale).log10().numpy(), bins=bins, alpha=0.6, color="tab:orange",
    label=f"gradients × 2¹⁶: {zero_scaled:.2%} → 0, {inf_scaled:.4%} → inf",
)
ax.axvspan(-14, math.log10(2.0**-25), color="grey", alpha=0.3, label="fp16 rounds to 0")
ax.axvspan(math.log10(2.0**-25), math.log10(fp16.smallest_normal), color="grey", alpha=0.12, label="fp16 subnormal (imprecise)")
ax.axvspan(math.log10(fp16.max), 8, color="tab:red", alpha=0.2, label="fp16 overflows to inf")
ax.set_xlabel("log10 |gradient|")
ax.set_ylabel("count")
ax.set_title("fp16 range vs. a spread of gradient magnitudes")
ax.set_xlim(-14, 8)
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
plt.tight_layout()
plt.show()
print(f"flushed to zero: fp16 {zero_raw:.1%}, fp16 with loss scale 2^16 {zero_scaled:.2%}, bf16 {zero_bf16:.1%}")


# %% [markdown]
# That is what **loss scaling** does. Multiply the loss by 2¹⁶ and every gradient is 2¹⁶ times
# larger (the chain rule is linear), so the whole distribution slides right into fp16's range. Unscale
# in fp32 before the optimizer step. The cost is the right tail: a few values now overflow, and a
# single `inf` poisons the step. `torch.amp.GradScaler` handles both sides: it skips steps with
# `inf`/`NaN` gradients and lowers the scale, and it raises the scale again after a run of
# clean steps. bf16 has fp32's range, so it needs none of this.
#
# ### Accumulators: where low precision really hurts
#
# Rounding error per operation is small. Rounding error in a **running sum** compounds: once
# the total is large, each small addend is below half a unit in the last place and is rounded away.
# Let's add 20,000 numbers of about 1e-3 (true total ≈ 20) with an accumulator in each dtype.
#
# **Predict, then run.** Which accumulator stops growing first, bf16 or fp16, and near which
# value? Does `torch.sum` on the same 16-bit tensors have the same problem?


# %%
g = torch.Generator().manual_seed(0)
addends = torch.rand(20_000, generator=g, dtype=torch.float64) * 2e-3
exact = math.fsum(addends.tolist())  # correctly rounded float64 reference

fig, ax = plt.subplots(figsize=(7, 3.8))
for dt, color in styles.items():
    acc = torch.zeros((), dtype=dt)
    terms = addends.to(dt)
    path = []
    for i, t in enumerate(terms):
        acc = acc + t  # the accumulator itself is stored in dt
        if i % 50 == 0:
            path.append(acc.item())
    ax.plot(np.arange(len(path)) * 50, path, color=color, label=f"{str(dt).removeprefix('torch.')}: {acc.item():.4f}")
    print(f"{dt!s:15} running sum {acc.item():10.4f}   relative error {abs(acc.item() - exact) / exact:.1e}")
ax.plot(np.arange(len(addends)), np.cumsum(addends.numpy()), "k:", label=f"exact: {exact:.4f}")
ax.set_xlabel("number of terms added")
ax.set_ylabel("running sum")
ax.set_title("Adding 20,000 numbers ≈ 1e-3, accumulator in each dtype")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

for dt in (torch.float16, torch.bfloat16):
    built_in = addends.to(dt).sum().item()
    print(f"torch.sum on a {dt!s:14} tensor: {built_in:.4f}")
    torch.testing.assert_close(built_in, exact, rtol=1e-2, atol=0, msg=f"torch.sum accumulates {dt} in fp32 internally")


# %% [markdown]
# The bf16 accumulator stops growing at 1 and the fp16 one at about 4. From there on, each new term
# is smaller than half the gap between neighbouring representable numbers at the current total
# (bf16 spacing at 1 is 2⁻⁷ ≈ 0.008, fp16 spacing at 4 is 2⁻⁸ ≈ 0.004), so adding it rounds back to
# the same total. The fp16 sum still creeps up, because the occasional term just above half the
# spacing rounds up by a whole step.
# `torch.sum` on the same 16-bit tensors is fine: PyTorch's reduction kernels accumulate in fp32
# internally and round only the final result. The trap is *your own* accumulators: running losses,
# metric totals, EMA weights, gradient-accumulation buffers. Keep them in fp32 (or a Python
# float, which is float64).
#
# ### Autocast: which dtype, where
#
# `torch.autocast` runs matmuls and convolutions in a 16-bit dtype and keeps precision-sensitive
# ops (losses, softmax-style reductions, norms; the exact lists differ by device) in fp32. You
# choose the 16-bit dtype:
#
# - **bf16** on CPUs (CPU autocast's default 16-bit dtype) and on GPUs
#   with native bf16 (NVIDIA Ampere and newer: A100, RTX 30xx, H100, ...). fp32 range: no loss
#   scaling.
# - **fp16 + GradScaler** on older GPUs (V100, T4, RTX 20xx), which have fast fp16 units but no
#   bf16. Its narrow range needs loss scaling (above).
# - **fp16** on Apple GPUs (MPS).
#
# `amp_dtype(device)` encodes this rule, and `needs_grad_scaler(dtype)` says whether to add the
# scaler.
#
# **Predict, then run.** Inside the autocast block, which dtype will the matmul output `c` have,
# and which the cross-entropy `loss`?


# %%
g = torch.Generator().manual_seed(0)
a = torch.randn(256, 256, generator=g).to(device)
b = torch.randn(256, 256, generator=g).to(device)
targets = torch.zeros(256, dtype=torch.long, device=device)

with torch.autocast(device_type=device.type, dtype=amp_dtype(device)):
    c = a @ b
    loss = nn.functional.cross_entropy(c, targets)

ref = a @ b  # fp32 outside autocast
rel_err = ((c.float() - ref).norm() / ref.norm()).item()
print(f"device {device}, autocast dtype {amp_dtype(device)}, GradScaler needed: {needs_grad_scaler(amp_dtype(device))}")
print(f"inputs {a.dtype} -> matmul output {c.dtype}, cross_entropy output {loss.dtype}")
print(f"relative error of the autocast matmul vs fp32: {rel_err:.1e}")
torch.testing.assert_close(rel_err, 0.0, rtol=0, atol=1e-2, msg="autocast matmul should agree with fp32 to ~2-3 digits")


# %% [markdown]
# The inputs stay fp32; autocast casts them on the way into the matmul, whose output is 16-bit.
# The loss comes out in fp32. Module 01 builds a full mixed-precision training loop on top of this.
#
# ## 5. Numerical stability: softmax and log-sum-exp
#
# `exp` overflows fp32 above about 88.7 (fp16 above about 11). The textbook softmax
# `exp(x) / sum(exp(x))` therefore breaks on perfectly reasonable logits.
#
# **Predict, then run.** Softmax of `[1, 2, 3]` and of `[1001, 1002, 1003]` are the same on paper.
# What will the naive version print for the second?


# %%
def naive_softmax(x):
    e = x.exp()
    return e / e.sum(dim=-1, keepdim=True)


logits = torch.tensor([1.0, 2.0, 3.0])
print("naive softmax(x)       :", naive_softmax(logits))
print("naive softmax(x + 1000):", naive_softmax(logits + 1000))  # inf / inf = nan


# %% [markdown]
# Softmax is shift-invariant: `softmax(x) = softmax(x - c)` for any constant `c`. Take `c = max(x)`:
# the largest exponent is `exp(0) = 1`, nothing overflows, and at least one term of the sum is 1,
# so nothing divides by zero. The same trick gives a stable **log-sum-exp**,
# `log Σ exp(x) = m + log Σ exp(x − m)` with `m = max(x)`, which is what cross-entropy is built on.
#
# **Predict, then run.** In float32, will `stable_softmax(x + 1000)` equal `stable_softmax(x)`
# exactly? If not, is the difference nearer 1e-12 or 1e-4?


# %%
def stable_softmax(x):
    z = x - x.amax(dim=-1, keepdim=True)
    e = z.exp()
    return e / e.sum(dim=-1, keepdim=True)


def logsumexp(x):
    m = x.amax(dim=-1, keepdim=True)
    return (m + (x - m).exp().sum(dim=-1, keepdim=True).log()).squeeze(-1)


print("stable softmax(x + 1000):", stable_softmax(logits + 1000))
print("logsumexp(x + 1000)     :", logsumexp(logits + 1000).item())

g = torch.Generator().manual_seed(0)
batch = 30 * torch.randn(64, 10, generator=g, dtype=torch.float64)  # wide logits
for dt, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
    for shift in (0.0, 1000.0):
        x_ = batch.to(dt) + shift
        torch.testing.assert_close(stable_softmax(x_), torch.softmax(x_, dim=-1), rtol=tol, atol=tol, msg=f"softmax mismatch in {dt}")
        torch.testing.assert_close(logsumexp(x_), torch.logsumexp(x_, dim=-1), rtol=tol, atol=tol, msg=f"logsumexp mismatch in {dt}")
    print(f"{dt}: matches torch.softmax / torch.logsumexp within {tol:g}, with and without the +1000 shift")

for dt in (torch.float64, torch.float32):
    x_ = batch.to(dt)
    drift = (stable_softmax(x_ + 1000) - stable_softmax(x_)).abs().max().item()
    print(f"{dt}: max |softmax(x + 1000) - softmax(x)| = {drift:.1e}")


# %% [markdown]
# Note the tolerances: float64 agrees to about 1e-12, float32 only to about 1e-6, because each
# result passes through several rounded operations. Always state the tolerance you expect. The
# defaults of `assert_close` depend on the dtype and may be looser or tighter than you think.
#
# The last two lines show a subtler point. Shift invariance is exact on paper, but in float32
# `x + 1000` is itself rounded to the float32 grid near 1000 (spacing about 6e-5), so
# `softmax(x + 1000)` is the softmax of slightly different numbers. The stable softmax computes
# that exactly; the information was lost before it was called.
# The exercise asks you to build these yourself and handle the edge cases; in practice use
# `torch.logsumexp` and `nn.functional.log_softmax` / `cross_entropy`, which do this for you.
#
# ## 6. Checklist before training
#
# Run these before you spend GPU hours. Each takes seconds and catches a whole class of bugs.
#
# 1. **Seed set and logged**: `seed = seed_everything(...)`, written to the run's log.
# 2. **Device and dtype printed**: the section 2 block at the top of the log.
# 3. **Data shapes and ranges checked**: one batch, `x.shape`, `x.dtype`, min/max, label range;
#    assert them.
# 4. **Loss at initialisation ≈ its theoretical value**: for `C` balanced classes and a
#    fresh network, predictions are near uniform, so cross-entropy ≈ `ln C`.
# 5. **A single batch overfits**: train on one fixed batch; the loss must go to about zero.
#    If it doesn't, the model, loss or optimizer is wired wrong, and more data won't help.
#
# Items 3 to 5 on a tiny 10-class classifier.
#
# **Predict, then run.** What loss at initialisation do you expect for 10 balanced classes?


# %%
seed_everything(0)
num_classes, n_features = 10, 32
X_cls = torch.randn(512, n_features, device=device)
y_cls = torch.randint(0, num_classes, (512,), device=device)

# 3. shapes and ranges
assert X_cls.shape == (512, n_features), X_cls.shape
assert X_cls.dtype == torch.float32, X_cls.dtype
assert y_cls.min() >= 0, "labels must be non-negative"
assert y_cls.max() < num_classes, "label out of range"
print(f"X {tuple(X_cls.shape)} {X_cls.dtype}, y {tuple(y_cls.shape)} labels {y_cls.min().item()}..{y_cls.max().item()}")


def make_classifier():
    return nn.Sequential(nn.Linear(n_features, 64), nn.ReLU(), nn.Linear(64, num_classes)).to(device)


# 4. loss at init
clf = make_classifier()
with torch.no_grad():
    init_loss = nn.functional.cross_entropy(clf(X_cls), y_cls).item()
print(f"loss at init {init_loss:.3f}, expected ln({num_classes}) = {math.log(num_classes):.3f}")
torch.testing.assert_close(init_loss, math.log(num_classes), rtol=0, atol=0.15, msg="loss at init should be close to ln(num_classes)")


# %% [markdown]
# Now a classic bug: an output layer initialised 10× too large (a wrong init scale, a
# missing normalisation). The network starts out *confidently wrong*, and the check catches it
# before the first step.
#
# **Predict, then run.** Higher or lower than `ln 10`, and by about how much?


# %%
bad = make_classifier()
with torch.no_grad():
    bad[-1].weight.mul_(10)
    bad_loss = nn.functional.cross_entropy(bad(X_cls), y_cls).item()
print(f"loss at init with a 10x output layer: {bad_loss:.3f} (expected {math.log(num_classes):.3f})")
assert bad_loss > math.log(num_classes) + 0.5, "the over-scaled init should be visibly off"


# %% [markdown]
# And the single-batch overfit test (item 5).
#
# **Predict, then run.** The labels are random. Can 150 Adam steps still drive the loss on one
# batch of 32 close to zero?


# %%
clf = make_classifier()
opt = torch.optim.Adam(clf.parameters(), lr=1e-2)
xb1, yb1 = X_cls[:32], y_cls[:32]  # one fixed batch
history = []
for _ in range(150):
    loss = nn.functional.cross_entropy(clf(xb1), yb1)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    history.append(loss.item())

fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(history)
ax.axhline(math.log(num_classes), color="grey", ls="--", lw=0.8, label="ln(10): chance level")
ax.set_yscale("log")
ax.set_xlabel("step")
ax.set_ylabel("cross-entropy (log scale)")
ax.set_title("Overfitting one batch of 32")
ax.legend()
plt.tight_layout()
plt.show()
print(f"loss: {history[0]:.3f} at step 0 -> {history[-1]:.4f} after {len(history)} steps")
torch.testing.assert_close(history[-1], 0.0, rtol=0, atol=0.05, msg="a working model must be able to memorise one batch")


# %% [markdown]
# The labels are pure noise, so there is nothing to learn, yet a 32-example batch is easy to
# memorise. That is the point: this test checks the plumbing, not the model's quality.
#
# ## 7. What's next
#
# You now have the habits that every later module assumes: print the machine, seed and log it,
# know which dtype you are computing in and where it breaks, and check your numbers against a
# reference with explicit tolerances. Lesson `01_training_loops` puts these pieces into a real
# training loop: seeding, device and dtype handling, mixed precision, and the checks from section 6.
#
# ## Self-check
#
# 1. Two runs with seed 0 on your laptop give bitwise-identical losses. The same code and seed on
#    a colleague's GPU gives a curve that differs from yours after a few hundred steps. Is
#    something broken?
#
#    <details><summary>Answer</summary>Not necessarily. A seed fixes the random numbers, not the
#    order of floating-point sums: another device, thread count or library version, or a kernel
#    that accumulates with atomic adds, changes the last bits, and those grow over the steps. Log
#    the hardware and versions; use deterministic mode on one machine when you need bitwise
#    repeats (sections 3.3 and 3.5).</details>
#
# 2. Model A ends at a loss 0.01 lower than model B, one run each. Across seeds, the final loss
#    of one model spreads by about 0.03. What can you conclude?
#
#    <details><summary>Answer</summary>Nothing yet: the difference is smaller than the noise
#    floor between seeds. Run several seeds of each and compare the distributions
#    (section 3.1).</details>
#
# 3. Your data set creates <code>np.random.default_rng(0)</code> in <code>__init__</code> and
#    uses it for augmentation; the DataLoader has 4 workers. What goes wrong, and how do you fix it?
#
#    <details><summary>Answer</summary>Every worker gets an identical copy of the generator, so
#    the workers produce the same "random" augmentations, and nothing in the loss shows it.
#    Reseed the generator in a <code>worker_init_fn</code> from
#    <code>get_worker_info().seed</code>, and pass <code>generator=</code> to the DataLoader so
#    that the base seed is reproducible (section 3.3).</details>
#
# 4. Why does fp16 training need a <code>GradScaler</code> while bf16 training does not?
#
#    <details><summary>Answer</summary>fp16 has 5 exponent bits: normal numbers stop at about
#    6e-5 and values below about 3e-8 round to zero, so many small gradients vanish. Scaling the
#    loss by a large factor (2¹⁶) moves them into range; the scaler unscales before the step and
#    skips steps with <code>inf</code>/<code>NaN</code> gradients. bf16 has fp32's 8 exponent
#    bits and range, so nothing underflows that fp32 would keep (section 4).</details>
#
# 5. A training loop adds each step's loss to a running total kept in bf16. After 20,000 steps
#    of about 1e-3 each, the total reads 1.0. Why, and what is the fix?
#
#    <details><summary>Answer</summary>At 1.0 the spacing between bf16 numbers is 2⁻⁷ ≈ 0.008,
#    so adding 1e-3 rounds back to the same total: the sum stopped growing. Keep accumulators
#    (running losses, metric totals, EMA weights, gradient-accumulation buffers) in fp32 or a
#    Python float. <code>torch.sum</code> on a 16-bit tensor is fine: it accumulates in fp32
#    internally (section 4).</details>
#
# 6. The naive softmax of logits <code>[1001, 1002, 1003]</code> returns <code>nan</code>. Why,
#    and what is the fix?
#
#    <details><summary>Answer</summary><code>exp(1001)</code> overflows to <code>inf</code> (fp32
#    overflows above about 88.7), and <code>inf / inf</code> is <code>nan</code>. Softmax is
#    shift-invariant, so subtract <code>max(x)</code> first; log-sum-exp becomes
#    <code>m + log Σ exp(x − m)</code>. In practice use <code>torch.logsumexp</code>,
#    <code>log_softmax</code> or <code>cross_entropy</code> (section 5).</details>
#
# 7. A fresh 10-class classifier starts with a cross-entropy of 7.8. What do you expect instead,
#    and what do you look for?
#
#    <details><summary>Answer</summary>About <code>ln 10 ≈ 2.30</code>: a fresh network should
#    predict nearly uniform probabilities. A much higher value means it starts confidently wrong,
#    usually from an output layer initialised too large or a missing normalisation. Fix it before
#    training, then check that one batch can be overfitted (section 6).</details>
#
# ## Further reading
#
# - PyTorch documentation, "Reproducibility", https://pytorch.org/docs/stable/notes/randomness.html;
#   `torch.use_deterministic_algorithms`,
#   https://pytorch.org/docs/stable/generated/torch.use_deterministic_algorithms.html
# - PyTorch documentation, `torch.utils.data` (randomness in multi-process data loading,
#   `worker_init_fn`, `generator=`), https://pytorch.org/docs/stable/data.html
# - Python documentation, the `PYTHONHASHSEED` environment variable,
#   https://docs.python.org/3/using/cmdline.html#envvar-PYTHONHASHSEED
# - D. Goldberg (1991), "What every computer scientist should know about floating-point
#   arithmetic", *ACM Computing Surveys* 23(1), https://doi.org/10.1145/103162.103163
# - PyTorch documentation, "Numerical accuracy",
#   https://pytorch.org/docs/stable/notes/numerical_accuracy.html
# - P. Micikevicius et al. (2018), "Mixed precision training", ICLR,
#   https://arxiv.org/abs/1710.03740
# - D. Kalamkar et al. (2019), "A study of BFLOAT16 for deep learning training",
#   https://arxiv.org/abs/1905.12322
# - PyTorch documentation, "Automatic Mixed Precision package: `torch.amp`" (autocast op lists,
#   `GradScaler`), https://pytorch.org/docs/stable/amp.html
# - P. Blanchard, D. J. Higham, N. J. Higham (2021), "Accurately computing the log-sum-exp and
#   softmax functions", *IMA Journal of Numerical Analysis* 41(4),
#   https://doi.org/10.1093/imanum/draa038
# - A. Karpathy (2019), "A recipe for training neural networks" (the loss at initialisation, and
#   overfitting one batch), https://karpathy.github.io/2019/04/25/recipe/
#
# ---
#
# - **Exercise:** [../exercises/00_orientation/00_orientation.ipynb](../exercises/00_orientation/00_orientation.ipynb).
#   Check it with `mlcraft check exercises/00_orientation/00_orientation.ipynb`.
# - **Next lesson:** [01_training_loops.ipynb](01_training_loops.ipynb)
