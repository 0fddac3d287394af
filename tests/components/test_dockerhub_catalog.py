"""DockerHubCatalog's provider through the real dynamic host, and the catalogue safety rules."""

from __future__ import annotations

import base64
import pickletools
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from components.dockerhub_catalog import (
    CatalogSnapshot,
    CatalogUnavailableError,
    DockerHubCatalogProvider,
    decide_catalog,
)
from harborops.clients.dockerhub import (
    Catalog,
    DockerHubClient,
    DockerHubIncompleteError,
    DockerHubUnavailableError,
    Repository,
)
from tests.emulators.dockerhub import DockerHubEmulator
from tests.support.dynamic_host import DynamicProviderHost

ORG = "yourorg"
STATE = {
    "namespace": ORG,
    "repositories": [
        {"name": "api", "lastUpdated": "2026-01-02T00:00:00Z"},
        {"name": "web", "lastUpdated": "2026-01-01T00:00:00Z"},
    ],
}


@pytest.fixture(scope="module")
def host() -> Iterator[DynamicProviderHost]:
    # No Docker Hub credentials in the host's environment: the provider must not need any.
    with DynamicProviderHost(env={"DOCKERHUB_TOKEN": "", "DOCKERHUB_USERNAME": ""}) as running:
        yield running


@pytest.fixture(scope="module")
def provider() -> str:
    return DynamicProviderHost.serialize(DockerHubCatalogProvider())


def imported_modules(pickled: bytes) -> set[str]:
    """Modules the pickle imports by reference (the module half of each STACK_GLOBAL)."""
    strings: list[str] = []
    modules = set()
    for opcode, argument, _ in pickletools.genops(pickled):
        if isinstance(argument, str):
            strings.append(argument)
        elif opcode.name == "STACK_GLOBAL":
            modules.add(strings[-2])
        elif opcode.name == "GLOBAL":
            modules.add(str(argument).split(" ")[0])
    return modules


def test_the_pickled_provider_carries_its_code_not_an_import_of_this_repository(provider: str) -> None:
    modules = imported_modules(base64.b64decode(provider))
    assert not {m for m in modules if m.split(".")[0] in ("components", "harborops", "tests")}
    assert "pulumi.dynamic.dynamic" in modules  # the SDK base classes are imported, as they should be


def test_check_create_read_update_through_the_real_host(host: DynamicProviderHost, provider: str) -> None:
    shuffled = {**STATE, "repositories": list(reversed(STATE["repositories"]))}
    checked = host.check(provider, {}, shuffled)
    assert checked == {"inputs": STATE, "failures": []}  # normalised: sorted by name
    created = host.create(provider, checked["inputs"])
    assert created == {"id": "dockerhub-catalog-yourorg", "outs": {**STATE, "repositoryCount": 2}}
    assert host.read(provider, created["id"], created["outs"]) == created
    grown = {**STATE, "repositories": [*STATE["repositories"], {"name": "worker", "lastUpdated": None}]}
    assert host.update(provider, created["id"], created["outs"], grown)["outs"]["repositoryCount"] == 3
    host.delete(provider, created["id"], grown)


def test_check_rejects_a_malformed_catalogue(host: DynamicProviderHost, provider: str) -> None:
    failures = host.check(provider, {}, {"namespace": "", "repositories": [{"lastUpdated": None}]})["failures"]
    assert {f["property"] for f in failures} == {"namespace", "repositories"}


@pytest.mark.parametrize(
    ("news", "changes"),
    [
        ({**STATE, "repositories": list(reversed(STATE["repositories"]))}, "DIFF_NONE"),
        ({**STATE, "repositories": STATE["repositories"][:1]}, "DIFF_SOME"),
        ({**STATE, "repositories": [{"name": "api", "lastUpdated": "2026-03-01T00:00:00Z"}, STATE["repositories"][1]]}, "DIFF_SOME"),
        ({**STATE, "namespace": "otherorg"}, "DIFF_SOME"),
    ],
    ids=["reordered", "repository-gone", "pushed-to", "other-org"],
)
def test_diff_compares_the_catalogue_only(host: DynamicProviderHost, provider: str, news: dict[str, Any], changes: str) -> None:
    diff = host.diff(provider, "dockerhub-catalog-yourorg", {**STATE, "repositoryCount": 2}, news)
    assert diff == {"changes": changes, "replaces": [], "delete_before_replace": False}


def test_a_code_change_alone_is_no_diff(host: DynamicProviderHost, provider: str) -> None:
    # The state carries whatever build recorded it; only the catalogue is compared.
    olds = {**STATE, "__provider": base64.b64encode(b"an older build of the provider").decode()}
    assert host.diff(provider, "dockerhub-catalog-yourorg", olds, STATE)["changes"] == "DIFF_NONE"


def test_direct_calls_match_the_host(provider: str) -> None:
    direct = DockerHubCatalogProvider()
    assert direct.check({}, STATE).inputs == STATE
    assert direct.diff("x", STATE, STATE).changes is False
    assert direct.create(STATE).outs == {**STATE, "repositoryCount": 2}


