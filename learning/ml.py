"""The outcome model (docs/learning.md): a scikit-learn model of what an analysis saw and said,
predicting whether a BUY/SELL call comes out a WIN, pooled over a user's bots and symbols; evaluated on
time-ordered splits against the analyst's calibrated confidence, and used by the decision as a gate only
while, out of sample, it beats that confidence and ranks WINs above LOSSes with evidence. Rules and
reasons: docs/learning.md, "The outcome model and its gate"."""

import hashlib
import json
import logging
import math
from collections import OrderedDict, namedtuple
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, lru_cache
from operator import itemgetter

import numpy as np
import pandas as pd
import sklearn
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.db.models import Count
from scipy.integrate import trapezoid
from scipy.special import expit, ndtr
from scipy.stats import mannwhitneyu
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import TimeSeriesSplit
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from core import plain_sql as sql
from core.values import BUY_OR_SELL, Recommendation

from .calibration import Calibration, fit_calibration
from .models import AILearningData, Outcome, TrainedModel

logger = logging.getLogger(__name__)

NUMERIC = (
    "confidence",
    "rsi_with_call",
    "macd_hist_atr",
    "volume_z",
    "atr_pct",
    "room_atr",
    "cushion_atr",
    "stop_atr",
    "target_atr",
)
# The analyst too: a user's OpenAI and technical bots state confidences that mean different things.
CATEGORICAL = ("analyst", "recommendation", "regime", "sentiment_vs_call", "timeframe", "symbol")
# Five expanding windows: with the fewest rows trained on (ML_MIN_SAMPLES), the first learns from a sixth
# of them, and five sixths of the rows are predicted out of sample.
SPLITS = 5
ALGORITHM = f"scikit-learn {sklearn.__version__} LogisticRegression"
# The one-sided p-value below which a model's AUC counts as evidence that it ranks better than chance. A
# model that ranks no better only moves probabilities around, and the gate would refuse calls by noise.
AUC_ALPHA = 0.05
# What training and the checks read of an analysis; the analyst's prose stays in the database.
FIELDS = (
    "analysis_data",
    "analyst",
    "market_conditions",
    "confidence_score",
    "market_sentiment",
    "recommendation",
    "regime",
    "timeframe",
    "symbol",
    "outcome",
    "resolved_at",
    "created_at",
)
# A row of those fields, named: features() and _made_at() read it as they read an AILearningData, and no
# instance is built for a call read (resolved_calls reading 2,579 calls it never saw: 107-116 -> 77-83 ms).
_Row = namedtuple("_Row", ["pk", *FIELDS])


def features(record: AILearningData | _Row) -> dict:
    """What the analysis saw (its indicators) and said (direction, levels, confidence), as model inputs.

    Directional values are turned to the call's side (d = +1 for a BUY, -1 for a SELL), so that one
    coefficient serves both: RSI 70 on a BUY and RSI 30 on a SELL are the same "momentum with the call" of
    +20, and a linear model can learn whether chasing it pays. Distances are in ATRs, so that a pip on
    EUR/USD and a dollar on BTC mean the same. The levels are the analyst's own where it named any on a
    side, else the swing pivots the indicators found (which the technical analyst names anyway)."""
    m, a = record.market_conditions, record.analysis_data
    d = -1 if record.recommendation == Recommendation.SELL else 1
    close, atr, rsi, macd_hist = (m.get(k) for k in ("close", "atr", "rsi", "macd_hist"))
    levels = a.get("key_levels") or {}
    support = levels.get("support") or m.get("support") or []
    resistance = levels.get("resistance") or m.get("resistance") or []
    ahead, behind = (resistance, support) if d > 0 else (support, resistance)

    def in_atrs(here, there):
        """How far `there` lies beyond `here` in the call's direction, in ATRs."""
        if here is None or there is None or not atr:
            return None
        return d * (there - here) / atr

    sentiment = {"BULLISH": 1, "BEARISH": -1}.get(record.market_sentiment, 0) * d
    return {
        "confidence": record.confidence_score,
        "rsi_with_call": None if rsi is None else d * (rsi - 50),
        "macd_hist_atr": in_atrs(0, macd_hist),
        "volume_z": m.get("volume_z"),
        "atr_pct": atr / close * 100 if atr and close else None,
        # Room to the first obstacle, and the cushion behind: both positive when the levels lie where a
        # trader expects them.
        "room_atr": in_atrs(close, _nearest(ahead, close)),
        "cushion_atr": in_atrs(_nearest(behind, close), close),
        "stop_atr": in_atrs(a.get("stop_loss"), close),
        "target_atr": in_atrs(close, a.get("take_profit")),
        "analyst": record.analyst,
        "recommendation": record.recommendation,
        "regime": record.regime or "",
        "sentiment_vs_call": {1: "WITH", -1: "AGAINST"}.get(sentiment, "NEUTRAL"),
        "timeframe": record.timeframe,
        "symbol": record.symbol,
    }


