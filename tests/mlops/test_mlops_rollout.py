"""Tests for mlcraft.mlops.rollout: the z-test against SciPy's chi-squared test and a float64
formula, the sample-size formula against its definition and a simulation, canary assignment,
and each gate of the release gate alone and on its boundary."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import pytest
import scipy.stats  # type: ignore[import-untyped]  # no scipy-stubs in the environment

from mlcraft.mlops.registry import register_model
from mlcraft.mlops.rollout import (
    Alternative,
    canary_split,
    input_schema,
    release_gate,
    required_sample_size,
    two_proportion_ztest,
)
from mlcraft.mlops.tracking import Tracking

# --- two_proportion_ztest ------------------------------------------------------------------

TABLES = [(480, 600, 455, 600), (8000, 10000, 7800, 10000), (3, 10, 9, 12), (1, 1, 0, 1), (50, 51, 2, 700)]


@pytest.mark.parametrize(("s_a", "n_a", "s_b", "n_b"), TABLES)
def test_ztest_squared_is_pearson_chi2_without_correction(s_a: int, n_a: int, s_b: int, n_b: int) -> None:
    result = two_proportion_ztest(s_a, n_a, s_b, n_b)
    table = np.array([[s_a, n_a - s_a], [s_b, n_b - s_b]])
    chi2, p, dof, _ = scipy.stats.chi2_contingency(table, correction=False)
    assert dof == 1
    assert math.isclose(result.statistic**2, chi2, rel_tol=1e-10), (result.statistic, chi2)
    assert math.isclose(result.pvalue, p, rel_tol=1e-8, abs_tol=1e-300), (result.pvalue, p)


@pytest.mark.parametrize(("s_a", "n_a", "s_b", "n_b"), TABLES)
def test_ztest_matches_float64_formula_and_sign(s_a: int, n_a: int, s_b: int, n_b: int) -> None:
    p_a, p_b = s_a / n_a, s_b / n_b
    pooled = (s_a + s_b) / (n_a + n_b)
    z = (p_b - p_a) / math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    result = two_proportion_ztest(s_a, n_a, s_b, n_b)
    assert math.isclose(result.statistic, z, rel_tol=1e-12), (result.statistic, z)
    assert (result.rate_a, result.rate_b) == (p_a, p_b)
    assert math.isclose(result.difference, p_b - p_a, rel_tol=1e-12)
    two_sided = math.erfc(abs(z) / math.sqrt(2))
    assert math.isclose(result.pvalue, two_sided, rel_tol=1e-9)
    # One-sided: the p-value in the direction of the observed difference is half the two-sided one.
    greater = two_proportion_ztest(s_a, n_a, s_b, n_b, alternative="greater").pvalue
    less = two_proportion_ztest(s_a, n_a, s_b, n_b, alternative="less").pvalue
    assert math.isclose(greater + less, 1.0, rel_tol=1e-12)
    assert math.isclose(min(greater, less), two_sided / 2, rel_tol=1e-9)
    assert (less < greater) == (z < 0)


def test_ztest_swapping_arms_flips_the_sign() -> None:
    forward, backward = two_proportion_ztest(480, 600, 455, 600), two_proportion_ztest(455, 600, 480, 600)
    assert forward.statistic < 0 and math.isclose(forward.statistic, -backward.statistic, rel_tol=1e-12)
    assert math.isclose(forward.pvalue, backward.pvalue, rel_tol=1e-12)


def test_ztest_far_tail_keeps_precision() -> None:
    """1 - cdf would round to 0 here; the survival function does not."""
    result = two_proportion_ztest(7000, 10000, 6400, 10000)  # z about -9, p about 2e-19
    assert 1.0 - scipy.stats.norm.cdf(abs(result.statistic)) == 0.0  # the naive formula gives 0
    expected = 2 * scipy.stats.norm.sf(abs(result.statistic))
    assert 0.0 < result.pvalue < 1e-17
    assert result.pvalue == pytest.approx(expected, rel=1e-9, abs=0.0)


@pytest.mark.parametrize(("s_a", "s_b"), [(0, 0), (5, 5)])
def test_ztest_degenerate_pooled_rate_is_no_evidence(s_a: int, s_b: int) -> None:
    result = two_proportion_ztest(s_a, 5, s_b, 5)
    assert (result.statistic, result.pvalue) == (0.0, 1.0)
    assert two_proportion_ztest(s_a, 5, s_b, 5, alternative="less").pvalue == 0.5


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((1, 0, 1, 5), {}, "n_a must be >= 1"),
        ((6, 5, 1, 5), {}, r"successes_a must be in \[0, n_a=5\]"),
        ((1, 5, -1, 5), {}, "successes_b must be in"),
        ((1.5, 5, 1, 5), {}, "successes_a must be an integer count, got 1.5"),
        ((True, 5, 1, 5), {}, "must be an integer count"),
        ((1, 5, 1, 5), {"alternative": "larger"}, "alternative must be one of"),
    ],
)
def test_ztest_rejects_bad_input(args: tuple[object, ...], kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        two_proportion_ztest(*args, **kwargs)  # type: ignore[arg-type]


def test_ztest_accepts_numpy_integers() -> None:
    result = two_proportion_ztest(np.int64(480), np.int64(600), np.int32(455), 600)
    assert result.statistic == two_proportion_ztest(480, 600, 455, 600).statistic


# --- required_sample_size --------------------------------------------------------------------


def _textbook_n(p1: float, delta: float, alpha: float, power: float, two_sided: bool = True) -> float:
    p2 = p1 + delta
    z_a = scipy.stats.norm.ppf(1 - alpha / 2 if two_sided else 1 - alpha)
    z_b = scipy.stats.norm.ppf(power)
    mean = (p1 + p2) / 2
    return float(
        (z_a * math.sqrt(2 * mean * (1 - mean)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / delta**2
    )


@pytest.mark.parametrize(
    ("p1", "delta", "alpha", "power"),
    [(0.1, 0.02, 0.05, 0.8), (0.8, -0.02, 0.05, 0.9), (0.5, 0.1, 0.01, 0.8), (0.02, 0.005, 0.05, 0.8)],
)
def test_sample_size_is_the_rounded_up_textbook_formula(p1: float, delta: float, alpha: float, power: float) -> None:
    n = required_sample_size(p1, delta, alpha=alpha, power=power)
    exact = _textbook_n(p1, delta, alpha, power)
    assert n == math.ceil(exact) and n - 1 < exact <= n
    # One-sided, in the direction of the effect, with the z-test's own names for the alternative.
    direction: Alternative = "greater" if delta > 0 else "less"
    one_sided = required_sample_size(p1, delta, alpha=alpha, power=power, alternative=direction)
    assert one_sided == math.ceil(_textbook_n(p1, delta, alpha, power, two_sided=False)) and one_sided < n


def test_sample_size_reference_value_and_scaling() -> None:
    # p 0.5 -> 0.6, alpha 0.05 two-sided, power 0.8: 387.3 per arm, by hand from
    # (1.959964 * sqrt(2 * 0.55 * 0.45) + 0.841621 * sqrt(0.25 + 0.24))**2 / 0.01.
    assert required_sample_size(0.5, 0.1) == 388
    # Halving the effect roughly quadruples n.
    assert 3.8 < required_sample_size(0.5, 0.05) / required_sample_size(0.5, 0.1) < 4.2


@pytest.mark.parametrize("alternative", ["two-sided", "less"])
def test_sample_size_gives_the_promised_power_in_simulation(alternative: Alternative) -> None:
    """At n per arm the z-test, run with the same ``alternative``, rejects in about `power` of the
    experiments; at n/4 far less often."""
    rng = np.random.default_rng(0)
    p1, delta, alpha, power = 0.8, -0.04, 0.05, 0.8
    n = required_sample_size(p1, delta, alpha=alpha, power=power, alternative=alternative)
    experiments = 2000
    for size, low, high in ((n, power - 0.035, power + 0.035), (n // 4, 0.0, 0.4)):
        a = rng.binomial(size, p1, experiments)
        b = rng.binomial(size, p1 + delta, experiments)
        rejected = np.mean(
            [
                two_proportion_ztest(int(x), size, int(y), size, alternative=alternative).pvalue < alpha
                for x, y in zip(a, b, strict=True)
            ]
        )
        assert low <= rejected <= high, f"{alternative} n={size}: rejection rate {rejected:.3f} not in [{low}, {high}]"


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((0.0, 0.1), {}, "must both be in"),
        ((0.95, 0.1), {}, "must both be in"),
        ((0.5, 0.0), {}, "non-zero"),
        ((0.5, 0.1), {"alpha": 0.0}, "alpha and power"),
        ((0.5, 0.1), {"power": 1.0}, "alpha and power"),
        ((0.5, 0.1), {"alternative": "one-sided"}, "alternative must be one of"),
        ((0.5, 0.1), {"alternative": "less"}, r"'less' cannot detect an effect of \+0.1"),
        ((0.5, -0.1), {"alternative": "greater"}, r"'greater' cannot detect an effect of -0.1"),
    ],
)
def test_sample_size_rejects_bad_input(args: tuple[float, float], kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        required_sample_size(*args, **kwargs)  # type: ignore[arg-type]


# --- canary_split ------------------------------------------------------------------------------


def test_canary_split_is_deterministic_per_id_and_salt() -> None:
    ids = [f"user-{i}" for i in range(2000)]
    first = canary_split(ids, 0.3, salt="exp-1")
    assert first.dtype == np.bool_ and first.shape == (2000,)
    np.testing.assert_array_equal(first, canary_split(ids, 0.3, salt="exp-1"))
    # The same user gets the same arm wherever it appears (order and repetition do not matter).
    shuffled = ids[::-1] + ids[:10]
    np.testing.assert_array_equal(canary_split(shuffled, 0.3, salt="exp-1"), np.r_[first[::-1], first[:10]])
    # A new salt re-randomizes: about 30% x 70% x 2 = 42% of users change arm.
    changed = float(np.mean(first != canary_split(ids, 0.3, salt="exp-2")))
    assert 0.35 < changed < 0.49, changed


@pytest.mark.parametrize("fraction", [0.01, 0.05, 0.5, 0.9])
def test_canary_fraction_is_respected_within_a_binomial_bound(fraction: float) -> None:
    n = 20_000
    share = float(canary_split(range(n), fraction, salt="bound").mean())
    bound = 4.5 * math.sqrt(fraction * (1 - fraction) / n)  # about 1 in 150 000 to fail by chance
    assert abs(share - fraction) <= bound, (share, fraction, bound)


def test_canary_growing_fraction_only_adds_users() -> None:
    ids = range(5000)
    small, large = canary_split(ids, 0.05, salt="ramp"), canary_split(ids, 0.2, salt="ramp")
    assert np.all(large[small]) and large.sum() > small.sum()


def test_canary_matches_a_hash_computed_by_hand() -> None:
    ids: list[str | int] = ["alice", "bob", 7, "ünïcode"]
    for salt in ("s", "exp:2024"):
        expected = [
            int.from_bytes(hashlib.blake2b(f"{len(salt)}:{salt}:{rid}".encode(), digest_size=8).digest(), "big") / 2**64
            < 0.5
            for rid in ids
        ]
        assert canary_split(ids, 0.5, salt=salt).tolist() == expected, salt


def test_canary_assignment_is_pinned_across_processes_and_releases() -> None:
    """Hard-coded arms: the same in every process (Python's ``hash()`` of a str changes with
    PYTHONHASHSEED) and in every release (a change of encoding would move live users between arms)."""
    ids = [f"user-{i}" for i in range(16)]
    pinned = "0101100101100101"  # canary_split(ids, 0.5, salt="tabular-mlp-v4"), 1 = candidate
    assert "".join(str(int(arm)) for arm in canary_split(ids, 0.5, salt="tabular-mlp-v4")) == pinned


def test_canary_salt_and_id_are_encoded_unambiguously() -> None:
    """Salt "a:b" with id "c" must not be the same key as salt "a" with id "b:c"."""
    with_colon_in_salt = canary_split([str(i) for i in range(200)], 0.5, salt="a:b")
    with_colon_in_id = canary_split([f"b:{i}" for i in range(200)], 0.5, salt="a")
    assert not np.array_equal(with_colon_in_salt, with_colon_in_id)  # equal by chance: 2**-200


def test_canary_ids_are_str_or_int_and_an_int_is_its_decimal_text() -> None:
    ids = list(range(300))
    as_int = canary_split(ids, 0.5, salt="types")
    np.testing.assert_array_equal(as_int, canary_split([str(i) for i in ids], 0.5, salt="types"))
    np.testing.assert_array_equal(as_int, canary_split(np.arange(300, dtype=np.int64), 0.5, salt="types"))
    for bad in (1.0, True, None, b"7"):
        with pytest.raises(TypeError, match="request ids must be str or int"):
            canary_split(["ok", bad], 0.5, salt="types")  # type: ignore[list-item]
    with pytest.raises(TypeError, match="salt must be a str, got int"):
        canary_split(["ok"], 0.5, salt=7)  # type: ignore[arg-type]


def test_canary_edges() -> None:
    assert canary_split([], 0.5, salt="x").shape == (0,)
    assert canary_split((i for i in range(3)), 0.5, salt="x").shape == (3,)  # any iterable
    assert not canary_split(range(100), 0.0, salt="x").any()
    assert canary_split(range(100), 1.0, salt="x").all()
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\], got 1.5"):
        canary_split([1], 1.5, salt="x")
    with pytest.raises(ValueError, match="salt must be"):
        canary_split([1], 0.5, salt="")


# --- release_gate ------------------------------------------------------------------------------

SCHEMA = [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 8]}}]
GOOD: dict[str, Any] = {
    "candidate_accuracy": 0.80,
    "champion_accuracy": 0.80,
    "parity_error": 1e-6,
    "latency_p99_ms": 1.0,
    "candidate_schema": SCHEMA,
    "champion_schema": SCHEMA,
}


def test_release_gate_passes_a_good_candidate() -> None:
    assert release_gate(**GOOD) == []


@pytest.mark.parametrize(
    ("change", "gate", "text"),
    [
        ({"candidate_accuracy": 0.7}, "accuracy", "candidate 0.7000 < champion 0.8000"),
        ({"candidate_accuracy": float("nan")}, "accuracy", "not measured (candidate nan, champion 0.8)"),
        ({"candidate_accuracy": None}, "accuracy", "not measured (candidate None, champion 0.8)"),
        ({"champion_accuracy": None}, "accuracy", "candidate 0.8, champion None)"),
        ({"champion_accuracy": float("inf")}, "accuracy", "candidate 0.8, champion inf)"),
        ({"parity_error": float("-inf")}, "onnx_parity", "not measured"),
        ({"latency_p99_ms": float("-inf")}, "latency", "not measured"),
        ({"latency_p99_ms": float("nan")}, "latency", "not measured"),
        ({"parity_error": 2e-4}, "onnx_parity", "2.000e-04 > atol"),
        ({"parity_error": None}, "onnx_parity", "not measured"),
        ({"parity_error": float("nan")}, "onnx_parity", "not measured"),
        ({"latency_p99_ms": 25.0}, "latency", "p99 25.000 ms > budget 20.000 ms"),
        ({"latency_p99_ms": None}, "latency", "not measured"),
        (
            {"candidate_schema": [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 9]}}]},
            "input_schema",
            "!=",
        ),
        (
            {"candidate_schema": [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 8]}}]},
            "input_schema",
            "float64",
        ),
        ({"champion_schema": None}, "input_schema", "not recorded"),
    ],
)
def test_each_gate_fails_alone(change: dict[str, Any], gate: str, text: str) -> None:
    failed = release_gate(**{**GOOD, **change})
    assert len(failed) == 1 and failed[0].startswith(f"{gate}:"), failed
    assert text in failed[0], failed


def test_release_gate_boundaries_pass_and_a_hair_beyond_fails() -> None:
    at_floor = {**GOOD, "champion_accuracy": 0.85, "candidate_accuracy": 0.85 - 0.01}
    assert release_gate(**at_floor, accuracy_margin=0.01) == []
    below = {**at_floor, "candidate_accuracy": np.nextafter(0.85 - 0.01, 0.0)}
    assert [f.split(":")[0] for f in release_gate(**below, accuracy_margin=0.01)] == ["accuracy"]
    edges = {**GOOD, "parity_error": 1e-4, "latency_p99_ms": 20.0}
    assert release_gate(**edges, parity_atol=1e-4, latency_budget_ms=20.0) == []
    beyond = {**GOOD, "parity_error": np.nextafter(1e-4, 1.0), "latency_p99_ms": np.nextafter(20.0, 30.0)}
    names = [f.split(":")[0] for f in release_gate(**beyond, parity_atol=1e-4, latency_budget_ms=20.0)]
    assert names == ["onnx_parity", "latency"]


def test_release_gate_reports_every_failed_gate() -> None:
    bad = {**GOOD, "candidate_accuracy": 0.3, "parity_error": None, "latency_p99_ms": 99.0, "candidate_schema": []}
    names = [f.split(":")[0] for f in release_gate(**bad)]
    assert names == ["accuracy", "onnx_parity", "latency", "input_schema"]


@pytest.mark.parametrize("threshold", ["accuracy_margin", "parity_atol", "latency_budget_ms"])
def test_release_gate_rejects_bad_thresholds(threshold: str) -> None:
    with pytest.raises(ValueError, match=f"{threshold} must be a finite number >= 0, got -1"):
        release_gate(**{**GOOD, threshold: -1.0})
    with pytest.raises(ValueError, match=threshold):
        release_gate(**{**GOOD, threshold: float("inf")})


def test_input_schema_reads_the_registered_signature(logged: tuple[Tracking, str]) -> None:
    tracking, uri = logged
    version = register_model(tracking, uri, "schema-model")
    schema = input_schema(tracking, "schema-model", version)
    assert schema == [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 8]}}]
    assert release_gate(**{**GOOD, "candidate_schema": schema, "champion_schema": SCHEMA}) == []
