"""The Harbor client against the loopback emulator, and the emulator's own fidelity.

Each test drives the client the way a command does and asserts what comes back or
what went over the wire (the emulator records every request).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from harborops.clients.harbor import (
    HarborAuthError,
    HarborClient,
    HarborError,
    HarborNotFound,
    HarborNotJSON,
    HarborPreconditionFailed,
    HarborServerError,
    HarborUnavailable,
    normalize_base_url,
)
from harborops.errors import UsageError
from tests.emulators.harbor import (
    NO_RESOURCES_TEXT,
    SKIPPED_TEXT,
    HarborEmulator,
)

PASSWORD = "Harbor12345"


@pytest.fixture
def harbor() -> Iterator[HarborEmulator]:
    with HarborEmulator(password=PASSWORD) as emulator:
        yield emulator


def client_for(emulator: HarborEmulator, url: str | None = None, password: str = PASSWORD) -> HarborClient:
    return HarborClient(url or emulator.url, "admin", SecretStr(password), retry_wait=0, timeout=5)


@pytest.mark.parametrize("suffix", ["", "/", "/api/v2.0", "/api/v2.0/"])
def test_url_is_accepted_with_or_without_api_path(harbor: HarborEmulator, suffix: str) -> None:
    with client_for(harbor, harbor.url + suffix) as client:
        assert client.current_user() == "admin"
    assert harbor.requests[-1].path == "/api/v2.0/users/current"


@pytest.mark.parametrize("url", ["registry.example.com", "ftp://registry.example.com", "https://"])
def test_url_that_is_not_http_is_a_usage_error(url: str) -> None:
    with pytest.raises(UsageError, match="--url/HARBOR_URL"):
        normalize_base_url(url)


def test_credentials_in_the_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(UsageError) as info:
        normalize_base_url("https://admin:s3cret-pw@harbor.example.com")
    assert "s3cret-pw" not in str(info.value)


def test_no_cookie_is_ever_sent_so_writes_pass_the_csrf_check(harbor: HarborEmulator) -> None:
    policy = harbor.add_policy("mirror-dockerhub-alpine")
    with client_for(harbor) as client:
        client.list_policies()  # Harbor sets `sid` here
        execution_id = client.start_execution(policy.id)
    assert execution_id == 1
    assert all("Cookie" not in r.headers for r in harbor.requests)
    # and the emulator does enforce CSRF for a client that keeps cookies
    with httpx.Client(base_url=harbor.url + "/api/v2.0", auth=("admin", PASSWORD)) as cookie_keeper:
        cookie_keeper.get("/replication/policies")
        refused = cookie_keeper.post("/replication/executions", json={"policy_id": policy.id})
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["code"] == "FORBIDDEN"


def test_every_page_is_fetched_with_the_maximum_page_size(harbor: HarborEmulator) -> None:
    for i in range(250):
        harbor.add_policy(f"mirror-dockerhub-r{i:03d}")
    with client_for(harbor) as client:
        policies = client.list_policies()
    assert [p.id for p in policies] == list(range(1, 251))
    pages = harbor.api_requests("GET", "/replication/policies")
    assert [r.query.split("page=")[1] for r in pages] == ["1&page_size=100", "2&page_size=100", "3&page_size=100"]


def test_harbor_refuses_a_page_size_over_100(harbor: HarborEmulator) -> None:
    answer = httpx.get(harbor.url + "/api/v2.0/projects", params={"page_size": 101}, auth=("admin", PASSWORD))
    assert answer.status_code == 422
    assert "less than or equal to 100" in answer.json()["errors"][0]["message"]


def test_link_header_is_relative_and_total_count_is_set(harbor: HarborEmulator) -> None:
    for i in range(3):
        harbor.add_policy(f"p{i}")
    answer = httpx.get(harbor.url + "/api/v2.0/replication/policies", params={"page": 2, "page_size": 1},
                       auth=("admin", PASSWORD))
    assert answer.headers["X-Total-Count"] == "3"
    assert answer.headers["Link"] == (
        '</api/v2.0/replication/policies?page=1&page_size=1>; rel="prev" , '
        '</api/v2.0/replication/policies?page=3&page_size=1>; rel="next"'
    )


def test_policy_name_filter_is_applied_by_harbor(harbor: HarborEmulator) -> None:
    harbor.add_policy("mirror-dockerhub-alpine")
    harbor.add_policy("replicate-to-iad")
    with client_for(harbor) as client:
        assert [p.name for p in client.list_policies(name="mirror-")] == ["mirror-dockerhub-alpine"]
        assert [p.name for p in client.list_policies(q="name=replicate-to-iad")] == ["replicate-to-iad"]


def test_harbor_error_body_becomes_a_typed_error_with_its_message(harbor: HarborEmulator) -> None:
    disabled = harbor.add_policy("mirror-dockerhub-old", enabled=False)
    with client_for(harbor) as client:
        with pytest.raises(HarborNotFound, match="policy 99 not found"):
            client.start_execution(99)
        with pytest.raises(HarborPreconditionFailed, match=f"the policy {disabled.id} is disabled") as info:
            client.start_execution(disabled.id)
    assert info.value.status_code == 412
    assert info.value.code == "PRECONDITION"


def test_wrong_password_is_an_auth_error_that_never_shows_the_password(harbor: HarborEmulator) -> None:
    with client_for(harbor, password="hunter2-wrong") as client:
        with pytest.raises(HarborAuthError) as info:
            client.current_user()
        assert "hunter2-wrong" not in repr(client)
    assert "hunter2-wrong" not in str(info.value)
    assert "'admin'" in str(info.value)


def test_ping_is_not_enough_to_prove_credentials(harbor: HarborEmulator) -> None:
    anonymous = httpx.get(harbor.url + "/api/v2.0/ping")
    assert anonymous.text == "Pong"
    with pytest.raises(HarborAuthError):
        client_for(harbor, password="wrong").current_user()


def test_html_answer_is_recognised(harbor: HarborEmulator) -> None:
    with client_for(harbor, harbor.url + "/harbor") as client:
        with pytest.raises(HarborNotJSON, match="HTML page"):
            client.current_user()


def test_gets_are_retried_on_5xx_within_a_bound(harbor: HarborEmulator) -> None:
    harbor.add_policy("p")
    harbor.fail_next_requests(2, status=503)
    with client_for(harbor) as client:
        assert len(client.list_policies()) == 1
    assert len(harbor.api_requests("GET", "/replication/policies")) == 3

    harbor.fail_next_requests(10, status=502, html=True)
    with HarborClient(harbor.url, "admin", PASSWORD, retry_wait=0, get_attempts=3) as client:
        with pytest.raises(HarborServerError, match="502"):
            client.list_policies()
    assert len(harbor.api_requests("GET", "/replication/policies")) == 6


def test_a_post_is_never_retried(harbor: HarborEmulator) -> None:
    policy = harbor.add_policy("p")
    harbor.fail_next_requests(1, status=503)
    with client_for(harbor) as client:
        with pytest.raises(HarborServerError):
            client.start_execution(policy.id)
    assert len(harbor.api_requests("POST", "/replication/executions")) == 1
    assert harbor.executions() == []


def test_harbor_down_is_unavailable() -> None:
    with HarborEmulator() as gone:
        url = gone.url
    with HarborClient(url, "admin", PASSWORD, retry_wait=0, get_attempts=2) as client:
        with pytest.raises(HarborUnavailable, match="cannot reach Harbor"):
            client.current_user()
        with pytest.raises(HarborUnavailable):
            client.start_execution(1)


def test_connection_errors_on_gets_are_retried(harbor: HarborEmulator) -> None:
    attempts = []

    def flaky(request: httpx.Request) -> httpx.Response:
        attempts.append(request.method)
        if len(attempts) < 3:
            raise httpx.ConnectError("connection reset", request=request)
        return httpx.Response(200, json={"username": "admin"})

    with HarborClient(harbor.url, "admin", PASSWORD, retry_wait=0, transport=httpx.MockTransport(flaky)) as client:
        assert client.current_user() == "admin"
    assert attempts == ["GET", "GET", "GET"]


def test_repository_names_with_slashes_are_double_encoded(harbor: HarborEmulator) -> None:
    digest = harbor.add_artifact("library/team/app", ["1.0", "latest"])
    with client_for(harbor) as client:
        artifacts = client.list_artifacts("library/team/app")
    assert [(a.digest, [t.name for t in a.tags]) for a in artifacts] == [(digest, ["1.0", "latest"])]
    assert "/repositories/team%252Fapp/artifacts" in harbor.requests[-1].raw_uri


def test_execution_lifecycle_counters_and_zero_end_time(harbor: HarborEmulator) -> None:
    policy = harbor.add_policy("mirror-dockerhub-alpine", artifacts=3, task_seconds=5)
    harbor.workers = 2
    with client_for(harbor) as client:
        execution_id = client.start_execution(policy.id)
        harbor.clock.advance(2)
        running = client.get_execution(execution_id)
        tasks = client.list_tasks(execution_id)
        harbor.clock.advance(20)
        done = client.get_execution(execution_id)
        log = client.get_task_log(execution_id, tasks[0].id)
    assert (running.status, running.end_time, running.total, running.in_progress) == ("InProgress", None, 3, 3)
    assert sorted(t.status for t in tasks) == ["InProgress", "InProgress", "Pending"]  # 2 workers
    assert (done.status, done.succeed, done.in_progress) == ("Succeed", 3, 0)
    assert done.end_time is not None and done.end_time > done.start_time
    assert "copy" in log


def test_rate_limit_fails_executions_with_dockerhub_429_texts(harbor: HarborEmulator) -> None:
    policies = [harbor.add_policy(f"mirror-dockerhub-r{i}") for i in range(3)]
    harbor.set_rate_limit(starts=2, window=60)
    with client_for(harbor) as client:
        ids = [client.start_execution(p.id) for p in policies]
        harbor.clock.advance(10)
        results = [client.get_execution(i) for i in ids]
        harbor.clock.advance(60)  # next window
        again = client.get_execution(client.start_execution(policies[2].id))
        harbor.clock.advance(10)
        again = client.get_execution(again.id)
    assert [r.status for r in results] == ["Succeed", "Succeed", "Failed"]
    assert "429 Too Many Requests" in results[2].status_text and "TOOMANYREQUESTS" in results[2].status_text
    assert again.status == "Succeed"


def test_rate_limit_can_show_up_in_task_logs_instead(harbor: HarborEmulator) -> None:
    policies = [harbor.add_policy(f"mirror-dockerhub-r{i}") for i in range(2)]
    harbor.set_rate_limit(starts=1, window=60, where="task_log")
    with client_for(harbor) as client:
        ids = [client.start_execution(p.id) for p in policies]
        harbor.clock.advance(10)
        limited = client.get_execution(ids[1])
        task = client.list_tasks(ids[1])[0]
        log = client.get_task_log(ids[1], task.id)
    assert (limited.status, limited.failed, task.status) == ("Failed", 1, "Failed")
    assert "Rate limit exceeded" in log and "429 Too Many Requests" in log


def test_nothing_upstream_and_already_running_look_like_harbor(harbor: HarborEmulator) -> None:
    empty = harbor.add_policy("mirror-dockerhub-renamed", artifacts=0)
    busy = harbor.add_policy("mirror-dockerhub-big", task_seconds=100)
    with client_for(harbor) as client:
        empty_id = client.start_execution(empty.id)
        first = client.start_execution(busy.id)
        second = client.start_execution(busy.id)
        harbor.clock.advance(5)
        outcomes = {i: client.get_execution(i) for i in (empty_id, first, second)}
    assert (outcomes[empty_id].status, outcomes[empty_id].status_text) == ("Succeed", NO_RESOURCES_TEXT)
    assert outcomes[first].status == "InProgress"
    assert (outcomes[second].status, outcomes[second].status_text) == ("Failed", SKIPPED_TEXT)
    assert outcomes[second].end_time == outcomes[second].start_time  # skipped at once


def test_stop_and_server_side_execution_filters(harbor: HarborEmulator) -> None:
    a = harbor.add_policy("a", task_seconds=100)
    b = harbor.add_policy("b", task_seconds=100)
    with client_for(harbor) as client:
        ea = client.start_execution(a.id)
        client.start_execution(b.id)
        harbor.clock.advance(2)
        client.stop_execution(ea)
        harbor.clock.advance(1)
        assert client.get_execution(ea).status == "Stopped"
        assert [e.policy_id for e in client.list_executions(status="InProgress")] == [b.id]
        assert [e.id for e in client.list_executions(policy_id=a.id)] == [ea]
    assert harbor.api_requests("GET", "/replication/executions")[-2].query.startswith("status=InProgress&")


def test_purge_audit_schedule_round_trip(harbor: HarborEmulator) -> None:
    auth = ("admin", PASSWORD)
    url = harbor.url + "/api/v2.0/system/purgeaudit/schedule"
    assert httpx.get(url, auth=auth).content == b""  # no schedule yet: 200 and no body
    body = {"schedule": {"type": "Custom", "cron": "0 0 * * * *"},
            "parameters": {"audit_retention_hour": 168, "include_operations": "create,delete,pull",
                           "dry_run": False}}
    assert httpx.post(url, json=body, auth=auth).status_code == 201
    got = httpx.get(url, auth=auth).json()
    assert got["schedule"]["cron"] == "0 0 * * * *"
    assert '"audit_retention_hour":168' in got["job_parameters"]
    bad = httpx.put(url, json={"schedule": {"type": "Daily", "cron": "0 0 0 * * *"}, "parameters": {"x": 1}},
                    auth=auth)
    assert bad.status_code == 400 and "audit_retention_hour" in bad.json()["errors"][0]["message"]


def test_a_password_given_to_the_client_is_masked_in_every_error_harbor_echoes_it_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in ("HARBOR_PASSWORD", "HARBOR_LEFT_PASSWORD", "HARBOR_RIGHT_PASSWORD"):
        monkeypatch.delenv(key, raising=False)  # not from the environment: the client registers it
    password = "given-directly/Pw+1"
    echo = {"errors": [{"code": "UNAUTHORIZED", "message": f"bad login admin:{password} ({password!r})"}]}
    for status in (401, 403, 500):
        transport = httpx.MockTransport(lambda request, status=status: httpx.Response(status, json=echo))
        with HarborClient("https://harbor.example.com", "admin", SecretStr(password), transport=transport,
                          get_attempts=1) as client, pytest.raises(HarborError) as caught:
            client.current_user()
        assert password not in str(caught.value) and "bad login admin:***" in str(caught.value)


def test_a_secret_registered_in_one_test_is_forgotten_by_the_next_part1() -> None:
    from harborops.redact import redact, register

    register("wrong")
    assert redact("the wrong password") == "the *** password"


def test_a_secret_registered_in_one_test_is_forgotten_by_the_next_part2() -> None:
    from harborops.redact import redact

    assert redact("the wrong password") == "the wrong password"
