"""harborops pulls: image pull times from Kamal deploy logs, before and after.

The seed measured the registry move with `grep -B1 | awk` one-liners over pasted
logs. `pulls report` makes that a repeatable measurement: it pairs every
`docker pull` with its end (harborops.kamal_log), groups the times, and compares a
baseline with the current state.
"""

from __future__ import annotations

import csv
import errno
import json
import math
import os
import sys
import tempfile
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from enum import Enum
from fnmatch import fnmatchcase
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from pathlib import Path
from typing import Annotated, Any, BinaryIO, TextIO

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from harborops.errors import HarborOpsError, UsageError
from harborops.kamal_log import Deploy, KamalLogParser, LogFormatError, Pull, scan_stream, sniff_log

JSON_VERSION = 1
STAT_NAMES = ("min", "median", "p90", "p95", "max", "total")
PLOT_GROUP_LIMIT = 25
PLOT_POINTS_PER_GROUP = 200
PLOT_LABEL_CHARS = 56  # row labels beyond this are cut in the middle, so boxes keep the width
PLOT_LABEL_MIN_PART = 16
PLOT_TITLE_CHARS = 95  # fits the 10-inch figure at 10 pt

app = typer.Typer(
    no_args_is_help=True,
    help="Image pull times from Kamal deploy logs, before and after.",
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)
err = Console(stderr=True, highlight=False)


class GroupBy(str, Enum):
    host = "host"
    registry = "registry"
    image = "image"
    repository = "repository"


# -- statistics ----------------------------------------------------------------


class Histogram:
    """Exact pull times in milliseconds: how many pulls took each millisecond value.

    SSHKit prints runtimes with '%5.3f', so integer milliseconds lose nothing. A group
    starts as a dict (value -> count); once it holds many distinct values it moves
    to a dense array of 4-byte counters indexed by millisecond, so memory is bounded
    by the longest pull, never by the number of pulls or the size of the log.
    """

    DENSE_AFTER = 2048  # distinct values; a dict entry costs ~25x a dense counter
    DENSE_LIMIT_MS = 30 * 60 * 1000  # dense counters cover up to 30 min: at most 7 MiB

    def __init__(self) -> None:
        self._sparse: dict[int, int] | None = {}
        self._dense: array[int] | None = None
        self._overflow: dict[int, int] = {}
        self.n = 0
        self.total_ms = 0

    def add(self, seconds: float) -> None:
        self.add_ms(round(seconds * 1000))

    def add_ms(self, ms: int) -> None:
        self.n += 1
        self.total_ms += ms
        sparse = self._sparse
        if sparse is not None:
            sparse[ms] = sparse.get(ms, 0) + 1
            if len(sparse) > self.DENSE_AFTER:
                self._densify()
            return
        dense = self._dense
        assert dense is not None
        if ms >= self.DENSE_LIMIT_MS:  # a pull of more than half an hour: rare, keep apart
            self._overflow[ms] = self._overflow.get(ms, 0) + 1
            return
        if ms >= len(dense):
            dense.extend(array("I", bytes(4 * (ms + 1 - len(dense)))))
        dense[ms] += 1

    def _densify(self) -> None:
        assert self._sparse is not None
        below = [value for value in self._sparse if value < self.DENSE_LIMIT_MS]
        dense = array("I", bytes(4 * (max(below, default=0) + 1)))
        for value, count in self._sparse.items():
            if value < self.DENSE_LIMIT_MS:
                dense[value] = count
            else:
                self._overflow[value] = count
        self._dense, self._sparse = dense, None

    def items(self) -> list[tuple[int, int]]:
        """(milliseconds, count) in ascending order."""
        if self._sparse is not None:
            return sorted(self._sparse.items())
        assert self._dense is not None
        dense = [(value, count) for value, count in enumerate(self._dense) if count]
        return dense + sorted(self._overflow.items())

    def _ranked(self) -> tuple[list[int], list[int]]:
        values: list[int] = []
        ends: list[int] = []
        running = 0
        for value, count in self.items():
            running += count
            values.append(value)
            ends.append(running)
        return values, ends

    def quantiles(self, qs: Iterable[float]) -> list[float]:
        """Linear interpolation between closest ranks (numpy's default method)."""
        values, ends = self._ranked()

        def at_rank(rank: int) -> int:
            return values[bisect_right(ends, rank)]

        result = []
        for q in qs:
            position = (self.n - 1) * q
            low = math.floor(position)
            high = min(low + 1, self.n - 1)
            low_value, high_value = at_rank(low), at_rank(high)
            result.append((low_value + (high_value - low_value) * (position - low)) / 1000)
        return result

    def sample(self, points: int) -> list[float]:
        """At most `points` values spread evenly over the ranks, for strip plots."""
        if self.n <= points:
            return [value / 1000 for value, count in self.items() for _ in range(count)]
        step = (self.n - 1) / (points - 1)
        return self.quantiles(min(1.0, i * step / (self.n - 1)) for i in range(points))

    def distinct_seconds(self) -> list[float]:
        return [value / 1000 for value, _ in self.items()]

    def summary(self) -> dict[str, float | None]:
        if self.n == 0:
            return dict.fromkeys(STAT_NAMES)
        low, median, p90, p95, high = self.quantiles((0.0, 0.5, 0.9, 0.95, 1.0))
        return {
            "min": low,
            "median": round(median, 4),
            "p90": round(p90, 4),
            "p95": round(p95, 4),
            "max": high,
            "total": self.total_ms / 1000,
        }


