"""A wall-clock budget for a search (`--time-budget`): when it ends, what it can hold.

One `Deadline` object is shared by the searcher, which proposes no trial the remaining
time cannot hold, and by Tune as a stopper, which stops the trials still running when
the time is up, each after its current epoch. Both live in the Tuner's pickle, so a
resumed search shares one again. The clock starts the first time a session asks and is
never pickled.
"""

from __future__ import annotations

import time

from ray import tune


class Deadline(tune.Stopper):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end: float | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_end": None}

    def remaining(self) -> float:
        """Seconds left; the first call of a session starts the clock."""
        if self._end is None:
            self._end = time.time() + self.seconds
        return self._end - time.time()

    def __call__(self, trial_id: str, result: dict) -> bool:
        return self.remaining() <= 0

    def stop_all(self) -> bool:
        return False  # running trials stop one by one, each after its current epoch
