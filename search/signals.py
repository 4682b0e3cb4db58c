"""SIGTERM ends a search the way Ctrl-C does.

`ray job stop`, `kill` and batch schedulers send SIGTERM. Turned into SIGINT, it reaches
whichever Ctrl-C handler is in place: Python's before the search starts, Ray Tune's
during it (Tune saves its state and the CLI prints the resume command).
"""

from __future__ import annotations

import signal


def _as_ctrl_c(signum, frame) -> None:
    signal.raise_signal(signal.SIGINT)


def sigterm_as_ctrl_c() -> None:
    """Install the handler; again after `ray.init`, whose core worker installs its own
    SIGTERM handler (one that exits at once, saving nothing)."""
    signal.signal(signal.SIGTERM, _as_ctrl_c)
