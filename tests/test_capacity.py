"""What the cluster holds now and once its autoscaler has grown it (search.capacity): the
autoscaler config the user names, and the checks made on it before a search: how many
trials at once, waiting for a node, refusing a trial."""

import json

import pytest

from search import capacity as capacity_module
from search.capacity import (
    UNLIMITED,
    Autoscaling,
    Capacity,
    NodeType,
    TrialShape,
    check_resources,
    check_storage_is_shared,
    measure,
    read_cluster_config,
    trial_slots,
)
from search.errors import UserError
from search.storage import RunLocation
from tests.conftest import REPO

HEAD = {"CPU": 2.0}
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


def test_workers_up_count_against_the_cap_on_all_workers():
    cpu = NodeType("cpu", {"CPU": 4.0}, 5)
    worker = {"CPU": 4.0}
    assert Capacity([HEAD, worker], [cpu], max_workers=3).slots_at_most(CPU_ONLY) == 2 + 4 + 2 * 4
    full = [HEAD, worker, worker, worker]
    assert Capacity(full, [cpu], max_workers=3).slots_at_most(CPU_ONLY) == 2 + 3 * 4
    # A type whose nodes are not known yet may hold the most: unknown, unless at the cap.
    unknown = NodeType("any", {}, 4)
    assert Capacity(full, [cpu, unknown], max_workers=3).slots_at_most(CPU_ONLY) == 14
    assert Capacity(full[:2], [cpu, unknown], max_workers=3).slots_at_most(CPU_ONLY) is None


def test_cluster_yaml_says_what_the_cluster_grows_to_before_any_worker_is_up():
    stated = read_cluster_config(REPO / "cluster.yaml")
    types = {t.name: t for t in stated.node_types}
    assert set(types) == {"cpu_workers", "gpu_workers"}  # the head is not a type to add
    assert stated.max_workers == 10
    head = {"CPU": 0.0}  # cluster.yaml's head runs no trials
    capacity = Capacity([head], stated.node_types, stated.max_workers)
    assert capacity.slots_at_most(CPU_ONLY) == 8 * 16 + 2 * 4
    assert capacity.slots_at_most(QUARTER_GPU) == 2 * 4


def _write_config(path, node_types: dict, **top) -> None:
    config = {"head_node_type": "head", "available_node_types": {"head": {}, **node_types}}
    path.write_text(json.dumps({**config, **top}))  # JSON: YAML reads it too


def test_a_node_type_without_max_workers_is_bounded_by_the_cap_alone(tmp_path):
    path = tmp_path / "autoscaling.json"
    _write_config(path, {"cpu": {"resources": {"CPU": 2}}}, max_workers=3)
    stated = read_cluster_config(path)
    assert stated == Autoscaling([NodeType("cpu", {"CPU": 2.0}, UNLIMITED)], 3)
    assert Capacity([HEAD], stated.node_types, stated.max_workers).slots_at_most(CPU_ONLY) == 8
    _write_config(path, {"cpu": {"resources": {"CPU": 2}}})  # and no cap: no bound
    stated = read_cluster_config(path)
    assert stated.max_workers is None
    assert Capacity([HEAD], stated.node_types).slots_at_most(CPU_ONLY) is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (None, "cannot read --cluster-config"),
        ("a: [b", "is not YAML"),
        ("[1, 2]", "has no available_node_types"),
        ("max_workers: 2", "has no available_node_types"),
        ("available_node_types: {w: {}}", "head_node_type is none of"),
        ("head_node_type: h\navailable_node_types: {h: {}, w: {max_workers: -1}}", "max_work"),
        ("head_node_type: h\navailable_node_types: {h: {}}\nmax_workers: many", "'many'"),
        (
            "head_node_type: h\navailable_node_types: {h: {}, w: {resources: {CPU: x}}}",
            "not a Ray cluster config: could not convert",
        ),
        ("head_node_type: h\navailable_node_types: {h: {}, w: 3}", "node type w is not a"),
    ],
)
def test_a_file_that_is_no_autoscaler_config_is_refused_in_one_line(tmp_path, text, says):
    path = tmp_path / "cluster.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(UserError) as refused:
        read_cluster_config(path)
    message = str(refused.value)
    assert says in message and str(path) in message and "\n" not in message, message