def _nearest(levels: list, close: float | None) -> float | None:
    if not levels or close is None:
        return None
    return min(levels, key=lambda level: abs(level - close))


def reward_risk_of(record: AILearningData) -> float | None:
    """The call's take-profit distance over its stop distance, from its entry; None without both levels."""
    a = record.analysis_data
    entry = a.get("entry") or record.market_conditions.get("close")
    stop, target = a.get("stop_loss"), a.get("take_profit")
    if entry is None or stop is None or target is None or stop == entry:
        return None
    return abs(target - entry) / abs(entry - stop)


def _calls(**filters):
    """Resolved BUY/SELL analyses with a stated confidence (the baseline the model must beat)."""
    return AILearningData.objects.filter(
        recommendation__in=BUY_OR_SELL,
        outcome__in=Outcome.values,
        confidence_score__isnull=False,
        **filters,
    )


def _made_at(record: AILearningData | _Row) -> datetime:
    # The market's clock: in a replay, created_at is the wall clock of the run, not the slot.
    as_of = record.market_conditions.get("as_of")
    return datetime.fromisoformat(as_of) if as_of else record.created_at


@dataclass(frozen=True)
class Call:
    """A resolved call as the model sees it."""

    pk: int
    inputs: dict  # features()
    made: datetime  # _made_at()
    resolved: datetime | None
    won: int
    confidence: float


# The calls as the model sees them, remembered by the process: the daily check and every retraining would
# otherwise read every call again and turn it into features, most of a long replay's time. What a call says
# as model inputs never changes once it is recorded; how and when it came out is read every time, and makes
# the key with its id and creation time, as the database's text: no date is parsed for a call already known
# (3,000 calls read in 9 ms instead of 30), a call whose outcome changed is read afresh, and an id a
# rolled-back transaction handed out twice is not mistaken for the other row. Bounded, the oldest forgotten
# first.
_CALLS: OrderedDict[tuple, Call] = OrderedDict()
CALLS_REMEMBERED = 50_000


def resolved_calls(user_id: int, *, before: datetime, after: datetime | None = None) -> list[Call]:
    """The user's calls (`_calls`') resolved before `before`, and after `after` if given, newest recorded
    first as `_calls` orders them, with their model inputs. Read by plain statements built once per process,
    each value converted as the ORM converts it: through the ORM, building the queries (up to a thousand ids
    in one) and reading their rows cost more than the database's work (317 calls known: 1.3-1.4 -> 0.5 ms;
    2,579 never seen: 81-83 -> 64-78 ms). tests/learning/test_ml.py holds the calls to the ORM's."""
    resolved_at = AILearningData._meta.get_field("resolved_at")
    bounds = [
        resolved_at.get_db_prep_value(b, connection, prepared=False) for b in (before, after) if b is not None
    ]
    keys = _calls_statement(connection.vendor, len(bounds))
    rows = sql.rows(keys, [user_id, *BUY_OR_SELL, *Outcome.values, *bounds])
    missing = {row[0]: row for row in rows if row not in _CALLS}
    ids = list(missing)
    select, converters = _reading(connection.vendor)
    for start in range(0, len(ids), 1000):  # within every database's limit on parameters
        chunk = ids[start : start + 1000]
        for values in sql.rows(f"{select} ({', '.join(['%s'] * len(chunk))})", chunk):
            record = _Row._make([convert(value) for convert, value in zip(converters, values, strict=True)])
            _CALLS[missing[record.pk]] = Call(
                record.pk,
                features(record),
                _made_at(record),
                record.resolved_at,
                int(record.outcome == Outcome.WIN),
                record.confidence_score,
            )
    calls = [_CALLS[row] for row in rows]
    while len(_CALLS) > CALLS_REMEMBERED:
        _CALLS.popitem(last=False)
    return calls


