"""`run.json`: what a run folder says of its search, as one typed record.

The driver fills a `RunRecord` as the search goes (its study once the study is open,
its timings once the trials are over) and writes it with `save`; the analysis reads it
with `RunRecord.read`. A folder of another format version, or a run.json without one of
the fields, is refused in one line instead of being half read. No Ray here.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search import metrics as m
from search.errors import UserError

if TYPE_CHECKING:  # pyarrow comes with Ray; reading a run folder needs neither
    from search.storage import RunLocation

RUN_JSON = "run.json"
# The version of the run folder's layout; a folder of another version is refused in one
# line instead of being half read.
FORMAT_VERSION = 2

PACKAGES = (
    "torch",
    "torchvision",
    "ray",
    "optuna",
    "numpy",
    "pandas",
    "seaborn",
    "mlxtend",
    "aeon",
)


@dataclass
class StudyRecord:
    """Where the run's Optuna study is, and how the run marks its trials there."""

    storage: str | None  # a database URL without its password; None: the folder's study.db
    name: str
    run: str  # the `run` user attribute of this run's trials: "<name>@<started>"
    sampler_seed: int


@dataclass
class RunRecord:
    dataset: str
    data: dict[str, Any]  # what the dataset says of itself (`Dataset.describe`)
    split_sizes: dict[str, int]
    space: dict[str, Any]  # the search space (`SearchSpace.to_dict`)
    seed: int
    flags: dict[str, Any]  # the SearchConfig, field by field
    command: str  # the command line that runs this search (`command_line`)
    packages: dict[str, str]
    machine: dict[str, Any]
    started: str  # ISO time, UTC
    study: StudyRecord | None = None  # set once the study is open
    warm_start: dict | None = None  # what --warm-start copied (`study.warm_start`)
    asha_unit_seconds: float | None = None  # under --asha-time seconds (`search.cost`)
    # What each --track tracker needs to find this search's records again (its run ids).
    tracking: dict[str, dict] = field(default_factory=dict)
    # Filled once the trials are over; summed over the sessions of a resumed search.
    finished: str | None = None
    sessions: int = 0
    wall_seconds: float = 0.0
    trial_counts: dict[str, int] = field(default_factory=dict)
    devices: dict[str, int] = field(default_factory=dict)  # what trained the trials
    confirm_seconds: float | None = None
    confirm_busy_seconds: float | None = None
    format_version: int = FORMAT_VERSION

    @classmethod
    def new(cls, config, data: dict, split_sizes: dict[str, int], space: dict) -> RunRecord:
        """The record of a new run; `config` is its SearchConfig."""
        return cls(
            dataset=data["name"],
            data=data,
            split_sizes=split_sizes,
            space=space,
            seed=config.seed,
            flags=asdict(config),
            command=command_line(config),
            packages=package_versions(),
            machine={"platform": platform.platform(), "cpus": os.cpu_count()},
            started=datetime.now(UTC).isoformat(timespec="seconds"),
        )

    @property
    def objective(self) -> str:
        return self.flags["objective"]

    @property
    def metric(self) -> str:
        """What the run ranks its trials by: its primary objective."""
        return m.primary_metric(self.objective)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, where: str) -> RunRecord:
        """The record `text` holds; UserError (one line, naming `where`) if it is not
        JSON, of another format version, or not a whole record."""
        try:
            values = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise UserError(f"{where}/{RUN_JSON} is not valid JSON: {exc}") from None
        if not isinstance(values, dict):
            raise UserError(f"{where}/{RUN_JSON} is not a run record")
        found = values.get("format_version")
        if found != FORMAT_VERSION:
            newer = isinstance(found, int) and found > FORMAT_VERSION
            raise UserError(
                f"{where} was made by {'a newer' if newer else 'an older'} version of this "
                f"tool (run folder format {found or 1}, this one reads {FORMAT_VERSION}); "
                "rerun the search to get a folder it reads"
            )
        try:
            study = values.pop("study", None)
            record = cls(**values)
            record.study = StudyRecord(**study) if study is not None else None
        except TypeError as exc:  # a field missing or unknown
            raise UserError(f"{where}/{RUN_JSON} is damaged ({exc})") from None
        return record

    @classmethod
    def read(cls, run_dir: str | Path) -> RunRecord:
        path = Path(run_dir) / RUN_JSON
        return cls.from_json(path.read_bytes(), str(run_dir))

    def save(self, run: RunLocation) -> None:
        """Write (or rewrite) run.json; on local disks atomically, so a crash leaves no
        half file."""
        run.write_bytes(RUN_JSON, self.to_json().encode())


def command_line(config) -> str:
    """The command that runs the search `config` describes (its flags that differ from
    the defaults), quoted as a shell needs it: the same whether the search was started
    from the command line or from Python (search.api)."""
    from search.config import flag_words  # argparse's side of the flags

    words = flag_words(asdict(config))
    return shlex.join([Path(sys.executable).name, "-m", "search.run", *words])


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
