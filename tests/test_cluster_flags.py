"""The flags that say where and how wide a search runs, each checked by what it does:
`--address` in its three forms and `RAY_ADDRESS`, `--max-concurrent`, `--autoscaler`,
`--cluster-config`; the dashboard on a PostgreSQL study; and the code behind the
benchmarks' headline figures (bench/systems.py's searches and the busy seconds of the
core-use figure).

One loopback Ray head (two CPUs, no GPU, a Ray Client server, token authentication) is
shared by the cluster checks of this module (last in it: the head is up only for them,
from the first to the module's end). It keeps its files in a temporary folder of
its own (RAY_TMPDIR), so the cluster it records there for `--address auto` is this one,
and it is killed by its process group at the end, as tests/ray_nodes.py does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from search.run_folder import TRIALS_CSV
from tests.conftest import REPO, write_idx_folder
from tests.ray_nodes import Node, finish, free_port, search, token_env, wait_for_nodes

HEAD_CPUS = 2
TINY = ("--dataset", "mnist", "--cv-folds", "0", "--confirm-top", "0", "--no-report")


@dataclass(frozen=True)
class Head:
    port: int
    client_port: int  # Ray Client's server (`ray://`)
    env: dict[str, str]  # token auth, this head's RAY_TMPDIR, no RAY_ADDRESS
    node_id: str

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def head(tmp_path_factory) -> Head:
    logs = tmp_path_factory.mktemp("head")
    # Short, under /tmp: Ray's Unix socket paths inside it must stay under 107 bytes.
    ray_tmp = tempfile.mkdtemp(prefix="ray-flags-", dir="/tmp")
    # Ray Client starts a server per client and waits 30 s for it by default: too short
    # on a loaded 2-core machine, where the first one has taken over 40 s.
    env = token_env(RAY_TMPDIR=ray_tmp, RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S="180")
    env.pop("RAY_ADDRESS", None)
    port, client_port = free_port(), free_port()
    node = Node.head(
        port,
        env,
        logs / "head.log",
        "--include-dashboard=false",
        "--num-gpus",  # the same cluster on a machine with CUDA
        "0",
        "--ray-client-server-port",
        str(client_port),
        cpus=HEAD_CPUS,
    )
    try:
        wait_for_nodes(f"127.0.0.1:{port}", env, 1, logs)
        yield Head(port, client_port, env, node.node_id())
    finally:
        node.kill()
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return write_idx_folder(tmp_path_factory.mktemp("digits") / "digits", n_train=200, n_test=50)


def python(code: str, *args: str, env: dict[str, str], timeout: float = 180) -> dict:
    """Run `code` in a fresh interpreter; what it prints last, as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------
# The dashboard on a study kept in PostgreSQL.


def test_the_dashboard_serves_a_study_kept_in_postgresql(postgres):
    from search import study as st
    from tests.test_searcher import run_trial
    from tests.test_study import dashboard, dashboard_json, stored_searcher, wait_for

    url = postgres.create_database("dashboard")
    ref = st.StudyRef(url, "pg-study")
    searcher = stored_searcher(ref)
    # Two trials that trained every epoch (MAX_EPOCHS, 3) and one that stopped after one.
    for trial_id, accs in (("t1", [0.5, 0.6, 0.7]), ("t2", [0.4, 0.5, 0.8]), ("t3", [0.3])):
        run_trial(searcher, trial_id, accs)
    with dashboard(url) as page:  # the URL alone: the page lists the database's studies
        base = page.split("/dashboard/")[0]
        wait_for(lambda: http_json(f"{base}/api/studies"), timeout=30, what="the dashboard")
        (summary,) = http_json(f"{base}/api/studies")["study_summaries"]
        assert summary["study_name"] == "pg-study"
        api = f"{base}/api/studies/{summary['study_id']}?after=0"
        trials = dashboard_json(api)
        html = urllib.request.urlopen(page, timeout=5).read().decode()
    trials.sort(key=lambda t: t["number"])
    assert [t["state"] for t in trials] == ["Complete", "Complete", "Pruned"]
    assert [t["values"] for t in trials[:2]] == [[0.7], [0.8]]
    assert "<html" in html.lower()


def http_json(url: str) -> dict | None:
    """The JSON `url` answers with; None while nothing answers there yet."""
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return json.load(reply)
    except OSError:
        return None


# ---------------------------------------------------------------------------------------
# The code behind the benchmarks' headline figures.


