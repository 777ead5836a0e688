"""Choosing an analyst and asking it, with the level check every analysis goes through."""

import dataclasses

from django.conf import settings

from .base import AnalysisRequest, Analyst, AnalystConfigurationError, AnalystResult
from .consistency import enforce_consistent_levels

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


def analyse(analyst: Analyst, request: AnalysisRequest) -> AnalystResult:
    result = analyst.analyse(request)
    analysis, problem = enforce_consistent_levels(result.analysis)
    if problem is None:
        return result
    notes = {
        **result.notes,
        "original_recommendation": result.analysis.recommendation,
        "level_problem": problem,
    }
    return dataclasses.replace(result, analysis=analysis, notes=notes)
