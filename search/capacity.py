"""How many trials the Ray cluster holds: now, and once its autoscaler has grown it; and
the checks the driver makes on that before a search starts.

Ray's autoscaler starts a node only for work that waits for one. A search that caps its
concurrency at the nodes up now leaves no trial waiting, so the cluster never grows, and
one that asks for a GPU no node has yet would be refused. So the driver needs to know
what the cluster can become: the worker node types the autoscaler may start, each with
its resources and its maximum count, and its cap on workers of all types.

No public Ray API tells a driver that (the autoscaler's config lives on the head, with
the autoscaler), so the user states it: `--cluster-config PATH` names the config the
cluster was started with (cluster.yaml of `ray up`, the file of `ray start --head
--autoscaling-config`), or `--autoscaler` says the cluster grows without saying to what.
The nodes up now come from `ray.nodes()`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import ray

from search.errors import UserError

if TYPE_CHECKING:
    from search.storage import RunLocation

UNLIMITED = -1  # a node type's max_count when only the cap on all workers bounds it


@dataclass(frozen=True)
class TrialShape:
    """What one trial reserves, all on one node."""

    cpus: float
    gpus: float = 0.0

    def fits_in(self, resources: Mapping[str, float]) -> int:
        """How many such trials a node with `resources` runs at once."""
        # A hair of tolerance: 1.0 / 0.25 must be 4, not 3.999...
        count = math.floor(resources.get("CPU", 0.0) / self.cpus + 1e-9)
        if self.gpus > 0:
            count = min(count, math.floor(resources.get("GPU", 0.0) / self.gpus + 1e-9))
        return max(count, 0)


@dataclass(frozen=True)
class NodeType:
    """A kind of worker node the autoscaler may start."""

    name: str
    resources: dict[str, float]  # one node's, e.g. {"CPU": 8, "GPU": 1}; {}: not known
    max_count: int  # UNLIMITED, or at most this many at once


@dataclass(frozen=True)
class Autoscaling:
    """What an autoscaler config lets the cluster grow to."""

    node_types: list[NodeType]  # the worker types; the head's is not one to add
    max_workers: int | None  # the cap on workers of all types; None: the config has none


@dataclass(frozen=True)
class Capacity:
    """The cluster's alive nodes and, if it has an autoscaler, what it may add."""

    nodes: list[dict[str, float]]  # each alive node's total resources, the head's among them
    node_types: list[NodeType] | None = None  # None: the cluster does not grow
    max_workers: int | None = None  # the autoscaler's cap on worker nodes, all types

    @classmethod
    def of_alive_nodes(cls) -> Capacity:
        """The nodes up now, and no autoscaler."""
        return cls(_alive_nodes())

    @property
    def grows(self) -> bool:
        return self.node_types is not None

    def slots_now(self, shape: TrialShape) -> int:
        return sum(shape.fits_in(node) for node in self.nodes)

    def slots_at_most(self, shape: TrialShape) -> int | None:
        """Trials the cluster holds at its largest; None when that is not known.

        The nodes up now, and the workers the autoscaler may still add: its cap on all
        workers less those up (every node but the head), of each type at most its
        maximum, the types that hold the most trials first. Which type a worker up is,
        no public API says, so none counts against its type's maximum: once workers are
        up, this may count more than the cluster holds, never less.
        """
        total = self.slots_now(shape)
        if not self.grows:
            return total
        if not self.node_types:
            return None  # --autoscaler said it grows; to what, nothing says
        workers_left = None
        if self.max_workers is not None:
            workers_left = max(self.max_workers - (len(self.nodes) - 1), 0)
            if workers_left == 0:
                return total  # at the cap already: whatever the types, none is added
        for node_type in sorted(self.node_types, key=lambda t: -shape.fits_in(t.resources)):
            if node_type.max_count == 0:
                continue
            if not node_type.resources:
                return None  # the autoscaler detects them at launch; we cannot know
            per_node = shape.fits_in(node_type.resources)
            if per_node == 0:
                continue
            if node_type.max_count == UNLIMITED and workers_left is None:
                return None
            count = node_type.max_count if node_type.max_count != UNLIMITED else workers_left
            if workers_left is not None:
                count = min(count, workers_left)
                workers_left -= count
            total += count * per_node
        return total

    def largest_now(self, resource: str) -> float:
        """The most of `resource` on any one alive node (a trial must fit on one)."""
        return max((node.get(resource, 0.0) for node in self.nodes), default=0.0)

    def node_type_for(self, shape: TrialShape) -> NodeType | None:
        """A node type the autoscaler may start that holds a trial of `shape`."""
        for node_type in self.node_types or []:
            if node_type.max_count != 0 and shape.fits_in(node_type.resources) > 0:
                return node_type
        return None

    def may_have_several_nodes(self) -> bool:
        if len(self.nodes) > 1:
            return True
        return self.grows and (
            not self.node_types or any(t.max_count != 0 for t in self.node_types)
        )


