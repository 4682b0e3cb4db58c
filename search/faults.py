"""What the machine does to a search: the run folder's disk fails, a node runs out of memory.

Disk faults are told apart from a trial's own failure and end the search cleanly; a trial
killed for memory is recorded with that reason (`memory_kill`).

A run folder whose disk fills, goes read-only or disappears is not the trials' fault, and
nothing about it should be recorded as theirs. Two lines of defence:

- `StorageWatch`, a Tune callback in the driver, looks at a local run folder's disk once a
  second. When the free space drops below what the next round of checkpoints needs, it
  stops the search the way Ctrl-C does (Tune saves its state; the trials pause and resume
  later from their last checkpoint) while there is still room to save it. A folder gone
  read-only or missing ends the search at once, writing nothing more.
- Where a write fails anyway (a quota, another program filling the disk, a store that
  refuses), the trial raises `DiskFault` instead of its OSError and the watch ends the
  search before Tune counts the failure (it hears of it before the searcher does, as long
  as the trial has a retry left); the driver reads the cause from whatever exception
  reaches it (`disk_fault_cause`).

Either way the CLI prints one line with the cause and the resume command, and exits with
status 74 (sysexits' EX_IOERR).
"""

from __future__ import annotations

import errno
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from ray import tune
from ray.exceptions import OutOfMemoryError

# Room kept free on the run folder's disk: Tune's state and our files at the end of the
# search, plus two checkpoints of every running trial (its best and its latest).
RESERVE_FLOOR_BYTES = 8 * 2**20
CHECK_SECONDS = 1.0

# What each fault reads like, in an OSError's errno or in the text of an error that
# wraps one (pyarrow's, SQLite's, Tune's traceback of a failed trial).
_CAUSES = (
    (
        errno.ENOSPC,
        re.compile(r"No space left on device|database or disk is full"),
        "the disk is full",
    ),
    (errno.EDQUOT, re.compile(r"Disk quota exceeded"), "the disk quota is exceeded"),
    (
        errno.EROFS,
        re.compile(r"Read-only file system|attempt to write a readonly database"),
        "the file system is read-only",
    ),
)
FOLDER_GONE = "the run folder disappeared"  # only ever seen while the search runs
# Ray's words when a trial's checkpoint finds the run folder's marker file gone.
_FOLDER_GONE_TEXT = re.compile(r"Unable to set up cluster storage")
_TRIAL_FAULT = re.compile(r"DiskFault: (.+)")


class DiskFault(Exception):
    """The run folder's disk refused a write, or is about to: the search stops here.

    Its message is the cause, e.g. "the disk is full".
    """


def disk_fault_cause(error: BaseException) -> str | None:
    """The disk fault behind `error` ("the disk is full"), or None when `error` is
    something else (a bug, a trial's own failure)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DiskFault):
            return str(current)
        if isinstance(current, OSError):
            for code, _, cause in _CAUSES:
                if current.errno == code:
                    return cause
        text = str(current)
        if found := _TRIAL_FAULT.search(text):  # a trial's, in Tune's traceback text
            return found.group(1).strip()
        for _, pattern, cause in _CAUSES:
            if pattern.search(text):
                return cause
        if _FOLDER_GONE_TEXT.search(text):
            return FOLDER_GONE
        current = current.__cause__ or current.__context__
    return None


def latest_error(trial) -> str | None:
    """The text of a failed trial's latest error, as soon as it failed.

    Tune writes it to the driver's copy of the trial's error.txt at once, and to the run
    folder (where `Trial.get_error` reads) only at its next sync.
    """
    path = trial.error_file
    if path is None or not os.path.exists(path):
        return trial.get_error()
    with open(path) as errors:
        return errors.read().split("Failure # ")[-1]


def trial_disk_fault(error: BaseException | str | None) -> str | None:
    """The cause, if a trial failed because it could not write to the run folder (it
    raised DiskFault); None for its own failures, its node's full /tmp included."""
    found = _TRIAL_FAULT.search(str(error)) if error is not None else None
    return found.group(1).strip() if found else None


