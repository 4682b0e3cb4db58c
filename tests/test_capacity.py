"""What the cluster holds now and once its autoscaler has grown it (search.capacity), and
the driver's decisions on it: concurrency, waiting for a node, refusing a trial."""

import sys
from pathlib import Path

import pytest
import yaml

from search import driver
from search.capacity import (
    HEAD_RESOURCE,
    UNLIMITED,
    Capacity,
    NodeType,
    TrialShape,
    autoscaler_config,
    node_types_of,
)
from search.config import SearchConfig
from search.errors import UserError
from tests.conftest import REPO

HEAD = {"CPU": 2.0, HEAD_RESOURCE: 1.0}
CPU_ONLY = TrialShape(cpus=1)
QUARTER_GPU = TrialShape(cpus=1, gpus=0.25)


def test_a_node_holds_trials_by_its_scarcest_resource():
    assert CPU_ONLY.fits_in({"CPU": 4}) == 4
    assert QUARTER_GPU.fits_in({"CPU": 8, "GPU": 1}) == 4  # 1 / 0.25 is 4, not 3.99
    assert QUARTER_GPU.fits_in({"CPU": 2, "GPU": 1}) == 2
    assert QUARTER_GPU.fits_in({"CPU": 8}) == 0
    assert TrialShape(cpus=1.5).fits_in({"CPU": 4}) == 2


def test_without_an_autoscaler_the_cluster_is_what_is_up():
    capacity = Capacity([HEAD, {"CPU": 3.0}])
    assert not capacity.grows
    assert capacity.slots_now(CPU_ONLY) == 5
    assert capacity.slots_at_most(CPU_ONLY) == 5
    assert capacity.may_have_several_nodes()
    assert not Capacity([HEAD]).may_have_several_nodes()


def test_an_autoscaler_adds_its_node_types_up_to_their_maxima():
    types = [NodeType("cpu", {"CPU": 4.0}, 3), NodeType("gpu", {"CPU": 4.0, "GPU": 1.0}, 2)]
    capacity = Capacity([HEAD], types)
    assert capacity.grows and capacity.may_have_several_nodes()
    assert capacity.slots_now(CPU_ONLY) == 2
    assert capacity.slots_at_most(CPU_ONLY) == 2 + 3 * 4 + 2 * 4
    assert capacity.slots_at_most(QUARTER_GPU) == 2 * 4  # only the GPU type holds one
    assert capacity.node_type_for(QUARTER_GPU).name == "gpu"
    assert capacity.node_type_for(TrialShape(cpus=8)) is None


def test_the_cap_on_all_workers_fills_the_roomiest_types_first():
    types = [NodeType("small", {"CPU": 1.0}, 5), NodeType("big", {"CPU": 8.0}, 2)]
    capacity = Capacity([HEAD], types, max_workers=3)
    assert capacity.slots_at_most(CPU_ONLY) == 2 + 2 * 8 + 1 * 1


def test_unknown_maxima_are_unknown():
    unlimited = Capacity([HEAD], [NodeType("any", {"CPU": 4.0}, UNLIMITED)])
    assert unlimited.slots_at_most(CPU_ONLY) is None
    capped = Capacity([HEAD], [NodeType("any", {"CPU": 4.0}, UNLIMITED)], max_workers=2)
    assert capped.slots_at_most(CPU_ONLY) == 2 + 8
    detected_at_launch = Capacity([HEAD], [NodeType("any", {}, 4)])
    assert detected_at_launch.slots_at_most(CPU_ONLY) is None


def test_cluster_yaml_node_types_are_known_before_any_node_is_up():
    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    types = {t.name: t for t in node_types_of(config)}
    assert set(types) == {"cpu_workers", "gpu_workers"}  # the head is not a type to add
    head = {"CPU": 0.0, HEAD_RESOURCE: 1.0}
    capacity = Capacity([head], list(types.values()), config["max_workers"])
    assert capacity.slots_at_most(CPU_ONLY) == 8 * 16 + 2 * 4
    assert capacity.slots_at_most(QUARTER_GPU) == 2 * 4


def _config(**flags) -> SearchConfig:
    return SearchConfig(**{"trials": 50, **flags})


