"""Data drift between a reference window and a live window: PSI, the two-sample
Kolmogorov–Smirnov test, and per-feature drift reports with plots.

- Population stability index (Siddiqi, "Credit Risk Scorecards", 2006; Yurdakul, "Statistical
  properties of population stability index", 2018): ``sum_i (l_i - r_i) ln(l_i / r_i)`` over bins
  whose edges are the reference window's quantiles, so each bin holds about ``1/bins`` of the
  reference. Fractions are floored at ``floor`` so a bin that is empty in one window gives a
  large finite term instead of ``inf``/NaN. Rule of thumb: < 0.1 stable, 0.1–0.25 moderate
  shift, > 0.25 major shift.
- Two-sample KS (Smirnov 1939): ``D = sup_x |F_ref(x) - F_live(x)|``, computed exactly with ties
  like ``scipy.stats.ks_2samp``; the p-value is the limiting Kolmogorov distribution
  ``Q(sqrt(n m / (n + m)) D)`` (Smirnov 1948), accurate for the window sizes of monitoring
  (hundreds of rows and more). With large windows KS flags shifts too small to matter, hence
  PSI beside it and a Bonferroni correction over features.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "DriftReport",
    "FeatureDrift",
    "KSResult",
    "bin_fractions",
    "drift_report",
    "inject_drift",
    "kolmogorov_sf",
    "ks_test",
    "plot_drift",
    "psi",
]


def _sample(values: np.ndarray | Sequence[float], name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains {int((~np.isfinite(x)).sum())} non-finite values")
    return x


def bin_fractions(
    reference: np.ndarray | Sequence[float], live: np.ndarray | Sequence[float], bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inner bin edges from the reference's quantiles and the fraction of each window per bin.

    Returns ``(edges [K-1], reference_fractions [K], live_fractions [K])``: bin 0 is
    ``(-inf, edges[0])``, bin i is ``[edges[i-1], edges[i])``, the last is ``[edges[-1], inf)``.
    Repeated quantiles (ties in a discrete feature) are merged, so ``K <= bins``.
    """
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    ref, cur = _sample(reference, "reference"), _sample(live, "live")
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))  # (K-1,)
    k = edges.size + 1
    ref_frac = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=k) / ref.size
    live_frac = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=k) / cur.size
    return edges, ref_frac, live_frac


def psi(
    reference: np.ndarray | Sequence[float],
    live: np.ndarray | Sequence[float],
    *,
    bins: int = 10,
    floor: float = 1e-4,
) -> float:
    """Population stability index of ``live`` against ``reference`` (both 1-D, finite, non-empty).

    Zero for identical bin fractions; symmetric in the two fractions; grows without bound as
    they separate (capped by ``floor``). Bin edges come from the reference only.
    """
    if not 0.0 < floor < 1.0:
        raise ValueError(f"floor must be in (0, 1), got {floor}")
    _, ref_frac, live_frac = bin_fractions(reference, live, bins)
    r = np.maximum(ref_frac, floor)
    lv = np.maximum(live_frac, floor)
    return float(np.sum((lv - r) * np.log(lv / r)))


def kolmogorov_sf(x: float) -> float:
    """``Q(x) = P(K > x)`` for the Kolmogorov distribution: ``2 sum_k (-1)^(k-1) exp(-2 k^2 x^2)``.

    For ``x < 1`` the alternating series converges slowly, so the equivalent Jacobi-theta form
    ``1 - sqrt(2 pi)/x sum_k exp(-(2k-1)^2 pi^2 / (8 x^2))`` is used there.
    """
    if math.isnan(x):
        raise ValueError("x is NaN")
    if x <= 0.0:
        return 1.0
    if x < 1.0:
        total = 0.0
        for k in range(1, 50):
            term = math.exp(-((2 * k - 1) ** 2) * math.pi**2 / (8.0 * x * x))
            total += term
            if term < 1e-18 * total:
                break
        return min(max(1.0 - math.sqrt(2.0 * math.pi) / x * total, 0.0), 1.0)
    total = 0.0
    for k in range(1, 101):
        term = math.exp(-2.0 * k * k * x * x)
        total += term if k % 2 else -term
        if term < 1e-18:
            break
    return min(max(2.0 * total, 0.0), 1.0)


@dataclass(frozen=True)
class KSResult:
    statistic: float  # D, the largest gap between the two empirical CDFs, in [0, 1]
    pvalue: float  # asymptotic: Q(sqrt(n m / (n + m)) D)


def ks_test(reference: np.ndarray | Sequence[float], live: np.ndarray | Sequence[float]) -> KSResult:
    """Two-sided two-sample Kolmogorov–Smirnov test (statistic exact with ties, p-value asymptotic)."""
    ref = np.sort(_sample(reference, "reference"))
    cur = np.sort(_sample(live, "live"))
    pooled = np.concatenate([ref, cur])
    # Empirical CDFs right-continuous at every observed value: ties count fully on both sides.
    cdf_ref = np.searchsorted(ref, pooled, side="right") / ref.size
    cdf_live = np.searchsorted(cur, pooled, side="right") / cur.size
    statistic = float(np.max(np.abs(cdf_ref - cdf_live)))
    n, m = ref.size, cur.size
    effective = n * m / (n + m)
    return KSResult(statistic, kolmogorov_sf(math.sqrt(effective) * statistic))


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    psi: float
    ks_statistic: float
    ks_pvalue: float
    drifted: bool
    reason: str  # why it was flagged ("" if not)