@dataclass
class GroupStats:
    """`count` is the pulls the times cover; `failures` every failed or unfinished pull."""

    failures: int = 0
    failures_timed: int = 0  # failures in the times (--include-failed, with a duration)
    times: Histogram = field(default_factory=Histogram)

    @property
    def count(self) -> int:
        return self.times.n

    @property
    def failures_untimed(self) -> int:
        """Failed or unfinished pulls that are in no time statistic (nor in a plot)."""
        return self.failures - self.failures_timed

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "failures": self.failures, **self.times.summary()}


@dataclass(slots=True)  # one per deploy: a year of logs holds tens of thousands
class DeployStats:
    deploy: Deploy
    pulls: int = 0
    failures: int = 0
    pull_ms: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "deploy": self.deploy.number,
            "source": self.deploy.source,
            "seconds": self.deploy.seconds,
            "pulls": self.pulls,
            "failures": self.failures,
            "pull_seconds": self.pull_ms / 1000,
        }


@dataclass(frozen=True)
class PullFilter:
    """Which pulls a report looks at. Globs match case-sensitively, like Docker names."""

    hosts: tuple[str, ...] = ()
    registries: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    include_failed: bool = False

    @property
    def filtering(self) -> bool:
        return bool(self.hosts or self.registries or self.images)

    def matches(self, pull: Pull) -> bool:
        if self.hosts and not any(fnmatchcase(pull.host, g) for g in self.hosts):
            return False
        if self.registries and not any(fnmatchcase(pull.ref.registry, g) for g in self.registries):
            return False
        if self.images:
            names = (pull.ref.image, pull.ref.repository, pull.ref.reference)
            if not any(fnmatchcase(name, g) for g in self.images for name in names):
                return False
        return True


_GROUP_FIELDS = {
    GroupBy.host: lambda pull: pull.host,
    GroupBy.registry: lambda pull: pull.ref.registry,
    GroupBy.image: lambda pull: pull.ref.image,
    GroupBy.repository: lambda pull: pull.ref.repository,
}


def group_key(pull: Pull, by: tuple[GroupBy, ...]) -> tuple[str, ...]:
    return tuple(_GROUP_FIELDS[key](pull) for key in by)


def group_key_function(by: tuple[GroupBy, ...]) -> Callable[[Pull], tuple[str, ...]]:
    """group_key with the lookups done once: it runs for every pull of a big log."""
    if len(by) == 1:
        single = _GROUP_FIELDS[by[0]]
        return lambda pull: (single(pull),)
    return lambda pull: group_key(pull, by)


@dataclass
class Collector:
    """Folds a stream of pulls into per-group and per-deploy statistics."""

    by: tuple[GroupBy, ...]
    pull_filter: PullFilter
    groups: dict[tuple[str, ...], GroupStats] = field(default_factory=dict)
    pulls_seen: int = 0
    pulls_matched: int = 0
    _deploys: dict[tuple[str, int], DeployStats] = field(default_factory=dict)
    deploys_in_order: list[Deploy] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._key = group_key_function(self.by)
        self._filtering = self.pull_filter.filtering
        self._last_deploy: tuple[tuple[str, int], DeployStats] | None = None

    def add(self, pull: Pull) -> bool:
        """Record a pull; True when it counts and so belongs in the per-pull rows."""
        self.pulls_seen += 1
        if self._filtering and not self.pull_filter.matches(pull):
            return False
        self.pulls_matched += 1
        key = self._key(pull)
        stats = self.groups.get(key)
        if stats is None:
            stats = self.groups[key] = GroupStats()
        deploy = self._deploy_stats(pull.source, pull.deploy)
        deploy.pulls += 1
        if pull.outcome != "ok":
            stats.failures += 1
            deploy.failures += 1
            if not self.pull_filter.include_failed:
                return False
            if pull.seconds is not None:
                stats.failures_timed += 1
        if pull.seconds is not None:  # a failed pull without Finished has no time to count
            ms = round(pull.seconds * 1000)
            stats.times.add_ms(ms)
            deploy.pull_ms += ms
        return True

    def _deploy_stats(self, source: str, number: int) -> DeployStats:
        # Pulls arrive deploy by deploy: remember the last one instead of hashing.
        last = self._last_deploy
        if last is not None and last[0][1] == number and last[0][0] == source:
            return last[1]
        deploy = self._deploys.get((source, number))
        if deploy is None:
            deploy = self._deploys[(source, number)] = DeployStats(Deploy(number, source))
        self._last_deploy = ((source, number), deploy)
        return deploy

    def deploys(self) -> Iterator[DeployStats]:
        for deploy in self.deploys_in_order:
            stats = self._deploys.get((deploy.source, deploy.number)) or DeployStats(deploy)
            stats.deploy = deploy  # the parser's record carries the `Finished all in` time
            yield stats

    def stats_rows(self) -> list[dict[str, Any]]:
        return [
            {"group": dict(zip((b.value for b in self.by), key, strict=True)), **stats.as_dict()}
            for key, stats in sorted(self.groups.items())
        ]


