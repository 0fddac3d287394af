"""How long the Pulumi program takes to evaluate, per stack, with N projects.

Runs the real __main__.py under the mock runtime (tests/support/pulumi_program.py), so
it measures our code plus the SDK's registration path: config validation, component
construction and the secret harbor.yml render. It does not measure providers or the
engine. The question it answers: does a preview stay quick as projects are added
(each adds a project, a retention policy and, for the first, robots)?

Usage: python bench/program_bench.py [--projects 1,10,50] [--repeat 5]
Writes bench/results/program.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.pulumi_program import run_program, stack_file_config  # noqa: E402


def _projects(count: int) -> list[dict]:
    base = stack_file_config("chi")["projects"][0]
    return [base] + [{"name": f"team{i:03d}", "storageQuotaGib": 100} for i in range(1, count)]


def measure(stack: str, projects: int, repeat: int) -> dict:
    seconds = []
    peak = 0
    for _ in range(repeat):
        tracemalloc.start()
        started = time.perf_counter()
        run = run_program(stack, config={"projects": _projects(projects)})
        seconds.append(time.perf_counter() - started)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        if run.error is not None:
            raise SystemExit(f"{stack} with {projects} projects failed: {run.error}")
    return {
        "stack": stack,
        "projects": projects,
        "resources": len(run.resources),
        "median_seconds": round(statistics.median(seconds), 4),
        "max_seconds": round(max(seconds), 4),
        "peak_python_mib": round(peak / 2**20, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", default="1,10,50")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = [
        measure(stack, int(n), args.repeat)
        for stack in ("chi", "iad")
        for n in args.projects.split(",")
    ]
    result = {"python": platform.python_version(), "machine": platform.machine(), "runs": rows}
    out = ROOT / "bench" / "results" / "program.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