# --------------------------------------------------------------------------- safety rules


def catalog(names: list[str], warnings: tuple[str, ...] = ()) -> Catalog:
    stamp = datetime(2026, 1, 1, tzinfo=timezone.utc)
    repos = tuple(Repository(name=n, namespace=ORG, last_updated=stamp) for n in names)
    return Catalog(namespace=ORG, repositories=repos, count=len(names), route="/v2/namespaces", pages=1, warnings=warnings)


def snapshot(names: list[str]) -> CatalogSnapshot:
    return CatalogSnapshot.from_catalog(catalog(names))


def failing(error: Exception) -> Any:
    def fetch() -> Catalog:
        raise error

    return fetch


def decide(fetch: Any, previous: CatalogSnapshot | None, *, fraction: float = 0.1, allow: bool = False) -> Any:
    return decide_catalog(ORG, fetch, previous, max_shrink_fraction=fraction, allow_shrink=allow)


NAMES = [f"r{i:02d}" for i in range(20)]


def test_first_run_uses_the_live_catalogue() -> None:
    decision = decide(lambda: catalog(NAMES), None)
    assert decision.source == "live" and decision.snapshot.names == NAMES and decision.warnings == ()


def test_first_run_without_docker_hub_fails_clearly() -> None:
    with pytest.raises(CatalogUnavailableError, match="no recorded catalogue"):
        decide(failing(DockerHubUnavailableError("Docker Hub answered 503 on /v2/x")), None)


@pytest.mark.parametrize(
    "error", [DockerHubUnavailableError("Docker Hub answered 503 on /v2/x"), DockerHubIncompleteError(ORG, 17, 20)]
)
def test_outage_or_partial_answer_falls_back_to_the_record(error: Exception) -> None:
    decision = decide(failing(error), snapshot(NAMES))
    assert decision.source == "last-snapshot" and decision.snapshot == snapshot(NAMES)
    assert str(error) in decision.warnings[0]


def test_an_empty_list_never_empties_the_mirror_even_with_allow_shrink() -> None:
    decision = decide(lambda: catalog([]), snapshot(NAMES), allow=True)
    assert decision.source == "last-snapshot" and decision.snapshot.names == NAMES


def test_a_small_shrink_and_growth_apply_directly() -> None:
    decision = decide(lambda: catalog([*NAMES[1:], "zz"]), snapshot(NAMES))
    assert decision.source == "live" and decision.removed == ("r00",) and decision.added == ("zz",)


def test_a_large_shrink_holds_removals_but_takes_additions() -> None:
    decision = decide(lambda: catalog([*NAMES[5:], "zz"]), snapshot(NAMES))
    assert decision.source == "live-holding-removals" and decision.removed == ()
    assert decision.snapshot.names == sorted([*NAMES, "zz"])
    assert "allowShrink" in decision.warnings[0] and "5 of 20" in decision.warnings[0]
    allowed = decide(lambda: catalog(NAMES[5:]), snapshot(NAMES), allow=True)
    assert allowed.snapshot.names == NAMES[5:] and len(allowed.removed) == 5


def test_a_snapshot_of_another_org_is_ignored() -> None:
    other = CatalogSnapshot(namespace="otherorg", repositories=snapshot(NAMES).repositories)
    decision = decide(lambda: catalog(NAMES[:3]), other)
    assert decision.source == "live" and decision.snapshot.names == NAMES[:3]


def test_client_warnings_reach_the_decision() -> None:
    decision = decide(lambda: catalog(NAMES, warnings=("token lacks scope",)), snapshot(NAMES))
    assert decision.warnings == ("token lacks scope",)


def test_snapshot_round_trips_through_state_and_rejects_garbage() -> None:
    record = snapshot(NAMES)
    assert CatalogSnapshot.from_state(record.to_state()) == record
    with pytest.raises(ValueError, match="malformed"):
        CatalogSnapshot.from_state({"namespace": ORG, "repositories": [{"nom": "x"}]})


def test_decision_from_the_emulator_through_the_real_client() -> None:
    with DockerHubEmulator() as hub:
        hub.add_namespace(ORG, NAMES)
        hub.truncate_last_page(ORG, missing=2)
        with DockerHubClient(base_url=hub.url, page_size=5) as client:
            decision = decide(lambda: client.fetch_catalog(ORG), snapshot(NAMES))
    assert decision.source == "last-snapshot" and "18 of the 20" in decision.warnings[0]


def test_catalog_bench_smoke() -> None:
    """The 5,000-repository benchmark (bench/catalog_bench.py) still runs, at toy size."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "catalog_bench.py"
    spec = importlib.util.spec_from_file_location("catalog_bench", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.bench_fetch(250, 0.0)
    assert [(r["concurrency"], r["repositories"], r["pages"]) for r in rows] == [(1, 250, 3), (4, 250, 3), (8, 250, 3)]