def median_deploy_seconds(deploys: Iterable[DeployStats]) -> float | None:
    times = sorted(d.deploy.seconds for d in deploys if d.deploy.seconds is not None)
    if not times:
        return None
    middle = len(times) // 2
    return times[middle] if len(times) % 2 else (times[middle - 1] + times[middle]) / 2


def delta(baseline: float | None, current: float | None) -> dict[str, float | None] | None:
    if baseline is None or current is None:
        return None
    change = current - baseline
    return {"abs": round(change, 4), "rel": round(change / baseline, 4) if baseline else None}


def compare(baseline: Collector, current: Collector) -> list[dict[str, Any]]:
    names = [b.value for b in current.by]
    rows = []
    for key in sorted(set(baseline.groups) | set(current.groups)):
        before = baseline.groups.get(key)
        after = current.groups.get(key)
        before_d = before.as_dict() if before else None
        after_d = after.as_dict() if after else None
        deltas = None
        if before_d and after_d:
            deltas = {"count": after_d["count"] - before_d["count"]}
            deltas.update({name: delta(before_d[name], after_d[name]) for name in STAT_NAMES})
        rows.append({"group": dict(zip(names, key, strict=True)), "baseline": before_d, "current": after_d, "delta": deltas})
    return rows


# -- reading logs --------------------------------------------------------------


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def _open_log(path: str, stack: ExitStack) -> tuple[BinaryIO, int | None]:
    if path == "-":
        return sys.stdin.buffer, None
    file = Path(path)
    if not file.exists():
        raise UsageError(f"{path}: no such log file")
    if file.is_dir():
        raise UsageError(f"{path}: is a directory, not a log file")
    try:
        stream = stack.enter_context(file.open("rb"))
    except OSError as exc:
        raise HarborOpsError(f"{path}: cannot read ({exc.strerror})") from exc
    return stream, file.stat().st_size


def check_stdin_once(paths: list[str], baseline: list[str], *, logs_given: bool) -> None:
    """'-' may appear once in all: stdin cannot be read a second time."""
    if paths.count("-") + baseline.count("-") <= 1:
        return
    if "-" in baseline and "-" in paths:
        where = "--baseline - and LOG -" if logs_given else "--baseline - without a LOG (which then reads stdin)"
    else:
        where = "--baseline - given twice" if baseline.count("-") > 1 else "LOG - given twice"
    raise UsageError(f"{where}: stdin can be read once")


def check_plot_path(plot: Path) -> None:
    """Refuse a --plot FILE.png that cannot be written, before any output starts."""
    if plot.name.lower() == ".png":
        raise UsageError(f"--plot {plot}: give a file name before .png, e.g. pulls.png")
    if plot.suffix.lower() != ".png":
        raise UsageError(f"--plot {plot}: the file name must end in .png")
    parent = plot.parent
    if not parent.is_dir():
        existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise UsageError(f"--plot {plot}: {existing} is not a directory")
        raise UsageError(f"--plot {plot}: directory {parent} does not exist")
    if plot.is_dir():
        raise UsageError(f"--plot {plot}: is a directory")
    # Create and remove a file beside it: permissions, read-only mounts and /proc all
    # answer only to a real attempt. An existing plot stays untouched until the end.
    try:
        descriptor, probe = tempfile.mkstemp(dir=parent, prefix=".pulls-plot-", suffix=".png")
        os.close(descriptor)
        os.unlink(probe)
    except OSError as exc:
        raise HarborOpsError(f"--plot {plot}: cannot create a file in {parent} ({exc.strerror or exc})") from exc
    if plot.exists() and not os.access(plot, os.W_OK):
        raise HarborOpsError(f"--plot {plot}: cannot overwrite it ({os.strerror(errno.EACCES)})")


