"""Choosing what `mirror trigger` runs: selection, the resume state file, --only-changed.

Pure functions over plain data, so the CLI stays thin and every rule is testable
without a server.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer, ValidationError

from harborops.errors import HarborOpsError, UsageError
from harborops.mirror_scheduler import Rule, RuleResult, RuleStatus

DEFAULT_PREFIX = "mirror-dockerhub-"
STATE_VERSION = 1
_RANGE = re.compile(r"^([a-z0-9])-([a-z0-9])$", re.IGNORECASE)


@dataclass(frozen=True)
class PolicyInfo:
    """What selection needs from a Harbor replication policy."""

    id: int
    name: str
    enabled: bool = True
    source_repository: str | None = None  # the `name` filter, e.g. "yourorg/app"


@dataclass(frozen=True)
class PlannedRule:
    """A selected rule and what this run will do with it."""

    rule: Rule
    action: str  # "start" or "skip"
    reason: str = ""
    source_repository: str | None = None


def parse_range(text: str) -> tuple[str, str]:
    """`a-d` → ("a", "d"); the letters bound the first character after the prefix."""
    match = _RANGE.match(text.strip())
    if not match:
        raise UsageError(f"--range {text!r}: expected two letters or digits like a-d or 0-9")
    start, end = match.group(1).lower(), match.group(2).lower()
    if start > end:
        raise UsageError(f"--range {text!r}: {start} comes after {end}")
    return start, end


def split_only(values: Iterable[str]) -> list[str]:
    """--only accepts repeated flags and comma-separated lists; naming no rule at all is misuse.

    An empty `--only "$RULES"` must not fall back to selecting every rule.
    """
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if not names:
        raise UsageError("--only: no rule name given (an empty --only would select every rule)")
    return names


def check_prefix(prefix: str) -> str:
    """An empty --prefix would select every replication rule, the sites' own ones included."""
    if not prefix.strip():
        raise UsageError("--prefix must not be empty: it is what tells mirror rules from the sites' other rules")
    return prefix


def select_policies(
    policies: Iterable[PolicyInfo],
    *,
    prefix: str = DEFAULT_PREFIX,
    letter_range: tuple[str, str] | None = None,
    only: list[str] | None = None,
) -> list[PolicyInfo]:
    """Policies chosen by --only (full names or names without the prefix) or by prefix and range.

    Only names that carry the prefix are mirror rules: --only never reaches the sites'
    own replication rules.
    """
    by_name = {policy.name: policy for policy in policies if policy.name.startswith(prefix)}
    if only:
        chosen, unknown = {}, []
        for name in only:
            policy = by_name.get(name) or by_name.get(prefix + name)
            if policy is None:
                unknown.append(name)
            else:
                chosen[policy.name] = policy
        if unknown:
            raise UsageError(
                f"--only: no mirror rule named {', '.join(sorted(unknown))} "
                f"(mirror rules are the replication rules whose name starts with {prefix!r})"
            )
        return sorted(chosen.values(), key=lambda p: p.name)
    selected = []
    for policy in by_name.values():
        first = policy.name[len(prefix) : len(prefix) + 1].lower()
        if letter_range and not (first and letter_range[0] <= first <= letter_range[1]):
            continue
        selected.append(policy)
    return sorted(selected, key=lambda p: p.name)


def source_repository(policy_json: Mapping[str, Any]) -> str | None:
    """The Docker Hub repository a per-repository rule mirrors: its `name` filter, if exact."""
    for item in policy_json.get("filters") or []:
        value = item.get("value")
        if item.get("type") == "name" and isinstance(value, str) and "*" not in value and "/" in value:
            return value
    return None


def plan(
    policies: list[PolicyInfo],
    *,
    already_succeeded: set[str],
    unchanged: Mapping[str, str] | None = None,
) -> list[PlannedRule]:
    """Mark each selected rule start or skip, with the reason a person would want to read."""
    planned = []
    for policy in policies:
        rule = Rule(policy.id, policy.name)
        if not policy.enabled:
            reason = "rule is disabled in Harbor"
        elif policy.name in already_succeeded:
            reason = "succeeded in an earlier run (state file)"
        elif unchanged and policy.name in unchanged:
            reason = unchanged[policy.name]
        else:
            planned.append(PlannedRule(rule, "start", source_repository=policy.source_repository))
            continue
        planned.append(PlannedRule(rule, "skip", reason, policy.source_repository))
    return planned


def unchanged_since_last_success(
    policies: Iterable[PolicyInfo],
    *,
    last_success: Mapping[str, datetime],
    last_updated: Mapping[str, datetime | None],
) -> dict[str, str]:
    """Rules whose Docker Hub repository has not changed since the rule last succeeded.

    Harbor spends a counted manifest pull on every matched tag on every run, even when
    nothing changed (goharbor/harbor#20632), so skipping these saves rate limit. A rule
    is only skipped on positive evidence: both timestamps known and the push older.
    """
    skipped = {}
    for policy in policies:
        repository = policy.source_repository
        succeeded = last_success.get(policy.name)
        updated = last_updated.get(repository) if repository else None
        if succeeded is not None and updated is not None and updated < succeeded:
            skipped[policy.name] = (
                f"unchanged on Docker Hub since {updated:%Y-%m-%d %H:%M}Z; last success {succeeded:%Y-%m-%d %H:%M}Z"
            )
    return skipped


