"""Seeded synthetic purchase-propensity data for YarnIt, the knitting and crochet shop.

YarnIt is the running example of *Reliable Machine Learning* (O'Reilly). This module produces one daily
partition of browsing sessions, one row per session, labelled with whether the session ended in a
purchase. The data has the structure a real shop's data has (weekly and yearly seasonality, returning
customers whose history is consistent from day to day, a label that depends on the features) so that
the rest of the lifecycle (validation, training, drift monitoring, retraining) has something real to
find, and it can switch on named failure scenarios for chosen date windows so that each monitor can be
shown to fire.

Scenarios (see ``SCENARIOS``; several may be on for the same day):

``covariate_shift``
    A heatwave. The fibre mix moves to cotton, linen and bamboo, yarn weights to lace and fingering,
    prices drop, sessions get shorter and more of them are on mobile. P(purchased | features) is
    unchanged: only the inputs move.
``concept_shift``
    The features are exactly those of a normal day; the label function changes (discounts stop
    mattering, mobile converts much better, higher prices convert better) at about the same overall
    positive rate.
``schema_break``
    An upstream release renames ``price`` to ``unit_price`` and drops ``device``.
``null_spike``
    About 40 % of ``price``, ``country`` and ``pages_viewed`` are null (``pages_viewed`` becomes float64).
``label_outage``
    ``purchased`` is 0 on every row, as from a label feed that defaults to negative.
``volume_drop``
    Only about 15 % of the day's sessions arrive.
``label_leak``
    An upstream change to the customer-history export starts counting the session's own order:
    ``days_since_last_purchase`` is 0 on every session that ends in a purchase. The label leaks into a
    feature; a model trained on such days looks far better than it can be when it serves.

Everything is a pure function of ``(seed, day, scenarios, base_rows)``.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "SCENARIOS",
    "ScenarioWindow",
    "active_scenarios",
    "generate_day",
    "parse_scenario",
]

SCENARIOS: tuple[str, ...] = (
    "covariate_shift",
    "concept_shift",
    "schema_break",
    "null_spike",
    "label_outage",
    "volume_drop",
    "label_leak",
)


@dataclass(frozen=True)
class ScenarioWindow:
    """A named scenario switched on for every day from ``start`` to ``end``, both inclusive."""

    name: str
    start: datetime.date
    end: datetime.date

    def __post_init__(self) -> None:
        if self.name not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.name!r}; allowed: {', '.join(SCENARIOS)}")
        for field_name in ("start", "end"):
            value = getattr(self, field_name)
            # A datetime is a date subclass, but comparing it with plain days would silently mix in a
            # time of day (and raise on tz-aware values), so insist on calendar days.
            if not isinstance(value, datetime.date) or isinstance(value, datetime.datetime):
                raise TypeError(f"ScenarioWindow.{field_name} must be a datetime.date, got {value!r}")
        if self.end < self.start:
            raise ValueError(
                f"scenario {self.name!r}: end {self.end.isoformat()} is before start {self.start.isoformat()}"
            )

    def active_on(self, day: datetime.date) -> bool:
        """Whether the scenario is switched on for ``day``."""
        return self.start <= day <= self.end


def parse_scenario(spec: str) -> ScenarioWindow:
    """Parse ``NAME:START[:END]``, e.g. ``'covariate_shift:2026-09-15:2026-09-21'``.

    Dates are ISO ``YYYY-MM-DD``; without an end the window is the single day ``START``. Raises
    ``ValueError`` with a message that names what was wrong.
    """
    if not isinstance(spec, str):
        raise ValueError(f"scenario spec must be a string, got {spec!r}")
    parts = [part.strip() for part in spec.strip().split(":")]
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(
            f"bad scenario spec {spec!r}: expected NAME:START[:END] with ISO dates, "
            "e.g. 'covariate_shift:2026-09-15:2026-09-21'"
        )
    name = parts[0]
    if name not in SCENARIOS:
        raise ValueError(f"bad scenario spec {spec!r}: unknown scenario {name!r}; allowed: {', '.join(SCENARIOS)}")
    start = _parse_iso_day(parts[1], spec)
    end = _parse_iso_day(parts[2], spec) if len(parts) == 3 else start
    return ScenarioWindow(name=name, start=start, end=end)


def _parse_iso_day(text: str, spec: str) -> datetime.date:
    # date.fromisoformat also takes compact and week forms on 3.11; a spec is easier to read back if
    # only the one spelling is allowed.
    if len(text) != 10:
        raise ValueError(f"bad scenario spec {spec!r}: {text!r} is not a YYYY-MM-DD date")
    try:
        return datetime.date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"bad scenario spec {spec!r}: {text!r} is not a YYYY-MM-DD date ({exc})") from None


def active_scenarios(day: datetime.date, scenarios: Sequence[ScenarioWindow]) -> list[str]:
    """Names of the scenarios switched on for ``day``, once each, in ``SCENARIOS`` order."""
    on = {window.name for window in scenarios if window.active_on(day)}
    return [name for name in SCENARIOS if name in on]


# --------------------------------------------------------------------------------------------------
# The shop's world. Constants are module level so the label function and the tests share one truth.
# --------------------------------------------------------------------------------------------------

# Customer numbers are handed out in sign-up order from this day, _NEW_CUSTOMERS_PER_DAY a day, so a
# customer's tenure follows from the number alone and stays consistent across independently generated
# days. 7 digits last until the 2140s.
_SHOP_OPENED = datetime.date(2012, 1, 1)
_NEW_CUSTOMERS_PER_DAY = 200
# The session counter has 6 digits, more past 999,999 sessions (the contract admits 6 to 9): the busiest day
# (a winter weekend, ~1.9x the base) stays under a billion at this base.
_MAX_BASE_ROWS = 100_000_000

_COUNTRIES = ("US", "GB", "DE", "FR", "NL", "CA", "AU", "IE")
_COUNTRY_P = np.array([0.35, 0.18, 0.12, 0.08, 0.06, 0.08, 0.08, 0.05])
_LANGUAGES = ("en", "de", "fr", "nl")
# Share of each country's customers who browse in the local language rather than English.
_LOCAL_LANGUAGE = {"DE": ("de", 0.90), "FR": ("fr", 0.92), "NL": ("nl", 0.75), "CA": ("fr", 0.15)}

_DEVICES = ("desktop", "mobile", "tablet")
_DEVICE_P = np.array([0.44, 0.46, 0.10])
_DEVICE_P_HEATWAVE = np.array([0.26, 0.64, 0.10])  # people browse from the beach, not the desk

_SOURCES = ("search", "social", "email", "direct", "ads")
_SOURCE_P_RETURNING = np.array([0.30, 0.12, 0.18, 0.28, 0.12])
_SOURCE_P_NEW = np.array([0.42, 0.22, 0.02, 0.12, 0.22])  # new customers are not on the mailing list yet

_CATEGORIES = ("yarn", "needles", "hooks", "patterns", "kits", "notions")
_CATEGORY_P = np.array([0.45, 0.12, 0.08, 0.15, 0.12, 0.08])
_CATEGORY_MEDIAN_PRICE = np.array([11.0, 9.0, 6.5, 6.0, 38.0, 4.5])
# Fibre drives the price of what contains fibre; for tools and patterns it matters much less.
_CATEGORY_FIBRE_WEIGHT = np.array([1.0, 0.3, 0.3, 0.3, 1.0, 0.3])

_FIBRES = ("wool", "merino", "alpaca", "cotton", "linen", "bamboo", "acrylic", "silk", "blend")
_FIBRE_P = np.array([0.18, 0.14, 0.06, 0.14, 0.05, 0.05, 0.20, 0.03, 0.15])
# How much more a fibre is wanted in mid-winter than on average (negative: a summer fibre). It moves the
# mix and, through the label, how well a session on that fibre converts.
_FIBRE_WINTER = np.array([0.6, 0.5, 0.7, -0.6, -0.8, -0.5, 0.0, -0.1, 0.1])
_FIBRE_HEATWAVE = np.array([-1.5, -1.2, -1.8, 1.6, 1.8, 1.6, -0.3, 0.0, -0.3])
_FIBRE_LOG_PREMIUM = np.array([0.05, 0.30, 0.50, -0.15, 0.15, 0.0, -0.55, 0.65, -0.05])

_WEIGHTS = ("lace", "fingering", "sport", "dk", "worsted", "bulky")
_WEIGHT_P = np.array([0.08, 0.22, 0.12, 0.25, 0.22, 0.11])
_WEIGHT_WINTER = np.array([-0.6, -0.3, -0.1, 0.05, 0.35, 0.7])
_WEIGHT_HEATWAVE = np.array([1.5, 1.1, 0.3, -0.2, -1.0, -1.6])

_DISCOUNT_LEVELS = np.array([0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.40, 0.50])
_DISCOUNT_LEVEL_P = np.array([0.15, 0.25, 0.15, 0.20, 0.10, 0.08, 0.05, 0.02])

# The purchase model. Coefficients on the log-odds scale; see _purchase_probability.
_LABEL_INTERCEPT = -4.6
_LABEL_DEVICE = {"desktop": 0.0, "mobile": -0.6, "tablet": -0.25}
_LABEL_SOURCE = {"search": 0.0, "social": -0.7, "email": 0.7, "direct": 0.45, "ads": -0.35}
# Under concept_shift: discounts stop mattering, a new mobile app converts far better, and buyers start
# reading price as quality. The intercept moves so the overall positive rate stays roughly where it was:
# only a monitor that looks at P(label | features) should notice.
_CONCEPT_INTERCEPT = -4.8
_CONCEPT_DEVICE = {"desktop": 0.0, "mobile": 0.9, "tablet": -0.25}

# Child streams, one per independent source of randomness. Appending is safe; reordering or inserting
# would change every existing dataset.
_STREAMS = (
    "volume",
    "timestamp",
    "customer",
    "device",
    "source",
    "category",
    "fibre",
    "weight",
    "price",
    "discount",
    "pages",
    "duration",
    "label",
    "nulls",
    "volume_drop",
)

_COLUMNS = (
    "session_id",
    "event_ts",
    "customer_id",
    "country",
    "language",
    "device",
    "traffic_source",
    "product_category",
    "fibre",
    "yarn_weight",
    "price",
    "discount_pct",
    "pages_viewed",
    "session_duration_s",
    "customer_tenure_days",
    "previous_purchases",
    "days_since_last_purchase",
    "purchased",
)


def generate_day(
    day: datetime.date,
    *,
    seed: int = 7,
    scenarios: Sequence[ScenarioWindow] = (),
    base_rows: int = 3000,
) -> pd.DataFrame:
    """Generate the sessions of one UTC day.

    Deterministic for ``(seed, day, scenarios, base_rows)``: the same inputs give an identical frame.
    Every column draws from its own child stream of
    ``np.random.SeedSequence([seed, day.toordinal()])``, so switching a scenario on changes only the
    columns that scenario is about; e.g. the same day under ``concept_shift`` has exactly the same
    features and only different labels.

    Rows come sorted by ``event_ts``; ``session_id`` numbers them from ``YYYYMMDD-000001`` (7 digits from the
    millionth session of a day on). The day has
    about ``base_rows`` rows, more at weekends and in winter. Scenario windows that cover ``day`` are
    applied; see ``SCENARIOS`` and the module documentation for what each one does.
    """
    if not isinstance(day, datetime.date) or isinstance(day, datetime.datetime):
        raise TypeError(f"day must be a datetime.date (use .date() on a datetime), got {day!r}")
    if day < _SHOP_OPENED:
        raise ValueError(f"day {day.isoformat()} is before YarnIt opened on {_SHOP_OPENED.isoformat()}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if not isinstance(base_rows, int) or isinstance(base_rows, bool) or not 1 <= base_rows <= _MAX_BASE_ROWS:
        raise ValueError(f"base_rows must be an int in [1, {_MAX_BASE_ROWS}], got {base_rows!r}")

    active = set(active_scenarios(day, scenarios))
    heatwave = "covariate_shift" in active
    children = np.random.SeedSequence([seed, day.toordinal()]).spawn(len(_STREAMS))
    rng = {name: np.random.default_rng(child) for name, child in zip(_STREAMS, children, strict=True)}

    season = _winter_index(day)
    weekend = day.weekday() >= 5
    n = _session_count(rng["volume"], base_rows, season, weekend)

    # Timestamps first: sorting by them fixes the row order every other column is then drawn in, and
    # no scenario touches them, so rows line up one to one between a day with and without a scenario.
    event_us = _event_microseconds(rng["timestamp"], day, n)

    cust = _customers(rng["customer"], seed, day, n)
    # The southern hemisphere has its winter in July.
    row_season = np.where(cust["country"] == _COUNTRIES.index("AU"), -season, season)

    u_device = rng["device"].random(n)
    device = _pick(u_device, _DEVICE_P_HEATWAVE if heatwave else _DEVICE_P)

    source_p = np.where(cust["tenure"][:, None] == 0, _SOURCE_P_NEW, _SOURCE_P_RETURNING)
    source = _pick(rng["source"].random(n), source_p)

    category = _pick(rng["category"].random(n), _CATEGORY_P)

    fibre_logits = np.log(_FIBRE_P) + row_season[:, None] * _FIBRE_WINTER + (_FIBRE_HEATWAVE if heatwave else 0.0)
    fibre = _pick(rng["fibre"].random(n), _softmax(fibre_logits))
    weight_logits = np.log(_WEIGHT_P) + row_season[:, None] * _WEIGHT_WINTER + (_WEIGHT_HEATWAVE if heatwave else 0.0)
    yarn_weight = _pick(rng["weight"].random(n), _softmax(weight_logits))

    log_price = (
        np.log(_CATEGORY_MEDIAN_PRICE[category])
        + _CATEGORY_FIBRE_WEIGHT[category] * _FIBRE_LOG_PREMIUM[fibre]
        + 0.4 * rng["price"].standard_normal(n)
    )
    if heatwave:
        log_price += math.log(0.85)  # summer sale on what is left of the winter stock
    price = np.round(np.clip(np.exp(log_price), 1.5, 180.0), 2)

    discount = _discounts(rng["discount"], source)

    # Larger screens and customers who know the shop browse deeper.
    extra_pages = np.array([5.0, 3.0, 4.0])[device] + np.where(cust["tenure"] > 0, 1.0, 0.0)
    dispersion = 1.5
    pages = 1 + rng["pages"].negative_binomial(dispersion, dispersion / (dispersion + extra_pages))
    pages = pages.astype(np.int64)

    seconds_per_page = np.exp(math.log(38.0) + 0.55 * rng["duration"].standard_normal(n))
    if heatwave:
        seconds_per_page *= 0.65
    duration = np.round(pages * seconds_per_page, 1)

    frame = pd.DataFrame(
        {
            "session_id": pd.Series(_session_ids(day, n), dtype=object),
            "event_ts": pd.Series(event_us.astype("datetime64[us]")).dt.tz_localize("UTC"),
            "customer_id": pd.Series(_customer_ids(cust["number"]), dtype=object),
            "country": _labels(_COUNTRIES, cust["country"]),
            "language": _labels(_LANGUAGES, cust["language"]),
            "device": _labels(_DEVICES, device),
            "traffic_source": _labels(_SOURCES, source),
            "product_category": _labels(_CATEGORIES, category),
            "fibre": _labels(_FIBRES, fibre),
            "yarn_weight": _labels(_WEIGHTS, yarn_weight),
            "price": price.astype(np.float64),
            "discount_pct": discount,
            "pages_viewed": pages,
            "session_duration_s": duration.astype(np.float64),
            "customer_tenure_days": cust["tenure"],
            "previous_purchases": cust["previous"],
            "days_since_last_purchase": cust["days_since"],
        }
    )

    # The label uniforms are shared by both label functions, so a scenario that moves P(label) flips
    # only the rows whose probability it actually moved.
    p = _purchase_probability(frame, day, concept_shift="concept_shift" in active)
    frame["purchased"] = (rng["label"].random(n) < p).astype(np.int64)

    return _apply_data_faults(frame, active, rng["nulls"], rng["volume_drop"], day)


def _apply_data_faults(
    frame: pd.DataFrame,
    active: set[str],
    nulls_rng: np.random.Generator,
    drop_rng: np.random.Generator,
    day: datetime.date,
) -> pd.DataFrame:
    """Scenarios that damage the data on its way in, after the world has produced it."""
    n = len(frame)
    # Draw unconditionally so a stream's state never depends on which other scenarios are on.
    null_u = nulls_rng.random((3, n))
    keep_u = drop_rng.random(n)

    if "label_leak" in active:
        # Applied before label_outage: the export joined the real orders, whatever the label feed says later.
        frame["days_since_last_purchase"] = frame["days_since_last_purchase"].mask(frame["purchased"] == 1, 0.0)
    if "label_outage" in active:
        # A label feed that defaults to negative when the order system's join is missing.
        frame["purchased"] = np.zeros(n, dtype=np.int64)
    if "null_spike" in active:
        price_null, country_null, pages_null = null_u < 0.4
        frame["price"] = frame["price"].mask(price_null)
        frame["country"] = frame["country"].mask(country_null, None)
        frame["pages_viewed"] = frame["pages_viewed"].astype(np.float64).mask(pages_null)
    if "volume_drop" in active:
        # Most of the tracking beacons are lost; the survivors are renumbered because the session ids
        # come from the (still working) session store counter.
        frame = frame.loc[keep_u < 0.15].reset_index(drop=True)
        frame["session_id"] = pd.Series(_session_ids(day, len(frame)), dtype=object)
    if "schema_break" in active:
        frame = frame.rename(columns={"price": "unit_price"}).drop(columns=["device"])
    return frame


# --------------------------------------------------------------------------------------------------
# The label
# --------------------------------------------------------------------------------------------------


def _purchase_probability(frame: pd.DataFrame, day: datetime.date, *, concept_shift: bool) -> np.ndarray:
    """P(purchased = 1 | features) for clean, normal-schema rows of ``day``.

    ``day`` enters only through the season (for the fibre x season interaction) and the weekend. The
    covariate_shift scenario moves the features but never this function; concept_shift swaps it.
    """
    prev = frame["previous_purchases"].to_numpy(dtype=np.float64)
    since = frame["days_since_last_purchase"].to_numpy(dtype=np.float64)
    price = frame["price"].to_numpy(dtype=np.float64)
    fibre = _codes(frame["fibre"], _FIBRES)
    country_au = (frame["country"] == "AU").to_numpy()
    season = np.where(country_au, -_winter_index(day), _winter_index(day))

    z = (
        0.45 * np.log1p(prev)
        # Customers who bought recently are still in the middle of a project and come back for more.
        - 0.25 * np.log1p(np.nan_to_num(since, nan=0.0) / 30.0)
        + 0.8 * np.log(frame["pages_viewed"].to_numpy(dtype=np.float64))
        + 0.3 * np.log1p(frame["session_duration_s"].to_numpy(dtype=np.float64) / 60.0)
        + frame["traffic_source"].map(_LABEL_SOURCE).to_numpy(dtype=np.float64)
        # In-season fibres sell: wool in January, linen in July.
        + 0.5 * _FIBRE_WINTER[fibre] * season
        + (0.15 if day.weekday() >= 5 else 0.0)
    )
    discount = frame["discount_pct"].to_numpy(dtype=np.float64)
    log_rel_price = np.log(price / 12.0)
    if concept_shift:
        z = z + _CONCEPT_INTERCEPT + frame["device"].map(_CONCEPT_DEVICE).to_numpy(dtype=np.float64)
        z = z + 0.35 * log_rel_price
    else:
        z = z + _LABEL_INTERCEPT + frame["device"].map(_LABEL_DEVICE).to_numpy(dtype=np.float64)
        z = z + 4.5 * discount - 0.6 * log_rel_price
    result: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return result


# --------------------------------------------------------------------------------------------------
# Pieces of the world
# --------------------------------------------------------------------------------------------------


def _winter_index(day: datetime.date) -> float:
    """+1 in mid-January, -1 in mid-July (northern hemisphere)."""
    return math.cos(2.0 * math.pi * (day.timetuple().tm_yday - 15) / 365.25)


def _session_count(rng: np.random.Generator, base_rows: int, season: float, weekend: bool) -> int:
    level = base_rows * (1.3 if weekend else 1.0) * (1.0 + 0.2 * season) * math.exp(0.05 * rng.standard_normal())
    return max(1, round(level))


def _event_microseconds(rng: np.random.Generator, day: datetime.date, n: int) -> np.ndarray:
    """Sorted microseconds since the Unix epoch, inside the day, busiest in the (European) evening."""
    hours = np.arange(24)
    hour_weight = 1.0 + 0.7 * np.cos(2.0 * math.pi * (hours - 20) / 24.0)
    hour = _pick(rng.random(n), hour_weight / hour_weight.sum())
    micros_per_hour = 3_600_000_000
    within = np.floor(rng.random(n) * micros_per_hour).astype(np.int64)
    day_start = (day - datetime.date(1970, 1, 1)).days * 86_400_000_000
    result: np.ndarray = np.sort(day_start + hour.astype(np.int64) * micros_per_hour + within)
    return result


def _customers(rng: np.random.Generator, seed: int, day: datetime.date, n: int) -> dict[str, np.ndarray]:
    """Who the sessions belong to, with histories that are the same whichever day asks.

    A customer's country, language, purchase rate and purchase phase are hashed from (seed, number), and
    the sign-up day follows from the number, so tenure and purchase counts agree across days that are
    generated independently and in any order.
    """
    days_open = (day - _SHOP_OPENED).days
    is_new = rng.random(n) < 0.25
    # Returning visits lean to recent sign-ups: most customers drift away after a year or two.
    tenure_draw = np.minimum(1 + np.floor(rng.exponential(365.0, n)), max(days_open, 1)).astype(np.int64)
    signup_offset = np.where(is_new | (days_open == 0), days_open, days_open - tenure_draw)
    slot = rng.integers(0, _NEW_CUSTOMERS_PER_DAY, n)
    number = signup_offset * _NEW_CUSTOMERS_PER_DAY + slot + 1
    tenure = (days_open - (number - 1) // _NEW_CUSTOMERS_PER_DAY).astype(np.int64)

    u_country = _hash_uniform(seed, number, 1)
    country = _pick(u_country, _COUNTRY_P)
    u_language = _hash_uniform(seed, number, 2)
    language = np.zeros(n, dtype=np.int64)
    for code, (local, share) in _LOCAL_LANGUAGE.items():
        local_rows = (country == _COUNTRIES.index(code)) & (u_language < share)
        language[local_rows] = _LANGUAGES.index(local)

    # Each customer buys at a steady personal rate, starting at a personal phase, so previous purchases
    # only ever grow and the days since the last one stay below one purchase interval.
    # Box-Muller on two hashed uniforms gives a standard normal per customer.
    radius = np.sqrt(-2.0 * np.log1p(-_hash_uniform(seed, number, 3)))
    z = radius * np.cos(2.0 * math.pi * _hash_uniform(seed, number, 5))
    rate = np.exp(math.log(1.0 / 90.0) + 0.8 * z)
    phase = _hash_uniform(seed, number, 4)
    previous = np.floor(rate * tenure + phase).astype(np.int64)
    since = np.floor(tenure - (previous - phase) / rate)
    days_since = np.where(previous > 0, np.maximum(since, 0.0), np.nan).astype(np.float64)

    return {
        "number": number,
        "tenure": tenure,
        "country": country,
        "language": language,
        "previous": previous,
        "days_since": days_since,
    }


def _discounts(rng: np.random.Generator, source: np.ndarray) -> np.ndarray:
    # Email campaigns are mostly coupon mailings.
    has_discount = rng.random(len(source)) < np.where(source == _SOURCES.index("email"), 0.5, 0.18)
    level = _DISCOUNT_LEVELS[_pick(rng.random(len(source)), _DISCOUNT_LEVEL_P)]
    result: np.ndarray = np.where(has_discount, level, 0.0).astype(np.float64)
    return result


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------


def _pick(u: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Category indices by inverse CDF: the same uniforms under a different mix move as few rows as can be."""
    cdf = np.cumsum(probs, axis=-1)
    cdf = cdf / cdf[..., -1:]
    if cdf.ndim == 1:
        idx = np.searchsorted(cdf, u, side="right")
    else:
        idx = (u[:, None] >= cdf).sum(axis=1)
    result: np.ndarray = np.minimum(idx, probs.shape[-1] - 1).astype(np.int64)
    return result


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    result: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return result


