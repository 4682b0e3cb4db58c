"""Connecting to Ray: a fresh local instance, or an existing cluster by address."""

from __future__ import annotations

import logging
import os
import socket

import ray

from search.errors import UserError

_TOKEN_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"


def connect(address: str | None) -> None:
    """Start a fresh local Ray (address None) or join the cluster at `address`.

    `ray.init()` with no address would join whatever cluster the last `ray start --head`
    recorded on this machine, even a dead one; "local" always starts a new instance.
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    common = dict(
        logging_level=logging.WARNING,
        # Trials report through Tune; their own stdout/stderr (e.g. the SIGTERM a
        # trial stopped by ASHA receives) would only be noise on the driver's terminal.
        log_to_driver=False,
        configure_logging=True,
    )
    if address is None:
        # A fresh local instance turns Ray's token authentication on and says so on every
        # start; nothing for the user to do about it, so that one notice is dropped.
        logging.getLogger(_TOKEN_NOTICE_LOGGER).setLevel(logging.ERROR)
        ray.init(address="local", include_dashboard=False, **common)
        return
    _check_reachable(address)
    try:
        ray.init(address=address, **common)
    except ConnectionError as exc:
        raise UserError(f"cannot join the Ray cluster at {address}: {_first_line(exc)}") from None


def _check_reachable(address: str) -> None:
    """Fail in seconds, not minutes, when nothing listens at host:port."""
    if address == "auto":
        return
    host_port = address.removeprefix("ray://")
    host, sep, port = host_port.rpartition(":")
    if not sep or not port.isdigit():
        raise UserError(f"--address {address!r} is not host:port, ray://host:port or 'auto'")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except OSError as exc:
        raise UserError(f"no Ray cluster answers at {address}: {exc.strerror or exc}") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def largest_node(resource: str) -> float:
    """The most of `resource` any single alive node offers (a trial must fit on one node)."""
    return max(
        (node["Resources"].get(resource, 0.0) for node in ray.nodes() if node["Alive"]),
        default=0.0,
    )


def alive_nodes() -> int:
    return sum(node["Alive"] for node in ray.nodes())


def shutdown() -> None:
    if ray.is_initialized():
        ray.shutdown()


def trial_slots(cpus_per_trial: float, gpus_per_trial: float) -> int:
    """How many trials of this shape the cluster can run at once (at least one)."""
    total = ray.cluster_resources()
    slots = total.get("CPU", 0.0) // cpus_per_trial
    if gpus_per_trial > 0:
        slots = min(slots, total.get("GPU", 0.0) // gpus_per_trial)
    return max(1, int(slots))
