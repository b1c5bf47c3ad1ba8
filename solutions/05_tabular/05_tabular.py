# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] nbgrader={"grade": false, "grade_id": "intro", "locked": true, "schema_version": 3, "solution": false, "task": false}
# # Module 05 — Tabular ML: honest splits, target encoding, trees, boosting and the metrics that judge them
#
# **You will be able to**
# - hold out whole groups in time, so that no customer is on both sides of a split and the test side is the future;
# - encode a high-cardinality category by its target without leaking a row's own label into its feature;
# - find the best Gini split of a feature, the step a decision tree repeats at every node;
# - write gradient boosting with squared loss on top of a regression tree, equal to scikit-learn's to 1e-10;
# - compute ROC-AUC with ties in O(N log N) and the expected calibration error of predicted probabilities.
#
# **Prerequisites**: lesson `05_tabular` (sections 2, 3, 4 and 6 above all); lesson `00_orientation`;
# NumPy indexing, `np.unique`, `np.argsort`, `np.bincount`; scikit-learn's `fit`/`predict`.
#
# **Time**: reading 15 min; exercises 90–120 min; the reference solution runs top to bottom in about
# 30 seconds on a 2-core CPU, hidden tests included.
#
# **Further reading**: scikit-learn user guide, *Cross-validation* (group and time-series splits) and
# *Common pitfalls: data leakage*; Micci-Barreca (2001), *A preprocessing scheme for high-cardinality
# categorical attributes*; Breiman et al. (1984), *Classification and Regression Trees*; Friedman (2001),
# *Greedy function approximation: a gradient boosting machine*; Hanley and McNeil (1982), *The meaning and
# use of the area under a ROC curve*; Guo et al. (2017), *On calibration of modern neural networks*.
#
# Six functions, each the core of something a tabular pipeline uses every day:
#
# | Task | Function | Points |
# |------|----------|--------|
# | 1 | `group_time_split(groups, times, test_fraction)` | 2 |
# | 2 | `target_encode_oof(categories, y, folds, smooth=10.0)` | 3 |
# | 3 | `best_gini_split(x, y)` | 3 |
# | 4 | `boosted_predictions(X_train, y_train, X_test, n_estimators, learning_rate, max_depth)` | 3 |
# | 5 | `roc_auc(y_true, scores)` | 3 |
# | 6 | `expected_calibration_error(y_true, probs, n_bins=10)` | 2 |
#
# **How this notebook works.** Replace each `raise NotImplementedError()` with your code, then
# run the test cell below it. The visible tests are a first check only: when the notebook is
# graded, each test cell also runs hidden tests. These check the edge cases named in the task
# statement, so read each statement to the end. Run the notebook from top to bottom before you
# submit, and do not change or delete the test cells.
#
# Every input is a NumPy array (or something `np.asarray` turns into one) and every output is a
# NumPy array or a Python number, so nothing here needs a GPU.
#
# **How grading works.** When your notebook is graded, your cells run in a sandbox and the
# test cells run in the grader, apart from your code: the tests call your functions with data
# (arrays, numbers, lists...) and check what comes back against answers the grader computes
# itself. So return exactly what each task asks for; nothing else in your notebook can change a
# test's verdict.
#
# Previous: lesson [`05_tabular`](../../course/05_tabular.ipynb) · Next: lesson
# [`06_data`](../../course/06_data.ipynb).


# %%
# Set-up: on Colab, install the course package; everywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "mlcraft[course] @ git+https://github.com/mlcraft/mlcraft"],
        check=True,
    )


# %% nbgrader={"grade": false, "grade_id": "imports", "locked": true, "schema_version": 3, "solution": false, "task": false}

import numpy as np
import sklearn
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from mlcraft.classroom.testing import assert_close, call_without, grading_seed, in_kernel

print(f"numpy {np.__version__}, scikit-learn {sklearn.__version__}")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-group-time-split", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 1 — Hold out the groups that start last (2 points)
#
# A subscriptions table has many rows per customer, and rows arrive over time. A random row split
# puts the same customer on both sides and lets the model train on the future: the validation
# score flatters it (the lesson measures by how much). The honest split holds out *whole
# customers*, the ones that arrived *last*.
#
# Write `group_time_split(groups, times, test_fraction)` that returns `(train_idx, test_idx)`:
#
# - `groups` (length N): the group id of each row, integers or strings. `times` (length N): the
#   time of each row, real numbers or `datetime64`; no NaN or NaT. Both are 1-D arrays or lists.
# - A group's **start** is the earliest time among its rows. Order the groups by start; groups
#   with the same start keep the order in which they first appear in `groups` (the group whose
#   first row has the smaller index comes first).
# - The test side is the **last `c` groups** of that order, with `1 <= c <= G - 1` (`G` = number
#   of distinct groups) chosen so that the number of test rows is as close as possible to
#   `test_fraction * N`. If two values of `c` are equally close, take the smaller `c`.
# - `train_idx` and `test_idx` are `int64` arrays of row indices, each in increasing order;
#   together they hold every row exactly once, so no group has rows on both sides.
# - Raise `ValueError` if `test_fraction` is not strictly between 0 and 1 (NaN included), if `groups` and
#   `times` have different lengths, or if there are fewer than 2 distinct groups.
#
# Do not call `mlcraft.data.splits.group_time_split`, the course package's version.


# %% nbgrader={"grade": false, "grade_id": "group-time-split-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def group_time_split(groups, times, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train_idx, test_idx)``: the last-starting groups, about ``test_fraction`` of the rows, are test."""
    ### BEGIN SOLUTION
    times = np.asarray(times)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")
    if len(groups) != len(times):
        raise ValueError(f"groups and times must have the same length, got {len(groups)} and {len(times)}")
    uniques, first_row, codes = np.unique(groups, return_index=True, return_inverse=True)
    n_groups = len(uniques)
    if n_groups < 2:
        raise ValueError(f"need at least 2 distinct groups, got {n_groups}")
    by_time = np.argsort(times)  # rows in time order
    _, first_in_time = np.unique(codes[by_time], return_index=True)  # (G,) first position of each group
    start = times[by_time][first_in_time]  # (G,) earliest time of each group
    order = np.lexsort((first_row, start))  # groups by start, ties by first appearance
    sizes = np.bincount(codes)
    test_rows = np.cumsum(sizes[order][::-1])[:-1]  # rows in the last c = 1 .. G-1 groups
    c = np.argmin(np.abs(test_rows - test_fraction * len(groups))) + 1
    is_test = np.isin(codes, order[n_groups - c :])
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-group-time-split", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Customers a, b, c, d start at times 0, 1, 2, 3; customer a stays late (row 5 at time 9).
groups_1 = np.array(["a", "a", "b", "c", "d", "a", "d", "c"])
times_1 = np.array([0.0, 1.0, 1.0, 2.0, 3.0, 9.0, 4.0, 5.0])
train_1, test_1 = group_time_split(groups_1, times_1, test_fraction=0.25)
# 0.25 * 8 = 2 rows: the last group (d, 2 rows) is exactly that.
assert test_1.tolist() == [4, 6], f"the test side should be customer d's rows [4, 6], got {test_1.tolist()}"
assert train_1.tolist() == [0, 1, 2, 3, 5, 7], (
    f"the train side should be rows [0, 1, 2, 3, 5, 7], got {train_1.tolist()}"
)
assert train_1.dtype == np.int64 and test_1.dtype == np.int64, "row indices should be int64 arrays"
train_1, test_1 = group_time_split(groups_1, times_1, test_fraction=0.5)
# 0.5 * 8 = 4 rows: d and c together have 4.
assert test_1.tolist() == [3, 4, 6, 7], (
    f"test_fraction=0.5 should hold out c and d, rows [3, 4, 6, 7], got {test_1.tolist()}"
)
try:
    group_time_split(groups_1, times_1, test_fraction=1.0)
