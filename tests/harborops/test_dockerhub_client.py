"""DockerHubClient against the loopback Docker Hub emulator: listing, auth, retries, failures."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone

import httpx
import pytest
from pydantic import SecretStr

from harborops.clients.dockerhub import (
    DockerHubAuthError,
    DockerHubClient,
    DockerHubError,
    DockerHubForbiddenError,
    DockerHubIncompleteError,
    DockerHubNotFoundError,
    DockerHubProtocolError,
    DockerHubRateLimitedError,
    DockerHubTimeoutError,
    DockerHubUnavailableError,
    DockerHubUsageError,
)
from harborops.errors import HarborOpsError
from tests.emulators.dockerhub import RATE_LIMIT_BODY, DockerHubEmulator

ORG = "yourorg"
USER = "ci-bot"
SECRET = "dckr_pat_SUPERSECRET123"
REPOS = [f"app-{i:03d}" for i in range(250)]
PRIVATE = {"app-007", "app-150"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def hub() -> Iterator[DockerHubEmulator]:
    with DockerHubEmulator() as emulator:
        emulator.add_namespace(ORG, list(reversed(REPOS)), private=PRIVATE)
        emulator.add_user(USER, SECRET, member_of={ORG})
        yield emulator


@pytest.fixture
def sleeps() -> list[float]:
    return []


def client(hub: DockerHubEmulator, sleeps: list[float], **kwargs: object) -> DockerHubClient:
    options: dict[str, object] = {"username": USER, "token": SecretStr(SECRET), "sleep": sleeps.append}
    options.update(kwargs)
    return DockerHubClient(base_url=hub.url, **options)  # type: ignore[arg-type]


def test_lists_every_page_sorted_with_private_repositories(hub: DockerHubEmulator, sleeps: list[float]) -> None:
    with client(hub, sleeps) as dockerhub:
        catalog = dockerhub.fetch_catalog(ORG)
    assert [r.name for r in catalog.repositories] == REPOS
    assert {r.name for r in catalog.repositories if r.is_private} == PRIVATE
    assert catalog.count == 250 and catalog.pages == 3 and catalog.route == f"/v2/namespaces/{ORG}/repositories"
    assert catalog.warnings == ()
    assert all(r.last_updated is not None and r.last_updated.tzinfo for r in catalog.repositories)
    assert hub.requests_to("/v2/auth/token", "POST") == 1
    pages = [r for r in hub.requests if "/repositories" in r.path]
    assert sorted(int(r.query["page"]) for r in pages) == [1, 2, 3]
    assert {r.query["page_size"] for r in pages} == {"100"}
    assert all(r.authorized for r in pages)


def test_list_repositories_keeps_the_shared_interface(hub: DockerHubEmulator, sleeps: list[float]) -> None:
    with DockerHubClient(base_url=hub.url, username=USER, token=SECRET, sleep=sleeps.append) as dockerhub:
        repos = dockerhub.list_repositories(ORG)
    assert isinstance(repos, list) and repos[0].name == "app-000" and repos[0].namespace == ORG
    assert repos[0].last_updated == datetime(2026, 1, 1, 4, 9, tzinfo=timezone.utc)  # reversed insert order


def test_remaining_pages_are_fetched_concurrently_within_the_bound(sleeps: list[float]) -> None:
    with DockerHubEmulator(latency=0.05) as hub:
        hub.add_namespace(ORG, [f"r{i:04d}" for i in range(1000)])
        with DockerHubClient(base_url=hub.url, max_concurrency=3, sleep=sleeps.append) as dockerhub:
            repos = dockerhub.list_repositories(ORG)
    assert len(repos) == 1000
    assert hub.max_in_flight == 3


def test_anonymous_listing_sees_public_repositories_only_without_warning(hub: DockerHubEmulator, sleeps: list[float]) -> None:
    with DockerHubClient(base_url=hub.url, sleep=sleeps.append) as dockerhub:
        catalog = dockerhub.fetch_catalog(ORG)
    assert len(catalog.repositories) == 248 and catalog.warnings == ()
    assert hub.requests_to("/v2/auth/token", "POST") == 0


def test_token_without_list_scope_warns_that_private_repositories_may_be_missing(
    hub: DockerHubEmulator, sleeps: list[float]
) -> None:
    hub.add_user("oat-bot", "dckr_oat_x", member_of={ORG}, list_scope=False)
    with DockerHubClient(base_url=hub.url, username="oat-bot", token="dckr_oat_x", sleep=sleeps.append) as dockerhub:
        catalog = dockerhub.fetch_catalog(ORG)
    assert len(catalog.repositories) == 248
    assert len(catalog.warnings) == 1 and "repository-list scope" in catalog.warnings[0]
    assert "dckr_oat_x" not in catalog.warnings[0]


def test_falls_back_to_the_legacy_route(hub: DockerHubEmulator, sleeps: list[float]) -> None:
    hub.legacy_only = True
    with client(hub, sleeps) as dockerhub:
        catalog = dockerhub.fetch_catalog(ORG)
    assert catalog.route == f"/v2/repositories/{ORG}/" and len(catalog.repositories) == 250


def test_unknown_namespace_is_a_clear_not_found(hub: DockerHubEmulator, sleeps: list[float]) -> None:
    with client(hub, sleeps) as dockerhub, pytest.raises(DockerHubNotFoundError, match="'nosuchorg' does not exist"):
        dockerhub.list_repositories("nosuchorg")


def test_bad_credentials_fail_with_401_and_never_show_the_secret(hub: DockerHubEmulator, sleeps: list[float]) -> None:
    with DockerHubClient(base_url=hub.url, username=USER, token="dckr_pat_WRONG", sleep=sleeps.append) as dockerhub:
        with pytest.raises(DockerHubAuthError) as failure:
            dockerhub.list_repositories(ORG)
    assert "401" in str(failure.value) and USER in str(failure.value)
    assert "WRONG" not in str(failure.value) and "WRONG" not in repr(dockerhub)
    assert isinstance(failure.value, HarborOpsError) and failure.value.exit_code == 1
    assert sleeps == []  # a rejected credential is not retried


def test_a_detail_echoing_the_token_is_scrubbed(hub: DockerHubEmulator, sleeps: list[float]) -> None:
    hub.inject("/v2/auth/token", status=401, body={"detail": f"bad secret {SECRET}"})
    with client(hub, sleeps) as dockerhub, pytest.raises(DockerHubAuthError) as failure:
        dockerhub.list_repositories(ORG)
    assert SECRET not in str(failure.value) and "**********" in str(failure.value)


def test_forbidden_namespace_is_a_clear_403(hub: DockerHubEmulator, sleeps: list[float]) -> None:
    hub.add_user("outsider", "dckr_pat_o", forbidden={ORG})
    with DockerHubClient(base_url=hub.url, username="outsider", token="dckr_pat_o", sleep=sleeps.append) as dockerhub:
        with pytest.raises(DockerHubForbiddenError, match="403"):
            dockerhub.list_repositories(ORG)


def test_an_expired_token_is_refreshed_before_use(hub: DockerHubEmulator, sleeps: list[float]) -> None:
    clock = FakeClock()
    with client(hub, sleeps, monotonic=clock) as dockerhub:
        dockerhub.list_repositories(ORG)
        clock.now += 601
        hub.advance(601)
        assert len(dockerhub.list_repositories(ORG)) == 250
    assert hub.tokens_issued == 2
    assert all(r.status == 200 for r in hub.requests)  # refreshed proactively, no 401 round trip


def test_a_token_the_server_expired_early_is_replaced_once_on_401(hub: DockerHubEmulator, sleeps: list[float]) -> None:
    with client(hub, sleeps) as dockerhub:
        dockerhub.list_repositories(ORG)
        hub.advance(601)  # server-side expiry the client cannot see coming
        assert len(dockerhub.list_repositories(ORG)) == 250
    assert hub.tokens_issued == 2


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"X-Retry-After": "+{now}+30"}, 30.0),
        ({"X-RateLimit-Reset": "+{now}+12"}, 12.0),
    ],
)
def test_429_waits_as_long_as_docker_hub_asks(
    hub: DockerHubEmulator, sleeps: list[float], headers: dict[str, str], expected: float
) -> None:
    now = time.time()
    resolved = {k: str(int(now + float(v.split("+")[-1]))) if v.startswith("+") else v for k, v in headers.items()}
    hub.inject("/repositories", status=429, headers=resolved, body=RATE_LIMIT_BODY)
    with client(hub, sleeps, wall_clock=lambda: now) as dockerhub:
        assert len(dockerhub.list_repositories(ORG)) == 250
    assert sleeps == [pytest.approx(expected, abs=1.0)]


def test_429_without_hints_backs_off_exponentially_and_bounded(hub: DockerHubEmulator, sleeps: list[float]) -> None:
    hub.inject("/repositories", status=429, headers={}, times=3, rate_headers=False)
    with client(hub, sleeps, max_backoff=2.0) as dockerhub:
        assert len(dockerhub.list_repositories(ORG)) == 250
    assert len(sleeps) == 3 and all(0 < s <= 2.0 for s in sleeps) and sleeps[1] >= 0.5


def test_429_without_retry_after_waits_for_the_rate_limit_reset_every_answer_carries(
    hub: DockerHubEmulator, sleeps: list[float]
) -> None:
    now = time.time()
    hub.inject("/repositories", status=429, headers={})  # only the usual X-RateLimit-* headers
    with client(hub, sleeps, wall_clock=lambda: now) as dockerhub:
        assert len(dockerhub.list_repositories(ORG)) == 250
    assert sleeps == [pytest.approx(60, abs=2)]


def test_persistent_429_gives_up_after_the_attempt_budget(hub: DockerHubEmulator, sleeps: list[float]) -> None:
    hub.inject("/repositories", status=429, times=100)
    with client(hub, sleeps, max_attempts=3) as dockerhub, pytest.raises(DockerHubRateLimitedError) as failure:
        dockerhub.list_repositories(ORG)
    assert "Rate limit exceeded" in str(failure.value)
    assert hub.requests_to("/repositories") == 3 and sleeps == [1.0, 1.0]


def test_a_retry_after_longer_than_we_accept_fails_at_once(hub: DockerHubEmulator, sleeps: list[float]) -> None:
    hub.inject("/repositories", status=429, headers={"Retry-After": "3600"})
    with client(hub, sleeps, max_retry_after=60) as dockerhub, pytest.raises(DockerHubRateLimitedError, match="3600s"):
        dockerhub.list_repositories(ORG)
    assert sleeps == []


def test_5xx_is_retried_then_succeeds(hub: DockerHubEmulator, sleeps: list[float]) -> None:
    hub.inject("/repositories", status=503, times=2)
    with client(hub, sleeps) as dockerhub:
        assert len(dockerhub.list_repositories(ORG)) == 250
    assert len(sleeps) == 2


def test_persistent_5xx_is_a_clear_unavailable_error(hub: DockerHubEmulator, sleeps: list[float]) -> None:
    hub.inject("/repositories", status=502, times=100)
    with client(hub, sleeps, max_attempts=2) as dockerhub, pytest.raises(DockerHubUnavailableError, match="502"):
        dockerhub.list_repositories(ORG)


def test_a_dropped_connection_is_retried(hub: DockerHubEmulator, sleeps: list[float]) -> None:
    hub.inject("/repositories", kind="drop")
    with client(hub, sleeps) as dockerhub:
        assert len(dockerhub.list_repositories(ORG)) == 250


def test_timeouts_are_retried_then_reported(sleeps: list[float]) -> None:
    with DockerHubEmulator(latency=0.4) as hub:
        hub.add_namespace(ORG, ["a"])
        with DockerHubClient(base_url=hub.url, timeout=0.1, max_attempts=2, sleep=sleeps.append) as dockerhub:
            with pytest.raises(DockerHubTimeoutError, match="timed out"):
                dockerhub.list_repositories(ORG)
    assert len(sleeps) == 1


def test_malformed_json_is_a_protocol_error(hub: DockerHubEmulator, sleeps: list[float]) -> None:
    hub.inject("/repositories", kind="malformed")
    with client(hub, sleeps) as dockerhub, pytest.raises(DockerHubProtocolError, match="malformed JSON"):
        dockerhub.list_repositories(ORG)


def test_a_truncated_last_page_is_never_returned_as_the_catalogue(hub: DockerHubEmulator, sleeps: list[float]) -> None:
    hub.truncate_last_page(ORG, missing=5)
    with client(hub, sleeps) as dockerhub, pytest.raises(DockerHubIncompleteError) as failure:
        dockerhub.list_repositories(ORG)
    assert (failure.value.received, failure.value.expected) == (245, 250)
    assert "245 of the 250" in str(failure.value)


def test_duplicates_across_pages_are_removed_keeping_the_newest() -> None:
    pages = {
        "1": {"count": 3, "next": "https://hub.example/v2/namespaces/o/repositories?page=2&page_size=2", "results": [
            {"name": "b", "last_updated": "2026-01-01T00:00:00Z"}, {"name": "a", "last_updated": None}]},
        "2": {"count": 3, "next": None, "results": [
            {"name": "b", "last_updated": "2026-02-01T00:00:00Z"}, {"name": "c", "last_updated": "2026-01-03T00:00:00Z"}]},
    }

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params["page"]])

    with DockerHubClient(base_url="https://hub.example", page_size=2, transport=httpx.MockTransport(answer)) as hub:
        repos = hub.list_repositories("o")
    assert [r.name for r in repos] == ["a", "b", "c"]
    assert repos[1].last_updated == datetime(2026, 2, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("namespace", ["", "Your Org", "../admin", "org/../x"])
def test_a_malformed_namespace_is_a_usage_error(namespace: str) -> None:
    with DockerHubClient(base_url="http://127.0.0.1:9") as dockerhub, pytest.raises(DockerHubUsageError) as failure:
        dockerhub.list_repositories(namespace)
    assert failure.value.exit_code == 2 and isinstance(failure.value, DockerHubError)


def test_username_without_token_is_a_usage_error() -> None:
    with pytest.raises(DockerHubUsageError, match="together"):
        DockerHubClient(username="someone")


def test_emulator_caps_page_size_at_100(hub: DockerHubEmulator) -> None:
    answer = httpx.get(f"{hub.url}/v2/namespaces/{ORG}/repositories", params={"page_size": 500}).json()
    assert answer["count"] == 248 and len(answer["results"]) == 100
    assert answer["next"].startswith(hub.url + "/") and "page=2" in answer["next"]
