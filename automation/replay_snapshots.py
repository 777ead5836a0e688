"""A long replay's insight snapshots made behind its cycles, in a second process.

The cycle stores the bot's insights after every cycle that resolved something (learning/insights.py, a
snapshot each): in a 5,000-hour replay that is some 5,000 computations of every figure's rate and interval
and as many JSON documents of 10 kB, a tenth of the replay's time, for rows that nothing the cycles decide
reads back. Only the prompt's learned section reads the insights, once per refresh window
(`steps.prompt_section`). So the books send each snapshot's moved counters to a worker process, which keeps
its own copy of the counters and makes and encodes the snapshots there (the same `insights_from` on the same
sums, in the same order); the books take the encoded rows back before they write them (`Book.flush`), in the
transaction of the cycles that made them, and before the prompt reads the latest (`Book.insights`), which
then is what a cycle would read back from the database.

The worker is forked after the books loaded the counters and never touches the database, like
automation/replay_ahead.py's."""

import multiprocessing
from collections import defaultdict
from concurrent.futures import Future, ProcessPoolExecutor

import orjson

from learning.counters import SUMS
from learning.insights import Rows, Scope, insights_from, trades_figures

# Snapshots per task sent to the worker: a task costs the sender about as much as a few snapshots' counters,
# and the worker is at most this many snapshots behind when the books wait for it.
BATCH = 8

# In the worker: the counters as the books had them at the last snapshot sent, the rows kept between
# snapshots, the prompt versions' names.
_SCOPE: Scope | None = None
_FIGURES: dict[str, dict[str, dict]] = {}
_ROWS = Rows()
_NAMES: dict[int, str] = {}


def _start(scope: Scope, figures: dict[str, dict[str, dict]]) -> None:
    global _SCOPE, _FIGURES
    _SCOPE, _FIGURES = scope, figures


def _make(snapshots: list[tuple]) -> list[tuple[int, str]]:
    """In the worker: each snapshot's (resolved count, insights as JSON) from the counters it moved, the
    trades' figures and the names of versions named since the last."""
    made = []
    for moved, trades, names in snapshots:
        for dimension, value, sums in moved:
            _FIGURES[dimension][value] = dict(zip(SUMS, sums, strict=True))
        _NAMES.update(names)
        data = insights_from(_SCOPE, _FIGURES, trades_figures(**trades), _NAMES, _ROWS)
        made.append((data["resolved"], orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS).decode()))
    return made


class MadeBehind:
    """The snapshots of a replay's books made by a worker process. Use as a context manager."""

    def __init__(self, scope: Scope, figures: dict[str, dict[str, dict]]):
        # A copy as the counters are now: the worker is forked at the first task, when they have moved on.
        start = defaultdict(
            dict, {name: {v: dict(sums) for v, sums in rows.items()} for name, rows in figures.items()}
        )
        self.pool = ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("fork"), initializer=_start, initargs=(scope, start)
        )
        self.unsent: list[tuple] = []
        self.sent: list[Future] = []

    def __enter__(self) -> "MadeBehind":
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def add(self, moved: list[tuple], trades: dict, names: dict[int, str]) -> None:
        """A snapshot of the counters `moved` since the last ((dimension, value, SUMS) each), the closed
        trades' figures (`trades_figures`' arguments) and the versions named since the last."""
        self.unsent.append((moved, trades, names))
        if len(self.unsent) >= BATCH:
            self._send()

    def made(self) -> list[tuple[int, str]]:
        """Every snapshot added and not taken yet, as (resolved count, insights as JSON), in order."""
        self._send()
        made = [snapshot for task in self.sent for snapshot in task.result()]
        self.sent = []
        return made

    def _send(self) -> None:
        if self.unsent:
            self.sent.append(self.pool.submit(_make, self.unsent))
            self.unsent = []
