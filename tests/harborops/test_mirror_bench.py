"""Smoke test for bench/mirror_trigger.py: a tiny run, so the benchmark cannot rot unnoticed.

It asserts what must hold at any machine speed (every rule ends Succeed); the
makespan targets live in bench/results, never in a timed test.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "mirror_trigger.py"


def test_the_benchmark_runs_the_tool_to_a_complete_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HARBOR_URL", "HARBOR_USERNAME", "HARBOR_PASSWORD"):
        monkeypatch.setenv(name, "restored-after-the-test")  # run_tool sets them for the CLI
    spec = importlib.util.spec_from_file_location("mirror_trigger_bench", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    scenario = bench.Scenario(per_window=5, window=60.0)
    flags = {"--max-in-flight": 4, "--poll-interval": 2.0, "--backoff": 1.0, "--max-backoff": 10.0}

    outcome = bench.run_tool(100.0, scenario, bench.rule_names(12), flags, tmp_path, "tool")

    assert outcome.rules_left_failed == 0
    assert outcome.executions_started >= 12
    assert outcome.windows >= 2  # 12 rules at 5 a window cannot finish inside two windows