except ValueError:
    pass
else:
    raise AssertionError("test_fraction=1.0 should raise ValueError")
### BEGIN HIDDEN TESTS
from mlcraft.data.splits import group_time_split as _split_reference

_forbidden_split = ("mlcraft.data.splits.group_time_split",)


def _check_split(name, groups_, times_, fraction):
    got = call_without(group_time_split, groups_, times_, fraction, forbidden=_forbidden_split)
    assert isinstance(got, tuple) and len(got) == 2, f"{name}: return a pair (train_idx, test_idx), got {type(got)}"
    want = _split_reference(np.asarray(groups_), np.asarray(times_), test_fraction=fraction)
    for side, g, w in zip(("train_idx", "test_idx"), got, want, strict=True):
        assert isinstance(g, np.ndarray) and g.dtype == np.int64, (
            f"{name}: {side} should be an int64 NumPy array, got {type(g).__name__} {getattr(g, 'dtype', '')}"
        )
        assert g.tolist() == w.tolist(), (
            f"{name} (test_fraction={fraction}): {side} should be {w.tolist()}, got {g.tolist()}"
        )


_rng = np.random.default_rng(grading_seed("test-group-time-split", 5))
_n = 300
_cust = _rng.integers(0, 40, _n)
_split_cases = {
    "the example, test_fraction 0.25": (groups_1, times_1, 0.25),
    "the example, groups and times as lists": (groups_1.tolist(), times_1.tolist(), 0.5),
    "tiny fraction: one group at least": (groups_1, times_1, 0.01),
    "fraction near 1: one group stays in train": (groups_1, times_1, 0.99),
    "two groups": (np.array([7, 7, 3]), np.array([5.0, 6.0, 1.0]), 0.5),
    # starts tie (all at 0): the order is first appearance, so the last-appearing groups are test
    "equal starts, ties by first appearance": (np.array([2, 1, 3, 1, 2, 3]), np.zeros(6), 0.34),
    # d (2 rows) is 1 away from 3 rows, c+d (4 rows) is 1 away too: the smaller c wins
    "equally close: fewer test groups": (groups_1, times_1, 0.375),
    "a late row does not move its group's start": (np.array([1, 2, 2, 1]), np.array([0.0, 1.0, 2.0, 10.0]), 0.5),
    "integer times, string ids": (np.array(["x", "y", "z", "y", "z"]), np.array([3, 1, 2, 5, 0]), 0.4),
    "datetime64 times": (
        np.array([10, 11, 10, 12, 13, 12]),
        np.array(
            ["2024-01-05", "2024-01-02", "2024-01-01", "2024-02-01", "2024-03-01", "2024-01-20"], dtype="datetime64[D]"
        ),
        0.5,
    ),
    "300 rows of 40 customers, unsorted": (_cust, _rng.uniform(0, 100, _n), 0.2),
    "300 rows, integer times with many ties": (_cust, _rng.integers(0, 10, _n), 0.3),
    "300 rows, group ids not in time order": (_cust * 7 % 41, np.sort(_rng.uniform(0, 5, _n)), 0.6),
}
for _name, (_g, _t, _f) in _split_cases.items():
    _check_split(_name, _g, _t, _f)

for _bad in (0.0, 1.0, -0.2, 1.5, float("nan")):  # NaN is not between 0 and 1 either
    try:
        group_time_split(groups_1, times_1, _bad)
    except ValueError:
        pass
    else:
        raise AssertionError(f"test_fraction={_bad} should raise ValueError")
for _name, (_g, _t) in {
    "one group": (np.array([4, 4, 4]), np.array([1.0, 2.0, 3.0])),
    "lengths differ": (np.array([1, 2, 3]), np.array([1.0, 2.0])),
    "lengths differ, fewer groups than times": (np.array([1, 2]), np.array([1.0, 2.0, 3.0])),
}.items():
    try:
        group_time_split(_g, _t, 0.5)
    except ValueError:
        pass
    else:
        raise AssertionError(f"{_name}: group_time_split should raise ValueError")
