"""The chaos test: one search hit by a seeded series of faults (driver SIGKILL and
SIGTERM, trial workers killed, the worker node lost), resumed after each until it ends,
loses nothing (bench/chaos.py; `python -m bench --only chaos` deals more)."""

from __future__ import annotations

import pytest

from bench.chaos import chaos_search

pytestmark = pytest.mark.e2e


def test_a_search_hit_by_faults_at_random_moments_loses_nothing(tmp_path):
    log = chaos_search(tmp_path, faults=4, seed=6, trials=8, max_epochs=3, spacing=(3, 8))
    print(f"faults survived: {len(log.faults)} ({', '.join(log.faults)}), {log.sessions} sessions")
    assert not log.problems, "\n\n".join(log.problems)
    assert len(log.faults) == 4
