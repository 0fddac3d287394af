"""A real moto S3 + IAM server on loopback, with IAM enforcement switched on.

Why a server process and not ``mock_aws``: ``harborops s3 verify`` must be tested
over the real S3 wire protocol (SigV4 signing, XML error bodies, HTTP status codes),
exactly as botocore talks to MinIO, Ceph or a FlashBlade.

How enforcement is switched on: moto authorises nothing while its request counter is
below ``INITIAL_NO_AUTH_ACTION_COUNT`` (default: infinity). We start it with the
default, use those unauthenticated calls to create an administrator user and the
test bucket, then ``POST /moto-api/reset-auth`` with ``0``: from then on every
request must be signed by a known IAM user and is checked against that user's
policies (moto/core/authorization.py, moto/iam/access_control.py).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import boto3
import httpx
from botocore.config import Config

REGION = "us-east-1"
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


@dataclass(frozen=True)
class AccessKey:
    """An IAM user's access key pair, as the AWS_* environment variables carry it."""

    user: str
    access_key_id: str
    secret_access_key: str

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }


@dataclass
class MotoS3:
    """Handle on the running server: endpoint, admin key, and helpers to make users."""

    endpoint: str
    admin: AccessKey
    process: subprocess.Popen

    def client(self, service: str, key: AccessKey | None = None):
        key = key or self.admin
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=key.access_key_id,
            aws_secret_access_key=key.secret_access_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def create_bucket(self, name: str) -> str:
        self.client("s3").create_bucket(Bucket=name)
        return name

    def create_user(self, policy_document: dict, name: str | None = None) -> AccessKey:
        """An IAM user whose only permissions are ``policy_document`` (inline)."""
        name = name or f"u-{uuid.uuid4().hex[:10]}"
        iam = self.client("iam")
        iam.create_user(UserName=name)
        iam.put_user_policy(
            UserName=name, PolicyName="harbor", PolicyDocument=json.dumps(policy_document)
        )
        created = iam.create_access_key(UserName=name)["AccessKey"]
        return AccessKey(name, created["AccessKeyId"], created["SecretAccessKey"])

    def keys_under(self, bucket: str, prefix: str) -> list[str]:
        listing = self.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(obj["Key"] for obj in listing.get("Contents", []))

    def uploads_under(self, bucket: str, prefix: str) -> list[tuple[str, str]]:
        listing = self.client("s3").list_multipart_uploads(Bucket=bucket, Prefix=prefix)
        return sorted((u["Key"], u["UploadId"]) for u in listing.get("Uploads", []))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(endpoint: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited early with code {process.returncode}")
        try:
            httpx.get(f"{endpoint}/moto-api/", timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"moto server did not answer on {endpoint} within {timeout}s")


def _bootstrap_admin(endpoint: str) -> AccessKey:
    """Create the admin user while moto still lets unauthenticated calls through."""
    anonymous = AccessKey("bootstrap", "AKIABOOTSTRAP0000000", "bootstrap-not-checked-yet")
    iam = MotoS3(endpoint, anonymous, None).client("iam")  # type: ignore[arg-type]
    iam.create_user(UserName="admin")
    iam.put_user_policy(UserName="admin", PolicyName="admin", PolicyDocument=json.dumps(ADMIN_POLICY))
    created = iam.create_access_key(UserName="admin")["AccessKey"]
    return AccessKey("admin", created["AccessKeyId"], created["SecretAccessKey"])


@contextmanager
def moto_s3_server() -> Iterator[MotoS3]:
    """Start ``python -m moto.server`` on a free loopback port with IAM enforcement on."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_up(endpoint, process)
        admin = _bootstrap_admin(endpoint)
        # From here on every request is signed and checked against IAM policies.
        httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"0", timeout=5.0).raise_for_status()
        yield MotoS3(endpoint, admin, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
