"""Tests for mlcraft.data.target_encoding against sklearn.preprocessing.TargetEncoder."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray
from sklearn.model_selection import KFold, StratifiedKFold  # type: ignore[import-untyped]
from sklearn.preprocessing import TargetEncoder  # type: ignore[import-untyped]

from mlcraft.classroom.testing import assert_close
from mlcraft.data.target_encoding import fit_target_encoding, target_encode_oof

TOL = 1e-12  # |ours - sklearn| allowed on every encoding (targets are O(1)-O(10))
Target = Literal["binary", "continuous"]
Kind = Literal["str", "int", "str_nan", "float_nan"]
SMOOTHS: list[Literal["auto"] | float] = ["auto", 0.0, 1.0, 25.0]


def _data(seed: int, kind: Kind, target: Target, n: int = 600, levels: int = 40) -> tuple[NDArray[Any], NDArray[Any]]:
    """Categories with Zipf-like frequencies (many rare ones, some seen once) and a target that
    depends on the category. ``*_nan`` kinds make about 5% of the categories missing."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, levels + 1)
    level = rng.choice(levels, size=n, p=weights / weights.sum())
    effect = rng.normal(0, 1, levels)[level]
    if target == "binary":
        y: NDArray[Any] = (rng.random(n) < 1 / (1 + np.exp(-(effect - 1)))).astype(np.int64)
    else:
        y = 3.0 * effect + rng.normal(0, 2, n) + 10.0
    cats: NDArray[Any]
    if kind == "int":
        cats = level * 7 - 100  # negative and positive ints
    elif kind == "float_nan":
        cats = level.astype(np.float64)
        cats[rng.random(n) < 0.05] = np.nan
    else:
        cats = np.array([f"plan_{v:03d}" for v in level], dtype=object)
        if kind == "str_nan":
            cats[rng.random(n) < 0.05] = np.nan
    return cats, y


def _sklearn_oof(cats: NDArray[Any], y: NDArray[Any], target: Target, smooth: Any, cv: Any) -> NDArray[np.float64]:
    encoder = TargetEncoder(smooth=smooth, target_type=target, cv=cv)
    return np.asarray(encoder.fit_transform(cats[:, None], y)[:, 0], dtype=np.float64)


@pytest.mark.parametrize("smooth", SMOOTHS)
@pytest.mark.parametrize("kind", ["str", "int", "str_nan", "float_nan"])
@pytest.mark.parametrize("target", ["binary", "continuous"])
def test_oof_matches_sklearn_kfold(target: Target, kind: Kind, smooth: Literal["auto"] | float) -> None:
    cats, y = _data(1, kind, target)
    folds = list(KFold(5, shuffle=True, random_state=3).split(cats))
    ours = target_encode_oof(cats, y, folds, smooth=smooth)
    expected = _sklearn_oof(cats, y, target, smooth, KFold(5, shuffle=True, random_state=3))
    assert_close(ours, expected, rtol=0.0, atol=TOL, msg=f"{target}, {kind}, smooth={smooth}")


@pytest.mark.parametrize("smooth", SMOOTHS)
def test_oof_matches_sklearn_stratified_high_cardinality(smooth: Literal["auto"] | float) -> None:
    cats, y = _data(2, "str_nan", "binary", n=3000, levels=400)  # many levels absent from some folds
    folds = list(StratifiedKFold(4, shuffle=True, random_state=0).split(cats, y))
    ours = target_encode_oof(cats, y, folds, smooth=smooth)
    expected = _sklearn_oof(cats, y, "binary", smooth, StratifiedKFold(4, shuffle=True, random_state=0))
    assert_close(ours, expected, rtol=0.0, atol=TOL, msg=f"smooth={smooth}")


def test_oof_matches_sklearn_on_explicit_uneven_folds() -> None:
    cats, y = _data(3, "int", "continuous", n=200)
    perm = np.random.default_rng(0).permutation(200)
    tests = [perm[:10], perm[10:130], perm[130:]]  # sizes 10, 120, 70; indices unsorted
    folds = [(np.setdiff1d(perm, t)[::-1], t) for t in tests]  # train listed in descending order
    ours = target_encode_oof(cats, y, iter(folds))  # any iterable, consumed once
    assert_close(ours, _sklearn_oof(cats, y, "continuous", "auto", folds), rtol=0.0, atol=TOL, msg="explicit folds")


@pytest.mark.parametrize("smooth", SMOOTHS)
def test_unseen_category_in_a_fold_gets_that_folds_prior(smooth: Literal["auto"] | float) -> None:
    cats = np.array(["a", "a", "b", "b", "new", "a", "b", "a"], dtype=object)
    y = np.array([1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0])
    folds = [(np.arange(4), np.arange(4, 8)), (np.arange(4, 8), np.arange(4))]
    ours = target_encode_oof(cats, y, folds, smooth=smooth)
    assert abs(ours[4] - y[:4].mean()) <= 1e-15, "'new' is absent from fold 0's training rows"


