"""Seeded synthetic churn data shaped by the churn contract: the demo's and the tests' raw files.

Rows are monthly customer snapshots. The label follows a fixed logistic model of the features, so a
model can learn it (a fitted logistic regression reaches an AUC around 0.8). Knobs:

- ``drift``: per-column strength. A numeric feature's mean moves by ``strength`` standard deviations
  (its range is respected); a categorical feature moves ``strength`` (0..1) of its probability mass
  to its last category; ``auto_renew`` flips that share of rows to False; the label column
  (``churned``) shifts the churn log-odds by ``strength``: the churn rate moves, the ranking of rows does not.
- ``concept_change``: share (0..1) of the way from the base relationship between features and churn to a
  changed one (:func:`changed_log_odds`: price sensitivity up, contract terms and support calls matter less,
  discounts and a low-usage premium plan matter more), with the features drawn exactly as without it. Unlike
  the ``churned`` drift knob, which moves only the intercept and so leaves every ranking (AUC) as it was, this
  changes which customers churn: a model fitted before it ranks worse after it.
- ``corrupt_fraction``: that share of rows breaks exactly one contract rule each (out of range,
  unknown category, null where not nullable, event time in the future, duplicate key). Their row
  positions are listed in ``df.attrs["corrupt_rows"]`` and the rule per row in ``df.attrs["corruptions"]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from functions.shared.contract import DataContract, load_contract

CORRUPTIONS: tuple[str, ...] = (
    "out_of_range",
    "unknown_category",
    "null_not_allowed",
    "future_timestamp",
    "duplicate_key",
)

_PLAN = (("basic", "standard", "premium"), (0.45, 0.35, 0.20))
_CONTRACT = (("month_to_month", "one_year", "two_year"), (0.55, 0.25, 0.20))
_REGION = (("north", "south", "east", "west"), (0.25, 0.30, 0.20, 0.25))
_PAYMENT = (("card", "bank_transfer", "paypal", "invoice"), (0.45, 0.25, 0.20, 0.10))
_PLAN_PRICE = np.array([25.0, 55.0, 95.0])


def default_end(now: datetime | None = None) -> datetime:
    """The end of the default event window: the current hour, so default data is fresh."""
    current = now or datetime.now(UTC)
    return current.replace(minute=0, second=0, microsecond=0)


def _choice(
    rng: np.random.Generator, n: int, spec: tuple[tuple[str, ...], tuple[float, ...]], strength: float
) -> np.ndarray:
    names, probs = spec
    p = np.asarray(probs, dtype=float)
    share = float(np.clip(strength, 0.0, 1.0))
    if share:
        p = p * (1.0 - share)
        p[-1] += share
    return rng.choice(len(names), size=n, p=p / p.sum())


def _shift(values: np.ndarray, strength: float, lo: float, hi: float) -> np.ndarray:
    if not strength:
        return values
    return np.clip(values + strength * float(np.std(values)), lo, hi)


def changed_log_odds(
    *,
    contract_type: np.ndarray,
    tenure: np.ndarray,
    monthly: np.ndarray,
    calls: np.ndarray,
    last_login: np.ndarray,
    discount: np.ndarray,
    auto_renew: np.ndarray,
    plan: np.ndarray,
    usage: np.ndarray,
) -> np.ndarray:
    """The churn log-odds after a concept change (a cheaper competitor arrives): price drives churn, the contract
    term and support calls barely do, discounts retain, and premium customers who hardly use the service leave.
    Category arguments are indices into the generator's vocabularies; a missing usage counts as typical usage."""
    usage_known = np.where(np.isnan(usage), 40.0, usage)
    log_odds: np.ndarray = (
        -1.9
        + 0.3 * (contract_type == 0)
        - 0.2 * (contract_type == 2)
        - 0.02 * np.minimum(tenure, 72)
        + 0.045 * (monthly - 55.0)
        + 0.05 * calls
        + 0.03 * np.minimum(last_login, 60)
        - 0.09 * discount
        - 0.6 * auto_renew
        + 1.5 * ((plan == 2) & (usage_known < 20.0))
    )
    return log_odds


