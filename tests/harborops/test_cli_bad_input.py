"""Bad flag values, bad URLs and a failed stdout: one error line and an exit code, never a traceback."""

from __future__ import annotations

import pytest

from tests.support.cli import run_cli

SECONDS_CASES = [
    (["replication", "status"], "--timeout"),
    (["replication", "watch", "--count", "2"], "--timeout"),
    (["sites", "diff", "http://127.0.0.1:1", "http://127.0.0.1:2"], "--timeout"),
    (["mirror", "trigger", "--dry-run"], "--timeout"),
    (["replication", "watch", "--count", "2"], "--interval"),
]


@pytest.fixture(autouse=True)
def harbor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARBOR_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("HARBOR_USERNAME", "admin")
    monkeypatch.setenv("HARBOR_PASSWORD", "pw-never-shown-77")


@pytest.mark.parametrize("value", ["inf", "1e12", "nan", "-inf", "0"])
@pytest.mark.parametrize(("argv", "flag"), SECONDS_CASES, ids=lambda c: " ".join(c) if isinstance(c, list) else c)
def test_seconds_flags_out_of_range_are_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], flag: str, value: str
) -> None:
    code, out, err = run_cli(capsys, *argv, flag, value)

    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and flag in err
    assert "Traceback" not in err and "Overflow" not in err
