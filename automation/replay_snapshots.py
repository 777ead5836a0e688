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

import contextlib
import multiprocessing
from collections import defaultdict
from multiprocessing.connection import Connection

import orjson

from learning.counters import SUMS
from learning.insights import Rows, Scope, insights_from, trades_figures

# What the books send when they want the snapshots made so far, and when they are done.
TAKE, DONE = "take", None
# Snapshots per message: each message woke the worker, and sending them one by one was 60 µs of the books'
# CPU a snapshot in the replay; the worker is at most this many behind when the books take them.
BATCH = 8


def _serve(books: Connection, scope: Scope, figures: dict[str, dict[str, dict]]) -> None:
    """In the worker: each snapshot's (resolved count, insights as JSON) from the counters it moved, the
    trades' figures when they changed and the names of versions named since the last, kept until the books
    take them; an error instead, the first one met, once it is met."""
    rows, names, made, trades = Rows(), {}, [], None
    while (message := books.recv()) is not DONE:
        if message == TAKE:
            books.send(made)
            made = []
            continue
        for moved, changed, named in message:
            if isinstance(made, Exception):
                break
            try:
                for dimension, value, sums in moved:
                    figures[dimension][value] = dict(zip(SUMS, sums, strict=True))
                names.update(named)
                trades = trades_figures(**changed) if changed is not None else trades
                data = insights_from(scope, figures, trades, names, rows)
                made.append((data["resolved"], orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS).decode()))
            except Exception as e:  # the books raise it when they take the snapshots
                made = e


class MadeBehind:
    """The snapshots of a replay's books made by a worker process. Use as a context manager.

    One pipe each way: the books send the snapshots a few at a time (a task sent to a process pool cost
    them 44 µs a snapshot, its queue's thread taking turns with theirs), and the worker answers only when
    asked, so it never waits on the books while they run their cycles."""

    def __init__(self, scope: Scope, figures: dict[str, dict[str, dict]]):
        context = multiprocessing.get_context("fork")
        self.pipe, worker_end = context.Pipe()
        # A copy of the counters as they are now, for the worker to move on from.
        start = defaultdict(
            dict, {name: {v: dict(sums) for v, sums in rows.items()} for name, rows in figures.items()}
        )
        self.worker = context.Process(target=_serve, args=(worker_end, scope, start), daemon=True)
        self.worker.start()
        worker_end.close()
        self.unsent: list[tuple] = []
        self.untaken = 0  # snapshots added since the books last took them
        self.trades: dict | None = None  # the trades' figures last sent

    def __enter__(self) -> "MadeBehind":
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(OSError):  # the worker has ended already
            self.pipe.send(DONE)
        self.worker.join(timeout=10)
        if self.worker.is_alive():
            self.worker.kill()
        self.pipe.close()

    def add(self, moved: list[tuple], trades: dict, names: dict[int, str]) -> None:
        """A snapshot of the counters `moved` since the last ((dimension, value, SUMS) each), the closed
        trades' figures (`trades_figures`' arguments) and the versions named since the last."""
        changed = None if trades == self.trades else trades
        self.trades = trades
        self.unsent.append((moved, changed, names))
        self.untaken += 1
        if len(self.unsent) >= BATCH:
            self.send()

    def made(self) -> list[tuple[int, str]]:
        """Every snapshot added and not taken yet, as (resolved count, insights as JSON), in order. Without
        asking the worker when there is none (the prompt reads the insights at the start of each refresh
        window, right after the day's flush took them)."""
        if not self.untaken:
            return []
        self.untaken = 0
        self.send()
        self.pipe.send(TAKE)
        made = self.pipe.recv()
        if isinstance(made, Exception):
            raise made
        return made

    def send(self) -> None:
        """Send the snapshots added and not sent yet."""
        if self.unsent:
            self.pipe.send(self.unsent)
            self.unsent = []
