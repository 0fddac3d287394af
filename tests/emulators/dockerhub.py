"""A loopback Docker Hub API emulator: the listing and token routes the mirror uses.

It is a real HTTP server on 127.0.0.1 (stdlib ``ThreadingHTTPServer``), so clients are tested
through their real transport, connection pool and threads. It models what the mirror relies on:

* ``POST /v2/auth/token`` with ``{"identifier", "secret"}`` -> ``{"access_token"}`` living
  ``token_lifetime`` seconds (10 minutes by default) on the emulator's clock (``advance()``);
* ``GET /v2/namespaces/{ns}/repositories`` and the legacy ``GET /v2/repositories/{ns}/``:
  Django-style ``count``/``next``/``previous``/``results`` with ABSOLUTE ``next`` URLs,
  ``page_size`` capped at 100, ``ordering=name``, 404 for an unknown namespace or page;
* private repositories visible only to members whose token carries the list scope (an OAT
  without ``scope-repository-list`` silently sees public ones only, as Docker Hub documents);
* 401 for missing/expired/unknown bearers, 403 for identifiers refused on a namespace;
* ``X-RateLimit-*`` headers on every answer and an optional real per-window request limit;
* injected faults: any status with headers/body (429 defaults to the real headers and body
  ``{"detail":"Rate limit exceeded","error":false}``), malformed JSON, a dropped connection,
  a truncated last page (``count`` says more than the pages hold), per-request latency.

Example::

    with DockerHubEmulator() as hub:
        hub.add_namespace("yourorg", [f"app{i}" for i in range(250)], private={"app7"})
        hub.add_user("ci-bot", "dckr_pat_x", member_of={"yourorg"})
        hub.inject(path="/repositories", status=429, times=1)
        ... DockerHubClient(base_url=hub.url, username="ci-bot", token="dckr_pat_x") ...
        assert hub.requests_to("/repositories") == 4
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

RATE_LIMIT_BODY = {"detail": "Rate limit exceeded", "error": False}
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 10
_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


@dataclass
class Fault:
    """One injected misbehaviour, applied to the next ``times`` requests whose path contains ``path``."""

    path: str
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    kind: str = "status"  # status | malformed | drop
    times: int = 1
    method: str | None = None
    rate_headers: bool = True  # False: answer without any X-RateLimit-* hint


@dataclass
class _User:
    secret: str
    member_of: set[str]
    list_scope: bool
    forbidden: set[str]


@dataclass
class _Recorded:
    method: str
    path: str
    query: dict[str, str]
    authorized: bool
    status: int = 0


class DockerHubEmulator:
    """State + server. All mutators are thread-safe; start with ``with`` or ``start()``."""

    def __init__(
        self,
        token_lifetime: float = 600.0,
        latency: float = 0.0,
        rate_limit: tuple[int, float] | None = None,
    ) -> None:
        self.token_lifetime = token_lifetime
        self.latency = latency
        self.rate_limit = rate_limit  # (requests, window seconds) -> real 429s beyond it
        self.legacy_only = False  # the /v2/namespaces route answers 404 (older deployments/proxies)
        self._lock = threading.Lock()
        self._namespaces: dict[str, list[dict[str, Any]]] = {}
        self._truncate: dict[str, int] = {}
        self._users: dict[str, _User] = {}
        self._tokens: dict[str, tuple[str, float]] = {}
        self._faults: list[Fault] = []
        self._clock_offset = 0.0
        self._window_start = time.monotonic()
        self._window_count = 0
        self.requests: list[_Recorded] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.tokens_issued = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- setup -----------------------------------------------------------------------------
    def add_namespace(
        self,
        namespace: str,
        repositories: list[str],
        private: set[str] | frozenset[str] = frozenset(),
        updated: dict[str, str] | None = None,
    ) -> None:
        """Create (or replace) a namespace; ``updated`` maps repo -> ISO last_updated."""
        with self._lock:
            self._namespaces[namespace] = [
                self._repo(namespace, name, index, name in private, (updated or {}).get(name))
                for index, name in enumerate(repositories)
            ]

    def set_repositories(self, namespace: str, repositories: list[str], private: set[str] | frozenset[str] = frozenset()) -> None:
        self.add_namespace(namespace, repositories, private)

    @staticmethod
    def _repo(namespace: str, name: str, index: int, is_private: bool, updated: str | None) -> dict[str, Any]:
        last_updated = updated or (_EPOCH + timedelta(minutes=index)).isoformat().replace("+00:00", "Z")
        return {
            "name": name,
            "namespace": namespace,
            "repository_type": "image",
            "status": 1,
            "status_description": "active",
            "description": "",
            "is_private": is_private,
            "star_count": 0,
            "pull_count": index,
            "last_updated": last_updated,
            "last_modified": last_updated,
            "date_registered": "2024-01-01T00:00:00Z",
            "affiliation": "",
            "media_types": ["application/vnd.oci.image.index.v1+json"],
            "content_types": ["image"],
            "categories": [],
            "storage_size": 1024,
        }

    def add_user(
        self,
        identifier: str,
        secret: str,
        member_of: set[str] | frozenset[str] = frozenset(),
        list_scope: bool = True,
        forbidden: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        with self._lock:
            self._users[identifier] = _User(secret, set(member_of), list_scope, set(forbidden))

    def inject(self, path: str, status: int = 500, times: int = 1, headers: dict[str, str] | None = None,
               body: Any = None, kind: str = "status", method: str | None = None,
               rate_headers: bool = True) -> None:
        """Misbehave on the next ``times`` matching requests. A 429 gets Docker Hub's real headers/body."""
        if status == 429 and headers is None:
            headers = {"Retry-After": "1"}
        if status == 429 and body is None:
            body = RATE_LIMIT_BODY
        with self._lock:
            self._faults.append(Fault(path, status, dict(headers or {}), body, kind, times, method, rate_headers))

    def truncate_last_page(self, namespace: str, missing: int) -> None:
        """Keep ``count`` honest but drop ``missing`` repositories from the last page (a cut-short answer)."""
        with self._lock:
            self._truncate[namespace] = missing

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward: tokens older than their lifetime stop working."""
        with self._lock:
            self._clock_offset += seconds

    def now(self) -> float:
        return time.time() + self._clock_offset

    def requests_to(self, path_part: str, method: str = "GET") -> int:
        with self._lock:
            return sum(1 for r in self.requests if path_part in r.path and r.method == method)

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "emulator not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> DockerHubEmulator:
        emulator = self

        class Handler(_Handler):
            hub = emulator

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="dockerhub-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> DockerHubEmulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- request handling (called from handler threads) ------------------------------------
    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path in path and fault.times > 0 and (fault.method is None or fault.method == method):
                    fault.times -= 1
                    return fault
        return None

    def _rate_headers(self) -> tuple[dict[str, str], bool]:
        """X-RateLimit-* headers, and whether this request is over the limit."""
        if self.rate_limit is None:
            reset = int(self.now()) + 60
            return {"X-RateLimit-Limit": "180", "X-RateLimit-Remaining": "179", "X-RateLimit-Reset": str(reset)}, False
        limit, window = self.rate_limit
        with self._lock:
            elapsed = time.monotonic() - self._window_start
            if elapsed >= window:
                self._window_start, self._window_count, elapsed = time.monotonic(), 0, 0.0
            self._window_count += 1
            over = self._window_count > limit
            remaining = max(0, limit - self._window_count)
            reset_in = window - elapsed
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(int(math.ceil(self.now() + reset_in))),
        }
        if over:
            headers["Retry-After"] = str(max(1, int(math.ceil(reset_in))))
            headers["X-Retry-After"] = headers["X-RateLimit-Reset"]
        return headers, over

    def _issue_token(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("identifier"), str) or not isinstance(body.get("secret"), str):
            return 400, {"detail": "identifier and secret are required"}
        with self._lock:
            user = self._users.get(body["identifier"])
            if user is None or not secrets.compare_digest(user.secret, body["secret"]):
                return 401, {"detail": "Incorrect authentication credentials"}
            token = "emu_" + secrets.token_urlsafe(24)
            self._tokens[token] = (body["identifier"], self.now())
            self.tokens_issued += 1
        return 200, {"access_token": token}

    def _who(self, authorization: str | None) -> tuple[str | None, int | None]:
        """(identifier or None for anonymous, error status or None)."""
        if not authorization:
            return None, None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() not in ("bearer", "jwt") or not token:
            return None, 401
        with self._lock:
            issued = self._tokens.get(token)
        if issued is None or self.now() - issued[1] > self.token_lifetime:
            return None, 401
        return issued[0], None

    def _list(self, namespace: str, query: dict[str, str], who: str | None, base: str, path: str) -> tuple[int, Any]:
        with self._lock:
            repos = self._namespaces.get(namespace)
            user = self._users.get(who) if who else None
            truncate = self._truncate.get(namespace, 0)
        if repos is None:
            return 404, {"message": "object not found", "errinfo": {"namespace": namespace}}
        if user is not None and namespace in user.forbidden:
            return 403, {"detail": "You do not have permission to list repositories in this namespace"}
        sees_private = user is not None and user.list_scope and namespace in user.member_of
        visible = sorted((r for r in repos if sees_private or not r["is_private"]), key=lambda r: r["name"])
        try:
            page = int(query.get("page", "1"))
            page_size = min(MAX_PAGE_SIZE, max(1, int(query.get("page_size", str(DEFAULT_PAGE_SIZE)))))
        except ValueError:
            return 400, {"detail": "page and page_size must be integers"}
        pages = max(1, math.ceil(len(visible) / page_size))
        if page < 1 or page > pages:
            return 404, {"detail": "Invalid page."}
        results = visible[(page - 1) * page_size : page * page_size]
        if page == pages and truncate:
            results = results[: max(0, len(results) - truncate)]

        def link(to: int) -> str | None:
            if to < 1 or to > pages:
                return None
            return f"{base}{path}?{urlencode({**query, 'page': to, 'page_size': page_size})}"

        return 200, {"count": len(visible), "next": link(page + 1), "previous": link(page - 1), "results": results}


class _Handler(BaseHTTPRequestHandler):
    hub: DockerHubEmulator
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        hub = self.hub
        with hub._lock:
            hub.in_flight += 1
            hub.max_in_flight = max(hub.max_in_flight, hub.in_flight)
        try:
            self._dispatch(method)
        finally:
            with hub._lock:
                hub.in_flight -= 1

    def _dispatch(self, method: str) -> None:
        hub = self.hub
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        record = _Recorded(method, parts.path, query, bool(self.headers.get("Authorization")))
        with hub._lock:
            hub.requests.append(record)
        if hub.latency:
            time.sleep(hub.latency)
        rate_headers, over_limit = hub._rate_headers()
        fault = hub._take_fault(method, parts.path)
        if fault is not None and fault.kind == "drop":
            record.status = -1
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if fault is not None and fault.kind == "malformed":
            record.status = 200
            self._send(200, b'{"count": 3, "next": null, "results": [{"name": "a"', rate_headers)
            return
        if fault is not None:
            record.status = fault.status
            body = fault.body if fault.body is not None else {"detail": "injected failure"}
            base_headers = rate_headers if fault.rate_headers else {}
            self._send(fault.status, json.dumps(body).encode(), {**base_headers, **fault.headers})
            return
        if over_limit:
            record.status = 429
            self._send(429, json.dumps(RATE_LIMIT_BODY).encode(), rate_headers)
            return
        status, body = self._route(method, parts.path, query, raw)
        record.status = status
        self._send(status, json.dumps(body).encode(), rate_headers)

    def _route(self, method: str, path: str, query: dict[str, str], raw: bytes) -> tuple[int, Any]:
        hub = self.hub
        if method == "POST" and path.rstrip("/") == "/v2/auth/token":
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                return 400, {"detail": "malformed JSON"}
            return hub._issue_token(body)
        if method != "GET":
            return 405, {"detail": "method not allowed"}
        segments = [s for s in path.split("/") if s]
        namespace: str | None = None
        if len(segments) == 4 and segments[:2] == ["v2", "namespaces"] and segments[3] == "repositories":
            if hub.legacy_only:
                return 404, {"message": "page not found"}
            namespace = segments[2]
        elif len(segments) == 3 and segments[:2] == ["v2", "repositories"]:
            namespace = segments[2]
        if namespace is None:
            return 404, {"message": "page not found"}
        who, auth_error = hub._who(self.headers.get("Authorization"))
        if auth_error:
            return auth_error, {"detail": "Authentication credentials were not provided or are invalid."}
        host, port = self.server.server_address[:2]
        return hub._list(namespace, query, who, f"http://{host}:{port}", path)

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
