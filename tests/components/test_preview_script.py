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


FAKE_PULUMI = """#!/usr/bin/env bash
echo "$*" >> "$PULUMI_CALLS"
if [[ "$1" == preview ]]; then
  echo "missing secrets for stack chi:"
  exit "${FAKE_PREVIEW_STATUS:-0}"
fi
"""


def _fake_checkout(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the script in a tree whose pulumi, python3 and .venv are stubs (no network, no real venv)."""
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "preview"
    script.write_text(SCRIPT.read_text())
    bin_dir, venv_bin = tmp_path / "bin", tmp_path / ".venv" / "bin"
    bin_dir.mkdir()
    venv_bin.mkdir(parents=True)
    stubs = {bin_dir / "pulumi": FAKE_PULUMI, bin_dir / "python3": "#!/bin/sh\n", venv_bin / "python": "#!/bin/sh\n"}
    for path, text in stubs.items():
        path.write_text(text)
    for path in (script, *stubs):
        path.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "PULUMI_CALLS": str(tmp_path / "calls"),
        "PULUMI_CONFIG_PASSPHRASE": "not-printed-passphrase",
    }
    return script, env


def test_a_failed_first_preview_says_which_backend_the_config_set_commands_need(tmp_path: Path) -> None:
    script, env = _fake_checkout(tmp_path)
    result = subprocess.run([str(script), "chi"], capture_output=True, text=True, timeout=30,
                            env={**env, "FAKE_PREVIEW_STATUS": "255"})
    assert result.returncode == 255
    assert result.stdout == "missing secrets for stack chi:\n"
    assert result.stderr == (
        "preview: to set a missing secret, run the `pulumi config set --secret --stack chi KEY` lines above after: "
        f"export PULUMI_BACKEND_URL='file://{tmp_path}/.pulumi-state' and the same PULUMI_CONFIG_PASSPHRASE "
        '(README "First run")\n'
    )
    assert "not-printed-passphrase" not in result.stderr
    assert (tmp_path / "calls").read_text().splitlines() == [
        "stack select --create chi --non-interactive",
        "preview --stack chi --non-interactive",
    ]


def test_a_successful_preview_adds_nothing(tmp_path: Path) -> None:
    script, env = _fake_checkout(tmp_path)
    result = subprocess.run([str(script), "iad", "--diff"], capture_output=True, text=True, timeout=30, env=env)
    assert (result.returncode, result.stderr) == (0, "")
    assert (tmp_path / "calls").read_text().splitlines()[-1] == "preview --stack iad --non-interactive --diff"


def test_a_self_managed_backend_needs_the_passphrase_and_pulumi_cloud_does_not(tmp_path: Path) -> None:
    script, env = _fake_checkout(tmp_path)
    (tmp_path / "Pulumi.chi.yaml").write_text("config: {}\n")
    del env["PULUMI_CONFIG_PASSPHRASE"]
    on_s3 = subprocess.run([str(script), "chi"], capture_output=True, text=True, timeout=30,
                           env={**env, "PULUMI_BACKEND_URL": "s3://state?region=us-east-1"})
    assert (on_s3.returncode, on_s3.stderr) == (
        2, "preview: set PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE: it encrypts this stack's secrets\n"
    )
    assert not (tmp_path / "calls").exists()  # nothing ran
    on_cloud = subprocess.run([str(script), "chi"], capture_output=True, text=True, timeout=30,
                              env={**env, "PULUMI_BACKEND_URL": "https://api.pulumi.com"})
    assert (on_cloud.returncode, on_cloud.stderr) == (0, "")
