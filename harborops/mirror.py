"""harborops mirror: start the Docker Hub mirror rules, paced against Docker Hub's rate limit.

Replaces the seed's trigger-replication.sh, which started every rule of a letter,
slept a fixed 10 seconds and moved on without waiting, so most of a large catalogue
ended in 429s. The pacing itself lives in `harborops.mirror_scheduler` (pure, with
an injectable clock); the selection, state file and --only-changed logic in
`harborops.mirror_plan`. This module is the CLI around them.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harborops.clients.dockerhub import DockerHubSettings, DockerHubUnavailableError, client_from_settings
from harborops.clients.harbor import HarborClient, HarborError, HarborNotFound, HarborPreconditionFailed
from harborops.errors import HarborOpsError, UsageError
from harborops.mirror_plan import (
    DEFAULT_PREFIX,
    PlannedRule,
    PolicyInfo,
    StateDocument,
    check_prefix,
    default_state_file,
    forget_rules,
    load_state,
    parse_range,
    plan,
    record_results,
    select_policies,
    site_state,
    source_repository,
    split_only,
    unchanged_since_last_success,
    write_state,
)
from harborops.mirror_scheduler import (
    Clock,
    ExecutionView,
    Pacer,
    PacingConfig,
    RealClock,
    RuleResult,
    RuleStatus,
    StartRefused,
)
from harborops.settings import TimeoutOption, UrlOption, UsernameOption, resolve_connection
from harborops.urls import http_url_problem

app = typer.Typer(no_args_is_help=True, help="Trigger the Docker Hub mirror rules, paced against the rate limit.")
err = Console(stderr=True, highlight=False)

# Injected by tests so the pacing sleeps move the emulator's clock instead of real time.
make_clock: Callable[[], Clock] = RealClock

FINAL_FOR_PROGRESS = frozenset({RuleStatus.SUCCEED, RuleStatus.FAILED, RuleStatus.STOPPED, RuleStatus.SKIPPED})
EXIT_INTERRUPTED = 130


class HarborReplicationApi:
    """Adapts the Harbor client to the engine's `ReplicationApi`."""

    def __init__(self, client: HarborClient) -> None:
        self._client = client

    def in_progress(self) -> list[ExecutionView]:
        return [_view(e) for e in self._client.list_executions(status="InProgress")]

    def start(self, policy_id: int) -> int:
        try:
            return self._client.start_execution(policy_id)
        except (HarborPreconditionFailed, HarborNotFound) as exc:
            raise StartRefused(str(exc)) from exc

    def execution(self, execution_id: int) -> ExecutionView:
        return _view(self._client.get_execution(execution_id))

    def failure_text(self, execution_id: int) -> str:
        """Why it failed: Docker Hub's 429 texts often appear only in the task logs."""
        failed = self._client.list_tasks(execution_id, status="Failed")
        return "\n".join(self._client.get_task_log(execution_id, task.id) for task in failed[:3])


def _view(execution: Any) -> ExecutionView:
    return ExecutionView(execution.id, execution.policy_id, execution.status, execution.status_text or "")


