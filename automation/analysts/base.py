"""What an analyst is: given the market, its indicators, the chart and what was learned, return an
Analysis. Errors separate "try again later" from "this answer cannot be used"."""

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from market.indicators import Indicators
from market.sources import Market

from .schema import Analysis


@dataclass(frozen=True)
class AnalysisRequest:
    market: Market
    indicators: Indicators
    chart_png: bytes
    insights: str = ""  # the learned-insights section of the prompt; empty until learning exists


@dataclass(frozen=True)
class AnalystResult:
    analysis: Analysis
    analyst: str
    model_name: str = ""
    prompt: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    notes: dict = field(default_factory=dict)
    # For an analyst whose identical requests are asked once (asked_once.py): the stored answer taken, and
    # whether this analysis paid for the call ("ASKED") or reused one paid for ("REUSED", tokens and cost 0).
    answer_id: int | None = None
    call: str = ""
    # The user's own model server (accounts.ModelConnection) that answered; None: the operator's.
    connection_id: int | None = None


# Whose key pays for an analyst's calls (`Analyst.billed_to`): the operator's, or a user's own connection.
OPERATOR = "operator"


def billed_to_connection(connection_id: int) -> str:
    return f"connection:{connection_id}"


class Analyst(Protocol):
    name: str
    # OPERATOR, or billed_to_connection(id) for a user's own model server: the calls a user's key pays are
    # not counted against the operator's spending caps (automation.quotas), and two requests billed to
    # different keys are never one request shared.
    billed_to: str

    def analyse(self, request: AnalysisRequest) -> AnalystResult: ...


class AnalystError(Exception):
    """The analyst gave no usable analysis. Recorded on the run; never traded."""


class AnalystTemporaryError(AnalystError):
    """Timeout, rate limit, server error: the same request may succeed later."""


class AnalystDeadlineError(AnalystTemporaryError):
    """No answer within the analyst's deadline (ANALYST_DEADLINE_SECONDS); the call was abandoned."""


class AnalystRefusedError(AnalystError):
    """The model refused to answer."""


class AnalystInvalidOutputError(AnalystError):
    """The answer did not parse or broke the schema."""


class AnalystConfigurationError(AnalystError):
    """Needs a human: no API key, a rejected key, an unknown model."""