### END HIDDEN TESTS
print("group_time_split: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-target-encode", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 2 — Out-of-fold target encoding (3 points)
#
# A column with thousands of categories (a product id, a postcode) is too wide to one-hot
# encode. Target encoding replaces each category by the mean target of its rows, pulled
# toward the overall mean when the category has few rows ("m-estimate" smoothing):
#
# $$\operatorname{enc}(c) = \frac{\sum_{i \in c} y_i + m \cdot \text{prior}}{n_c + m}, \qquad \text{prior} = \text{mean of } y.$$
#
# Computed on all rows and used as a training feature, it leaks: a category seen once is
# encoded as its own label, and the model learns to read the answer. The fix is *out of
# fold*: each row is encoded with statistics from the other folds only, as scikit-learn's
# `TargetEncoder.fit_transform` does.
#
# Write `target_encode_oof(categories, y, folds, smooth=10.0)` returning a float64 array of
# length N:
#
# - `categories` (length N): integers or strings. `y` (length N): numbers (0/1 labels or any
#   finite reals, int or float or bool).
# - `folds`: an iterable of `(train_idx, test_idx)` pairs of row-index arrays, such as a list or
#   the generator that `KFold(5).split(x)` returns. Every row is in exactly one `test_idx`.
# - For each fold, compute the prior and each category's sum and count **from the `train_idx`
#   rows only**, and encode the `test_idx` rows with the formula above (`m = smooth`). So
#   changing `y[i]` never changes row `i`'s own encoding.
# - A category with no row in a fold's `train_idx` is encoded as that fold's prior (this also
#   covers `smooth=0`, where the formula would be 0/0).
# - `smooth` is a number `>= 0` (`0` gives the plain mean of the category); raise `ValueError`
#   for a negative one.
# - Do not modify the inputs.
#
# The result equals scikit-learn's `TargetEncoder(smooth=smooth, target_type="continuous",
# cv=splitter).fit_transform(x[:, None], y)` when `folds` is `list(splitter.split(x))`, for
# example with `splitter = KFold(5, shuffle=True, random_state=0)`. Do not call scikit-learn's `TargetEncoder` or the
# course package's `mlcraft.data.target_encoding` functions.


# %% nbgrader={"grade": false, "grade_id": "target-encode-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def target_encode_oof(categories, y, folds, smooth: float = 10.0) -> np.ndarray:
    """Each row's category encoded by the smoothed target mean of the other folds' rows (float64, length N)."""
    ### BEGIN SOLUTION
    if smooth < 0:
        raise ValueError(f"smooth must be >= 0, got {smooth}")
    _, codes = np.unique(categories, return_inverse=True)
    y = np.asarray(y, dtype=np.float64)
    n_categories = codes.max() + 1
    encoded = np.empty(len(y))
    for train_idx, test_idx in folds:
        prior = y[train_idx].mean()
        counts = np.bincount(codes[train_idx], minlength=n_categories)
        sums = np.bincount(codes[train_idx], weights=y[train_idx], minlength=n_categories)
        seen = counts > 0
        encoding = np.full(n_categories, prior)
        encoding[seen] = (sums[seen] + smooth * prior) / (counts[seen] + smooth)
        encoded[test_idx] = encoding[codes[test_idx]]
    return encoded
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-target-encode", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
cats_2 = np.array(["a", "a", "b", "b", "a", "c"])
y_2 = np.array([1, 0, 1, 1, 1, 0])
folds_2 = [(np.array([2, 3, 4]), np.array([0, 1, 5])), (np.array([0, 1, 5]), np.array([2, 3, 4]))]
enc_2 = target_encode_oof(cats_2, y_2, folds_2, smooth=1.0)
assert isinstance(enc_2, np.ndarray) and enc_2.dtype == np.float64 and enc_2.shape == (6,), (
    "a float64 array of length N"
)
# Fold 1 trains on rows 2-4 (b, b, a; all labels 1): prior 1; a: (1 + 1 * 1) / (1 + 1) = 1.
assert_close(enc_2[0], 1.0, rtol=1e-12, atol=1e-12, msg="row 0 (a), fold 1")
assert_close(enc_2[5], 1.0, rtol=1e-12, atol=1e-12, msg="row 5 (c, unseen in fold 1's train rows) gets the prior")
# Fold 2 trains on rows 0, 1, 5 (a, a, c; labels 1, 0, 0): prior 1/3; b is unseen there, so rows 2 and 3
# get the prior, and row 4 (a) gets (1 + 1/3) / (2 + 1).
assert_close(enc_2[2], 1 / 3, rtol=1e-12, atol=1e-12, msg="row 2 (b, unseen in fold 2's train rows) gets the prior")
assert_close(enc_2[4], 4 / 9, rtol=1e-12, atol=1e-12, msg="row 4 (a), fold 2")
_x2 = np.random.default_rng(0).integers(0, 8, 200)
_y2 = np.random.default_rng(1).integers(0, 2, 200)
_folds2 = list(KFold(5, shuffle=True, random_state=0).split(_x2))
from sklearn.preprocessing import TargetEncoder

_want2 = TargetEncoder(smooth=10.0, target_type="continuous", cv=KFold(5, shuffle=True, random_state=0)).fit_transform(
    _x2[:, None], _y2
)[:, 0]
assert_close(
    target_encode_oof(_x2, _y2, _folds2), _want2, rtol=1e-12, atol=1e-12, msg="equal to TargetEncoder, 5 folds"
)
### BEGIN HIDDEN TESTS
from mlcraft.data.target_encoding import target_encode_oof as _te_reference

_forbidden_te = (
    "sklearn.preprocessing.TargetEncoder",
    "mlcraft.data.target_encoding.target_encode_oof",
    "mlcraft.data.target_encoding.fit_target_encoding",
)


def _check_te(name, cats, y, folds, **kwargs):
    cats_before, y_before = np.array(cats, copy=True), np.array(y, copy=True)
    got = call_without(target_encode_oof, cats, y, folds, forbidden=_forbidden_te, **kwargs)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64, (
        f"{name}: return a float64 NumPy array, got {type(got).__name__} {getattr(got, 'dtype', '')}"
    )
    want = _te_reference(np.asarray(cats), np.asarray(y), folds, smooth=float(kwargs.get("smooth", 10.0)))
    assert got.shape == want.shape, f"{name}: shape should be {want.shape}, got {got.shape}"
    assert_close(got, want, rtol=1e-12, atol=1e-12, msg=f"target encoding, {name}")
    assert np.array_equal(np.asarray(cats), cats_before) and np.array_equal(np.asarray(y), y_before), (
        f"{name}: target_encode_oof must not modify its inputs"
    )
    return got


_rng = np.random.default_rng(grading_seed("test-target-encode", 11))
_te_cases = {}
_x = _rng.integers(0, 30, 400)  # 30 categories, some rare
_y = (_rng.uniform(size=400) < 0.2 + 0.02 * _x).astype(np.int64)
_te_cases["400 rows, 30 categories, 5 folds, default smooth"] = (
    _x,
    _y,
    list(KFold(5, shuffle=True, random_state=1).split(_x)),
    {},
)
_te_cases["smooth=0: the plain category mean"] = (
    _x,
    _y,
    list(KFold(4, shuffle=True, random_state=2).split(_x)),
    {"smooth": 0},
)
_te_cases["smooth=0.5 and a continuous target"] = (
    _x,
    _rng.normal(3.0, 2.0, 400),
    list(KFold(3, shuffle=True, random_state=3).split(_x)),
    {"smooth": 0.5},
)
_te_cases["smooth=1000: everything near the prior"] = (_x, _y, list(KFold(5).split(_x)), {"smooth": 1000.0})
_te_cases["string categories, bool target"] = (
    np.array([f"sku-{v:03d}" for v in _x]),
    _y.astype(bool),
    list(KFold(5, shuffle=True, random_state=4).split(_x)),
    {"smooth": 2.0},
)
_te_cases["negative integer categories, float32 target"] = (
    _x - 15,
    _y.astype(np.float32),
    list(KFold(2).split(_x)),
    {"smooth": 3},
)
# a category found in one fold's test rows only: its rows get that fold's prior, not the global one
_te_cases["categories unseen in a fold (folds unbalanced on purpose)"] = (
    np.array([0, 0, 1, 1, 2, 2, 2, 3]),
    np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 5.0]),
    [(np.array([0, 1, 2, 3]), np.array([4, 5, 6, 7])), (np.array([4, 5, 6, 7]), np.array([0, 1, 2, 3]))],
    {"smooth": 0.0},
)
_te_cases["three folds of different sizes, test rows not sorted"] = (
    np.array([1, 2, 1, 2, 1, 3, 3, 1, 2]),
    np.array([0.5, 1.5, 2.0, 0.0, 1.0, 4.0, 3.0, 0.0, 1.0]),
    [
        (np.array([0, 1, 2, 3, 4]), np.array([8, 7, 6, 5])),
        (np.array([5, 6, 7, 8, 0]), np.array([4, 3, 2, 1])),
        (np.array([8, 1, 2, 3, 4, 5, 6, 7]), np.array([0])),
    ],
    {"smooth": 1.0},
)
_te_cases["one category"] = (np.zeros(10, dtype=np.int64), np.arange(10.0), list(KFold(5).split(np.zeros(10))), {})
_te_cases["folds as lists of ints"] = (
    np.array([3, 1, 3, 1]),
    np.array([1, 0, 0, 1]),
    [([2, 3], [0, 1]), ([0, 1], [2, 3])],
    {"smooth": 1.0},
)
_te_cases["smooth given alone"] = (_x, _y, list(KFold(5).split(_x)), {"smooth": 4.0})
for _name, (_c, _yy, _f, _kw) in _te_cases.items():
    _check_te(_name, _c, _yy, _f, **_kw)


# The folds as a generator (as KFold(...).split returns): built in your kernel and consumed once.
@in_kernel
def _encode_with_generator(cats, y, n_splits):
    return target_encode_oof(cats, y, KFold(n_splits, shuffle=True, random_state=0).split(cats), smooth=5.0)