def test_what_the_user_states_decides_whether_the_cluster_grows(monkeypatch):
    monkeypatch.setattr(capacity_module, "_alive_nodes", lambda: [HEAD])
    grows = Autoscaling([NodeType("cpu", {"CPU": 4.0}, 2)], 2)
    fixed = Autoscaling([NodeType("cpu", {"CPU": 4.0}, 0)], 0)  # every type at most 0
    assert measure() == Capacity([HEAD])
    assert measure(assume_autoscaler=True) == Capacity([HEAD], [])
    assert measure(stated=grows) == Capacity([HEAD], grows.node_types, 2)
    assert measure(stated=fixed) == Capacity([HEAD])
    assert measure(True, fixed) == Capacity([HEAD], fixed.node_types, 0)


def test_concurrency_follows_the_cluster_at_its_largest_and_the_trials():
    grows = Capacity([HEAD], [NodeType("cpu", {"CPU": 4.0}, 3)])
    assert trial_slots(grows, CPU_ONLY, 50) == 14
    assert trial_slots(grows, CPU_ONLY, 6) == 6
    unknown = Capacity([HEAD], [])  # --autoscaler, and no node types stated
    assert trial_slots(unknown, CPU_ONLY, 20) == 20
    assert trial_slots(Capacity([HEAD]), CPU_ONLY, 50) == 2
    assert trial_slots(Capacity([{"CPU": 0.0}]), CPU_ONLY, 50) == 1  # one waits, at least


def test_a_trial_no_node_holds_yet_is_waited_for_when_a_node_type_holds_it(capsys):
    capacity = Capacity([HEAD], [NodeType("gpu", {"CPU": 4.0, "GPU": 1.0}, 1)])
    check_resources(capacity, TrialShape(1, 0.5))
    assert "waiting for the autoscaler to start one of type gpu" in capsys.readouterr().err


def test_a_trial_no_node_or_node_type_holds_is_refused():
    without_gpu = Capacity([HEAD], [NodeType("cpu", {"CPU": 4.0}, 2)])
    with pytest.raises(UserError, match="nor any node type of its autoscaler"):
        check_resources(without_gpu, TrialShape(1, 1))
    with pytest.raises(UserError, match="--gpus-per-trial 1 but no node in the Ray cluster has"):
        check_resources(Capacity([HEAD]), TrialShape(1, 1))
    with pytest.raises(UserError, match="--cpus-per-trial 4 but no node .* more than 2 CPU"):
        check_resources(Capacity([HEAD]), TrialShape(4))


def test_a_cpu_and_a_gpu_on_different_nodes_do_not_make_a_trial():
    capacity = Capacity([{"CPU": 4.0}, {"CPU": 1.0, "GPU": 1.0}])
    with pytest.raises(UserError, match="both 2 CPU"):
        check_resources(capacity, TrialShape(2, 1))


def test_a_cluster_that_may_grow_needs_shared_storage(tmp_path):
    capacity = Capacity([HEAD], [NodeType("cpu", {"CPU": 4.0}, 2)])
    run_dir = RunLocation.open(tmp_path, "r")
    with pytest.raises(UserError, match="may add nodes"):
        check_storage_is_shared(capacity, run_dir, shared_storage=False)
    check_storage_is_shared(capacity, run_dir, shared_storage=True)
    check_storage_is_shared(Capacity([HEAD]), run_dir, shared_storage=False)  # one node
    with pytest.raises(UserError, match="has 2 nodes"):
        check_storage_is_shared(Capacity([HEAD, HEAD]), run_dir, shared_storage=False)