@cache
def _calls_statement(vendor: str, bounds: int) -> str:
    """The keys of `_calls` resolved before a moment (and after another, with two bounds): id, creation and
    resolution times as the database's text (the ORM's Cast to a CharField), outcome and confidence. Per
    database vendor, for the tests' sake; only the model's own names are formatted in."""
    q, text = connection.ops.quote_name, connection.ops.cast_char_field_without_max_length
    call = {f.name: q(f.column) for f in AILearningData._meta.concrete_fields}
    created, resolved = (f"CAST({call[name]} AS {text})" for name in ("created_at", "resolved_at"))
    after = f" AND {call['resolved_at']} > %s" if bounds == 2 else ""
    return (
        f"SELECT {call['id']}, {created}, {resolved}, {call['outcome']}, {call['confidence_score']} "  # noqa: S608
        f"FROM {q(AILearningData._meta.db_table)} WHERE {_resolved_before(call)}{after} "
        f"ORDER BY {call['created_at']} DESC"
    )


def _resolved_before(call: dict[str, str]) -> str:
    """`_calls`' filters on a user's calls resolved before a moment, as SQL on the quoted columns `call`; its
    parameters the user's id, BUY_OR_SELL, Outcome.values and the moment."""
    sides, outcomes = ", ".join(["%s"] * len(BUY_OR_SELL)), ", ".join(["%s"] * len(Outcome.values))
    return (
        f"{call['user']} = %s AND {call['recommendation']} IN ({sides}) "
        f"AND {call['outcome']} IN ({outcomes}) AND {call['confidence_score']} IS NOT NULL "
        f"AND {call['resolved_at']} < %s"
    )


@cache
def _reading(vendor: str) -> tuple[str, list[Callable]]:
    """The SELECT of analyses' id and FIELDS by id (the ids' placeholders to append), and each value's
    conversion as the ORM's compiler converts it: the backend's converters, then the field's (SQLite hands
    times over as naive, JSON comes as text)."""
    table, pk = AILearningData._meta.db_table, AILearningData._meta.pk
    fields = [pk, *(AILearningData._meta.get_field(name) for name in FIELDS)]
    converters = [sql.converter(field.get_col(table)) for field in fields]
    q = connection.ops.quote_name
    columns = ", ".join(q(field.column) for field in fields)
    return f"SELECT {columns} FROM {q(table)} WHERE {q(pk.column)} IN", converters  # noqa: S608


def _frame(inputs: list[dict]) -> pd.DataFrame:
    rows = pd.DataFrame(inputs, columns=[*NUMERIC, *CATEGORICAL])
    rows[list(NUMERIC)] = rows[list(NUMERIC)].astype(float)  # None becomes NaN, for the imputer
    return rows


def _pipeline() -> Pipeline:
    # A regularised logistic regression: at a few hundred rows a flexible model learns the noise, this one
    # gives probabilities (what the Brier score judges, and what the gate needs) and a handful of
    # coefficients that can be stored as plain numbers and read. Medians fill what an early candle or a
    # level-less answer leaves missing; standardising lets one penalty treat every input alike; a category
    # never seen in training (a new symbol) adds nothing rather than failing. Newton-Cholesky: exact in a
    # few steps where rows far outnumber inputs, as here (lbfgs made training four times slower).
    numeric = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler())
    columns = ColumnTransformer(
        [("num", numeric, list(NUMERIC)), ("cat", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL))]
    )
    return make_pipeline(columns, LogisticRegression(solver="newton-cholesky"))


class _Inputs:
    """Calls' model inputs as `_pipeline`'s column transformer hands them to its steps: the numeric ones as
    floats (NaN where missing) in the column-major order a DataFrame's columns come in (the scaler sums down
    the columns, and a sum in another memory order may round otherwise); each categorical one as codes into
    its values, sorted as the encoder sorts its categories, so that a one-hot column is a comparison of
    integers rather than of strings."""

    def __init__(self, rows: list[dict]):
        self.rows = rows
        self.numeric = np.array(list(map(itemgetter(*NUMERIC), rows)), dtype=float, order="F")
        self.values, self.codes = [], []
        for column in zip(*map(itemgetter(*CATEGORICAL), rows), strict=True):
            values = sorted(set(column))
            code = {value: i for i, value in enumerate(values)}
            self.values.append(values)
            self.codes.append(np.array(list(map(code.__getitem__, column)), dtype=int))

    def take(self, at: np.ndarray) -> "_Inputs":
        taken = _Inputs.__new__(_Inputs)
        taken.rows = [self.rows[i] for i in at]
        taken.numeric = np.asfortranarray(self.numeric[at])
        taken.values, taken.codes = self.values, [codes[at] for codes in self.codes]
        return taken