_got = _encode_with_generator(_x, _y, 5)
_want = _te_reference(_x, _y, list(KFold(5, shuffle=True, random_state=0).split(_x)), smooth=5.0)
assert_close(np.asarray(_got, dtype=np.float64), _want, rtol=1e-12, atol=1e-12, msg="folds given as a generator")

# Equal to scikit-learn's TargetEncoder given the same folds.
for _k, _r in ((3, 0), (5, 7)):
    _want = TargetEncoder(
        smooth=10.0, target_type="continuous", cv=KFold(_k, shuffle=True, random_state=_r)
    ).fit_transform(_x[:, None], _y)[:, 0]
    _got = _check_te(f"TargetEncoder, {_k} folds", _x, _y, list(KFold(_k, shuffle=True, random_state=_r).split(_x)))
    assert_close(_got, _want, rtol=1e-12, atol=1e-12, msg=f"equal to TargetEncoder with KFold({_k}) folds")

# The leak probe: flipping y[i] must not change row i's own encoding (it may change others').
_folds = list(KFold(4, shuffle=True, random_state=9).split(_x))
_base = target_encode_oof(_x, _y, _folds, smooth=1.0)
for _i in (0, 17, 123, 399):
    _flipped = _y.copy()
    _flipped[_i] = 1 - _flipped[_i]
    _after = target_encode_oof(_x, _flipped, _folds, smooth=1.0)
    assert _after[_i] == _base[_i], (
        f"flipping y[{_i}] changed row {_i}'s own encoding: its label leaks into its feature"
    )

for _bad in (-1.0, -1e-9):
    try:
        target_encode_oof(cats_2, y_2, folds_2, smooth=_bad)
    except ValueError:
        pass
    else:
        raise AssertionError(f"smooth={_bad} should raise ValueError")
### END HIDDEN TESTS
print("target_encode_oof: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-gini-split", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 3 — The best Gini split of one feature (3 points)
#
# A decision tree grows by asking, at every node, for each feature: *which threshold splits these
# rows into the two purest halves?* Purity is measured by the Gini impurity of a set of labels,
# $G = 1 - \sum_k p_k^2$, where $p_k$ is the share of class $k$ (0 for a pure set).
#
# Write `best_gini_split(x, y)` returning `(threshold, impurity)` as two Python floats:
#
# - `x` (length N >= 2): one numeric feature (ints or floats, unsorted, with repeated values).
#   `y` (length N): integer class labels, two or more classes.
# - The candidate thresholds are the midpoints `(a + b) / 2` of every two consecutive **distinct**
#   values `a < b` of `x`, computed in float64 (also for a float32 `x`). A threshold `t` sends the
#   rows with `x <= t` left and the rest right.
# - `impurity` is the weighted Gini impurity of the two sides, `(n_left * G_left + n_right *
#   G_right) / N`. With `best` the smallest impurity of all candidates, return the **smallest**
#   threshold whose impurity is below `best + 1e-12` (so rounding cannot decide between thresholds
#   that are equally good on paper), together with that threshold's own impurity.
# - Raise `ValueError` if `x` has fewer than two distinct values (there is nothing to split).
# - Do not modify the inputs. N can be 1 000 000 (with as many distinct values): sort once, then
#   count with cumulative sums, rather than recounting the rows for every threshold.
#
# Where one threshold is clearly best, it equals the `tree_.threshold[0]` of a fitted
# `DecisionTreeClassifier(max_depth=1)` (up to the tree's float32 arithmetic; on near-ties the
# tree, which has no tolerance, may pick another). No two values of `x` in the tests are
# neighbouring floating-point numbers. Do not fit a scikit-learn tree.


# %% nbgrader={"grade": false, "grade_id": "gini-split-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def best_gini_split(x, y) -> tuple[float, float]:
    """``(threshold, weighted Gini impurity)`` of the best split ``x <= threshold`` of one feature."""
    ### BEGIN SOLUTION
    x = np.asarray(x, dtype=np.float64)
    _, labels = np.unique(y, return_inverse=True)
    order = np.argsort(x)
    xs, ys = x[order], labels[order]
    n = len(xs)
    one_hot = np.eye(labels.max() + 1)[ys]  # (N, K)
    left = np.cumsum(one_hot, axis=0)[:-1]  # (N-1, K) class counts of the first i+1 rows
    right = one_hot.sum(axis=0) - left
    n_left = np.arange(1, n)
    n_right = n - n_left
    gini_left = 1.0 - ((left / n_left[:, None]) ** 2).sum(axis=1)
    gini_right = 1.0 - ((right / n_right[:, None]) ** 2).sum(axis=1)
    impurity = (n_left * gini_left + n_right * gini_right) / n
    valid = xs[1:] > xs[:-1]  # a cut only between two distinct values
    if not valid.any():
        raise ValueError("x needs at least two distinct values to be split")
    best = impurity[valid].min()
    i = np.flatnonzero(valid & (impurity < best + 1e-12))[0]
    return float((xs[i] + xs[i + 1]) / 2), float(impurity[i])
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-gini-split", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
x_3 = np.array([3.0, 1.0, 2.0, 4.0, 5.0, 6.0])
y_3 = np.array([0, 0, 0, 1, 1, 1])
t_3, g_3 = best_gini_split(x_3, y_3)
assert isinstance(t_3, float) and isinstance(g_3, float), "return two Python floats"
assert t_3 == 3.5 and g_3 == 0.0, f"a perfect split at 3.5 with impurity 0, got ({t_3}, {g_3})"
_x3 = np.random.default_rng(3).normal(size=200)
_y3 = (_x3 + np.random.default_rng(4).normal(size=200) > 0.3).astype(np.int64)
_tree3 = DecisionTreeClassifier(max_depth=1, random_state=0).fit(_x3[:, None], _y3)
t_3, g_3 = best_gini_split(_x3, _y3)
assert_close(t_3, float(_tree3.tree_.threshold[0]), rtol=1e-6, atol=1e-7, msg="threshold equal to a depth-1 tree's")
try:
    best_gini_split(np.array([2.0, 2.0, 2.0]), np.array([0, 1, 0]))
except ValueError:
    pass
else:
    raise AssertionError("a constant feature should raise ValueError")
### BEGIN HIDDEN TESTS
_forbidden_gini = ("sklearn.tree.DecisionTreeClassifier", "sklearn.tree.DecisionTreeRegressor")


def _gini_reference(x, y):
    """Every candidate threshold by a float64 loop; the smallest within 1e-12 of the best."""
    x = [float(v) for v in x]
    y = [int(v) for v in y]
    n = len(x)
    values = sorted(set(x))
    candidates = []
    for k in range(len(values) - 1):
        t = (values[k] + values[k + 1]) / 2
        total = 0.0
        for side in ([y[i] for i in range(n) if x[i] <= t], [y[i] for i in range(n) if x[i] > t]):
            g = 1.0 - sum((side.count(k) / len(side)) ** 2 for k in set(side))
            total += len(side) * g
        candidates.append((t, total / n))
    best = min(g for _, g in candidates)
    return next((t, g) for t, g in candidates if g < best + 1e-12)


def _check_gini(name, x, y, tree=True):
    x_before, y_before = np.array(x, copy=True), np.array(y, copy=True)
    got = call_without(best_gini_split, x, y, forbidden=_forbidden_gini)
    assert isinstance(got, tuple) and len(got) == 2, f"{name}: return a pair (threshold, impurity), got {got!r}"
    t, g = got
    assert isinstance(t, float) and isinstance(g, float), (
        f"{name}: return two Python floats, got {type(t).__name__}, {type(g).__name__}"
    )
    want_t, want_g = _gini_reference(x, y)
    assert_close(t, want_t, rtol=1e-12, atol=1e-12, msg=f"threshold, {name}")
    assert_close(g, want_g, rtol=1e-9, atol=1e-12, msg=f"weighted Gini impurity, {name}")
    if tree:
        fitted = DecisionTreeClassifier(max_depth=1, random_state=0).fit(np.asarray(x, dtype=np.float64)[:, None], y)
        assert fitted.tree_.node_count == 3
        assert_close(
            t, float(fitted.tree_.threshold[0]), rtol=1e-6, atol=1e-7, msg=f"threshold vs a depth-1 tree, {name}"
        )
    assert np.array_equal(np.asarray(x), x_before) and np.array_equal(np.asarray(y), y_before), (
        f"{name}: best_gini_split must not modify its inputs"
    )


_rng = np.random.default_rng(grading_seed("test-gini-split", 23))
_xs = _rng.normal(size=300)
_gini_cases = {
    "the example": (x_3, y_3, True),
    "noisy threshold, 300 rows": (_xs, (_xs + _rng.normal(0, 0.5, 300) > -0.2).astype(np.int64), True),
    "three classes": (_xs, np.digitize(_xs + _rng.normal(0, 0.3, 300), [-0.5, 0.7]), True),
    "labels not 0..K-1": (_xs, np.where(_xs > 0.4, 7, -3), True),
    "integer feature with many repeats": (_rng.integers(0, 6, 200), _rng.integers(0, 2, 200), False),
    "two rows": (np.array([5.0, 1.0]), np.array([1, 0]), True),
    "two distinct values, many rows": (np.array([1, 1, 1, 2, 2, 1, 2]), np.array([0, 0, 1, 1, 1, 0, 0]), True),
    "negative and unsorted feature": (
        np.array([-3.5, 2.0, -10.0, 0.0, 7.25, -1.0]),
        np.array([1, 0, 1, 0, 0, 1]),
        True,
    ),
    "float32 feature": (_xs.astype(np.float32)[:50], (_xs[:50] > 0.1).astype(np.int64), False),
    # float32 0.1 and 0.7: their midpoint is 0.39999999478... in float64, 0.4000000059... in float32
    "float32 feature, midpoint in float64": (
        np.array([0.1, 0.7, 0.9, 0.05], dtype=np.float32),
        np.array([0, 1, 1, 0]),
        False,
    ),
    "lists": ([3, 1, 2, 5], [1, 0, 0, 1], True),
    # 1.5 and 3.5 give the same impurity (1/3): the smaller wins
    "two equally good thresholds": (np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 1, 1, 0]), False),
    # a pure set: every threshold has impurity 0, the smallest is returned
    "one class only": (np.array([4.0, 1.0, 3.0]), np.array([2, 2, 2]), False),
    "boolean labels": (np.array([0.5, 0.1, 0.9, 0.7]), np.array([False, False, True, True]), True),
}
for _name, (_x, _y, _tree) in _gini_cases.items():
    _check_gini(_name, _x, _y, _tree)

