"""`harborops` is a command on PATH in the venv, usable from any directory (an app's repo, say)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_harborops_runs_from_outside_the_repository(tmp_path: Path) -> None:
    command = Path(sys.executable).parent / "harborops"
    assert command.exists(), "run ./scripts/test (it installs the package with `pip install -e .`)"
    result = subprocess.run([str(command), "kamal", "registry", "--help"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Usage: harborops kamal registry" in result.stdout
