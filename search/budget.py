"""A wall-clock budget for a search (`--time-budget`): when it ends, what it can hold.

One `Deadline` object is shared by the searcher, which proposes no trial the remaining
time cannot hold, and by Tune as a stopper, which stops the trials still running when
the time is up, each after its current epoch. Both live in the Tuner's pickle, so a
resumed search shares one again. The clock starts the first time a session asks and is
never pickled: the budget is per session, and `--resume` of a search that its budget
ended goes on searching (`ResumableSearch`) for up to as long again.
"""

from __future__ import annotations

import time

from ray import tune
from ray.tune.search import SearchGenerator


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


class ResumableSearch(SearchGenerator):
    """Tune's search generator, except that a restored one is never already finished.

    The searcher says FINISHED only when the budget cannot hold another trial, and Tune
    saves that flag with the search; a resumed session has a new budget, so it drops the
    flag and asks the searcher again. The trial count still ends the search at --trials.
    """

    def set_state(self, state: dict) -> None:
        super().set_state({**state, "finished": False})
