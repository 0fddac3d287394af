"""harborops s3: check live S3 credentials against what Harbor's storage driver needs.

``verify`` performs, under a unique scratch prefix, the requests the registry's S3
storage driver makes, maps each to the IAM action it needs (the eight actions of
``components.s3_policy``, which the Pulumi program exports as ``s3PolicyJson``), and
always removes what it created.
"""

from __future__ import annotations

import json
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from components.s3_policy import HARBOR_ACTIONS
from harborops.clients.s3 import (
    S3AccessDenied,
    S3BucketMissing,
    S3Client,
    S3CredentialsRejected,
    S3Error,
    S3NotS3Reply,
    S3ProtocolError,
    S3RequestError,
    S3SetupError,
    S3Target,
    S3Unreachable,
    normalize_endpoint,
    validate_bucket,
)
from harborops.errors import HarborOpsError

app = typer.Typer(
    no_args_is_help=True,
    help="Check S3 credentials against the eight actions Harbor's storage driver needs.",
    pretty_exceptions_show_locals=False,  # locals hold the boto3 session
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

Result = Literal["allowed", "denied", "error", "skipped"]
SCRATCH_ROOT = "harborops-s3-verify/"
PROBE_UPLOAD_ID = "harborops-verify-no-such-upload"
#: The storage driver's operations, in the order the table shows them, with the IAM
#: action each needs (CreateMultipartUpload, UploadPart and Complete all need PutObject).
OPERATIONS: tuple[tuple[str, str], ...] = (
    ("GetBucketLocation", "s3:GetBucketLocation"),
    ("ListObjectsV2", "s3:ListBucket"),
    ("PutObject", "s3:PutObject"),
    ("GetObject", "s3:GetObject"),
    ("DeleteObject", "s3:DeleteObject"),
    ("CreateMultipartUpload", "s3:PutObject"),
    ("UploadPart", "s3:PutObject"),
    ("ListParts", "s3:ListMultipartUploadParts"),
    ("ListMultipartUploads", "s3:ListBucketMultipartUploads"),
    ("CompleteMultipartUpload", "s3:PutObject"),
    ("AbortMultipartUpload", "s3:AbortMultipartUpload"),
)
ACTION_OF = dict(OPERATIONS)


class Interrupted(HarborOpsError):
    """Ctrl-C or SIGTERM arrived mid-run; cleanup has already happened."""

    exit_code = 130


@dataclass
class Row:
    operation: str
    action: str
    result: Result
    code: str | None = None
    detail: str = ""


@dataclass
class Leftover:
    key: str
    upload_id: str | None = None
    reason: str = ""


@dataclass
class Report:
    bucket: str
    endpoint: str | None
    prefix: str
    rows: list[Row] = field(default_factory=list)
    leftovers: list[Leftover] = field(default_factory=list)
    excess: list[dict[str, str]] | None = None
    interrupted: bool = False

    def actions(self) -> dict[str, str]:
        """One verdict per IAM action: denied beats error beats allowed; none tested: untested."""
        verdicts: dict[str, str] = {}
        for action in HARBOR_ACTIONS:
            results = {row.result for row in self.rows if row.action == action}
            for verdict in ("denied", "error", "allowed"):
                if verdict in results:
                    verdicts[action] = verdict
                    break
            else:
                verdicts[action] = "untested"
        return verdicts

    @property
    def passed(self) -> bool:
        all_allowed = all(v == "allowed" for v in self.actions().values())
        return all_allowed and not self.leftovers and not self.interrupted

    def to_json(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "endpoint": self.endpoint,
            "prefix": self.prefix,
            "passed": self.passed,
            "interrupted": self.interrupted,
            "actions": self.actions(),
            "operations": [asdict(row) for row in self.rows],
            "leftovers": [asdict(item) for item in self.leftovers],
            "excess": self.excess,
        }


def scratch_prefix() -> str:
    """A prefix no other run (or Harbor's ``docker/`` tree) can collide with."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{SCRATCH_ROOT}{stamp}-{uuid.uuid4().hex[:12]}/"


class Verifier:
    """Runs the checks and remembers everything it may have created, for cleanup."""

    def __init__(self, client: S3Client, prefix: str, on_request: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.on_request = on_request or (lambda operation: None)
        self.bucket = client.target.bucket
        self.prefix = prefix
        self.rows: dict[str, Row] = {}
        # Recorded *before* each creating request: an interrupted request may still
        # have created the object or upload on the server.
        self.keys: set[str] = set()
        self.uploads: dict[str, str] = {}  # upload id -> key

    # -- one request, classified ------------------------------------------------
    def _attempt(self, operation: str, **params: Any) -> tuple[Result, str | None, dict[str, Any]]:
        self.on_request(operation)
        try:
            return "allowed", None, self.client.call(operation, **params)
        except S3AccessDenied:
            return "denied", "AccessDenied", {}
        except (S3CredentialsRejected, S3Unreachable, S3SetupError, S3NotS3Reply, S3BucketMissing):
            raise  # every further request would get the same answer
        except S3RequestError as exc:
            return "error", exc.code, {}
        except S3ProtocolError as exc:
            return "error", exc.code, {}

    def _record(self, operation: str, result: Result, code: str | None, detail: str = "") -> Result:
        self.rows[operation] = Row(operation, ACTION_OF[operation], result, code, detail)
        return result

    def _run(self, operation: str, **params: Any) -> dict[str, Any] | None:
        result, code, reply = self._attempt(operation, **params)
        self._record(operation, result, code)
        return reply if result == "allowed" else None

    def _probe(self, operation: str, absent_code: str, detail: str, **params: Any) -> Result:
        """Ask for something that does not exist: ``absent_code`` proves the action is allowed."""
        result, code, _ = self._attempt(operation, **params)
        if result == "error" and code == absent_code:
            result, code = "allowed", None
        return self._record(operation, result, code, detail)

    def _skip(self, operation: str, reason: str) -> None:
        self.rows.setdefault(operation, Row(operation, ACTION_OF[operation], "skipped", None, reason))

    # -- the checks -------------------------------------------------------------
    def run(self) -> None:
        self._run("GetBucketLocation", Bucket=self.bucket)
        self._run("ListObjectsV2", Bucket=self.bucket, Prefix=self.prefix, MaxKeys=10)
        self._run("ListMultipartUploads", Bucket=self.bucket, Prefix=self.prefix, MaxUploads=10)
        # Learn first, harmlessly, whether we could remove what we are about to create:
        # deleting an absent key succeeds, aborting an unknown upload says NoSuchUpload.
        can_delete = self._probe(
            "DeleteObject", "", "probe on a key that does not exist",
            Bucket=self.bucket, Key=f"{self.prefix}absent",
        ) == "allowed"
        can_abort = self._probe(
            "AbortMultipartUpload", "NoSuchUpload", "probe on an upload that does not exist",
            Bucket=self.bucket, Key=f"{self.prefix}absent", UploadId=PROBE_UPLOAD_ID,
        ) == "allowed"
        self._simple_object(can_delete)
        self._multipart(can_delete, can_abort)

    def _simple_object(self, can_delete: bool) -> None:
        key = f"{self.prefix}blob"
        if can_delete:
            self.keys.add(key)
            if self._run("PutObject", Bucket=self.bucket, Key=key, Body=b"harborops s3 verify\n") is None:
                self.keys.discard(key)
        else:
            self._skip("PutObject", "not attempted: s3:DeleteObject is denied, the object could not be removed")
        if self.rows["PutObject"].result == "allowed":
            reply = self._run("GetObject", Bucket=self.bucket, Key=key)
            if reply is not None:
                reply["Body"].read()
            if self._run("DeleteObject", Bucket=self.bucket, Key=key) is not None:
                self.keys.discard(key)
        else:
            self._probe_get_object()

    def _probe_get_object(self) -> None:
        result = self._probe(
            "GetObject", "NoSuchKey", "probe on a key that does not exist",
            Bucket=self.bucket, Key=f"{self.prefix}absent",
        )
        if result == "denied" and self.rows["ListObjectsV2"].result != "allowed":
            # Without s3:ListBucket, S3 answers AccessDenied for a missing key even
            # when s3:GetObject is granted, so this answer cannot be attributed.
            self._record(
                "GetObject", "error", "AccessDenied",
                "inconclusive: without s3:ListBucket S3 reports missing keys as AccessDenied",
            )

    def _create_upload(self, key: str, operation: str = "CreateMultipartUpload") -> str | None:
        # Any upload under our prefix is found again by the cleanup sweep, so an
        # interrupted CreateMultipartUpload cannot leak one unnoticed.
        result, code, reply = self._attempt("CreateMultipartUpload", Bucket=self.bucket, Key=key)
        if operation in ACTION_OF:
            self._record(operation, result, code)
        if result != "allowed":
            return None
        self.uploads[reply["UploadId"]] = key
        return reply["UploadId"]

    def _multipart(self, can_delete: bool, can_abort: bool) -> None:
        key = f"{self.prefix}multipart"
        if not (can_delete or can_abort):
            reason = "not attempted: neither s3:AbortMultipartUpload nor s3:DeleteObject is allowed, nothing could be removed"
            for operation in ("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"):
                self._skip(operation, reason)
            self._probe_list_parts()
            return
        upload_id = self._create_upload(key)
        if upload_id is None:
            self._skip("UploadPart", "needs an upload: CreateMultipartUpload failed")
            self._skip("CompleteMultipartUpload", "needs an upload: CreateMultipartUpload failed")
            self._probe_list_parts()
            return
        part = self._run("UploadPart", Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x" * 1024)
        self._run("ListParts", Bucket=self.bucket, Key=key, UploadId=upload_id)
        if can_delete and part is not None:
            self._complete(key, upload_id, part["ETag"])
        else:
            why = "s3:DeleteObject is denied" if not can_delete else "UploadPart failed"
            self._skip("CompleteMultipartUpload", f"not attempted: {why}, the object could not be removed")
        if can_abort:
            self._abort_for_real(key, upload_id)

    def _complete(self, key: str, upload_id: str, etag: str) -> None:
        self.keys.add(key)
        completed = self._run(
            "CompleteMultipartUpload", Bucket=self.bucket, Key=key, UploadId=upload_id,
            MultipartUpload={"Parts": [{"ETag": etag, "PartNumber": 1}]},
        )
        if completed is None:
            self.keys.discard(key)
            return
        self.uploads.pop(upload_id, None)
        if self._attempt("DeleteObject", Bucket=self.bucket, Key=key)[0] == "allowed":
            self.keys.discard(key)

    def _abort_for_real(self, key: str, upload_id: str) -> None:
        """Abort the first upload if it is still open, else a second one made for this."""
        if upload_id not in self.uploads:
            upload_id = self._create_upload(f"{key}-abort", operation="(helper)") or ""
            key = f"{key}-abort"
        if not upload_id:
            return  # the probe's answer stands
        if self._run("AbortMultipartUpload", Bucket=self.bucket, Key=key, UploadId=upload_id) is not None:
            self.uploads.pop(upload_id, None)

    def _probe_list_parts(self) -> None:
        self._probe(
            "ListParts", "NoSuchUpload", "probe on an upload that does not exist",
            Bucket=self.bucket, Key=f"{self.prefix}absent", UploadId=PROBE_UPLOAD_ID,
        )

    # -- cleanup ----------------------------------------------------------------
    def cleanup(self) -> list[Leftover]:
        """Remove everything under the prefix we know of or can list; report the rest."""
        self._sweep_listings()
        leftovers: list[Leftover] = []
        for upload_id, key in sorted(self.uploads.items(), key=lambda item: item[1]):
            if not self._inside_prefix(key):
                continue
            reason = self._try("AbortMultipartUpload", Bucket=self.bucket, Key=key, UploadId=upload_id)
            if reason:
                leftovers.append(Leftover(key, upload_id, reason))
        for key in sorted(self.keys):
            if not self._inside_prefix(key):
                continue
            reason = self._try("DeleteObject", Bucket=self.bucket, Key=key)
            if reason:
                leftovers.append(Leftover(key, None, reason))
        self.keys.clear()
        self.uploads.clear()
        return leftovers

    def _sweep_listings(self) -> None:
        """Pick up what an interrupted request may have created without our knowing."""
        try:
            listing = self.client.call("ListObjectsV2", Bucket=self.bucket, Prefix=self.prefix)
            self.keys.update(obj["Key"] for obj in listing.get("Contents", []))
        except S3Error:
            pass  # cannot list: rely on what we recorded
        try:
            uploads = self.client.call("ListMultipartUploads", Bucket=self.bucket, Prefix=self.prefix)
            self.uploads.update({u["UploadId"]: u["Key"] for u in uploads.get("Uploads", [])})
        except S3Error:
            pass
        self.uploads.pop(PROBE_UPLOAD_ID, None)

    def _inside_prefix(self, key: str) -> bool:
        # Never touch a key we did not put under our own scratch prefix.
        return key.startswith(self.prefix) and len(self.prefix) > len(SCRATCH_ROOT)

    def _try(self, operation: str, **params: Any) -> str:
        """Run a cleanup request; return '' on success or why it failed."""
        try:
            self.client.call(operation, **params)
            return ""
        except S3RequestError as exc:
            if exc.code in ("NoSuchUpload", "NoSuchKey"):
                return ""  # already gone
            return exc.code
        except S3Error as exc:
            return type(exc).__name__

    def report_rows(self) -> list[Row]:
        return [self.rows[op] for op, _ in OPERATIONS if op in self.rows]


# -- interruption handling ---------------------------------------------------------
@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM unwind like Ctrl-C so ``finally`` cleanup runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def shielded_from_interrupts() -> Iterator[None]:
    """Hold Ctrl-C/SIGTERM off while cleaning up: a second Ctrl-C must not leak objects."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    handler: Callable[[int, Any], None] = lambda signum, frame: pending.append(signum)  # noqa: E731
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_verify(
    client: S3Client, prefix: str | None = None, on_request: Callable[[str], None] | None = None
) -> Report:
    """Run every check, then clean up, whatever happened (including Ctrl-C)."""
    verifier = Verifier(client, prefix or scratch_prefix(), on_request)
    report = Report(client.target.bucket, client.target.endpoint, verifier.prefix)
    try:
        with sigterm_as_interrupt():
            verifier.run()
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        with shielded_from_interrupts():
            report.leftovers = verifier.cleanup()
        report.rows = verifier.report_rows()
    return report


# -- excess permissions ------------------------------------------------------------
#: Actions a Harbor credential should never have, by the resource they apply to.
EXCESS_BUCKET_ACTIONS = (
    "s3:DeleteBucket", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:PutBucketAcl",
    "s3:PutLifecycleConfiguration", "s3:PutBucketVersioning", "s3:GetBucketPolicy",
)
EXCESS_OBJECT_ACTIONS = ("s3:PutObjectAcl", "s3:DeleteObjectVersion")
EXCESS_ACCOUNT_ACTIONS = ("s3:CreateBucket", "s3:ListAllMyBuckets")
#: Read-only requests that show a grant wider than Harbor's; (operation, action,
#: answer codes that still prove the action is allowed).
EXCESS_PROBES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("ListBuckets", "s3:ListAllMyBuckets", ()),
    ("GetBucketPolicy", "s3:GetBucketPolicy", ("NoSuchBucketPolicy",)),
    ("GetBucketAcl", "s3:GetBucketAcl", ()),
    ("GetBucketVersioning", "s3:GetBucketVersioning", ()),
    ("GetBucketLifecycleConfiguration", "s3:GetLifecycleConfiguration", ("NoSuchLifecycleConfiguration",)),
)
#: Write actions no probe can test without the risk of doing what it tests.
UNPROBEABLE = ("s3:DeleteBucket", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:PutBucketAcl")


def _principal_arn(caller_arn: str) -> str:
    """IAM can simulate users and roles, not STS sessions: map a session to its role."""
    if ":assumed-role/" in caller_arn:
        head, _, rest = caller_arn.partition(":assumed-role/")
        return f"{head.replace(':sts:', ':iam:')}:role/{rest.split('/')[0]}"
    return caller_arn


def excess_by_simulation(client: S3Client, prefix: str) -> list[dict[str, str]]:
    """Ask IAM (``iam:SimulatePrincipalPolicy``) what the caller's identity policies allow."""
    caller = client.call_service("sts", "GetCallerIdentity")["Arn"]
    principal = _principal_arn(caller)
    partition = caller.split(":")[1]
    bucket_arn = f"arn:{partition}:s3:::{client.target.bucket}"
    findings = []
    for actions, resource in (
        (EXCESS_BUCKET_ACTIONS, bucket_arn),
        (EXCESS_OBJECT_ACTIONS, f"{bucket_arn}/{prefix}x"),
        (EXCESS_ACCOUNT_ACTIONS, "*"),
    ):
        reply = client.call_service(
            "iam", "SimulatePrincipalPolicy",
            PolicySourceArn=principal, ActionNames=list(actions), ResourceArns=[resource],
        )
        for result in reply.get("EvaluationResults", []):
            allowed = result["EvalDecision"] == "allowed"
            findings.append({
                "action": result["EvalActionName"],
                "result": "allowed" if allowed else "denied",
                "method": "iam-simulation",
            })
    return sorted(findings, key=lambda f: f["action"])


def excess_by_probes(client: S3Client) -> list[dict[str, str]]:
    """Read-only requests; what cannot be probed safely is listed as untested."""
    findings = []
    for operation, action, allowed_codes in EXCESS_PROBES:
        params = {} if operation == "ListBuckets" else {"Bucket": client.target.bucket}
        try:
            client.call(operation, **params)
            result = "allowed"
        except S3AccessDenied:
            result = "denied"
        except S3RequestError as exc:
            result = "allowed" if exc.code in allowed_codes else f"error:{exc.code}"
        except (S3ProtocolError, S3Unreachable) as exc:
            result = f"error:{type(exc).__name__}"
        findings.append({"action": action, "result": result, "method": "read-only-probe"})
    findings += [{"action": action, "result": "untested", "method": "cannot probe without risk"} for action in UNPROBEABLE]
    return findings


def report_excess(client: S3Client, prefix: str) -> list[dict[str, str]]:
    """Simulation where IAM offers it (AWS), read-only probes everywhere else."""
    try:
        return excess_by_simulation(client, prefix)
    except (S3Error, KeyError):
        # No IAM API here (MinIO, Ceph, FlashBlade, moto) or no right to use it.
        return excess_by_probes(client)


# -- presentation ------------------------------------------------------------------
RESULT_STYLE = {"allowed": "green", "denied": "red", "error": "yellow", "skipped": "dim", "untested": "dim"}


def render_table(report: Report) -> None:
    table = Table(title=f"s3://{report.bucket}/{report.prefix}", title_justify="left")
    for column in ("operation", "IAM action", "result", "detail"):
        table.add_column(column)
    for row in report.rows:
        result = row.result + (f" ({row.code})" if row.code else "")
        table.add_row(row.operation, row.action, f"[{RESULT_STYLE[row.result]}]{result}[/]", row.detail)
    out.print(table)
    missing = [action for action, verdict in report.actions().items() if verdict != "allowed"]
    if report.excess is not None:
        render_excess(report.excess)
    for item in report.leftovers:
        upload = f" upload {item.upload_id}" if item.upload_id else ""
        out.print(f"[yellow]left behind:[/] {item.key}{upload} ({item.reason})", soft_wrap=True)  # keys stay copyable
    if report.passed:
        out.print(f"[green]ok:[/] all {len(HARBOR_ACTIONS)} actions Harbor needs are allowed")
    elif missing:
        out.print(f"[red]not ok:[/] {', '.join(f'{a} {report.actions()[a]}' for a in missing)}")


def render_excess(findings: list[dict[str, str]]) -> None:
    table = Table(title="beyond what Harbor needs", title_justify="left")
    for column in ("IAM action", "result", "method"):
        table.add_column(column)
    for item in findings:
        style = "red" if item["result"] == "allowed" else "dim"
        table.add_row(item["action"], f"[{style}]{item['result']}[/]", item["method"])
    out.print(table)
    excess = [item["action"] for item in findings if item["result"] == "allowed"]
    if excess:
        out.print(f"[red]over-broad:[/] these credentials can also {', '.join(excess)}")


@app.command()
def verify(
    bucket: Annotated[str, typer.Option("--bucket", help="The bucket Harbor stores blobs in.")],
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="S3 endpoint URL; omit for AWS.")] = None,
    region: Annotated[
        str, typer.Option("--region", help="Signing region; on AWS, the bucket's region.")
    ] = "us-east-1",
    path_style: Annotated[
        bool | None,
        typer.Option("--path-style/--virtual-hosted", help="Addressing; default path style for custom endpoints."),
    ] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="Named AWS profile (else AWS_PROFILE or AWS_* keys).")] = None,
    also_report_excess: Annotated[
        bool, typer.Option("--also-report-excess", help="Also flag permissions Harbor does not need.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Perform Harbor's S3 operations under a scratch prefix and report each IAM action.

    Credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, --profile or AWS_PROFILE, never flags. Exit code 0 only if all eight actions are allowed and nothing was left behind.

    Example: harborops s3 verify --endpoint https://s3.chi.example --bucket harbor-chi --json
    """
    if endpoint is not None:
        endpoint = normalize_endpoint(endpoint, flag="--endpoint")
    validate_bucket(bucket, flag="--bucket")
    client = S3Client(S3Target(bucket=bucket, endpoint=endpoint, region=region, path_style=path_style, profile=profile))
    with err.status("checking S3 credentials…") as status:
        # A slow or hanging endpoint shows which request it is stuck on (stderr, terminals only).
        report = run_verify(client, on_request=lambda op: status.update(f"{op} on s3://{bucket}…"))
    if also_report_excess and not report.interrupted:
        report.excess = report_excess(client, report.prefix)
    if json_output:
        print(json.dumps(report.to_json(), indent=2))
    else:
        render_table(report)
    if report.interrupted:
        left = f"; left behind: {', '.join(i.key for i in report.leftovers)}" if report.leftovers else "; nothing left behind"
        raise Interrupted(f"interrupted{left}")
    if not report.passed:
        raise typer.Exit(1)
