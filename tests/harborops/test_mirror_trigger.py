"""`harborops mirror trigger`, run as a user runs it, against the loopback Harbor emulator.

The pacing sleeps move the emulator's manual clock (`mirror.make_clock`), so a run
that spans minutes of Harbor time takes milliseconds and is deterministic.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from harborops import mirror
from tests.emulators.dockerhub import DockerHubEmulator
from tests.support.cli import run_cli
from tests.emulators.harbor import EPOCH, HarborEmulator, ManualClock, harbor  # noqa: F401  (the fixture)

PASSWORD = "Harbor12345"
HUB_TOKEN = "dckr_pat_never-print-me"
REPO_ROOT = Path(__file__).resolve().parents[2]
FAST = ["--poll-interval", "1", "--backoff", "10", "--max-backoff", "30"]


class EmulatorClock:
    """The engine's clock, reading and moving the emulator's manual clock."""

    def __init__(self, clock: ManualClock) -> None:
        self._clock = clock

    def monotonic(self) -> float:
        return self._clock.now()

    def sleep(self, seconds: float) -> None:
        self._clock.advance(seconds)


@pytest.fixture
def env(harbor: HarborEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> HarborEmulator:
    monkeypatch.setenv("HARBOR_URL", harbor.url)
    monkeypatch.setenv("HARBOR_USERNAME", "admin")
    monkeypatch.setenv("HARBOR_PASSWORD", harbor.password)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))  # the default state file stays in tmp
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(mirror, "make_clock", lambda: EmulatorClock(harbor.clock))
    return harbor


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code, out, err = run_cli(capsys, "mirror", "trigger", *argv)
    assert PASSWORD not in out + err and HUB_TOKEN not in out + err
    assert "Traceback" not in err
    return code, out, err


def by_name(out: str) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in json.loads(out)["rules"]}


def max_overlap(executions: list[dict[str, Any]]) -> int:
    """Most executions InProgress at the same emulated moment."""
    events = []
    for e in executions:
        events.append((e["start_time"], 1))
        if e["end_time"] != "0001-01-01T00:00:00Z":
            events.append((e["end_time"], -1))
    running = peak = 0
    for _, delta in sorted(events, key=lambda ev: (ev[0], ev[1])):  # ends before starts at a tie
        running += delta
        peak = max(peak, running)
    return peak


def test_caps_in_flight_counting_others_and_never_starts_a_running_rule(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    policies = [env.add_policy(f"mirror-dockerhub-app{i:02d}", task_seconds=5) for i in range(10)]
    env.add_policy("other-rule")
    elsewhere = env.start_execution(policies[3].id)  # someone started app03 in the UI

    code, out, err = run(capsys, "--max-in-flight", "3", *FAST, "--json", "--state-file", str(tmp_path / "s.json"))

    rows = by_name(out)
    assert code == 0, err
    assert {r["status"] for r in rows.values()} == {"Succeed"} and len(rows) == 10
    assert rows["mirror-dockerhub-app03"]["attempts"] == 0
    assert rows["mirror-dockerhub-app03"]["execution_id"] == elsewhere
    assert len(env.api_requests("POST", "/replication/executions")) == 9
    assert max_overlap(env.executions()) == 3
    assert not [e for e in env.executions() if "skipped" in e["status_text"]]


def test_rate_limited_failures_pause_every_start_and_requeue(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for i in range(10):
        env.add_policy(f"mirror-dockerhub-app{i:02d}", task_seconds=5)
    env.set_rate_limit(starts=4, window=60, where="task_log")  # the 429 only shows in task logs

    code, out, err = run(capsys, "--max-in-flight", "4", *FAST, "--json", "--state-file", str(tmp_path / "s.json"))

    document = json.loads(out)
    assert code == 0, err
    assert document["totals"] == {"Succeed": 10}
    assert document["rate_limited_failures"] >= 1 and document["last_rate_limited_at"]
    requeued = [r for r in document["rules"] if r["rate_limited"]]
    assert requeued and all(r["attempts"] >= 2 for r in requeued)
    executions = sorted(env.executions(), key=lambda e: e["id"])
    first_failure = min(e["end_time"] for e in executions if e["status"] == "Failed")
    # the pause: no start in the 10 s (--backoff) after the first rate-limited failure ended
    ended = datetime.fromisoformat(first_failure.replace("Z", "+00:00"))
    starts = [datetime.fromisoformat(e["start_time"].replace("Z", "+00:00")) for e in executions]
    assert not [s for s in starts if ended < s < ended + timedelta(seconds=9)]
    # remembered for the next run, which then starts carefully
    recorded = json.loads((tmp_path / "s.json").read_text())["sites"][env.url]
    assert recorded["last_rate_limited_at"] == document["last_rate_limited_at"]


def test_a_rule_rate_limited_past_the_bound_fails_with_exit_1(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    env.add_policy("mirror-dockerhub-alpine")
    env.set_rate_limit(starts=0, window=3600)

    code, out, err = run(capsys, *FAST, "--rate-limit-retries", "2", "--json", "--state-file", str(tmp_path / "s.json"))

    row = by_name(out)["mirror-dockerhub-alpine"]
    assert code == 1
    assert (row["status"], row["attempts"], row["rate_limited"]) == ("Failed", 3, True)
    assert "rate-limited 3 times" in row["message"]


def test_a_rule_rate_limited_once_with_no_retries_says_once_in_the_table(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    env.add_policy("mirror-dockerhub-alpine")
    env.set_rate_limit(starts=0, window=3600)

    code, out, _ = run(capsys, *FAST, "--rate-limit-retries", "0", "--state-file", str(tmp_path / "s.json"))

    assert code == 1
    assert "rate-limited 1 time;" in out and "1 times" not in out


def test_other_failures_are_not_retried_unless_asked_and_odd_results_are_named(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    env.add_policy("mirror-dockerhub-broken", fail_text="{ts} [ERROR] manifest unknown: {src}\n")
    env.add_policy("mirror-dockerhub-gone", artifacts=0)  # matches nothing upstream
    env.add_policy("mirror-dockerhub-off", enabled=False)
    env.add_policy("mirror-dockerhub-fine")

    code, out, err = run(capsys, *FAST, "--state-file", str(tmp_path / "s.json"))

    assert code == 1
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if "│ mirror-dockerhub-" in line}
    assert "Failed" in lines["mirror-dockerhub-broken"] and "manifest unknown" in lines["mirror-dockerhub-broken"]
    assert "Succeed" in lines["mirror-dockerhub-gone"] and "no resources" in lines["mirror-dockerhub-gone"]
    assert "Skipped" in lines["mirror-dockerhub-off"] and "disabled" in lines["mirror-dockerhub-off"]
    assert "warning: mirror-dockerhub-gone" in err
    broken = [e for e in env.executions() if e["policy_id"] == 1]
    assert len(broken) == 1

    code, out, err = run(capsys, *FAST, "--retry-failed", "2", "--json", "--state-file", str(tmp_path / "s.json"))
    assert code == 1
    assert by_name(out)["mirror-dockerhub-broken"]["attempts"] == 3


def test_a_rule_stopped_in_harbor_exits_1_and_is_resumed(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.add_policy("mirror-dockerhub-alpine", task_seconds=2)
    busybox = env.add_policy("mirror-dockerhub-busybox", task_seconds=600)
    clock = EmulatorClock(env.clock)
    real_sleep = clock.sleep

    def sleep_then_stop_busybox(seconds: float) -> None:
        real_sleep(seconds)
        for e in env.executions():
            if e["policy_id"] == busybox.id and e["status"] == "InProgress" and env.clock.now() >= 10:
                env.stop_execution(e["id"])  # someone pressed STOP in the UI

    monkeypatch.setattr(clock, "sleep", sleep_then_stop_busybox)
    monkeypatch.setattr(mirror, "make_clock", lambda: clock)
    state = tmp_path / "s.json"

    code, out, err = run(capsys, *FAST, "--json", "--state-file", str(state))

    rows = by_name(out)
    assert code == 1, err
    assert rows["mirror-dockerhub-busybox"]["status"] == "Stopped"
    assert rows["mirror-dockerhub-alpine"]["status"] == "Succeed"
    recorded = json.loads(state.read_text())["sites"][env.url]["rules"]
    assert {name: r["status"] for name, r in recorded.items()} == {
        "mirror-dockerhub-alpine": "Succeed",
        "mirror-dockerhub-busybox": "Stopped",
    }


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"not json", "invalid JSON"),
        (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not UTF-8 text"),
        (b'{"version": 2}', "version 1 expected"),
        (b'{"version": 1, "sites": []}', "sites: Input should be a valid dictionary"),
        (b'{"version": 1, "sites": {"URL": []}}', "sites.URL: Input should be a valid dictionary"),
        (b'{"version": 1, "sites": {"URL": {"rules": []}}}', "sites.URL.rules: Input should be a valid dictionary"),
        (b'{"version": 1, "sites": {"URL": {"rules": {"x": "Succeed"}}}}', "sites.URL.rules.x: Input should be"),
        (
            b'{"version": 1, "sites": {"URL": {"last_rate_limited_at": "2026-12-03T18:00:00"}}}',
            "sites.URL.last_rate_limited_at: Input should have timezone info",
        ),
        (b'{"version": 1, "sites": {"URL": {"rulez": {}}}}', "sites.URL.rulez: Extra inputs are not permitted"),
    ],
)
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_foreign_state_file_is_one_line_exit_2_and_fresh_replaces_it(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, what: str, dry_run: bool
) -> None:
    env.add_policy("mirror-dockerhub-alpine")
    state = tmp_path / "s.json"
    state.write_bytes(content.replace(b"URL", env.url.encode()))
    extra = ["--dry-run"] if dry_run else []

    code, out, err = run(capsys, *FAST, *extra, "--state-file", str(state))

    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert f"--state-file {state} is not a harborops state file: " in err
    assert what.replace("URL", env.url) in err and "(delete it or pass --fresh)" in err
    assert env.api_requests("POST") == []

    code, out, err = run(capsys, *FAST, *extra, "--fresh", "--state-file", str(state))
    assert code == 0, err
    if not dry_run:
        site = {"rules": {}, "last_rate_limited_at": None}
        assert json.loads(state.read_text()) == {"version": 1, "sites": {env.url: site}}


def test_an_unwritable_state_file_stops_before_anything_starts(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for name in ("alpine", "busybox", "caddy"):
        env.add_policy(f"mirror-dockerhub-{name}")
    (tmp_path / "a-file").write_text("")  # works as root too, unlike a read-only directory
    for path in ("/proc/mt-state.json", str(tmp_path / "a-file" / "s.json")):
        code, out, err = run(capsys, *FAST, "--range", "a-c", "--state-file", path)
        assert code == 2 and out == ""
        assert err.count("\n") == 1 and f"--state-file {path}: cannot " in err
    assert env.api_requests("POST") == []


def test_the_summary_reads_at_80_columns(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    names = {
        "mirror-dockerhub-a-rather-long-repository-name-for-a-mirror": "Succeed",
        "mirror-dockerhub-broken": "Failed",
        "mirror-dockerhub-off": "Skipped",
    }
    env.add_policy("mirror-dockerhub-a-rather-long-repository-name-for-a-mirror")
    long_error = "manifest unknown to the registry " * 6
    env.add_policy("mirror-dockerhub-broken", fail_text="{ts} [ERROR] " + long_error + "\n")
    env.add_policy("mirror-dockerhub-off", enabled=False)

    code, out, err = run(capsys, *FAST, "--state-file", str(tmp_path / "s.json"))

    assert code == 1, err
    lines = out.splitlines()
    table = [line for line in lines if line and line[0] in "┏┃┡│└"]
    assert table and all(len(line) <= 80 and line[-1] in "┓┃┩│┘" for line in table)  # nothing cropped
    # a row: the rule name, folded over its lines with nothing cut off, and its status on the first one
    rows: list[list[str]] = []
    for line in lines:
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if not cells:
            continue
        if cells[0].startswith("mirror-dockerhub-"):
            rows.append(cells)
        elif rows and cells[0]:
            rows[-1][0] += cells[0]
    assert {cells[0]: cells[1] for cells in rows} == names
    assert len([line for line in lines if "│" in line]) <= 12  # notes are short: a few lines, not a wall


def test_dry_run_prints_the_plan_and_sends_nothing(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for name in ("alpine", "busybox", "caddy", "nginx", "zulu"):
        env.add_policy(f"mirror-dockerhub-{name}")
    env.add_policy("mirror-dockerhub-debian", enabled=False)

    code, out, err = run(capsys, "--range", "A-D", "--dry-run", "--json", "--state-file", str(tmp_path / "s.json"))

    assert code == 0, err
    plan = json.loads(out)
    assert plan["dry_run"] is True
    assert [(r["name"], r["action"]) for r in plan["rules"]] == [
        ("mirror-dockerhub-alpine", "start"),
        ("mirror-dockerhub-busybox", "start"),
        ("mirror-dockerhub-caddy", "start"),
        ("mirror-dockerhub-debian", "skip"),
    ]
    assert env.api_requests("POST") == [] and env.executions() == []
    assert not (tmp_path / "s.json").exists()


def test_a_rerun_resumes_an_unfinished_run_and_a_finished_run_is_forgotten(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    env.add_policy("mirror-dockerhub-alpine")
    broken = env.add_policy("mirror-dockerhub-broken", fail_text="{ts} [ERROR] boom\n")
    env.add_policy("mirror-dockerhub-caddy")
    state = tmp_path / "state.json"
    assert run(capsys, *FAST, "--state-file", str(state))[0] == 1  # unfinished: broken failed

    broken.fail_text = None  # fixed upstream
    code, out, err = run(capsys, *FAST, "--json", "--state-file", str(state))

    rows = by_name(out)
    assert code == 0, err
    assert "resuming an unfinished run: 2 rule(s)" in err and "--fresh starts over" in err
    assert (
        rows["mirror-dockerhub-alpine"]["status"] == "Skipped"
        and "earlier run" in rows["mirror-dockerhub-alpine"]["message"]
    )
    assert rows["mirror-dockerhub-broken"]["status"] == "Succeed"
    assert len(env.api_requests("POST", "/replication/executions")) == 4  # 3, then only the broken one
    assert json.loads(state.read_text())["sites"][env.url]["rules"] == {}  # finished: nothing to resume

    # tomorrow's ordinary run mirrors everything again
    code, out, err = run(capsys, *FAST, "--json", "--state-file", str(state))
    assert code == 0, err
    assert "resuming" not in err
    assert {r["status"] for r in by_name(out).values()} == {"Succeed"}
    assert len(env.api_requests("POST", "/replication/executions")) == 7


def test_fresh_starts_over_and_replaces_a_broken_state_file(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    env.add_policy("mirror-dockerhub-alpine")
    env.add_policy("mirror-dockerhub-broken", fail_text="{ts} [ERROR] boom\n")
    state = tmp_path / "state.json"
    assert run(capsys, *FAST, "--state-file", str(state))[0] == 1

    code, out, _ = run(capsys, *FAST, "--json", "--fresh", "--only", "alpine", "--state-file", str(state))
    assert code == 0 and by_name(out)["mirror-dockerhub-alpine"]["attempts"] == 1

    state.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    code, out, err = run(capsys, *FAST, "--json", "--fresh", "--only", "alpine", "--state-file", str(state))
    assert code == 0, err
    assert by_name(out)["mirror-dockerhub-alpine"]["status"] == "Succeed"
    assert json.loads(state.read_text())["version"] == 1


def test_only_changed_skips_repositories_untouched_since_the_last_success(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = env.add_policy("mirror-dockerhub-stale")
    fresh = env.add_policy("mirror-dockerhub-fresh")
    env.add_policy("mirror-dockerhub-never")  # never succeeded: always runs
    env.clock.advance(3600)
    for policy in (stale, fresh):
        env.start_execution(policy.id)
    env.clock.advance(60)  # both succeed at EPOCH + 1h
    before, after = "2026-01-05T09:30:00Z", "2026-01-05T11:00:00Z"
    assert EPOCH.isoformat().startswith("2026-01-05T09:00")
    with DockerHubEmulator() as hub:
        hub.add_namespace(
            "yourorg", ["fresh", "never", "stale"], updated={"stale": before, "fresh": after, "never": before}
        )
        hub.add_user("ci-bot", HUB_TOKEN, member_of={"yourorg"})
        monkeypatch.setenv("DOCKERHUB_BASE_URL", hub.url)
        monkeypatch.setenv("DOCKERHUB_USERNAME", "ci-bot")
        monkeypatch.setenv("DOCKERHUB_TOKEN", HUB_TOKEN)
        code, out, err = run(capsys, *FAST, "--only-changed", "--json", "--state-file", str(tmp_path / "s.json"))

    rows = by_name(out)
    assert code == 0, err
    assert (
        rows["mirror-dockerhub-stale"]["status"] == "Skipped"
        and "unchanged" in rows["mirror-dockerhub-stale"]["message"]
    )
    assert rows["mirror-dockerhub-fresh"]["attempts"] == 1
    assert rows["mirror-dockerhub-never"]["attempts"] == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--range", "z-a"], "--range 'z-a': z comes after a"),
        (["--range", "abc"], "--range 'abc': expected two letters"),
        (["--range", "1-"], "--range '1-': expected two letters or digits like a-d"),
        (["--range", ""], "--range '': expected two letters or digits"),
        (["--only", ""], "--only: no rule name given"),
        (["--only", ","], "--only: no rule name given"),
        (["--only", " , "], "--only: no rule name given"),
        (["--only", "alpine,nope"], "--only: no mirror rule named nope"),
        (["--only", "Replicate images on push to iad"], "--only: no mirror rule named Replicate images on push"),
        (["--prefix", ""], "--prefix must not be empty"),
        (["--only", "alpine", "--range", "a-b"], "--only and --range"),
        (["--only", "", "--range", "a-b"], "--only and --range"),
        (["--backoff", "60", "--max-backoff", "5"], "--max-backoff (5) must be at least --backoff (60)"),
        (["--max-backoff", "30"], "--max-backoff (30) must be at least --backoff (60)"),
        (["--poll-interval", "inf"], "--poll-interval must be a number of seconds above 0 and at most 3600"),
        (["--poll-interval", "nan"], "--poll-interval must be a number of seconds"),
        (["--backoff", "inf", "--max-backoff", "inf"], "--backoff must be a number of seconds"),
        (["--max-backoff", "1e9"], "--max-backoff must be a number of seconds"),
        (["--max-in-flight", "0"], "--max-in-flight must be between 1 and 1000"),
        (["--only-changed"], "DOCKERHUB_USERNAME and DOCKERHUB_TOKEN"),
        (["--prefix", "nothing-"], "no replication rule matches --prefix 'nothing-'"),
    ],
)
def test_misuse_is_one_line_and_exit_2(
    env: HarborEmulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.delenv("DOCKERHUB_USERNAME", raising=False)
    monkeypatch.delenv("DOCKERHUB_TOKEN", raising=False)
    env.add_policy("mirror-dockerhub-alpine")
    env.add_policy("Replicate images on push to iad")  # a site's own rule: never a mirror rule

    code, out, err = run(capsys, *argv)

    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err
    assert env.api_requests("POST") == []


def test_an_empty_dockerhub_token_counts_as_unset(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKERHUB_USERNAME", "ci-bot")
    monkeypatch.setenv("DOCKERHUB_TOKEN", "")
    env.add_policy("mirror-dockerhub-alpine")

    code, out, err = run(capsys, *FAST, "--only-changed", "--dry-run")

    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "set DOCKERHUB_USERNAME and DOCKERHUB_TOKEN" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-in-flight", "abc"], "error: Invalid value for '--max-in-flight'"),
        (["--bogus"], "error: No such option: --bogus (see 'harborops mirror trigger --help')"),
        (["--only"], "error: Option '--only' requires an argument."),
    ],
)
def test_click_usage_errors_are_one_line_exit_2(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)

    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(message)
    assert "╭" not in err and "Usage:" not in err


def test_docker_hub_unreachable_names_its_url(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = env.add_policy("mirror-dockerhub-alpine")
    env.start_execution(policy.id)
    env.clock.advance(60)  # a success to compare against: Docker Hub is asked
    monkeypatch.setenv("DOCKERHUB_BASE_URL", "http://127.0.0.1:9/")  # nothing listens on port 9
    monkeypatch.setenv("DOCKERHUB_USERNAME", "ci-bot")
    monkeypatch.setenv("DOCKERHUB_TOKEN", HUB_TOKEN)
    real_client = mirror.client_from_settings
    monkeypatch.setattr(mirror, "client_from_settings", lambda s: real_client(s, sleep=lambda seconds: None))

    code, out, err = run(capsys, *FAST, "--only-changed", "--dry-run")

    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "Docker Hub connection failed" in err and "(http://127.0.0.1:9)" in err
    # a user:password written into DOCKERHUB_BASE_URL is refused up front: test_cli_bad_input.py


def test_wrong_password_is_one_line_exit_1_and_never_printed(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARBOR_PASSWORD", "not-" + PASSWORD + "-at-all")
    env.add_policy("mirror-dockerhub-alpine")

    code, out, err = run(capsys, *FAST)

    assert code == 1 and out == ""
    assert "rejected the credentials" in err and "not-" not in err


def test_ctrl_c_stops_new_starts_saves_state_and_prints_the_summary(harbor: HarborEmulator, tmp_path: Path) -> None:
    """The real CLI in a subprocess, interrupted with SIGINT while executions run."""
    for i in range(6):
        harbor.add_policy(f"mirror-dockerhub-app{i}")  # the manual clock never moves: they run forever
    state = tmp_path / "state.json"
    env = {**os.environ, "HARBOR_URL": harbor.url, "HARBOR_USERNAME": "admin", "HARBOR_PASSWORD": harbor.password}
    command = [
        sys.executable,
        "-m",
        "harborops",
        "mirror",
        "trigger",
        "--max-in-flight",
        "2",
        "--poll-interval",
        "0.05",
        "--json",
        "--state-file",
        str(state),
    ]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 20
        while len(harbor.api_requests("POST")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # several more polls: the cap holds, nothing else starts
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        process.kill()

    document = json.loads(out)
    assert process.returncode == 130, err
    assert "stopped by Ctrl-C" in err and "Traceback" not in err and PASSWORD not in out + err
    assert document["interrupted"] is True
    assert document["totals"] == {"InProgress": 2, "NotStarted": 4}
    assert len(harbor.api_requests("POST")) == 2
    assert json.loads(state.read_text())["version"] == 1


def test_harbor_going_down_mid_run_is_one_line_exit_1_and_keeps_what_finished(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.add_policy("mirror-dockerhub-alpine", task_seconds=2)
    env.add_policy("mirror-dockerhub-busybox", task_seconds=600)
    clock = EmulatorClock(env.clock)
    real_sleep = clock.sleep

    def sleep_then_crash(seconds: float) -> None:
        real_sleep(seconds)
        if env.clock.now() >= 30:  # alpine has long succeeded, busybox still runs
            env.stop()

    monkeypatch.setattr(clock, "sleep", sleep_then_crash)
    monkeypatch.setattr(mirror, "make_clock", lambda: clock)
    state = tmp_path / "state.json"

    code, out, err = run(capsys, *FAST, "--state-file", str(state))

    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "cannot reach Harbor" in err and f"state saved to {state}" in err
    recorded = json.loads(state.read_text())["sites"][env.url]["rules"]
    assert {name: r["status"] for name, r in recorded.items()} == {"mirror-dockerhub-alpine": "Succeed"}


ECHOED = "SECRETechoPW_44"


@pytest.fixture
def echoing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """An emulator whose password a failed task's log quotes back (an upstream's error echoing it)."""
    with HarborEmulator(password=ECHOED) as emulator:
        monkeypatch.setenv("HARBOR_URL", emulator.url)
        monkeypatch.setenv("HARBOR_USERNAME", "admin")
        monkeypatch.setenv("HARBOR_PASSWORD", ECHOED)
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
        monkeypatch.setenv("COLUMNS", "200")
        monkeypatch.setattr(mirror, "make_clock", lambda: EmulatorClock(emulator.clock))
        emulator.add_policy("mirror-dockerhub-bad", fail_text=f"{{ts}} [ERROR] auth failed for {ECHOED} on upstream\n")
        yield emulator


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "table"])
def test_failed_rule_reason_never_shows_a_password_harbor_echoes(
    echoing: HarborEmulator, capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    code, out, err = run(capsys, "--only", "bad", *FAST, *(["--json"] if as_json else []))

    assert code == 1
    assert ECHOED not in out + err
    if as_json:
        assert by_name(out)["mirror-dockerhub-bad"]["message"] == "auth failed for *** on upstream"
    else:
        assert "auth failed for *** on upstream" in out
