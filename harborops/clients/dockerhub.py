"""An httpx client for the part of Docker Hub's API the mirror needs: listing an organisation.

Example::

    with DockerHubClient(username="ci-bot", token=SecretStr("dckr_oat_...")) as hub:
        for repo in hub.list_repositories("yourorg"):
            print(repo.name, repo.last_updated)

What it does, and why:

* Lists ``GET /v2/namespaces/{ns}/repositories`` (``page_size`` 100, ``ordering=name`` so
  pages are stable), falling back to the legacy ``/v2/repositories/{ns}/`` when the new
  route answers 404/405/410.
* The first page gives ``count``; the remaining pages are fetched concurrently, at most
  ``max_concurrency`` at a time, from the absolute ``next`` URL the server returned (so a
  proxy or a rewritten host is respected). A last page whose ``next`` is not null is then
  followed until it is.
* Authenticates with ``POST /v2/auth/token`` (identifier + personal or organisation access
  token). The bearer lives 10 minutes: it is refreshed before it expires and once more on a
  401, under a lock so concurrent page fetches do not log in N times.
* Retries are tenacity's, not a hand-rolled loop: 429 waits for ``Retry-After`` (seconds),
  then ``X-Retry-After`` / ``X-RateLimit-Reset`` (Unix timestamps), else bounded exponential
  backoff with jitter; 5xx, timeouts and dropped connections get the same bounded backoff.
  A server asking us to wait longer than ``max_retry_after`` fails at once with a clear error.
* Never returns a partial catalogue silently: fewer unique repositories than ``count`` raises
  :class:`DockerHubIncompleteError`; callers decide whether to fall back.
* The result is de-duplicated by name (the newest ``last_updated`` wins) and sorted.

No message, log line or repr contains the token: errors are built from status codes,
paths and server ``detail`` strings with the token scrubbed out.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from harborops.errors import HarborOpsError, UsageError
from harborops.urls import http_url_problem

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://hub.docker.com"
MAX_PAGE_SIZE = 100  # Docker Hub's documented cap for page_size
TOKEN_LIFETIME_SECONDS = 600.0  # "The created access token. This expires in 10 minutes."
_TOKEN_REFRESH_MARGIN_SECONDS = 60.0
_NAMESPACE_PATTERN = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_LEGACY_FALLBACK_STATUS = frozenset({404, 405, 410})
_DETAIL_LIMIT = 200


# --- errors -------------------------------------------------------------------------------
class DockerHubError(HarborOpsError):
    """Any failure talking to Docker Hub. Messages never contain credentials."""


class DockerHubUsageError(DockerHubError, UsageError):
    """The caller asked for something malformed (a bad namespace or base URL): exit code 2."""


class DockerHubAuthError(DockerHubError):
    """401: the identifier/token pair was rejected, or the bearer stopped being accepted."""


class DockerHubForbiddenError(DockerHubError):
    """403: the token is valid but may not read this namespace."""


class DockerHubNotFoundError(DockerHubError):
    """404 on both the current and the legacy listing route: the namespace does not exist."""


class DockerHubRateLimitedError(DockerHubError):
    """429 after every retry, or a Retry-After longer than we are willing to wait."""


class DockerHubUnavailableError(DockerHubError):
    """5xx, a dropped connection or a timeout after every retry."""


class DockerHubTimeoutError(DockerHubUnavailableError):
    """The request timed out after every retry."""


class DockerHubProtocolError(DockerHubError):
    """The answer was not the JSON shape Docker Hub documents (malformed or truncated body)."""


class DockerHubIncompleteError(DockerHubError):
    """Fewer unique repositories arrived than the first page's ``count`` promised."""

    def __init__(self, namespace: str, received: int, expected: int) -> None:
        super().__init__(
            f"Docker Hub listed {received} of the {expected} repositories it counted in "
            f"namespace '{namespace}': the answer is partial"
        )
        self.namespace = namespace
        self.received = received
        self.expected = expected


# --- models -------------------------------------------------------------------------------
class Repository(BaseModel):
    """One Docker Hub repository, as much of it as the mirror needs."""

    model_config = ConfigDict(frozen=True)

    name: str
    namespace: str
    last_updated: datetime | None = None
    is_private: bool = False


class Catalog(BaseModel):
    """The whole listing of one namespace, with what was learnt while fetching it."""

    model_config = ConfigDict(frozen=True)

    namespace: str
    repositories: tuple[Repository, ...]
    count: int
    route: str
    pages: int
    warnings: tuple[str, ...] = ()