class _Fitted:
    """`_pipeline()` fitted on `inputs`, its steps run by hand on arrays: the imputer's medians (`_medians`),
    the scaler's mean and scale (`_standardising`), the same regression on the same numbers, and its
    probabilities as predict_proba computes them, so the same model to the bit (tests/learning/test_ml.py
    holds it to the pipeline), without the column transformer's, the data frame's and the steps' checks of
    their input, which cost more than the fits.
    The one-hot columns are the encoder's: each input's categories seen, sorted, one column each. Where the
    pipeline would stack its columns as a sparse matrix (many symbols), the pipeline itself."""

    def __init__(self, inputs: _Inputs, won: np.ndarray):
        self.categories = [
            [values[i] for i in np.unique(codes)]
            for codes, values in zip(inputs.codes, inputs.values, strict=True)
        ]
        self.pipeline = None
        # The column transformer's rule: sparse where the share of non-zero values is below 0.3 (each row
        # has every numeric input and one category of each categorical input).
        width = len(NUMERIC) + sum(len(seen) for seen in self.categories)
        if (len(NUMERIC) + len(CATEGORICAL)) / width < 0.3:
            self.pipeline = _pipeline().fit(_frame(inputs.rows), won)
            return
        self.medians = _medians(inputs.numeric)
        self.mean, self.scale = _standardising(self._imputed(inputs))
        # Its parameters are the constants above, which the tests' fits of the pipeline validate: checking
        # them again at every fit cost a tenth of it.
        with sklearn.config_context(skip_parameter_validation=True):
            self.regression = LogisticRegression(solver="newton-cholesky").fit(self._design(inputs), won)

    def _imputed(self, inputs: _Inputs) -> np.ndarray:
        # The imputer's transform, in the inputs' memory order as it keeps it: the scaler's sums depend on it.
        return np.where(np.isnan(inputs.numeric), self.medians, inputs.numeric)

    def _design(self, inputs: _Inputs) -> np.ndarray:
        # The scaler's transform: the mean subtracted, then the scale divided by.
        scaled = (self._imputed(inputs) - self.mean) / self.scale
        onehot = []
        for codes, values, seen in zip(inputs.codes, inputs.values, self.categories, strict=True):
            # A category seen in training but not among these inputs' values has no code (-1): a column of 0.
            code = {value: i for i, value in enumerate(values)}
            onehot.append(codes[:, np.newaxis] == [code.get(category, -1) for category in seen])
        return np.hstack([scaled, *onehot])

    def probabilities(self, inputs: _Inputs) -> np.ndarray:
        if self.pipeline is not None:
            return self.pipeline.predict_proba(_frame(inputs.rows))[:, 1]
        # predict_proba's arithmetic for two classes: the logistic of the decision function, as a column.
        regression = self.regression
        return expit(self._design(inputs) @ regression.coef_.T + regression.intercept_)[:, 0]

    def parameters(self) -> dict:
        """The fitted model as plain numbers. Not a pickle: loading a pickle runs whatever code it names, so
        a model file anyone else could write to would be a way in."""
        if self.pipeline is not None:
            columns, regression = self.pipeline[0], self.pipeline[-1]
            imputer, scaler = columns.named_transformers_["num"]
            medians, mean, scale = imputer.statistics_, scaler.mean_, scaler.scale_
            categories = [c.tolist() for c in columns.named_transformers_["cat"].categories_]
        else:
            medians, mean, scale, regression = self.medians, self.mean, self.scale, self.regression
            categories = self.categories
        return {
            "sklearn": sklearn.__version__,
            "numeric": list(NUMERIC),
            "medians": medians.tolist(),
            "mean": mean.tolist(),
            "scale": scale.tolist(),
            "categorical": list(CATEGORICAL),
            "categories": categories,
            "coef": regression.coef_[0].tolist(),
            "intercept": float(regression.intercept_[0]),
        }


