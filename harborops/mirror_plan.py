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
from typing import Any

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
        raise UsageError(f"--range {text!r}: expected two letters like a-d")
    start, end = match.group(1).lower(), match.group(2).lower()
    if start > end:
        raise UsageError(f"--range {text!r}: {start} comes after {end}")
    return start, end


def split_only(values: Iterable[str]) -> list[str]:
    """--only accepts repeated flags and comma-separated lists."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def select_policies(
    policies: Iterable[PolicyInfo],
    *,
    prefix: str = DEFAULT_PREFIX,
    letter_range: tuple[str, str] | None = None,
    only: list[str] | None = None,
) -> list[PolicyInfo]:
    """Policies chosen by --only (full names or names without the prefix) or by prefix and range."""
    by_name = {policy.name: policy for policy in policies}
    if only:
        chosen, unknown = {}, []
        for name in only:
            policy = by_name.get(name) or by_name.get(prefix + name)
            if policy is None:
                unknown.append(name)
            else:
                chosen[policy.name] = policy
        if unknown:
            raise UsageError(f"--only: no replication rule named {', '.join(sorted(unknown))}")
        return sorted(chosen.values(), key=lambda p: p.name)
    selected = []
    for policy in by_name.values():
        if not policy.name.startswith(prefix):
            continue
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


@dataclass(frozen=True)
class SiteState:
    """What earlier runs against one Harbor left behind."""

    succeeded: frozenset[str]
    last_rate_limited_at: datetime | None


def load_site_state(path: Path, harbor_url: str) -> SiteState:
    """Rules that succeeded for this Harbor in earlier runs, and the last 429. A missing file is empty."""
    document = _read_state(path)
    site = document.get("sites", {}).get(harbor_url, {})
    succeeded = frozenset(name for name, record in site.get("rules", {}).items() if record.get("status") == "Succeed")
    try:
        last = datetime.fromisoformat(site["last_rate_limited_at"]) if site.get("last_rate_limited_at") else None
    except (TypeError, ValueError):
        raise UsageError(f"--state-file {path}: last_rate_limited_at is not a timestamp") from None
    return SiteState(succeeded, last)


def save_results(
    path: Path,
    harbor_url: str,
    results: Iterable[RuleResult],
    now: datetime,
    last_rate_limited_at: datetime | None = None,
) -> None:
    """Record final results for this Harbor, atomically (a Ctrl-C mid-write keeps the old file)."""
    document = _read_state(path)
    site = document.setdefault("sites", {}).setdefault(harbor_url, {"rules": {}})
    if last_rate_limited_at is not None:
        site["last_rate_limited_at"] = last_rate_limited_at.isoformat(timespec="seconds")
    for result in results:
        if result.status not in (RuleStatus.SUCCEED, RuleStatus.FAILED, RuleStatus.STOPPED):
            continue  # skipped or unfinished rules keep whatever an earlier run recorded
        site["rules"][result.rule.name] = {
            "status": result.status.value,
            "execution_id": result.execution_id,
            "rate_limited": result.rate_limited,
            "recorded_at": now.isoformat(timespec="seconds"),
        }
    document["version"] = STATE_VERSION
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=path.name, suffix=".tmp", delete=False) as tmp:
            json.dump(document, tmp, indent=2, sort_keys=True)
        os.replace(tmp.name, path)
    except OSError as exc:
        raise HarborOpsError(f"--state-file {path}: cannot write it ({exc.strerror})") from None


def _read_state(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {"version": STATE_VERSION, "sites": {}}
    except OSError as exc:
        raise HarborOpsError(f"--state-file {path}: cannot read it ({exc.strerror})") from None
    try:
        document = json.loads(text)
    except ValueError:
        raise UsageError(f"--state-file {path}: not a harborops state file (invalid JSON)") from None
    if not isinstance(document, dict) or document.get("version") != STATE_VERSION:
        raise UsageError(f"--state-file {path}: not a harborops state file (version {STATE_VERSION} expected)")
    return document