@pytest.mark.e2e
@pytest.mark.parametrize("system", ["ours", "stock"])
def test_a_tiny_benchmark_search_measures_sanely(system, digits, tmp_path):
    from bench.common import BenchConfig, run_child
    from bench.utilisation import share

    job = {"kind": "search", "system": system, "seed": 0, "trials": 2, "max_epochs": 1}
    job |= {"dataset": "mnist", "data_dir": str(digits), "workdir": str(tmp_path)}
    job |= {"confirm_top": 0}
    r = run_child(job, BenchConfig(workdir=str(tmp_path)))  # as `python -m bench` runs it
    assert r["system"] == system and r["trials"] == 2 and r["cpus"] == os.cpu_count()
    assert 0.0 <= r["best_val_acc"] <= 1.0 and 0.0 <= r["test_acc"] <= 1.0
    # Two trials of one epoch each, every epoch counted once.
    assert len(r["curves"]) == 2 and r["epochs"] == len(r["events"]) == 2
    assert r["best_val_acc"] == max(acc for _, acc in r["events"])
    times = [t for t, _ in r["events"]]  # seconds since the search started
    assert min(times) > 0 and max(times) <= r["wall_s"] + 1  # +1: Tune's whole seconds
    # Training is part of the trials' own clocks (which also hold their setup and
    # reports), and those are part of the search's core-seconds.
    assert 0 < r["busy_s"] < r["trial_s"] <= r["wall_s"] * r["cpus"]
    assert 0 < share(r) <= 1
    if system == "ours":
        assert r["trial_epochs"] == [1, 1] and 0 < r["fit_wall_s"] < r["wall_s"]
        assert Path(r["run_dir"]).is_dir()


def test_busy_seconds_count_training_and_not_the_time_between_epochs(monkeypatch, digits):
    """The busy seconds of the core-use figure sum each epoch's `seconds` from
    models.train.fit. Known CPU work inside training (0.1 s per fold's pass) must count;
    the 0.4 s the consumer (Tune's report and checkpoint) holds each epoch must not."""
    import torch

    import models.train
    from bench.systems import train_trial
    from search.data import load_dataset
    from search.space import SEED_CONFIG

    work, outside = 0.1, 0.4
    real_train_epoch = models.train.train_epoch
    passes = []

    def train_epoch_with_work(*args, **kwargs):
        loss = real_train_epoch(*args, **kwargs)
        spin(work)
        passes.append(work)
        return loss

    monkeypatch.setattr("models.train.train_epoch", train_epoch_with_work)
    data = load_dataset("mnist", digits, seed=0)
    config = {**SEED_CONFIG, "hidden_size": 16, "batch_size": 256}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a one-CPU trial
    try:
        _, epochs = train_trial(config, data, max_epochs=2, seed=0)  # models built
        started = time.perf_counter()  # fit's first epoch starts with the loop
        seconds = []
        for epoch in epochs:
            seconds.append(epoch.seconds)
            time.sleep(outside)  # not training: must count nowhere
        wall = time.perf_counter() - started
    finally:
        torch.set_num_threads(threads)
    assert len(seconds) == 2 and min(seconds) >= sum(passes) / 2  # each epoch its folds'
    assert sum(seconds) <= wall - 2 * outside


def spin(seconds: float) -> None:
    """Keep this thread's CPU busy for `seconds` of its own CPU time."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


# ---------------------------------------------------------------------------------------
# --address auto, ray://host:port, RAY_ADDRESS: the cluster joined is the test's head.

JOIN = """
import json, sys
import ray
from ray.util.client import ray as ray_client
from search.cluster import connect

