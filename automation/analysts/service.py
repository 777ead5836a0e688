"""Choosing an analyst and asking it, with the level check every analysis goes through."""

import dataclasses
from collections.abc import Callable

from django.conf import settings

from accounts.crypto import SecretDecryptionError
from core.outbound import UnsafeServerUrlError, server_url

from .asked_once import ask_once
from .base import AnalysisRequest, Analyst, AnalystConfigurationError, AnalystResult
from .consistency import enforce_consistent_levels
from .pricing import price_of
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

        return OpenAIAnalyst(price=price_of(settings.OPENAI_MODEL))
    raise AnalystConfigurationError(f"unknown analyst '{name}'; choose one of {', '.join(ANALYSTS)}")


def analyst_for(bot) -> Analyst:
    """The analyst of `bot`: the technical one, the operator's OpenAI model, or, for OWN_MODEL, the model the
    bot names on its owner's connection (`bot.model_connection`, which the bot's form holds to the owner's
    own), priced by the operator's table. The connection's address is checked again before each call
    (core/outbound.py): its host may resolve elsewhere now, or the operator may have stopped allowing
    private networks since it was saved. AnalystConfigurationError when the bot lacks either."""
    if bot.analyst != "OWN_MODEL":
        return get_analyst(bot.analyst.lower())
    connection = bot.model_connection
    if connection is None or not bot.model_name:
        raise AnalystConfigurationError(
            "the bot's own model needs one of your model connections and a model name"
        )
    from .openai_analyst import OpenAIAnalyst, connection_client

    def check() -> str:
        try:
            server_url(connection.base_url, allow_private=settings.ALLOW_PRIVATE_MODEL_SERVERS)
        except UnsafeServerUrlError as e:
            return f"the model connection “{connection.label}” cannot be called: {e}"
        return ""

    try:
        api_key = connection.api_key()
    except SecretDecryptionError as e:
        raise AnalystConfigurationError(
            f"the key of the model connection “{connection.label}” cannot be read: enter it again"
        ) from e
    return OpenAIAnalyst(
        client=connection_client(api_key, connection.base_url),
        model=bot.model_name,
        price=price_of(bot.model_name),
        connection_id=connection.pk,
        check=check,
    )


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
        # Made storable before asked_once keeps it: PostgreSQL's JSON refuses a NUL as its text columns do.
        if bound is None or seconds is None:
            return storable_result(analyst.analyse(request))
        return storable_result(bound(seconds, lambda: analyst.analyse(request)))

    # A stored answer says nothing of whose connection asked it; the analyst does (its key is part of the
    # request's, so an answer is only ever shared under the same connection).
    result = dataclasses.replace(
        ask_once(analyst, request, ask, deadline), connection_id=getattr(analyst, "connection_id", None)
    )
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