def generate_churn(
    n_rows: int,
    *,
    seed: int,
    start: datetime | None = None,
    months: int = 12,
    drift: Mapping[str, float] | None = None,
    corrupt_fraction: float = 0.0,
    contract: DataContract | None = None,
    concept_change: float = 0.0,
    aging: bool = True,
) -> pd.DataFrame:
    """Return ``n_rows`` churn snapshots with the contract's columns, in contract order, sorted by event time.

    Event times spread over ``months`` 30-day months from ``start`` (default: ending at the current
    hour). (customer_id, event_time) is unique unless ``corrupt_fraction`` adds duplicate keys. With ``aging``
    tenure grows a month with each month of the span (the customers age, a slow drift of its own); without it the
    population stays as it is, so a simulation's world changes only where its knobs say.
    """
    if n_rows < 0:
        raise ValueError(f"n_rows: {n_rows} must be >= 0")
    if months < 1:
        raise ValueError(f"months: {months} must be >= 1")
    if not 0.0 <= corrupt_fraction <= 1.0:
        raise ValueError(f"corrupt_fraction: {corrupt_fraction} must be within 0..1")
    if not 0.0 <= concept_change <= 1.0:
        raise ValueError(f"concept_change: {concept_change} must be within 0..1")
    spec = contract or load_contract("churn")
    knobs = dict(drift or {})
    unknown = sorted(set(knobs) - set(spec.feature_names) - {spec.label.name})
    if unknown:
        raise ValueError(f"drift: {unknown[0]!r} is not a column of the {spec.dataset} contract")
    rng = np.random.default_rng(seed)
    n = n_rows
    window_start = start if start is not None else default_end() - timedelta(days=30 * months)
    if window_start.tzinfo is None:
        window_start = window_start.replace(tzinfo=UTC)

    # One snapshot per (customer, month) keeps the natural key unique.
    n_customers = max(1, -(-n // months))
    row = np.arange(n)
    customer = row % n_customers
    month = row // n_customers
    seconds = month * 30 * 86400 + rng.integers(0, 30 * 86400, size=n)
    event_time = pd.Timestamp(window_start) + pd.to_timedelta(seconds, unit="s")

    plan = _choice(rng, n, _PLAN, knobs.get("plan", 0.0))
    contract_type = _choice(rng, n, _CONTRACT, knobs.get("contract_type", 0.0))
    region = _choice(rng, n, _REGION, knobs.get("region", 0.0))
    payment = _choice(rng, n, _PAYMENT, knobs.get("payment_method", 0.0))
    tenure = np.clip(rng.gamma(1.6, 18.0, size=n) + (month if aging else 0), 0, 240).astype(np.int64)
    tenure = _shift(tenure, knobs.get("tenure_months", 0.0), 0, 240).astype(np.int64)
    monthly = np.clip(_PLAN_PRICE[plan] + rng.normal(0.0, 12.0, size=n), 5.0, 500.0)
    monthly = np.round(_shift(monthly, knobs.get("monthly_charges", 0.0), 0.0, 500.0), 2)
    total = np.round(np.clip(monthly * tenure * rng.uniform(0.9, 1.05, size=n), 0.0, 100_000.0), 2)
    total[tenure == 0] = np.nan
    total = _shift(total, knobs.get("total_charges", 0.0), 0.0, 100_000.0)
    calls = rng.poisson(1.2 + 0.8 * (contract_type == 0), size=n).clip(0, 100).astype(np.int64)
    calls = _shift(calls, knobs.get("support_calls_90d", 0.0), 0, 100).astype(np.int64)
    usage = np.round(rng.lognormal(3.0 + 0.4 * plan, 0.7, size=n).clip(0.0, 5000.0), 3)
    usage[rng.random(n) < 0.03] = np.nan
    usage = _shift(usage, knobs.get("data_usage_gb", 0.0), 0.0, 5000.0)
    last_login = rng.exponential(9.0, size=n).clip(0, 3650).astype(np.int64)
    last_login = _shift(last_login, knobs.get("days_since_last_login", 0.0), 0, 3650).astype(np.int64)
    discount = np.round(np.where(rng.random(n) < 0.3, rng.uniform(5.0, 30.0, size=n), 0.0), 1)
    discount = _shift(discount, knobs.get("discount_pct", 0.0), 0.0, 100.0)
    auto_renew = rng.random(n) < np.where(contract_type == 0, 0.45, 0.8)
    renew_drift = float(np.clip(knobs.get("auto_renew", 0.0), 0.0, 1.0))
    if renew_drift:
        auto_renew &= rng.random(n) >= renew_drift
    payment_missing = rng.random(n) < 0.02

    log_odds = (
        -1.9
        + 1.3 * (contract_type == 0)
        - 0.8 * (contract_type == 2)
        - 0.035 * np.minimum(tenure, 72)
        + 0.012 * (monthly - 55.0)
        + 0.35 * calls
        + 0.03 * np.minimum(last_login, 60)
        - 0.04 * discount
        - 0.6 * auto_renew
        + 0.5 * (payment == 3)
    )
    if concept_change:
        changed = changed_log_odds(
            contract_type=contract_type,
            tenure=tenure,
            monthly=monthly,
            calls=calls,
            last_login=last_login,
            discount=discount,
            auto_renew=auto_renew,
            plan=plan,
            usage=usage,
        )
        log_odds = (1.0 - concept_change) * log_odds + concept_change * changed
    log_odds = log_odds + knobs.get(spec.label.name, 0.0)
    churned = (rng.random(n) < 1.0 / (1.0 + np.exp(-log_odds))).astype(np.int64)

    plans, contracts, regions, payments = (np.array(s[0], dtype=object) for s in (_PLAN, _CONTRACT, _REGION, _PAYMENT))
    payment_names = payments[payment]
    payment_names[payment_missing] = None
    frame = pd.DataFrame(
        {
            "customer_id": pd.Series(customer).map("C{:07d}".format) if n else pd.Series([], dtype=object),
            "event_time": event_time,
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "total_charges": total,
            "support_calls_90d": calls,
            "data_usage_gb": usage,
            "days_since_last_login": last_login,
            "discount_pct": discount,
            "plan": plans[plan],
            "contract_type": contracts[contract_type],
            "region": regions[region],
            "payment_method": payment_names,
            "auto_renew": auto_renew,
            "churned": churned,
        }
    )
    frame = frame.rename(columns={"customer_id": spec.entity_key, "event_time": spec.event_timestamp})
    frame = frame.sort_values(spec.event_timestamp, kind="stable").reset_index(drop=True)[spec.columns]
    frame.attrs["corrupt_rows"] = []
    frame.attrs["corruptions"] = []
    if corrupt_fraction and n:
        _corrupt(frame, rng, corrupt_fraction, spec)
    return frame


def _corrupt(frame: pd.DataFrame, rng: np.random.Generator, fraction: float, spec: DataContract) -> None:
    n = len(frame)
    count = min(n, max(1, round(n * fraction)))
    rows = np.sort(rng.choice(n, size=count, replace=False))
    kinds = rng.integers(0, len(CORRUPTIONS), size=count)
    # A duplicate copies the key of the row before it, so the later row in file order is the duplicate.
    kinds[(rows == 0) & (kinds == CORRUPTIONS.index("duplicate_key"))] = 0
    key, ts = spec.entity_key, spec.event_timestamp
    # Integer columns take NaN (null_not_allowed) only as floats; CSV and Parquet writers keep the values.
    for column in ("tenure_months", "days_since_last_login"):
        frame[column] = frame[column].astype("Int64")
    future = pd.Timestamp(datetime.now(UTC) + timedelta(days=30))
    for position, kind in zip(rows.tolist(), kinds.tolist(), strict=True):
        rule = CORRUPTIONS[kind]
        if rule == "out_of_range":
            frame.loc[position, "monthly_charges"] = 9_999.0
        elif rule == "unknown_category":
            frame.loc[position, "plan"] = "platinum"
        elif rule == "null_not_allowed":
            frame.loc[position, "tenure_months"] = pd.NA
        elif rule == "future_timestamp":
            frame.loc[position, ts] = future
        else:
            frame.loc[position, key] = frame.loc[position - 1, key]
            frame.loc[position, ts] = frame.loc[position - 1, ts]
    frame.attrs["corrupt_rows"] = rows.tolist()
    frame.attrs["corruptions"] = [CORRUPTIONS[k] for k in kinds.tolist()]