def precheck(paths: list[str]) -> None:
    """Reject missing, empty and binary files before any output starts streaming."""
    for path in paths:
        if path == "-":
            continue
        with ExitStack() as stack:
            stream, size = _open_log(path, stack)
            if size == 0:
                raise HarborOpsError(f"{path}: the log is empty")
            try:
                sniff_log(stream)
            except LogFormatError as exc:
                raise UsageError(f"{path}: {exc}") from exc


def read_pulls(paths: list[str], collector: Collector, what: str) -> Iterator[Pull]:
    """Pulls from every log in order, folded into `collector`; yields the counted ones."""
    parser = KamalLogParser(source=paths[0])
    with ExitStack() as stack, _progress() as progress:
        for index, path in enumerate(paths):
            if index:
                parser.next_source(path)
            stream, size = _open_log(path, stack)
            task = progress.add_task(f"{what} {path}", total=size)
            blocks = 0

            def advance(stream: BinaryIO = stream, task: Any = task) -> None:
                nonlocal blocks
                blocks += 1
                progress.update(task, completed=stream.tell() if stream is not sys.stdin.buffer else None)

            first_deploy = len(parser.deploys)
            try:
                for pull in scan_stream(stream, parser, on_block=advance):
                    if collector.add(pull):
                        yield pull
            except LogFormatError as exc:
                raise UsageError(f"{path}: {exc}") from exc
            except OSError as exc:
                raise HarborOpsError(f"{path}: cannot read ({exc})") from exc
            if blocks == 0:
                raise HarborOpsError(f"{path}: the log is empty")
            collector.deploys_in_order.extend(parser.deploys[first_deploy:])
    if collector.pulls_seen == 0:
        label = "" if what == "log" else f"{what} "
        raise HarborOpsError(f"no image pulls ('docker pull' or 'docker image pull') found in {label}{', '.join(paths)}")
    if collector.pulls_matched == 0:
        raise HarborOpsError(
            f"{collector.pulls_seen} pulls in {what} {', '.join(paths)}, none matching --host/--registry/--image"
        )


# -- output ----------------------------------------------------------------------


def pull_row(pull: Pull) -> dict[str, Any]:
    return {
        "deploy": pull.deploy,
        "source": pull.source,
        "line": pull.line,
        "id": pull.command_id,
        "host": pull.host,
        "command": pull.command,
        "reference": pull.ref.reference,
        "image": pull.ref.image,
        "registry": pull.ref.registry,
        "repository": pull.ref.repository,
        "tag": pull.ref.tag,
        "digest": pull.ref.digest,
        "seconds": pull.seconds,
        "success": pull.success,
        "exit_status": pull.exit_status,
        "outcome": pull.outcome,
    }


ROW_FIELDS = (
    "deploy", "source", "line", "id", "host", "command", "reference", "image", "registry",
    "repository", "tag", "digest", "seconds", "success", "exit_status", "outcome",
)


class RowEncoder:
    """json.dumps(pull_row(pull)), byte for byte, at a fraction of the cost.

    A gigabyte of logs holds hundreds of thousands of pulls whose strings repeat
    (host, image, source), so encoded strings are cached, within a bound.
    """

    _TEMPLATE = '{"deploy": %d, "source": %s, "line": %d, "id": %s, %s, "seconds": %s, "success": %s, "exit_status": %s, "outcome": %s}'
    _WHAT = (
        '"host": %s, "command": %s, "reference": %s, "image": %s, "registry": %s, '
        '"repository": %s, "tag": %s, "digest": %s'
    )
    _CACHE_LIMIT = 4096

    def __init__(self) -> None:
        self._strings: dict[str, str] = {}
        self._what: dict[tuple[str, str, str], str] = {}

    def _string(self, value: str | None) -> str:
        if value is None:
            return "null"
        encoded = self._strings.get(value)
        if encoded is None:
            if len(self._strings) >= self._CACHE_LIMIT:
                self._strings.clear()
            encoded = self._strings[value] = encode_basestring_ascii(value)
        return encoded

    def _what_was_pulled(self, pull: Pull) -> str:
        """The fields fixed by host, command and reference: the same on every deploy."""
        key = (pull.host, pull.command, pull.ref.reference)
        encoded = self._what.get(key)
        if encoded is None:
            if len(self._what) >= self._CACHE_LIMIT:
                self._what.clear()
            ref, text = pull.ref, self._string
            encoded = self._what[key] = self._WHAT % (
                text(pull.host), text(pull.command), text(ref.reference), text(ref.image), text(ref.registry),
                text(ref.repository), text(ref.tag), text(ref.digest),
            )
        return encoded

    def encode(self, pull: Pull) -> str:
        return self._TEMPLATE % (
            pull.deploy, self._string(pull.source), pull.line, encode_basestring_ascii(pull.command_id),
            self._what_was_pulled(pull),
            "null" if pull.seconds is None else float.__repr__(pull.seconds),
            "true" if pull.outcome == "ok" else "false",
            "null" if pull.exit_status is None else int.__repr__(pull.exit_status),
            self._string(pull.outcome),
        )


