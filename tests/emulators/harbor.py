"""A loopback Harbor v2.0 API server for tests and benchmarks.

It is a real HTTP server on 127.0.0.1 (werkzeug, in a thread), so clients under test
go through httpx, sockets and headers exactly as they would against Harbor. What it
copies from Harbor (goharbor/harbor api/v2.0/swagger.yaml and src/server/v2.0/handler):

- everything lives under /api/v2.0; any other path answers 200 with the portal's HTML;
- basic auth; a wrong or missing password is "anonymous", which gets 401 with
  {"errors":[{"code":"UNAUTHORIZED","message":"unauthorized"}]} (only /ping is public);
- every API response sets a `sid` cookie, and a write that carries it back fails the
  CSRF check with 403 (Harbor skips CSRF for /api/ only when no session is carried);
- page_size up to 100 (101 gets 422), X-Total-Count, and Harbor's relative Link header
  (with Harbor's habit of un-escaping the query string in it);
- replication policies (with `q` and `name` filters), executions (start, list with
  policy_id/status/trigger filters, get, stop), tasks and task logs, with Harbor's
  status names: executions InProgress/Succeed/Failed/Stopped, tasks
  Pending/InProgress/Succeed/Failed/Stopped, and end_time "0001-01-01T00:00:00Z" while
  running;
- a limited pool of job-service workers (Harbor's default is 10), so tasks sit Pending;
- a simulated Docker Hub rate limit: at most R executions may reach upstream per time
  window; the rest fail with the real 429 texts;
- projects, repositories (names with `/`, double-encoded in artifact paths) and
  artifacts with tags and digests;
- /system/purgeaudit/schedule (GET/POST/PUT), as in handler/purge.go.

Time is an `EmulatorClock`: `ManualClock` (tests call `advance`) or `ScaledClock`
(real time multiplied, for benchmarks). Lifecycles are replayed as discrete events up
to "now" on every request, so a manual clock makes every run deterministic.

Usage in a test::

    def test_something(harbor):          # fixture below
        policy = harbor.add_policy("mirror-dockerhub-alpine", artifacts=2)
        ...
        harbor.clock.advance(30)
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlencode

import pytest
from werkzeug.http import http_date
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

API_PREFIX = "/api/v2.0"
ZERO_TIME = "0001-01-01T00:00:00Z"
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 10
EPOCH = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)

NO_RESOURCES_TEXT = "no resources need to be replicated"
SKIPPED_TEXT = "Execution skipped: active replication still in progress."
# What Docker Hub answers when the pull/API rate limit is hit, as Harbor passes it on.
RATE_LIMIT_STATUS_TEXT = (
    "failed to fetch resources: http status code: 429, body: 429 Too Many Requests: "
    '{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit. '
    'You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit"}]}'
)
RATE_LIMIT_TASK_LOG = (
    "{ts} [ERROR] [/controller/replication/transfer/image/transfer.go:170]: failed to pull "
    "{src}: http status code: 429, body: Rate limit exceeded\n"
    "{ts} [ERROR] [/controller/replication/transfer/image/transfer.go:170]: 429 Too Many Requests: "
    "toomanyrequests: You have reached your pull rate limit. (TOOMANYREQUESTS)\n"
)
PORTAL_HTML = (
    "<!doctype html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>Harbor</title>\n"
    "<base href=\"/\">\n</head>\n<body>\n<harbor-app>Loading...</harbor-app>\n</body>\n</html>\n"
)


# --------------------------------------------------------------------------- clocks


class EmulatorClock:
    """Seconds since the emulator's epoch. Subclasses decide how time moves."""

    def now(self) -> float:
        raise NotImplementedError


class ManualClock(EmulatorClock):
    """Time moves only when a test says so: deterministic lifecycles."""

    def __init__(self) -> None:
        self._now = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


