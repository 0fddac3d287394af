"""The pacing engine behind `harborops mirror trigger`, free of HTTP and of real time.

Harbor cannot pace Docker Hub pulls itself: its maintainers say it "can do nothing"
about 429s (goharbor/harbor#18094, #19967, #21267). This module decides *when* to
start which replication rule. It talks to Harbor only through `ReplicationApi` and
reads time only through `Clock`, so the same engine runs against a fake in unit
tests, against the loopback emulator with scaled time in the benchmark, and
against a real Harbor from the CLI.

How it paces:
- at most `allowed` executions of the selected rules run at once, counting the
  ones somebody else started; a rule that already runs is never started again
  (its running execution is followed instead);
- a rate-limited failure pauses *all* new starts (the Docker Hub limit is shared),
  with an exponential backoff, and re-queues the rule at the back; the first one
  after a success halves `allowed` (once per episode, not once per failed probe);
- after each pause a single execution probes the window; a success, or the probe
  outliving twice the time 429s take to show, ends the probe;
- executions started after the last rate-limited failure that succeed raise
  `allowed` by one per full round of successes (additive increase), up to
  `max_in_flight`, and reset the backoff.
"""

from __future__ import annotations

import functools
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

FINAL_STATES = frozenset({"Succeed", "Failed", "Stopped"})

# Texts Harbor puts in status_text or task logs when Docker Hub answered 429
# (goharbor/harbor#18094 shows the TOOMANYREQUESTS body, #19967 "Rate limit exceeded").
RATE_LIMIT_MARKERS = ("429", "toomanyrequests", "rate limit exceeded", "too many requests")
# A rule that matched nothing upstream still ends "Succeed" (renamed or deleted repository).
NOTHING_REPLICATED_MARKER = "no resources need to be replicated"
# Harbor's "single active replication" marks a duplicate start like this (goharbor/harbor#21347).
SKIPPED_BY_HARBOR_MARKER = "execution skipped: active replication still in progress"


@dataclass(frozen=True)
class Rule:
    """One replication policy selected for triggering."""

    policy_id: int
    name: str


@dataclass(frozen=True)
class ExecutionView:
    """What the engine needs to know about one replication execution."""

    id: int
    policy_id: int
    status: str
    status_text: str = ""


class StartRefused(Exception):
    """Harbor refused to start this one rule (disabled: 412, gone: 404); the run goes on."""


class ReplicationApi(Protocol):
    """The four Harbor calls the engine makes; the CLI adapts the Harbor client to it."""

    def in_progress(self) -> list[ExecutionView]:
        """Every execution Harbor reports as InProgress (any policy, any starter)."""

    def start(self, policy_id: int) -> int:
        """Start one execution of the policy and return its id; `StartRefused` for this rule only."""

    def execution(self, execution_id: int) -> ExecutionView:
        """The current state of one execution."""

    def failure_text(self, execution_id: int) -> str:
        """Status texts and logs of the execution's failed tasks, for classifying a failure."""


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class RealClock:
    """Wall time; `sleep` ends early when `wake` is called (Ctrl-C)."""

    def __init__(self) -> None:
        import threading

        self._woken = threading.Event()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        self._woken.wait(max(0.0, seconds))

    def wake(self) -> None:
        self._woken.set()


class Outcome(StrEnum):
    """How one finished execution is read."""

    SUCCEEDED = "succeeded"
    NOTHING_REPLICATED = "nothing-replicated"
    RATE_LIMITED = "rate-limited"
    SKIPPED_BY_HARBOR = "skipped-by-harbor"
    FAILED = "failed"
    STOPPED = "stopped"


class RuleStatus(StrEnum):
    """A rule's status in the summary. The last two only appear after Ctrl-C."""

    SUCCEED = "Succeed"
    FAILED = "Failed"
    STOPPED = "Stopped"
    SKIPPED = "Skipped"
    IN_PROGRESS = "InProgress"
    NOT_STARTED = "NotStarted"


def is_rate_limited(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in RATE_LIMIT_MARKERS)


