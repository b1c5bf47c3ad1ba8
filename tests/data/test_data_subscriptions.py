"""Tests for mlcraft.data.subscriptions: schema, stated rates, groups, drift, the planted leak, and
the signal a plain logistic regression finds (scored with sklearn; data must not import evaluation)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]
from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped]

from mlcraft.data.subscriptions import COEFFICIENTS, N_PLANS, START, TARGET_RATE, make_subscriptions

N = 20_000  # big enough for ~1000 positives; generating takes ~0.2 s
DTYPES = {
    "customer_id": "int64",
    "signup_time": "datetime64[ns]",
    "plan_code": "str",
    "age": "float64",
    "monthly_fee": "float64",
    "discount_pct": "float64",
    "support_tickets": "int64",
    "logins_last_30d": "int64",
    "region": "str",
    "payment_method": "str",
    "device": "str",
    "churned": "int64",
    "cancellation_reason": "str",
}
NUMERIC = ["age", "monthly_fee", "discount_pct", "support_tickets", "logins_last_30d"]
LOW_CARDINALITY = ["region", "payment_method", "device"]


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return make_subscriptions(N, seed=0, include_truth=True)


def test_schema_and_order(table: pd.DataFrame) -> None:
    assert {c: str(t) for c, t in table.drop(columns="churn_probability").dtypes.items()} == DTYPES
    assert list(make_subscriptions(50).columns) == list(DTYPES), "no truth column unless asked"
    assert len(table) == N and table.index.equals(pd.RangeIndex(N))
    assert table["signup_time"].is_monotonic_increasing


def test_time_spans_two_years(table: pd.DataFrame) -> None:
    start, end = table["signup_time"].min(), table["signup_time"].max()
    assert start >= pd.Timestamp(START) and end < pd.Timestamp("2024-01-01")
    assert (end - start).days > 700


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_positive_rate_is_about_five_percent(seed: int) -> None:
    frame = make_subscriptions(N, seed=seed, include_truth=True)
    assert 0.04 <= frame["churned"].mean() <= 0.06, "band: 5% ± 1 point (about 6 standard errors at N=20k)"
    assert abs(frame["churn_probability"].mean() - TARGET_RATE) <= 1e-9, "the intercept is solved for the rate"
    assert set(frame["churned"].unique()) == {0, 1}


def test_churn_drifts_up_over_time(table: pd.DataFrame) -> None:
    by_year = table.groupby(table["signup_time"].dt.year)
    assert by_year["churn_probability"].mean()[2023] > 1.3 * by_year["churn_probability"].mean()[2022]
    assert by_year["churned"].mean()[2023] > by_year["churned"].mean()[2022]
    assert by_year["monthly_fee"].median()[2023] > by_year["monthly_fee"].median()[2022], "prices drift up"


def test_plan_code_is_high_cardinality_and_skewed(table: pd.DataFrame) -> None:
    counts = table["plan_code"].value_counts()
    assert 200 <= len(counts) <= N_PLANS
    assert table["plan_code"].str.fullmatch(r"P\d{3}").all()
    assert counts.iloc[0] / N < 0.2 and (counts < 20).sum() >= 100, "a few common plans, many rare ones"


def test_missing_values_where_stated(table: pd.DataFrame) -> None:
    share = table.isna().mean()
    assert 0.02 <= share["age"] <= 0.06 and 0.06 <= share["discount_pct"] <= 0.10
    assert 0.035 <= share["payment_method"] <= 0.065
    complete = [c for c in DTYPES if c not in ("age", "discount_pct", "payment_method", "cancellation_reason")]
    assert share[complete].sum() == 0.0, share[complete]
    assert set(table["region"]) == {"north", "south", "east", "west", "central"}
    assert set(table["device"]) == {"ios", "android", "web"}
    assert set(table["payment_method"].dropna()) == {"card", "paypal", "bank_transfer", "invoice"}


def test_customers_span_several_rows(table: pd.DataFrame) -> None:
    rows = table.groupby("customer_id").size()
    assert rows.mean() >= 3.5 and rows.max() >= 8
    assert rows[rows >= 2].sum() / N >= 0.9, "most rows share their customer with others"
    per_customer = table.groupby("customer_id")[["region", "age"]].nunique(dropna=False)
    assert (per_customer == 1).all().all(), "region and age are customer attributes"


def test_leaky_column_is_the_label(table: pd.DataFrame) -> None:
    filled = table["cancellation_reason"].notna()
    assert np.array_equal(filled.to_numpy(), table["churned"].to_numpy() == 1)
    assert roc_auc_score(table["churned"], filled) == 1.0


def _features(frame: pd.DataFrame, medians: Any) -> pd.DataFrame:
    numeric = (
        frame[NUMERIC]
        .fillna(medians)
        .assign(age_missing=frame["age"].isna(), discount_missing=frame["discount_pct"].isna())
    )
    dummies = pd.get_dummies(frame[LOW_CARDINALITY], dummy_na=True)
    return pd.concat([numeric, dummies], axis=1).astype(np.float64)


def test_honest_columns_give_a_moderate_auc(table: pd.DataFrame) -> None:
    """Train on the first 70% of rows in time, score the last 30%: a real but imperfect signal,
    below the truth's AUC; adding the leak makes the score (misleadingly) near perfect."""
    cut = int(0.7 * N)
    train, test = table.iloc[:cut], table.iloc[cut:]
    medians = train[NUMERIC].median()
    x_train = _features(train, medians)
    x_test = _features(test, medians).reindex(columns=x_train.columns, fill_value=0.0)
    scaler = StandardScaler().fit(x_train)
    model = LogisticRegression(max_iter=2000).fit(scaler.transform(x_train), train["churned"])
    auc = roc_auc_score(test["churned"], model.predict_proba(scaler.transform(x_test))[:, 1])
    truth = roc_auc_score(test["churned"], test["churn_probability"])
    assert 0.65 <= auc <= 0.85, f"logistic regression AUC {auc:.3f}"
    assert auc <= truth + 0.01, f"no model should beat the true probability ({truth:.3f}) by more than noise"
    coef = dict(zip(x_train.columns, model.coef_[0], strict=True))
    for name in ("support_tickets", "logins_last_30d", "monthly_fee"):
        assert np.sign(coef[name]) == np.sign(COEFFICIENTS[name]), f"{name}: {coef[name]:+.3f}"
    with_leak = LogisticRegression(max_iter=2000).fit(
        np.c_[scaler.transform(x_train), train["cancellation_reason"].notna()], train["churned"]
    )
    leaky_scores = with_leak.predict_proba(np.c_[scaler.transform(x_test), test["cancellation_reason"].notna()])[:, 1]
    assert roc_auc_score(test["churned"], leaky_scores) >= 0.99, "the leak makes any model look perfect"


def test_deterministic_given_the_seed() -> None:
    pd.testing.assert_frame_equal(make_subscriptions(3000, seed=5), make_subscriptions(3000, seed=5))
    assert not make_subscriptions(3000, seed=5).equals(make_subscriptions(3000, seed=6))


def test_tiny_tables() -> None:
    one = make_subscriptions(1, seed=0)
    assert len(one) == 1 and one["churned"].isin([0, 1]).all()
    assert len(make_subscriptions(7, seed=3)) == 7


@pytest.mark.parametrize("n_rows", [0, -5, 2.5, True])
def test_rejects_bad_n_rows(n_rows: Any) -> None:
    with pytest.raises(ValueError, match="n_rows must be an integer >= 1, got"):
        make_subscriptions(n_rows)
