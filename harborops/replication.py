"""harborops replication: which replication executions run, and for how long.

Replaces the seed's harbor-replication-monitor.sh, which missed /api/v2.0 (and got
the portal's HTML), read only the first page and fetched each policy one at a time.
Here executions are filtered by Harbor (status=InProgress unless --all), every page is
read, and rule names come from one paginated list of policies.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import typer
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from harborops.clients.harbor import HarborClient, HarborError, ReplicationExecution
from harborops.redact import redact
from harborops.settings import SecondsOption, TimeoutOption, UrlOption, UsernameOption, resolve_connection

app = typer.Typer(no_args_is_help=True, help="Replication executions: status now, or watched live.")

CREDENTIALS_HELP = (
    "Credentials: HARBOR_USERNAME (or --username) and HARBOR_PASSWORD, from the environment; "
    "the password is never a flag and never printed. HARBOR_URL (or --url) is the site."
)
MIN_INTERVAL = 1.0  # seconds between watch refreshes: less is a busy loop against Harbor

HARBOR_DEFAULT_JOB_WORKERS = 10  # harbor.yml jobservice.max_job_workers default
DELETED_POLICY = "(deleted policy)"
# Injected by tests so `watch` can move the emulator's clock between refreshes.
sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class ExecutionRow:
    """One execution as shown (and as printed by --json; the field names are stable)."""

    id: int
    policy_id: int
    rule_name: str
    status: str
    trigger: str
    runtime_seconds: int
    start_time: str | None
    end_time: str | None
    total: int
    succeed: int
    failed: int
    in_progress: int
    stopped: int
    status_text: str


def runtime_seconds(execution: ReplicationExecution, now: datetime) -> int:
    """From start_time: end_time is Harbor's zero time while an execution runs."""
    if execution.start_time is None:
        return 0
    end = execution.end_time or now
    return max(0, int((end - execution.start_time).total_seconds()))


def execution_rows(client: HarborClient, *, include_finished: bool) -> list[ExecutionRow]:
    """Every matching execution (all pages), longest-running first."""
    executions = client.list_executions(status=None if include_finished else "InProgress")
    names = {p.id: p.name for p in client.list_policies()} if executions else {}
    now = client.server_now()
    rows = [
        ExecutionRow(
            id=e.id,
            policy_id=e.policy_id,
            rule_name=names.get(e.policy_id, DELETED_POLICY),
            status=e.status,
            trigger=e.trigger,
            runtime_seconds=runtime_seconds(e, now),
            start_time=_iso(e.start_time),
            end_time=_iso(e.end_time),
            total=e.total,
            succeed=e.succeed,
            failed=e.failed,
            in_progress=e.in_progress,
            stopped=e.stopped,
            status_text=e.status_text,
        )
        for e in executions
    ]
    return sorted(rows, key=lambda r: (-r.runtime_seconds, r.id))


def format_runtime(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


# The columns that must always show in full, left to right; the rule name (after
# Policy) takes what is left of the terminal and folds onto more lines.
SHORT_COLUMNS: tuple[tuple[str, Literal["left", "right"]], ...] = (
    ("ID", "right"), ("Policy", "right"), ("Status", "left"), ("Trigger", "left"),
    ("Runtime", "right"), ("Start (UTC)", "left"), ("Tasks", "right"),
)
TASKS_LEGEND = "Tasks: succeeded/failed/in progress/stopped/total"


def task_counts(row: ExecutionRow) -> str:
    return f"{row.succeed}/{row.failed}/{row.in_progress}/{row.stopped}/{row.total}"


def executions_table(rows: list[ExecutionRow], *, long_after: int | None = None,
                     pending: dict[int, int] | None = None) -> Table:
    """One line per execution (more when a long rule name folds), readable at 80 columns.

    Every column but Rule is as wide as its widest word and never shrinks; Rule takes
    what is left and folds. The task counters share one column (legend in the caption),
    the start time is shown to the minute (--json has the second), and Pending appears
    only when some task waits, so the table fits a terminal without losing a value.
    """
    pending = pending or {}
    show_pending = any(pending.get(r.id) for r in rows)
    columns = [*SHORT_COLUMNS, *((("Pending", "right"),) if show_pending else ())]
    body = []
    for row in rows:
        is_long = long_after is not None and row.status == "InProgress" and row.runtime_seconds > long_after
        cells = [str(row.id), str(row.policy_id), row.status, row.trigger,
                 format_runtime(row.runtime_seconds) + (" LONG" if is_long else ""),
                 row.start_time[5:16].replace("T", " ") if row.start_time else "-", task_counts(row)]
        if show_pending:
            cells.append(str(pending.get(row.id, 0)))
        body.append((cells, row.rule_name, is_long))

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=0,
                  caption=TASKS_LEGEND if rows else None, caption_justify="left")
    for i, (header, justify) in enumerate(columns):
        if i == 2:
            table.add_column("Rule", overflow="fold", min_width=8)
        # A header (and Runtime's " LONG") may wrap at a space; no value is ever cut.
        values = [cells[i].split()[0] if header == "Runtime" else cells[i] for cells, _, _ in body]
        table.add_column(header, justify=justify, width=max(map(len, [*header.split(), *values])))
    for cells, rule_name, is_long in body:
        table.add_row(*cells[:2], rule_name, *cells[2:], style="bold red" if is_long else None)
    return table


def connect(url: str | None, username: str | None, timeout: float) -> HarborClient:
    """A client whose credentials Harbor has accepted (or a clear error)."""
    client = resolve_connection(url, username).client(timeout=timeout)
    try:
        client.current_user()
    except BaseException:
        client.close()
        raise
    return client


