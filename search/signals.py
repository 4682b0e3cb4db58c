"""SIGTERM ends a search the way Ctrl-C does.

`ray job stop`, `kill` and batch schedulers send SIGTERM. Turned into SIGINT, it reaches
whichever Ctrl-C handler is in place: ours (Python's, counted) before the search starts,
Ray Tune's during it (Tune saves its state and the CLI prints the resume command).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

_interruptions = 0  # Ctrl-Cs (SIGINT, and SIGTERM made one) this process has had


def _ctrl_c(signum, frame) -> None:
    """Python's own Ctrl-C (a KeyboardInterrupt wherever the program stands), counted: one
    raised in a weakref callback or a `__del__` is dropped by Python ("Exception ignored
    in ..."), and `raise_if_interrupted` raises it again where it cannot be."""
    global _interruptions
    _interruptions += 1
    raise KeyboardInterrupt


def _as_ctrl_c(signum, frame) -> None:
    signal.raise_signal(signal.SIGINT)


def sigterm_as_ctrl_c() -> None:
    """Install the handlers (again after `ray.init`: see `around_ray_init`)."""
    signal.signal(signal.SIGINT, _ctrl_c)
    signal.signal(signal.SIGTERM, _as_ctrl_c)


def interruptions() -> int:
    """How many Ctrl-Cs this process has had so far."""
    return _interruptions


def raise_if_interrupted(since: int) -> None:
    """KeyboardInterrupt if a Ctrl-C came after the `since`th: one Python dropped."""
    if _interruptions > since:
        raise KeyboardInterrupt


@contextlib.contextmanager
def around_ray_init() -> Iterator[None]:
    """Keeps SIGTERM a Ctrl-C around `ray.init`.

    `ray.init` first installs a SIGTERM handler of its own that exits at once
    (`sys.exit(15)`), saying nothing; a SIGTERM in the seconds it takes would end the
    driver with status 15 and no word. Within the block that exit is a Ctrl-C instead,
    and this module's handler is back in place after it.
    """
    try:
        yield
    except SystemExit as exc:
        if exc.code != signal.SIGTERM:
            raise
        raise KeyboardInterrupt from None
    finally:
        sigterm_as_ctrl_c()
