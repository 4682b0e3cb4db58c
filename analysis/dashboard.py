"""`python -m analysis.dashboard RUN_OR_URL`: Optuna's own dashboard on a search's study.

RUN_OR_URL is a run folder (its run.json says where its study is) or a database URL.
optuna-dashboard serves on 127.0.0.1 only (reach it from elsewhere through an SSH
tunnel), and it reads while the search writes:

- a database (PostgreSQL) is read directly: it is made for concurrent readers;
- a run folder's SQLite file is never opened by the dashboard. A reader of a live SQLite
  file can block the search's writes, and optuna-dashboard on one shows broken studies
  (optuna-dashboard issue 545). It reads a snapshot instead, a consistent copy taken with
  SQLite's online backup and refreshed every few seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path

from search import study as st
from search.errors import UserError
from search.run_record import RUN_JSON, RunRecord

EXIT_USER_ERROR = 2
REFRESH_SECONDS = 5.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.dashboard",
        description="Serve optuna-dashboard on a search's Optuna study, on 127.0.0.1.",
    )
    parser.add_argument("source", help="run folder, or the study's database URL")
    parser.add_argument("--study", help="open this study (default: the run's, or the list)")
    parser.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    args = parser.parse_args(argv)
    try:
        with _readable_storage(args.source) as (url, name):
            storage = st.open_storage(url)
            name = args.study or name
            page = _study_page(storage, name, args.port)
            shown = st.without_password(args.source)
            print(f"optuna-dashboard on {shown}, study {name or '(all)'}: {page}", flush=True)
            print("Ctrl-C stops it.", file=sys.stderr, flush=True)
            _serve(storage, args.port)
    except UserError as exc:
        print(f"analysis.dashboard: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        pass
    return 0


class _readable_storage:
    """(URL the dashboard may read, study name or None) for a run folder or a URL; for a
    SQLite study, the URL of a snapshot kept fresh while the dashboard runs."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._stop = threading.Event()
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> tuple[str, str | None]:
        folder = Path(self.source).expanduser()
        if "://" in self.source:
            url, name = self.source, None
        elif (folder / RUN_JSON).is_file():
            ref = st.ref_of_run(folder, RunRecord.read(folder))
            if "***" in ref.url:
                raise UserError(
                    f"{folder}'s study is in {ref.url}; run.json keeps no password: pass "
                    "the database URL instead"
                )
            url, name = ref.url, ref.name
        else:
            raise UserError(f"{self.source} is neither a run folder nor a database URL")
        live = st.sqlite_path(url)
        if live is None:
            return url, name
        if not live.is_file():
            raise UserError(f"no study file {live}")
        self._tmp = tempfile.TemporaryDirectory(prefix="study-snapshot-")
        snapshot = Path(self._tmp.name) / st.STUDY_DB
        st.sqlite_snapshot(live, snapshot)
        threading.Thread(target=self._refresh, args=(live, snapshot), daemon=True).start()
        return st.sqlite_url(snapshot), name

    def _refresh(self, live: Path, snapshot: Path) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            st.sqlite_snapshot(live, snapshot)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._tmp is not None:
            self._tmp.cleanup()


def _study_page(storage, name: str | None, port: int) -> str:
    """The dashboard's page of study `name`, or its list of studies."""
    base = f"http://127.0.0.1:{port}/dashboard/"
    if name is None:
        return base
    try:
        return f"{base}studies/{storage.get_study_id_from_name(name)}"
    except KeyError:  # Optuna's "no such study"
        raise UserError(f"no study {name!r} there") from None


def _serve(storage, port: int) -> None:
    import optuna_dashboard

    try:
        optuna_dashboard.run_server(storage, host="127.0.0.1", port=port)
    except OSError as exc:  # e.g. the port is taken
        raise UserError(f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc}") from None


if __name__ == "__main__":
    sys.exit(main())
