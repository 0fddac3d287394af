"""The real __main__.py under mocks, with the mirror pointed at the loopback Docker Hub emulator.

Each run is one `pulumi preview`/`up` of the chi stack: it reads the previously recorded
catalogue (a StackReference to the stack itself, answered by the mock), lists Docker Hub,
and declares the rules. "Previous state" is the `dockerHubCatalog` output of the run before.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pulumi
import pytest
from pydantic import ValidationError

from components.config import DockerHubMirrorConfig
from components.dockerhub_catalog import CATALOG_OUTPUT, CATALOG_TYPE, CatalogUnavailableError
from tests.emulators.dockerhub import DockerHubEmulator
from tests.support.pulumi_program import STACK_REFERENCE_TYPE, ProgramRun, run_program

ORG = "yourorg"
USER = "mirror-bot"
TOKEN = "dckr_oat_MIRROR-SECRET-77"
OWN_STACK = "organization/harbor-platform/chi"
REPLICATION = "harbor:index/replication:Replication"
RULE_PREFIX = "dockerhub-mirror-"  # logical names of the rules under the component


def repos(count: int) -> list[str]:
    return [f"app-{i:03d}" for i in range(count)]


def start_hub() -> DockerHubEmulator:
    emulator = DockerHubEmulator().start()
    emulator.add_namespace(ORG, repos(85), private={"app-001", "app-042"})
    emulator.add_user(USER, TOKEN, member_of={ORG})
    return emulator


@pytest.fixture
def hub() -> Iterator[DockerHubEmulator]:
    emulator = start_hub()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def first_up() -> ProgramRun:
    """The first update of the mirror (no recorded catalogue yet); later runs build on it."""
    emulator = start_hub()
    try:
        return run_chi(emulator)
    finally:
        emulator.stop()


def mirror_config(hub: DockerHubEmulator, **extra: Any) -> dict[str, Any]:
    return {
        "dockerHubMirror": {
            "namespace": ORG,
            "targetProject": "yourorg",
            "username": USER,
            "apiUrl": hub.url,
            **extra,
        }
    }


def run_chi(hub: DockerHubEmulator, previous: dict[str, Any] | None = None, *, token: str = TOKEN,
            preview: bool = False, **extra: Any) -> ProgramRun:
    """One program run; ``previous`` is the dockerHubCatalog output the last update left."""

    def own_stack_reference(args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict] | None:
        if args.typ == STACK_REFERENCE_TYPE and args.inputs.get("name") == OWN_STACK:
            outputs = {CATALOG_OUTPUT: previous} if previous is not None else {}
            return OWN_STACK, {"name": OWN_STACK, "outputs": outputs}
        return None

    return run_program(
        "chi",
        config=mirror_config(hub, **extra),
        secrets={"dockerHubToken": token},
        new_resource=own_stack_reference,
        preview=preview,
    )


def mirror_rules(run: ProgramRun) -> dict[str, dict[str, Any]]:
    assert run.error is None, run.error
    return {r.inputs["name"]: r.inputs for r in run.of_type(REPLICATION) if r.name.startswith(RULE_PREFIX)}


def recorded(run: ProgramRun) -> dict[str, Any]:
    return run.outputs[CATALOG_OUTPUT].value


def assert_token_never_shown(run: ProgramRun) -> None:
    assert TOKEN not in repr({k: v.value for k, v in run.outputs.items()})
    assert TOKEN not in " ".join(run.warnings) and TOKEN not in str(run.error or "")


def test_85_repositories_give_85_rules_with_the_seeds_settings(first_up: ProgramRun) -> None:
    run = first_up
    rules = mirror_rules(run)
    assert sorted(rules) == [f"mirror-dockerhub-{name}" for name in repos(85)]
    assert rules["mirror-dockerhub-app-042"] == {
        "name": "mirror-dockerhub-app-042",
        "description": "Mirror yourorg/app-042 from Docker Hub (managed by Pulumi)",
        "action": "pull",
        "schedule": "manual",
        "enabled": True,
        "registryId": 7,
        "destNamespace": "yourorg",
        "destNamespaceReplace": 1,
        "override": True,
        "copyByChunk": True,
        "filters": [{"name": "yourorg/app-042"}, {"tag": "**"}],
    }
    [registry] = [r for r in run.of_type("harbor:index/registry:Registry") if r.name == "dockerhub-mirror-registry"]
    assert registry.inputs["name"] == "docker-hub" and registry.inputs["providerName"] == "docker-hub"
    assert registry.inputs["endpointUrl"] == "https://hub.docker.com" and registry.inputs["accessId"] == USER
    [catalog] = run.of_type(CATALOG_TYPE)
    assert [r["name"] for r in catalog.inputs["repositories"]] == repos(85)
    assert all(r["lastUpdated"].startswith("2026-01-01T") for r in catalog.inputs["repositories"])
    assert recorded(run)["namespace"] == ORG and len(recorded(run)["repositories"]) == 85
    assert run.outputs["dockerHubMirrorRules"].value == sorted(rules)
    assert run.warnings == [] or all("Docker Hub" not in w for w in run.warnings)
    assert_token_never_shown(run)


def test_every_mirror_resource_hangs_under_the_component_on_the_site_provider(first_up: ProgramRun) -> None:
    run = first_up
    mirror_children = [r for r in run.resources if r.parent_name == "dockerhub-mirror"]
    assert len(mirror_children) == 85 + 2  # rules, registry endpoint, catalogue
    harbor_children = [r for r in mirror_children if r.type.startswith("harbor:")]
    assert harbor_children and all("pulumi:providers:harbor" in r.provider for r in harbor_children)
    project_urn = next(r.urn for r in run.of_type("harbor:index/project:Project") if r.inputs["name"] == "yourorg")
    assert all(project_urn in r.dependencies for r in harbor_children if r.type == REPLICATION)


def test_rules_are_known_at_preview_time_and_the_proxy_cache_is_optional(hub: DockerHubEmulator) -> None:
    run = run_chi(hub, preview=True, proxyCache={"project": "dockerhub-proxy"})
    assert len(mirror_rules(run)) == 85
    [proxy] = [r for r in run.of_type("harbor:index/project:Project") if r.inputs["name"] == "dockerhub-proxy"]
    assert proxy.inputs["registryId"] == 7 and proxy.inputs["public"] is False
    assert proxy.parent_name == "dockerhub-mirror"


def test_adding_and_removing_repositories_changes_exactly_those_rules(
    hub: DockerHubEmulator, first_up: ProgramRun
) -> None:
    first = first_up
    before = mirror_rules(first)
    now = [r for r in repos(85) if r not in {"app-010", "app-020", "app-030"}] + ["new-api", "new-web"]
    hub.set_repositories(ORG, now)
    after = mirror_rules(run_chi(hub, previous=recorded(first)))
    assert sorted(set(before) - set(after)) == [f"mirror-dockerhub-app-0{n}0" for n in (1, 2, 3)]
    assert sorted(set(after) - set(before)) == ["mirror-dockerhub-new-api", "mirror-dockerhub-new-web"]
    assert all(after[name] == before[name] for name in set(before) & set(after))


@pytest.mark.parametrize(
    ("break_docker_hub", "reason"),
    [
        (lambda hub: hub.add_user(USER, "rotated-elsewhere", member_of={ORG}), "401"),
        (lambda hub: hub.inject("/repositories", status=429, headers={"Retry-After": "3600"}), "3600s"),
        (lambda hub: hub.truncate_last_page(ORG, missing=1), "84 of the 85"),
        (lambda hub: hub.inject("/repositories", kind="malformed"), "malformed JSON"),
        (lambda hub: hub.set_repositories(ORG, []), "listed no repository"),
    ],
    ids=["bad-token", "rate-limited", "partial-answer", "malformed", "empty-org"],
)
def test_a_failing_or_partial_fetch_leaves_the_rule_set_unchanged(
    hub: DockerHubEmulator, first_up: ProgramRun, break_docker_hub: Any, reason: str
) -> None:
    first = first_up
    break_docker_hub(hub)
    second = run_chi(hub, previous=recorded(first))
    assert mirror_rules(second) == mirror_rules(first)
    assert recorded(second) == recorded(first)
    [warning] = [w for w in second.warnings if "recorded by the last update" in w]
    assert reason in warning and "no mirror rule is added or removed" in warning
    assert_token_never_shown(second)


def test_without_a_recorded_catalogue_a_failing_fetch_is_a_clear_error(hub: DockerHubEmulator) -> None:
    run = run_chi(hub, token="dckr_oat_WRONG")
    assert isinstance(run.error, CatalogUnavailableError)
    message = str(run.error)
    assert "401" in message and "no recorded catalogue" in message and "dockerHubToken" in message
    assert "WRONG" not in message
    assert [r for r in run.of_type(REPLICATION) if r.name.startswith(RULE_PREFIX)] == []


def test_a_large_shrink_keeps_the_rules_until_allow_shrink_is_set(hub: DockerHubEmulator, first_up: ProgramRun) -> None:
    first = first_up
    hub.set_repositories(ORG, repos(60))  # 25 of 85 gone: 29% > the default 10%
    held = run_chi(hub, previous=recorded(first))
    assert mirror_rules(held) == mirror_rules(first)
    [warning] = [w for w in held.warnings if "allowShrink" in w]
    assert "25 of 85" in warning and "app-060" in warning and "15 more" in warning
    allowed = run_chi(hub, previous=recorded(held), allowShrink=True)
    assert sorted(mirror_rules(allowed)) == [f"mirror-dockerhub-{r}" for r in repos(60)]


def test_include_exclude_tag_filter_and_prefix_are_configurable(hub: DockerHubEmulator) -> None:
    run = run_chi(hub, include=["app-01*", "app-02*"], exclude=["app-015"], ruleNamePrefix="hub-", tagFilter="v*")
    rules = mirror_rules(run)
    assert sorted(rules) == [f"hub-app-0{i:02d}" for i in range(10, 30) if i != 15]
    assert rules["hub-app-013"]["filters"] == [{"name": "yourorg/app-013"}, {"tag": "v*"}]
    assert len(recorded(run)["repositories"]) == 85  # the record is the whole org, filters or not


def test_stacks_without_the_mirror_declare_none_of_it() -> None:
    run = run_program("iad")
    assert run.error is None and run.of_type(CATALOG_TYPE) == []
    assert CATALOG_OUTPUT not in run.outputs


def test_a_missing_token_names_the_secret_key(hub: DockerHubEmulator) -> None:
    run = run_program("chi", config=mirror_config(hub))
    assert run.error is not None and "dockerHubToken" in str(run.error)


def test_bad_mirror_config_is_one_line_per_problem_before_any_resource() -> None:
    run = run_program(
        "chi",
        config={"dockerHubMirror": {"namespace": "Your Org", "targetProject": "yourorg", "username": "u",
                                    "include": ["a/b"], "maxShrinkFraction": 2, "bogus": 1}},
        secrets={"dockerHubToken": TOKEN},
    )
    assert str(run.error).splitlines() == [
        "invalid stack configuration:",
        "dockerHubMirror.namespace: String should match pattern '^[a-z0-9]+(?:[._-][a-z0-9]+)*$'",
        "dockerHubMirror.include[0]: must be a non-empty repository-name glob without '/', e.g. 'app-*'",
        "dockerHubMirror.maxShrinkFraction: Input should be less than or equal to 1",
        "dockerHubMirror.bogus: Extra inputs are not permitted",
    ]
    assert run.resources == []
    unknown_project = run_program(
        "chi", config={"dockerHubMirror": {"namespace": "yourorg", "targetProject": "nope", "username": "u"}},
        secrets={"dockerHubToken": TOKEN},
    )
    assert str(unknown_project.error).splitlines()[1:] == ["dockerHubMirror.targetProject: 'nope' is not in projects"]
    with pytest.raises(ValidationError, match="include: needs at least one glob"):
        DockerHubMirrorConfig.model_validate({"namespace": "o", "targetProject": "p", "username": "u", "include": []})
