"""Tests for mlcraft.mlops.drift: PSI against a float64 loop, KS against scipy, drift reports."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
import scipy.special  # type: ignore[import-untyped]  # no scipy-stubs in the environment
import scipy.stats  # type: ignore[import-untyped]

from mlcraft.data.tabular import FEATURE_NAMES, make_tabular_data
from mlcraft.mlops.drift import (
    bin_fractions,
    drift_report,
    inject_drift,
    kolmogorov_sf,
    ks_test,
    plot_drift,
    psi,
)


def _psi_loop(reference: np.ndarray, live: np.ndarray, bins: int, floor: float) -> float:
    """PSI written out: reference quantile edges, counts by a plain loop, floored fractions."""
    ref = sorted(float(v) for v in reference)
    n = len(ref)
    edges: list[float] = []
    for i in range(1, bins):  # numpy's linear quantile, by hand
        position = (n - 1) * i / bins
        low = math.floor(position)
        high = min(low + 1, n - 1)
        edge = ref[low] + (ref[high] - ref[low]) * (position - low)
        if not edges or edge != edges[-1]:
            edges.append(edge)

    def fractions(values: np.ndarray) -> list[float]:
        counts = [0] * (len(edges) + 1)
        for v in values:
            index = sum(1 for e in edges if v >= e)  # bin i holds [edges[i-1], edges[i])
            counts[index] += 1
        return [c / len(values) for c in counts]

    total = 0.0
    for r, lv in zip(fractions(reference), fractions(live), strict=True):
        r, lv = max(r, floor), max(lv, floor)
        total += (lv - r) * math.log(lv / r)
    return total


CASES = [
    ("same distribution", lambda g: (g.normal(size=500), g.normal(size=400))),
    ("mean shift", lambda g: (g.normal(size=500), g.normal(0.7, 1.0, size=300))),
    ("scale change", lambda g: (g.normal(size=400), g.normal(0.0, 2.5, size=400))),
    ("discrete with ties", lambda g: (g.poisson(2.0, size=600).astype(float), g.poisson(3.0, size=200).astype(float))),
    ("live outside the reference range", lambda g: (g.uniform(0, 1, size=300), g.uniform(5, 6, size=100))),
    ("tiny windows", lambda g: (g.normal(size=7), g.normal(size=3))),
]


@pytest.mark.parametrize(("name", "make"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("bins", [2, 10, 20])
def test_psi_matches_float64_loop(
    name: str, make: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]], bins: int
) -> None:
    reference, live = make(np.random.default_rng(bins))
    expected = _psi_loop(reference, live, bins, 1e-4)
    got = psi(reference, live, bins=bins)
    assert math.isclose(got, expected, rel_tol=1e-12, abs_tol=1e-12), f"{name}: psi {got} != loop {expected}"


def test_psi_is_zero_for_identical_windows_and_grows_with_the_shift() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=5000)
    assert psi(reference, reference) == 0.0
    values = [psi(reference, reference + shift) for shift in (0.0, 0.1, 0.3, 0.6, 1.0)]
    assert all(a < b for a, b in itertools.pairwise(values)), f"PSI not increasing with shift: {values}"


def test_psi_floor_keeps_empty_bins_finite_and_sets_the_scale() -> None:
    reference = np.linspace(0.0, 1.0, 1000)
    live = np.full(100, 10.0)  # every live value in the last bin: nine bins empty in live
    value = psi(reference, live, bins=10)
    assert math.isfinite(value), f"PSI with empty bins must be finite, got {value}"
    # Last bin: (1 - 0.1) ln(1 / 0.1); each empty bin: (floor - 0.1) ln(floor / 0.1).
    expected = 0.9 * math.log(10.0) + 9 * (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    assert math.isclose(value, expected, rel_tol=1e-9), f"floored PSI {value} != {expected}"
    assert psi(reference, live, floor=1e-6) > value, "a lower floor must give a larger PSI for empty bins"


def test_bin_edges_come_from_the_reference_window() -> None:
    rng = np.random.default_rng(1)
    reference, live = rng.normal(size=10_000), rng.normal(3.0, 1.0, size=10_000)
    edges, ref_frac, live_frac = bin_fractions(reference, live, bins=10)
    np.testing.assert_allclose(edges, np.quantile(reference, np.linspace(0, 1, 11)[1:-1]), rtol=0, atol=0)
    np.testing.assert_allclose(ref_frac, 0.1, atol=1e-3, err_msg="reference deciles must hold 10% each")
    assert live_frac[-1] > 0.8, f"a shifted live window piles into the top reference bin: {live_frac}"
    assert not np.allclose(bin_fractions(live, reference)[0], edges), "edges must depend on which window is reference"


def test_psi_and_binning_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        psi([], [1.0])
    with pytest.raises(ValueError, match="non-finite"):
        psi([1.0, float("nan")], [1.0])
    with pytest.raises(ValueError, match="one-dimensional"):
        psi(np.zeros((3, 2)), [1.0])
    with pytest.raises(ValueError, match="bins must be >= 2"):
        psi([1.0, 2.0], [1.0], bins=1)
    with pytest.raises(ValueError, match="floor"):
        psi([1.0, 2.0], [1.0], floor=0.0)


KS_CASES = [
    (50, 60, 0.0, "continuous"),
    (500, 80, 0.3, "continuous"),
    (1000, 1000, 0.05, "continuous"),
    (300, 700, 0.0, "ties"),
    (200, 150, 0.5, "ties"),
    (1, 5, 0.0, "continuous"),
    (40, 40, 10.0, "continuous"),  # disjoint: D = 1
]


@pytest.mark.parametrize(("n", "m", "shift", "kind"), KS_CASES)
def test_ks_statistic_matches_scipy(n: int, m: int, shift: float, kind: str) -> None:
    rng = np.random.default_rng(n + m)
    if kind == "ties":
        a, b = rng.integers(0, 6, n).astype(float), (rng.integers(0, 6, m) + shift).astype(float)
    else:
        a, b = rng.normal(size=n), rng.normal(shift, 1.0, size=m)
    ours = ks_test(a, b)
    theirs = scipy.stats.ks_2samp(a, b)
    assert abs(ours.statistic - theirs.statistic) <= 1e-12, f"D {ours.statistic} != scipy {theirs.statistic}"
    en = n * m / (n + m)
    expected_p = float(scipy.special.kolmogorov(math.sqrt(en) * ours.statistic))
    assert abs(ours.pvalue - expected_p) <= 1e-12, f"p {ours.pvalue} != Kolmogorov Q {expected_p}"


def test_ks_pvalue_is_close_to_scipy_asymptotic_for_monitoring_window_sizes() -> None:
    rng = np.random.default_rng(7)
    for shift in (0.0, 0.05, 0.1, 0.2):
        a, b = rng.normal(size=3000), rng.normal(shift, 1.0, size=2000)
        ours = ks_test(a, b).pvalue
        theirs = scipy.stats.ks_2samp(a, b, method="asymp").pvalue
        assert abs(ours - theirs) < 5e-3, f"shift {shift}: p {ours} vs scipy asymptotic {theirs}"


@pytest.mark.parametrize("x", [0.0, 1e-3, 0.05, 0.2, 0.5, 0.8, 0.999, 1.0, 1.001, 1.36, 1.63, 2.0, 3.0, 6.0, 30.0])
def test_kolmogorov_sf_matches_scipy(x: float) -> None:
    expected = float(scipy.special.kolmogorov(x))
    assert abs(kolmogorov_sf(x) - expected) <= 1e-12, f"Q({x}) = {kolmogorov_sf(x)} != scipy {expected}"


def test_ks_rejects_empty_windows() -> None:
    with pytest.raises(ValueError, match="live is empty"):
        ks_test([1.0, 2.0], [])


def test_no_drift_example_flags_nothing() -> None:
    reference = make_tabular_data(4000, seed=1).features
    live = make_tabular_data(2000, seed=2).features  # same process, fresh rows
    report = drift_report(reference, live, FEATURE_NAMES)
    assert not report.any_drift, f"no drift was injected, yet flagged:\n{report.table()}"
    assert max(f.psi for f in report.features) < 0.05, report.table()


@pytest.mark.parametrize(("column", "shift", "scale"), [(1, 0.5, 1.0), (4, 0.0, 2.0), (3, 1.0, 1.0)])
def test_injected_drift_is_detected_on_that_feature_only(column: int, shift: float, scale: float) -> None:
    reference = make_tabular_data(4000, seed=1).features
    live = inject_drift(make_tabular_data(2000, seed=2).features, column, shift=shift, scale=scale)
    report = drift_report(reference, live, FEATURE_NAMES)
    assert report.drifted == [FEATURE_NAMES[column]], f"expected only {FEATURE_NAMES[column]}:\n{report.table()}"
    drifted = report.features[column]
    assert drifted.psi >= 0.2 or drifted.ks_pvalue < 0.01 / 8, report.table()


def test_inject_drift_moves_one_column_only() -> None:
    x = make_tabular_data(500, seed=3).features
    y = inject_drift(x, 2, shift=1.0, scale=2.0)
    np.testing.assert_array_equal(np.delete(y, 2, axis=1), np.delete(x, 2, axis=1))
    col, new = x[:, 2].astype(np.float64), y[:, 2].astype(np.float64)
    assert new.mean() == pytest.approx(col.mean() + col.std(), rel=1e-5)
    assert new.std() == pytest.approx(2 * col.std(), rel=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        inject_drift(x, 8)


def test_drift_report_validates_shapes_and_names() -> None:
    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match="must be"):
        drift_report(x, np.zeros((10, 2)))
    with pytest.raises(ValueError, match="feature names"):
        drift_report(x, x, ["a", "b"])


def test_plot_drift_draws_one_titled_panel_per_feature() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reference = make_tabular_data(1000, seed=1).features
    live = inject_drift(make_tabular_data(500, seed=2).features, 0, shift=1.0)
    report = drift_report(reference, live, FEATURE_NAMES)
    fig = plot_drift(reference, live, report)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == len(FEATURE_NAMES)
    assert visible[0].get_title().startswith("age") and "PSI" in visible[0].get_title()
    assert visible[0].title.get_color() == "tab:red", "a drifted feature's title must be red"
    plt.close(fig)


def test_psi_with_a_constant_reference() -> None:
    reference = np.full(100, 3.0)
    assert psi(reference, np.full(50, 3.0)) == 0.0
    edges, ref_frac, live_frac = bin_fractions(reference, np.array([1.0, 3.0, 5.0, 7.0]))
    np.testing.assert_array_equal(edges, [3.0])  # all deciles coincide: two bins, (-inf, 3) and [3, inf)
    np.testing.assert_allclose(ref_frac, [0.0, 1.0])
    np.testing.assert_allclose(live_frac, [0.25, 0.75])
    expected = (0.25 - 1e-4) * math.log(0.25 / 1e-4) + (0.75 - 1.0) * math.log(0.75)
    assert psi(reference, np.array([1.0, 3.0, 5.0, 7.0])) == pytest.approx(expected, rel=1e-12)