@dataclass
class _Watched:
    """The run folder this process's search writes to, and why the watch stopped it."""

    folder: str | None = None
    stop_cause: str | None = None


# Set by the driver before each search (`watch`). Module state, not the callback's:
# Tune pickles its callbacks with its state and restores them on --resume, when the
# run folder may have moved to another path.
_watched = _Watched()


def watch(folder: str | None) -> None:
    """Watch `folder`'s disk (a local run folder; None for one in an object store)."""
    global _watched
    _watched = _Watched(folder)


def stop_cause() -> str | None:
    """Why the watch stopped the search with its state saved, if it did."""
    return _watched.stop_cause


class StorageWatch(tune.Callback):
    """Watches the disk of the run folder given to `watch` (see the module's docstring).

    In an object store there is no disk to watch; a trial's failed write still ends the
    search there (`on_trial_recover`).
    """

    def __init__(self):
        self.checkpoint_bytes = 0  # the largest checkpoint seen (grows with the models)
        self._next_check = 0.0

    def reserve_bytes(self, running: int) -> int:
        return RESERVE_FLOOR_BYTES + 2 * max(running, 1) * self.checkpoint_bytes

    def check(self, running: int) -> None:
        """Raise DiskFault if the folder is gone or read-only; stop the search the way
        Ctrl-C does if its disk has less room than `reserve_bytes`."""
        if _watched.folder is None or _watched.stop_cause:
            return
        try:
            disk = os.statvfs(_watched.folder)
        except FileNotFoundError:
            raise DiskFault(FOLDER_GONE) from None
        if disk.f_flag & os.ST_RDONLY:
            raise DiskFault("the file system is read-only")
        free, needed = disk.f_bavail * disk.f_frsize, self.reserve_bytes(running)
        if free < needed:
            _watched.stop_cause = (
                f"the disk is nearly full ({free / 2**20:.1f} MB free, "
                f"{needed / 2**20:.0f} MB needed to go on)"
            )
            # Tune's own Ctrl-C handler: the trials pause and Tune saves its state.
            signal.raise_signal(signal.SIGINT)

    def on_step_end(self, iteration, trials, **info):
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + CHECK_SECONDS
            self.check(sum(t.status == "RUNNING" for t in trials))

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        if _watched.folder is not None:
            self.checkpoint_bytes = max(self.checkpoint_bytes, _folder_bytes(checkpoint.path))

    def on_trial_recover(self, iteration, trials, trial, **info):
        # Before Tune restarts the trial, and before the searcher hears of it.
        if cause := trial_disk_fault(latest_error(trial)):
            raise DiskFault(cause)

    on_trial_error = on_trial_recover  # with no retry left, the searcher has heard already

    def __getstate__(self) -> dict:
        # Saved with Tune's state. The next check's time is this process's clock: a
        # resumed search, perhaps on another machine, looks at once.
        return {**self.__dict__, "_next_check": 0.0}


# Ray's memory monitor names the worker it killed: "..., pid=123, actual memory used=0.43GB".
_MEMORY_KILLED = re.compile(r"were killed due to the node running low on memory")
_MEMORY_USED = re.compile(r"pid=\d+, actual memory used=([0-9.]+)GB")


def memory_kill(error: BaseException | str | None) -> str | None:
    """ "out of memory: 430 MB" for a trial whose worker Ray killed to save its node's
    memory (the worker's use when it was killed), else None.

    A worker the kernel's OOM killer ends first reaches Ray as a worker that died of
    SIGKILL, which Ray cannot tell from other kills: its error stays Ray's.
    """
    text = str(error) if error is not None else ""
    if not (isinstance(error, OutOfMemoryError) or _MEMORY_KILLED.search(text)):
        return None
    used = _MEMORY_USED.search(text)
    return f"out of memory: {float(used.group(1)) * 1024:.0f} MB" if used else "out of memory"


def _folder_bytes(path: str) -> int:
    """Bytes in the files under `path` (a local checkpoint folder)."""
    return sum(entry.stat().st_size for entry in Path(path).rglob("*") if entry.is_file())
