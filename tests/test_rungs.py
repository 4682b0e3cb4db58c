"""The rung rule (search.rungs): ASHA's decisions, and the rungs a warm start seeds."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from search.rungs import Rungs, RungScheduler


def test_rungs_are_grace_times_powers_of_the_factor_below_the_cap():
    assert Rungs.spaced(1, 12, 3).milestones == [1, 3, 9]
    assert Rungs.spaced(2, 20, 2).milestones == [2, 4, 8, 16]
    assert Rungs.spaced(1, 9, 3).milestones == [1, 3]  # a trial at the cap ends anyway
    assert Rungs.spaced(0.5, 10, 3).milestones == [0.5, 1.5, 4.5]
    assert Rungs.spaced(3, 3, 3).milestones == []


def test_a_trial_below_the_rungs_quantile_stops_and_every_value_is_recorded():
    rungs = Rungs.spaced(1, 10, 2)  # keep the best half
    assert rungs.judge("a", 1, 0.5)  # alone at its rung
    assert rungs.judge("b", 1, 0.7)  # the median of {0.5} is 0.5
    assert not rungs.judge("c", 1, 0.55)  # the median of {0.5, 0.7} is 0.6
    assert rungs.recorded[1] == {"a": 0.5, "b": 0.7, "c": 0.55}
    assert rungs.judge("a", 1.5, 0.1)  # judged once per rung: between rungs it goes on
    assert rungs.judge("a", 2, 0.9) and rungs.recorded[2] == {"a": 0.9}


def test_a_trial_that_jumps_past_rungs_is_judged_at_the_highest_then_the_lower_ones():
    rungs = Rungs.spaced(1, 100, 3)  # 1, 3, 9, 27, 81
    rungs.judge("leader", 1, 0.9)
    assert rungs.judge("costly", 4, 0.5)  # first seen past rung 3: judged there, alone
    assert not rungs.judge("costly", 5, 0.5)  # then at rung 1, behind the leader
    assert rungs.recorded[1]["costly"] == 0.5 and rungs.recorded[3] == {"costly": 0.5}


@pytest.mark.parametrize("mode", ["max", "min"])
@pytest.mark.parametrize(("grace", "cap", "factor"), [(1, 12, 3), (2, 20, 2), (1, 30, 4)])
def test_the_scheduler_decides_as_rays_asha_with_one_bracket(mode, grace, cap, factor):
    """Eight trials report random values at random times, interleaved: every decision
    is the one Ray's ASHAScheduler takes on the same stream."""
    ours = RungScheduler("t", max_t=cap, grace=grace, reduction_factor=factor)
    ours.set_search_properties("score", mode)
    rays = ASHAScheduler(
        time_attr="t", metric="score", mode=mode, max_t=cap, grace_period=grace,
        reduction_factor=factor,
    )  # fmt: skip
    rng = np.random.default_rng(grace * 100 + cap)
    trials = [SimpleNamespace(trial_id=f"t{i}") for i in range(8)]
    times = dict.fromkeys(range(8), 0)
    running = set(range(8))
    for trial in trials:
        rays.on_trial_add(None, trial)
        ours.on_trial_add(None, trial)
    decisions = []
    while running:
        i = int(rng.choice(sorted(running)))
        times[i] += int(rng.integers(1, 3))
        result = {"t": times[i], "score": float(rng.random())}
        decision = ours.on_trial_result(None, trials[i], result)
        assert decision == rays.on_trial_result(None, trials[i], result)
        decisions.append(decision)
        if decision == TrialScheduler.STOP:
            running.discard(i)
    assert TrialScheduler.CONTINUE in decisions and decisions.count(TrialScheduler.STOP) == 8


def test_results_without_the_metric_or_time_go_on_and_the_cap_stops():
    scheduler = RungScheduler("epoch", max_t=3, grace=1, reduction_factor=3)
    scheduler.set_search_properties("acc", "max")
    trial = SimpleNamespace(trial_id="a")
    assert scheduler.on_trial_result(None, trial, {"acc": 0.5}) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(None, trial, {"epoch": 1}) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(None, trial, {"epoch": 3, "acc": 1}) == TrialScheduler.STOP
    # A trial's last result, handed to on_trial_complete only, still counts at its rung.
    scheduler.on_trial_complete(None, SimpleNamespace(trial_id="b"), {"epoch": 1, "acc": 0.9})
    assert scheduler.rungs.recorded[1] == {"b": 0.9}