# a million distinct values: a loop that recounts the rows for each threshold runs out of time
_big = _rng.normal(size=1_000_000)
_t, _g = best_gini_split(_big, (_big > 0.25).astype(np.int64))
assert abs(_t - 0.25) < 1e-3 and _g == 0.0, f"1 000 000 rows split at 0.25: got ({_t}, {_g})"

for _name, (_x, _y) in {
    "constant feature": (np.array([2.0, 2.0, 2.0]), np.array([0, 1, 0])),
    "one row": (np.array([1.0]), np.array([1])),
}.items():
    try:
        best_gini_split(_x, _y)
    except ValueError:
        pass
    else:
        raise AssertionError(f"{_name}: best_gini_split should raise ValueError")
### END HIDDEN TESTS
print("best_gini_split: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-boosting", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 4 — Gradient boosting with squared loss (3 points)
#
# Gradient boosting adds small trees one after another, each fitted to what the ensemble still
# gets wrong. With the squared loss $\frac12 (y - F)^2$ the negative gradient is the residual
# $y - F$, and the algorithm is:
#
# 1. $F_0$ = the mean of `y_train` (a constant);
# 2. for $m = 1, \dots, M$: fit a regression tree $h_m$ to the residuals $r = y - F_{m-1}(X)$ on
#    the training rows, and set $F_m = F_{m-1} + \eta \, h_m$ ($\eta$ is the learning rate).
#
# Write `boosted_predictions(X_train, y_train, X_test, n_estimators, learning_rate, max_depth)`
# that returns $F_M$ at the rows of `X_test`, a float64 array of length `len(X_test)`:
#
# - `X_train` (N, D) and `X_test` (M, D) are 2-D numeric arrays (D may be 1; M >= 1);
#   `y_train` (length N, an array or a list) holds numbers (int or float).
# - Each tree is scikit-learn's `DecisionTreeRegressor(max_depth=max_depth, random_state=rng)`,
#   where `rng = np.random.RandomState(0)` is created
#   once per call and shared by all the trees. That is what `GradientBoostingRegressor` does: a
#   tree breaks ties between equally good splits (a node of two rows splits equally well on
#   every feature) with random draws, so equal predictions need the same stream of draws.
# - `n_estimators = 0` gives the mean of `y_train` for every test row.
# - Raise `ValueError` if `n_estimators < 0` or `learning_rate <= 0`.
# - Do not modify the inputs.
#
# The result equals `GradientBoostingRegressor(n_estimators=n_estimators,
# learning_rate=learning_rate, max_depth=max_depth, random_state=0).fit(X_train,
# y_train).predict(X_test)` to about 1e-10 (the hidden tests use features without ties).
# Do not use scikit-learn's gradient boosting estimators or `mlcraft.models.boosting`.


# %% nbgrader={"grade": false, "grade_id": "boosting-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def boosted_predictions(
    X_train, y_train, X_test, n_estimators: int, learning_rate: float, max_depth: int
) -> np.ndarray:
    """Squared-loss gradient boosting of ``n_estimators`` trees; its predictions at ``X_test`` (float64)."""
    ### BEGIN SOLUTION
    if n_estimators < 0:
        raise ValueError(f"n_estimators must be >= 0, got {n_estimators}")
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    y = np.asarray(y_train)
    f_train = np.full(len(y), y.mean())
    f_test = np.full(len(X_test), y.mean())
    rng = np.random.RandomState(0)  # one stream for every tree, as GradientBoostingRegressor(random_state=0)
    for _ in range(n_estimators):
        tree = DecisionTreeRegressor(max_depth=max_depth, random_state=rng)
        tree.fit(X_train, y - f_train)
        f_train = f_train + learning_rate * tree.predict(X_train)
        f_test = f_test + learning_rate * tree.predict(X_test)
    return f_test
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-boosting", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
_r4 = np.random.default_rng(4)
X_4 = _r4.uniform(-2, 2, (120, 3))
y_4 = np.sin(X_4[:, 0]) + X_4[:, 1] ** 2 + _r4.normal(0, 0.1, 120)
Xt_4 = _r4.uniform(-2, 2, (30, 3))
pred_4 = boosted_predictions(X_4, y_4, Xt_4, n_estimators=20, learning_rate=0.1, max_depth=2)
assert isinstance(pred_4, np.ndarray) and pred_4.dtype == np.float64 and pred_4.shape == (30,), (
    "a float64 array of length M"
)
_want4 = (
    GradientBoostingRegressor(n_estimators=20, learning_rate=0.1, max_depth=2, random_state=0)
    .fit(X_4, y_4)
    .predict(Xt_4)
)
assert_close(pred_4, _want4, rtol=1e-10, atol=1e-10, msg="equal to GradientBoostingRegressor, 20 trees")
assert_close(
    boosted_predictions(X_4, y_4, Xt_4, 0, 0.1, 2),
    np.full(30, y_4.mean()),
    rtol=1e-12,
    atol=1e-12,
    msg="0 trees: the mean",
)
### BEGIN HIDDEN TESTS
_forbidden_gb = (
    "sklearn.ensemble.GradientBoostingRegressor",
    "sklearn.ensemble.HistGradientBoostingRegressor",
    "mlcraft.models.boosting.GradientBoosting",
)


