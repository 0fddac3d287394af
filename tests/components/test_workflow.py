"""The CI workflow: actionlint passes, previews both stacks on PRs, deploys chi then iad on main."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "pulumi.yml"


def test_actionlint_finds_nothing() -> None:
    actionlint = shutil.which("actionlint")
    if actionlint is None:
        pytest.skip("actionlint is not on PATH (./scripts/test installs it from the Go module proxy)")
    result = subprocess.run(
        [actionlint, "-no-color", str(WORKFLOW)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _pulumi_steps(job: dict) -> list[dict]:
    return [s for s in job["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@")]


def test_previews_both_stacks_on_pull_requests_and_deploys_chi_before_iad_on_main() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert "pull_request" in triggers and triggers["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]

    preview = jobs["preview"]
    assert preview["if"] == "github.event_name == 'pull_request'"
    assert preview["strategy"]["matrix"]["stack"] == ["chi", "iad"]
    [step] = _pulumi_steps(preview)
    assert step["with"]["command"] == "preview"

    for job_name, stack in (("up-chi", "chi"), ("up-iad", "iad")):
        [step] = _pulumi_steps(jobs[job_name])
        assert (step["with"]["command"], step["with"]["stack-name"]) == ("up", stack)
    assert "refs/heads/main" in jobs["up-chi"]["if"]
    assert jobs["up-iad"]["needs"] == "up-chi"
    # Every Pulumi job waits for the tests.
    assert preview["needs"] == "tests" and jobs["up-chi"]["needs"] == "tests"
    assert "./.ci/run" in [s.get("run") for s in jobs["tests"]["steps"]]
