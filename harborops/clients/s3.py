"""A thin boto3 wrapper for S3 (and, for the excess check, STS/IAM) with one error family.

Every botocore failure is mapped into ``S3Error`` and its subclasses (``raise ... from
exc``) so commands never show a botocore traceback and never echo request headers,
which carry the access key id.

Example::

    client = S3Client(S3Target(bucket="harbor-chi", endpoint="https://s3.chi.example"))
    client.call("GetBucketLocation", Bucket="harbor-chi")
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from xml.etree.ElementTree import ParseError

import boto3
import botocore.handlers
from botocore import xform_name
from botocore.config import Config
from botocore.parsers import ResponseParserError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConfigParseError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
    SSLError,
)

from harborops.urls import http_url_problem
from harborops.errors import HarborOpsError, UsageError

#: S3 error codes that mean "these credentials are not accepted at all". Continuing
#: would only repeat the same answer for every operation, so the run stops.
CREDENTIAL_ERROR_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired"}
)
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AllAccessDisabled", "403", "Forbidden"})


class S3Error(HarborOpsError):
    """Base of every S3 client failure (exit code 1 unless a subclass says otherwise)."""


class S3SetupError(S3Error, UsageError):
    """No usable credentials or profile: the user must fix their environment (exit 2)."""


class S3Unreachable(S3Error):
    """The endpoint did not answer (DNS, TCP, TLS or timeout)."""


class S3CredentialsRejected(S3Error):
    """The endpoint does not accept the access key or the signature."""


class S3ProtocolError(S3Error):
    """The endpoint answered with something that is not an S3 reply (e.g. an HTML 500)."""

    code = "InvalidResponse"


class S3NotS3Reply(S3Error):
    """The endpoint answered, but not as S3 does (a web page, a redirect, a plain-text 500).

    Every further request would get the same answer, so the run stops.
    """


class S3RequestError(S3Error):
    """The endpoint refused one request with an S3 error code."""

    def __init__(self, operation: str, code: str, status: int | None, message: str = "") -> None:
        self.operation = operation
        self.code = code
        self.status = status
        super().__init__(f"{operation} failed: {code}" + (f" ({message})" if message else ""))


class S3AccessDenied(S3RequestError):
    """The credentials are valid but not allowed to perform this request."""


class S3BucketMissing(S3RequestError):
    """The bucket does not exist at this endpoint: every operation would fail the same way."""

    def __init__(self, operation: str, status: int | None, bucket: str | None = None) -> None:
        super().__init__(operation, "NoSuchBucket", status)
        named = f" {bucket!r}" if bucket else ""
        self.args = (f"the bucket{named} does not exist at this endpoint ({operation}: NoSuchBucket): check --bucket",)


#: S3's bucket naming rules, which AWS, MinIO and Ceph (by default) all enforce:
#: 3-63 characters, lowercase letters, digits, dots and hyphens, starting and ending
#: with a letter or digit (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def validate_bucket(name: str, *, flag: str = "--bucket") -> str:
    """The bucket name, or a UsageError naming ``flag`` and the rule it breaks."""
    if not name.strip():
        raise UsageError(f"{flag}: must not be empty")
    if not BUCKET_NAME.match(name) or ".." in name:
        raise UsageError(
            f"{flag} {name!r}: not a valid bucket name (3-63 characters: lowercase letters, digits, "
            "dots and hyphens, starting and ending with a letter or digit)"
        )
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return name
    raise UsageError(f"{flag} {name!r}: a bucket name cannot be an IP address")


def normalize_endpoint(url: str, *, flag: str = "--endpoint") -> str:
    """An http(s) URL with a host and a valid port, or a UsageError naming ``flag``.

    A URL holding credentials is refused and never echoed: S3 credentials come from
    AWS_* variables or a profile, and the URL ends up in reports and logs.
    """
    raw = url.strip()
    problem = http_url_problem(raw, credentials_in="AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or --profile")
    if problem is not None:
        raise UsageError(f"{flag}: {problem}")
    parts = urlsplit(raw)
    if parts.query or parts.fragment:
        raise UsageError(f"{flag}: {raw!r}: an S3 endpoint URL has no query or fragment")
    return raw.rstrip("/")


@dataclass(frozen=True)
class S3Target:
    """Where to talk to: never holds credentials (they come from env vars or a profile)."""

    bucket: str
    endpoint: str | None = None
    region: str = "us-east-1"
    path_style: bool | None = None  # None: path style for custom endpoints, auto for AWS
    profile: str | None = None

    @property
    def uses_path_style(self) -> bool:
        return self.path_style if self.path_style is not None else self.endpoint is not None


def _client_config(target: S3Target) -> Config:
    options: dict[str, Any] = {
        "connect_timeout": 5,
        "read_timeout": 30,
        "retries": {"mode": "standard", "max_attempts": 2},
        "s3": {"addressing_style": "path" if target.uses_path_style else "auto"},
    }
    if target.endpoint is not None:
        # botocore >= 1.36 sends CRC32 checksum headers by default, which MinIO, Ceph
        # and other S3-compatible stores reject or mis-sign
        # (https://github.com/boto/boto3/issues/4392). Harbor's own driver does not
        # send them either, so ask only when the operation requires it.
        options["request_checksum_calculation"] = "when_required"
        options["response_checksum_validation"] = "when_required"
    return Config(**options)


def _config_file_error(exc: ConfigParseError) -> S3SetupError:
    # The path only: the file holds secret keys, so none of its lines is quoted.
    path = exc.kwargs.get("path") or "the AWS config or credentials file"
    return S3SetupError(f"cannot parse {path}: check its [section] headers and key = value lines")


def _profile_origin(target: S3Target) -> tuple[str, str | None]:
    """Where the profile comes from (``--profile`` or the variable botocore reads) and its name."""
    if target.profile is not None:
        return "--profile", target.profile
    for variable in ("AWS_DEFAULT_PROFILE", "AWS_PROFILE"):  # botocore's order
        if os.environ.get(variable):
            return variable, os.environ[variable]
    return "--profile", None


def _session(target: S3Target) -> boto3.Session:
    # boto3's own credential chain rather than pydantic-settings: AWS_* variables,
    # AWS_PROFILE, --profile, SSO and web identity then work exactly as users expect.
    origin, profile = _profile_origin(target)
    try:
        session = boto3.Session(profile_name=target.profile, region_name=target.region)
    except ProfileNotFound as exc:
        name = exc.kwargs.get("profile") or profile
        raise S3SetupError(f"{origin}: no AWS profile named {name!r}") from exc
    except ConfigParseError as exc:
        raise _config_file_error(exc) from exc
    try:
        credentials = session.get_credentials()
    except ConfigParseError as exc:
        raise _config_file_error(exc) from exc
    except (PartialCredentialsError, BotoCoreError) as exc:
        raise S3SetupError(f"AWS credentials are incomplete: {type(exc).__name__}") from exc
    if credentials is None and profile is not None:
        raise S3SetupError(
            f"{origin} {profile}: the profile has no credentials "
            "(aws_access_key_id/aws_secret_access_key, sso_* or credential_process)"
        )
    if credentials is None:
        raise S3SetupError(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or pass --profile NAME"
        )
    return session


def _looks_like_html(body: bytes) -> bool:
    # The body, not the Content-Type: some S3 servers (moto, for one) label empty
    # 204 replies text/html.
    return body.lstrip()[:64].lower().startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def _expects_xml(operation_model: Any) -> bool:
    """Whether a success of this operation has an XML body (not GetObject's blob or GetBucketPolicy's JSON)."""
    shape = operation_model.output_shape
    payload = shape.serialization.get("payload") if shape is not None else None
    return shape is not None and (payload is None or shape.members[payload].type_name not in ("blob", "string"))


def refuse_non_s3_reply(response_dict: dict[str, Any], operation_model: Any, **_: Any) -> None:
    """botocore ``before-parse`` hook: stop on a reply no S3 store would send.

    Without it botocore parses a web UI's HTML page as an empty success (then fails
    on a missing field), dies on a plain-text 500 (``ParseError``), and follows a
    login redirect until ``RecursionError``.
    """
    status = response_dict.get("status_code") or 0
    headers = {str(k).lower(): str(v) for k, v in (response_dict.get("headers") or {}).items()}
    content_type = headers.get("content-type", "").lower()
    body = response_dict.get("body")
    body = bytes(body) if isinstance(body, (bytes, bytearray)) else b""
    where = f"{operation_model.name}: the endpoint answered"
    hint = "not S3: is --endpoint the S3 API URL?"
    if 300 <= status < 400 and not any(name.startswith("x-amz-") for name in headers):
        # AWS's own wrong-region redirects (301, 307) carry x-amz-* headers and botocore
        # follows them; a login page's redirect carries none.
        raise S3NotS3Reply(f"{where} a redirect (HTTP {status}), {hint}")
    if _looks_like_html(body):
        raise S3NotS3Reply(f"{where} HTML (HTTP {status}), {hint}")
    if body.strip() and not body.lstrip().startswith(b"<") and (status >= 400 or _expects_xml(operation_model)):
        what = content_type.split(";")[0] or "no content type"
        raise S3NotS3Reply(f"{where} HTTP {status} with a body that is not S3 XML ({what}), {hint}")


def _register_before_botocore(events: Any, event: str, handler: Any) -> None:
    """Run ``handler`` ahead of botocore's own first handlers for ``event``.

    botocore's ``_handle_200_error`` (S3) turns a 200 whose body is not XML into a 500
    before any later handler sees it; we want the status the endpoint really sent.
    """
    rewrite = getattr(botocore.handlers, "_handle_200_error", None)
    if rewrite is not None and event.startswith("before-parse.s3."):
        events.unregister("before-parse.s3.*", rewrite)
    events.register_first(event, handler)
    if rewrite is not None and event.startswith("before-parse.s3."):
        events.register_first("before-parse.s3.*", rewrite)


def map_botocore_error(operation: str, exc: Exception) -> S3Error:
    """Translate a botocore exception into the harborops S3 error family."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in CREDENTIAL_ERROR_CODES:
            return S3CredentialsRejected(f"the endpoint rejected the credentials on {operation}: {code}")
        if code in ACCESS_DENIED_CODES:
            return S3AccessDenied(operation, "AccessDenied", status)
        if code == "NoSuchBucket":
            return S3BucketMissing(operation, status, error.get("BucketName"))
        return S3RequestError(operation, code, status)
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, SSLError)):
        return S3Unreachable(f"{operation}: the S3 endpoint did not answer ({type(exc).__name__})")
    if isinstance(exc, NoCredentialsError):
        return S3SetupError("no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or --profile")
    if isinstance(exc, ConfigParseError):
        return _config_file_error(exc)
    return S3ProtocolError(f"{operation}: unusable reply from the endpoint ({type(exc).__name__})")