def _check_gb(name, X, y, Xt, n, lr, depth):
    before = [np.array(a, copy=True) for a in (X, y, Xt)]
    got = call_without(boosted_predictions, X, y, Xt, n, lr, depth, forbidden=_forbidden_gb)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64, (
        f"{name}: return a float64 NumPy array, got {type(got).__name__} {getattr(got, 'dtype', '')}"
    )
    assert got.shape == (len(Xt),), f"{name}: shape should be ({len(Xt)},), got {got.shape}"
    if n == 0:
        want = np.full(len(Xt), np.mean(np.asarray(y, dtype=np.float64)))
    else:
        model = GradientBoostingRegressor(n_estimators=n, learning_rate=lr, max_depth=depth, random_state=0)
        want = model.fit(X, y).predict(Xt)
    assert_close(
        got, want, rtol=1e-10, atol=1e-10, msg=f"boosted predictions, {name} ({n} trees, lr {lr}, depth {depth})"
    )
    for a, b in zip((X, y, Xt), before, strict=True):
        assert np.array_equal(np.asarray(a), b), f"{name}: boosted_predictions must not modify its inputs"


_rng = np.random.default_rng(grading_seed("test-boosting", 44))
_X = _rng.uniform(-3, 3, (150, 4))
_y = _X[:, 0] * _X[:, 1] + np.cos(_X[:, 2]) + _rng.normal(0, 0.2, 150)
_Xt = _rng.uniform(-3, 3, (40, 4))
_gb_cases = {
    "the example": (X_4, y_4, Xt_4, 20, 0.1, 2),
    "one tree, learning rate 1": (_X, _y, _Xt, 1, 1.0, 3),
    "many small steps": (_X, _y, _Xt, 40, 0.05, 1),
    "deep trees": (_X, _y, _Xt, 8, 0.3, 5),
    "learning rate above 1": (_X, _y, _Xt, 5, 1.5, 2),
    "one feature": (_X[:, :1], _y, _Xt[:, :1], 15, 0.2, 3),
    "one test row": (_X, _y, _Xt[:1], 10, 0.1, 3),
    "integer target": (_X, np.round(_y * 3).astype(np.int64), _Xt, 12, 0.1, 2),
    "target as a list": (_X, _y.tolist(), _Xt, 6, 0.2, 2),
    "float32 features": (_X.astype(np.float32), _y, _Xt.astype(np.float32), 10, 0.1, 3),
    "no trees: the mean": (_X, _y, _Xt, 0, 0.1, 3),
    "no trees, integer target": (_X, np.arange(150), _Xt, 0, 0.5, 1),
    "predict on the training rows": (_X, _y, _X, 10, 0.1, 3),
}
for _name, _args in _gb_cases.items():
    _check_gb(_name, *_args)

for _name, _args in {
    "n_estimators=-1": (X_4, y_4, Xt_4, -1, 0.1, 2),
    "learning_rate=0": (X_4, y_4, Xt_4, 5, 0.0, 2),
    "learning_rate=-0.1": (X_4, y_4, Xt_4, 5, -0.1, 2),
}.items():
    try:
        boosted_predictions(*_args)
    except ValueError:
        pass
    else:
        raise AssertionError(f"boosted_predictions with {_name} should raise ValueError")
### END HIDDEN TESTS
print("boosted_predictions: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-roc-auc", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 5 — ROC-AUC with ties, in O(N log N) (3 points)
#
# The area under the ROC curve is the probability that a random positive row scores higher than a
# random negative one, with a tie counting one half (the Mann–Whitney statistic):
#
# $$\text{AUC} = \frac{1}{n_+ n_-} \sum_{i \in +} \sum_{j \in -} \Big( [s_i > s_j] + \tfrac12 [s_i = s_j] \Big).$$
#
# The double sum is O(n₊ n₋): far too slow for a million scores. With ranks (the average rank
# for tied scores) it is $\big(R_+ - n_+(n_+ + 1)/2\big) / (n_+ n_-)$, where $R_+$ is the sum of
# the positives' ranks (1 = lowest score).
#
# Write `roc_auc(y_true, scores)` returning the AUC as a Python float:
#
# - `y_true` (length N): 0/1 labels, as ints or bools. `scores` (length N): finite numbers of any
#   real dtype (ints, float32, float64); higher means "more likely positive". Lists work too.
# - Tied scores count one half, as above; the result does not depend on the order of the rows.
# - It equals `sklearn.metrics.roc_auc_score(y_true, scores)` to 1e-12.
# - Raise `ValueError` if `y_true` holds only one class (the AUC is undefined) or if the two
#   inputs have different lengths.
# - It must handle a million scores in about a second: no loop over pairs of rows.
#
# Do not call scikit-learn's `roc_auc_score`, `roc_curve` or `auc`, `scipy.stats.mannwhitneyu`,
# or the course package's `mlcraft.evaluation.classification.roc_auc`. `scipy.stats.rankdata`
# and `np.argsort` are fine.


# %% nbgrader={"grade": false, "grade_id": "roc-auc-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def roc_auc(y_true, scores) -> float:
    """P(score of a random positive > score of a random negative), ties counted one half."""
    ### BEGIN SOLUTION
    positive = np.asarray(y_true).astype(bool)
    s = np.asarray(scores)
    if len(positive) != len(s):
        raise ValueError(f"y_true and scores must have the same length, got {len(positive)} and {len(s)}")
    n_pos = positive.sum()
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("roc_auc needs both classes in y_true")
    sorted_scores = np.sort(s)
    below = np.searchsorted(sorted_scores, s[positive])  # scores strictly lower
    equal = np.searchsorted(sorted_scores, s[positive], side="right") - below  # equal scores, itself included
    rank_sum = np.sum(below + (equal + 1) / 2)  # average 1-based rank of each positive
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-roc-auc", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
y_5 = np.array([0, 0, 1, 1, 0, 1])
s_5 = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.4])
auc_5 = roc_auc(y_5, s_5)
assert isinstance(auc_5, float), f"roc_auc should return a Python float, got {type(auc_5).__name__}"
# pairs (positive, negative): 0.35 beats 0.1 only; 0.8 beats all three; 0.4 beats 0.1 and ties 0.4 twice
assert_close(auc_5, (1 + 3 + 2) / 9, rtol=1e-12, atol=1e-12, msg="AUC of the hand-counted example (with ties)")
assert_close(auc_5, float(roc_auc_score(y_5, s_5)), rtol=1e-12, atol=1e-12, msg="equal to roc_auc_score")
try:
    roc_auc(np.array([1, 1, 1]), np.array([0.2, 0.5, 0.9]))
