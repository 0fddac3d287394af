"""A thin boto3 wrapper for S3 (and, for the excess check, STS/IAM) with one error family.

Every botocore failure is mapped into ``S3Error`` and its subclasses (``raise ... from
exc``) so commands never show a botocore traceback and never echo request headers,
which carry the access key id.

Example::

    client = S3Client(S3Target(bucket="harbor-chi", endpoint="https://s3.chi.example"))
    client.call("GetBucketLocation", Bucket="harbor-chi")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore import xform_name
from botocore.config import Config
from botocore.parsers import ResponseParserError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
    SSLError,
)

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


class S3RequestError(S3Error):
    """The endpoint refused one request with an S3 error code."""

    def __init__(self, operation: str, code: str, status: int | None, message: str = "") -> None:
        self.operation = operation
        self.code = code
        self.status = status
        super().__init__(f"{operation} failed: {code}" + (f" ({message})" if message else ""))


class S3AccessDenied(S3RequestError):
    """The credentials are valid but not allowed to perform this request."""


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


def _session(target: S3Target) -> boto3.Session:
    # boto3's own credential chain rather than pydantic-settings: AWS_* variables,
    # AWS_PROFILE, --profile, SSO and web identity then work exactly as users expect.
    try:
        session = boto3.Session(profile_name=target.profile, region_name=target.region)
    except ProfileNotFound as exc:
        raise S3SetupError(f"--profile: no AWS profile named {target.profile!r}") from exc
    try:
        credentials = session.get_credentials()
    except (PartialCredentialsError, BotoCoreError) as exc:
        raise S3SetupError(f"AWS credentials are incomplete: {type(exc).__name__}") from exc
    if credentials is None:
        raise S3SetupError(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or pass --profile NAME"
        )
    return session


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
        return S3RequestError(operation, code, status)
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, SSLError)):
        return S3Unreachable(f"{operation}: the S3 endpoint did not answer ({type(exc).__name__})")
    if isinstance(exc, NoCredentialsError):
        return S3SetupError("no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or --profile")
    return S3ProtocolError(f"{operation}: unusable reply from the endpoint ({type(exc).__name__})")


class S3Client:
    """One S3 client for one target, plus STS/IAM siblings sharing its session."""

    def __init__(self, target: S3Target) -> None:
        self.target = target
        self._session = _session(target)
        self._config = _client_config(target)
        self._s3 = self._make("s3")

    def _make(self, service: str):
        return self._session.client(service, endpoint_url=self.target.endpoint, config=self._config)

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
