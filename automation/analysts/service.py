"""Choosing an analyst and asking it, with the level check every analysis goes through."""

import dataclasses
from collections.abc import Callable

from django.conf import settings

from .asked_once import ask_once
from .base import AnalysisRequest, Analyst, AnalystConfigurationError, AnalystResult
from .consistency import enforce_consistent_levels
from .text import storable_text

ANALYSTS = ("technical", "openai")


def default_analyst_name() -> str:
    return "openai" if settings.OPENAI_API_KEY else "technical"


def get_analyst(name: str | None = None) -> Analyst:
    name = (name or default_analyst_name()).lower()
    if name == "technical":
        from .technical import TechnicalAnalyst

        return TechnicalAnalyst()
    if name == "openai":
        # Imported here: the OpenAI SDK is only loaded by processes that use it.
        from .openai_analyst import OpenAIAnalyst

        return OpenAIAnalyst()
    raise AnalystConfigurationError(f"unknown analyst '{name}'; choose one of {', '.join(ANALYSTS)}")


def analyse(
    analyst: Analyst,
    request: AnalysisRequest,
    deadline: float | None = None,
    bound: Callable[[float, Callable[[], AnalystResult]], AnalystResult] | None = None,
) -> AnalystResult:
    """The analyst's answer to `request`, asked once among identical requests (asked_once.py), its text
    made storable and its levels checked. `deadline` (seconds) bounds the whole, a wait for another's call
    included; `bound(seconds, call)` makes the call itself give up after that long
    (automation.analysis.within)."""

    def ask(seconds: float | None) -> AnalystResult:
        if bound is None or seconds is None:
            return analyst.analyse(request)
        return bound(seconds, lambda: analyst.analyse(request))

    result = storable_result(ask_once(analyst, request, ask, deadline))
    analysis, problem = enforce_consistent_levels(result.analysis)
    if problem is None:
        return result
    notes = {
        **result.notes,
        "original_recommendation": result.analysis.recommendation,
        "level_problem": problem,
    }
    return dataclasses.replace(result, analysis=analysis, notes=notes)


def storable_result(result: AnalystResult) -> AnalystResult:
    """The result with its text made storable (`text.storable_text`); the fields that held something the
    database cannot store are named in the notes (`text_cleaned`), which the analysis keeps and its page
    shows. Kept rather than refused: the numbers and the call are sound, and a lost analysis is lost
    learning."""
    analysis = result.analysis
    text = {name: value for name, value in analysis if isinstance(value, str)}
    clean = {name: storable_text(value) for name, value in text.items()}
    changed = {name: clean[name] for name in text if clean[name] != text[name]}
    model_name = storable_text(result.model_name)
    if model_name != result.model_name:
        changed["model_name"] = model_name
    if not changed:
        return result
    return dataclasses.replace(
        result,
        analysis=analysis.model_copy(update={k: v for k, v in changed.items() if k != "model_name"}),
        model_name=model_name,
        notes={**result.notes, "text_cleaned": sorted(changed)},
    )
