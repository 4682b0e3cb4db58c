"""A cluster that grows: Ray's own fake-node autoscaler adds worker nodes on this machine
when trials wait, and a search queues trials for the nodes it may add.

The autoscaler is Ray's `fake_multinode` provider (what `ray.cluster_utils.
AutoscalingCluster` generates), started as `RAY_FAKE_CLUSTER=1 ray start --head
--autoscaling-config=...`; not through that class, whose start and shutdown run
`ray stop --force` and would end every Ray process on the machine. The nodes the
autoscaler launches are processes of the head's monitor, in the head's process group,
so killing that group ends them too. Each search names that config (`--cluster-config`),
as a user names the cluster.yaml of `ray up`.

Also a node with a logical GPU: `--gpus-per-trial 0.25` packs four trials on it. Where
the machine has no CUDA, those trials train on the CPU and the run records that; on a
machine with CUDA, Ray hands them its first GPU and they train there. Heads that stand for
a node without a GPU say so (`--num-gpus 0`): `ray start` would count a CUDA machine's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from search.run_folder import TRIALS_CSV
from search.run_record import RUN_JSON
from tests.ray_nodes import Node, finish, free_port, search, token_env, wait_for_nodes

pytestmark = pytest.mark.e2e

TINY = ("--confirm-top", "0", "--no-report", "--max-epochs", "2", "--grace-epochs", "2")


def fake_autoscaler_config(port: int, worker_types: dict) -> dict:
    """The config AutoscalingCluster writes, for a head listening on `port`."""
    return {
        "cluster_name": "fake-autoscaling",
        "max_workers": 8,
        "upscaling_speed": 10.0,
        "idle_timeout_minutes": 5,
        "provider": {
            "type": "fake_multinode",
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
            "gcs_address": f"127.0.0.1:{port}",  # not the default 6379: ours is free
        },
        "auth": {"ssh_user": "ubuntu"},
        "docker": {},
        "head_node_type": "ray.head.default",
        "available_node_types": {
            "ray.head.default": {"resources": {}, "node_config": {}, "max_workers": 0},
            **worker_types,
        },
        **{
            key: []
            for key in (
                "initialization_commands",
                "setup_commands",
                "head_setup_commands",
                "worker_setup_commands",
                "head_start_ray_commands",
                "worker_start_ray_commands",
                "cluster_synced_files",
                "rsync_exclude",
                "rsync_filter",
            )
        },
        "file_mounts": {},
        "file_mounts_sync_continuously": False,
    }


def worker_type(resources: dict, max_workers: int) -> dict:
    # A small object store: each fake node is a whole raylet on this one machine.
    return {
        "resources": {**resources, "object_store_memory": 200 * 1024**2},
        "node_config": {},
        "min_workers": 0,
        "max_workers": max_workers,
    }


class AutoscalingHead:
    """A one-CPU head whose autoscaler may add the given worker types."""

    def __init__(self, tmp: Path, worker_types: dict):
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.config = tmp / "autoscaling.json"
        self.config.write_text(json.dumps(fake_autoscaler_config(self.port, worker_types)))
        self.env = token_env(RAY_FAKE_CLUSTER="1", AUTOSCALER_UPDATE_INTERVAL_S="1")
        self.tmp = tmp
        self.head = Node.head(
            self.port,
            self.env,
            tmp / "head.log",
            f"--autoscaling-config={self.config}",
            "--include-dashboard=false",
            "--num-gpus",  # the config's head type has no GPU, on any machine
            "0",
            "--object-store-memory",
            str(300 * 1024**2),
        )

    def __enter__(self) -> AutoscalingHead:
        try:
            wait_for_nodes(self.address, self.env, 1, self.tmp)
        except BaseException:
            self.head.kill()  # __exit__ runs only once __enter__ has returned
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.head.kill()

    def search(self, name: str, *args: str):
        """A search told what the cluster may grow to: the config its autoscaler has."""
        flags = ("--shared-storage", "--cluster-config", str(self.config))
        return search(self.address, self.env, self.tmp, name, *flags, *args)


def run_folder(tmp: Path, name: str) -> tuple[pd.DataFrame, dict]:
    run = tmp / "runs" / name
    return pd.read_csv(run / TRIALS_CSV), json.loads((run / RUN_JSON).read_text())


def test_waiting_trials_make_the_autoscaler_add_nodes(tmp_path):
    workers = {"cpu_worker": worker_type({"CPU": 1}, max_workers=2)}
    with AutoscalingHead(tmp_path, workers) as cluster:
        code, out, err = finish(cluster.search("grow", "--trials", "6", *TINY), timeout=600)
    assert code == 0, err[-3000:]
    table, info = run_folder(tmp_path, "grow")
    assert len(table) == 6 and set(table["status"]) == {"completed"}
    # Three trial slots: the head's and two added nodes'; trials ran on added nodes.
    assert table["node"].nunique() >= 2, table["node"]
    assert "waiting for nodes" in err  # the progress line said why trials waited


def test_a_gpu_no_node_has_yet_is_waited_for(tmp_path):
    workers = {"gpu_worker": worker_type({"CPU": 1, "GPU": 1}, max_workers=1)}
    with AutoscalingHead(tmp_path, workers) as cluster:
        proc = cluster.search("gpu", "--trials", "2", "--gpus-per-trial", "0.5", *TINY)
        code, out, err = finish(proc, timeout=600)
    assert code == 0, err[-3000:]
    assert "waiting for the autoscaler to start one of type gpu_worker" in err
    table, info = run_folder(tmp_path, "gpu")
    assert len(table) == 2 and set(table["status"]) == {"completed"}
    if torch.cuda.is_available():  # the added node's GPU is the machine's first
        assert set(table["device"]) == {"cuda"} and info["devices"] == {"cuda": 2}
        assert "no CUDA device" not in err
    else:  # the GPU share trained on the CPU, and the run says so
        assert set(table["device"]) == {"cpu"} and info["devices"] == {"cpu": 2}
        assert "had a GPU share but no CUDA device" in err


def test_without_an_autoscaler_a_missing_gpu_is_refused(tmp_path):
    env = token_env()
    port = free_port()
    head = Node.head(
        port, env, tmp_path / "head.log", "--include-dashboard=false", "--num-gpus", "0"
    )
    try:
        wait_for_nodes(f"127.0.0.1:{port}", env, 1, tmp_path)
        proc = search(f"127.0.0.1:{port}", env, tmp_path, "nogpu", "--gpus-per-trial", "1")
        code, out, err = finish(proc)
    finally:
        head.kill()
    assert code == 2 and err.strip().count("\n") == 0, err
    assert "--gpus-per-trial 1 but no node in the Ray cluster has more than 0 GPU" in err
    assert not (tmp_path / "runs" / "nogpu").exists()


def test_a_quarter_gpu_each_packs_four_trials_on_one_gpu(tmp_path):
    env = token_env()
    port = free_port()
    head = Node.head(
        port, env, tmp_path / "head.log", "--include-dashboard=false", "--num-gpus", "1", cpus=4
    )
    try:
        wait_for_nodes(f"127.0.0.1:{port}", env, 1, tmp_path)
        proc = search(
            f"127.0.0.1:{port}", env, tmp_path, "quarter", "--trials", "4",
            "--gpus-per-trial", "0.25", *TINY,
        )  # fmt: skip
        code, out, err = finish(proc, timeout=600)
    finally:
        head.kill()
    assert code == 0, err[-3000:]
    table, info = run_folder(tmp_path, "quarter")
    # A logical GPU where the machine has no CUDA (trained on the CPU), else its first.
    device = "cuda" if torch.cuda.is_available() else "cpu"
    assert len(table) == 4 and set(table["device"]) == {device}
    # All four ran at once: each one's training overlaps every other's.
    spans = []
    for trial_id in table["trial_id"]:
        path = tmp_path / "runs" / "quarter" / f"trial_{trial_id}" / "result.json"
        reports = [json.loads(line) for line in path.read_text().splitlines() if line]
        first = reports[0]
        spans.append((first["timestamp"] - first["time_this_iter_s"], reports[-1]["timestamp"]))
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans
