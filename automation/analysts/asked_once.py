"""Identical analyst requests asked once, across threads, worker processes and machines (issue 21).

A thousand bots on twenty markets, with the same (empty or shared) learned section, send twenty distinct
requests: each market's chart with the same prompt, fifty times over. Each distinct request is asked once:

- its key (`request_key`) is the hash of everything that decides the answer and who pays for it: who is
  billed, the server, the model, the instructions, the prompt and the image. Requests billed to different
  accounts never share, so a user's own key never pays for another user's bot;
- in a process, the first thread with a key asks for it (`_Flight`); the others wait on it, without a query;
- across processes the database is the common ground, on PostgreSQL as on the embedded SQLite: the first
  to insert the key's `learning.AnalystAnswer` row (unique key: INSERT, the others fail on the constraint)
  asks; the others read the row again, with a growing pause, until it holds the answer. A claim the asker
  gave back (its call failed) is claimed by the next; one older than the analyst's deadline belongs to a
  worker that died, and is taken over. No one waits past its own deadline: the wait and a call of its own
  after it share the cycle's `ANALYST_DEADLINE_SECONDS`;
- the answer stays stored, so a replay over the same slots, prompt and model asks nothing new.

Who pays: the first analysis to take an answer records the call's tokens and cost ("ASKED"); the others
record 0 and that they reused it ("REUSED"). The sum over the analyses is what the provider billed, and a
user's monthly spend counts only the calls their bots caused (docs/architecture.md, "Ask once").

Only answers are shared: a failed call (a timeout, a refusal, output that broke the schema) gives the claim
back, and each waiting request then asks for itself."""

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core import plain_sql as sql
from learning.models import AnalystAnswer

from .base import OPERATOR, AnalysisRequest, Analyst, AnalystDeadlineError, AnalystResult
from .schema import Analysis

# The pauses between reading a claimed row again: short at first, since the answer may be moments away,
# then no more often than twice a second. Only one thread per process and key reads it (_Flight), so a
# burst of a thousand cycles on twenty markets reads at most (processes x 20) rows at a time.
FIRST_PAUSE, PAUSE_GROWTH, LONGEST_PAUSE = 0.05, 1.5, 0.5
# A claim this much older than the analyst's deadline is a dead worker's: the one that claimed it gave its
# call up at the deadline, and would have given the claim back or stored the answer by now. The margin
# covers the clocks of two machines.
STALE_MARGIN = timedelta(seconds=10)

Ask = Callable[[float | None], AnalystResult]


def request_key(analyst: Analyst, request: AnalysisRequest) -> str | None:
    """The request's key, or None for an analyst that asks no one (the technical analyst computes its
    answer in microseconds, and pays nothing)."""
    parts = getattr(analyst, "request_parts", None)
    if parts is None:
        return None
    return hashlib.sha256(json.dumps(parts(request), separators=(",", ":")).encode()).hexdigest()


def ask_once(analyst: Analyst, request: AnalysisRequest, ask: Ask, deadline: float | None) -> AnalystResult:
    """The analyst's answer to `request`: stored, being asked by another (waited for), or asked here with
    `ask(seconds left)`. Past `deadline` seconds (None: no deadline) AnalystDeadlineError."""
    key = request_key(analyst, request)
    if key is None:
        return ask(deadline)
    until = None if deadline is None else time.monotonic() + deadline
    while True:
        if until is not None and _left(until) <= 0:
            raise AnalystDeadlineError(f"no answer within its deadline of {deadline:g} s")
        flight, leads = _Flight.join(key)
        if leads:
            try:
                answer = _asked_across_processes(key, analyst, ask, until)
            except BaseException:
                flight.land(None)
                raise
            flight.land(answer)
            return taken(answer)
        if not flight.done.wait(_left(until)):
            raise AnalystDeadlineError(f"no answer within its deadline of {deadline:g} s while another asked")
        if flight.answer is not None:
            # The thread that asked in this process takes its answer first, paying if no one has: a thread
            # that waited on it never pays, and needs no database connection to know it.
            return taken(flight.answer, may_pay=False)
        # The thread that asked failed: this one tries in its turn, within what is left of its deadline.


class _Flight:
    """One key being asked in this process: the first thread asks, the others wait for it here."""

    _flights: dict[str, "_Flight"] = {}
    _guard = threading.Lock()

    def __init__(self, key: str):
        self.key = key
        self.done = threading.Event()
        self.answer: AnalystAnswer | None = None

    @classmethod
    def join(cls, key: str) -> tuple["_Flight", bool]:
        with cls._guard:
            flight = cls._flights.get(key)
            if flight is not None:
                return flight, False
            flight = cls._flights[key] = cls(key)
            return flight, True

    def land(self, answer: AnalystAnswer | None) -> None:
        """The answer (None: the call failed) handed to the threads waiting, and the key left free."""
        with self._guard:
            del self._flights[self.key]
        self.answer = answer
        self.done.set()


def _asked_across_processes(key: str, analyst: Analyst, ask: Ask, until: float | None) -> AnalystAnswer:
    pause = FIRST_PAUSE
    try:
        while True:
            row = _answer_of(key)
            if row is not None and row.status == AnalystAnswer.Status.ANSWERED:
                return row
            claim = _claim(key, analyst, row)
            if claim:
                return _ask_claimed(key, claim, ask, until)
            left = _left(until)
            if left is not None and left <= 0:
                raise AnalystDeadlineError("no answer within its deadline while another worker asked")
            _hand_back_connection()
            time.sleep(pause if left is None else min(pause, left))
            pause = min(pause * PAUSE_GROWTH, LONGEST_PAUSE)
    finally:
        _hand_back_connection()


