"""The CLI as a user runs it (`python -m harborops` in a subprocess) when the connection
is wrong: one clear line on stderr, the right exit code, no traceback, no secret."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harborops.settings import resolve_connection
from tests.emulators.harbor import HarborEmulator

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret-Harbor-pw"


def harborops(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HARBOR")}
    return subprocess.run(
        [sys.executable, "-m", "harborops", *args],
        cwd=REPO_ROOT, env={**clean, "COLUMNS": "200", **env},
        capture_output=True, text=True, timeout=60,
    )


def assert_one_clean_line(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def emulator() -> Iterator[HarborEmulator]:
    with HarborEmulator(password=SECRET) as site:
        yield site


def test_wrong_password(emulator: HarborEmulator) -> None:
    result = harborops("replication", "status", HARBOR_URL=emulator.url, HARBOR_USERNAME="admin",
                       HARBOR_PASSWORD=SECRET + "-typo")
    assert_one_clean_line(result, 1, "rejected the credentials", "'admin'", "HARBOR_PASSWORD")
    assert SECRET + "-typo" not in result.stderr


def test_url_that_gets_html_instead_of_json(emulator: HarborEmulator) -> None:
    result = harborops("replication", "status", "--url", emulator.url + "/harbor",
                       HARBOR_USERNAME="admin", HARBOR_PASSWORD=SECRET)
    assert_one_clean_line(result, 1, "HTML page", "check the URL")


def test_harbor_down() -> None:
    with HarborEmulator() as gone:
        url = gone.url
    result = harborops("sites", "diff", url, url.replace("127.0.0.1", "localhost"),
                       HARBOR_USERNAME="admin", HARBOR_PASSWORD=SECRET)
    assert_one_clean_line(result, 1, "cannot reach Harbor", url, "Connection refused")


def test_url_that_is_not_a_url() -> None:
    result = harborops("replication", "status", HARBOR_URL="harbor.example.com",
                       HARBOR_USERNAME="admin", HARBOR_PASSWORD=SECRET)
    assert_one_clean_line(result, 2, "HARBOR_URL", "not an http(s) URL")


def test_missing_password_and_the_seed_scripts_harbor_user(emulator: HarborEmulator) -> None:
    no_password = harborops("replication", "status", HARBOR_URL=emulator.url, HARBOR_USERNAME="admin")
    assert_one_clean_line(no_password, 2, "HARBOR_PASSWORD")
    seed_style = harborops("replication", "status", HARBOR_URL=emulator.url, HARBOR_USER="admin",
                           HARBOR_PASSWORD=SECRET)
    assert_one_clean_line(seed_style, 2, "HARBOR_USERNAME", "HARBOR_USER is set")


def test_harbor_answering_5xx_after_retries(emulator: HarborEmulator) -> None:
    emulator.fail_next_requests(50, status=502, html=True)
    result = harborops("replication", "status", HARBOR_URL=emulator.url, HARBOR_USERNAME="admin",
                       HARBOR_PASSWORD=SECRET)
    assert_one_clean_line(result, 1, "502", "HTML error page")
    assert len(emulator.api_requests("GET", "/users/current")) == 4  # bounded retries


def test_flags_win_over_the_environment_and_the_password_stays_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARBOR_URL", "https://env.example.com")
    monkeypatch.setenv("HARBOR_USERNAME", "env-user")
    monkeypatch.setenv("HARBOR_PASSWORD", SECRET)
    connection = resolve_connection("https://flag.example.com/api/v2.0/", "flag-user")
    assert (connection.url, connection.username) == ("https://flag.example.com", "flag-user")
    assert connection.password.get_secret_value() == SECRET
    assert SECRET not in repr(connection) and SECRET not in str(connection)
    with connection.client() as client:
        assert SECRET not in repr(client)


def test_per_site_credentials_fall_back_to_the_common_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("HARBOR")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HARBOR_USERNAME", "admin")
    monkeypatch.setenv("HARBOR_PASSWORD", "common-pw")
    monkeypatch.setenv("HARBOR_RIGHT_USERNAME", "robot$iad")
    left = resolve_connection("https://chi.example.com", None, env_prefix="HARBOR_LEFT_")
    right = resolve_connection("https://iad.example.com", None, env_prefix="HARBOR_RIGHT_")
    assert (left.username, left.password.get_secret_value()) == ("admin", "common-pw")
    assert (right.username, right.password.get_secret_value()) == ("robot$iad", "common-pw")