@pytest.mark.parametrize("smooth", SMOOTHS)
@pytest.mark.parametrize("target", ["binary", "continuous"])
def test_leak_probe_own_target_never_moves_own_encoding(target: Target, smooth: Literal["auto"] | float) -> None:
    cats, y = _data(4, "str", target, n=300)
    folds = list(KFold(5, shuffle=True, random_state=0).split(cats))
    base = target_encode_oof(cats, y, folds, smooth=smooth)
    in_sample = fit_target_encoding(cats, y, smooth=smooth).transform(cats)
    moved_others = 0
    for i in range(0, 300, 10):
        changed = y.astype(np.float64).copy()
        changed[i] = 1 - changed[i] if target == "binary" else changed[i] + 50.0
        encoded = target_encode_oof(cats, changed, folds, smooth=smooth)
        assert encoded[i] == base[i], f"row {i}: its own target changed its out-of-fold encoding"
        moved_others += int(np.any(encoded != base))
        # The leak the OOF scheme prevents: fitted on every row, row i's encoding does move.
        assert fit_target_encoding(cats, changed, smooth=smooth).transform(cats)[i] != in_sample[i]
    assert moved_others == 30, "a changed target must move the encodings of the other folds' rows"


@pytest.mark.parametrize("smooth", SMOOTHS)
@pytest.mark.parametrize("target", ["binary", "continuous"])
def test_fit_transform_new_data_matches_sklearn(target: Target, smooth: Literal["auto"] | float) -> None:
    cats, y = _data(5, "str_nan", target)
    new = np.array(["plan_000", "plan_999", np.nan, "plan_003", "never", "plan_000"], dtype=object)
    fitted = fit_target_encoding(cats, y, smooth=smooth)
    expected = TargetEncoder(smooth=smooth, target_type=target).fit(cats[:, None], y).transform(new[:, None])[:, 0]
    assert_close(fitted.transform(new), expected, rtol=0.0, atol=TOL, msg=f"{target}, smooth={smooth}")
    assert fitted.transform(new)[1] == fitted.prior == float(np.mean(y))  # unseen -> prior exactly
    assert fitted.smooth == smooth and len(fitted.categories) == len(fitted.encodings)


def test_smooth_zero_is_the_category_mean_and_nan_is_a_category() -> None:
    cats, y = _data(6, "str_nan", "continuous")
    frame = pd.DataFrame({"c": cats, "y": y})
    means = frame.groupby("c", dropna=False)["y"].mean()  # oracle: pandas, NaN as a group
    fitted = fit_target_encoding(cats, y, smooth=0.0)
    assert_close(
        fitted.transform(np.asarray(means.index, dtype=object)), means.to_numpy(copy=True), rtol=1e-14, atol=0.0
    )
    nan_rows = pd.isna(cats)
    assert nan_rows.any() and fitted.transform(np.array([np.nan]))[0] == pytest.approx(y[nan_rows].mean(), abs=1e-12)
    unseen_nan = fit_target_encoding(cats[~nan_rows], y[~nan_rows], smooth=0.0)
    assert unseen_nan.transform(np.array([np.nan]))[0] == unseen_nan.prior  # NaN not seen in fit -> prior


def test_int_and_string_categories_encode_alike() -> None:
    cats, y = _data(7, "int", "binary")
    folds = list(KFold(3, shuffle=True, random_state=0).split(cats))
    as_ints = target_encode_oof(cats, y, folds)
    as_strings = target_encode_oof(cats.astype(str), y, folds)
    assert np.array_equal(as_ints, as_strings)
    assert np.array_equal(target_encode_oof(pd.Series(cats), pd.Series(y), folds), as_ints)  # pandas input


def test_auto_smooth_constant_target_gives_the_prior() -> None:
    cats = np.array(["a", "b", "a", "b", "c", "a"])
    assert np.array_equal(fit_target_encoding(cats, np.full(6, 2.5)).transform(cats), np.full(6, 2.5))


GOOD_FOLDS = [(np.array([2, 3]), np.array([0, 1])), (np.array([0, 1]), np.array([2, 3]))]
AB, Y = ["a", "b", "a", "b"], [1, 0, 1, 0]  # a valid table of four rows


@pytest.mark.parametrize(
    ("cats", "y", "folds", "smooth", "match"),
    [
        (AB, [1, 0, 1], GOOD_FOLDS, "auto", "same length, got 4 and 3"),
        ([], [], [], "auto", "empty"),
        (AB, [1, 0, np.nan, 1], GOOD_FOLDS, "auto", r"finite; NaN or inf at positions \[2\]"),
        (AB, ["x", "y", "x", "y"], GOOD_FOLDS, "auto", "numbers, got shape"),
        ([["a", "b"]], [1], GOOD_FOLDS, "auto", r"categories must be 1-D, got shape \(1, 2\)"),
        (AB, Y, GOOD_FOLDS, -1.0, "smooth must be 'auto' or a finite float >= 0, got -1.0"),
        (AB, Y, GOOD_FOLDS, "mean", "got 'mean'"),
        (AB, Y, GOOD_FOLDS, np.nan, "got nan"),
        (AB, Y, GOOD_FOLDS[:1], "auto", r"rows \[2, 3\] are tested \[0, 0\] times"),
        (AB, Y, [*GOOD_FOLDS, GOOD_FOLDS[0]], "auto", r"rows \[0, 1\] are tested \[2, 2\]"),
        (AB, Y, [([0, 2], [0, 1]), ([0, 1], [2, 3])], "auto", r"folds\[0\].*both.*\[0\]"),
        (AB, Y, [([], [0, 1, 2, 3])], "auto", r"folds\[0\] has no training rows"),
        (AB, Y, [([4], [0, 1, 2, 3])], "auto", r"outside \[0, 4\): \[4\]"),
    ],
)
def test_oof_rejects_bad_input(cats: Any, y: Any, folds: Any, smooth: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        target_encode_oof(np.asarray(cats, dtype=object), y, folds, smooth=smooth)


def test_oof_rejects_float_indices() -> None:
    with pytest.raises(TypeError, match="integer row indices"):
        target_encode_oof(["a", "b"], [1, 0], [([0.0], [1.0])])
