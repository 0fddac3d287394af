"""Run the harborops CLI in-process, the way a user's shell would see it."""

from __future__ import annotations

import pytest

from harborops.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``harborops ARGV…``: the exit code, stdout and stderr.

    Example: ``code, out, err = run_cli(capsys, "replication", "status", "--json")``
    """
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
