"""How many trials the Ray cluster holds: now, and once its autoscaler has grown it.

Ray's autoscaler starts a node only for work that waits for one. A search that caps its
concurrency at the nodes up now leaves no trial waiting, so the cluster never grows, and
one that asks for a GPU no node has yet would be refused. So the driver asks what the
cluster can become: the node types the autoscaler may start, each with its resources
and its maximum count.

Two places hold them. Ray's GCS keeps a `ClusterConfig` where a platform reports one
(Ray Data reads it the same way); the open-source autoscaler (`ray up`, or `ray start
--head --autoscaling-config=...`) does not report it, but runs on the head node with its
config file named on its command line, so a task pinned to the head reads that file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import ray

# Ray gives the head node this resource; a task asking for a sliver of it runs there.
HEAD_RESOURCE = "node:__internal_head__"
UNLIMITED = -1  # a node type's max_count when the autoscaler may start any number


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
class Capacity:
    """The cluster's alive nodes and, if it has an autoscaler, what it may add."""

    nodes: list[dict[str, float]]  # each alive node's total resources
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

        The head plus as many workers of each type as the autoscaler allows, the types
        that hold the most trials first while the cap on all workers lasts.
        """
        if not self.grows:
            return self.slots_now(shape)
        if not self.node_types:
            return None  # --autoscaler said it grows; to what, nothing says
        head = sum(shape.fits_in(node) for node in self.nodes if HEAD_RESOURCE in node)
        total, workers_left = head, self.max_workers
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


def measure(assume_autoscaler: bool = False) -> Capacity:
    """The connected cluster's capacity. `assume_autoscaler`: the user says the cluster
    grows even where no autoscaler config is found (e.g. KubeRay's, in its own pod)."""
    nodes = _alive_nodes()
    found = _from_cluster_config() or _from_monitor_on_head(nodes)
    if found is not None:
        node_types, max_workers = found
        if any(t.max_count != 0 for t in node_types) or assume_autoscaler:
            return Capacity(nodes, node_types, max_workers)
    if assume_autoscaler:
        return Capacity(nodes, [])
    return Capacity(nodes)


def _alive_nodes() -> list[dict[str, float]]:
    return [dict(node["Resources"]) for node in ray.nodes() if node["Alive"]]


def _from_cluster_config() -> tuple[list[NodeType], int | None] | None:
    # Asked by a task inside the cluster: a driver joined through Ray Client (ray://) has
    # no connection to the cluster's state of its own.
    read = ray.remote(num_cpus=0)(_node_groups)
    groups = ray.get(read.remote(), timeout=60)
    if not groups:
        return None
    node_types = [
        NodeType(name, resources, max_count)
        for name, resources, max_count in groups
        if HEAD_RESOURCE not in resources
    ]
    return node_types, None


def _node_groups() -> list[tuple[str, dict[str, float], int]]:
    """The node groups of the cluster's config, as the GCS keeps it (none: no config)."""
    config = ray._private.state.state.get_cluster_config()
    if config is None:
        return []
    return [
        (group.name, {k: float(v) for k, v in group.resources.items()}, group.max_count)
        for group in config.node_group_configs
    ]


def _from_monitor_on_head(
    nodes: list[dict[str, float]],
) -> tuple[list[NodeType], int | None] | None:
    if not any(HEAD_RESOURCE in node for node in nodes):
        return None  # no head to ask (a cluster without one is not Ray's)
    read = ray.remote(num_cpus=0, resources={HEAD_RESOURCE: 0.001})(autoscaler_config)
    found = ray.get(read.remote(ray.get_runtime_context().gcs_address), timeout=60)
    if found is None:
        return None
    _, config = found
    return node_types_of(config), config.get("max_workers")


def node_types_of(config: Mapping) -> list[NodeType]:
    """The worker node types of an autoscaler config (cluster.yaml's schema)."""
    head_type = config.get("head_node_type")
    return [
        NodeType(
            name,
            {key: float(value) for key, value in (spec.get("resources") or {}).items()},
            int(spec.get("max_workers", 0)),
        )
        for name, spec in (config.get("available_node_types") or {}).items()
        if name != head_type
    ]


def autoscaler_config(gcs_address: str, proc: Path = Path("/proc")) -> tuple[str, dict] | None:
    """The config of the autoscaler of the cluster at `gcs_address`, read from its file;
    None without one. Runs on the head node, where `ray start --head` started the
    monitor (a machine may run monitors of other clusters too: tests, a second head)."""
    import yaml  # a Ray dependency; JSON configs parse as YAML too

    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # gone, or not ours to read
        if not any(arg.endswith("monitor.py") and "autoscaler" in arg for arg in args):
            continue
        if _arg(args, "--gcs-address") != gcs_address:
            continue
        path = _arg(args, "--autoscaling-config")
        if path is None:
            continue  # a monitor without an autoscaler: the cluster does not grow
        path = os.path.expanduser(path)
        with open(path) as file:
            return path, yaml.safe_load(file) or {}
    return None


def _arg(args: list[str], flag: str) -> str | None:
    """The value of `flag` (`--flag=value` or `--flag value`) in a command line."""
    for i, arg in enumerate(args):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1] or None
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
    return None
