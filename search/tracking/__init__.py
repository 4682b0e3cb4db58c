"""Experiment trackers (`--track tensorboard|mlflow[=URI]|wandb[=PROJECT]`, repeatable).

A search writes to each tracker as it goes: a record per search (its flags, dataset, and
at the end the winner and its confirmed figures) and one per trial (its hyperparameters,
every epoch's figures, its outcome). Two sides feed them, both in the driver's process:

- the trials' side is a Tune callback (`search.tracking.callback`), which Tune keeps with
  its state, so that a `--resume` continues the same records;
- the search's side is the driver, which opens the search's record before the trials
  start (what the tracker needs to find it again goes into run.json's `tracking`) and
  closes it once the winner is chosen; the report is added when it is written.

Tracking never loses a search: a tracker that fails says so in one warning line and is
left out for the rest of the session (`Trackers`). Each library is an optional extra;
`tracker_spec` refuses a missing one when the flags are parsed, before anything runs.
Importing this module imports none of them.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import math
import queue
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search import metrics as m

if TYPE_CHECKING:
    import pandas as pd

    from search.run_record import RunRecord

# kind -> (the module that implements it, the library it needs, the extra that installs it)
KINDS = {
    "tensorboard": ("search.tracking.tensorboard_tracker", "tensorboard", "tensorboard"),
    "mlflow": ("search.tracking.mlflow_tracker", "mlflow", "mlflow"),
    "wandb": ("search.tracking.wandb_tracker", "wandb", "wandb"),
}
# What a tracker's `=VALUE` names, for the kinds that take one.
VALUES = {"mlflow": "tracking URI", "wandb": "project"}

# The figures of an epoch that go to the trackers (those the trial reported).
EPOCH_FIGURES = (
    m.VAL_ACC,
    m.VAL_LOSS,
    m.VAL_AREA,
    m.VAL_HM,
    m.VAL_EARLY_ACC,
    m.VAL_EARLINESS,
    m.TRAIN_LOSS,
    m.EPOCH_SECONDS,
)


@dataclass(frozen=True)
class Spec:
    """One --track value: a kind, and its tracking URI (mlflow) or project (wandb)."""

    kind: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> Spec:
        kind, _, value = text.partition("=")
        kind = kind.strip().lower()
        if kind not in KINDS:
            raise ValueError(f"unknown tracker {kind!r}; choose from {', '.join(KINDS)}")
        if "=" in text and kind not in VALUES:
            raise ValueError(f"{kind} takes no value (got {text!r})")
        if "=" in text and not value.strip():
            raise ValueError(f"{kind}= needs a {VALUES[kind]} after '='")
        return cls(kind, value.strip() or None)

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}={self.value}"


def tracker_spec(text: str) -> str:
    """argparse's type for --track: a known tracker whose library is installed."""
    spec = Spec.parse(text)
    _, library, extra = KINDS[spec.kind]
    if importlib.util.find_spec(library) is None:
        raise ValueError(
            f"--track {spec.kind} needs {library}, which is not installed: "
            f"pip install 'lstm-search[{extra}]'"
        )
    return str(spec)


@dataclass(frozen=True)
class SearchInfo:
    """What every tracker records of the search itself."""

    name: str  # the run name
    location: str  # the run folder, as the user knows it (a path or a URI)
    local_dir: Path | None  # the run folder on this machine's disk; None in an object store
    dataset: str
    flags: dict[str, Any]
    command: str
    metric: str  # what ranks the trials


@dataclass(frozen=True)
class SearchEnd:
    """How a search session ended, for the search's record."""

    table: pd.DataFrame  # trials.csv
    winner: dict | None  # best/config.json; None when no trial can win
    interrupted: bool  # Ctrl-C, SIGTERM or a failed disk: `--resume` continues it
    counts: dict[str, int] = field(default_factory=dict)  # trials by outcome


class Tracker:
    """One tracker's records of one search. Tune pickles the trials' side with its state,
    so a tracker keeps only plain values: its client is made again on first use.

    `state` is what run.json's `tracking` holds for this kind: what `start` returned the
    first time, so that a resumed search finds its records again.
    """

    kind = ""

    def __init__(self, spec: Spec, search: SearchInfo, state: dict | None = None) -> None:
        self.spec = spec
        self.search = search
        self.state = dict(state or {})

    # The search's side (the driver).
    def check(self) -> None:
        """Refuse (UserError, before anything runs) a search this tracker cannot follow."""

    def start(self, resumed: bool) -> dict:
        """Open (or, resumed, reopen) the search's record; returns what run.json keeps."""
        return self.state

    def finish(self, end: SearchEnd) -> None:
        """The search's outcome, its winner, and each trial's final outcome."""

    def add_report(self, report_dir: Path) -> None:
        """The report, once written."""

    # The trials' side (Tune's callback).
    def trial_started(self, trial_id: str, name: str, hyperparameters: dict) -> None:
        """A trial started, or resumed from its checkpoint."""

    def epoch(self, trial_id: str, epoch: int, figures: dict[str, float]) -> None:
        """One epoch's figures (`EPOCH_FIGURES`, those the trial reported)."""

    def trial_ended(self, trial_id: str, outcome: str, figures: dict[str, float]) -> None:
        """A trial ended (completed, stopped, diverged or failed); `figures` are its last
        epoch's."""

    def close(self) -> None:
        """Flush and let go of the client (end of a session); `start` or a trial's call
        makes it again."""