@app.command(epilog=CREDENTIALS_HELP)
def status(
    url: UrlOption = None,
    username: UsernameOption = None,
    all_statuses: Annotated[bool, typer.Option("--all", help="Every execution, not only InProgress.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="A JSON list of objects on stdout.")] = False,
    timeout: TimeoutOption = 10.0,
) -> None:
    """Show replication executions, longest-running first.

    Columns: ID, policy ID, rule name, status, trigger, runtime, start time (to the minute) and the task counters as succeeded/failed/in progress/stopped/total. The rule name folds onto more lines when the terminal is narrow; no other column is cut.

    --json prints a list of objects with: id, policy_id, rule_name, status, trigger, runtime_seconds, start_time, end_time, total, succeed, failed, in_progress, stopped, status_text.

    Example: HARBOR_URL=https://harbor.chi.example.com HARBOR_USERNAME=admin HARBOR_PASSWORD=... harborops replication status --json
    """
    with connect(url, username, timeout) as client:
        rows = execution_rows(client, include_finished=all_statuses)
    if json_output:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return
    out = Console()
    if not rows:
        out.print("No replication executions " + ("" if all_statuses else "in progress") + ".")
        return
    out.print(executions_table(rows))


@dataclass(frozen=True)
class WatchSnapshot:
    rows: list[ExecutionRow]
    pending: dict[int, int]  # execution id -> tasks Pending
    at: datetime
    error: str | None = None


def pending_tasks(client: HarborClient, rows: list[ExecutionRow], workers: int, concurrency: int = 4) -> dict[int, int]:
    """Tasks still Pending per running execution.

    Harbor's in_progress counter lumps Pending with Running, so only when more tasks
    are "in progress" than there are job-service workers can some be waiting; only
    then do we spend one call per running execution to find which.
    """
    running = [r for r in rows if r.status == "InProgress" and r.in_progress]
    if sum(r.in_progress for r in running) <= workers:
        return {}
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        counts = pool.map(lambda r: len(client.list_tasks(r.id, status="Pending")), running)
        return {r.id: n for r, n in zip(running, counts, strict=True) if n}


def watch_view(snapshot: WatchSnapshot, *, long_after: int, workers: int) -> Group:
    totals = Counter(r.status for r in snapshot.rows)
    summary = Text(f"{snapshot.at:%Y-%m-%d %H:%M:%S} UTC  ")
    summary.append("  ".join(f"{status}: {n}" for status, n in sorted(totals.items())) or "no executions")
    parts: list[Any] = [summary]
    long_runners = [r for r in snapshot.rows if r.status == "InProgress" and r.runtime_seconds > long_after]
    if long_runners:
        parts.append(Text(f"{len(long_runners)} running longer than {format_runtime(long_after)}: "
                          + ", ".join(r.rule_name for r in long_runners), style="bold red"))
    stuck = sum(snapshot.pending.values())
    if stuck:
        parts.append(Text(f"{stuck} tasks stuck Pending: all {workers} job-service workers are busy "
                          "(raise jobservice.max_job_workers or start fewer rules at once)", style="bold yellow"))
    if snapshot.error:
        parts.append(Text(f"last refresh failed: {redact(snapshot.error)}", style="red"))
    parts.append(executions_table(snapshot.rows, long_after=long_after, pending=snapshot.pending))
    return Group(*parts)


@app.command(epilog=CREDENTIALS_HELP)
def watch(
    url: UrlOption = None,
    username: UsernameOption = None,
    interval: Annotated[float, SecondsOption("--interval", "Seconds between refreshes (1 to 3600).",
                                             min=MIN_INTERVAL)] = 10.0,
    long_after: Annotated[int, typer.Option("--long-after", min=1,
                                            help="Flag executions running longer than this many minutes.")] = 60,
    workers: Annotated[int, typer.Option("--workers", min=1,
                                         help="Job-service workers (harbor.yml jobservice.max_job_workers).")]
    = HARBOR_DEFAULT_JOB_WORKERS,
    all_statuses: Annotated[bool, typer.Option("--all", help="Every execution, not only InProgress.")] = False,
    count: Annotated[int, typer.Option("--count", min=0, help="Stop after this many refreshes (0: until Ctrl-C).")]
    = 0,
    timeout: TimeoutOption = 10.0,
) -> None:
    """Refresh the execution table in place. Ctrl-C ends it.

    Above the table: totals by status, executions running longer than --long-after, and tasks stuck Pending because every job-service worker is busy. A refresh that fails is shown and the watch goes on.

    Example: harborops replication watch --interval 5 --long-after 30 --workers 20
    """
    long_seconds = long_after * 60
    with connect(url, username, timeout) as client:
        snapshot = _snapshot(client, all_statuses, workers)  # the first one must work
        view = lambda s: watch_view(s, long_after=long_seconds, workers=workers)  # noqa: E731
        try:
            with Live(view(snapshot), console=Console(), auto_refresh=False) as live:
                done = 1
                while count == 0 or done < count:
                    sleep(interval)
                    try:
                        snapshot = _snapshot(client, all_statuses, workers)
                    except HarborError as exc:  # a blip while watching is shown, not fatal
                        snapshot = WatchSnapshot(snapshot.rows, snapshot.pending, snapshot.at, str(exc))
                    live.update(view(snapshot), refresh=True)
                    done += 1
        except KeyboardInterrupt:
            pass


def _snapshot(client: HarborClient, all_statuses: bool, workers: int) -> WatchSnapshot:
    rows = execution_rows(client, include_finished=all_statuses)
    return WatchSnapshot(rows, pending_tasks(client, rows, workers), client.server_now())


def _iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None
