"""The pacing engine against a simulated Harbor on a virtual clock: no HTTP, no real time."""

from __future__ import annotations

import math

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from harborops.mirror_scheduler import (
    ExecutionView,
    Outcome,
    Pacer,
    PacingConfig,
    Rule,
    RuleStatus,
    StartRefused,
    classify,
)

TOO_MANY = (
    'http status code: 429, body: {"errors":[{"code":"TOOMANYREQUESTS","message":'
    '"You have reached your pull rate limit."}]}'
)


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class SimExecution:
    id: int
    policy_id: int
    started: float
    ends: float
    final_status: str
    status_text: str = ""
    log: str = ""
    ours: bool = True


class SimHarbor:
    """Executions last `duration`; at most `per_window` successful starts per fixed window."""

    def __init__(
        self,
        clock: VirtualClock,
        *,
        duration: float = 5.0,
        per_window: int | None = None,
        window: float = 60.0,
        failing: frozenset[int] = frozenset(),
        empty: frozenset[int] = frozenset(),
        duplicate: frozenset[int] = frozenset(),
        disabled: frozenset[int] = frozenset(),
    ) -> None:
        self.clock, self.duration, self.per_window, self.window = clock, duration, per_window, window
        self.failing, self.empty, self.duplicate, self.disabled = failing, empty, duplicate, disabled
        self.executions: dict[int, SimExecution] = {}
        self.starts: list[tuple[float, int]] = []
        self.max_concurrent = 0
        self.started_while_running: list[int] = []

    def _running(self) -> list[SimExecution]:
        return [e for e in self.executions.values() if e.ends > self.clock.now]

    def add_external(self, policy_id: int, remaining: float) -> None:
        new_id = len(self.executions) + 1
        self.executions[new_id] = SimExecution(
            new_id, policy_id, self.clock.now, self.clock.now + remaining, "Succeed", ours=False
        )

    def _window_successes(self) -> int:
        current = int(self.clock.now // self.window)
        return sum(
            1
            for e in self.executions.values()
            if e.ours and e.final_status == "Succeed" and int(e.started // self.window) == current
        )

    # --- ReplicationApi ---
    def in_progress(self) -> list[ExecutionView]:
        return [ExecutionView(e.id, e.policy_id, "InProgress") for e in self._running()]

    def start(self, policy_id: int) -> int:
        if policy_id in self.disabled:
            raise StartRefused(f"rule {policy_id} is disabled (412)")
        if any(e.policy_id == policy_id for e in self._running()):
            self.started_while_running.append(policy_id)
        now, new_id = self.clock.now, len(self.executions) + 1
        self.starts.append((now, policy_id))
        if self.per_window is not None and self._window_successes() >= self.per_window:
            execution = SimExecution(new_id, policy_id, now, now + 1.0, "Failed", log=TOO_MANY)
        elif policy_id in self.failing:
            execution = SimExecution(new_id, policy_id, now, now + 1.0, "Failed", log="manifest unknown")
        elif policy_id in self.duplicate:
            execution = SimExecution(
                new_id, policy_id, now, now + 0.1, "Failed", "Execution skipped: active replication still in progress."
            )
        elif policy_id in self.empty:
            execution = SimExecution(new_id, policy_id, now, now + 1.0, "Succeed", "no resources need to be replicated")
        else:
            execution = SimExecution(new_id, policy_id, now, now + self.duration, "Succeed")
        self.executions[new_id] = execution
        self.max_concurrent = max(self.max_concurrent, len(self._running()))
        return new_id

    def execution(self, execution_id: int) -> ExecutionView:
        e = self.executions[execution_id]
        if e.ends > self.clock.now:
            return ExecutionView(e.id, e.policy_id, "InProgress")
        return ExecutionView(e.id, e.policy_id, e.final_status, e.status_text)

    def failure_text(self, execution_id: int) -> str:
        return self.executions[execution_id].log


def rules(count: int) -> list[Rule]:
    return [Rule(i, f"mirror-dockerhub-r{i:03d}") for i in range(1, count + 1)]


def fast(**overrides: float) -> PacingConfig:
    values = {"max_in_flight": 3, "poll_interval": 1.0, "backoff": 10.0, "max_backoff": 60.0}
    values.update(overrides)
    return PacingConfig(**values)  # type: ignore[arg-type]


def by_status(results: list) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status.value] = counts.get(result.status.value, 0) + 1
    return counts


def test_never_more_than_max_in_flight_and_every_rule_succeeds() -> None:
    clock = VirtualClock()
    harbor = SimHarbor(clock)
    results = Pacer(harbor, rules(20), fast(max_in_flight=3), clock).run()
    assert by_status(results) == {"Succeed": 20}
    assert harbor.max_concurrent == 3
    assert all(r.attempts == 1 for r in results)


def test_counts_executions_started_by_someone_else_and_never_starts_a_running_rule() -> None:
    clock = VirtualClock()
    harbor = SimHarbor(clock)
    harbor.add_external(policy_id=1, remaining=30)  # a selected rule, already running
    harbor.add_external(policy_id=99, remaining=30)  # selected but resumed: only counted
    pacer = Pacer(harbor, rules(6), fast(max_in_flight=3), clock, watch_ids=[99])
    results = pacer.run()
    assert harbor.started_while_running == []
    assert [p for _, p in harbor.starts].count(1) == 0  # followed, not started again
    first = next(r for r in results if r.rule.policy_id == 1)
    assert (first.status, first.attempts, first.execution_id) == (RuleStatus.SUCCEED, 0, 1)
    # rules 1 and 99 run elsewhere until t=30: one slot of three is left, used one at a time
    assert harbor.max_concurrent == 3
    assert [(t, p) for t, p in harbor.starts] == [(0.0, 2), (5.0, 3), (10.0, 4), (15.0, 5), (20.0, 6)]


def test_rate_limit_pauses_all_starts_requeues_and_finishes_every_rule() -> None:
    clock = VirtualClock()
    harbor = SimHarbor(clock, duration=2.0, per_window=5, window=60.0)
    pacer = Pacer(harbor, rules(15), fast(max_in_flight=4, backoff=10.0, max_backoff=40.0), clock)
    results = pacer.run()
    assert by_status(results) == {"Succeed": 15}
    assert any(r.rate_limited and r.attempts > 1 for r in results)
    assert pacer.stats.pauses >= 2 and pacer.stats.last_rate_limited_at is not None
    # the allowed concurrency went down after a rate-limited failure
    assert min(pacer.stats.allowed_history) < 4
    # no start happens in the 10 s after the first rate-limited failure is seen
    first_failure_end = min(e.ends for e in harbor.executions.values() if e.final_status == "Failed")
    assert not [t for t, _ in harbor.starts if first_failure_end < t < first_failure_end + 10.0 - 1.0]


def test_backoff_grows_exponentially_while_the_window_stays_exhausted() -> None:
    clock = VirtualClock()
    harbor = SimHarbor(clock, duration=1.0, per_window=1, window=1000.0)
    pacer = Pacer(harbor, rules(3), fast(max_in_flight=1, backoff=5.0, max_backoff=40.0, rate_limit_retries=4), clock)
    results = pacer.run()
    gaps = [b[0] - a[0] for a, b in zip(harbor.starts[1:], harbor.starts[2:], strict=False)]
    # pauses of 5, 10, 20, 40, 40 (+ failure detection) between probes
    assert gaps[:4] == sorted(gaps[:4]) and gaps[3] >= 40
    # each rule gives up after 1 + 4 rate-limited attempts; nothing else is lost
    assert by_status(results) == {"Succeed": 1, "Failed": 2}
    assert all(r.rate_limited for r in results if r.status is RuleStatus.FAILED)
    assert all(r.attempts == 5 for r in results if r.status is RuleStatus.FAILED)


def test_executions_failing_in_the_same_burst_pause_once_not_four_times() -> None:
    clock = VirtualClock()
    harbor = SimHarbor(clock, duration=1.0, per_window=0, window=1000.0)
    pacer = Pacer(harbor, rules(5), fast(max_in_flight=4, backoff=10.0, max_backoff=80.0, rate_limit_retries=1), clock)
    pacer.run()
    # four start at t=0 and fail together: one pause of 10 s, not 10+20+40+80
    assert sorted(t for t, _ in harbor.starts)[4] == 11.0
    assert pacer.stats.rate_limited_failures == 10 and pacer.stats.pauses < 10


def test_concurrency_is_cut_once_per_episode_not_once_per_failed_probe() -> None:
    clock = VirtualClock()
    harbor = SimHarbor(clock, duration=5.0, per_window=2, window=1000.0)
    pacer = Pacer(harbor, rules(6), fast(max_in_flight=4, backoff=10.0, rate_limit_retries=3), clock)
    results = pacer.run()
    assert pacer.stats.allowed_history == [2.0]  # 4 -> 2, then probes of 2 that fail leave it there
    assert pacer.stats.pauses >= 3
    assert by_status(results) == {"Succeed": 2, "Failed": 4}


def test_after_a_pause_one_probe_runs_alone_until_it_gets_through() -> None:
    clock = VirtualClock()
    harbor = SimHarbor(clock, duration=30.0, per_window=2, window=60.0)
    pacer = Pacer(harbor, rules(8), fast(max_in_flight=4, backoff=10.0, max_backoff=20.0), clock)
    results = pacer.run()
    assert by_status(results) == {"Succeed": 8}
    after_first_429 = [(t, e) for t, e in harbor.starts if t > 1.0]
    probes = [t for t, _ in after_first_429 if t < 60.0]
    assert probes and len(probes) == len(set(probes))  # one at a time while the window is spent
    # 429s show 1 s after a start; the probe that starts in the new window is trusted
    # after twice that, long before its 30 s run succeeds
    probe_start = min(t for t, _ in after_first_429 if t >= 60.0)
    assert [t for t, _ in harbor.starts if probe_start < t < probe_start + 10.0]


def test_other_failures_are_reported_not_retried_unless_asked() -> None:
    clock = VirtualClock()
    results = Pacer(SimHarbor(clock, failing=frozenset({2})), rules(3), fast(), clock).run()
    failed = next(r for r in results if r.rule.policy_id == 2)
    assert (failed.status, failed.attempts, failed.rate_limited) == (RuleStatus.FAILED, 1, False)

    clock = VirtualClock()
    results = Pacer(SimHarbor(clock, failing=frozenset({2})), rules(3), fast(retry_failed=2), clock).run()
    failed = next(r for r in results if r.rule.policy_id == 2)
    assert (failed.status, failed.attempts) == (RuleStatus.FAILED, 3)


def test_results_that_look_like_something_else() -> None:
    clock = VirtualClock()
    harbor = SimHarbor(clock, empty=frozenset({1}), duplicate=frozenset({2}), disabled=frozenset({3}))
    results = {r.rule.policy_id: r for r in Pacer(harbor, rules(4), fast(), clock).run()}
    assert results[1].status is RuleStatus.SUCCEED and "no resources" in results[1].warning
    assert results[2].status is RuleStatus.SKIPPED
    assert results[3].status is RuleStatus.FAILED and "disabled" in results[3].message
    assert results[4].status is RuleStatus.SUCCEED and results[4].warning == ""


def test_stop_request_starts_nothing_more_and_reports_what_is_unfinished() -> None:
    clock = VirtualClock()
    harbor = SimHarbor(clock, duration=5.0)
    pacer = Pacer(harbor, rules(10), fast(max_in_flight=2), clock, should_stop=lambda: clock.now >= 6.0)
    results = pacer.run()
    assert pacer.interrupted
    assert len(harbor.starts) == 4  # two at t=0, two at t=5
    assert by_status(results) == {"Succeed": 2, "InProgress": 2, "NotStarted": 6}


def test_a_recent_rate_limit_from_an_earlier_run_starts_paused_at_half_the_cap() -> None:
    clock = VirtualClock()
    harbor = SimHarbor(clock, duration=5.0)
    wall = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    pacer = Pacer(
        harbor,
        rules(8),
        fast(max_in_flight=4, backoff=10.0, max_backoff=60.0),
        clock,
        wall_clock=lambda: wall,
        last_rate_limited_at=wall - timedelta(seconds=4),
    )
    results = pacer.run()
    assert by_status(results) == {"Succeed": 8}
    starts = [t for t, _ in harbor.starts]
    assert starts[0] == 6.0 and starts.count(6.0) == 1  # a lone probe, after the 6 s left of the backoff
    assert starts.count(11.0) == 2  # it got through: half of --max-in-flight 4
    assert pacer.stats.last_rate_limited_at == wall - timedelta(seconds=4)


def test_an_old_rate_limit_changes_nothing() -> None:
    clock = VirtualClock()
    harbor = SimHarbor(clock, duration=5.0)
    wall = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    Pacer(
        harbor,
        rules(8),
        fast(max_in_flight=4),
        clock,
        wall_clock=lambda: wall,
        last_rate_limited_at=wall - timedelta(hours=2),
    ).run()
    assert [t for t, _ in harbor.starts].count(0.0) == 4


@pytest.mark.parametrize(
    ("status", "text", "log", "expected"),
    [
        ("Succeed", "", "", Outcome.SUCCEEDED),
        ("Succeed", "No resources need to be replicated", "", Outcome.NOTHING_REPLICATED),
        ("Stopped", "", "", Outcome.STOPPED),
        ("Failed", "Execution skipped: active replication still in progress.", "", Outcome.SKIPPED_BY_HARBOR),
        ("Failed", "", TOO_MANY, Outcome.RATE_LIMITED),
        ("Failed", "", "[ERROR] 429 Rate limit exceeded", Outcome.RATE_LIMITED),
        ("Failed", "", "manifest unknown", Outcome.FAILED),
    ],
)
def test_classify(status: str, text: str, log: str, expected: Outcome) -> None:
    assert classify(ExecutionView(1, 1, status, text), lambda: log) is expected


def test_config_names_the_flag_at_fault() -> None:
    with pytest.raises(ValueError, match="--max-backoff"):
        PacingConfig(backoff=60, max_backoff=10)
    with pytest.raises(ValueError, match="--poll-interval"):
        PacingConfig(poll_interval=math.inf)