def _labels(names: tuple[str, ...], idx: np.ndarray) -> pd.Series:
    return pd.Series(np.asarray(names, dtype=object)[idx], dtype=object)


def _codes(values: pd.Series, names: tuple[str, ...]) -> np.ndarray:
    result: np.ndarray = values.map({name: i for i, name in enumerate(names)}).to_numpy(dtype=np.int64)
    return result


def _session_ids(day: datetime.date, n: int) -> np.ndarray:
    prefix = day.strftime("%Y%m%d")
    return np.array([f"{prefix}-{i:06d}" for i in range(1, n + 1)], dtype=object)


def _customer_ids(number: np.ndarray) -> np.ndarray:
    return np.array([f"C{k:07d}" for k in number.tolist()], dtype=object)


def _hash_uniform(seed: int, number: np.ndarray, salt: int) -> np.ndarray:
    """Uniform [0, 1) hashed from (seed, customer number, salt) with splitmix64; the same on every day."""
    mask = (1 << 64) - 1
    key = np.uint64(((seed * 0x9E3779B97F4A7C15) ^ (salt * 0xD1B54A32D192ED03)) & mask)
    x = number.astype(np.uint64) ^ key
    # uint64 arithmetic wraps, which is the point of the mix.
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    result: np.ndarray = (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    return result
