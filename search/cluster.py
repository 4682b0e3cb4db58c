"""Connecting to Ray: a fresh local instance, or an existing cluster by address."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator

import ray

from search.errors import UserError
from search.signals import around_ray_init

# A fresh local instance turns Ray's token authentication on and warns so on every start;
# nothing for the user to do about it, so that one warning is dropped.
_TOKEN_NOTICE = "Token authentication is enabled for this Ray cluster"
# A joined cluster's head that refuses connections this long is gone. Ray itself ends a
# driver that lost its head after 60 s, from C++, with no word of what to do next.
HEAD_LOST_SECONDS = 20.0
HEAD_CHECK_SECONDS = 2.0


def connect(address: str | None) -> bool:
    """Start a fresh local Ray (address None) or join the cluster at `address`; True
    when an existing cluster was joined.

    `ray.init()` with no address would join whatever cluster the last `ray start --head`
    recorded on this machine, even a dead one; "local" always starts a new instance.
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    # Older Ray releases hid the GPUs from a task that asked for none, and warned at every
    # start that they would stop (ray#54868); newer ones no longer hide them. Trials pick
    # their device from the GPUs Ray gave them (search.trainable), so the newer way is
    # taken on every supported release, and the warning goes.
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    common = dict(
        logging_level=logging.WARNING,
        # Trials report through Tune; their own stdout/stderr (e.g. the SIGTERM a
        # trial stopped by ASHA receives) would only be noise on the driver's terminal.
        log_to_driver=False,
        configure_logging=True,
    )
    if address is None:
        with _without_token_notice(), around_ray_init():
            ray.init(address="local", include_dashboard=False, **common)
        return False
    _check_reachable(address)
    # Ray's C++ client prints a warning a second while it retries a cluster that refuses
    # it; keep those off the terminal and turn them into one line if joining fails.
    with _stderr_captured() as captured:
        try:
            with around_ray_init():
                ray.init(address=address, **common)
            return True
        except ConnectionError as exc:
            failure = exc
    if b"InvalidAuthToken" in captured():
        raise UserError(
            f"the Ray cluster at {address} rejected our authentication token; set "
            "RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN, or the file "
            "~/.ray/auth_token) as on its nodes"
        )
    raise UserError(f"cannot join the Ray cluster at {address}: {_first_line(failure)}")


@contextlib.contextmanager
def _without_token_notice() -> Iterator[None]:
    """Drop Ray's token notice while the block runs: Ray's loggers hand their records to
    the handlers of the "ray" logger (and to no others), where a filter sees them all."""

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_TOKEN_NOTICE)

    handlers = list(logging.getLogger("ray").handlers)
    for handler in handlers:
        handler.addFilter(keep)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(keep)


@contextlib.contextmanager
def _stderr_captured() -> Iterator[Callable[[], bytes]]:
    """Redirect file descriptor 2 (Python's and C++'s stderr) to a temporary file.

    Yields a function that returns what was written, usable after the block ends.
    """
    written = b""
    with tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield lambda: written
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            written = sink.read()


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


def watch_head(on_lost: Callable[[str], None]) -> None:
    """Call `on_lost(address)`, from a thread of its own, once the joined cluster's head
    (its GCS) has refused connections for HEAD_LOST_SECONDS: `on_lost` should say what
    to do and end the process before Ray does."""
    address = ray.get_runtime_context().gcs_address
    host, _, port = address.rpartition(":")

    def watch() -> None:
        down_since = None
        while ray.is_initialized():
            try:
                with socket.create_connection((host, int(port)), timeout=5):
                    down_since = None
            except OSError:
                down_since = down_since or time.monotonic()
                if time.monotonic() - down_since >= HEAD_LOST_SECONDS:
                    on_lost(address)
                    return
            time.sleep(HEAD_CHECK_SECONDS)

    threading.Thread(target=watch, name="ray-head-watch", daemon=True).start()


def shutdown() -> None:
    if ray.is_initialized():
        ray.shutdown()