def _claim(key: str, analyst: Analyst, row: AnalystAnswer | None) -> str:
    """A claim on asking for `key`, or "" when another worker holds a live one."""
    claim, now = uuid.uuid4().hex, timezone.now()
    if row is None:
        try:
            with transaction.atomic():
                AnalystAnswer.objects.create(
                    key=key,
                    billed_to=getattr(analyst, "billed_to", OPERATOR),
                    model=getattr(analyst, "model", ""),
                    claim=claim,
                    claimed_at=now,
                )
            return claim
        except IntegrityError:  # another worker claimed it first
            return ""
    stale = now - timedelta(seconds=settings.ANALYST_DEADLINE_SECONDS) - STALE_MARGIN
    if row.claimed_at >= stale:
        return ""
    # A compare-and-swap on the claim that was read: of two workers taking it over, one does.
    taken_over = AnalystAnswer.objects.filter(
        pk=row.pk, status=AnalystAnswer.Status.ASKING, claim=row.claim
    ).update(claim=claim, claimed_at=now)
    return claim if taken_over else ""


def _ask_claimed(key: str, claim: str, ask: Ask, until: float | None) -> AnalystAnswer:
    _hand_back_connection()  # not held through the call's seconds (analysis.release_database_connection)
    try:
        if until is not None and _left(until) <= 0:
            raise AnalystDeadlineError("no time left to ask within its deadline")
        result = ask(_left(until))
    except BaseException:
        # Given back, so that a worker waiting for it asks in its turn rather than waiting on a dead claim.
        AnalystAnswer.objects.filter(key=key, claim=claim, status=AnalystAnswer.Status.ASKING).delete()
        raise
    return store_answer(key, result)


def store_answer(key: str, result: AnalystResult, *, billed_to: str = OPERATOR) -> AnalystAnswer:
    """`result` stored as the answer to `key`, and the row that holds it. When another worker stored an
    answer first, that one is kept and returned: every analysis of the request takes the same."""
    fields = {
        "status": AnalystAnswer.Status.ANSWERED,
        "answered_at": timezone.now(),
        "result": {
            "analysis": result.analysis.model_dump(mode="json"),
            "analyst": result.analyst,
            "model_name": result.model_name,
            "prompt": result.prompt,
            "notes": result.notes,
        },
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "cost_usd": result.cost_usd,
    }
    if not AnalystAnswer.objects.filter(key=key, status=AnalystAnswer.Status.ASKING).update(**fields):
        try:
            with transaction.atomic():
                AnalystAnswer.objects.create(
                    key=key, billed_to=billed_to, model=result.model_name, claimed_at=timezone.now(), **fields
                )
        except IntegrityError:  # stored by another worker meanwhile
            pass
    return AnalystAnswer.objects.get(key=key)


def stored_answers(keys: list[str]) -> set[str]:
    """Which of `keys` have an answer stored."""
    answered = AnalystAnswer.objects.filter(key__in=keys, status=AnalystAnswer.Status.ANSWERED)
    return set(answered.values_list("key", flat=True))


def taken(answer: AnalystAnswer, *, may_pay: bool = True) -> AnalystResult:
    """The stored answer as this analysis's result: with the call's tokens and cost when it is the first
    analysis to take it, with none when the call was paid for by another."""
    paid_here = may_pay and bool(sql.update(AnalystAnswer, {"id": answer.pk, "paid": False}, {"paid": True}))
    if may_pay:
        _hand_back_connection()
    stored = answer.result
    return AnalystResult(
        analysis=Analysis.model_validate(stored["analysis"]),
        analyst=stored["analyst"],
        model_name=stored["model_name"],
        prompt=stored["prompt"],
        prompt_tokens=answer.prompt_tokens if paid_here else 0,
        completion_tokens=answer.completion_tokens if paid_here else 0,
        cost_usd=Decimal(answer.cost_usd) if paid_here else Decimal(0),
        notes=stored["notes"],
        answer_id=answer.pk,
        call="ASKED" if paid_here else "REUSED",
    )


# Read by every cycle that leads its process's wait for a key, most of a burst's: in plain SQL, as
# AnalystAnswer.objects.filter(key=key).first() (core.plain_sql).
_ANSWER = sql.statement(
    lambda: (
        f"SELECT {sql.columns(AnalystAnswer)} FROM {sql.table(AnalystAnswer)} "  # noqa: S608
        f"WHERE {sql.column(AnalystAnswer, 'key')} = %s "
        f"ORDER BY {sql.column(AnalystAnswer, 'id')} ASC LIMIT 1"
    )
)


def _answer_of(key: str) -> AnalystAnswer | None:
    found = sql.instances(AnalystAnswer, _ANSWER(), [key])
    return found[0] if found else None


def _left(until: float | None) -> float | None:
    return None if until is None else max(until - time.monotonic(), 0.0)


def _hand_back_connection() -> None:
    """As `automation.analysis.release_database_connection`, between the reads of a wait: a thread that held
    its connection through the seconds of someone else's call would make connections the limit on how many
    cycles wait at once. Inside a transaction (a replay's chunk, a test's) the connection stays."""
    if not connection.in_atomic_block:
        connection.close()
