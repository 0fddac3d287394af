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


BAD_URLS = {
    "http://127.0.0.1:abc": "port must be a number from 1 to 65535",
    "http://127.0.0.1:99999": "port must be a number from 1 to 65535",
    "http://127.0.0.1:0": "port must be a number from 1 to 65535",
    "http://[::1": "not a valid URL",
    "https://host name": "contains a space",
    "ftp://harbor.example.com": "not an http(s) URL",
}


@pytest.mark.parametrize(("url", "says"), BAD_URLS.items(), ids=list(BAD_URLS))
def test_a_malformed_harbor_url_is_misuse_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str, says: str
) -> None:
    monkeypatch.setenv("HARBOR_URL", url)

    code, _, err = run_cli(capsys, "replication", "status")

    assert code == 2
    assert err.startswith("error: HARBOR_URL: ") and says in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("url", "says"), BAD_URLS.items(), ids=list(BAD_URLS))
@pytest.mark.parametrize("side", ["LEFT_URL", "RIGHT_URL"])
def test_a_malformed_sites_diff_argument_is_misuse_naming_it(
    capsys: pytest.CaptureFixture[str], url: str, says: str, side: str
) -> None:
    good = "http://127.0.0.1:1"
    argv = [url, good] if side == "LEFT_URL" else [good, url]

    code, _, err = run_cli(capsys, "sites", "diff", *argv)

    assert code == 2
    assert err.startswith(f"error: {side}: ") and says in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("url", ["http://admin:pw-in-url-9@[::1", "http://admin:pw-in-url-9@h:99999",
                                 "https://admin:pw-in-url-9@harbor.example.com",
                                 "admin:pw-in-url-9@harbor.example.com"])  # no scheme: still credentials
def test_credentials_in_a_url_are_refused_and_never_echoed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    monkeypatch.setenv("HARBOR_URL", url)

    code, out, err = run_cli(capsys, "replication", "status")

    assert code == 2 and "not in the URL" in err and "pw-in-url-9" not in out + err


@pytest.mark.parametrize(("url", "says"), BAD_URLS.items(), ids=list(BAD_URLS))
def test_a_malformed_dockerhub_base_url_is_misuse_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str, says: str
) -> None:
    monkeypatch.setenv("DOCKERHUB_USERNAME", "someone")
    monkeypatch.setenv("DOCKERHUB_TOKEN", "dckr_pat_never-print-me")
    monkeypatch.setenv("DOCKERHUB_BASE_URL", url)

    code, out, err = run_cli(capsys, "mirror", "trigger", "--only-changed", "--dry-run")

    assert code == 2
    assert err.startswith("error: DOCKERHUB_BASE_URL: ") and says in err and len(err.strip().splitlines()) == 1


def test_credentials_in_dockerhub_base_url_are_refused_and_never_echoed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKERHUB_USERNAME", "ci-bot")
    monkeypatch.setenv("DOCKERHUB_TOKEN", "dckr_pat_never-print-me")
    monkeypatch.setenv("DOCKERHUB_BASE_URL", "http://ci-bot:hunter2@127.0.0.1:9")

    code, out, err = run_cli(capsys, "mirror", "trigger", "--only-changed", "--dry-run")

    assert code == 2 and err.startswith("error: DOCKERHUB_BASE_URL: put credentials in DOCKERHUB_USERNAME")
    assert "hunter2" not in out + err
