"""SIGTERM is a Ctrl-C, also in the seconds `ray.init` takes (search/signals.py)."""

from __future__ import annotations

import signal
import sys

import pytest

from search import signals


@pytest.fixture(autouse=True)
def handlers_restored():
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)


def like_ray_init() -> None:
    """What `ray.init` does to SIGTERM first (ray._private.worker.init), then a SIGTERM."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))
    signal.raise_signal(signal.SIGTERM)


def test_a_sigterm_while_ray_starts_is_a_ctrl_c_and_the_next_one_too():
    with pytest.raises(KeyboardInterrupt), signals.around_ray_init():
        like_ray_init()
    with pytest.raises(KeyboardInterrupt):  # ours again, not Ray's exit
        signal.raise_signal(signal.SIGTERM)


def test_other_exits_within_ray_init_are_left_alone():
    with pytest.raises(SystemExit) as exit_, signals.around_ray_init():
        sys.exit(2)
    assert exit_.value.code == 2


def test_a_ctrl_c_python_dropped_is_raised_again():
    """A KeyboardInterrupt raised in a weakref callback is printed and dropped; the driver
    asks again before Tune starts (search.driver.run)."""
    import weakref

    signals.sigterm_as_ctrl_c()
    before = signals.interruptions()
    signals.raise_if_interrupted(since=before)  # nothing yet

    class Thing:
        pass

    thing = Thing()
    weakref.finalize(thing, signal.raise_signal, signal.SIGTERM)
    del thing  # the finalizer's KeyboardInterrupt goes nowhere
    with pytest.raises(KeyboardInterrupt):
        signals.raise_if_interrupted(since=before)
