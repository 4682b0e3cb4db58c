"""A real two-node Ray cluster on this machine: a search spreads over both nodes, and
survives losing the worker node.

Head and worker are separate `ray start --block` processes (one CPU each, loopback,
token authentication on for head, worker and driver alike, with a token made for the
test). Each runs in a process group of its own and is killed by pid at the end, even
when a test fails.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from search.run_folder import TRIALS_CSV
from tests import ray_nodes
from tests.conftest import REPO
from tests.ray_nodes import Cluster, finish

pytestmark = pytest.mark.e2e


@pytest.fixture
def cluster(tmp_path):
    cluster = Cluster(tmp_path)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def search(cluster: Cluster, tmp: Path, name: str, *args: str, env: dict | None = None):
    return ray_nodes.search(cluster.address, env or cluster.env, tmp, name, *args)


def reports(run_dir: Path) -> dict[str, list[dict]]:
    found = {}
    for path in run_dir.glob("trial_*/result.json"):
        lines = path.read_text().splitlines()
        found[path.parent.name.removeprefix("trial_")] = [json.loads(x) for x in lines if x]
    return found


FRESH_LOCAL_RAY = """
import logging, os, ray
from search.cluster import connect

connect(None)
print(ray.get(ray.remote(lambda: os.environ.get("RAY_AUTH_MODE")).remote()))
# Only Ray's start is quieted: the same words logged later still show.
logging.getLogger("ray.later").warning("Token authentication is enabled for this Ray cluster.")
"""


def test_a_fresh_local_ray_has_token_authentication_and_says_nothing_of_it(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}  # the token Ray makes goes there
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_ADDRESS"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-c", FRESH_LOCAL_RAY], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["token"] and (tmp_path / ".ray" / "auth_token").exists()
    # Ray's own notice asks to opt out; the one line left is the test's.
    notices = [line for line in done.stderr.splitlines() if "Token authentication" in line]
    assert len(notices) == 1 and "opt out" not in notices[0], done.stderr[-3000:]


def test_local_storage_on_two_nodes_needs_shared_storage(cluster, tmp_path):
    code, out, err = finish(search(cluster, tmp_path, "refused", "--trials", "2"))
    assert code == 2
    assert err.strip().count("\n") == 0 and "--shared-storage" in err
    assert not (tmp_path / "runs" / "refused").exists()


def test_wrong_token_is_one_clear_line(cluster, tmp_path):
    wrong = {**cluster.env, "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    proc = search(cluster, tmp_path, "denied", "--trials", "2", env=wrong)
    code, out, err = finish(proc)
    assert code == 2, err[-3000:]
    assert err.strip().count("\n") == 0 and "authentication token" in err, err


def test_trials_spread_over_both_nodes(cluster, tmp_path):
    proc = search(
        cluster, tmp_path, "spread", "--shared-storage", "--trials", "6", "--max-epochs", "2"
    )
    code, out, err = finish(proc)
    assert code == 0, err[-3000:]
    table = pd.read_csv(tmp_path / "runs" / "spread" / TRIALS_CSV)
    assert len(table) == 6 and set(table["status"]) <= {"completed", "stopped"}
    assert set(table["node"]) == {node.node_id() for node in cluster.nodes}


def test_search_survives_losing_the_worker_node(cluster, tmp_path):
    run_dir = tmp_path / "runs" / "loss"
    worker_id = cluster.nodes[1].node_id()
    proc = search(
        cluster,
        tmp_path,
        "loss",
        "--shared-storage",
        "--confirm-top",  # confirmation is tested elsewhere; this test is about the node
        "0",
        "--trials",
        "4",
        "--max-epochs",
        "5",
        "--grace-epochs",
        "5",
        "--max-failures",
        "3",
    )
    # Kill the worker node once one of its trials has checkpointed two epochs.
    deadline = time.monotonic() + 300
    while not any(
        r and r[-1]["node"] == worker_id and r[-1]["epoch"] >= 2 for r in reports(run_dir).values()
    ):
        assert time.monotonic() < deadline and proc.poll() is None, "no trial on the worker"
        time.sleep(0.2)
    cluster.nodes[1].kill()

    code, out, err = finish(proc, timeout=600)
    assert code == 0, err[-3000:]
    table = pd.read_csv(run_dir / TRIALS_CSV)
    assert len(table) == 4 and (table["status"] == "completed").all()  # every trial counted

    retried, redone = 0, 0
    for trial_reports in reports(run_dir).values():
        epochs = [r["epoch"] for r in trial_reports]
        nodes = [r["node"] for r in trial_reports]
        if worker_id in nodes and nodes[-1] != worker_id:  # moved off the lost node
            retried += 1
        redone += len(epochs) - len(set(epochs))
        # A retried trial continues from its checkpoint: it never starts over at epoch 1.
        assert epochs.count(1) == 1
        assert max(epochs) == 5
    assert retried >= 1
    print(f"\nnode loss: {retried} trial(s) retried on the head node, {redone} epoch(s) redone")