def epoch_figures(result: dict) -> dict[str, float]:
    """The figures of a trial's report that go to the trackers: finite numbers only."""
    found = {}
    for key in EPOCH_FIGURES:
        value = result.get(key)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and math.isfinite(value):
            found[key] = float(value)
    return found


def hyperparameters(config: dict) -> dict:
    """A trial's hyperparameters as trackers take them: plain numbers and strings."""
    return {
        k: (v.item() if hasattr(v, "item") else v)
        for k, v in config.items()
        if isinstance(v, int | float | str | bool) or hasattr(v, "item")
    }


def search_info(record: RunRecord, location: str, local_dir: Path | None) -> SearchInfo:
    return SearchInfo(
        name=record.flags["name"],
        location=location,
        local_dir=local_dir,
        dataset=record.dataset,
        flags=record.flags,
        command=record.command,
        metric=record.metric,
    )


def add_report(run_dir: Path) -> None:
    """Give the trackers of the search in `run_dir` its report, once written."""
    from search.run_folder import REPORT_DIR
    from search.run_record import RUN_JSON, RunRecord

    if not (run_dir / RUN_JSON).exists():  # not a run folder: no trackers to tell
        return
    record = RunRecord.read(run_dir)
    if record.flags.get("track"):
        search = search_info(record, str(run_dir), run_dir)
        trackers = build(record.flags["track"], search, record.tracking)
        trackers.call("add_report", run_dir / REPORT_DIR)
        trackers.call("close")


def build(specs: list[str], search: SearchInfo, states: dict[str, dict] | None = None):
    """The trackers `specs` (--track values) name, each with its state from run.json."""
    states = states or {}
    made = []
    for text in specs:
        spec = Spec.parse(text)
        try:  # checked when the flags were parsed; gone since (a resumed search's)?
            module = importlib.import_module(KINDS[spec.kind][0])
        except ImportError as exc:
            _warn(spec.kind, exc)
            continue
        made.append(module.TRACKER(spec, search, states.get(spec.kind)))
    return Trackers(made)


class Trackers:
    """Calls every tracker in turn. A tracker that raises is reported in one warning line
    and left out for the rest of this session: tracking never stops a search.

    The trials' side calls `later`: on a thread of its own, in order, so that a tracker's
    requests never hold Tune's loop, which waits for its callbacks before it takes a
    trial's next result. `call` waits for those first, so the search's end comes after
    every trial's.
    """

    def __init__(self, trackers: list[Tracker]) -> None:
        self.trackers = list(trackers)
        self._given = list(trackers)
        self._pending: queue.Queue | None = None  # (method, args) for the thread

    # Tune pickles the trials' side with its state: a --resume tries every tracker again,
    # those left out in an earlier session too. A queue and a thread are not state.
    def __getstate__(self) -> dict:
        return {"trackers": self._given}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["trackers"])

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def __iter__(self):
        return iter(self.trackers)

    def later(self, method: str, *args: Any) -> None:
        """`call`, on the trackers' thread: returns at once."""
        if self._pending is None:
            self._pending = queue.Queue()
            # A daemon: a process that ends without `call` (killed) does not wait for it.
            threading.Thread(target=self._work, name="trackers", daemon=True).start()
        self._pending.put((method, args))

    def _work(self) -> None:
        while True:
            method, args = self._pending.get()
            try:
                self._call(method, *args)
            finally:
                self._pending.task_done()

    def wait(self) -> None:
        """Until the calls `later` queued are done."""
        if self._pending is not None:
            self._pending.join()

    def call(self, method: str, *args: Any) -> dict[str, Any]:
        """`tracker.method(*args)` on each tracker still in, after the calls queued before;
        returns what each returned."""
        self.wait()
        return self._call(method, *args)

    def _call(self, method: str, *args: Any) -> dict[str, Any]:
        answers = {}
        for tracker in list(self.trackers):
            try:
                answers[tracker.kind] = getattr(tracker, method)(*args)
            except Exception as exc:  # noqa: BLE001 - any failure of a tracker, by design
                self.trackers.remove(tracker)
                _warn(tracker.kind, exc)
                # A tracker left out lets go of what it holds; a second failure is moot.
                with contextlib.suppress(Exception):
                    tracker.close()
        return answers

    def start(self, resumed: bool) -> dict[str, dict]:
        """Each tracker's search record opened; returns run.json's `tracking`."""
        return self.call("start", resumed)

    def finish(self, end: SearchEnd) -> None:
        self.call("finish", end)
        self.call("close")


def _warn(kind: str, exc: BaseException) -> None:
    detail = " ".join(str(exc).split())[:300] or type(exc).__name__
    print(
        f"search.run: warning: {kind} tracking stopped ({type(exc).__name__}: {detail}); "
        "the search goes on without it",
        file=sys.stderr,
        flush=True,
    )