def _write_array(out: TextIO, items: Iterable[Any], indent: str = "") -> None:
    """A JSON array written item by item: a year of deploys never sits in memory as text."""
    separator = "[\n" + indent + " "
    for item in items:
        out.write(separator + json.dumps(item))
        separator = ",\n" + indent + " "
    out.write("[]" if separator.startswith("[") else "\n" + indent + "]")


def write_json(out: TextIO, pulls: Iterator[Pull], current: Collector, baseline: Collector | None) -> None:
    """Stream the rows, then the statistics; nothing is written if reading fails first."""
    encoder = RowEncoder()
    separator = '{"version": %d,\n "pulls": [\n  ' % JSON_VERSION
    for pull in pulls:
        out.write(separator + encoder.encode(pull))
        separator = ",\n  "
    out.write("\n ],\n" if separator == ",\n  " else '{"version": %d,\n "pulls": [],\n' % JSON_VERSION)
    out.write(f' "by": {json.dumps([b.value for b in current.by])},\n')
    out.write(f' "include_failed": {json.dumps(current.pull_filter.include_failed)},\n "stats": ')
    _write_array(out, current.stats_rows(), " ")
    out.write(',\n "deploys": ')
    _write_array(out, (d.as_dict() for d in current.deploys()), " ")
    if baseline is None:
        out.write(',\n "baseline": null,\n "comparison": null\n}\n')
        return
    out.write(',\n "baseline": {\n  "stats": ')
    _write_array(out, baseline.stats_rows(), "  ")
    out.write(',\n  "deploys": ')
    _write_array(out, (d.as_dict() for d in baseline.deploys()), "  ")
    out.write('\n },\n "comparison": ')
    _write_array(out, compare(baseline, current), " ")
    out.write("\n}\n")


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _fmt_delta(change: dict[str, float | None] | None) -> tuple[str, str]:
    if change is None:
        return "—", "—"
    absolute, relative = change["abs"], change["rel"]
    colour = "green" if (absolute or 0) < 0 else "red" if (absolute or 0) > 0 else "white"
    rel = "—" if relative is None else f"{relative * 100:+.1f}%"
    return f"[{colour}]{absolute:+.2f}[/{colour}]", f"[{colour}]{rel}[/{colour}]"


def stats_table(collector: Collector) -> Table:
    names = [b.value for b in collector.by]
    table = Table(title=f"Image pull times by {' / '.join(names)} (seconds)")
    for name in names:
        table.add_column(name, overflow="fold")
    for column in ("count", "failures", *STAT_NAMES):
        table.add_column(column, justify="right")
    for row in collector.stats_rows():
        table.add_row(
            *row["group"].values(),
            str(row["count"]),
            str(row["failures"]),
            *(_fmt(row[name]) for name in STAT_NAMES),
        )
    return table


def comparison_table(rows: list[dict[str, Any]], by: tuple[GroupBy, ...]) -> Table:
    names = [b.value for b in by]
    table = Table(title=f"Pull times by {' / '.join(names)}: baseline → current (seconds)")
    for name in names:
        table.add_column(name, overflow="fold")
    for column in ("count", "failures", "median", "Δ", "Δ %", "p95", "Δ", "Δ %"):
        table.add_column(column, justify="right")
    for row in rows:
        before, after, deltas = row["baseline"] or {}, row["current"] or {}, row["delta"] or {}
        cells = [
            f"{before.get('count', '—')} → {after.get('count', '—')}",
            f"{before.get('failures', '—')} → {after.get('failures', '—')}",
        ]
        for stat in ("median", "p95"):
            cells += [f"{_fmt(before.get(stat))} → {_fmt(after.get(stat))}", *_fmt_delta(deltas.get(stat))]
        table.add_row(*row["group"].values(), *cells)
    return table


def rows_table(pulls: list[Pull]) -> Table:
    table = Table(title="Image pulls")
    for column in ("deploy", "host", "image", "tag", "seconds", "exit", "outcome"):
        numeric = column in ("deploy", "seconds", "exit")
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for pull in pulls:
        table.add_row(
            str(pull.deploy),
            pull.host,
            pull.ref.image,
            pull.ref.tag or pull.ref.digest or "",
            _fmt(pull.seconds, 3),
            "—" if pull.exit_status is None else str(pull.exit_status),
            pull.outcome,
        )
    return table