class DockerHubSettings(BaseSettings):
    """Docker Hub credentials from the environment: DOCKERHUB_USERNAME, DOCKERHUB_TOKEN, DOCKERHUB_BASE_URL."""

    model_config = SettingsConfigDict(env_prefix="DOCKERHUB_", extra="ignore")

    username: str | None = None
    token: SecretStr | None = None
    base_url: str = DEFAULT_BASE_URL


# --- retry plumbing -----------------------------------------------------------------------
class _Retryable(Exception):
    """Internal: a failure worth another attempt; ``public`` is what the caller sees if none is left."""

    def __init__(self, public: DockerHubError, server_wait: float | None = None) -> None:
        super().__init__(str(public))
        self.public = public
        self.server_wait = server_wait


def _server_requested_wait(response: httpx.Response, now: float) -> float | None:
    """Seconds Docker Hub asks us to wait: Retry-After, then X-Retry-After, then X-RateLimit-Reset."""
    retry_after = response.headers.get("Retry-After")
    if retry_after:
        if retry_after.strip().isdigit():
            return float(retry_after)
        try:
            return max(0.0, parsedate_to_datetime(retry_after).timestamp() - now)
        except (TypeError, ValueError):
            pass
    for header in ("X-Retry-After", "X-RateLimit-Reset"):
        value = response.headers.get(header, "").strip()
        if value:
            try:
                return max(0.0, float(value) - now)
            except ValueError:
                continue
    return None


def _parse_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _with_page(url: str, page: int) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["page"] = str(page)
    return urlunsplit(parts._replace(query=urlencode(query)))


