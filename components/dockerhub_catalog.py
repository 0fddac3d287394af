"""The Docker Hub catalogue: fetched by the program, guarded, and recorded by a dynamic resource.

Why the program fetches and the dynamic resource only records (see README "Docker Hub mirror"):
the rules must be declared in plain Python from a list known while the program runs, so
they show in ``pulumi preview``. A dynamic provider's answers only reach the program as
Outputs, and rules declared from an Output would have to be declared inside ``apply``. So:

1. :func:`read_last_snapshot` reads the catalogue the last successful ``up`` recorded, through
   a StackReference to this very stack (output ``dockerHubCatalog``), synchronously;
2. the program fetches the live catalogue (preview included) with ``DockerHubClient``;
3. :func:`decide_catalog` applies the safety rules: an outage, a partial answer or an empty
   list never removes rules; it falls back to the last snapshot with a warning. A shrink
   beyond ``maxShrinkFraction`` keeps the missing repositories unless ``allowShrink`` is set;
4. :class:`DockerHubCatalog` records the decided catalogue (names + ``last_updated``) in state,
   so the preview shows the catalogue diff, and its outputs feed the next run's snapshot.

The provider never talks to Docker Hub, so it needs no credentials at all: nothing secret is
in its inputs, its state or its pickled code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult
from pydantic import BaseModel, ConfigDict, ValidationError

from components.dynamic import ship_by_value
from harborops.clients.dockerhub import Catalog, DockerHubError

#: The stack output holding the recorded catalogue; the next run reads it back.
CATALOG_OUTPUT = "dockerHubCatalog"
CATALOG_TYPE = "pulumi-python:dynamic/harbor-platform:DockerHubCatalog"

# --------------------------------------------------------------------------- snapshot


class CatalogEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    name: str
    last_updated: str | None = None


class CatalogSnapshot(BaseModel):
    """The catalogue as recorded in state: names and ``last_updated``, sorted by name."""

    model_config = ConfigDict(frozen=True)

    namespace: str
    repositories: tuple[CatalogEntry, ...]

    @property
    def names(self) -> list[str]:
        return [entry.name for entry in self.repositories]

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> CatalogSnapshot:
        entries = (
            CatalogEntry(
                name=repo.name,
                last_updated=repo.last_updated.isoformat().replace("+00:00", "Z") if repo.last_updated else None,
            )
            for repo in catalog.repositories
        )
        return cls(namespace=catalog.namespace, repositories=tuple(sorted(entries, key=lambda e: e.name)))

    @classmethod
    def from_state(cls, value: Mapping[str, Any]) -> CatalogSnapshot:
        """Parse what :meth:`to_state` wrote (camelCase). Raises ValueError if it is not that."""
        try:
            repositories = [
                CatalogEntry(name=item["name"], last_updated=item.get("lastUpdated"))
                for item in value["repositories"]
            ]
            return cls(namespace=value["namespace"], repositories=tuple(sorted(repositories, key=lambda e: e.name)))
        except (KeyError, TypeError, ValidationError) as exc:
            raise ValueError(f"the recorded {CATALOG_OUTPUT} is malformed: {type(exc).__name__}") from None

    def to_state(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "repositories": [{"name": e.name, "lastUpdated": e.last_updated} for e in self.repositories],
        }

    def merged_with(self, other: CatalogSnapshot) -> CatalogSnapshot:
        """This snapshot plus the repositories only ``other`` has (their entries kept as they were)."""
        mine = {e.name for e in self.repositories}
        kept = [e for e in other.repositories if e.name not in mine]
        return self.model_copy(update={"repositories": tuple(sorted((*self.repositories, *kept), key=lambda e: e.name))})


# --------------------------------------------------------------------------- decision


class CatalogUnavailableError(pulumi.RunError):
    """No live catalogue and no recorded one: declaring rules now could only delete them."""


Source = Literal["live", "last-snapshot", "live-holding-removals"]


@dataclass(frozen=True)
class CatalogDecision:
    """What the rules are built from, where it came from, and what the operator must hear."""

    snapshot: CatalogSnapshot
    source: Source
    warnings: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


def decide_catalog(
    namespace: str,
    fetch: Callable[[], Catalog],
    previous: CatalogSnapshot | None,
    *,
    max_shrink_fraction: float,
    allow_shrink: bool,
) -> CatalogDecision:
    """Fetch the live catalogue and decide, by the safety rules, which one the rules follow.

    * fetch failed / partial answer -> last snapshot + warning (no snapshot -> CatalogUnavailableError);
    * empty list while the snapshot had repositories -> last snapshot + warning;
    * more than ``max_shrink_fraction`` of the snapshot gone -> keep the gone ones + warning,
      unless ``allow_shrink``;
    * otherwise the live catalogue, with its client warnings (e.g. token scope).
    """
    if previous is not None and previous.namespace != namespace:
        previous = None  # the mirror moved to another org: the old snapshot says nothing about it
    try:
        catalog = fetch()
    except DockerHubError as failure:
        return _fall_back(previous, f"fetching the Docker Hub catalogue of '{namespace}' failed: {failure}")
    live = CatalogSnapshot.from_catalog(catalog)
    warnings = list(catalog.warnings)
    if previous is None:
        return CatalogDecision(live, "live", tuple(warnings), added=tuple(live.names))
    if not live.repositories and previous.repositories:
        return _fall_back(previous, f"Docker Hub listed no repository in '{namespace}'", warnings)
    added = sorted(set(live.names) - set(previous.names))
    removed = sorted(set(previous.names) - set(live.names))
    shrink = len(removed) / len(previous.repositories) if previous.repositories else 0.0
    if removed and shrink > max_shrink_fraction and not allow_shrink:
        warnings.append(
            f"Docker Hub no longer lists {len(removed)} of {len(previous.repositories)} repositories in "
            f"'{namespace}' ({shrink:.0%}, more than dockerHubMirror.maxShrinkFraction "
            f"{max_shrink_fraction:.0%}); their mirror rules are KEPT. If the removal is deliberate, set "
            f"dockerHubMirror.allowShrink: true for one update. Missing: {_sample(removed)}"
        )
        return CatalogDecision(live.merged_with(previous), "live-holding-removals", tuple(warnings), tuple(added), ())
    return CatalogDecision(live, "live", tuple(warnings), tuple(added), tuple(removed))


def _fall_back(previous: CatalogSnapshot | None, reason: str, warnings: list[str] | None = None) -> CatalogDecision:
    if previous is None:
        raise CatalogUnavailableError(
            f"{reason}; there is no recorded catalogue ({CATALOG_OUTPUT}) to fall back on, so no "
            "mirror rule can be declared safely. Fix the Docker Hub access (dockerHubMirror.username, "
            "secret dockerHubToken, dockerHubMirror.apiUrl) and run again."
        )
    message = (
        f"{reason}. Using the catalogue recorded by the last update ({len(previous.repositories)} "
        "repositories): no mirror rule is added or removed in this run."
    )
    return CatalogDecision(previous, "last-snapshot", (*(warnings or []), message))


def _sample(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def read_last_snapshot(reference_name: str, opts: pulumi.ResourceOptions | None = None) -> CatalogSnapshot | None:
    """The catalogue this stack recorded on its last update, read NOW (not as an Output).

    A StackReference to the stack itself returns the outputs of its last completed update.
    The value must be known while the program runs, because it decides which rules exist;
    ``_sync_await`` is how the SDK itself turns a reference into a value (the peer lookup in
    replication_pair.py does the same). None when the stack has not recorded one yet.
    """
    from pulumi.runtime.sync_await import _sync_await

    own_stack = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
    reference = pulumi.StackReference(reference_name, stack_name=own_stack, opts=opts)
    details = _sync_await(reference.get_output_details(CATALOG_OUTPUT))
    value = details.value if details.value is not None else details.secret_value
    if value is None:
        return None
    try:
        return CatalogSnapshot.from_state(value)
    except ValueError as exc:
        pulumi.log.warn(f"{exc}; treating this run as having no recorded catalogue")
        return None


# --------------------------------------------------------------------------- dynamic resource


@ship_by_value
class DockerHubCatalogProvider(ResourceProvider):
    """Records a catalogue in state. Pickled by value; talks to nothing; holds no credentials."""

    serialize_as_secret_always = False  # nothing secret here, and a readable state helps reviews

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        if not isinstance(news.get("namespace"), str) or not news["namespace"]:
            failures.append(CheckFailure("namespace", "namespace must be a non-empty string"))
        repositories = news.get("repositories")
        if not isinstance(repositories, list) or not all(
            isinstance(r, dict) and isinstance(r.get("name"), str) and r["name"] for r in repositories
        ):
            failures.append(CheckFailure("repositories", "repositories must be a list of {name, lastUpdated}"))
        if failures:
            return CheckResult(news, failures)
        return CheckResult(DockerHubCatalogProvider._owned(news), [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Only what this provider owns: the serialized provider (code) is never compared, so a
        # code change alone is not a diff.
        old, new = DockerHubCatalogProvider._owned(olds), DockerHubCatalogProvider._owned(news)
        changed = sorted(key for key in new if old.get(key) != new.get(key))
        return DiffResult(changes=bool(changed), replaces=[], stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = DockerHubCatalogProvider._outs(props)
        return CreateResult(f"dockerhub-catalog-{outs['namespace']}", outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        # The record is the state itself: refresh keeps it (Docker Hub is read by the program).
        return ReadResult(id_, DockerHubCatalogProvider._outs(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(DockerHubCatalogProvider._outs(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None

    @staticmethod
    def _owned(props: dict[str, Any]) -> dict[str, Any]:
        by_name: dict[str, Any] = {}
        for item in props.get("repositories") or []:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                by_name[item["name"]] = item.get("lastUpdated")
        return {
            "namespace": props.get("namespace"),
            "repositories": [{"name": name, "lastUpdated": by_name[name]} for name in sorted(by_name)],
        }

    @staticmethod
    def _outs(props: dict[str, Any]) -> dict[str, Any]:
        owned = DockerHubCatalogProvider._owned(props)
        return {**owned, "repositoryCount": len(owned["repositories"])}


class DockerHubCatalog(pulumi.dynamic.Resource, module="harbor-platform", name="DockerHubCatalog"):
    """The recorded Docker Hub catalogue of one namespace (names and ``last_updated``)."""

    namespace: pulumi.Output[str]
    repositories: pulumi.Output[list[dict[str, Any]]]

    def __init__(self, name: str, snapshot: CatalogSnapshot, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(DockerHubCatalogProvider(), name, snapshot.to_state(), opts)