# --- the state file -----------------------------------------------------------------------


def default_state_file() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "harborops" / "mirror-trigger.json"


# Timestamps carry their offset: a naive one is refused, not guessed as UTC or local time.
_Timestamp = Annotated[AwareDatetime, PlainSerializer(lambda d: d.isoformat(timespec="seconds"), return_type=str)]


class _RuleRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["Succeed", "Failed", "Stopped"]
    execution_id: int | None = None
    rate_limited: bool = False
    recorded_at: _Timestamp


class _SiteRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: dict[str, _RuleRecord] = Field(default_factory=dict)
    last_rate_limited_at: _Timestamp | None = None


class StateDocument(BaseModel):
    """The whole state file, validated at once: a hand-edited or foreign file is one error line."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1]
    sites: dict[str, _SiteRecord] = Field(default_factory=dict)


@dataclass(frozen=True)
class SiteState:
    """What an unfinished earlier run against one Harbor left behind."""

    succeeded: frozenset[str]
    last_rate_limited_at: datetime | None
    recorded_at: datetime | None = None  # when the newest remembered success was recorded


def load_state(path: Path, *, fresh: bool = False) -> StateDocument:
    """The state file, validated. A missing file is empty; with `fresh`, so is a broken one (it gets replaced)."""
    try:
        return _read_state(path)
    except UsageError:
        if fresh:
            return StateDocument(version=STATE_VERSION)
        raise


def site_state(document: StateDocument, harbor_url: str) -> SiteState:
    """Rules that succeeded for this Harbor in an unfinished earlier run, and the last 429."""
    site = document.sites.get(harbor_url) or _SiteRecord()
    succeeded = {name: record for name, record in site.rules.items() if record.status == "Succeed"}
    newest = max((record.recorded_at for record in succeeded.values()), default=None)
    return SiteState(frozenset(succeeded), site.last_rate_limited_at, newest)


def forget_rules(document: StateDocument, harbor_url: str, names: Iterable[str] | None = None) -> None:
    """Drop the remembered results of `names` (all of this Harbor's when None); the last 429 stays."""
    site = document.sites.get(harbor_url)
    if site is None:
        return
    if names is None:
        site.rules.clear()
    else:
        for name in names:
            site.rules.pop(name, None)


def record_results(
    document: StateDocument,
    harbor_url: str,
    results: Iterable[RuleResult],
    now: datetime,
    last_rate_limited_at: datetime | None = None,
) -> None:
    """Put final results for this Harbor into the document; unfinished rules keep what was there."""
    site = document.sites.setdefault(harbor_url, _SiteRecord())
    if last_rate_limited_at is not None:
        site.last_rate_limited_at = last_rate_limited_at.replace(microsecond=0)
    for result in results:
        if result.status not in (RuleStatus.SUCCEED, RuleStatus.FAILED, RuleStatus.STOPPED):
            continue  # skipped or unfinished rules keep whatever an earlier run recorded
        site.rules[result.rule.name] = _RuleRecord(
            status=result.status.value,
            execution_id=result.execution_id,
            rate_limited=result.rate_limited,
            recorded_at=now.replace(microsecond=0),
        )


def write_state(path: Path, document: StateDocument, *, usage: bool = False) -> None:
    """Replace the file atomically (a Ctrl-C mid-write keeps the old file).

    `usage`: the up-front check before anything starts, where an unwritable path is misuse (exit 2).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=path.name, suffix=".tmp", delete=False) as tmp:
            try:
                tmp.write(document.model_dump_json(indent=2) + "\n")
            except BaseException:
                os.unlink(tmp.name)
                raise
        os.replace(tmp.name, path)
    except OSError as exc:
        error = UsageError if usage else HarborOpsError
        raise error(f"--state-file {path}: cannot write it ({exc.strerror or exc})") from None


def _read_state(path: Path) -> StateDocument:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return StateDocument(version=STATE_VERSION)
    except OSError as exc:
        raise UsageError(f"--state-file {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise _not_a_state_file(path, "not UTF-8 text") from None
    except ValueError:
        raise _not_a_state_file(path, "invalid JSON") from None
    if not isinstance(document, dict) or document.get("version") != STATE_VERSION:
        raise _not_a_state_file(path, f"version {STATE_VERSION} expected")
    try:
        return StateDocument.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise _not_a_state_file(path, f"{where}: {first['msg']}{more}") from None


def _not_a_state_file(path: Path, what: str) -> UsageError:
    return UsageError(f"--state-file {path} is not a harborops state file: {what} (delete it or pass --fresh)")