class ScaledClock(EmulatorClock):
    """Real time multiplied by `speed`: 60.0 makes a real second an emulated minute."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._start = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._start) * self.speed


def emulated_datetime(seconds: float) -> datetime:
    """The wall-clock time the emulator shows for `seconds` on its clock."""
    return EPOCH + timedelta(seconds=seconds)


def _iso(seconds: float | None) -> str:
    if seconds is None:
        return ZERO_TIME
    return (EPOCH + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------- model


@dataclass
class Policy:
    id: int
    name: str
    enabled: bool = True
    # emulator-only: what the rule matches upstream and how each copy goes
    artifacts: int = 1
    task_seconds: float = 5.0
    fail_text: str | None = None
    src_namespace: str = "yourorg"
    creation_time: float = 0.0

    def to_json(self) -> dict[str, Any]:
        repo = self.name.removeprefix("mirror-dockerhub-")
        return {
            "id": self.id,
            "name": self.name,
            "description": "Replicate and mirror images from DockerHub",
            "creator": "admin",
            "src_registry": {"id": 1, "name": "DockerHub", "type": "docker-hub",
                             "url": "https://hub.docker.com", "status": "healthy"},
            "dest_registry": {"id": 0, "name": "Local", "type": "harbor", "url": "http://harbor-core:8080"},
            "dest_namespace": self.src_namespace,
            "dest_namespace_replace_count": 1,
            "trigger": {"type": "manual", "trigger_settings": {"cron": ""}},
            "filters": [
                {"type": "name", "value": f"{self.src_namespace}/{repo}"},
                {"type": "tag", "value": "**"},
            ],
            "replicate_deletion": False,
            "deletion": False,
            "override": True,
            "enabled": self.enabled,
            "speed": -1,
            "copy_by_chunk": True,
            "creation_time": _iso(self.creation_time),
            "update_time": _iso(self.creation_time),
        }


@dataclass
class Task:
    id: int
    execution_id: int
    src_resource: str
    dst_resource: str
    seconds: float
    fail_log: str | None = None
    status: str = "Pending"  # Pending | InProgress | Succeed | Failed | Stopped
    start_time: float | None = None
    end_time: float | None = None
    log: str = ""

    @property
    def final(self) -> bool:
        return self.status in ("Succeed", "Failed", "Stopped")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "execution_id": self.execution_id,
            "resource_type": "image",
            "src_resource": self.src_resource,
            "dst_resource": self.dst_resource,
            "job_id": hashlib.sha1(f"job-{self.id}".encode()).hexdigest()[:24],
            "status": self.status,
            "operation": "copy",
            "start_time": _iso(self.start_time),
            "end_time": _iso(self.end_time),
        }


@dataclass
class Execution:
    id: int
    policy_id: int
    trigger: str
    start_time: float
    status: str = "InProgress"  # InProgress | Succeed | Failed | Stopped
    status_text: str = ""
    end_time: float | None = None
    tasks: list[Task] = field(default_factory=list)
    # when the flow finishes listing upstream and creates tasks (or fails)
    ready_at: float = 0.0
    planned_outcome: str = "copy"  # copy | nothing | skipped | rate_limited
    planned_tasks: list[Task] = field(default_factory=list)

    def counters(self) -> dict[str, int]:
        count = lambda *states: sum(1 for t in self.tasks if t.status in states)  # noqa: E731
        return {
            "total": len(self.tasks),
            "failed": count("Failed"),
            "succeed": count("Succeed"),
            "in_progress": count("Pending", "InProgress"),
            "stopped": count("Stopped"),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "policy_id": self.policy_id,
            "status": self.status,
            "status_text": self.status_text,
            "trigger": self.trigger,
            "start_time": _iso(self.start_time),
            "end_time": _iso(self.end_time),
            **self.counters(),
        }


@dataclass
class Artifact:
    id: int
    digest: str
    tags: list[str]
    push_time: float

    def to_json(self, repository_id: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "digest": self.digest,
            "type": "IMAGE",
            "media_type": "application/vnd.oci.image.manifest.v1+json",
            "manifest_media_type": "application/vnd.oci.image.manifest.v1+json",
            "repository_id": repository_id,
            "size": 1024,
            "push_time": _iso(self.push_time),
            "pull_time": ZERO_TIME,
            "tags": [
                {"id": self.id * 100 + i, "name": tag, "repository_id": repository_id,
                 "artifact_id": self.id, "push_time": _iso(self.push_time), "pull_time": ZERO_TIME,
                 "immutable": False}
                for i, tag in enumerate(self.tags)
            ] or None,
        }


@dataclass
class Repository:
    id: int
    project_id: int
    name: str  # full name, "project/a/b"
    artifacts: list[Artifact] = field(default_factory=list)


@dataclass
class Project:
    id: int
    name: str
    repositories: dict[str, Repository] = field(default_factory=dict)  # key: full name


@dataclass(frozen=True)
class RateLimit:
    """At most `starts` executions may reach upstream in each `window` seconds."""

    starts: int
    window: float
    where: str = "status_text"  # status_text | task_log


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # decoded once, as WSGI gives it
    raw_uri: str  # exactly as sent, e.g. with a%252Fb
    query: str
    headers: dict[str, str]
    status: int


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# --------------------------------------------------------------------------- emulator


class HarborEmulator:
    """State plus a WSGI app. Thread-safe: one lock around everything."""

    def __init__(
        self,
        clock: EmulatorClock | None = None,
        *,
        username: str = "admin",
        password: str = "Harbor12345",
        workers: int = 10,
        prepare_seconds: float = 1.0,
    ) -> None:
        self.clock = clock or ManualClock()
        self.username = username
        self.password = password
        self.workers = workers
        self.prepare_seconds = prepare_seconds
        self.rate_limit: RateLimit | None = None
        self.requests: list[RecordedRequest] = []
        self.purge_schedule: dict[str, Any] | None = None
        self._lock = threading.RLock()
        self._ids = {k: itertools.count(1) for k in ("policy", "execution", "task", "project", "repo", "artifact")}
        self._policies: dict[int, Policy] = {}
        self._executions: dict[int, Execution] = {}
        self._projects: dict[str, Project] = {}
        self._sim_now = 0.0
        self._upstream_starts: list[float] = []
        self._injected: list[tuple[int, bool, str]] = []  # (status, html, message) for the next requests
        # A careless server (or proxy) that quotes the Basic credentials it got in every error
        # message: tests that no secret is printed even when a server echoes it.
        self.echo_credentials = False
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self.latency = 0.0  # real seconds each API request takes
        self.max_in_flight = 0  # the most requests seen at once
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()

    # ---------------------------------------------------------------- seeding API

    def add_policy(
        self,
        name: str,
        *,
        enabled: bool = True,
        artifacts: int = 1,
        task_seconds: float = 5.0,
        fail_text: str | None = None,
    ) -> Policy:
        """A replication rule. `artifacts=0` matches nothing upstream."""
        with self._lock:
            policy = Policy(next(self._ids["policy"]), name, enabled, artifacts, task_seconds, fail_text,
                            creation_time=self.clock.now())
            self._policies[policy.id] = policy
            return policy

    def remove_policy(self, policy_id: int) -> None:
        """Delete a rule; its executions stay, as in Harbor."""
        with self._lock:
            self._catch_up()
            del self._policies[policy_id]

    def policy(self, policy_id: int) -> Policy:
        return self._policies[policy_id]

    def set_rate_limit(self, starts: int, window: float, where: str = "status_text") -> None:
        """Docker Hub lets `starts` executions through per `window` seconds."""
        with self._lock:
            self.rate_limit = RateLimit(starts, window, where)

    def add_project(self, name: str) -> Project:
        with self._lock:
            return self._projects.setdefault(name, Project(next(self._ids["project"]), name))

    def add_artifact(self, repository: str, tags: list[str], digest: str | None = None) -> str:
        """Push an artifact: `repository` is the full name ("project/a/b"). Returns its digest."""
        with self._lock:
            project_name = repository.split("/", 1)[0]
            project = self.add_project(project_name)
            repo = project.repositories.get(repository)
            if repo is None:
                repo = Repository(next(self._ids["repo"]), project.id, repository)
                project.repositories[repository] = repo
            digest = digest or "sha256:" + hashlib.sha256(f"{repository}:{tags}".encode()).hexdigest()
            for other in repo.artifacts:  # a tag moves to the newly pushed artifact
                other.tags = [t for t in other.tags if t not in tags]
            repo.artifacts.append(Artifact(next(self._ids["artifact"]), digest, list(tags), self.clock.now()))
            return digest

    def start_execution(self, policy_id: int, trigger: str = "manual") -> int:
        """Start as if someone else (the UI, a schedule) did it."""
        with self._lock:
            self._catch_up()
            return self._start(policy_id, trigger).id

    def stop_execution(self, execution_id: int) -> None:
        """Stop it as if someone pressed STOP in the UI."""
        with self._lock:
            self._catch_up()
            self._stop(execution_id)

    def execution(self, execution_id: int) -> dict[str, Any]:
        with self._lock:
            self._catch_up()
            return self._executions[execution_id].to_json()

    def executions(self) -> list[dict[str, Any]]:
        with self._lock:
            self._catch_up()
            return [e.to_json() for e in self._executions.values()]

    def fail_next_requests(self, count: int, status: int = 503, html: bool = False,
                           message: str = "internal server error") -> None:
        """The next `count` API requests answer `status` (an HTML body when `html`, like nginx)
        with `message` as Harbor's error message."""
        with self._lock:
            self._injected.extend([(status, html, message)] * count)

    def api_requests(self, method: str | None = None, path_prefix: str = "") -> list[RecordedRequest]:
        return [r for r in self.requests
                if (method is None or r.method == method) and r.path.startswith(API_PREFIX + path_prefix)]

    # ---------------------------------------------------------------- lifecycle

    def _start(self, policy_id: int, trigger: str) -> Execution:
        policy = self._policies.get(policy_id)
        if policy is None:
            raise HttpError(404, "NOT_FOUND", f"policy {policy_id} not found")
        if not policy.enabled:
            raise HttpError(412, "PRECONDITION", f"the policy {policy_id} is disabled")
        now = self._sim_now
        running = any(e.policy_id == policy_id and e.status == "InProgress" for e in self._executions.values())
        execution = Execution(next(self._ids["execution"]), policy_id, trigger, now,
                              ready_at=now + self.prepare_seconds)
        if running:  # Harbor 2.14 records the skip at once, as a Failed execution
            execution.planned_outcome, execution.ready_at = "skipped", now
        elif self._rate_limited(now):
            execution.planned_outcome = "rate_limited"
        else:
            self._upstream_starts.append(now)
            execution.planned_outcome = "copy" if policy.artifacts else "nothing"
        self._executions[execution.id] = execution
        return execution

    def _rate_limited(self, now: float) -> bool:
        if self.rate_limit is None:
            return False
        window_start = (now // self.rate_limit.window) * self.rate_limit.window
        used = sum(1 for t in self._upstream_starts if t >= window_start)
        return used >= self.rate_limit.starts

    def _make_tasks(self, execution: Execution, policy: Policy, fail_log: str | None) -> list[Task]:
        repo = policy.name.removeprefix("mirror-dockerhub-")
        tasks = []
        for i in range(max(policy.artifacts, 1)):
            src = f"{policy.src_namespace}/{repo}:[v{i + 1}]"
            tasks.append(Task(next(self._ids["task"]), execution.id, src, f"{src} (harbor)",
                              policy.task_seconds, fail_log))
        return tasks

    def _catch_up(self) -> None:
        """Replay every lifecycle event up to the clock's now, in time order."""
        target = self.clock.now()
        while True:
            self._schedule_pending()
            next_at = self._next_event_time()
            if next_at is None or next_at > target:
                break
            self._sim_now = max(self._sim_now, next_at)
            self._fire_events(self._sim_now)
        self._sim_now = max(self._sim_now, target)
        self._schedule_pending()

    def _next_event_time(self) -> float | None:
        times = []
        for e in self._executions.values():
            if e.status != "InProgress":
                continue
            if e.planned_outcome:  # still listing upstream
                times.append(e.ready_at)
            times.extend(t.start_time + t.seconds for t in e.tasks
                         if t.status == "InProgress" and t.start_time is not None)
        return min(times) if times else None

    def _fire_events(self, now: float) -> None:
        for e in list(self._executions.values()):
            if e.status != "InProgress":
                continue
            if e.planned_outcome and e.ready_at <= now:
                self._finish_preparing(e, now)
            for t in e.tasks:
                if t.status == "InProgress" and t.start_time is not None and t.start_time + t.seconds <= now:
                    self._finish_task(t, now)
            self._settle(e, now)

    def _finish_preparing(self, e: Execution, now: float) -> None:
        policy = self._policies.get(e.policy_id)
        outcome, e.planned_outcome = e.planned_outcome, ""
        if policy is None:  # deleted while the flow was starting
            e.status, e.status_text, e.end_time = "Failed", f"policy {e.policy_id} not found", now
        elif outcome == "skipped":
            e.status, e.status_text, e.end_time = "Failed", SKIPPED_TEXT, now
        elif outcome == "nothing":
            e.status, e.status_text, e.end_time = "Succeed", NO_RESOURCES_TEXT, now
        elif outcome == "rate_limited" and (self.rate_limit is None or self.rate_limit.where == "status_text"):
            e.status, e.status_text, e.end_time = "Failed", RATE_LIMIT_STATUS_TEXT, now
        elif outcome == "rate_limited":
            e.tasks = self._make_tasks(e, policy, fail_log=RATE_LIMIT_TASK_LOG)
        else:
            e.tasks = self._make_tasks(e, policy, fail_log=policy.fail_text)

    def _schedule_pending(self) -> None:
        """Hand Pending tasks to free job-service workers, oldest first."""
        busy = sum(1 for e in self._executions.values() for t in e.tasks if t.status == "InProgress")
        free = self.workers - busy
        if free <= 0:
            return
        for e in sorted(self._executions.values(), key=lambda x: x.id):
            for t in e.tasks:
                if free == 0:
                    return
                if t.status == "Pending":
                    t.status, t.start_time = "InProgress", self._sim_now
                    t.log = f"{_iso(self._sim_now)} [INFO] copying {t.src_resource} to {t.dst_resource}\n"
                    free -= 1

    def _finish_task(self, t: Task, now: float) -> None:
        t.end_time = now
        if t.fail_log is not None:
            t.status = "Failed"
            t.log += t.fail_log.format(ts=_iso(now), src=t.src_resource)
        else:
            t.status = "Succeed"
            t.log += f"{_iso(now)} [INFO] copy {t.src_resource} to {t.dst_resource} completed\n"

    def _settle(self, e: Execution, now: float) -> None:
        if e.status != "InProgress" or e.planned_outcome or not e.tasks or not all(t.final for t in e.tasks):
            return
        e.end_time = now
        states = {t.status for t in e.tasks}
        e.status = "Failed" if "Failed" in states else "Stopped" if "Stopped" in states else "Succeed"

    def _stop(self, execution_id: int) -> None:
        e = self._get_execution(execution_id)
        if e.status != "InProgress":
            return  # Harbor ignores a stop on a finished execution
        now = self._sim_now
        for t in e.tasks:
            if not t.final:
                t.status, t.end_time = "Stopped", now
        e.planned_outcome = ""
        e.status, e.end_time = "Stopped", now

    def _get_execution(self, execution_id: int) -> Execution:
        e = self._executions.get(execution_id)
        if e is None:
            raise HttpError(404, "NOT_FOUND", f"execution {execution_id} not found")
        return e

    # ---------------------------------------------------------------- HTTP

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        with self._in_flight_lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self.latency:
                time.sleep(self.latency)  # outside the state lock: requests overlap as on a real server
            response = self._dispatch(request)
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1
        headers = {k: v for k, v in request.headers.items()}
        raw_uri = environ.get("REQUEST_URI") or environ.get("RAW_URI") or request.full_path
        self.requests.append(RecordedRequest(request.method, request.path, raw_uri, request.query_string.decode(),
                                             headers, response.status_code))
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        if not request.path.startswith(API_PREFIX + "/"):
            return Response(PORTAL_HTML, 200, content_type="text/html")
        with self._lock:
            if self._injected:
                status, html, message = self._injected.pop(0)
                if html:
                    return Response(f"<html><head><title>{status} Bad Gateway</title></head><body>"
                                    f"<center><h1>{status} Bad Gateway</h1></center><hr><center>nginx</center>"
                                    "</body></html>", status, content_type="text/html")
                return _error(self._echoing(HttpError(status, "INTERNAL_SERVER_ERROR", message), request))
            try:
                self._catch_up()
                response = self._route(request)
            except HttpError as exc:
                response = _error(self._echoing(exc, request))
        # Harbor's beego session: every API answer sets a session cookie.
        response.set_cookie("sid", secrets.token_hex(16), path="/", httponly=True)
        return response

    def _route(self, request: Request) -> Response:
        path = request.path[len(API_PREFIX):]
        if path == "/ping" and request.method == "GET":
            return Response("Pong", 200, content_type="text/plain")
        # A write carrying the session is held to the CSRF check. The emulator hands out no
        # CSRF tokens, so such a write always fails, as it does for a client that ignores them.
        if request.method in ("POST", "PUT", "DELETE", "PATCH") and "sid" in request.cookies:
            raise HttpError(403, "FORBIDDEN", "CSRF token invalid")  # goharbor/harbor#10890, #12455
        if not self._authenticated(request):
            raise HttpError(401, "UNAUTHORIZED", "unauthorized")
        for method, pattern, handler in self._routes():
            match = re.fullmatch(pattern, path)
            if match and method == request.method:
                return handler(request, *match.groups())
        raise HttpError(404, "NOT_FOUND", f"path {request.path} was not found")

    def _routes(self) -> list[tuple[str, str, Callable[..., Response]]]:
        return [
            ("GET", r"/users/current", self._h_current_user),
            ("GET", r"/replication/policies", self._h_list_policies),
            ("GET", r"/replication/policies/(\d+)", self._h_get_policy),
            ("POST", r"/replication/executions", self._h_start),
            ("GET", r"/replication/executions", self._h_list_executions),
            ("GET", r"/replication/executions/(\d+)", self._h_get_execution),
            ("PUT", r"/replication/executions/(\d+)", self._h_stop),
            ("GET", r"/replication/executions/(\d+)/tasks", self._h_list_tasks),
            ("GET", r"/replication/executions/(\d+)/tasks/(\d+)/log", self._h_task_log),
            ("GET", r"/projects", self._h_list_projects),
            ("GET", r"/projects/([^/]+)/repositories", self._h_list_repositories),
            ("GET", r"/projects/([^/]+)/repositories/([^/]+)/artifacts", self._h_list_artifacts),
            ("GET", r"/system/purgeaudit/schedule", self._h_get_purge),
            ("POST", r"/system/purgeaudit/schedule", self._h_put_purge),
            ("PUT", r"/system/purgeaudit/schedule", self._h_put_purge),
        ]

    def _echoing(self, exc: HttpError, request: Request) -> HttpError:
        if not self.echo_credentials:
            return exc
        try:
            sent = base64.b64decode(request.headers.get("Authorization", "")[6:]).decode()
        except ValueError:
            sent = "?"
        return HttpError(exc.status, exc.code, f"{exc.message} (bad login {sent})")

    def _authenticated(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return secrets.compare_digest(user, self.username) and secrets.compare_digest(password, self.password)

    # ---------------------------------------------------------------- handlers

    def _h_current_user(self, request: Request) -> Response:
        return _json({"user_id": 1, "username": self.username, "email": "admin@example.com",
                      "realname": "system admin", "sysadmin_flag": True, "admin_role_in_auth": False,
                      "creation_time": _iso(0), "update_time": _iso(0)})

    def _h_list_policies(self, request: Request) -> Response:
        policies = sorted(self._policies.values(), key=lambda p: p.id)
        keywords = _parse_q(request.args.get("q", ""))
        if "name" in request.args:
            keywords["name"] = ("~", request.args["name"])
        for key, (op, value) in keywords.items():
            if key != "name":
                raise HttpError(400, "BAD_REQUEST", f"unsupported query key {key!r} in the emulator")
            policies = [p for p in policies if (value in p.name if op == "~" else p.name == value)]
        return _paged(request, [p.to_json() for p in policies])

    def _h_get_policy(self, request: Request, policy_id: str) -> Response:
        policy = self._policies.get(int(policy_id))
        if policy is None:
            raise HttpError(404, "NOT_FOUND", f"policy {policy_id} not found")
        return _json(policy.to_json())

    def _h_start(self, request: Request) -> Response:
        try:
            body = json.loads(request.get_data(as_text=True) or "{}")
            policy_id = int(body["policy_id"])
        except (ValueError, KeyError, TypeError):
            raise HttpError(422, "UNPROCESSABLE_ENTITY",
                            "validation failure list:\npolicy_id in body is required") from None
        trigger = "scheduled" if request.args.get("trigger") == "scheduled" else "manual"
        execution = self._start(policy_id, trigger)
        response = Response(status=201)
        response.headers["Location"] = f"{API_PREFIX}/replication/executions/{execution.id}"
        return response

    def _h_list_executions(self, request: Request) -> Response:
        executions = list(self._executions.values())
        for key in ("policy_id", "status", "trigger"):
            if key in request.args:
                wanted = request.args[key]
                executions = [e for e in executions if str(getattr(e, key)) == wanted]
        executions = _sorted(executions, request.args.get("sort", "-start_time"))
        return _paged(request, [e.to_json() for e in executions])

    def _h_get_execution(self, request: Request, execution_id: str) -> Response:
        return _json(self._get_execution(int(execution_id)).to_json())

    def _h_stop(self, request: Request, execution_id: str) -> Response:
        self._stop(int(execution_id))
        return Response(status=200)

    def _h_list_tasks(self, request: Request, execution_id: str) -> Response:
        tasks = self._get_execution(int(execution_id)).tasks
        if "status" in request.args:
            tasks = [t for t in tasks if t.status == request.args["status"]]
        return _paged(request, [t.to_json() for t in tasks])

    def _h_task_log(self, request: Request, execution_id: str, task_id: str) -> Response:
        execution = self._get_execution(int(execution_id))
        task = next((t for t in execution.tasks if t.id == int(task_id)), None)
        if task is None:
            raise HttpError(404, "NOT_FOUND", f"execution {execution_id} contains no task with ID {task_id}")
        return Response(task.log, 200, content_type="text/plain")

    def _h_list_projects(self, request: Request) -> Response:
        projects = sorted(self._projects.values(), key=lambda p: p.id)
        if "name" in request.args:
            projects = [p for p in projects if p.name == request.args["name"]]
        return _paged(request, [
            {"project_id": p.id, "name": p.name, "owner_name": "admin", "repo_count": len(p.repositories),
             "metadata": {"public": "false"}, "creation_time": _iso(0), "update_time": _iso(0)}
            for p in projects
        ])

    def _project(self, name: str) -> Project:
        project = self._projects.get(name)
        if project is None:
            raise HttpError(404, "NOT_FOUND", f"project {name} not found")
        return project

    def _h_list_repositories(self, request: Request, project_name: str) -> Response:
        project = self._project(project_name)
        repos = sorted(project.repositories.values(), key=lambda r: r.name)
        return _paged(request, [
            {"id": r.id, "project_id": r.project_id, "name": r.name, "artifact_count": len(r.artifacts),
             "pull_count": 0, "creation_time": _iso(0), "update_time": _iso(0)}
            for r in repos
        ])

    def _h_list_artifacts(self, request: Request, project_name: str, repository: str) -> Response:
        # PATH_INFO arrives decoded once; Harbor wants "a/b" sent as a%252Fb, so one more decode.
        project = self._project(project_name)
        full_name = f"{project_name}/{unquote(repository)}"
        repo = project.repositories.get(full_name)
        if repo is None:
            raise HttpError(404, "NOT_FOUND", f"repository {full_name} not found")
        artifacts = sorted(repo.artifacts, key=lambda a: -a.id)
        return _paged(request, [a.to_json(repo.id) for a in artifacts])

    def _h_get_purge(self, request: Request) -> Response:
        if self.purge_schedule is None:
            # handler/purge.go: NotFound from the scheduler becomes a bare 200 with no body
            return Response(status=200, content_type="application/json")
        return _json(self.purge_schedule)

    def _h_put_purge(self, request: Request) -> Response:
        try:
            body = json.loads(request.get_data(as_text=True) or "null")
        except ValueError:
            raise HttpError(400, "BAD_REQUEST", "invalid JSON body") from None
        schedule = (body or {}).get("schedule")
        parameters = (body or {}).get("parameters") or {}
        if not schedule:
            raise HttpError(400, "BAD_REQUEST", "schedule cann't be empty")
        if not parameters:
            raise HttpError(400, "BAD_REQUEST", "schedule parameter cann't be empty")
        for key in ("audit_retention_hour", "include_operations"):
            if key not in parameters:
                raise HttpError(400, "BAD_REQUEST", f"{key} should provide")
        kind = schedule.get("type")
        cron = schedule.get("cron", "")
        if kind == "None":
            self.purge_schedule = None
        elif kind in ("Hourly", "Daily", "Weekly", "Custom"):
            if not cron:
                raise HttpError(400, "BAD_REQUEST", "empty cron string for schedule")
            now = _iso(self._sim_now)
            created = (self.purge_schedule or {}).get("creation_time", now)
            self.purge_schedule = {
                "id": 1, "job_name": "", "job_kind": cron, "job_status": "",
                "job_parameters": json.dumps(parameters, separators=(",", ":"), sort_keys=True),
                "deleted": False,
                "schedule": {"type": kind, "cron": cron, "next_scheduled_time": now},
                "creation_time": created, "update_time": now,
            }
        elif kind != "Manual":
            raise HttpError(400, "BAD_REQUEST", f"invalid schedule type {kind!r}")
        return Response(status=201 if request.method == "POST" else 200)

    # ---------------------------------------------------------------- server

    def start(self) -> HarborEmulator:
        self._server = make_server("127.0.0.1", 0, self.wsgi, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        server = self._server
        # a short poll interval: shutdown() waits for it, and tests stop many servers
        self._thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.02),
                                        name="harbor-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HarborEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- helpers


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr (tests read the CLI's stderr); Date from the emulated clock."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header shows the emulated clock, so clients can compute runtimes against it."""
        emulator: HarborEmulator = self.server.app.__self__  # type: ignore[attr-defined]
        return http_date(emulated_datetime(emulator.clock.now()))


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(payload), status, content_type="application/json")
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _error(exc: HttpError) -> Response:
    return _json({"errors": [{"code": exc.code, "message": exc.message}]}, exc.status)


def _parse_q(q: str) -> dict[str, tuple[str, str]]:
    """Harbor's q syntax, the parts we need: key=value (exact) and key=~value (fuzzy)."""
    keywords: dict[str, tuple[str, str]] = {}
    for part in filter(None, q.split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            raise HttpError(400, "BAD_REQUEST", f"invalid query string: {part}")
        keywords[key] = ("~", value[1:]) if value.startswith("~") else ("=", value)
    return keywords


def _sorted(executions: list[Execution], sort: str) -> list[Execution]:
    key = sort.lstrip("-")
    if key not in ("id", "start_time"):
        raise HttpError(400, "BAD_REQUEST", f"the sorting key {key} is not supported")
    return sorted(executions, key=lambda e: (getattr(e, key), e.id), reverse=sort.startswith("-"))


def _paged(request: Request, items: list[Any]) -> Response:
    try:
        page = int(request.args.get("page", 1))
        page_size = int(request.args.get("page_size", DEFAULT_PAGE_SIZE))
    except ValueError:
        raise HttpError(422, "UNPROCESSABLE_ENTITY",
                        "validation failure list:\npage in query must be of type int64") from None
    if page_size > MAX_PAGE_SIZE:
        raise HttpError(422, "UNPROCESSABLE_ENTITY", "validation failure list:\n"
                        f"page_size in query should be less than or equal to {MAX_PAGE_SIZE}")
    if page < 1 or page_size < 0:
        raise HttpError(422, "UNPROCESSABLE_ENTITY",
                        "validation failure list:\npage in query should be greater than or equal to 1")
    total = len(items)
    chunk = items[(page - 1) * page_size: page * page_size] if page_size else items
    return _json(chunk, headers={"X-Total-Count": str(total), "Link": _links(request, total, page, page_size)})


def _links(request: Request, total: int, page: int, page_size: int) -> str:
    """Harbor's BaseAPI.Links: relative URLs, query string un-escaped, joined by " , "."""
    if page_size == 0:
        return ""
    links = []
    for rel, number, wanted in (("prev", page - 1, page > 1 and (page - 1) * page_size < total),
                                ("next", page + 1, page_size * page < total)):
        if wanted:
            args = dict(request.args.items())
            args.update(page=str(number), page_size=str(page_size))
            links.append(f'<{request.path}?{unquote(urlencode(sorted(args.items())))}>; rel="{rel}"')
    return " , ".join(links)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def harbor() -> Iterator[HarborEmulator]:
    """A running emulator with a manual clock; admin / Harbor12345."""
    with HarborEmulator() as emulator:
        yield emulator
