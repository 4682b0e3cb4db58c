"""`python -m bench.child JOB OUT_JSON`: one measurement in a fresh process.

Every search and every micro-benchmark runs in its own interpreter so that Ray, the
environment variables a system sets and torch's thread count start clean each time. A
job (JSON text) has a `kind`: "search" (`bench.systems.run_search`) or the benchmark whose
`measure` it runs.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    job = json.loads(argv[0])
    kind = job.pop("kind")
    if kind == "search":
        from bench.systems import SearchSpec, run_search

        result = run_search(SearchSpec(**job))
    else:  # only the benchmark's own module: epochs timed without Ray imported
        result = importlib.import_module(f"bench.{kind}").measure(**job)
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