def _deploys(number: int) -> str:
    return f"{number} deploy" if number == 1 else f"{number} deploys"


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def deploys_line(current: Collector, baseline: Collector | None) -> str:
    now = median_deploy_seconds(current.deploys())
    text = f"{_deploys(len(current.deploys_in_order))}, median deploy time: {_seconds(now)} (from 'Finished all in')"
    if baseline is not None:
        before = median_deploy_seconds(baseline.deploys())
        change = delta(before, now)
        text += f"; baseline {_deploys(len(baseline.deploys_in_order))}, median {_seconds(before)}"
        if change is not None:
            text += f", Δ {change['abs']:+.1f} s"
    return text


def write_csv_stats(out: TextIO, current: Collector, comparison: list[dict[str, Any]] | None) -> None:
    names = [b.value for b in current.by]
    writer = csv.writer(out, lineterminator="\n")
    if comparison is None:
        writer.writerow([*names, "count", "failures", *STAT_NAMES])
        for row in current.stats_rows():
            writer.writerow([*row["group"].values(), row["count"], row["failures"], *(_csv(row[n]) for n in STAT_NAMES)])
        return
    header = [*names, "count_baseline", "count", "failures_baseline", "failures"]
    for stat in STAT_NAMES:
        header += [f"{stat}_baseline", stat, f"{stat}_delta", f"{stat}_delta_rel"]
    writer.writerow(header)
    for row in comparison:
        before, after, deltas = row["baseline"] or {}, row["current"] or {}, row["delta"] or {}
        cells: list[Any] = [
            _csv(before.get("count")), _csv(after.get("count")),
            _csv(before.get("failures")), _csv(after.get("failures")),
        ]
        for stat in STAT_NAMES:
            change = deltas.get(stat) or {}
            cells += [_csv(before.get(stat)), _csv(after.get(stat)), _csv(change.get("abs")), _csv(change.get("rel"))]
        writer.writerow([*row["group"].values(), *cells])


def write_csv_rows(out: TextIO, pulls: Iterator[Pull]) -> None:
    """One CSV row per pull; the header waits for the first row so errors leave no output."""
    writer = csv.DictWriter(out, fieldnames=ROW_FIELDS, lineterminator="\n")
    started = False
    for pull in pulls:
        if not started:
            writer.writeheader()
            started = True
        writer.writerow({key: _csv(value) for key, value in pull_row(pull).items()})
    if not started:
        writer.writeheader()