def classify(execution: ExecutionView, failure_text: Callable[[], str]) -> Outcome:
    """Read a final execution. `failure_text` is only called (one more HTTP round) for failures."""
    text = execution.status_text.lower()
    if execution.status == "Succeed":
        return Outcome.NOTHING_REPLICATED if NOTHING_REPLICATED_MARKER in text else Outcome.SUCCEEDED
    if execution.status == "Stopped":
        return Outcome.STOPPED
    if SKIPPED_BY_HARBOR_MARKER in text:
        return Outcome.SKIPPED_BY_HARBOR
    if is_rate_limited(text) or is_rate_limited(failure_text()):
        return Outcome.RATE_LIMITED
    return Outcome.FAILED


def _first_error(log: str, limit: int = 200) -> str:
    """The first [ERROR] line of a task log, without its timestamp: the summary's reason."""
    for line in log.splitlines():
        if "[ERROR]" in line:
            return line.split("[ERROR]", 1)[1].strip()[:limit]
    return ""


# Upper bounds for PacingConfig: an hour is Docker Hub's whole window; more is a typo.
MAX_SECONDS = 3600.0
MAX_COUNT = 1000


@dataclass(frozen=True)
class PacingConfig:
    """Timing and bounds. Defaults suit a real Docker Hub; tests pass tiny values."""

    max_in_flight: int = 4
    poll_interval: float = 10.0
    backoff: float = 60.0
    max_backoff: float = 600.0
    rate_limit_retries: int = 8
    retry_failed: int = 0

    def __post_init__(self) -> None:
        # Finite and bounded: `inf` would only fail later, inside a sleep, after rules started.
        seconds = {
            "--poll-interval": self.poll_interval,
            "--backoff": self.backoff,
            "--max-backoff": self.max_backoff,
        }
        for flag, value in seconds.items():
            if not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
                raise ValueError(f"{flag} must be a number of seconds above 0 and at most {MAX_SECONDS:g}")
        if self.max_backoff < self.backoff:
            raise ValueError(f"--max-backoff ({self.max_backoff:g}) must be at least --backoff ({self.backoff:g})")
        counts = {
            "--max-in-flight": (self.max_in_flight, 1),
            "--rate-limit-retries": (self.rate_limit_retries, 0),
            "--retry-failed": (self.retry_failed, 0),
        }
        for flag, (value, least) in counts.items():
            if not least <= value <= MAX_COUNT:
                raise ValueError(f"{flag} must be between {least} and {MAX_COUNT}")


@dataclass
class RuleResult:
    """The summary line for one rule; `attempts` counts executions this run started."""

    rule: Rule
    status: RuleStatus = RuleStatus.NOT_STARTED
    attempts: int = 0
    rate_limited: bool = False
    execution_id: int | None = None
    message: str = ""
    warning: str = ""


@dataclass
class _Running:
    rule: Rule
    execution_id: int
    started_at: float
    ours: bool


@dataclass
class PacerStats:
    """What the engine learned about the limit, for the summary and the benchmark."""

    last_rate_limited_at: datetime | None = None
    rate_limited_failures: int = 0
    pauses: int = 0
    allowed_history: list[float] = field(default_factory=list)