class S3Client:
    """One S3 client for one target, plus STS/IAM siblings sharing its session."""

    def __init__(self, target: S3Target) -> None:
        self.target = target
        self._session = _session(target)
        self._config = _client_config(target)
        self._s3 = self._make("s3")

    def _make(self, service: str):
        try:
            client = self._session.client(service, endpoint_url=self.target.endpoint, config=self._config)
        except ConfigParseError as exc:  # the client reads the config file again, for its settings
            raise _config_file_error(exc) from exc
        _register_before_botocore(client.meta.events, f"before-parse.{service}.*", refuse_non_s3_reply)
        return client

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """Run one S3 API operation by its API name (``"ListObjectsV2"``)."""
        return self._invoke(self._s3, operation, params)

    def call_service(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        """Run an STS or IAM operation with the same credentials and endpoint."""
        return self._invoke(self._make(service), operation, params)

    @staticmethod
    def _invoke(client: Any, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        method = getattr(client, xform_name(operation))  # "ListObjectsV2" -> list_objects_v2
        try:
            return method(**params)
        except (ClientError, BotoCoreError, ResponseParserError) as exc:
            raise map_botocore_error(operation, exc) from exc
        except ParseError as exc:  # a body botocore's XML parsers cannot read: not from an S3 store
            raise S3NotS3Reply(
                f"{operation}: the endpoint answered something that is not S3 XML, not S3: is --endpoint the S3 API URL?"
            ) from exc