# --- the client ---------------------------------------------------------------------------
class DockerHubClient:
    """A synchronous Docker Hub client, safe to share between the threads it starts itself.

    Synchronous on purpose: the Pulumi program and the typer CLI both call it from code that
    may already sit inside an event loop, where ``asyncio.run`` is not allowed. Concurrency
    comes from a small thread pool sharing one ``httpx.Client`` connection pool.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        username: str | None = None,
        token: SecretStr | str | None = None,
        *,
        page_size: int = MAX_PAGE_SIZE,
        max_concurrency: int = 4,
        timeout: float = 15.0,
        max_attempts: int = 5,
        max_backoff: float = 30.0,
        max_retry_after: float = 120.0,
        token_lifetime: float = TOKEN_LIFETIME_SECONDS,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        problem = http_url_problem(base_url, credentials_in="DOCKERHUB_USERNAME / DOCKERHUB_TOKEN")
        if problem:
            raise DockerHubUsageError(f"Docker Hub base URL (DOCKERHUB_BASE_URL): {problem}")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise DockerHubUsageError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
        if max_concurrency < 1 or max_attempts < 1:
            raise DockerHubUsageError("max_concurrency and max_attempts must be at least 1")
        if token is not None and not isinstance(token, SecretStr):
            token = SecretStr(token)
        if (username is None) != (token is None):
            raise DockerHubUsageError("Docker Hub username and token must be given together (or neither, for anonymous)")
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._token = token
        self._page_size = page_size
        self._max_concurrency = max_concurrency
        self._max_attempts = max_attempts
        self._max_retry_after = max_retry_after
        self._token_lifetime = token_lifetime
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._backoff = wait_exponential_jitter(multiplier=0.5, max=max_backoff, jitter=0.5)
        self._bearer: SecretStr | None = None
        self._bearer_obtained_at = 0.0
        self._bearer_lock = threading.Lock()
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "harbor-platform-mirror/1"},
            limits=httpx.Limits(max_connections=max_concurrency + 1),
        )

    def __repr__(self) -> str:  # never show the token
        return f"DockerHubClient(base_url={self.base_url!r}, username={self.username!r})"

    def __enter__(self) -> DockerHubClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def authenticated(self) -> bool:
        return self._token is not None

    # -- public API ------------------------------------------------------------------------
    def list_repositories(self, namespace: str) -> list[Repository]:
        """Every repository in ``namespace``, sorted by name, de-duplicated. Warnings are logged."""
        catalog = self.fetch_catalog(namespace)
        for warning in catalog.warnings:
            log.warning(warning)
        return list(catalog.repositories)

    def fetch_catalog(self, namespace: str) -> Catalog:
        """The complete listing of ``namespace`` plus warnings; raises rather than return a partial one."""
        namespace = self._validated_namespace(namespace)
        route, first = self._first_page(namespace)
        count = self._count(first, route)
        pages: list[dict[str, Any]] = [first]
        next_url = first.get("next")
        if next_url:
            pages.extend(self._remaining_pages(str(next_url), count))
        while pages[-1].get("next") and len(pages) < 10_000:  # it grew while we read: follow `next`
            pages.append(self._get_page(str(pages[-1]["next"])))
        repositories = self._unique_sorted(namespace, pages)
        if len(repositories) < count:
            raise DockerHubIncompleteError(namespace, len(repositories), count)
        return Catalog(
            namespace=namespace,
            repositories=tuple(repositories),
            count=count,
            route=route,
            pages=len(pages),
            warnings=tuple(self._scope_warnings(namespace, repositories)),
        )

    # -- listing ---------------------------------------------------------------------------
    @staticmethod
    def _validated_namespace(namespace: str) -> str:
        namespace = namespace.strip().lower()
        if not _NAMESPACE_PATTERN.fullmatch(namespace):
            raise DockerHubUsageError(f"not a Docker Hub namespace: {namespace!r}")
        return namespace

    def _first_page(self, namespace: str) -> tuple[str, dict[str, Any]]:
        query = f"?page=1&page_size={self._page_size}&ordering=name"
        current = f"/v2/namespaces/{namespace}/repositories"
        try:
            return current, self._get_page(current + query, missing=_LEGACY_FALLBACK_STATUS)
        except _RouteMissing:
            log.info("Docker Hub %s is unavailable; falling back to the legacy listing route", current)
        legacy = f"/v2/repositories/{namespace}/"
        try:
            return legacy, self._get_page(legacy + query, missing=frozenset({404}))
        except _RouteMissing:
            raise DockerHubNotFoundError(f"Docker Hub namespace '{namespace}' does not exist (404)") from None

    @staticmethod
    def _count(page: dict[str, Any], route: str) -> int:
        count = page.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise DockerHubProtocolError(f"Docker Hub {route} answered without a valid 'count'")
        return count

    def _remaining_pages(self, next_url: str, count: int) -> list[dict[str, Any]]:
        last_page = max(2, math.ceil(count / self._page_size))
        urls = [_with_page(next_url, page) for page in range(2, last_page + 1)]
        if len(urls) == 1:
            return [self._get_page(urls[0])]
        with ThreadPoolExecutor(max_workers=self._max_concurrency, thread_name_prefix="dockerhub-page") as pool:
            return list(pool.map(self._get_page, urls))  # map keeps page order; first error propagates

    def _get_page(self, url: str, missing: frozenset[int] = frozenset()) -> dict[str, Any]:
        response = self._request("GET", url, missing=missing)
        try:
            page = response.json()
        except ValueError:
            raise DockerHubProtocolError(f"Docker Hub sent malformed JSON for {self._path(url)}") from None
        if not isinstance(page, dict) or not isinstance(page.get("results"), list):
            raise DockerHubProtocolError(f"Docker Hub page {self._path(url)} has no 'results' list")
        return page

    def _unique_sorted(self, namespace: str, pages: Iterable[dict[str, Any]]) -> list[Repository]:
        newest: dict[str, Repository] = {}
        for page in pages:
            for item in page["results"]:
                if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
                    raise DockerHubProtocolError(f"Docker Hub listed a repository without a name in '{namespace}'")
                repo = Repository(
                    name=item["name"],
                    namespace=str(item.get("namespace") or namespace),
                    last_updated=_parse_timestamp(item.get("last_updated")),
                    is_private=bool(item.get("is_private", False)),
                )
                seen = newest.get(repo.name)
                if seen is None or (repo.last_updated or datetime.min.replace(tzinfo=timezone.utc)) > (
                    seen.last_updated or datetime.min.replace(tzinfo=timezone.utc)
                ):
                    newest[repo.name] = repo
        return [newest[name] for name in sorted(newest)]

    def _scope_warnings(self, namespace: str, repositories: list[Repository]) -> list[str]:
        # An organisation access token without `scope-repository-list` silently sees public
        # repositories only (a normal 200). We cannot tell that apart from an all-public org,
        # so an authenticated listing with no private repository at all is worth a warning.
        if self.authenticated and repositories and not any(r.is_private for r in repositories):
            return [
                f"Docker Hub returned no private repository in '{namespace}' although we are "
                f"authenticated as '{self.username}': if the organisation has private repositories, "
                "the access token probably lacks the repository-list scope and they are missing"
            ]
        return []

    # -- HTTP with retries -----------------------------------------------------------------
    def _request(self, method: str, url: str, missing: frozenset[int] = frozenset(), **kwargs: Any) -> httpx.Response:
        retrying = Retrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._request_once(method, url, missing, **kwargs)
        except _Retryable as exhausted:
            raise exhausted.public from None
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def _wait(self, state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        if isinstance(failure, _Retryable) and failure.server_wait is not None:
            return failure.server_wait
        return float(self._backoff(state))

    def _request_once(
        self, method: str, url: str, missing: frozenset[int], *, auth: bool = True, **kwargs: Any
    ) -> httpx.Response:
        path = self._path(url)
        response = self._send(method, url, path, auth, **kwargs)
        if response.status_code == 401 and auth and self.authenticated:
            self._forget_bearer()  # the 10-minute bearer may have expired early: one fresh login
            response = self._send(method, url, path, auth, **kwargs)
        if response.is_success:
            return response
        self._raise_for(response, path, missing)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, method: str, url: str, path: str, auth: bool, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self._bearer_value()}"} if auth and self.authenticated else {}
        try:
            return self._http.request(method, url, headers=headers, **kwargs)
        except httpx.TimeoutException:
            raise _Retryable(DockerHubTimeoutError(f"Docker Hub timed out on {method} {path}")) from None
        except httpx.TransportError as exc:
            raise _Retryable(
                DockerHubUnavailableError(f"Docker Hub connection failed on {method} {path}: {type(exc).__name__}")
            ) from None

    def _raise_for(self, response: httpx.Response, path: str, missing: frozenset[int]) -> None:
        status = response.status_code
        detail = self._detail(response)
        if status in missing:
            raise _RouteMissing()
        if status == 401:
            raise DockerHubAuthError(f"Docker Hub rejected the credentials{self._as_who()} on {path} (401){detail}")
        if status == 403:
            raise DockerHubForbiddenError(f"Docker Hub refused access{self._as_who()} to {path} (403){detail}")
        if status == 404:
            raise DockerHubNotFoundError(f"Docker Hub has no {path} (404){detail}")
        if status == 429:
            wait = _server_requested_wait(response, self._wall_clock())
            error = DockerHubRateLimitedError(f"Docker Hub rate limit hit on {path} (429){detail}")
            if wait is not None and wait > self._max_retry_after:
                raise DockerHubRateLimitedError(
                    f"Docker Hub rate limit hit on {path} (429) and it asks to wait {wait:.0f}s, "
                    f"more than the {self._max_retry_after:.0f}s we allow; try again later"
                )
            raise _Retryable(error, wait)
        if status in _RETRYABLE_STATUS or status >= 500:
            raise _Retryable(DockerHubUnavailableError(f"Docker Hub answered {status} on {path}{detail}"))
        raise DockerHubError(f"Docker Hub answered {status} on {path}{detail}")

    def _detail(self, response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return ""
        detail = body.get("detail") or body.get("message") if isinstance(body, dict) else None
        if not isinstance(detail, str) or not detail:
            return ""
        return ": " + self._scrub(detail)[:_DETAIL_LIMIT]

    def _scrub(self, text: str) -> str:
        for secret in (self._token, self._bearer):
            if secret is not None and secret.get_secret_value():
                text = text.replace(secret.get_secret_value(), "**********")
        return text

    def _as_who(self) -> str:
        return f" for user '{self.username}'" if self.username else " (anonymous)"

    def _path(self, url: str) -> str:
        return urlsplit(url).path or url

    # -- authentication --------------------------------------------------------------------
    def _bearer_value(self) -> str:
        with self._bearer_lock:
            age = self._monotonic() - self._bearer_obtained_at
            if self._bearer is None or age >= self._token_lifetime - _TOKEN_REFRESH_MARGIN_SECONDS:
                self._bearer = self._login()
                self._bearer_obtained_at = self._monotonic()
            return self._bearer.get_secret_value()

    def _forget_bearer(self) -> None:
        with self._bearer_lock:
            self._bearer = None

    def _login(self) -> SecretStr:
        assert self._token is not None and self.username is not None
        body = {"identifier": self.username, "secret": self._token.get_secret_value()}
        response = self._request("POST", "/v2/auth/token", auth=False, json=body)
        try:
            access_token = response.json().get("access_token")
        except (ValueError, AttributeError):
            access_token = None
        if not isinstance(access_token, str) or not access_token:
            raise DockerHubProtocolError("Docker Hub /v2/auth/token answered without an access_token")
        return SecretStr(access_token)


class _RouteMissing(Exception):
    """Internal: the listing route itself is absent, so the caller may try the legacy one."""


def client_from_settings(settings: DockerHubSettings | None = None, **kwargs: Any) -> DockerHubClient:
    """Build a client from DOCKERHUB_* environment variables (or given settings)."""
    settings = settings or DockerHubSettings()
    return DockerHubClient(base_url=settings.base_url, username=settings.username, token=settings.token, **kwargs)
