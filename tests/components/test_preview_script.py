"""scripts/preview fails early with one clear line instead of half-running."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "preview"


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=30)


def test_unknown_stack_is_misuse() -> None:
    result = _run("ord", env={"PATH": os.environ["PATH"]})
    assert (result.returncode, result.stderr) == (2, "preview: unknown stack 'ord' (expected chi or iad)\n")


def test_missing_pulumi_cli_says_how_to_install_it(tmp_path: Path) -> None:
    # A PATH with bash and coreutils but no pulumi.
    result = _run("chi", env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert result.stderr.startswith("preview: the Pulumi CLI is not on PATH; install it:")
    assert result.stdout == ""
