"""One owner per run folder: a search claims its folder before it writes there.

The claim is a file in the run folder, `.owner`, naming the search that holds it (host,
pid, when it started). It is created exclusively, so of two searches that start at once
on one folder, exactly one gets it:

- on a local disk or a mount the nodes share, by `open(O_CREAT | O_EXCL)`, which POSIX
  file systems (NFS v3 and later included) do atomically;
- in an object store, pyarrow offers no conditional write, so the claim is written with a
  token of its own and read back a moment later: the later of two writes wins, and the
  other search sees a token not its own. Two searches whose writes land within that
  moment of each other could both go on; the store allows no more.

The owner refreshes the claim while it runs (a heartbeat). A claim is stale, and is
taken over, when its search is gone: on this host, its pid no longer runs (or runs
another process); elsewhere, its heartbeat stopped longer ago than `STALE_SECONDS`.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass

import psutil

from search.errors import UserError
from search.storage import RunLocation

CLAIM_FILE = ".owner"
HEARTBEAT_SECONDS = 15.0
STALE_SECONDS = 120.0  # eight missed heartbeats: the owner is gone
_READ_BACK_SECONDS = 1.0  # object stores: how long two claims may race


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    process_start: str | None  # the pid's start time on its host, against pid reuse
    started: float  # epoch seconds
    token: str

    @classmethod
    def this_process(cls) -> Owner:
        pid, host = os.getpid(), socket.gethostname()
        return cls(host, pid, _process_start(pid), time.time(), secrets.token_hex(8))

    def encoded(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"

    def is_gone(self, heartbeat_age: float) -> bool:
        if self.host == socket.gethostname():
            return not _runs(self.pid, self.process_start)
        return heartbeat_age > STALE_SECONDS


def _process_start(pid: int) -> str | None:
    """Seconds from the machine's boot to the process's start. Both times psutil gives
    follow the system clock, and a step of that clock (NTP) moves them alike: their
    difference is the process's own, whichever process reads it, and whenever."""
    try:
        return f"{psutil.Process(pid).create_time() - psutil.boot_time():.2f}"
    except psutil.Error:  # gone, or not ours to look at
        return None


def _runs(pid: int, process_start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it runs
        pass
    return process_start is None or _process_start(pid) in (None, process_start)


class Claim:
    """This search's claim on `run`; `release()` (or leaving the `with`) gives it up."""

    def __init__(self, run: RunLocation, owner: Owner) -> None:
        self.run, self.owner = run, owner
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="run-claim", daemon=True)
        self._beat.start()

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._beat.join()
        try:
            held = _read(self.run)
            if held is not None and held[0].token == self.owner.token:
                self.run.fs.delete_file(_path(self.run))
        except OSError:
            pass  # the folder is gone or unreachable: nothing is left to release

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with contextlib.suppress(OSError):  # a storage hiccup: the next beat tries again
                _touch(self.run, self.owner)


def claim(run: RunLocation) -> Claim:
    """Claim `run` (created if missing) for this search, or UserError naming the search
    that holds it. A stale claim is taken over."""
    run.create()
    owner = Owner.this_process()
    for _ in range(2):  # a stale claim is removed once, then claimed again
        if _create_exclusively(run, owner):
            return Claim(run, owner)
        held = _read(run)
        if held is None:  # released between our attempt and the read
            continue
        other, age = held
        if not other.is_gone(age):
            raise UserError(
                f"run folder {run.display} is in use by another search ({other.describe()}, "
                f"started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(other.started))}); "
                "wait for it to end, or choose another --name"
            )
        run.fs.delete_file(_path(run))
    raise UserError(f"run folder {run.display}: another search claimed it at the same moment")


def _path(run: RunLocation) -> str:
    return posixpath.join(run.path, CLAIM_FILE)


def _create_exclusively(run: RunLocation, owner: Owner) -> bool:
    data = owner.encoded()
    if run.is_local:
        try:
            fd = os.open(_path(run), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        return True
    if run.exists(CLAIM_FILE):
        return False
    run.write_bytes(CLAIM_FILE, data)
    time.sleep(_READ_BACK_SECONDS)  # a rival's write in this moment replaces ours
    held = _read(run)
    return held is not None and held[0].token == owner.token


def _touch(run: RunLocation, owner: Owner) -> None:
    if run.is_local:
        os.utime(_path(run))
    else:  # an object store keeps no modification time apart from a new write
        run.write_bytes(CLAIM_FILE, owner.encoded())


def _read(run: RunLocation) -> tuple[Owner, float] | None:
    """The claim's owner and the seconds since its last heartbeat; None if there is none."""
    try:
        info = run.fs.get_file_info(_path(run))
        if info.mtime is None:
            return None
        owner = Owner(**json.loads(run.read_bytes(CLAIM_FILE)))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):  # half written, or not ours: judged by its age alone
        owner = Owner("?", -1, None, 0.0, "")
    return owner, time.time() - info.mtime.timestamp()
