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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
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


def _checked_knobs(
    n_rows: int, months: int, corrupt_fraction: float, drift: Mapping[str, float] | None, spec: DataContract
) -> dict[str, float]:
    """The drift knobs, once the arguments every generator shares are known to be sound."""
    if n_rows < 0:
        raise ValueError(f"n_rows: {n_rows} must be >= 0")
    if months < 1:
        raise ValueError(f"months: {months} must be >= 1")
    if not 0.0 <= corrupt_fraction <= 1.0:
        raise ValueError(f"corrupt_fraction: {corrupt_fraction} must be within 0..1")
    knobs = dict(drift or {})
    unknown = sorted(set(knobs) - set(spec.feature_names) - {spec.label.name})
    if unknown:
        raise ValueError(f"drift: {unknown[0]!r} is not a column of the {spec.dataset} contract")
    return knobs


def _monthly_snapshots(
    rng: np.random.Generator, n: int, months: int, start: datetime | None
) -> tuple[np.ndarray, np.ndarray, pd.DatetimeIndex]:
    """Entity index, month index and event time of `n` rows: one snapshot per (entity, 30-day month) keeps the
    natural key unique; the months run from `start` (default: ending at the current hour)."""
    window_start = start if start is not None else default_end() - timedelta(days=30 * months)
    if window_start.tzinfo is None:
        window_start = window_start.replace(tzinfo=UTC)
    n_entities = max(1, -(-n // months))
    row = np.arange(n)
    entity = row % n_entities
    month = row // n_entities
    seconds = month * 30 * 86400 + rng.integers(0, 30 * 86400, size=n)
    event_time = pd.Timestamp(window_start) + pd.to_timedelta(seconds, unit="s")
    return entity, month, event_time


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
    if not 0.0 <= concept_change <= 1.0:
        raise ValueError(f"concept_change: {concept_change} must be within 0..1")
    spec = contract or load_contract("churn")
    knobs = _checked_knobs(n_rows, months, corrupt_fraction, drift, spec)
    rng = np.random.default_rng(seed)
    n = n_rows
    customer, month, event_time = _monthly_snapshots(rng, n, months, start)

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
    return _in_contract_order(
        frame, rng, spec, ("customer_id", "event_time"), corrupt_fraction=corrupt_fraction, targets=_CHURN_CORRUPTIONS
    )


@dataclass(frozen=True)
class _CorruptionTargets:
    """Where a generator's corruptions land: a numeric column and a value past its max, a categorical column and a
    value outside its categories, a non-nullable integer column to empty, and the integer columns that must hold
    nulls as pandas' nullable Int64 (CSV and Parquet writers keep the values)."""

    out_of_range: tuple[str, float]
    unknown_category: tuple[str, str]
    null_not_allowed: str
    integer_columns: tuple[str, ...]


_CHURN_CORRUPTIONS = _CorruptionTargets(
    out_of_range=("monthly_charges", 9_999.0),
    unknown_category=("plan", "platinum"),
    null_not_allowed="tenure_months",
    integer_columns=("tenure_months", "days_since_last_login"),
)


def _in_contract_order(
    frame: pd.DataFrame,
    rng: np.random.Generator,
    spec: DataContract,
    key_and_time: tuple[str, str],
    *,
    corrupt_fraction: float,
    targets: _CorruptionTargets,
) -> pd.DataFrame:
    """A generator's frame under the contract's key and time names, sorted by event time, in contract column order,
    with `corrupt_fraction` of its rows broken (attrs `corrupt_rows` and `corruptions` say which and how)."""
    key, time = key_and_time
    frame = frame.rename(columns={key: spec.entity_key, time: spec.event_timestamp})
    frame = frame.sort_values(spec.event_timestamp, kind="stable").reset_index(drop=True)[spec.columns]
    frame.attrs["corrupt_rows"] = []
    frame.attrs["corruptions"] = []
    if corrupt_fraction and len(frame):
        _corrupt(frame, rng, corrupt_fraction, spec, targets)
    return frame


def _corrupt(
    frame: pd.DataFrame, rng: np.random.Generator, fraction: float, spec: DataContract, targets: _CorruptionTargets
) -> None:
    n = len(frame)
    count = min(n, max(1, round(n * fraction)))
    rows = np.sort(rng.choice(n, size=count, replace=False))
    kinds = rng.integers(0, len(CORRUPTIONS), size=count)
    # A duplicate copies the key of the row before it, so the later row in file order is the duplicate.
    kinds[(rows == 0) & (kinds == CORRUPTIONS.index("duplicate_key"))] = 0
    key, ts = spec.entity_key, spec.event_timestamp
    for column in targets.integer_columns:
        frame[column] = frame[column].astype("Int64")
    future = pd.Timestamp(datetime.now(UTC) + timedelta(days=30))
    for position, kind in zip(rows.tolist(), kinds.tolist(), strict=True):
        rule = CORRUPTIONS[kind]
        if rule == "out_of_range":
            frame.loc[position, targets.out_of_range[0]] = targets.out_of_range[1]
        elif rule == "unknown_category":
            frame.loc[position, targets.unknown_category[0]] = targets.unknown_category[1]
        elif rule == "null_not_allowed":
            frame.loc[position, targets.null_not_allowed] = pd.NA
        elif rule == "future_timestamp":
            # One instant per row: two future rows of one entity must not also repeat a key (one rule per row).
            frame.loc[position, ts] = future + pd.Timedelta(seconds=position)
        else:
            frame.loc[position, key] = frame.loc[position - 1, key]
            frame.loc[position, ts] = frame.loc[position - 1, ts]
    frame.attrs["corrupt_rows"] = rows.tolist()
    frame.attrs["corruptions"] = [CORRUPTIONS[k] for k in kinds.tolist()]


_TIER = (("free", "starter", "growth"), (0.50, 0.32, 0.18))
_COMPANY_SIZE = (("small", "mid", "large", "enterprise"), (0.50, 0.30, 0.15, 0.05))
_INDUSTRY = (
    ("retail", "finance", "healthcare", "software", "education", "manufacturing", "other"),
    (0.16, 0.13, 0.11, 0.22, 0.10, 0.12, 0.16),
)
_COUNTRY = (("us", "uk", "de", "fr", "in", "br"), (0.40, 0.14, 0.12, 0.09, 0.15, 0.10))
_CHANNEL = (("organic", "paid_search", "referral", "partner", "outbound"), (0.34, 0.24, 0.16, 0.14, 0.12))
_SIZE_SEATS = np.array([4.0, 15.0, 60.0, 250.0])
_TIER_SPEND_PER_SEAT = np.array([2.0, 45.0, 110.0])
# Upgrade log-odds by acquisition channel (a missing channel counts as organic) and by tier (growth has less above it).
_CHANNEL_LIFT = np.array([0.0, -0.2, 0.6, 0.35, -0.4])
_TIER_LIFT = np.array([0.0, 0.35, -0.45])

_UPSELL_CORRUPTIONS = _CorruptionTargets(
    out_of_range=("feature_adoption_pct", 180.0),
    unknown_category=("current_tier", "platinum"),
    null_not_allowed="seats",
    integer_columns=("seats",),
)


def _switched_off(values: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A boolean drift: that share (0..1) of rows becomes False."""
    share = float(np.clip(strength, 0.0, 1.0))
    return values & (rng.random(len(values)) >= share) if share else values


def generate_upsell(
    n_rows: int,
    *,
    seed: int,
    start: datetime | None = None,
    months: int = 12,
    drift: Mapping[str, float] | None = None,
    corrupt_fraction: float = 0.0,
    contract: DataContract | None = None,
) -> pd.DataFrame:
    """Return ``n_rows`` upsell snapshots (contracts/upsell/v1.json) in contract order, sorted by event time.

    A different problem shape from churn: monthly snapshots of B2B accounts, five categoricals (one nullable),
    count features that grow with the company, a heavily skewed spend and two nullable floats; the label (a tier
    upgrade within the contract's 14-day window) is rarer (about 15%) and depends on usage intensity (logins per
    seat, seat utilisation) more than on any single column, so a fitted logistic regression reaches an AUC around
    0.8. The knobs mean what they mean for :func:`generate_churn` (numeric: shift by ``strength`` standard
    deviations within the contract's range; categorical: move that share of the mass to the last category;
    boolean: that share of rows becomes False; ``upgraded``: shift the upgrade log-odds). ``corrupt_fraction``
    breaks one contract rule per chosen row (attrs ``corrupt_rows`` and ``corruptions``), as for churn.
    """
    spec = contract or load_contract("upsell")
    knobs = _checked_knobs(n_rows, months, corrupt_fraction, drift, spec)
    rng = np.random.default_rng(seed)
    n = n_rows
    account, month, event_time = _monthly_snapshots(rng, n, months, start)

    def shifted(name: str, values: np.ndarray) -> np.ndarray:
        feature = spec.feature(name)
        return _shift(values, knobs.get(name, 0.0), feature.min or 0.0, feature.max or 0.0)

    tier = _choice(rng, n, _TIER, knobs.get("current_tier", 0.0))
    size = _choice(rng, n, _COMPANY_SIZE, knobs.get("company_size", 0.0))
    industry = _choice(rng, n, _INDUSTRY, knobs.get("industry", 0.0))
    country = _choice(rng, n, _COUNTRY, knobs.get("country", 0.0))
    channel = _choice(rng, n, _CHANNEL, knobs.get("acquisition_channel", 0.0))
    channel_missing = rng.random(n) < 0.06

    seats = np.clip(1 + rng.poisson(_SIZE_SEATS[size] * rng.gamma(2.0, 0.5, size=n)), 1, 5000)
    seats = shifted("seats", seats).astype(np.int64)
    engagement = rng.beta(2.5, 2.0, size=n)
    active = np.minimum(rng.binomial(seats, np.clip(engagement, 0.02, 1.0)), seats)
    active = shifted("active_users_30d", active).astype(np.int64)
    logins = np.clip(rng.poisson(active * (2.0 + 14.0 * engagement)), 0, 1_000_000)
    logins = shifted("logins_30d", logins).astype(np.int64)
    tickets = np.clip(rng.poisson(0.4 + 0.08 * np.sqrt(seats) + 1.2 * (tier == 0) * engagement), 0, 1000)
    tickets = shifted("support_tickets_90d", tickets).astype(np.int64)
    signup = np.clip(rng.gamma(1.4, 260.0, size=n) + 30 * month, 0, 7300)
    signup = shifted("days_since_signup", signup).astype(np.int64)
    spend = seats * _TIER_SPEND_PER_SEAT[tier] * 3.0 * rng.lognormal(0.0, 0.8, size=n)
    spend = np.round(shifted("spend_90d", np.clip(spend, 0.0, 5_000_000.0)), 2)
    spend[rng.random(n) < 0.05] = np.nan
    session = np.clip(rng.gamma(2.0, 6.0 + 14.0 * engagement, size=n), 0.0, 600.0)
    session = np.round(shifted("avg_session_minutes", session), 1)
    session[rng.random(n) < 0.08] = np.nan
    adoption = np.clip(100.0 * rng.beta(1.5 + 4.0 * engagement, 3.0, size=n), 0.0, 100.0)
    adoption = np.round(shifted("feature_adoption_pct", adoption), 1)
    integration = _switched_off(rng.random(n) < 0.25 + 0.35 * engagement, rng, knobs.get("has_integration", 0.0))
    trial = _switched_off(rng.random(n) < 0.3, rng, knobs.get("trial_used", 0.0))

    logins_per_seat = logins / seats
    log_odds = (
        -6.0
        + _TIER_LIFT[tier]
        + 0.7 * np.log1p(logins_per_seat)
        + 2.0 * (active / seats)
        + 0.035 * (adoption - 40.0)
        + 1.0 * integration
        + 1.1 * trial
        + 0.25 * np.minimum(tickets, 6)
        + 0.3 * (size == 3)
        - 0.25 * np.minimum(signup, 1500) / 365.0
        + _CHANNEL_LIFT[np.where(channel_missing, 0, channel)]
    )
    log_odds = log_odds + knobs.get(spec.label.name, 0.0)
    upgraded = (rng.random(n) < 1.0 / (1.0 + np.exp(-log_odds))).astype(np.int64)

    names = {
        key: np.array(choice[0], dtype=object)
        for key, choice in (
            ("tier", _TIER),
            ("size", _COMPANY_SIZE),
            ("industry", _INDUSTRY),
            ("country", _COUNTRY),
            ("channel", _CHANNEL),
        )
    }
    channel_names = names["channel"][channel]
    channel_names[channel_missing] = None
    frame = pd.DataFrame(
        {
            "account_id": pd.Series(account).map("A{:07d}".format) if n else pd.Series([], dtype=object),
            "snapshot_time": event_time,
            "seats": seats,
            "active_users_30d": active,
            "logins_30d": logins,
            "support_tickets_90d": tickets,
            "days_since_signup": signup,
            "spend_90d": spend,
            "avg_session_minutes": session,
            "feature_adoption_pct": adoption,
            "current_tier": names["tier"][tier],
            "company_size": names["size"][size],
            "industry": names["industry"][industry],
            "country": names["country"][country],
            "acquisition_channel": channel_names,
            "has_integration": integration,
            "trial_used": trial,
            "upgraded": upgraded,
        }
    )
    return _in_contract_order(
        frame,
        rng,
        spec,
        ("account_id", "snapshot_time"),
        corrupt_fraction=corrupt_fraction,
        targets=_UPSELL_CORRUPTIONS,
    )


# The generated datasets by contract name, for tools that take a dataset name (the generators share their keywords).
GENERATORS: dict[str, Callable[..., pd.DataFrame]] = {"churn": generate_churn, "upsell": generate_upsell}