def _csv(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"  # as in the JSON
    return "" if value is None else value


# -- plot ------------------------------------------------------------------------


def _box_stats(hist: Histogram, label: str) -> dict[str, Any]:
    q1, median, q3 = hist.quantiles((0.25, 0.5, 0.75))
    reach = 1.5 * (q3 - q1)
    values = hist.distinct_seconds()
    inside = [v for v in values if q1 - reach <= v <= q3 + reach] or [median]
    return {
        "label": label, "med": median, "q1": q1, "q3": q3,
        "whislo": min(inside), "whishi": max(inside), "fliers": [],
    }


def _timed_pulls(collector: Collector | None, key: tuple[str, ...]) -> tuple[int, int]:
    stats = collector.groups.get(key) if collector is not None else None
    return (stats.times.n, stats.times.total_ms) if stats is not None else (0, 0)


def _plotted_groups(current: Collector, baseline: Collector | None) -> tuple[list[tuple[str, ...]], int]:
    """Groups with at least one duration, the busiest first, capped; and how many there were.

    Busiest means the most timed pulls, baseline and current together; ties go to the
    longest total pull time (the groups that cost the most), then to the name.
    """

    def weight(key: tuple[str, ...]) -> tuple[int, int]:
        (n_now, ms_now), (n_before, ms_before) = _timed_pulls(current, key), _timed_pulls(baseline, key)
        return n_now + n_before, ms_now + ms_before

    keys = set(current.groups) | (set(baseline.groups) if baseline else set())
    timed = [k for k in keys if weight(k)[0]]
    if not timed:
        raise HarborOpsError("nothing to plot: no pull has a duration (all failed or unfinished)")
    busiest = sorted(timed, key=lambda k: (*(-w for w in weight(k)), k))
    return sorted(busiest[:PLOT_GROUP_LIMIT], reverse=True), len(timed)  # reversed: top row first


def shorten_middle(text: str, limit: int, keep: tuple[int, int] = (0, 0)) -> str:
    """`text` cut to `limit` characters with '…', never inside text[keep[0]:keep[1]].

    `keep` is where the groups of a plot differ (see plot_labels); the cut goes in
    the middle when that allows, else beside the kept part, else on both sides of it.

    >>> shorten_middle("app-server-07.production.example.test", 24)
    'app-server-0…xample.test'
    >>> shorten_middle("app-server-07.production.example.test", 24, keep=(11, 13))
    'app-server-07…ample.test'
    """
    if len(text) <= limit:
        return text
    start, stop = keep
    edge = 4  # characters of the head or tail worth keeping beside an ellipsis
    head = limit // 2
    if stop <= head or start >= len(text) - (limit - 1 - head):
        return text[:head] + "…" + text[len(text) - (limit - 1 - head) :]
    if stop <= limit - 1 - edge:
        head = stop
        return text[:head] + "…" + text[len(text) - (limit - 1 - head) :]
    if len(text) - start <= limit - 1 - edge:
        tail = len(text) - start
        return text[: limit - 1 - tail] + "…" + text[start:]
    room = limit - 2 - 2 * edge
    if stop - start > room:
        return text[:head] + "…" + text[len(text) - (limit - 1 - head) :]
    left = max(edge, start - (room - (stop - start)) // 2)
    return text[:edge] + "…" + text[left : left + room] + "…" + text[len(text) - edge :]


def plot_labels(keys: list[tuple[str, ...]]) -> list[str]:
    """Row labels: each part of a group key shortened to its share, keeping what differs."""
    if not keys:
        return []
    parts = len(keys[0])
    share = max(PLOT_LABEL_MIN_PART, (PLOT_LABEL_CHARS - 3 * (parts - 1)) // parts)
    keeps = []
    for index in range(parts):
        values = {key[index] for key in keys}
        if len(values) < 2:
            keeps.append((0, 0))
            continue
        prefix = len(os.path.commonprefix(list(values)))
        suffix = len(os.path.commonprefix([value[::-1] for value in values]))
        keeps.append((prefix, suffix))
    labels = []
    for key in keys:
        shortened = []
        for part, (prefix, suffix) in zip(key, keeps, strict=True):
            stop = max(prefix + 1, len(part) - suffix) if (prefix or suffix) else 0
            shortened.append(shorten_middle(part, share, (prefix, stop) if stop else (0, 0)))
        labels.append(" / ".join(shortened))
    return labels


def plot_titles(current: Collector, baseline: Collector | None, shown: int, total_groups: int) -> tuple[str, str]:
    """The title, and a subtitle that says what the plot leaves out (empty when nothing)."""
    names = " / ".join(b.value for b in current.by)
    title = f"Image pull times by {names}" + (": baseline (grey) vs current (blue)" if baseline else "")
    notes = []
    if total_groups > shown:
        notes.append(f"the {shown} of {total_groups} groups with the most timed pulls (ties: longest total time)")
    collectors = [c for c in (baseline, current) if c is not None]
    hidden = sum(stats.failures_untimed for c in collectors for stats in c.groups.values())
    if hidden:
        pulls = "pull" if hidden == 1 else "pulls"
        if current.pull_filter.include_failed:
            notes.append(f"{hidden} failed or unfinished {pulls} without a duration not shown")
        else:
            notes.append(f"{hidden} failed or unfinished {pulls} not shown (--include-failed adds those with a duration)")
    return title, "; ".join(notes)


def draw_plot(path: Path, current: Collector, baseline: Collector | None) -> None:
    """One row per group: a box with the individual pulls strewn over it, baseline above.

    Horizontal, so that long host and image names stay readable however many groups.
    """
    import textwrap

    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    shown, total_groups = _plotted_groups(current, baseline)
    sides = [("baseline", baseline, "#8c8c8c", 0.2), ("current", current, "#1f77b4", -0.2)] if baseline else [
        ("current", current, "#1f77b4", 0.0)
    ]
    height = 0.34 if baseline else 0.5
    rows_inch = 0.62 if baseline else 0.42
    fig, ax = plt.subplots(figsize=(10.0, max(3.0, rows_inch * len(shown) + 1.9)), dpi=110, layout="constrained")
    labels = []
    for index, (key, row_label) in enumerate(zip(shown, plot_labels(shown), strict=True)):
        counts = []
        for _name, collector, colour, offset in sides:
            assert collector is not None
            stats = collector.groups.get(key)
            hist = stats.times if stats is not None else Histogram()
            counts.append(str(hist.n))
            if hist.n == 0:
                continue
            position = index + offset
            ax.bxp([_box_stats(hist, "")], positions=[position], widths=height, orientation="horizontal", showfliers=False,
                   patch_artist=True, boxprops={"facecolor": colour, "alpha": 0.3, "edgecolor": colour},
                   medianprops={"color": colour, "linewidth": 2.2}, whiskerprops={"color": colour},
                   capprops={"color": colour})
            points = hist.sample(PLOT_POINTS_PER_GROUP)
            jitter = [position + height * 0.7 * (((i * 0.6180339887) % 1.0) - 0.5) for i in range(len(points))]
            ax.scatter(points, jitter, s=10, color=colour, alpha=0.75, linewidths=0, zorder=3)
        labels.append(f"{row_label}\nn = {' → '.join(counts)}")
    ax.set_yticks(range(len(shown)), labels, fontsize=8)
    ax.set_ylim(-0.6, len(shown) - 0.4)
    ax.set_xlim(left=0)
    ax.set_xlabel("pull time (seconds)")
    title, subtitle = plot_titles(current, baseline, len(shown), total_groups)
    # Over the whole figure, wrapped: over the axes alone, long labels leave it no room.
    heading = textwrap.fill(title, PLOT_TITLE_CHARS)
    if subtitle:
        heading += "\n" + textwrap.fill(subtitle, int(PLOT_TITLE_CHARS * 1.2))
    fig.suptitle(heading, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    if baseline:
        ax.legend(handles=[Patch(color=c, alpha=0.6, label=n) for n, _, c, _ in sides], loc="lower right", fontsize=8)
    try:
        fig.savefig(path, format="png")
    except OSError as exc:
        raise HarborOpsError(f"--plot {path}: cannot write ({exc.strerror or exc})") from exc
    finally:
        plt.close(fig)


# -- the command -------------------------------------------------------------------


@app.command()
def report(
    logs: Annotated[list[str] | None, typer.Argument(metavar="LOG", help="Kamal logs (plain or .gz); '-' or none for stdin.", show_default=False)] = None,
    by: Annotated[list[GroupBy] | None, typer.Option("--by", metavar="FIELD", help="Group statistics by host, registry, image or repository; repeat to combine (default: repository).", show_default=False)] = None,
    baseline: Annotated[list[str] | None, typer.Option("--baseline", metavar="LOG", help="Logs from before the change; repeat for several.", show_default=False)] = None,
    host: Annotated[list[str] | None, typer.Option("--host", metavar="GLOB", help="Only hosts matching this glob; repeatable.", show_default=False)] = None,
    registry: Annotated[list[str] | None, typer.Option("--registry", metavar="GLOB", help="Only registries matching this glob; repeatable.", show_default=False)] = None,
    image: Annotated[list[str] | None, typer.Option("--image", metavar="GLOB", help="Only images (registry/repository, repository or the reference as written) matching this glob; repeatable.", show_default=False)] = None,
    include_failed: Annotated[bool, typer.Option("--include-failed", help="List failed and unfinished pulls too, and add failed pulls that have a duration to 'count' and the times ('failures' always counts every failed or unfinished pull).")] = False,
    rows: Annotated[bool, typer.Option("--rows", help="List every pull instead of the statistics (table and CSV; JSON always has both).")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON document on stdout (shape in README).")] = False,
    csv_output: Annotated[bool, typer.Option("--csv", help="CSV on stdout.")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", metavar="FILE.png", help="Draw box and strip plots per group, baseline above current.", show_default=False)] = None,
) -> None:
    """Pull times per host, registry, image or repository from Kamal deploy logs.

    Example: harborops pulls report --by host --baseline before.log.gz after.log --plot pulls.png
    """
    if json_output and csv_output:
        raise UsageError("--json and --csv: choose one output format")
    if plot is not None:
        check_plot_path(plot)
    paths = logs or ["-"]
    if paths == ["-"] and sys.stdin.isatty():
        raise UsageError("give one or more LOG files, or pipe a Kamal log on stdin")
    check_stdin_once(paths, list(baseline or ()), logs_given=bool(logs))
    precheck(list(baseline or ()) + paths)
    group_by = tuple(dict.fromkeys(by or [GroupBy.repository]))
    pull_filter = PullFilter(tuple(host or ()), tuple(registry or ()), tuple(image or ()), include_failed)

    before: Collector | None = None
    if baseline:
        before = Collector(group_by, pull_filter)
        for _ in read_pulls(list(baseline), before, "baseline"):
            pass
    current = Collector(group_by, pull_filter)
    pulls = read_pulls(paths, current, "log")

    if json_output:
        write_json(sys.stdout, pulls, current, before)
    elif csv_output and rows:
        write_csv_rows(sys.stdout, pulls)
    else:
        listed: list[Pull] = []
        for pull in pulls:  # statistics fold as the stream is consumed
            if rows:
                listed.append(pull)
        comparison = compare(before, current) if before is not None else None
        if plot is not None:
            _plotted_groups(current, before)  # "nothing to plot" before the table, not after
        if csv_output:
            write_csv_stats(sys.stdout, current, comparison)
        else:
            # Piped or redirected, Rich would wrap at 80 columns; a file can be wider.
            out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
            if rows:
                out.print(rows_table(listed))
            elif comparison is not None:
                out.print(comparison_table(comparison, group_by))
            else:
                out.print(stats_table(current))
            out.print(deploys_line(current, before))
    if plot is not None:
        draw_plot(plot, current, before)