joined = connect(sys.argv[1] or None)
print(json.dumps({
    "joined": joined,
    "client": ray_client.is_connected(),
    "nodes": sorted(n["NodeID"] for n in ray.nodes() if n["Alive"]),
    "cpus": ray.cluster_resources().get("CPU"),
}))
"""


@pytest.mark.e2e
@pytest.mark.parametrize(
    "form", ["auto, RAY_ADDRESS set", "auto, cluster recorded", "ray://", "RAY_ADDRESS alone"]
)
def test_each_form_of_address_joins_the_running_head(head, form):
    # The driver keeps its files apart from the head's: a fresh Ray that a broken join
    # started would not disturb the head's session for the checks that follow.
    ray_tmp = Path(tempfile.mkdtemp(prefix="ray-driver-", dir="/tmp"))
    env = {**head.env, "RAY_TMPDIR": str(ray_tmp)}
    if form == "auto, RAY_ADDRESS set":
        address, env["RAY_ADDRESS"] = "auto", head.address  # nothing recorded: only this
    elif form == "auto, cluster recorded":
        # Where `ray start --head` recorded the head, as if on the head's own machine.
        recorded = Path(head.env["RAY_TMPDIR"]) / "ray" / "ray_current_cluster"
        (ray_tmp / "ray").mkdir()
        shutil.copy(recorded, ray_tmp / "ray" / recorded.name)
        address = "auto"
    elif form == "ray://":
        address = f"ray://127.0.0.1:{head.client_port}"
    else:
        # docs/clusters.md: "`RAY_ADDRESS=HEAD_IP:6379` works instead of `--address`".
        address, env["RAY_ADDRESS"] = "", head.address
    try:
        seen = python(JOIN, address, env=env)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    # The head itself, not a fresh local Ray (which would be a node of its own).
    assert seen["joined"] is True
    assert seen["nodes"] == [head.node_id] and seen["cpus"] == HEAD_CPUS
    assert seen["client"] is (form == "ray://")  # ray:// goes through Ray Client


@pytest.mark.e2e
def test_ray_address_without_the_flag_runs_the_search_on_that_cluster(head, digits, tmp_path):
    """Also `--max-concurrent 1`: the head has room for two trials, and never ran two at
    once (each trial's span from its result.json; the next starts after the last ends)."""
    env = {**head.env, "RAY_ADDRESS": head.address}
    flags = ("--data-dir", str(digits), "--trials", "2", "--max-epochs", "1", *TINY)
    code, out, err = finish(search(None, env, tmp_path, "one", *flags, "--max-concurrent", "1"))
    assert code == 0, err[-3000:]
    run = tmp_path / "runs" / "one"
    table = pd.read_csv(run / TRIALS_CSV)
    assert len(table) == 2 and set(table["status"]) == {"completed"}
    assert set(table["node"]) == {head.node_id}  # RAY_ADDRESS's cluster, not a local Ray
    spans = sorted(trial_span(run / f"trial_{t}" / "result.json") for t in table["trial_id"])
    (_, first_end), (second_start, _) = spans
    # Tune stamps results in whole seconds: a span's ends are known to within 1 s.
    assert second_start > first_end - 1.0, spans


def trial_span(result_json: Path) -> tuple[float, float]:
    """(start, end) of a trial in epoch seconds: its last report's timestamp, less the
    trial's own clock since it started."""
    last = json.loads(result_json.read_text().splitlines()[-1])
    return last["timestamp"] - last["time_total_s"], float(last["timestamp"])


@pytest.mark.e2e
def test_a_search_runs_through_ray_client(head, digits, tmp_path):
    address = f"ray://127.0.0.1:{head.client_port}"
    flags = ("--data-dir", str(digits), "--trials", "1", "--max-epochs", "1", *TINY)
    code, out, err = finish(search(address, head.env, tmp_path, "client", *flags))
    assert code == 0, err[-3000:]
    table = pd.read_csv(tmp_path / "runs" / "client" / TRIALS_CSV)
    assert list(table["status"]) == ["completed"] and set(table["node"]) == {head.node_id}


# ---------------------------------------------------------------------------------------
# --autoscaler, --cluster-config: on a cluster of fixed size, each makes the search queue
# trials for nodes the cluster may add, and ask for storage they would share.

CAPACITY = """
import json, sys
from pathlib import Path
from search.capacity import TrialShape, measure, read_cluster_config, trial_slots
from search.cluster import connect

connect(sys.argv[1])
stated = read_cluster_config(Path(sys.argv[2]))
shape, found = TrialShape(cpus=1.0), {}
for name, flags in {"none": (False, None), "autoscaler": (True, None),
                    "cluster-config": (False, stated)}.items():
    capacity = measure(*flags)
    found[name] = {
        "grows": capacity.grows,
        "slots_now": capacity.slots_now(shape),
        "max_concurrent": trial_slots(capacity, shape, 5),
        "several_nodes": capacity.may_have_several_nodes(),
    }
print(json.dumps(found))
"""


@pytest.mark.e2e
def test_the_autoscaler_flags_queue_trials_for_nodes_not_up(head, digits, tmp_path):
    # A config whose one worker type adds a two-CPU node, once.
    config = tmp_path / "autoscaling.yaml"
    config.write_text(
        "max_workers: 4\nhead_node_type: head\navailable_node_types:\n  head: {resources: {}}\n"
        "  two_cpus: {resources: {CPU: 2}, max_workers: 1}\n"
    )
    found = python(CAPACITY, head.address, str(config), env=head.env)
    # No autoscaler is named: two trials at once (the head's CPUs) ...
    assert found["none"] == {
        "grows": False, "slots_now": 2, "max_concurrent": 2, "several_nodes": False
    }  # fmt: skip
    # ... with --autoscaler, all five trials of the search are queued, for nodes to come;
    assert found["autoscaler"] == {
        "grows": True, "slots_now": 2, "max_concurrent": 5, "several_nodes": True
    }  # fmt: skip
    # with --cluster-config, as many as the head and the one node it may add hold.
    assert found["cluster-config"] == {
        "grows": True, "slots_now": 2, "max_concurrent": 4, "several_nodes": True
    }  # fmt: skip
    # Through the CLI: a cluster that may grow needs shared storage, so a search that
    # runs on this head's local disk without the flag (the RAY_ADDRESS test's) is
    # refused with it.
    flags = ("--data-dir", str(digits), "--trials", "2", *TINY)
    proc = search(head.address, head.env, tmp_path, "grows", "--autoscaler", *flags)
    code, out, err = finish(proc)
    assert code == 2 and err.strip().count("\n") == 0, err[-3000:]
    assert "may add nodes (it has an autoscaler)" in err and "--shared-storage" in err
    assert not (tmp_path / "runs" / "grows").exists()