def measure(assume_autoscaler: bool = False, stated: Autoscaling | None = None) -> Capacity:
    """The connected cluster's capacity: its nodes up now, and what the user says it may
    grow to: `stated` (read from --cluster-config), or `assume_autoscaler` (--autoscaler:
    it grows, to what nothing says)."""
    nodes = _alive_nodes()
    may_add = stated is not None and any(t.max_count != 0 for t in stated.node_types)
    if stated is not None and (may_add or assume_autoscaler):
        return Capacity(nodes, stated.node_types, stated.max_workers)
    if assume_autoscaler:
        return Capacity(nodes, [])
    return Capacity(nodes)


def _alive_nodes() -> list[dict[str, float]]:
    return [dict(node["Resources"]) for node in ray.nodes() if node["Alive"]]


def read_cluster_config(path: Path) -> Autoscaling:
    """The worker node types and the cap on all workers of the autoscaler config at
    `path` (cluster.yaml's schema; JSON too). A file that cannot be read, or is no such
    config, is the user's to fix: one line, which says why."""
    import yaml  # a Ray dependency; JSON parses as YAML too

    try:
        config = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise UserError(f"cannot read --cluster-config {path}: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise UserError(f"--cluster-config {path} is not YAML: {reason}") from None
    try:
        return _autoscaling_of(config)
    except (TypeError, ValueError, AttributeError) as exc:
        raise UserError(f"--cluster-config {path} is not a Ray cluster config: {exc}") from None


def _autoscaling_of(config: object) -> Autoscaling:
    """What an autoscaler config (cluster.yaml's schema) lets the cluster grow to. As Ray
    reads it: a node type without max_workers is bounded by the cap on all workers only."""
    if not isinstance(config, Mapping) or not isinstance(
        config.get("available_node_types"), Mapping
    ):
        raise ValueError("it has no available_node_types")
    if config.get("head_node_type") not in config["available_node_types"]:
        raise ValueError("its head_node_type is none of its available_node_types")
    cap = config.get("max_workers")
    return Autoscaling(_worker_types(config), None if cap is None else _count(cap))


def _worker_types(config: Mapping) -> list[NodeType]:
    """The worker node types of an autoscaler config (cluster.yaml's schema)."""
    found = []
    for name, spec in config["available_node_types"].items():
        if name == config.get("head_node_type"):
            continue
        if not isinstance(spec, Mapping):
            raise ValueError(f"its node type {name} is not a mapping")
        resources = {key: float(value) for key, value in (spec.get("resources") or {}).items()}
        cap = spec.get("max_workers")
        found.append(NodeType(name, resources, UNLIMITED if cap is None else _count(cap)))
    return found


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"max_workers {value!r} is not a count of nodes")
    return value


def check_resources(capacity: Capacity, shape: TrialShape) -> None:
    """A trial that no node can hold would wait forever: say so instead, unless the
    autoscaler can start a node that holds it, which is then waited for."""
    if capacity.slots_now(shape) > 0:
        return
    if capacity.grows:
        node_type = capacity.node_type_for(shape)
        if node_type is not None or not capacity.node_types:  # none known: trust --autoscaler
            which = f" of type {node_type.name}" if node_type else ""
            print(
                f"search.run: no node holds a trial ({shape.cpus:g} CPU, {shape.gpus:g} GPU) "
                f"yet; waiting for the autoscaler to start one{which}",
                file=sys.stderr,
            )
            return
    for resource, wanted, flag in (
        ("CPU", shape.cpus, "--cpus-per-trial"),
        ("GPU", shape.gpus, "--gpus-per-trial"),
    ):
        available = capacity.largest_now(resource)
        if wanted > available:
            also = " (nor any node type of its autoscaler)" if capacity.grows else ""
            raise UserError(
                f"{flag} {wanted:g} but no node in the Ray cluster{also} has more than "
                f"{available:g} {resource}(s)"
            )
    raise UserError(
        f"no node in the Ray cluster has both {shape.cpus:g} CPU(s) and {shape.gpus:g} GPU(s) "
        "for one trial (--cpus-per-trial, --gpus-per-trial)"
    )


def check_storage_is_shared(
    capacity: Capacity, run_dir: RunLocation, shared_storage: bool
) -> None:
    """On several nodes, trials write checkpoints where they run: storage must be shared.
    A cluster that may grow past one node counts as several."""
    if not capacity.may_have_several_nodes() or not run_dir.is_local or shared_storage:
        return
    nodes = len(capacity.nodes)
    has = f"has {nodes} nodes" if nodes > 1 else "may add nodes (it has an autoscaler)"
    raise UserError(
        f"the Ray cluster {has} but --storage-path {run_dir.storage} is a local folder; "
        "use an s3:// (or other) URI, or pass --shared-storage if every node sees that path"
    )


def trial_slots(capacity: Capacity, shape: TrialShape, trials: int) -> int:
    """Trials at once: as many as the cluster holds (once grown) and no more than the
    search's `trials`. Trials beyond today's nodes wait, and waiting trials are what make
    Ray's autoscaler start nodes."""
    slots = capacity.slots_at_most(shape)
    return max(1, min(trials, slots if slots is not None else trials))