except ValueError:
    pass
else:
    raise AssertionError("a single class should raise ValueError")
### BEGIN HIDDEN TESTS
_forbidden_auc = (
    "sklearn.metrics.roc_auc_score",
    "sklearn.metrics.roc_curve",
    "sklearn.metrics.auc",
    "sklearn.metrics._ranking._binary_roc_auc_score",
    "scipy.stats.mannwhitneyu",
    "mlcraft.evaluation.classification.roc_auc",
)


def _auc_reference(y, s):
    """The Mann-Whitney double sum in exact fractions over sorted unique scores."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype=np.float64)
    values, codes = np.unique(s, return_inverse=True)
    pos = np.bincount(codes[y], minlength=len(values)).astype(np.float64)
    neg = np.bincount(codes[~y], minlength=len(values)).astype(np.float64)
    neg_below = np.cumsum(neg) - neg
    return float(np.sum(pos * (neg_below + 0.5 * neg)) / (pos.sum() * neg.sum()))


def _check_auc(name, y, s):
    before = [np.array(y, copy=True), np.array(s, copy=True)]
    got = call_without(roc_auc, y, s, forbidden=_forbidden_auc)
    assert isinstance(got, float), f"{name}: roc_auc should return a Python float, got {type(got).__name__}"
    assert_close(got, _auc_reference(y, s), rtol=1e-12, atol=1e-12, msg=f"AUC, {name}")
    assert_close(got, float(roc_auc_score(y, s)), rtol=1e-12, atol=1e-12, msg=f"AUC vs roc_auc_score, {name}")
    assert np.array_equal(np.asarray(y), before[0]) and np.array_equal(np.asarray(s), before[1]), (
        f"{name}: roc_auc must not modify its inputs"
    )


_rng = np.random.default_rng(grading_seed("test-roc-auc", 55))
_yy = (_rng.uniform(size=2000) < 0.05).astype(np.int64)  # about 5% positives
_ss = _rng.normal(size=2000) + _yy
_auc_cases = {
    "the example": (y_5, s_5),
    "as lists": (y_5.tolist(), s_5.tolist()),
    "2000 rows, 5% positives": (_yy, _ss),
    "scores rounded to 1 decimal (many ties)": (_yy, np.round(_ss, 1)),
    "integer scores": (_yy, np.round(_ss * 2).astype(np.int64)),
    "float32 scores": (_yy, _ss.astype(np.float32)),
    "boolean labels": (_yy.astype(bool), _ss),
    "one positive, one negative": (np.array([1, 0]), np.array([0.3, 0.7])),
    "one positive among many": (np.eye(1, 50, 17, dtype=np.int64)[0], np.linspace(0, 1, 50)),
    "all scores equal": (np.array([0, 1, 0, 1, 1]), np.full(5, 0.5)),
    "perfect ranking": (np.array([0, 0, 1, 1]), np.array([1.0, 2.0, 3.0, 4.0])),
    "reversed ranking": (np.array([1, 1, 0, 0]), np.array([1.0, 2.0, 3.0, 4.0])),
    "negative and huge scores": (np.array([0, 1, 0, 1]), np.array([-1e300, 1e300, -5.0, -5.0])),
    "scores closer than float32 can tell apart": (np.array([0, 1, 1, 0]), 1.0 + np.array([0.0, 1e-12, 3e-12, 2e-12])),
}
for _name, (_y, _s) in _auc_cases.items():
    _check_auc(_name, _y, _s)

# the order of the rows does not matter
_perm = _rng.permutation(2000)
_a, _b = roc_auc(_yy, np.round(_ss, 1)), roc_auc(_yy[_perm], np.round(_ss, 1)[_perm])
assert abs(_a - _b) < 1e-12, f"shuffling the rows changed the AUC from {_a} to {_b}"

# a million scores with ties: O(N log N), not a loop over pairs
_y_big = (_rng.uniform(size=1_000_000) < 0.3).astype(np.int64)
_s_big = np.round(_rng.normal(size=1_000_000) + _y_big, 2)
assert_close(roc_auc(_y_big, _s_big), _auc_reference(_y_big, _s_big), rtol=1e-12, atol=1e-12, msg="AUC of 1e6 scores")

for _name, (_y, _s) in {
    "only negatives": (np.zeros(4, dtype=np.int64), np.array([0.1, 0.2, 0.3, 0.4])),
    "only positives (bool)": (np.ones(3, dtype=bool), np.array([0.1, 0.2, 0.3])),
    "lengths differ": (np.array([0, 1, 1]), np.array([0.1, 0.2])),
}.items():
    try:
        roc_auc(_y, _s)
    except ValueError:
        pass
    else:
        raise AssertionError(f"{_name}: roc_auc should raise ValueError")
### END HIDDEN TESTS
print("roc_auc: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "task-ece", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Task 6 — Expected calibration error (2 points)
#
# A model is calibrated when, among the rows it gives probability 0.8, about 80% are positive.
# The expected calibration error (ECE) bins the predicted probabilities and averages, over the
# bins, the gap between the share of positives and the mean prediction, weighted by the number
# of rows in the bin:
#
# $$\text{ECE} = \sum_{b} \frac{n_b}{N} \, \big| \bar y_b - \bar p_b \big|.$$
#
# Write `expected_calibration_error(y_true, probs, n_bins=10)` returning a Python float:
#
# - `y_true` (length N >= 1): 0/1 labels (ints or bools). `probs` (length N): predicted
#   probabilities of the positive class, each in `[0, 1]`, float32 or float64.
# - The bins are `n_bins` equal-width intervals with edges `np.linspace(0, 1, n_bins + 1)`.
#   Bin `b` holds the probabilities `p` with `edges[b] < p <= edges[b + 1]`, and the first bin
#   also holds `p = 0`. So a probability exactly on an inner edge belongs to the bin **below**
#   it (this is how `sklearn.calibration.calibration_curve` bins). The hidden tests put
#   probabilities exactly on edges only where the edge is exact in binary floating point
#   (0, 0.25, 0.5, 0.75, 1 for instance).
# - Empty bins contribute nothing.
# - `n_bins` is an integer `>= 1`; raise `ValueError` for a smaller one, and for any probability
#   outside `[0, 1]` (NaN included).
#
# Do not call the course package's `mlcraft.evaluation.classification` functions.


# %% nbgrader={"grade": false, "grade_id": "ece-answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def expected_calibration_error(y_true, probs, n_bins: int = 10) -> float:
    """ECE over ``n_bins`` equal-width bins ``(edges[b], edges[b+1]]`` (0 in the first bin)."""
    ### BEGIN SOLUTION
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    p = np.asarray(probs)
    if not np.all((p >= 0) & (p <= 1)):  # NaN fails both comparisons
        raise ValueError("probabilities must be in [0, 1]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], p)  # (N,) in [0, n_bins): p on an inner edge goes below
    gap = np.bincount(bins, weights=y_true, minlength=n_bins) - np.bincount(bins, weights=p, minlength=n_bins)
    return float(np.sum(np.abs(gap)) / len(p))  # |sum(y) - sum(p)| / N = n_b/N * |mean y - mean p|
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-ece", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
y_6 = np.array([0, 1, 1, 0, 1])
p_6 = np.array([0.1, 0.2, 0.9, 0.8, 0.95])
ece_6 = expected_calibration_error(y_6, p_6, n_bins=2)
assert isinstance(ece_6, float), f"expected_calibration_error should return a Python float, got {type(ece_6).__name__}"
# bin (0, 0.5]: mean y 1/2, mean p 0.15; bin (0.5, 1]: mean y 2/3, mean p 0.8833...
assert_close(ece_6, 2 / 5 * abs(0.5 - 0.15) + 3 / 5 * abs(2 / 3 - 2.65 / 3), rtol=1e-12, atol=1e-12, msg="ECE, 2 bins")
assert_close(expected_calibration_error(np.array([1, 0]), np.array([1.0, 0.0])), 0.0, rtol=0, atol=1e-15, msg="perfect")
### BEGIN HIDDEN TESTS
_forbidden_ece = (
    "mlcraft.evaluation.classification.expected_calibration_error",
    "mlcraft.evaluation.classification.reliability_curve",
)


def _ece_reference(y, p, n_bins=10):
    """A float64 loop over the bins, with the statement's edge rule."""
    y = [float(v) for v in np.asarray(y)]
    p = [float(v) for v in np.asarray(p, dtype=np.float64)]
    edges = [float(e) for e in np.linspace(0.0, 1.0, n_bins + 1)]
    total = 0.0
    for b in range(n_bins):
        members = [i for i, v in enumerate(p) if (edges[b] < v or (b == 0 and v == 0.0)) and v <= edges[b + 1]]
        if members:
            gap = sum(y[i] for i in members) / len(members) - sum(p[i] for i in members) / len(members)
            total += len(members) / len(p) * abs(gap)
    return total