def _medians(numeric: np.ndarray) -> np.ndarray:
    """What SimpleImputer(strategy="median", keep_empty_features=True) fits: each column's median of the
    values present, 0 where none is, taken as its masked median takes it: the two middle values (the middle
    one twice for an odd count) summed and halved. From the columns sorted once, without the imputer's checks
    and masked arrays, which numpy's nanmedian uses too below 600 rows (at 1,000 calls of the replay: the
    imputer 0.66 ms, nanmedian 0.27-0.30, this 0.05-0.06)."""
    ordered = np.sort(numeric, axis=0)  # NaN last
    present = numeric.shape[0] - np.isnan(numeric).sum(axis=0)
    columns = np.arange(numeric.shape[1])
    middle = (ordered[(present - 1) // 2, columns] + ordered[present // 2, columns]) / 2
    return np.where(present > 0, middle, 0.0)


def _standardising(imputed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """StandardScaler().fit(imputed)'s mean_ and scale_, computed as it computes them on a first fit of
    values none missing (sklearn.utils.extmath._incremental_mean_and_var): the variance by the corrected
    two-pass formula, and a scale of 1 for an input whose variance is within rounding of 0
    (_is_constant_feature). Without the scaler's checks of its input, which cost more than the sums
    (0.33 -> 0.02 ms at 1,000 calls)."""
    n = imputed.shape[0]
    mean = imputed.sum(axis=0) / n
    deviations = imputed - mean
    variance = ((deviations**2).sum(axis=0) - deviations.sum(axis=0) ** 2 / n) / n
    eps = np.finfo(float).eps
    constant = variance <= n * eps * variance + (n * mean * eps) ** 2
    return mean, np.where(constant, 1.0, np.sqrt(variance))


def _brier(won: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p - won) ** 2))


def _log_loss(won: np.ndarray, p: np.ndarray) -> float:
    """sklearn's log_loss(won, p, labels=[0, 1]), computed as it computes it: each call's probability of what
    came out, kept a rounding away from 0 and 1, its log negated, averaged. Without its checks of the labels
    and probabilities, which are nearly all of its time (1.5 -> 0.02 ms at 2,579 calls)."""
    eps = np.finfo(float).eps
    return float(np.mean(-np.log(np.clip(np.where(won == 1, p, 1 - p), eps, 1 - eps))))


def _auc(won: np.ndarray, p: np.ndarray) -> float:
    """sklearn's roc_auc_score(won, p) for both outcomes present, computed as it computes it: the counts of
    WINs and LOSSes at or above each distinct p, from the highest down (the order among ties moves no
    count), less the points on a straight stretch, as rates; the area under them by scipy's trapezoid rule.
    Without its checks of the labels and scores, nearly all of its time (2.2 -> 0.15 ms at 2,579 calls)."""
    ranked = np.argsort(-p, kind="stable")
    ends = np.concatenate([np.flatnonzero(np.diff(p[ranked])), [len(p) - 1]])
    wins = np.cumsum(won[ranked], dtype=float)[ends]
    losses = 1 + ends - wins
    if len(ends) > 2:
        corners = np.diff(losses, 2).astype(bool) | np.diff(wins, 2).astype(bool)
        kept = np.concatenate([[True], corners, [True]])
        wins, losses = wins[kept], losses[kept]
    wins, losses = np.concatenate([[0.0], wins]), np.concatenate([[0.0], losses])
    return float(trapezoid(wins / wins[-1], losses / losses[-1]))


def _ranking(won: np.ndarray, p: np.ndarray) -> dict:
    """AUC of `p` for `won`, and the one-sided Mann-Whitney p-value of "WINs get higher p than LOSSes"
    (AUC = U/(n1·n0)); without both outcomes there is no ranking to judge, and no AUC."""
    n1, n0 = int(won.sum()), int(len(won) - won.sum())
    if not n1 or not n0:
        return {"n1": n1, "n0": n0}
    u, p_value = _mann_whitney(p[won == 1], p[won == 0])
    # The p-value to three significant digits: six decimals would write the strongest evidence as 0.
    auc, p_value = u / (n1 * n0), float(f"{p_value:.3g}")
    return {"n1": n1, "n0": n0, "auc": round(auc, 6), "auc_p_value": p_value}


def _mann_whitney(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """scipy's mannwhitneyu(x, y, alternative="greater"): x's U and the p-value, computed as it computes them
    where it takes the normal approximation (more than 8 values each, or ties): the sum of x's average ranks
    (whole and half numbers, so exact), the deviation corrected for ties, the continuity correction. Without
    its checks and broadcasting, most of its time (0.72-0.74 -> 0.13 ms at 2,000 values). Its exact
    distribution, for fewer values without ties, it computes itself."""
    n1, n2 = len(x), len(y)
    _, at, counts = np.unique(np.concatenate([x, y]), return_inverse=True, return_counts=True)
    if min(n1, n2) <= 8 and counts.max() == 1:
        test = mannwhitneyu(x, y, alternative="greater")
        return float(test.statistic), float(test.pvalue)
    # Each value's average rank: its first place (counted from 1) and half the places its ties take after it.
    ranks = np.cumsum(counts) - counts + 1 + (counts - 1) / 2
    u = ranks[at[:n1]].sum() - n1 * (n1 + 1) / 2
    n = n1 + n2
    deviation = np.sqrt(n1 * n2 / 12 * ((n + 1) - np.sum(counts**3 - counts) / (n * (n - 1))))
    z = (u - n1 * n2 / 2 - 0.5) / deviation
    return float(u), float(np.clip(ndtr(-z), 0.0, 1.0))


def _beats(metrics: dict, brier: str) -> bool:
    """The gate's condition: a lower Brier score than the calibrated confidence's, and an AUC above 0.5
    with evidence (docs/learning.md), at the level the training's turn spent (`auc_alpha`)."""
    return (
        metrics[brier] < metrics["baseline_brier"]
        and metrics.get("auc", 0) > 0.5
        and metrics["auc_p_value"] < metrics.get("auc_alpha", AUC_ALPHA)
    )


def alpha_spent(turn: int) -> float:
    """The AUC test's level for a user's `turn`-th training: AUC_ALPHA · 6 / (π² · turn²), which sums to
    AUC_ALPHA over every training there will ever be. A model retrained twenty times and tested at 5 % each
    time would switch on by chance one time in three or so; spent this way, at most one in twenty."""
    return AUC_ALPHA * 6 / (math.pi**2 * turn**2)


def _evaluate(x: _Inputs, won: np.ndarray, made: np.ndarray, resolved: np.ndarray) -> dict | None:
    """Out-of-sample predictions over expanding time-ordered windows, against the stated confidence
    calibrated on each window's training rows, on the same rows. None when no window had both outcomes to
    learn from."""
    stated = x.numeric[:, NUMERIC.index("confidence")]
    predicted, baseline, held = [], [], []
    for fit_on, test_on in TimeSeriesSplit(n_splits=SPLITS).split(x.numeric):
        # Purged: a row whose outcome came after the first test call was made could not have been learned
        # from at the time of that call.
        fit_on = fit_on[resolved[fit_on] < made[test_on[0]]]
        if len(set(won[fit_on])) < 2:
            continue  # a window of one outcome has nothing to learn; its rows are not counted
        fitted = _Fitted(x.take(fit_on), won[fit_on])
        predicted.append(fitted.probabilities(x.take(test_on)))
        baseline.append(fit_calibration(stated[fit_on], won[fit_on]).probabilities(stated[test_on]))
        held.append(test_on)
    if not held:
        return None
    p, rows, calibrated = np.concatenate(predicted), np.concatenate(held), np.concatenate(baseline)
    truth = won[rows]
    ranking = _ranking(truth, p)
    metrics = {
        "oos_brier": _brier(truth, p),
        "baseline_brier": _brier(truth, calibrated),
        "stated_brier": _brier(truth, stated[rows] / 100),
        "log_loss": _log_loss(truth, p),
        "baseline_log_loss": _log_loss(truth, calibrated),
    }
    if "auc" in ranking:
        metrics["baseline_auc"] = _auc(truth, calibrated)
    return {
        "n_oos": len(rows),
        **ranking,
        **{name: round(float(value), 6) for name, value in metrics.items()},
    }


def train(user, *, until: datetime) -> TrainedModel | None:
    """Train the user's outcome model on the calls resolved before `until` (no lookahead: the replay passes
    its simulated clock), evaluate it out of sample, store it, active only if it beats the calibrated
    confidence and ranks better than chance with evidence. None when there are too few calls, or nothing to
    learn."""
    calls = sorted(resolved_calls(user.pk, before=until), key=lambda c: (c.made, c.pk))
    if len(calls) < settings.ML_MIN_SAMPLES:
        return None
    x, won = _Inputs([c.inputs for c in calls]), np.array([c.won for c in calls], dtype=int)
    made = np.array([c.made for c in calls])
    resolved = np.array([c.resolved for c in calls])
    evaluated = _evaluate(x, won, made, resolved)
    if evaluated is None:
        return None
    body = json.dumps(_Fitted(x, won).parameters(), sort_keys=True).encode()
    trained_to = resolved.max()
    version = f"{trained_to:%Y%m%d%H%M}-{hashlib.sha256(body).hexdigest()[:12]}"
    evaluated["auc_alpha"] = float(f"{alpha_spent(TrainedModel.objects.filter(user=user).count() + 1):.3g}")
    metrics = {
        **evaluated,
        "n": len(calls),
        "wins": int(won.sum()),
        "splits": SPLITS,
        "until": until.isoformat(),
        # The baseline the switch-off check measures the model against: the confidence calibrated on the
        # same rows.
        "calibration": fit_calibration(x.numeric[:, NUMERIC.index("confidence")], won).to_json(),
    }
    with transaction.atomic():
        existing = TrainedModel.objects.filter(user=user, version=version).first()
        if existing:
            return existing  # the same calls give the same model
        # The newest evaluation is the one that counts: a model that no longer wins on more data retires
        # the one before it even when it cannot take over.
        TrainedModel.objects.filter(user=user, is_active=True).update(is_active=False)
        model = TrainedModel(
            user=user,
            version=version,
            algorithm=ALGORITHM,
            features=[*NUMERIC, *CATEGORICAL],
            trained_from=resolved.min(),
            trained_to=trained_to,
            metrics=metrics,
            is_active=_beats(evaluated, "oos_brier"),
        )
        model.artifact.save(f"{user.pk}-{version}.json", ContentFile(body), save=False)
        model.save()
    return model


# Read once per process: the cycle asks every hour and a replay thousands of times. Keyed by the artifact's
# name, under which a stored file never changes.
@lru_cache(maxsize=256)
def _parameters(artifact: str) -> dict:
    with TrainedModel.artifact.field.storage.open(artifact) as f:
        params = json.load(f)
    return {
        **params,
        **{k: np.array(params[k], dtype=float) for k in ("medians", "mean", "scale", "coef")},
        # The one-hot columns in the encoder's order: one per category seen, per categorical input.
        "onehot": [
            (name, category)
            for name, seen in zip(params["categorical"], params["categories"], strict=True)
            for category in seen
        ],
    }


def _probabilities(params: dict, rows: list[dict]) -> np.ndarray:
    """What the pipeline's predict_proba gives, computed from the stored numbers."""
    numeric = np.array([[row[n] for n in params["numeric"]] for row in rows], dtype=float)
    numeric = (np.where(np.isnan(numeric), params["medians"], numeric) - params["mean"]) / params["scale"]
    onehot = np.array([[row[name] == c for name, c in params["onehot"]] for row in rows], dtype=float)
    z = np.hstack([numeric, onehot]) @ params["coef"] + params["intercept"]
    return 1 / (1 + np.exp(-z))


def probability(model: TrainedModel, record: AILearningData) -> float:
    """The model's probability that the call comes out a WIN."""
    return float(_probabilities(_parameters(model.artifact.name), [features(record)])[0])


def active_model(user) -> TrainedModel | None:
    return TrainedModel.objects.filter(user=user, is_active=True).order_by("-created_at", "-pk").first()


def still_beats_baseline(model: TrainedModel, *, until: datetime) -> bool:
    """Check the model on the calls resolved since its training data ends and before `until`, which it
    never saw; once there are LEARNING_MIN_SAMPLES of them and it no longer meets the gate's condition
    there (a lower Brier score than the confidence calibrated on its training rows, and an AUC above 0.5
    with evidence), switch it off, with the evidence in its metrics."""
    if not model.is_active:
        return False
    fresh = resolved_calls(model.user_id, before=until, after=model.trained_to)
    if len(fresh) < settings.LEARNING_MIN_SAMPLES:
        return True
    won = np.array([c.won for c in fresh], dtype=int)
    stated = np.array([c.confidence for c in fresh], dtype=float)
    p = _probabilities(_parameters(model.artifact.name), [c.inputs for c in fresh])
    ranking = _ranking(won, p)
    evidence = {
        "n": len(fresh),
        **ranking,
        "brier": round(_brier(won, p), 6),
        "baseline_brier": round(_brier(won, _calibration(model).probabilities(stated)), 6),
        "stated_brier": round(_brier(won, stated / 100), 6),
        "at": until.isoformat(),
    }
    beats = _beats(evidence, "brier")
    metrics = {**model.metrics, "fresh": evidence, **({} if beats else {"switched_off": evidence})}
    # Only an active model is switched: a retraining that retired it meanwhile keeps its own word.
    TrainedModel.objects.filter(pk=model.pk, is_active=True).update(is_active=beats, metrics=metrics)
    model.is_active, model.metrics = beats, metrics
    return beats


def _calibration(model: TrainedModel) -> Calibration:
    """The stated confidence calibrated on the model's training rows: stored with it since models carry
    one; for one trained before, fitted again on the calls resolved by the end of its training data."""
    if "calibration" in model.metrics:
        return Calibration.from_json(model.metrics["calibration"])
    rows = _calls(user=model.user_id, resolved_at__lte=model.trained_to).values_list(
        "confidence_score", "outcome"
    )
    return fit_calibration([c for c, _ in rows], [int(o == Outcome.WIN) for _, o in rows])


def gate(user, record: AILearningData, reward_risk: float | None) -> dict | None:
    """The active model's verdict on a BUY/SELL call; None without an active model (or for a HOLD). It
    passes when the call's expectancy in R is positive at the model's p: p·rr - (1 - p) > 0, that is
    p > 1/(1 + rr); without a stop and a target to take rr from, p > 0.5."""
    if record.recommendation not in BUY_OR_SELL:
        return None
    return verdict(active_model(user), record, reward_risk)


def verdict(model: TrainedModel | None, record: AILearningData, reward_risk: float | None) -> dict | None:
    """`gate` with the model in hand."""
    if model is None or record.recommendation not in BUY_OR_SELL:
        return None
    p = probability(model, record)
    needed = 1 / (1 + reward_risk) if reward_risk is not None else 0.5
    return {"p_win": round(p, 4), "needed": round(needed, 4), "pass": p > needed, "model": model.version}


def retrain_due(now: datetime) -> list[TrainedModel]:
    """For every user with enough resolved calls, `retrain(user, now)`. Returns the models trained."""
    enough = (
        _calls()
        .values("user")
        .annotate(n=Count("pk"))
        .filter(n__gte=settings.ML_MIN_SAMPLES)
        .values_list("user", flat=True)
    )
    trained = []
    for user in get_user_model().objects.filter(pk__in=enough).order_by("pk"):
        try:
            if new := retrain(user, now):
                trained.append(new)
        except Exception:  # one user's data must not stop everyone else's retraining
            logger.exception("retraining the outcome model of user %s failed", user.pk)
    return trained


def retrain(user, now: datetime) -> TrainedModel | None:
    """Check the user's active model on what resolved since it was trained, then train a new one if it was
    switched off, was trained on data up to more than ML_RETRAIN_HOURS before `now`, or there is none, and
    the calls have grown since the last training by LEARNING_MIN_SAMPLES and by ML_RETRAIN_GROWTH of what
    it had (`enough_new_calls`; with fewer, nearly the same calls would give nearly the same model).
    `now` is the clock the data is read by: the wall clock for the beat task, the simulated one in a
    replay."""
    active, trained_on, calls = _standing(user, now)
    model = TrainedModel.objects.filter(pk=active).first() if active is not None else None
    young = model and now - _trained_until(model) < timedelta(hours=settings.ML_RETRAIN_HOURS)
    if model and still_beats_baseline(model, until=now) and young:
        return None
    if trained_on is not None and calls < enough_new_calls(trained_on):
        return None
    if calls < settings.ML_MIN_SAMPLES:
        return None  # train() would read the calls counted here only to find them too few
    return train(user, until=now)


def _standing(user, now: datetime) -> tuple[int | None, int | None, int]:
    """What `retrain` decides by: the id of the user's active model (`active_model`'s), the number of calls
    the newest model was trained on (None before any), and the user's calls resolved before `now`
    (`_calls`'). One plain statement, built once per process: through the ORM, the three queries cost
    2.7 ms of CPU a check at 3,000 calls, against 0.8 ms (a replay checks every simulated day, beat every
    user hourly)."""
    when = AILearningData._meta.get_field("resolved_at").get_db_prep_value(now, connection, prepared=False)
    params = [user.pk, True, user.pk, user.pk, *BUY_OR_SELL, *Outcome.values, when]
    with connection.cursor() as cursor:
        cursor.execute(_standing_statement(connection.vendor), params)
        active, metrics, calls = cursor.fetchone()
    return active, None if metrics is None else json.loads(metrics)["n"], calls


@cache
def _standing_statement(vendor: str) -> str:
    # Per database vendor, for the tests' sake; only the models' own names are formatted in.
    q = connection.ops.quote_name
    models, analyses = q(TrainedModel._meta.db_table), q(AILearningData._meta.db_table)
    model = {f.name: q(f.column) for f in TrainedModel._meta.concrete_fields}
    call = {f.name: q(f.column) for f in AILearningData._meta.concrete_fields}
    order = f"ORDER BY {model['created_at']} DESC, {model['id']} DESC LIMIT 1"
    active = (
        f"SELECT {model['id']} FROM {models} WHERE {model['user']} = %s AND {model['is_active']} = %s {order}"  # noqa: S608
    )
    last = f"SELECT {model['metrics']} FROM {models} WHERE {model['user']} = %s {order}"  # noqa: S608
    calls = f"SELECT COUNT(*) FROM {analyses} WHERE {_resolved_before(call)}"  # noqa: S608
    return f"SELECT ({active}), ({last}), ({calls})"


def enough_new_calls(trained_on: int) -> int:
    """The number of calls at which a model trained on `trained_on` is worth training again."""
    return trained_on + max(settings.LEARNING_MIN_SAMPLES, math.ceil(trained_on * settings.ML_RETRAIN_GROWTH))


def _trained_until(model: TrainedModel) -> datetime:
    """The clock the model's training data was read by (its `until`)."""
    return datetime.fromisoformat(model.metrics["until"])
