"""The CLI as a user runs it (`python -m harborops` in a subprocess) when the connection
is wrong: one clear line on stderr, the right exit code, no traceback, no secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import typer

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


# ---------------------------------------------------------------- a server that echoes the password
# Harbor (or a proxy in front of it) may quote what it was sent in its error message.
# Whatever path the message takes to the user, no secret may come out.

ECHOED = "hunter2-Echoed/pw%+"  # '/', '%' and '+' also come back URL-encoded or JSON-escaped


@pytest.fixture
def echoing() -> Iterator[HarborEmulator]:
    with HarborEmulator(password=ECHOED) as site:
        site.echo_credentials = True
        yield site


def assert_secret_hidden(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.stdout + result.stderr


def test_echoed_password_in_a_401_is_masked(echoing: HarborEmulator) -> None:
    wrong = "wrong-" + ECHOED
    result = harborops("replication", "status", HARBOR_URL=echoing.url, HARBOR_USERNAME="admin",
                       HARBOR_PASSWORD=wrong)
    assert_one_clean_line(result, 1, "rejected the credentials", "bad login admin:***", "HARBOR_PASSWORD")
    assert_secret_hidden(result, wrong)


def test_echoed_password_in_a_403_csrf_answer_is_masked(echoing: HarborEmulator) -> None:
    echoing.fail_next_requests(1, status=403, message="CSRF token invalid")
    result = harborops("replication", "status", HARBOR_URL=echoing.url, HARBOR_USERNAME="admin",
                       HARBOR_PASSWORD=ECHOED)
    assert_one_clean_line(result, 1, "CSRF check", "bad login admin:***")
    assert_secret_hidden(result, ECHOED)


def test_echoed_password_in_a_500_is_masked(echoing: HarborEmulator) -> None:
    echoing.fail_next_requests(4, status=500, message="db error")  # every retry of the GET
    result = harborops("replication", "status", HARBOR_URL=echoing.url, HARBOR_USERNAME="admin",
                       HARBOR_PASSWORD=ECHOED)
    assert_one_clean_line(result, 1, "answered 500", "db error", "bad login admin:***")
    assert_secret_hidden(result, ECHOED)


def test_sites_diff_masks_the_per_site_password_and_names_the_variable_used(echoing: HarborEmulator) -> None:
    with HarborEmulator(password="left-pw-not-echoed") as left:
        result = harborops("sites", "diff", left.url, echoing.url, HARBOR_USERNAME="admin",
                           HARBOR_PASSWORD="left-pw-not-echoed", HARBOR_RIGHT_PASSWORD="wrong-right-pw",
                           AWS_SECRET_ACCESS_KEY="aws-secret-value")
    assert_one_clean_line(result, 1, echoing.url, "bad login admin:***",
                          "check HARBOR_USERNAME / HARBOR_RIGHT_PASSWORD")
    assert_secret_hidden(result, "wrong-right-pw")


def test_the_401_hint_names_the_per_site_username_when_that_was_used(echoing: HarborEmulator) -> None:
    with HarborEmulator() as left:
        result = harborops("sites", "diff", left.url, echoing.url, HARBOR_USERNAME="admin",
                           HARBOR_PASSWORD=left.password, HARBOR_RIGHT_USERNAME="robot$iad",
                           HARBOR_RIGHT_PASSWORD=ECHOED)
    assert_one_clean_line(result, 1, "'robot$iad'", "check HARBOR_RIGHT_USERNAME / HARBOR_RIGHT_PASSWORD")
    assert_secret_hidden(result, ECHOED)


def test_every_secret_variable_is_masked_in_any_error_message(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from harborops import cli
    from harborops.errors import HarborOpsError

    secrets = {"HARBOR_PASSWORD": "p-common", "HARBOR_LEFT_PASSWORD": "p-left", "HARBOR_RIGHT_PASSWORD": "p-right",
               "DOCKERHUB_TOKEN": "dckr_pat_x", "AWS_SECRET_ACCESS_KEY": "aws/sec+ret", "AWS_SESSION_TOKEN": "tok=="}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    leaky = " ".join(f"{v} {json.dumps(v)} {quote(v, safe='')}" for v in secrets.values())

    leaking = typer.Typer()  # stands in for any command: every HarborOpsError goes through main's printer

    @leaking.command()
    def leak() -> None:
        raise HarborOpsError(f"server said: {leaky}")

    monkeypatch.setattr(cli, "app", leaking)
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    _, err = capsys.readouterr()
    assert exit_info.value.code == 1 and err.startswith("error: server said: ***")
    for value in secrets.values():
        assert value not in err and quote(value, safe="") not in err


# ---------------------------------------------------------------- startup: only the group that runs is imported


def test_help_lists_every_group_and_a_command_loads_only_its_own() -> None:
    listing = harborops("--help")
    assert listing.returncode == 0
    for group in ("mirror", "replication", "sites", "s3", "kamal", "pulls"):
        assert f" {group} " in listing.stdout

    probe = ("import sys\nfrom harborops.cli import main\ntry:\n    main(['replication', 'status', '--help'])\n"
             "except SystemExit:\n    pass\n"
             "print(sorted(m for m in ('boto3', 'harborops.mirror', 'harborops.s3', 'harborops.pulls', "
             "'harborops.kamal', 'harborops.sites') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert "Show replication executions" in loaded.stdout
    assert loaded.stdout.strip().splitlines()[-1] == "[]"  # no boto3, no mirror planner: ~0.35 s, not ~1 s


def test_an_unknown_group_is_still_a_usage_error() -> None:
    result = harborops("replicaton", "status")
    assert result.returncode == 2 and "No such command 'replicaton'" in result.stderr