@app.command()
def trigger(
    url: UrlOption = None,
    username: UsernameOption = None,
    prefix: Annotated[
        str, typer.Option("--prefix", help="Select the rules whose name starts with this.")
    ] = DEFAULT_PREFIX,
    letter_range: Annotated[
        str | None,
        typer.Option("--range", help="Only rules whose first letter after the prefix is in this range, e.g. a-d."),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Only these rules (repeat, or comma-separate); the prefix may be left off."),
    ] = None,
    max_in_flight: Annotated[
        int, typer.Option("--max-in-flight", help="At most this many executions of the selected rules at once.")
    ] = 4,
    poll_interval: Annotated[float, typer.Option("--poll-interval", help="Seconds between status polls.")] = 10.0,
    backoff: Annotated[
        float, typer.Option("--backoff", help="Seconds of the first pause after a rate-limited failure.")
    ] = 60.0,
    max_backoff: Annotated[
        float,
        typer.Option(
            "--max-backoff",
            help="Longest pause; the pause doubles up to it. Keep it a fraction of Docker Hub's window "
            "(an hour): a fresh window is wasted for as long as the last pause outlasts it.",
        ),
    ] = 600.0,
    rate_limit_retries: Annotated[
        int, typer.Option("--rate-limit-retries", help="Re-queue a rate-limited rule at most this many times.")
    ] = 8,
    retry_failed: Annotated[
        int, typer.Option("--retry-failed", help="Re-run a rule that failed for another reason this many times.")
    ] = 0,
    only_changed: Annotated[
        bool,
        typer.Option(
            "--only-changed",
            help="Skip rules whose Docker Hub repository has not changed since their last success "
            "(needs DOCKERHUB_USERNAME and DOCKERHUB_TOKEN).",
        ),
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; start nothing.")] = False,
    state_file: Annotated[
        Path | None,
        typer.Option(
            "--state-file",
            help="Where results are kept so that re-running an unfinished run (exit 1 or 130) skips "
            "the rules that succeeded; a run that exits 0 forgets them. "
            "[default: $XDG_STATE_HOME/harborops/mirror-trigger.json]",
            show_default=False,
        ),
    ] = None,
    fresh: Annotated[
        bool,
        typer.Option("--fresh", help="Start over: forget earlier successes (replaces a broken state file)."),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
    timeout: TimeoutOption = 10.0,
) -> None:
    """Start the selected mirror rules, at most --max-in-flight at once, pausing on Docker Hub 429s.

    Exit code 1 when any rule ended Failed or Stopped (someone stopped it in Harbor), 130 after Ctrl-C (state saved first). After exit 1 or 130 a re-run resumes; after exit 0 it starts over.

    The state file defaults to $XDG_STATE_HOME/harborops/mirror-trigger.json (~/.local/state/harborops/mirror-trigger.json when XDG_STATE_HOME is unset). --only-changed reads DOCKERHUB_USERNAME and DOCKERHUB_TOKEN, and DOCKERHUB_BASE_URL (default https://hub.docker.com) for a Docker Hub mirror or a test.

    Example: harborops mirror trigger --range a-d --max-in-flight 3 --json
    """
    try:
        config = PacingConfig(max_in_flight, poll_interval, backoff, max_backoff, rate_limit_retries, retry_failed)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    # `is not None`: an empty value (`--only "$RULES"` with RULES unset) is misuse, not "everything"
    if only is not None and letter_range is not None:
        raise UsageError("--only and --range select in different ways; give one of them")
    check_prefix(prefix)
    letters = parse_range(letter_range) if letter_range is not None else None
    names = split_only(only) if only is not None else None
    hub_settings = _dockerhub_settings() if only_changed else None
    connection = resolve_connection(url, username)
    state = _State(state_file or default_state_file(), connection.url, fresh=fresh)

    with connection.client(timeout=timeout) as client:
        client.current_user()  # fail early, with one line, on a wrong password
        policies = _policies(client)
        selected = select_policies(policies, prefix=prefix, letter_range=letters, only=names)
        if not selected:
            raise UsageError(
                f"no replication rule matches --prefix {prefix!r}" + (f" --range {letter_range}" if letters else "")
            )
        earlier = site_state(state.document, connection.url)
        resumed = earlier.succeeded & {p.name for p in selected}
        if resumed:
            err.print(
                f"resuming an unfinished run: {len(resumed)} rule(s) that succeeded in it "
                f"(last at {earlier.recorded_at:%Y-%m-%d %H:%M %Z}) are skipped; --fresh starts over ({state.path})"
            )
        unchanged = _unchanged(client, hub_settings, selected) if hub_settings else {}
        planned = plan(selected, already_succeeded=set(resumed), unchanged=unchanged)
        if dry_run:
            _print_plan(planned, json_output)
            return
        state.check_writable()  # before anything starts: a run that cannot resume must not begin
        pacer, interrupted = _run(client, planned, config, state, earlier.last_rate_limited_at)

    results = _results(planned, pacer)
    unfinished = interrupted or any(r.status in (RuleStatus.FAILED, RuleStatus.STOPPED) for r in results)
    if not unfinished:
        state.forget([p.rule.name for p in planned])  # finished: the next run starts over
    _print_summary(results, pacer, interrupted, json_output)
    if any(r.status in (RuleStatus.FAILED, RuleStatus.STOPPED) for r in results):
        raise typer.Exit(1)
    if interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


# --- gathering ------------------------------------------------------------------------------


def _dockerhub_settings() -> DockerHubSettings:
    settings = DockerHubSettings()
    if not settings.username or settings.token is None or not settings.token.get_secret_value():
        raise UsageError("--only-changed needs Docker Hub credentials: set DOCKERHUB_USERNAME and DOCKERHUB_TOKEN")
    problem = http_url_problem(settings.base_url, credentials_in="DOCKERHUB_USERNAME / DOCKERHUB_TOKEN")
    if problem:  # up front, not an httpx traceback once Harbor has been asked
        raise UsageError(f"DOCKERHUB_BASE_URL: {problem}")
    return settings


def _policies(client: HarborClient) -> list[PolicyInfo]:
    return [
        PolicyInfo(p.id, p.name, p.enabled, source_repository({"filters": [f.model_dump() for f in p.filters]}))
        for p in client.list_policies()
    ]


def _origin(url: str) -> str:
    """scheme://host[:port] of a URL: never a user or password written into it."""
    parts = httpx.URL(url)
    return f"{parts.scheme}://{parts.host}" + (f":{parts.port}" if parts.port else "")


def _unchanged(client: HarborClient, settings: DockerHubSettings, selected: list[PolicyInfo]) -> dict[str, str]:
    """Ask Docker Hub when each repository last changed and Harbor when each rule last succeeded."""
    namespaces = sorted({p.source_repository.split("/", 1)[0] for p in selected if p.source_repository})
    last_updated: dict[str, datetime | None] = {}
    try:
        with client_from_settings(settings) as hub:
            for namespace in namespaces:
                for repo in hub.list_repositories(namespace):
                    last_updated[f"{namespace}/{repo.name}"] = repo.last_updated
    except DockerHubUnavailableError as exc:
        # the client names only the path; which Docker Hub (DOCKERHUB_BASE_URL) matters here
        raise HarborOpsError(f"--only-changed: {exc} ({_origin(settings.base_url)})") from exc
    last_success: dict[str, datetime] = {}
    for policy in selected:
        if policy.source_repository not in last_updated:
            continue  # not on Docker Hub (renamed?): run it, Harbor will say what it finds
        # start_time, not end_time: a push during that run may not have been copied.
        starts = [e.start_time for e in client.list_executions(policy_id=policy.id, status="Succeed") if e.start_time]
        if starts:
            last_success[policy.name] = max(starts)
    return unchanged_since_last_success(selected, last_success=last_success, last_updated=last_updated)


# --- running --------------------------------------------------------------------------------


class _State:
    """The state file of this run: validated when loaded, rewritten atomically after every finished rule."""

    def __init__(self, path: Path, harbor_url: str, *, fresh: bool) -> None:
        self.path = path
        self.harbor_url = harbor_url
        self.document: StateDocument = load_state(path, fresh=fresh)
        if fresh:
            forget_rules(self.document, harbor_url)

    def check_writable(self) -> None:
        write_state(self.path, self.document, usage=True)

    def save(self, results: Iterable[RuleResult], pacer: Pacer) -> None:
        record_results(self.document, self.harbor_url, results, datetime.now(UTC), pacer.stats.last_rate_limited_at)
        write_state(self.path, self.document)

    def forget(self, names: Iterable[str]) -> None:
        forget_rules(self.document, self.harbor_url, names)
        write_state(self.path, self.document)


def _run(
    client: HarborClient,
    planned: list[PlannedRule],
    config: PacingConfig,
    state: _State,
    last_rate_limited_at: datetime | None,
) -> tuple[Pacer, bool]:
    to_start = [p.rule for p in planned if p.action == "start"]
    clock = make_clock()
    stop = _StopFlag(clock)
    finished: set[int] = set()

    with _progress(len(to_start)) as (progress, task):

        def on_update(result: RuleResult) -> None:
            if result.status in FINAL_FOR_PROGRESS and result.rule.policy_id not in finished:
                finished.add(result.rule.policy_id)
                progress.advance(task)
                state.save([result], pacer)  # after every rule: a crash loses nothing finished
            progress.update(task, description=_progress_text(pacer))

        pacer = Pacer(
            HarborReplicationApi(client),
            to_start,
            config,
            clock,
            watch_ids=[p.rule.policy_id for p in planned],
            should_stop=stop.is_set,
            on_update=on_update,
            last_rate_limited_at=last_rate_limited_at,
        )
        with stop.installed():
            try:
                pacer.run()
            except KeyboardInterrupt:  # a second Ctrl-C lands wherever it lands
                stop.set()
                pacer.interrupted = True
                pacer.mark_unfinished()
            except HarborError as exc:
                state.save(pacer.results.values(), pacer)
                raise HarborOpsError(f"{exc} (stopped starting rules; state saved to {state.path})") from exc
    state.save(pacer.results.values(), pacer)
    if pacer.interrupted:
        err.print(f"stopped by Ctrl-C: no new starts; state saved to {state.path}")
    return pacer, pacer.interrupted


class _StopFlag:
    """The first Ctrl-C asks the engine to stop starting rules; the second one is Python's."""

    def __init__(self, clock: Clock) -> None:
        self._set = False
        self._clock = clock

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        wake = getattr(self._clock, "wake", None)
        if wake is not None:
            wake()

    @contextmanager
    def installed(self) -> Iterator[None]:
        def handler(signum: int, frame: object) -> None:
            self.set()
            signal.signal(signal.SIGINT, signal.default_int_handler)

        try:
            previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread (e.g. some test runners): no handler
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


@contextmanager
def _progress(total: int) -> Iterator[tuple[Progress, Any]]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,  # the summary replaces it; an error stays one line
        disable=not err.is_terminal,  # no bar in logs and pipes
    )
    with progress:
        yield progress, progress.add_task("starting", total=total)


def _progress_text(pacer: Pacer) -> str:
    counts = Counter(r.status for r in pacer.results.values())
    text = f"running {counts[RuleStatus.IN_PROGRESS]}, failed {counts[RuleStatus.FAILED]}"
    if pacer.stats.rate_limited_failures:
        text += f", rate-limited {pacer.stats.rate_limited_failures}x"
    return text


def _results(planned: list[PlannedRule], pacer: Pacer) -> list[RuleResult]:
    """Every selected rule, in name order: the skipped ones with their reason."""
    results = []
    for item in planned:
        if item.action == "start":
            results.append(pacer.results[item.rule.policy_id])
        else:
            results.append(RuleResult(item.rule, RuleStatus.SKIPPED, message=item.reason))
    return results


# --- output ---------------------------------------------------------------------------------


def _print_plan(planned: list[PlannedRule], json_output: bool) -> None:
    if json_output:
        rows = [
            {"name": p.rule.name, "policy_id": p.rule.policy_id, "action": p.action, "reason": p.reason}
            for p in planned
        ]
        typer.echo(json.dumps({"dry_run": True, "rules": rows}, indent=2))
        return
    table = Table(title="mirror trigger --dry-run: nothing was started")
    table.add_column("Rule", overflow="fold")  # the row's identity: folds, never ellipsizes
    table.add_column("Policy ID", no_wrap=True, justify="right")
    table.add_column("Action", no_wrap=True)
    table.add_column("Reason", overflow="fold")
    for p in planned:
        table.add_row(p.rule.name, str(p.rule.policy_id), p.action, p.reason)
    Console(highlight=False).print(table)
    starts = sum(1 for p in planned if p.action == "start")
    Console(highlight=False).print(f"would start {starts} of {len(planned)} selected rules")


def summary_document(results: list[RuleResult], pacer: Pacer, interrupted: bool) -> dict[str, Any]:
    """The --json summary. Field names are stable; see README.md."""
    last = pacer.stats.last_rate_limited_at
    return {
        "interrupted": interrupted,
        "totals": dict(sorted(Counter(r.status.value for r in results).items())),
        "rate_limited_failures": pacer.stats.rate_limited_failures,
        "last_rate_limited_at": last.isoformat(timespec="seconds") if last else None,
        "rules": [
            {
                "name": r.rule.name,
                "policy_id": r.rule.policy_id,
                "status": r.status.value,
                "attempts": r.attempts,
                "rate_limited": r.rate_limited,
                "execution_id": r.execution_id,
                "message": r.message,
                "warning": r.warning,
            }
            for r in results
        ],
    }


SUMMARY_COLUMNS = ("Rule", "Status", "Tries", "Execution", "Note")
SUMMARY_STYLES = {"Succeed": "green", "Failed": "red", "Stopped": "yellow", "Skipped": "dim"}
NOTE_MIN_WIDTH = 16
NOTE_MAX_CHARS = 70  # the table's note; --json has the whole message


def _short_note(row: dict[str, Any]) -> str:
    """One short note per row: the warning first, else the message; rate-limiting said when it is not."""
    note = row["warning"] or row["message"]
    if row["rate_limited"] and "rate-limited" not in note:
        note = f"rate-limited, re-queued; {note}" if note else "rate-limited, re-queued"
    return note if len(note) <= NOTE_MAX_CHARS else note[: NOTE_MAX_CHARS - 1].rstrip() + "…"


def _print_summary(results: list[RuleResult], pacer: Pacer, interrupted: bool, json_output: bool) -> None:
    document = summary_document(results, pacer, interrupted)
    if json_output:
        typer.echo(json.dumps(document, indent=2))
        return
    console = Console(highlight=False)
    rows = [
        (
            row["name"],
            row["status"],
            str(row["attempts"]),
            str(row["execution_id"] or ""),
            _short_note(row),
            "yellow" if row["warning"] else SUMMARY_STYLES.get(row["status"], ""),
        )
        for row in document["rules"]
    ]
    table = Table(title="mirror trigger" + (" (stopped by Ctrl-C)" if interrupted else ""))
    # The rule name is the row's identity: it folds, never ellipsizes; the short columns never wrap.
    fixed = sum(max(len(SUMMARY_COLUMNS[i]), *(len(r[i]) for r in rows)) for i in (1, 2, 3))
    room = console.width - fixed - (3 * len(SUMMARY_COLUMNS) + 1)  # borders and padding
    longest = max((len(r[0]) for r in rows), default=8)
    rule_width = note_width = None  # natural widths when everything fits on one line
    if longest + max(len(SUMMARY_COLUMNS[4]), *(len(r[4]) for r in rows)) > room:
        # Fixed widths: rich's own collapsing gives no column a floor and would crop the table.
        rule_width = max(8, min(longest, max(room - NOTE_MIN_WIDTH, room // 2)))
        note_width = max(4, room - rule_width)
    table.add_column("Rule", overflow="fold", width=rule_width)
    table.add_column("Status", no_wrap=True)
    table.add_column("Tries", no_wrap=True, justify="right")
    table.add_column("Execution", no_wrap=True, justify="right")
    table.add_column("Note", overflow="fold", width=note_width)
    for *cells, style in rows:
        table.add_row(*cells, style=style)
    console.print(table)
    totals = ", ".join(f"{status} {count}" for status, count in document["totals"].items())
    last = document["last_rate_limited_at"]
    console.print(totals + (f"; last rate-limited failure at {last}" if last else ""))
    warnings = [row for row in document["rules"] if row["warning"]]
    for row in warnings:
        err.print(f"[yellow]warning:[/yellow] {row['name']}: {row['warning']}")
