"""A thin, synchronous Harbor v2.0 API client (httpx + pydantic + tenacity).

What it does that a bare `httpx.get` does not, each learnt from Harbor itself:

- Basic auth on every request, and **no cookie jar**: Harbor answers with a `sid`
  session cookie, and a later write that carries it back is held to the CSRF check
  and fails with 403 "CSRF token invalid" (goharbor/harbor#10890, #12455).
- Paging with page_size=100 (Harbor's maximum; 101 is a 422), stopping on
  X-Total-Count and on the absence of rel="next" in the Link header. It does not
  follow the Link URL itself: Harbor un-escapes the query string when it builds it
  (handler/base.go `Links`), so a `q=` with special characters would come back wrong.
- `{"errors":[{"code","message"}]}` bodies become typed `HarborError`s carrying
  Harbor's own message; an HTML answer (a wrong path, the portal, a login proxy) is
  recognised and said plainly instead of failing in a JSON parser.
- GETs are retried on connection errors and 5xx, a bounded number of times with
  exponential backoff. Writes are never retried: a POST that timed out may well have
  started an execution.
- The password lives only inside httpx's auth object; no message or repr shows it,
  not even when Harbor echoes it back in an error body (see harborops.redact).

Why not the `harborapi` package: see README.md ("Harbor client").
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from harborops.errors import HarborOpsError, UsageError
from harborops.redact import redact, register
from harborops.urls import http_url_problem

API_PATH = "/api/v2.0"
PAGE_SIZE = 100  # Harbor's maximum page_size; 101 answers 422
MAX_PAGES = 10_000  # a guard against a server that always says "next"
FINAL_STATUSES = frozenset({"Succeed", "Failed", "Stopped"})
ZERO_TIMES = frozenset({"0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z", "0001-01-01T00:00:00"})

# --------------------------------------------------------------------------- errors


class HarborError(HarborOpsError):
    """Harbor could not do what we asked. `status_code` and `code` when Harbor said why.

    The message often quotes Harbor's own words, which may echo what it was sent: every
    known secret is masked here, once, so no printer can show it."""

    def __init__(self, message: str, *, status_code: int | None = None, code: str | None = None) -> None:
        super().__init__(redact(message))
        self.status_code = status_code
        self.code = code


class HarborUnavailable(HarborError):
    """No answer: connection refused, DNS, TLS, timeout. Retried for GETs first."""


class HarborServerError(HarborError):
    """Harbor answered 5xx (still, after the retries for a GET)."""


class HarborAuthError(HarborError):
    """401: the username or password is wrong (Harbor treats the caller as anonymous)."""


class HarborForbidden(HarborError):
    """403: authenticated, but not allowed (or a CSRF rejection)."""


class HarborNotFound(HarborError):
    """404: no such policy, execution, project or repository."""


class HarborPreconditionFailed(HarborError):
    """412: e.g. starting a replication policy that is disabled."""


class HarborRequestError(HarborError):
    """Any other 4xx, e.g. 400 or 422 for a bad parameter."""


class HarborNotJSON(HarborError):
    """The answer was HTML (or otherwise not JSON): the URL does not reach Harbor's API."""


_ERRORS_BY_STATUS: dict[int, type[HarborError]] = {
    401: HarborAuthError,
    403: HarborForbidden,
    404: HarborNotFound,
    412: HarborPreconditionFailed,
}

# --------------------------------------------------------------------------- models


def _zero_time_is_none(value: Any) -> Any:
    """Harbor writes "0001-01-01T00:00:00Z" for "not yet" (e.g. end_time while running)."""
    if value in (None, "") or (isinstance(value, str) and value in ZERO_TIMES):
        return None
    return value


def _none_is_empty(value: Any) -> Any:
    return [] if value is None else value