def _check_ece(name, y, p, **kwargs):
    before = [np.array(y, copy=True), np.array(p, copy=True)]
    got = call_without(expected_calibration_error, y, p, forbidden=_forbidden_ece, **kwargs)
    assert isinstance(got, float), f"{name}: return a Python float, got {type(got).__name__}"
    assert_close(got, _ece_reference(y, p, **kwargs), rtol=1e-9, atol=1e-12, msg=f"ECE, {name}")
    assert np.array_equal(np.asarray(y), before[0]) and np.array_equal(np.asarray(p), before[1]), (
        f"{name}: expected_calibration_error must not modify its inputs"
    )


_rng = np.random.default_rng(grading_seed("test-ece", 66))
_p = _rng.uniform(size=3000)
_ece_cases = {
    "the example, 2 bins": (y_6, p_6, {"n_bins": 2}),
    "calibrated by construction, default bins": ((_rng.uniform(size=3000) < _p).astype(np.int64), _p, {}),
    "over-confident model, 15 bins": ((_rng.uniform(size=3000) < _p).astype(np.int64), _p**0.3, {"n_bins": 15}),
    "one bin: |mean y - mean p|": (y_6, p_6, {"n_bins": 1}),
    "n_bins given alone": ((_rng.uniform(size=3000) < _p).astype(np.int64), np.sqrt(_p), {"n_bins": 7}),
    "float32 probabilities": ((_rng.uniform(size=3000) < _p).astype(np.int64), _p.astype(np.float32), {}),
    "boolean labels": (np.array([True, False, True]), np.array([0.7, 0.2, 0.4]), {}),
    "one row": (np.array([1]), np.array([0.3]), {}),
    "probabilities on inner edges go to the bin below": (
        np.array([1, 0, 0, 1, 1, 0]),
        np.array([0.25, 0.25, 0.5, 0.5, 0.75, 0.3]),
        {"n_bins": 4},
    ),
    "0 and 1 exactly": (np.array([0, 0, 1, 1, 1]), np.array([0.0, 0.0, 1.0, 1.0, 0.0]), {"n_bins": 4}),
    "0.5 on the edge of 2 bins": (np.array([1, 0, 1]), np.array([0.5, 0.5, 0.75]), {"n_bins": 2}),
    "more bins than rows (empty bins)": (np.array([0, 1]), np.array([0.05, 0.93]), {"n_bins": 50}),
    # 0 shares the first bin with (0, 0.5]: gaps of opposite signs partly cancel inside one bin
    "0 shares the first bin": (np.array([1, 0, 0]), np.array([0.0, 0.375, 0.375]), {"n_bins": 2}),
    "lists": ([0, 1, 1, 0], [0.2, 0.6, 0.9, 0.4], {}),
}
for _name, (_y, _pp, _kw) in _ece_cases.items():
    _check_ece(_name, _y, _pp, **_kw)

for _name, (_y, _pp, _kw) in {
    "n_bins=0": (y_6, p_6, {"n_bins": 0}),
    "a probability above 1": (np.array([0, 1]), np.array([0.5, 1.01]), {}),
    "a negative probability": (np.array([0, 1]), np.array([-0.01, 0.5]), {}),
    "a NaN probability": (np.array([0, 1]), np.array([0.5, np.nan]), {}),
}.items():
    try:
        expected_calibration_error(_y, _pp, **_kw)
    except ValueError:
        pass
    else:
        raise AssertionError(f"{_name}: expected_calibration_error should raise ValueError")
### END HIDDEN TESTS
print("expected_calibration_error: tests passed")


# %% [markdown] nbgrader={"grade": false, "grade_id": "self-check", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Self-check
#
# 1. Your `group_time_split` keeps a customer who started early and stayed late entirely in train,
#    so some train rows are later than some test rows. Why is that still honest, and when would you
#    cut by row time instead?
# 2. With `smooth=0` and a category seen once in a fold's training rows, what is its encoding? Why is
#    that dangerous without out-of-fold encoding?
# 3. Why does a tree only consider thresholds between *distinct* values?
# 4. Boosting with `learning_rate=1` and one tree equals what simpler model?
# 5. An AUC of 0.5 from a model whose scores are all equal: is that a bug in your function?
# 6. A model has ECE 0 but AUC 0.5. Is it a good model?
#
# <details><summary>Answers</summary>
#
# 1. The split keeps each customer whole (no identity leaks) and the test customers are all newer
#    than the train customers, which is what serving new customers looks like. When the model
#    scores *known* customers in the future, a cut by row time (with a gap) is the honest one.
# 2. Its own label (the mean of one row). Computed on all rows, every once-seen category is encoded
#    as its row's answer, and the model learns to read it.
# 3. Any threshold between the same two neighbouring values sends the same rows left: only one
#    candidate per gap is distinct, and a cut inside a run of equal values cannot separate them.
# 4. The mean plus one regression tree fitted to the centred target: a plain regression tree.
# 5. No: every positive–negative pair is a tie, worth one half.
# 6. No: it is calibrated (for example, it predicts the base rate for everyone) but ranks nothing.
#
# </details>