class Pacer:
    """Runs the selected rules to a final state, paced against a shared rate limit."""

    def __init__(
        self,
        api: ReplicationApi,
        rules: Iterable[Rule],
        config: PacingConfig,
        clock: Clock,
        *,
        watch_ids: Iterable[int] = (),
        should_stop: Callable[[], bool] = lambda: False,
        on_update: Callable[[RuleResult], None] = lambda result: None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        last_rate_limited_at: datetime | None = None,
    ) -> None:
        self._api = api
        self._config = config
        self._clock = clock
        self._should_stop = should_stop
        self._on_update = on_update
        self._wall_clock = wall_clock
        self.results: dict[int, RuleResult] = {rule.policy_id: RuleResult(rule) for rule in rules}
        # Selected rules this run does not trigger (resumed, unchanged) still count
        # towards the in-flight cap when somebody else runs them.
        self._watched = frozenset(watch_ids) | frozenset(self.results)
        self._pending: deque[Rule] = deque(result.rule for result in self.results.values())
        self._running: dict[int, _Running] = {}
        self._failed_retries: dict[int, int] = {}
        self._rate_limit_retries: dict[int, int] = {}
        self._allowed = float(config.max_in_flight)
        self._successes_this_round = 0
        self._succeeded_since_rate_limit = True  # so the first 429 of a run does cut concurrency
        self._next_backoff = config.backoff
        self._paused_until = -math.inf
        self._last_rate_limit_mono = -math.inf
        # After a 429, one execution at a time probes whether the window reopened.
        self._probing = False
        # Longest time from start to a seen rate-limited failure: an execution that has
        # run twice that long got past the point where Docker Hub refuses it.
        self._rate_limit_latency = 0.0
        self.stats = PacerStats()
        self.interrupted = False
        if last_rate_limited_at is not None:
            self._remember(last_rate_limited_at)

    def _remember(self, last_rate_limited_at: datetime) -> None:
        """A run that starts soon after an earlier one was rate-limited starts carefully:
        it waits out what is left of the first backoff, probes, then runs at half the cap."""
        self.stats.last_rate_limited_at = last_rate_limited_at
        age = (self._wall_clock() - last_rate_limited_at).total_seconds()
        if age < self._config.backoff:
            self._paused_until = self._clock.monotonic() + self._config.backoff - age
        if age < self._config.max_backoff:
            self._allowed = max(1.0, self._config.max_in_flight / 2)
            self._probing = True
            self.stats.allowed_history.append(self._allowed)

    # --- the loop -------------------------------------------------------------

    def run(self) -> list[RuleResult]:
        """Start, follow and re-queue until every rule is final, or until asked to stop."""
        while self._pending or self._running:
            if self._should_stop():
                self.interrupted = True
                break
            self._poll_running()
            others = self._adopt_or_count_others()
            if not self._should_stop():
                self._start_what_fits(others)
            if self._pending or self._running:
                self._clock.sleep(self._config.poll_interval)
        if self.interrupted:
            self.mark_unfinished()
        return list(self.results.values())

    def _poll_running(self) -> None:
        for policy_id, running in list(self._running.items()):
            view = self._api.execution(running.execution_id)
            if view.status not in FINAL_STATES:
                continue
            del self._running[policy_id]
            # Task logs cost extra calls: fetched only for a failure, and only once.
            failure_text = functools.cache(functools.partial(self._api.failure_text, running.execution_id))
            outcome = classify(view, failure_text)
            if outcome is Outcome.FAILED and not view.status_text:
                view = ExecutionView(view.id, view.policy_id, view.status, _first_error(failure_text()))
            self._finish(running, view, outcome)
        self._end_probe_if_past_the_gate()

    def _end_probe_if_past_the_gate(self) -> None:
        """A probe still running well past the time 429s take to show has got through:
        open up now instead of waiting the whole execution for its success."""
        if not self._probing or self._rate_limit_latency <= 0:
            return
        now = self._clock.monotonic()
        for running in self._running.values():
            if (
                running.started_at >= self._last_rate_limit_mono
                and now - running.started_at > 2 * self._rate_limit_latency
            ):
                self._probing = False
                self._succeeded_since_rate_limit = True
                return

    def _adopt_or_count_others(self) -> int:
        """Follow executions someone else started for our pending rules; count the rest."""
        others = 0
        pending_ids = {rule.policy_id for rule in self._pending}
        for view in self._api.in_progress():
            if view.policy_id not in self._watched or view.policy_id in self._running:
                continue
            if view.policy_id in pending_ids:
                rule = self.results[view.policy_id].rule
                self._pending.remove(rule)
                pending_ids.discard(view.policy_id)
                self._running[view.policy_id] = _Running(rule, view.id, self._clock.monotonic(), ours=False)
                result = self.results[view.policy_id]
                result.execution_id, result.status = view.id, RuleStatus.IN_PROGRESS
                result.message = "followed an execution started elsewhere"
                self._on_update(result)
            else:
                others += 1  # a selected rule we do not trigger now, run by someone else
        return others

    def _start_what_fits(self, others: int) -> None:
        now = self._clock.monotonic()
        if now < self._paused_until:
            return
        limit = 1 if self._probing else math.floor(self._allowed)
        while self._pending and len(self._running) + others < limit:
            rule = self._pending.popleft()
            result = self.results[rule.policy_id]
            try:
                execution_id = self._api.start(rule.policy_id)
            except StartRefused as exc:
                result.status, result.message = RuleStatus.FAILED, str(exc)
                self._on_update(result)
                continue
            self._running[rule.policy_id] = _Running(rule, execution_id, now, ours=True)
            result.attempts += 1
            result.execution_id, result.status, result.message = execution_id, RuleStatus.IN_PROGRESS, ""
            self._on_update(result)

    # --- reading outcomes -----------------------------------------------------

    def _finish(self, running: _Running, view: ExecutionView, outcome: Outcome) -> None:
        result = self.results[running.rule.policy_id]
        if outcome is Outcome.RATE_LIMITED:
            self._on_rate_limited(running, result)
            return
        if outcome in (Outcome.SUCCEEDED, Outcome.NOTHING_REPLICATED):
            self._on_success(running)
            result.status = RuleStatus.SUCCEED
            if outcome is Outcome.NOTHING_REPLICATED:
                result.warning = "no resources need to be replicated: repository renamed or deleted upstream?"
        elif outcome is Outcome.SKIPPED_BY_HARBOR:
            result.status, result.message = RuleStatus.SKIPPED, view.status_text
        elif outcome is Outcome.STOPPED:
            result.status, result.message = RuleStatus.STOPPED, view.status_text or "stopped in Harbor"
        elif self._failed_retries.get(result.rule.policy_id, 0) < self._config.retry_failed:
            self._failed_retries[result.rule.policy_id] = self._failed_retries.get(result.rule.policy_id, 0) + 1
            self._pending.append(result.rule)
            result.status, result.message = RuleStatus.NOT_STARTED, "re-queued after a failure (--retry-failed)"
        else:
            result.status, result.message = RuleStatus.FAILED, view.status_text or "failed (see the task logs)"
        self._on_update(result)

    def _on_rate_limited(self, running: _Running, result: RuleResult) -> None:
        now = self._clock.monotonic()
        self._rate_limit_latency = max(self._rate_limit_latency, now - running.started_at)
        result.rate_limited = True
        self.stats.rate_limited_failures += 1
        self.stats.last_rate_limited_at = self._wall_clock()
        # Executions started before the last rate-limit signal failed in the same
        # burst: they confirm the limit but must not compound the backoff again.
        if running.started_at >= self._last_rate_limit_mono:
            self._paused_until = now + self._next_backoff
            self._next_backoff = min(self._next_backoff * 2, self._config.max_backoff)
            self.stats.pauses += 1
            # Concurrency is cut once per episode; probes that fail before anything got
            # through again only lengthen the pause. Halving on every probe left the run
            # at one execution at a time when the window reopened (bench: 1.21x -> 1.03x).
            if self._succeeded_since_rate_limit:
                self._allowed = max(1.0, self._allowed / 2)
                self.stats.allowed_history.append(self._allowed)
            self._successes_this_round = 0
            self._succeeded_since_rate_limit = False
            self._probing = True
        self._last_rate_limit_mono = now
        used = self._rate_limit_retries.get(result.rule.policy_id, 0)
        if used < self._config.rate_limit_retries:
            self._rate_limit_retries[result.rule.policy_id] = used + 1
            # At the back: the next probe is another rule, so one unlucky rule does
            # not burn its whole retry bound while the window is still exhausted.
            self._pending.append(result.rule)
            result.status, result.message = RuleStatus.NOT_STARTED, "re-queued after a rate-limited failure"
        else:
            result.status = RuleStatus.FAILED
            result.message = (
                f"rate-limited {used + 1} time{'s' if used else ''}; gave up "
                f"(--rate-limit-retries {self._config.rate_limit_retries})"
            )
        self._on_update(result)

    def _on_success(self, running: _Running) -> None:
        if running.started_at < self._last_rate_limit_mono:
            return  # it ran before the limit bit; it says nothing about the current pace
        self._next_backoff = self._config.backoff
        self._succeeded_since_rate_limit = True
        self._probing = False
        self._successes_this_round += 1
        if self._successes_this_round >= math.floor(self._allowed) and self._allowed < self._config.max_in_flight:
            self._allowed = min(float(self._config.max_in_flight), math.floor(self._allowed) + 1.0)
            self._successes_this_round = 0
            self.stats.allowed_history.append(self._allowed)

    def mark_unfinished(self) -> None:
        """After a stop: report what still runs in Harbor and what never started."""
        for running in self._running.values():
            result = self.results[running.rule.policy_id]
            result.status = RuleStatus.IN_PROGRESS
            result.message = f"still running in Harbor (execution {running.execution_id}) when stopped"
        for rule in self._pending:
            result = self.results[rule.policy_id]
            result.status = RuleStatus.NOT_STARTED
            result.message = "not started: stopped by Ctrl-C"