def _utc_if_naive(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


HarborTime = Annotated[datetime | None, BeforeValidator(_zero_time_is_none), AfterValidator(_utc_if_naive)]
# Free text Harbor writes (status_text, descriptions) may quote what it was sent or
# what an upstream answered, a password included: masked here, where it enters, so
# no command can print it unmasked.
ServerText = Annotated[str, AfterValidator(redact)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


_M = TypeVar("_M", bound=_Model)


class ReplicationFilter(_Model):
    type: str
    value: Any = None


class ReplicationPolicy(_Model):
    id: int
    name: str
    enabled: bool = True
    description: ServerText = ""
    filters: Annotated[list[ReplicationFilter], BeforeValidator(_none_is_empty)] = Field(default_factory=list)
    creation_time: HarborTime = None
    update_time: HarborTime = None


class ReplicationExecution(_Model):
    id: int
    policy_id: int
    status: str
    status_text: ServerText = ""
    trigger: str = ""
    start_time: HarborTime = None
    end_time: HarborTime = None
    total: int = 0
    failed: int = 0
    succeed: int = 0
    in_progress: int = 0
    stopped: int = 0

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


class ReplicationTask(_Model):
    id: int
    execution_id: int
    status: str
    resource_type: str = ""
    src_resource: str = ""
    dst_resource: str = ""
    operation: str = ""
    job_id: str = ""
    start_time: HarborTime = None
    end_time: HarborTime = None


class Project(_Model):
    project_id: int
    name: str


class Repository(_Model):
    id: int
    project_id: int
    name: str  # full name: "project/a/b"
    artifact_count: int = 0


class Tag(_Model):
    name: str


class Artifact(_Model):
    digest: str
    tags: Annotated[list[Tag], BeforeValidator(_none_is_empty)] = Field(default_factory=list)  # Harbor: null
    push_time: HarborTime = None


# --------------------------------------------------------------------------- URL


def normalize_base_url(url: str, *, flag: str = "--url/HARBOR_URL") -> str:
    """`https://h`, `https://h/`, `https://h/api/v2.0/` all become `https://h`.

    Raises UsageError naming `flag` for anything that is not an http(s) URL. The URL
    is not echoed when it holds credentials.
    """
    raw = url.strip()
    problem = http_url_problem(raw, credentials_in="HARBOR_USERNAME / HARBOR_PASSWORD")
    if problem:
        raise UsageError(f"{flag}: {problem}")
    parts = urlsplit(raw)
    path = parts.path.rstrip("/")
    if path.endswith(API_PATH):
        path = path[: -len(API_PATH)]
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def encode_repository(name: str) -> str:
    """Harbor wants the repository name (without the project) double-encoded in paths:
    "a/b" becomes "a%252Fb" (see the swagger's repository_name parameter)."""
    return quote(quote(name, safe=""), safe="")


# --------------------------------------------------------------------------- client


class _TransientStatus(Exception):
    """A 5xx answer to a GET, raised inside the retry loop so tenacity sees it."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, HarborUnavailable | _TransientStatus)


class HarborClient:
    """Harbor v2.0 API for one site. Use as a context manager, or call `close()`.

    Example::

        with HarborClient("https://harbor.chi.example.com", "admin", SecretStr(pw)) as harbor:
            harbor.current_user()
            for policy in harbor.list_policies(name="mirror-dockerhub-"):
                ...
    """

    def __init__(
        self,
        url: str,
        username: str,
        password: SecretStr | str,
        *,
        timeout: float = 10.0,
        get_attempts: int = 4,
        retry_wait: float = 0.5,
        max_connections: int = 10,
        transport: httpx.BaseTransport | None = None,
        credentials_hint: str = "HARBOR_USERNAME / HARBOR_PASSWORD",
    ) -> None:
        secret = password.get_secret_value() if isinstance(password, SecretStr) else password
        register(secret)  # Harbor may echo it in an error message: redact() must know it
        self.base_url = normalize_base_url(url)
        self.api_url = self.base_url + API_PATH
        self.username = username
        self._credentials_hint = credentials_hint  # what a 401 tells the user to check
        self._get_attempts = max(1, get_attempts)
        self._retry_wait = retry_wait
        self._server_time: datetime | None = None
        self._http = httpx.Client(
            base_url=self.api_url,
            auth=httpx.BasicAuth(username, secret),
            # A jar whose policy accepts no domain: Harbor's `sid` is never stored, so
            # never sent back, so writes are not held to the CSRF check.
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
            headers={"Accept": "application/json", "User-Agent": "harborops"},
            timeout=timeout,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"HarborClient(url={self.base_url!r}, username={self.username!r})"

    def __enter__(self) -> HarborClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ---------------------------------------------------------------- users

    def current_user(self) -> str:
        """The username Harbor sees. Proves the credentials work: unlike /ping
        (which answers "Pong" to anyone), /users/current needs a real login."""
        data = self._json(self._get("/users/current"), "/users/current")
        if not isinstance(data, dict) or "username" not in data:
            raise HarborNotJSON(f"{self.base_url}: /users/current did not describe a user; is this Harbor v2?")
        return str(data["username"])

    # ---------------------------------------------------------------- replication

    def list_policies(self, *, name: str | None = None, q: str | None = None) -> list[ReplicationPolicy]:
        """Every replication policy, all pages. `name` is Harbor's fuzzy name match."""
        params: dict[str, Any] = {}
        if name:
            params["name"] = name
        if q:
            params["q"] = q
        return [_parse(ReplicationPolicy, p, self.base_url) for p in self._paginate("/replication/policies", params)]

    def get_policy(self, policy_id: int) -> ReplicationPolicy:
        path = f"/replication/policies/{policy_id}"
        return _parse(ReplicationPolicy, self._json(self._get(path), path), self.base_url)

    def start_execution(self, policy_id: int) -> int:
        """Start a replication; returns the new execution's ID (from Location).

        Not retried: if the answer is lost, an execution may have started anyway.
        """
        response = self._send("POST", "/replication/executions", json={"policy_id": policy_id})
        location = response.headers.get("Location", "")
        match = re.search(r"/(\d+)/?$", location)
        if response.status_code != 201 or match is None:
            raise HarborError(
                f"{self.base_url}: starting policy {policy_id} answered {response.status_code} "
                f"without the new execution's Location (got {location!r})",
                status_code=response.status_code,
            )
        return int(match.group(1))

    def get_execution(self, execution_id: int) -> ReplicationExecution:
        path = f"/replication/executions/{execution_id}"
        return _parse(ReplicationExecution, self._json(self._get(path), path), self.base_url)

    def list_executions(
        self,
        *,
        policy_id: int | None = None,
        status: str | None = None,
        trigger: str | None = None,
    ) -> list[ReplicationExecution]:
        """Every execution matching the filters (filtered by Harbor, all pages)."""
        params = {k: v for k, v in (("policy_id", policy_id), ("status", status), ("trigger", trigger))
                  if v is not None}
        return [_parse(ReplicationExecution, e, self.base_url)
                for e in self._paginate("/replication/executions", params)]

    def stop_execution(self, execution_id: int) -> None:
        self._send("PUT", f"/replication/executions/{execution_id}")

    def list_tasks(self, execution_id: int, *, status: str | None = None) -> list[ReplicationTask]:
        params = {"status": status} if status else {}
        return [_parse(ReplicationTask, t, self.base_url)
                for t in self._paginate(f"/replication/executions/{execution_id}/tasks", params)]

    def get_task_log(self, execution_id: int, task_id: int) -> str:
        """The task's job log, plain text (where Docker Hub's 429 texts show up), secrets masked."""
        return redact(self._get(f"/replication/executions/{execution_id}/tasks/{task_id}/log").text)

    # ---------------------------------------------------------------- artifacts

    def list_projects(self, *, name: str | None = None) -> list[Project]:
        params = {"name": name} if name else {}
        return [_parse(Project, p, self.base_url) for p in self._paginate("/projects", params)]

    def list_repositories(self, project: str) -> list[Repository]:
        path = f"/projects/{quote(project, safe='')}/repositories"
        return [_parse(Repository, r, self.base_url) for r in self._paginate(path, {})]

    def list_artifacts(self, repository: str) -> list[Artifact]:
        """Artifacts with their tags; `repository` is the full name, "project/a/b"."""
        project, _, name = repository.partition("/")
        path = f"/projects/{quote(project, safe='')}/repositories/{encode_repository(name)}/artifacts"
        params = {"with_tag": "true", "with_label": "false", "with_scan_overview": "false"}
        return [_parse(Artifact, a, self.base_url) for a in self._paginate(path, params)]

    # ---------------------------------------------------------------- plumbing

    def _paginate(self, path: str, params: dict[str, Any]) -> list[Any]:
        items: list[Any] = []
        for page in range(1, MAX_PAGES + 1):
            response = self._get(path, {**params, "page": page, "page_size": PAGE_SIZE})
            batch = self._json(response, path)
            if batch is None:  # Harbor writes no body for an empty list
                batch = []
            if not isinstance(batch, list):
                raise HarborNotJSON(f"{self.base_url}: {path} answered {type(batch).__name__}, expected a list")
            items.extend(batch)
            total = _int_header(response, "X-Total-Count")
            if not batch or not _has_next(response.headers.get("Link", "")):
                break
            if total is not None and len(items) >= total:
                break
        return items

    def _get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        retrying = Retrying(
            stop=stop_after_attempt(self._get_attempts),
            wait=wait_exponential(multiplier=self._retry_wait, max=10),
            retry=retry_if_exception(_is_transient),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    response = self._request("GET", path, params=params)
                    if response.status_code >= 500:
                        raise _TransientStatus(response)
                    return self._check(response, "GET", path)
        except _TransientStatus as exc:
            return self._check(exc.response, "GET", path)
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self._check(self._request(method, path, **kwargs), method, path)

    def server_now(self) -> datetime:
        """Harbor's clock, from the Date header of its last answer (local clock before
        the first one). Runtimes are computed against it, so a laptop whose clock is off
        does not make executions look older or younger than they are."""
        return self._server_time or datetime.now(UTC)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
            self._note_server_time(response)
            return response
        except httpx.TimeoutException as exc:
            raise HarborUnavailable(
                f"{self.base_url}: no answer to {method} {path} in time ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise HarborUnavailable(f"cannot reach Harbor at {self.base_url}: {_reason(exc)}") from exc

    def _note_server_time(self, response: httpx.Response) -> None:
        try:
            when = parsedate_to_datetime(response.headers["Date"])
        except (KeyError, TypeError, ValueError):
            return
        self._server_time = when if when.tzinfo else when.replace(tzinfo=UTC)  # "-0000" parses naive

    def _check(self, response: httpx.Response, method: str, path: str) -> httpx.Response:
        status = response.status_code
        if 300 <= status < 400:
            raise HarborNotJSON(
                f"{self.base_url}: {method} {API_PATH}{path} was redirected to "
                f"{response.headers.get('Location', '?')!r}; is the URL Harbor itself, not a proxy or login page?",
                status_code=status,
            )
        if status >= 500 and _looks_like_html(response):
            raise HarborServerError(
                f"{self.base_url}: {method} {path} answered {status} {response.reason_phrase} with an HTML "
                "error page (Harbor down behind its proxy?)",
                status_code=status,
            )
        if _looks_like_html(response):
            raise HarborNotJSON(
                f"{self.base_url}: {method} {API_PATH}{path} answered {status} with an HTML page, not Harbor's "
                "JSON API; check the URL (a path prefix, the web portal or a proxy login page gives HTML)",
                status_code=status,
            )
        if status < 400:
            return response
        code, message = _harbor_error(response)
        what = f"{code}: {message}" if code else message
        error_type = _ERRORS_BY_STATUS.get(status, HarborServerError if status >= 500 else HarborRequestError)
        if error_type is HarborAuthError:
            text = (f"Harbor at {self.base_url} rejected the credentials of user {self.username!r} "
                    f"({status} {what}); check {self._credentials_hint}")
        elif error_type is HarborForbidden and "CSRF" in message:
            text = f"{self.base_url}: {method} {path} was refused by Harbor's CSRF check ({what})"
        else:
            text = f"{self.base_url}: {method} {path} answered {status} ({what})"
        raise error_type(text, status_code=status, code=code or None)

    def _json(self, response: httpx.Response, path: str) -> Any:
        if not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise HarborNotJSON(
                f"{self.base_url}: {path} answered {response.status_code} with something that is not JSON "
                f"({response.headers.get('Content-Type', 'no content type')})",
                status_code=response.status_code,
            ) from exc


def _looks_like_html(response: httpx.Response) -> bool:
    content_type = response.headers.get("Content-Type", "").lower()
    if "html" in content_type:
        return True
    head = response.content[:64].lstrip().lower()
    return head.startswith((b"<!doctype", b"<html"))


def _harbor_error(response: httpx.Response) -> tuple[str, str]:
    """Harbor's {"errors":[{"code","message"}]}, or the bare text when it is not that."""
    try:
        body = response.json()
        first = body["errors"][0]
        return str(first.get("code", "")), str(first.get("message", "")).replace("\n", " ").strip()
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        text = response.text.strip().replace("\n", " ")
        return "", (text[:200] or response.reason_phrase)


def _has_next(link: str) -> bool:
    return any(rel == "next" for _, rel in re.findall(r'<([^>]*)>\s*;\s*rel="?(\w+)"?', link))


def _int_header(response: httpx.Response, name: str) -> int | None:
    try:
        return int(response.headers[name])
    except (KeyError, ValueError):
        return None


def _reason(exc: httpx.TransportError) -> str:
    """The innermost cause, e.g. "[Errno 111] Connection refused"."""
    cause: BaseException = exc
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
    return str(cause) or type(exc).__name__


def _parse(model: type[_M], data: Any, base_url: str) -> _M:
    """Validate one object from Harbor; an unexpected shape is one line, not a traceback."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise HarborNotJSON(
            f"{base_url}: unexpected {model.__name__} from Harbor: {where}: {first['msg']}"
        ) from exc