def test_concurrency_follows_the_cluster_at_its_largest_and_the_trials():
    grows = Capacity([HEAD], [NodeType("cpu", {"CPU": 4.0}, 3)])
    assert driver._trial_slots(_config(), grows, CPU_ONLY) == 14
    assert driver._trial_slots(_config(trials=6), grows, CPU_ONLY) == 6
    unknown = Capacity([HEAD], [])  # --autoscaler, and no node types found
    assert driver._trial_slots(_config(trials=20), unknown, CPU_ONLY) == 20
    assert driver._trial_slots(_config(), Capacity([HEAD]), CPU_ONLY) == 2


def test_a_trial_no_node_holds_yet_is_waited_for_when_a_node_type_holds_it(capsys):
    capacity = Capacity([HEAD], [NodeType("gpu", {"CPU": 4.0, "GPU": 1.0}, 1)])
    driver._check_resources(_config(gpus_per_trial=0.5), capacity, TrialShape(1, 0.5))
    assert "waiting for the autoscaler to start one of type gpu" in capsys.readouterr().err


def test_a_trial_no_node_or_node_type_holds_is_refused():
    without_gpu = Capacity([HEAD], [NodeType("cpu", {"CPU": 4.0}, 2)])
    with pytest.raises(UserError, match="nor any node type of its autoscaler"):
        driver._check_resources(_config(gpus_per_trial=1), without_gpu, TrialShape(1, 1))
    with pytest.raises(UserError, match="--gpus-per-trial 1 but no node in the Ray cluster has"):
        driver._check_resources(_config(gpus_per_trial=1), Capacity([HEAD]), TrialShape(1, 1))


def test_a_cpu_and_a_gpu_on_different_nodes_do_not_make_a_trial():
    capacity = Capacity([{"CPU": 4.0}, {"CPU": 1.0, "GPU": 1.0}])
    with pytest.raises(UserError, match="both 2 CPU"):
        driver._check_resources(
            _config(cpus_per_trial=2, gpus_per_trial=1), capacity, TrialShape(2, 1)
        )


def test_a_cluster_that_may_grow_needs_shared_storage(tmp_path):
    capacity = Capacity([HEAD], [NodeType("cpu", {"CPU": 4.0}, 2)])
    config = _config(storage_path=str(tmp_path))
    run_dir = driver.RunLocation.open(config.storage_path, "r")
    with pytest.raises(UserError, match="may add nodes"):
        driver._check_storage_is_shared(config, run_dir, capacity)
    shared = _config(storage_path=str(tmp_path), shared_storage=True)
    driver._check_storage_is_shared(shared, run_dir, capacity)


def _fake_proc(root: Path, processes: dict[int, list[str]]) -> Path:
    for pid, args in processes.items():
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "cmdline").write_bytes("\0".join(args).encode() + b"\0")
    (root / "self").mkdir()  # not a pid: skipped
    return root


def test_the_autoscaler_config_is_read_from_the_monitors_command_line(tmp_path):
    config_file = tmp_path / "bootstrap.yaml"
    config_file.write_text(yaml.safe_dump({"max_workers": 3, "available_node_types": {}}))
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"max_workers": 9}))
    monitor = [
        "python",
        "-u",
        "/venv/lib/python3.11/site-packages/ray/autoscaler/_private/monitor.py",
    ]
    proc = _fake_proc(
        tmp_path / "proc",
        {
            10: ["/venv/bin/python", "-u", "raylet"],
            # Another cluster's autoscaler on the same machine: not ours.
            11: [*monitor, "--gcs-address=10.0.0.1:7000", f"--autoscaling-config={other}"],
            12: [
                *monitor,
                "--gcs-address",
                "10.0.0.1:6379",
                f"--autoscaling-config={config_file}",
            ],
        },
    )
    path, config = autoscaler_config("10.0.0.1:6379", proc)
    assert path == str(config_file) and config["max_workers"] == 3
    assert autoscaler_config("10.0.0.2:6379", proc) is None


def test_a_monitor_without_an_autoscaling_config_means_no_autoscaler(tmp_path):
    monitor = "/venv/lib/python3.11/site-packages/ray/autoscaler/_private/monitor.py"
    args = ["python", "-u", monitor, "--logs-dir=/x", "--gcs-address=10.0.0.1:6379"]
    proc = _fake_proc(tmp_path / "proc", {11: args})
    assert autoscaler_config("10.0.0.1:6379", proc) is None


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_the_real_proc_of_this_machine_is_readable():
    # Every process of this machine is looked at; none is a monitor of this address.
    assert autoscaler_config("192.0.2.255:1") is None
