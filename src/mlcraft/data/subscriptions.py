"""A synthetic "subscriptions" table with churn, for 05_tabular: realistic mess, known truth.

Each row is one subscription of a customer. The table has what makes tabular work hard: rows
grouped by customer, two years of time with drift, a high-cardinality category, missing values,
a rare positive class (about 5%) and one planted leak. Because the churn probability is a known
function of the columns (:data:`COEFFICIENTS` and friends below), a lesson can compare a model
with the truth. The mechanism is a logistic model with a random effect per plan, the standard
generalized linear mixed model (e.g. Gelman & Hill, 2007, "Data Analysis Using Regression and
Multilevel/Hierarchical Models", ch. 14).

The churn log-odds of a row::

    logit = intercept + Σ COEFFICIENTS[col]·x[col] + PAYMENT_EFFECT[payment] + DEVICE_EFFECT[device]
            + REGION_EFFECT[region] + plan_effect[plan] + DRIFT_PER_YEAR · years since START

with ``age`` centred at 40 and ``monthly_fee`` at 30, a missing numeric value contributing 0, a
missing payment method its own effect, ``plan_effect ~ N(0, PLAN_EFFECT_SD²)`` drawn per plan, and
``intercept`` solved (bisection) so that the mean probability is :data:`TARGET_RATE`.
``churned ~ Bernoulli(sigmoid(logit))``.

**The leak.** ``cancellation_reason`` is filled for every churned row and for no other: it is
recorded when the customer cancels, i.e. *after* the outcome. Alone it separates the classes
perfectly (ROC AUC = 1); it must never be a feature. Everything else is known at signup time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "COEFFICIENTS",
    "DEVICE_EFFECT",
    "DRIFT_PER_YEAR",
    "N_PLANS",
    "PAYMENT_EFFECT",
    "REGION_EFFECT",
    "START",
    "TARGET_RATE",
    "make_subscriptions",
]

START: Final = np.datetime64("2022-01-01T00:00:00", "s")  # the first possible signup
SPAN_DAYS: Final = 730  # signups fall in [START, START + 730 days)
N_PLANS: Final = 300  # levels of plan_code ("P000".."P299"); popularity is Zipf-like
TARGET_RATE: Final = 0.05  # mean churn probability over the table
DRIFT_PER_YEAR: Final = 0.6  # churn log-odds added per year since START (concept drift)
FEE_DRIFT_PER_YEAR: Final = 0.05  # plan prices rise 5% a year (covariate drift)
PLAN_EFFECT_SD: Final = 0.6  # spread of the per-plan random effect on the log-odds

#: Log-odds per unit of each numeric column (age centred at 40, monthly_fee at 30).
COEFFICIENTS: Final = {
    "age": -0.02,
    "monthly_fee": 0.03,
    "discount_pct": -0.03,
    "support_tickets": 0.35,
    "logins_last_30d": -0.06,
}
REGION_EFFECT: Final = {"north": 0.0, "south": 0.1, "east": -0.1, "west": 0.2, "central": -0.2}
PAYMENT_EFFECT: Final = {"card": 0.0, "paypal": 0.2, "bank_transfer": -0.3, "invoice": 0.6, "missing": 0.4}
DEVICE_EFFECT: Final = {"ios": -0.1, "android": 0.1, "web": 0.3}
CANCELLATION_REASONS: Final = ("price", "competitor", "moved", "poor_service", "other")


def _choice(rng: np.random.Generator, options: tuple[str, ...], n: int, p: list[float]) -> NDArray[np.object_]:
    return np.asarray(options, dtype=object)[rng.choice(len(options), size=n, p=p)]


def _intercept(score: NDArray[np.float64], rate: float) -> float:
    """``b`` with ``mean(sigmoid(b + score)) == rate`` (to 1e-12 in ``b``), by bisection."""
    low, high = -30.0, 30.0
    while high - low > 1e-12:
        mid = (low + high) / 2
        if np.mean(1.0 / (1.0 + np.exp(-(mid + score)))) < rate:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def make_subscriptions(n_rows: int, *, seed: int = 0, include_truth: bool = False) -> pd.DataFrame:
    """Draw ``n_rows`` subscriptions (deterministic given ``seed``), sorted by ``signup_time``.

    Columns (dtype; missing share):

    - ``customer_id`` (int64): the group; about ``n_rows / 4`` customers, 4 rows each on average
      (Poisson), so most rows share their customer with others. Customer-level: ``age``, ``region``.
    - ``signup_time`` (datetime64[ns]): within [2022-01-01, 2024-01-01); a customer's rows come
      after its first signup.
    - ``plan_code`` (str): one of :data:`N_PLANS` codes ``"P000"``..; a few are common, most rare.
    - ``age`` (float64; ~4% NaN), ``monthly_fee`` (float64: the plan's price, rising
      ``FEE_DRIFT_PER_YEAR``, less the discount), ``discount_pct`` (float64 in {0, 5, .., 30};
      ~8% NaN), ``support_tickets`` and ``logins_last_30d`` (int64 counts).
    - ``region`` (str, 5 levels), ``payment_method`` (str, 4 levels; ~5% NaN), ``device`` (str, 3).
    - ``churned`` (int64, 0/1): about 5% ones, more in later months (drift).
    - ``cancellation_reason`` (str): **the leak**, non-missing exactly where ``churned == 1``.
    - ``churn_probability`` (float64), only with ``include_truth=True``: the true probability.
    """
    if isinstance(n_rows, bool) or not isinstance(n_rows, int) or n_rows < 1:
        raise ValueError(f"n_rows must be an integer >= 1, got {n_rows!r}")
    import pandas as pd  # lazy: an extra (mlcraft[mlops]), so `import mlcraft.data` needs none

    rng = np.random.default_rng(seed)
    n_customers = max(1, round(n_rows / 4))
    customer = np.sort(rng.integers(0, n_customers, n_rows))  # (N,) ids; gaps where a customer drew no row

    # Customer-level attributes.
    first_day = rng.uniform(0, SPAN_DAYS * 0.9, n_customers)  # (C,)
    age = np.round(rng.normal(40, 12, n_customers).clip(18, 90))
    age[rng.random(n_customers) < 0.04] = np.nan
    region = _choice(rng, tuple(REGION_EFFECT), n_customers, [0.25, 0.25, 0.2, 0.2, 0.1])

    # Row-level attributes. A customer's later subscriptions fall between its start and the end.
    day = first_day[customer] + rng.uniform(0, 1, n_rows) ** 2 * (SPAN_DAYS - first_day[customer])  # (N,)
    years = day / 365.0
    popularity = 1.0 / (np.arange(1, N_PLANS + 1) + 3.0) ** 1.2  # the top plan ~8% of rows
    plan = rng.choice(N_PLANS, size=n_rows, p=popularity / popularity.sum())  # (N,) in [0, N_PLANS)
    plan_price = np.round(rng.lognormal(np.log(30), 0.45, N_PLANS), 2)  # (P,)
    plan_effect = rng.normal(0, PLAN_EFFECT_SD, N_PLANS)  # (P,)
    discount = rng.choice([0.0, 0.0, 0.0, 5.0, 10.0, 15.0, 20.0, 30.0], size=n_rows)
    fee = np.round(plan_price[plan] * (1 + FEE_DRIFT_PER_YEAR * years) * (1 - discount / 100), 2)
    discount[rng.random(n_rows) < 0.08] = np.nan  # recorded value lost; the fee still reflects it
    payment = _choice(rng, tuple(k for k in PAYMENT_EFFECT if k != "missing"), n_rows, [0.5, 0.2, 0.2, 0.1])
    payment_missing = rng.random(n_rows) < 0.05
    device = _choice(rng, tuple(DEVICE_EFFECT), n_rows, [0.4, 0.4, 0.2])
    tickets = rng.poisson(1.0, n_rows).astype(np.int64)
    logins = rng.poisson(np.exp(rng.normal(2.3, 0.6, n_rows))).astype(np.int64)

    # The known score (see the module docstring).
    ages = age[customer]
    score = (
        COEFFICIENTS["age"] * np.nan_to_num(ages - 40.0)
        + COEFFICIENTS["monthly_fee"] * (fee - 30.0)
        + COEFFICIENTS["discount_pct"] * np.nan_to_num(discount)
        + COEFFICIENTS["support_tickets"] * tickets
        + COEFFICIENTS["logins_last_30d"] * logins
        + np.array([REGION_EFFECT[r] for r in region])[customer]
        + np.where(payment_missing, PAYMENT_EFFECT["missing"], [PAYMENT_EFFECT[p] for p in payment])
        + np.array([DEVICE_EFFECT[d] for d in device])
        + plan_effect[plan]
        + DRIFT_PER_YEAR * years
    )  # (N,)
    probability = 1.0 / (1.0 + np.exp(-(_intercept(score, TARGET_RATE) + score)))
    churned = (rng.random(n_rows) < probability).astype(np.int64)
    reason = _choice(rng, CANCELLATION_REASONS, n_rows, [0.35, 0.25, 0.15, 0.15, 0.1])
    reason[churned == 0] = None  # the leak: recorded only when a customer cancels
    payment[payment_missing] = None

    seconds = np.round(day * 86_400).astype(np.int64)
    frame = pd.DataFrame(
        {
            "customer_id": customer.astype(np.int64),
            "signup_time": (START + seconds.astype("timedelta64[s]")).astype("datetime64[ns]"),
            "plan_code": pd.array([f"P{p:03d}" for p in plan], dtype="str"),
            "age": ages,
            "monthly_fee": fee,
            "discount_pct": discount,
            "support_tickets": tickets,
            "logins_last_30d": logins,
            "region": pd.array(region[customer], dtype="str"),
            "payment_method": pd.array(payment, dtype="str"),
            "device": pd.array(device, dtype="str"),
            "churned": churned,
            "cancellation_reason": pd.array(reason, dtype="str"),
        }
    )
    if include_truth:
        frame["churn_probability"] = probability
    order = np.argsort(seconds, kind="stable")  # by time; ties keep customer order
    return frame.iloc[order].reset_index(drop=True)
