"""`harborops replication status` and `watch`, run as a user runs them, against the emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from harborops import replication
from tests.emulators.harbor import HarborEmulator
from tests.support.cli import run_cli


@pytest.fixture
def harbor() -> Iterator[HarborEmulator]:
    with HarborEmulator() as emulator:
        yield emulator


@pytest.fixture
def env(harbor: HarborEmulator, monkeypatch: pytest.MonkeyPatch) -> HarborEmulator:
    monkeypatch.setenv("HARBOR_URL", harbor.url)
    monkeypatch.setenv("HARBOR_USERNAME", "admin")
    monkeypatch.setenv("HARBOR_PASSWORD", harbor.password)
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps tables to the terminal width
    return harbor


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    return run_cli(capsys, *argv)


def test_status_reads_every_page_and_names_rules_with_one_policy_list(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = [env.add_policy(f"mirror-dockerhub-r{i:03d}", task_seconds=100_000) for i in range(230)]
    finished = env.add_policy("mirror-dockerhub-done", task_seconds=1)
    env.start_execution(finished.id)
    env.clock.advance(10)
    for policy in policies:  # each one starts 2 s after the previous: distinct runtimes
        env.start_execution(policy.id)
        env.clock.advance(2)

    code, out, err = run(capsys, "replication", "status", "--json")

    rows = json.loads(out)
    assert (code, err) == (0, "")
    assert len(rows) == 230 and {r["status"] for r in rows} == {"InProgress"}
    assert rows[0]["rule_name"] == "mirror-dockerhub-r000"  # longest first
    assert rows[0]["runtime_seconds"] == 460 and rows[-1]["runtime_seconds"] == 2
    assert rows[0]["end_time"] is None
    executions_calls = env.api_requests("GET", "/replication/executions")
    assert len(executions_calls) == 3 and all("status=InProgress" in r.query for r in executions_calls)
    assert len(env.api_requests("GET", "/replication/policies")) == 3  # 231 policies, 100 a page
    assert not [r for r in env.requests if r.path.startswith("/api/v2.0/replication/policies/")]


def test_status_json_fields_are_the_documented_ones(env: HarborEmulator, capsys: pytest.CaptureFixture[str]) -> None:
    policy = env.add_policy("mirror-dockerhub-alpine", artifacts=3, task_seconds=50)
    env.workers = 1
    env.start_execution(policy.id)
    env.clock.advance(60)

    code, out, _ = run(capsys, "replication", "status", "--json")

    assert code == 0
    assert json.loads(out) == [{
        "id": 1, "policy_id": policy.id, "rule_name": "mirror-dockerhub-alpine", "status": "InProgress",
        "trigger": "manual", "runtime_seconds": 60, "start_time": "2026-01-05T09:00:00Z", "end_time": None,
        "total": 3, "succeed": 1, "failed": 0, "in_progress": 2, "stopped": 0, "status_text": "",
    }]


def test_status_all_shows_finished_runs_and_deleted_rules(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = env.add_policy("mirror-dockerhub-gone", artifacts=0)
    env.start_execution(gone.id)
    env.clock.advance(5)
    env.remove_policy(gone.id)

    _, only_running, _ = run(capsys, "replication", "status")
    code, table, _ = run(capsys, "replication", "status", "--all")

    assert "No replication executions in progress." in only_running
    assert code == 0
    assert "(deleted policy)" in table and "Succeed" in table and "manual" in table
    assert "Rule" in table and "Runtime" in table and "Start (UTC)" in table and "Tasks" in table


def test_watch_flags_long_runners_and_tasks_stuck_pending(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        env.start_execution(env.add_policy(f"mirror-dockerhub-r{i}", artifacts=2, task_seconds=10_000).id)
    env.workers = 4
    monkeypatch.setattr(replication, "sleep", lambda _: env.clock.advance(120))

    code, out, err = run(capsys, "replication", "watch", "--interval", "1", "--count", "2",
                         "--long-after", "1", "--workers", "4")

    assert (code, err) == (0, "")
    assert "InProgress: 3" in out
    assert "3 running longer than 1m00s" in out
    assert "2 tasks stuck Pending: all 4 job-service workers are busy" in out


def test_watch_without_long_runners_or_waiting_tasks_flags_nothing(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    env.start_execution(env.add_policy("mirror-dockerhub-small", task_seconds=10_000).id)

    code, out, _ = run(capsys, "replication", "watch", "--count", "1")

    assert code == 0 and "InProgress: 1" in out
    assert "longer than" not in out and "stuck Pending" not in out
    assert not env.api_requests("GET", "/replication/executions/1/tasks")  # no need to look


def test_watch_keeps_going_through_a_harbor_blip(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env.start_execution(env.add_policy("mirror-dockerhub-r", task_seconds=10_000).id)
    monkeypatch.setattr(replication, "sleep", lambda _: env.fail_next_requests(1, status=400))

    code, out, err = run(capsys, "replication", "watch", "--count", "2")

    assert (code, err) == (0, "")
    assert "last refresh failed" in out and "InProgress: 1" in out


def test_watch_masks_a_password_echoed_in_a_failed_refresh(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env.start_execution(env.add_policy("mirror-dockerhub-r", task_seconds=10_000).id)
    env.echo_credentials = True  # the refresh's 400 quotes "bad login admin:<password>"
    monkeypatch.setattr(replication, "sleep", lambda _: env.fail_next_requests(1, status=400))

    code, out, err = run(capsys, "replication", "watch", "--count", "2")

    assert (code, err) == (0, "")
    assert "last refresh failed" in out and "bad login admin:***" in out
    assert env.password not in out


@pytest.mark.parametrize("interval", ["0", "0.5"])
def test_watch_refuses_an_interval_under_a_second(env: HarborEmulator, capsys: pytest.CaptureFixture[str],
                                                  interval: str) -> None:
    code, out, err = run(capsys, "replication", "watch", "--interval", interval)

    assert code == 2 and out == ""
    assert "--interval" in err and "greater than or equal to 1" in err
    assert not env.api_requests()  # refused before any call to Harbor


def test_status_table_shows_every_column_at_80_columns(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    long_name = "mirror-dockerhub-library-postgres-with-a-very-long-rule-name"
    env.workers = 2
    running = env.add_policy(long_name, artifacts=12, task_seconds=100_000)
    env.start_execution(running.id, trigger="scheduled")
    env.clock.advance(3725)

    code, out, _ = run(capsys, "replication", "status")

    assert code == 0
    lines = out.splitlines()
    assert max(map(len, lines)) <= 80
    for header in ("ID", "Policy", "Rule", "Status", "Trigger", "Runtime", "Start (UTC)", "Tasks"):
        assert header in out
    row = next(line for line in lines if line.lstrip().startswith("1 "))
    for value in ("InProgress", "scheduled", "1h02m05s", "01-05 09:00", "0/0/12/0/12"):
        assert value in row, row
    assert row.split()[:2] == ["1", str(running.id)]
    start, end = lines[0].index("Rule"), lines[0].index("Status")
    assert "".join(line[start:end].strip() for line in lines[2:-1]) == long_name  # folded, never cut


def test_watch_table_shows_every_column_at_80_columns(
    env: HarborEmulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    env.workers = 2
    for i in range(2):
        env.start_execution(env.add_policy(f"mirror-dockerhub-rule-number-{i}", artifacts=3, task_seconds=10_000).id)
    env.clock.advance(5)

    code, out, _ = run(capsys, "replication", "watch", "--count", "1", "--workers", "2")

    assert code == 0 and max(map(len, out.splitlines())) <= 80
    assert "Pending" in out and "InProgress" in out and "manual" in out and "0/0/3/0/3" in out


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "table"])
def test_status_never_shows_a_password_harbor_echoes_in_status_text(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    secret = "SECRETechoPW_44"
    with HarborEmulator(password=secret) as emulator:
        monkeypatch.setenv("HARBOR_URL", emulator.url)
        monkeypatch.setenv("HARBOR_USERNAME", "admin")
        monkeypatch.setenv("HARBOR_PASSWORD", secret)
        monkeypatch.setenv("COLUMNS", "200")
        policy = emulator.add_policy("mirror-dockerhub-bad", task_seconds=1)
        execution_id = emulator.start_execution(policy.id)
        emulator.clock.advance(30)
        emulator.execution(execution_id)  # settle it
        with emulator._lock:
            emulator._executions[execution_id].status_text = f"auth failed for {secret} on upstream"

        code, out, err = run(capsys, "replication", "status", "--all", *(["--json"] if as_json else []))

    assert code == 0, err
    assert secret not in out + err
    if as_json:
        assert json.loads(out)[0]["status_text"] == "auth failed for *** on upstream"
