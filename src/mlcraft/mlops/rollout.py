"""Release engineering: an offline release gate, deterministic canary assignment, and the
two-proportion z-test with its sample-size formula for deciding a canary or A/B test.

- The release gate follows the "ML Test Score" rubric (E. Breck et al., IEEE Big Data 2017):
  a model is released only if it is no worse than the one serving, the artifact served computes
  what was validated, it meets its latency budget and its input schema did not change.
- Canary assignment hashes the salt and the request id (BLAKE2b of ``len(salt):salt:id``, length
  prefixed so that no two (salt, id) pairs hash the same bytes), so a user stays in one arm across
  requests and processes, and a new ``salt`` re-randomizes for the next experiment (R. Kohavi,
  D. Tang, Y. Xu, *Trustworthy Online Controlled Experiments*, Cambridge UP 2020, ch. 4 and 14).
- :func:`two_proportion_ztest` is the pooled two-sample z-test for proportions; its square is
  Pearson's chi-squared statistic on the 2 x 2 table without continuity correction.
  :func:`required_sample_size` is the textbook normal-approximation formula without continuity
  correction (J. L. Fleiss, B. Levin, M. C. Paik, *Statistical Methods for Rates and
  Proportions*, 3rd ed., Wiley 2003, ch. 4).
  Checking the p-value after every batch and stopping at the first ``p < alpha`` inflates the
  false-positive rate (R. Johari et al., "Peeking at A/B tests", KDD 2017): fix the sample size
  first, or use a sequential method.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from mlcraft.mlops.tracking import Tracking

__all__ = [
    "ZTestResult",
    "canary_split",
    "input_schema",
    "release_gate",
    "required_sample_size",
    "two_proportion_ztest",
]

Alternative = Literal["two-sided", "greater", "less"]
_ALTERNATIVES = ("two-sided", "greater", "less")


def release_gate(
    *,
    candidate_accuracy: float | None,
    champion_accuracy: float | None,
    parity_error: float | None,
    latency_p99_ms: float | None,
    candidate_schema: Sequence[Mapping[str, Any]] | None,
    champion_schema: Sequence[Mapping[str, Any]] | None,
    accuracy_margin: float = 0.01,
    parity_atol: float = 1e-4,
    latency_budget_ms: float = 20.0,
) -> list[str]:
    """The gates a candidate fails, as ``"<gate>: <why>"`` messages; an empty list means release.

    Gates (each boundary value passes):

    - ``accuracy``: ``candidate_accuracy >= champion_accuracy - accuracy_margin`` on the same
      held-out rows;
    - ``onnx_parity``: ``parity_error`` (max |eager - exported| logit) ``<= parity_atol``;
    - ``latency``: ``latency_p99_ms <= latency_budget_ms``;
    - ``input_schema``: the candidate's input schema (e.g. :func:`input_schema`) equals the champion's.

    A value that is None (not measured) or not finite (NaN, +-inf) fails its gate, the
    champion's accuracy included: a gate that cannot be checked is not passed.

    Raises:
        ValueError: if a threshold is negative or not finite.
    """
    for label, threshold in (
        ("accuracy_margin", accuracy_margin),
        ("parity_atol", parity_atol),
        ("latency_budget_ms", latency_budget_ms),
    ):
        if not math.isfinite(threshold) or threshold < 0:
            raise ValueError(f"{label} must be a finite number >= 0, got {threshold}")
    failed = []
    if (
        candidate_accuracy is None
        or champion_accuracy is None
        or not (math.isfinite(candidate_accuracy) and math.isfinite(champion_accuracy))
    ):  # checked before any arithmetic: None - margin would raise
        failed.append(f"accuracy: not measured (candidate {candidate_accuracy}, champion {champion_accuracy})")
    elif candidate_accuracy < (floor := champion_accuracy - accuracy_margin):
        failed.append(
            f"accuracy: candidate {candidate_accuracy:.4f} < champion {champion_accuracy:.4f} "
            f"- margin {accuracy_margin:.4f} = {floor:.4f}"
        )
    if parity_error is None:
        failed.append("onnx_parity: not measured (no exported file checked)")
    elif not math.isfinite(parity_error):
        failed.append(f"onnx_parity: not measured (max |eager - onnx| is {parity_error})")
    elif parity_error > parity_atol:
        failed.append(f"onnx_parity: max |eager - onnx| = {parity_error:.3e} > atol {parity_atol:.1e}")
    if latency_p99_ms is None:
        failed.append("latency: not measured")
    elif not math.isfinite(latency_p99_ms):
        failed.append(f"latency: not measured (p99 is {latency_p99_ms})")
    elif latency_p99_ms > latency_budget_ms:
        failed.append(f"latency: p99 {latency_p99_ms:.3f} ms > budget {latency_budget_ms:.3f} ms")
    if candidate_schema is None or champion_schema is None:
        failed.append("input_schema: not recorded (a version without a signature)")
    elif [dict(s) for s in candidate_schema] != [dict(s) for s in champion_schema]:
        failed.append(f"input_schema: candidate {list(candidate_schema)} != champion {list(champion_schema)}")
    return failed


def input_schema(tracking: Tracking, name: str, version: str | int) -> list[dict[str, Any]] | None:
    """The input schema of a registered version's MLflow signature, as JSON-like dicts
    (``[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 8]}}]``); None without one."""
    from mlcraft.mlops.tracking import import_mlflow

    mlflow = import_mlflow()
    tracking.activate()
    info = mlflow.models.get_model_info(f"models:/{name}/{version}")
    if info.signature is None:
        return None
    schema: list[dict[str, Any]] = json.loads(info.signature.inputs.to_json())  # tuples become lists
    return schema


def _canary_key(salt: str, request_id: object) -> bytes:
    """The bytes hashed for one id: ``f"{len(salt)}:{salt}:{id}"`` in UTF-8.

    The length prefix makes the encoding injective: without it, salt ``"a:b"`` with id ``"c"``
    and salt ``"a"`` with id ``"b:c"`` would hash the same bytes.
    """
    if isinstance(request_id, bool) or not isinstance(request_id, str | int | np.integer):
        raise TypeError(
            f"request ids must be str or int (an int is hashed as its decimal text), "
            f"got {request_id!r} of type {type(request_id).__name__}"
        )
    text = request_id if isinstance(request_id, str) else str(int(request_id))
    return f"{len(salt)}:{salt}:{text}".encode()


def canary_split(request_ids: Iterable[str | int], fraction: float, *, salt: str) -> np.ndarray:
    """Which requests go to the candidate: bool ``[N]``, True for the candidate arm.

    ``request_ids`` are stable keys (a user or session id): ``str``, or ``int`` (Python or NumPy),
    which is hashed as its decimal text, so ``7``, ``np.int64(7)`` and ``"7"`` are the same id.
    Floats and bools are refused rather than guessed at (``str(1.0)`` is ``"1.0"``, not ``"1"``).
    Each id is hashed with ``salt`` to a number ``u`` in ``[0, 1)``: the first 8 bytes of
    ``BLAKE2b(f"{len(salt)}:{salt}:{id}".encode())`` over ``2**64`` (the length prefix makes the
    bytes unambiguous when the salt contains ``:``), and goes to the candidate when
    ``u < fraction``. So the same id always gets the same arm for a given salt, in every process
    (unlike Python's ``hash()``, which is salted per process), the assignment needs no stored
    state, and growing ``fraction`` only moves ids from control to candidate, never back.

    Raises:
        ValueError: if ``fraction`` is not in ``[0, 1]`` or ``salt`` is empty.
        TypeError: if ``salt`` is not a str, or an id is not a str or int.
    """
    if not isinstance(salt, str):
        raise TypeError(f"salt must be a str, got {type(salt).__name__}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if not salt:
        raise ValueError("salt must be a non-empty string (one per experiment)")
    threshold = fraction * 2.0**64
    arms = [
        int.from_bytes(hashlib.blake2b(_canary_key(salt, rid), digest_size=8).digest(), "big") < threshold
        for rid in request_ids
    ]
    return np.array(arms, dtype=bool)


@dataclass(frozen=True)
class ZTestResult:
    """Pooled two-proportion z-test of arm b against arm a (``difference = rate_b - rate_a``)."""

    statistic: float  # z = difference / sqrt(p (1 - p) (1/n_a + 1/n_b)), p the pooled rate
    pvalue: float
    rate_a: float
    rate_b: float
    difference: float
    alternative: str


def _check_count(label: str, successes: int | np.integer, n: int | np.integer) -> None:
    for what, value in ((f"successes_{label}", successes), (f"n_{label}", n)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"{what} must be an integer count, got {value!r}")
    if n < 1:
        raise ValueError(f"n_{label} must be >= 1, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes_{label} must be in [0, n_{label}={n}], got {successes}")


def two_proportion_ztest(
    successes_a: int | np.integer,
    n_a: int | np.integer,
    successes_b: int | np.integer,
    n_b: int | np.integer,
    *,
    alternative: Alternative = "two-sided",
) -> ZTestResult:
    """Test whether arm b's success rate differs from arm a's (a: control, b: candidate).

    ``alternative``: ``"two-sided"`` (rates differ), ``"greater"`` (b > a), ``"less"`` (b < a).
    Computed in float64; the p-value uses ``erfc``, accurate far in the tail.
    If both arms are all successes or all failures the pooled variance is 0 and there is no
    evidence of a difference: ``statistic`` 0 and ``pvalue`` 1 (or 0.5 one-sided).

    Raises:
        ValueError: for non-integer or negative counts, ``n < 1``, ``successes > n``, or an
            unknown ``alternative``.
    """
    _check_count("a", successes_a, n_a)
    _check_count("b", successes_b, n_b)
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")
    rate_a, rate_b = int(successes_a) / int(n_a), int(successes_b) / int(n_b)
    pooled = (int(successes_a) + int(successes_b)) / (int(n_a) + int(n_b))
    variance = pooled * (1.0 - pooled) * (1.0 / int(n_a) + 1.0 / int(n_b))
    z = 0.0 if variance == 0.0 else (rate_b - rate_a) / math.sqrt(variance)
    # Normal tail probabilities through erfc, which keeps its relative precision far in the tail
    # (1 - cdf(z) rounds to 0 beyond z of about 8.3).
    if alternative == "two-sided":
        pvalue = math.erfc(abs(z) / math.sqrt(2.0))
    elif alternative == "greater":
        pvalue = 0.5 * math.erfc(z / math.sqrt(2.0))
    else:
        pvalue = 0.5 * math.erfc(-z / math.sqrt(2.0))
    return ZTestResult(z, min(pvalue, 1.0), rate_a, rate_b, rate_b - rate_a, alternative)


def required_sample_size(
    baseline_rate: float,
    minimum_detectable_effect: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: Alternative = "two-sided",
) -> int:
    """Rows needed **per arm** (equal arms) to detect ``rate_b = baseline_rate + minimum_detectable_effect``.

    ``n = (z_a sqrt(2 p (1 - p)) + z_b sqrt(p1 (1 - p1) + p2 (1 - p2)))^2 / delta^2``, rounded up,
    with ``p = (p1 + p2) / 2``, ``z_a`` the normal quantile at ``1 - alpha/2`` (two-sided) or
    ``1 - alpha`` (one-sided), ``z_b`` at ``power``. The effect is absolute (0.02 is two
    percentage points) and may be negative (detecting a drop needs the same n as a rise of the
    same size around the same mean).

    ``alternative`` is the one :func:`two_proportion_ztest` will be run with: ``"two-sided"``, or
    the one-sided ``"greater"`` (b > a, needs a positive effect) or ``"less"`` (b < a, needs a
    negative effect); a one-sided test in the other direction has no power to find the effect.

    Raises:
        ValueError: if a rate is not in (0, 1), the effect is 0, ``alpha``/``power`` are not in
            (0, 1), ``alternative`` is unknown, or a one-sided ``alternative`` points away from the effect.
    """
    p1, delta = float(baseline_rate), float(minimum_detectable_effect)
    p2 = p1 + delta
    if not (0.0 < p1 < 1.0 and 0.0 < p2 < 1.0):
        raise ValueError(f"baseline_rate {p1} and baseline_rate + effect {p2} must both be in (0, 1)")
    if delta == 0.0 or not math.isfinite(delta):
        raise ValueError(f"minimum_detectable_effect must be a finite non-zero difference, got {delta}")
    if not (0.0 < alpha < 1.0 and 0.0 < power < 1.0):
        raise ValueError(f"alpha and power must be in (0, 1), got alpha={alpha}, power={power}")
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")
    if (alternative == "greater" and delta < 0) or (alternative == "less" and delta > 0):
        raise ValueError(f"alternative {alternative!r} cannot detect an effect of {delta:+g}: use the other direction")
    standard = NormalDist()
    z_alpha = standard.inv_cdf(1.0 - alpha / 2.0 if alternative == "two-sided" else 1.0 - alpha)
    z_beta = standard.inv_cdf(power)
    mean = (p1 + p2) / 2.0
    spread = z_alpha * math.sqrt(2.0 * mean * (1.0 - mean)) + z_beta * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(spread**2 / delta**2)