@dataclass(frozen=True)
class DriftReport:
    """Per-feature drift between two windows, with the thresholds used."""

    features: tuple[FeatureDrift, ...]
    n_reference: int
    n_live: int
    psi_threshold: float
    alpha: float  # family-wise KS level; each feature is tested at alpha / n_features

    @property
    def drifted(self) -> list[str]:
        """Names of the features flagged as drifted."""
        return [f.name for f in self.features if f.drifted]

    @property
    def any_drift(self) -> bool:
        return any(f.drifted for f in self.features)

    def table(self) -> str:
        """A fixed-width text table, one feature per line."""
        lines = [f"{'feature':<14}{'PSI':>9}{'KS D':>9}{'KS p':>11}  drift", "-" * 51]
        for f in self.features:
            flag = f"yes ({f.reason})" if f.drifted else "no"
            lines.append(f"{f.name:<14}{f.psi:>9.4f}{f.ks_statistic:>9.4f}{f.ks_pvalue:>11.2e}  {flag}")
        return "\n".join(lines)


def drift_report(
    reference: np.ndarray,
    live: np.ndarray,
    feature_names: Sequence[str] | None = None,
    *,
    bins: int = 10,
    psi_threshold: float = 0.2,
    alpha: float = 0.01,
    min_ks_statistic: float = 0.05,
) -> DriftReport:
    """Compare each column of ``reference`` ``[N, F]`` with the same column of ``live`` ``[M, F]``.

    A feature drifts if its PSI is at least ``psi_threshold``, or if KS rejects at level
    ``alpha / F`` (Bonferroni over the F features) with a gap ``D >= min_ks_statistic`` (so a
    huge window does not flag a negligible shift).
    """
    ref, cur = np.asarray(reference, dtype=np.float64), np.asarray(live, dtype=np.float64)
    if ref.ndim != 2 or cur.ndim != 2 or ref.shape[1] != cur.shape[1]:
        raise ValueError(f"reference and live must be [N, F] and [M, F], got {ref.shape} and {cur.shape}")
    n_features = ref.shape[1]
    names = list(feature_names) if feature_names is not None else [f"x{i}" for i in range(n_features)]
    if len(names) != n_features:
        raise ValueError(f"{len(names)} feature names for {n_features} columns")
    if not 0.0 < alpha < 1.0 or psi_threshold <= 0:
        raise ValueError(f"need 0 < alpha < 1 and psi_threshold > 0, got {alpha}, {psi_threshold}")
    level = alpha / n_features
    results = []
    for j, name in enumerate(names):
        value = psi(ref[:, j], cur[:, j], bins=bins)
        ks = ks_test(ref[:, j], cur[:, j])
        reasons = []
        if value >= psi_threshold:
            reasons.append(f"PSI {value:.3f} >= {psi_threshold}")
        if ks.pvalue < level and ks.statistic >= min_ks_statistic:
            reasons.append(f"KS p {ks.pvalue:.1e} < {level:.1e}")
        results.append(FeatureDrift(name, value, ks.statistic, ks.pvalue, bool(reasons), "; ".join(reasons)))
    return DriftReport(tuple(results), ref.shape[0], cur.shape[0], psi_threshold, alpha)


def plot_drift(
    reference: np.ndarray, live: np.ndarray, report: DriftReport, *, bins: int = 10, columns: int = 4
) -> Figure:
    """One panel per feature: the fraction of each window in the reference-quantile bins (the
    bars PSI compares), titled with PSI and KS; drifted features in red."""
    import matplotlib.pyplot as plt

    n_features = len(report.features)
    rows = math.ceil(n_features / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows), squeeze=False)
    for j, (ax, feature) in enumerate(zip(axes.flat, report.features, strict=False)):
        _, ref_frac, live_frac = bin_fractions(reference[:, j], live[:, j], bins)
        positions = np.arange(ref_frac.size)
        ax.bar(positions - 0.2, ref_frac, width=0.4, label="reference", color="tab:blue")
        ax.bar(positions + 0.2, live_frac, width=0.4, label="live", color="tab:orange")
        ax.set_title(
            f"{feature.name}\nPSI {feature.psi:.3f}  KS D {feature.ks_statistic:.3f}",
            fontsize=9,
            color="tab:red" if feature.drifted else "black",
        )
        ax.set_xticks(positions)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("reference-quantile bin", fontsize=8)
    for ax in list(axes.flat)[n_features:]:
        ax.set_visible(False)
    axes.flat[0].set_ylabel("fraction of window")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def inject_drift(features: np.ndarray, column: int, *, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """A copy of ``features`` ``[N, F]`` whose ``column`` is moved by ``shift`` of its standard
    deviations and spread ``scale`` times around its mean (the other columns are untouched)."""
    if features.ndim != 2 or not 0 <= column < features.shape[1]:
        raise ValueError(f"column {column} out of range for features of shape {features.shape}")
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    out = np.array(features, copy=True)
    x = out[:, column].astype(np.float64)
    mean, std = x.mean(), x.std()
    out[:, column] = (mean + scale * (x - mean) + shift * std).astype(out.dtype)
    return out
