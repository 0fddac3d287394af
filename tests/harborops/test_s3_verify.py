"""``harborops s3 verify`` against a real moto S3 server on loopback with IAM enforcement on.

Every test runs the command as a user would (``harborops.cli.main`` with argv and
AWS_* environment variables) and asserts on what the user sees: exit code, table or
JSON, stderr, and what is left in the bucket afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest

from components.s3_policy import HARBOR_ACTIONS, policy_document
from harborops.cli import main
from harborops.clients.s3 import S3Client, S3Target, refuse_non_s3_reply, validate_bucket
from harborops.s3 import SCRATCH_ROOT, _principal_arn, report_excess
from tests.conftest import REPO_ROOT
from tests.support.moto_server import AccessKey, MotoS3, moto_s3_server

BUCKET = "harbor-chi"


@pytest.fixture(scope="module")
def moto() -> MotoS3:
    with moto_s3_server() as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture(scope="module")
def harbor_key(moto: MotoS3) -> AccessKey:
    """A user whose only policy is exactly the program's ``s3PolicyJson``."""
    return moto.create_user(policy_document(BUCKET))


@pytest.fixture(autouse=True)
def isolated_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No credentials from the machine, no instance-metadata lookups (they would leave loopback)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("COLUMNS", "200")


def policy_without(action: str) -> dict:
    doc = policy_document(BUCKET)
    for statement in doc["Statement"]:
        statement["Action"] = [a for a in statement["Action"] if a != action]
    return doc


def run(capsys, monkeypatch, moto: MotoS3, key: AccessKey | None, *extra: str) -> tuple[int, str, str]:
    if key is not None:
        for name, value in key.env().items():
            monkeypatch.setenv(name, value)
    argv = ["s3", "verify", "--endpoint", moto.endpoint, "--bucket", BUCKET, *extra]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


def assert_nothing_left(moto: MotoS3) -> None:
    assert moto.keys_under(BUCKET, SCRATCH_ROOT) == []
    assert moto.uploads_under(BUCKET, SCRATCH_ROOT) == []


def assert_no_secret(key: AccessKey, *texts: str) -> None:
    for text in texts:
        assert key.secret_access_key not in text
        assert key.access_key_id not in text


def test_exact_harbor_policy_passes_and_leaves_nothing(capsys, monkeypatch, moto, harbor_key):
    code, out, err = run(capsys, monkeypatch, moto, harbor_key, "--json")
    report = json.loads(out)
    assert code == 0, err
    assert report["passed"] is True
    assert report["actions"] == {action: "allowed" for action in HARBOR_ACTIONS}
    assert [row["operation"] for row in report["operations"]] == [
        "GetBucketLocation", "ListObjectsV2", "PutObject", "GetObject", "DeleteObject",
        "CreateMultipartUpload", "UploadPart", "ListParts", "ListMultipartUploads",
        "CompleteMultipartUpload", "AbortMultipartUpload",
    ]
    assert report["prefix"].startswith(SCRATCH_ROOT)
    assert report["leftovers"] == []
    assert_nothing_left(moto)
    assert_no_secret(harbor_key, out, err)


@pytest.mark.parametrize("missing", HARBOR_ACTIONS)
def test_each_missing_action_fails_and_is_named_exactly(capsys, monkeypatch, moto, missing):
    key = moto.create_user(policy_without(missing))
    code, out, err = run(capsys, monkeypatch, moto, key, "--json")
    report = json.loads(out)
    assert code == 1
    assert report["passed"] is False
    not_allowed = {action: v for action, v in report["actions"].items() if v != "allowed"}
    assert not_allowed == {missing: "denied"}
    assert report["leftovers"] == []
    assert_nothing_left(moto)
    assert_no_secret(key, out, err)


def test_table_names_the_denied_action_for_people(capsys, monkeypatch, moto):
    key = moto.create_user(policy_without("s3:ListMultipartUploadParts"))
    code, out, _ = run(capsys, monkeypatch, moto, key)
    assert code == 1
    assert "ListParts" in out and "denied (AccessDenied)" in out
    assert "not ok: s3:ListMultipartUploadParts denied" in out


def test_table_says_ok_when_everything_is_allowed(capsys, monkeypatch, moto, harbor_key):
    code, out, _ = run(capsys, monkeypatch, moto, harbor_key)
    assert code == 0
    assert "ok: all 8 actions Harbor needs are allowed" in out


def test_without_delete_nothing_is_created_that_could_not_be_removed(capsys, monkeypatch, moto):
    key = moto.create_user(policy_without("s3:DeleteObject"))
    _, out, _ = run(capsys, monkeypatch, moto, key, "--json")
    rows = {row["operation"]: row for row in json.loads(out)["operations"]}
    assert rows["PutObject"]["result"] == "skipped"
    assert rows["CompleteMultipartUpload"]["result"] == "skipped"
    # PutObject is still proven through CreateMultipartUpload/UploadPart.
    assert rows["CreateMultipartUpload"]["result"] == rows["UploadPart"]["result"] == "allowed"
    assert rows["GetObject"] == {**rows["GetObject"], "result": "allowed", "detail": "probe on a key that does not exist"}
    assert_nothing_left(moto)


def test_wrong_secret_is_one_error_line_without_the_secret(capsys, monkeypatch, moto, harbor_key):
    wrong = AccessKey("x", harbor_key.access_key_id, "not-the-secret-" + "q" * 24)
    code, out, err = run(capsys, monkeypatch, moto, wrong)
    assert code == 1
    assert err.strip().splitlines() == [
        "error: the endpoint rejected the credentials on GetBucketLocation: SignatureDoesNotMatch"
    ]
    assert "Traceback" not in err
    assert_no_secret(wrong, out, err)


def test_no_credentials_is_misuse_naming_the_variables(capsys, monkeypatch, moto):
    code, _, err = run(capsys, monkeypatch, moto, None)
    assert code == 2
    assert "AWS_ACCESS_KEY_ID" in err and "--profile" in err


def test_named_profile_is_used_and_unknown_profile_is_misuse(capsys, monkeypatch, moto, harbor_key, tmp_path):
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[harbor]\naws_access_key_id = {harbor_key.access_key_id}\n"
        f"aws_secret_access_key = {harbor_key.secret_access_key}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    code, out, err = run(capsys, monkeypatch, moto, None, "--profile", "harbor", "--json")
    assert code == 0, err
    assert_no_secret(harbor_key, out, err)
    code, _, err = run(capsys, monkeypatch, moto, None, "--profile", "nope")
    assert code == 2
    assert "--profile: no AWS profile named 'nope'" in err


def test_unreachable_endpoint_is_an_operational_error(capsys, monkeypatch, harbor_key):
    for name, value in harbor_key.env().items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        main(["s3", "verify", "--endpoint", "http://127.0.0.1:9", "--bucket", BUCKET])
    err = capsys.readouterr().err
    assert exited.value.code == 1
    assert "did not answer" in err and "Traceback" not in err


def test_endpoint_must_be_a_url(capsys, monkeypatch, moto, harbor_key):
    for name, value in harbor_key.env().items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        main(["s3", "verify", "--endpoint", "s3.chi.example", "--bucket", BUCKET])
    assert exited.value.code == 2
    assert "--endpoint" in capsys.readouterr().err


def count_requests(monkeypatch) -> list[str]:
    seen: list[str] = []
    real_call = S3Client.call

    def recording(self, operation, **params):
        seen.append(operation)
        return real_call(self, operation, **params)

    monkeypatch.setattr(S3Client, "call", recording)
    return seen


def test_interrupt_after_any_request_leaves_nothing_behind(capsys, monkeypatch, moto, harbor_key):
    """Ctrl-C arriving right after the server acted, but before the reply was used.

    This is the hardest moment: an object or upload exists that the run has not yet
    recorded. The cleanup sweep of the scratch prefix must find it.
    """
    seen = count_requests(monkeypatch)
    run(capsys, monkeypatch, moto, harbor_key, "--json")
    # The last two requests are the cleanup sweep (list objects, list uploads), which
    # real signals cannot interrupt; every request before it can be.
    assert seen[-2:] == ["ListObjectsV2", "ListMultipartUploads"]
    run_phase = len(seen) - 2
    monkeypatch.undo()
    real_call = S3Client.call
    for interrupt_after in range(1, run_phase + 1):
        calls = {"n": 0}

        def interrupting(self, operation, **params):
            calls["n"] += 1
            try:
                return real_call(self, operation, **params)
            finally:  # whether S3 said yes or no, the server has already acted
                if calls["n"] == interrupt_after:
                    raise KeyboardInterrupt

        monkeypatch.setattr(S3Client, "call", interrupting)
        code, out, err = run(capsys, monkeypatch, moto, harbor_key, "--json")
        assert code == 130, (interrupt_after, err)
        assert json.loads(out)["interrupted"] is True
        assert "interrupted; nothing left behind" in err
        assert_nothing_left(moto)
        monkeypatch.undo()


def test_keys_outside_the_scratch_prefix_are_never_touched(capsys, monkeypatch, moto, harbor_key):
    admin = moto.client("s3")
    admin.put_object(Bucket=BUCKET, Key="docker/registry/v2/blobs/keep", Body=b"blob")
    upload = admin.create_multipart_upload(Bucket=BUCKET, Key="docker/registry/v2/uploads/keep")["UploadId"]
    admin.put_object(Bucket=BUCKET, Key=f"{SCRATCH_ROOT}someone-elses-run/keep", Body=b"x")
    try:
        code, _, _ = run(capsys, monkeypatch, moto, harbor_key)
        assert code == 0
        assert moto.keys_under(BUCKET, "docker/") == ["docker/registry/v2/blobs/keep"]
        assert moto.uploads_under(BUCKET, "docker/") == [("docker/registry/v2/uploads/keep", upload)]
        assert moto.keys_under(BUCKET, SCRATCH_ROOT) == [f"{SCRATCH_ROOT}someone-elses-run/keep"]
    finally:
        admin.delete_object(Bucket=BUCKET, Key="docker/registry/v2/blobs/keep")
        admin.delete_object(Bucket=BUCKET, Key=f"{SCRATCH_ROOT}someone-elses-run/keep")
        admin.abort_multipart_upload(Bucket=BUCKET, Key="docker/registry/v2/uploads/keep", UploadId=upload)


# The real Ctrl-C path: a separate process, a real SIGINT, while an upload is open.
PAUSING_RUNNER = textwrap.dedent(
    """
    import sys, time
    from harborops.clients.s3 import S3Client
    from harborops.cli import main

    real_call = S3Client.call

    def pausing(self, operation, **params):
        reply = real_call(self, operation, **params)
        if operation == "UploadPart":
            print("PAUSED", flush=True)   # an object and an open upload exist now
            time.sleep(30)
        return reply

    S3Client.call = pausing
    main(sys.argv[1:])
    """
)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_real_signal_mid_run_cleans_up(moto, harbor_key, signum):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(harbor_key.env(), AWS_EC2_METADATA_DISABLED="true", PYTHONPATH=str(REPO_ROOT))
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    process = subprocess.Popen(
        [sys.executable, "-c", PAUSING_RUNNER, "s3", "verify", "--endpoint", moto.endpoint, "--bucket", BUCKET, "--json"],
        env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout.readline().strip() == "PAUSED"
    assert moto.uploads_under(BUCKET, SCRATCH_ROOT) != []  # there really is something to clean
    process.send_signal(signum)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert "interrupted; nothing left behind" in err
    assert json.loads(out)["interrupted"] is True
    assert_nothing_left(moto)
    assert_no_secret(harbor_key, out, err)


def test_excess_report_flags_a_wildcard_credential(capsys, monkeypatch, moto):
    """moto has no iam:SimulatePrincipalPolicy (it answers 500), so this exercises the probe path."""
    code, out, _ = run(capsys, monkeypatch, moto, moto.admin, "--json", "--also-report-excess")
    excess = {item["action"]: item for item in json.loads(out)["excess"]}
    assert code == 0  # all eight needed actions are allowed; excess is reported, not fatal
    assert excess["s3:ListAllMyBuckets"]["result"] == "allowed"
    assert excess["s3:GetBucketPolicy"] == {"action": "s3:GetBucketPolicy", "result": "allowed", "method": "read-only-probe"}
    assert excess["s3:DeleteBucket"]["result"] == "untested"
    assert moto.client("s3").head_bucket(Bucket=BUCKET)  # the bucket is still there


def test_excess_report_is_clean_for_the_harbor_policy(capsys, monkeypatch, moto, harbor_key):
    code, out, _ = run(capsys, monkeypatch, moto, harbor_key, "--also-report-excess")
    assert code == 0
    assert "over-broad" not in out
    assert "s3:ListAllMyBuckets" in out and "cannot probe without risk" in out


def test_assumed_role_sessions_are_simulated_as_their_role():
    assert _principal_arn("arn:aws:sts::123456789012:assumed-role/harbor/session-1") == (
        "arn:aws:iam::123456789012:role/harbor"
    )
    assert _principal_arn("arn:aws:iam::123456789012:user/harbor") == "arn:aws:iam::123456789012:user/harbor"


def test_iam_simulation_is_used_where_iam_offers_it(monkeypatch):
    """AWS's answer shape, canned: moto cannot simulate, and no test may reach AWS."""
    asked: list[tuple[str, dict]] = []

    def aws_like(self, service, operation, **params):
        asked.append((operation, params))
        if operation == "GetCallerIdentity":
            return {"Arn": "arn:aws:sts::123456789012:assumed-role/harbor/deploy"}
        return {"EvaluationResults": [
            {"EvalActionName": name, "EvalDecision": "allowed" if name == "s3:DeleteBucket" else "implicitDeny"}
            for name in params["ActionNames"]
        ]}

    monkeypatch.setattr(S3Client, "call_service", aws_like)
    client = object.__new__(S3Client)
    client.target = S3Target(bucket=BUCKET)
    findings = {item["action"]: item for item in report_excess(client, f"{SCRATCH_ROOT}run/")}
    assert findings["s3:DeleteBucket"] == {"action": "s3:DeleteBucket", "result": "allowed", "method": "iam-simulation"}
    assert {item["result"] for name, item in findings.items() if name != "s3:DeleteBucket"} == {"denied"}
    simulations = [params for operation, params in asked if operation == "SimulatePrincipalPolicy"]
    assert {p["PolicySourceArn"] for p in simulations} == {"arn:aws:iam::123456789012:role/harbor"}
    assert [p["ResourceArns"] for p in simulations] == [
        [f"arn:aws:s3:::{BUCKET}"], [f"arn:aws:s3:::{BUCKET}/{SCRATCH_ROOT}run/x"], ["*"],
    ]


def test_what_cannot_be_removed_is_listed_by_key_and_upload_id(capsys, monkeypatch, moto):
    """Removal allowed only for the probes' key: the probes pass, the real cleanup cannot."""
    removal = ("s3:DeleteObject", "s3:AbortMultipartUpload")
    doc = policy_document(BUCKET)
    for statement in doc["Statement"]:
        statement["Action"] = [a for a in statement["Action"] if a not in removal]
    doc["Statement"].append(
        {"Effect": "Allow", "Action": list(removal), "Resource": [f"arn:aws:s3:::{BUCKET}/{SCRATCH_ROOT}*/absent"]}
    )
    key = moto.create_user(doc)
    code, out, err = run(capsys, monkeypatch, moto, key)
    left_keys = moto.keys_under(BUCKET, SCRATCH_ROOT)
    left_uploads = moto.uploads_under(BUCKET, SCRATCH_ROOT)
    try:
        assert code == 1
        assert left_keys and left_uploads  # the situation this test is about really arose
        for leftover in left_keys:
            assert f"left behind: {leftover} (AccessDenied)" in out
        for leftover, upload_id in left_uploads:
            assert f"left behind: {leftover} upload {upload_id} (AccessDenied)" in out
        assert_no_secret(key, out, err)
    finally:
        admin = moto.client("s3")
        for leftover in left_keys:
            admin.delete_object(Bucket=BUCKET, Key=leftover)
        for leftover, upload_id in left_uploads:
            admin.abort_multipart_upload(Bucket=BUCKET, Key=leftover, UploadId=upload_id)


# -- bad flags, bad local files, endpoints that are not S3 ---------------------------
def run_once(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(["s3", "verify", *argv])
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


@pytest.mark.parametrize(
    "endpoint",
    ["http://someone:URLSECRET99@127.0.0.1:{port}", "http://URLSECRET99@127.0.0.1:{port}", "someone:URLSECRET99@127.0.0.1"],
)
def test_credentials_in_the_endpoint_are_refused_and_never_echoed(capsys, monkeypatch, moto, harbor_key, endpoint):
    for name, value in harbor_key.env().items():
        monkeypatch.setenv(name, value)
    seen = count_requests(monkeypatch)
    port = moto.endpoint.rsplit(":", 1)[1]
    code, out, err = run_once(capsys, "--endpoint", endpoint.format(port=port), "--bucket", BUCKET, "--json")
    assert code == 2
    assert out == ""
    assert err.strip().splitlines() == [
        "error: --endpoint: put credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or --profile, not in the URL"
    ]
    assert "URLSECRET99" not in out + err
    assert seen == []


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--endpoint", "http://[::1", "--bucket", BUCKET], "--endpoint: 'http://[::1' is not a valid URL"),
        (["--endpoint", "http://127.0.0.1:99999", "--bucket", BUCKET], "the port must be a number from 1 to 65535"),
        (["--endpoint", "http://127.0.0.1:0", "--bucket", BUCKET], "the port must be a number from 1 to 65535"),
        (["--endpoint", "http://:9000", "--bucket", BUCKET], "--endpoint: 'http://:9000' is not an http(s) URL"),
        (["--endpoint", "http://127.0.0.1:9000?x=1", "--bucket", BUCKET], "no query or fragment"),
        (["--bucket", "Bad_Bucket"], "--bucket 'Bad_Bucket': not a valid bucket name"),
        (["--bucket", "ab"], "--bucket 'ab': not a valid bucket name"),
        (["--bucket", "a..b"], "--bucket 'a..b': not a valid bucket name"),
        (["--bucket", "-harbor"], "--bucket '-harbor': not a valid bucket name"),
        (["--bucket", "10.0.0.1"], "--bucket '10.0.0.1': a bucket name cannot be an IP address"),
        (["--bucket", " "], "--bucket: must not be empty"),
    ],
    ids=["ipv6-unclosed", "port-too-big", "port-zero", "no-host", "query", "uppercase-underscore", "too-short",
         "double-dot", "leading-hyphen", "ip-address", "blank"],
)
def test_bad_endpoint_or_bucket_is_misuse_before_any_request(capsys, monkeypatch, moto, harbor_key, flags, expected):
    for name, value in harbor_key.env().items():
        monkeypatch.setenv(name, value)
    seen = count_requests(monkeypatch)
    if "--endpoint" not in flags:
        flags = ["--endpoint", moto.endpoint, *flags]
    code, out, err = run_once(capsys, *flags)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and expected in err, err
    assert "Traceback" not in err
    assert seen == []


@pytest.mark.parametrize("name", ["docker-registry-bucket", "harbor.chi.2024", "abc"])
def test_valid_bucket_names_pass_the_check(name):
    assert validate_bucket(name) == name


class NotS3Handler(BaseHTTPRequestHandler):
    """Answers every request the way one kind of non-S3 endpoint does."""

    kind = "html"

    def log_message(self, *args) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.kind == "html":  # a web UI at the URL
            status, headers, body = 200, {"Content-Type": "text/html"}, b"<!DOCTYPE html><html><body>Console</body></html>"
        elif self.kind == "text-500":  # a proxy's own error page
            status, headers, body = 500, {"Content-Type": "text/plain"}, b"upstream failed"
        elif self.kind == "text-200":  # some other HTTP service
            status, headers, body = 200, {"Content-Type": "text/plain"}, b"ok"
        else:  # a login redirect
            status, headers, body = 302, {"Location": f"http://127.0.0.1:{self.server.server_port}/login"}, b""
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _answer


@pytest.fixture
def not_s3_endpoint(request) -> str:
    handler = type("Handler", (NotS3Handler,), {"kind": request.param})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("not_s3_endpoint", "expected"),
    [
        ("html", "error: GetBucketLocation: the endpoint answered HTML (HTTP 200), not S3: is --endpoint the S3 API URL?"),
        ("text-500", "error: GetBucketLocation: the endpoint answered HTTP 500 with a body that is not S3 XML "
                     "(text/plain), not S3: is --endpoint the S3 API URL?"),
        ("redirect", "error: GetBucketLocation: the endpoint answered a redirect (HTTP 302), not S3: "
                     "is --endpoint the S3 API URL?"),
        ("text-200", "error: GetBucketLocation: the endpoint answered HTTP 200 with a body that is not S3 XML (text/plain), not S3: "
                     "is --endpoint the S3 API URL?"),
    ],
    indirect=["not_s3_endpoint"],
)
def test_an_endpoint_that_is_not_s3_is_one_error_line(capsys, monkeypatch, harbor_key, not_s3_endpoint, expected):
    for name, value in harbor_key.env().items():
        monkeypatch.setenv(name, value)
    code, out, err = run_once(capsys, "--endpoint", not_s3_endpoint, "--bucket", BUCKET)
    assert code == 1
    assert out == ""
    assert err.strip().splitlines() == [expected]
    assert_no_secret(harbor_key, out, err)


@pytest.mark.parametrize("which", ["AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"])
def test_a_malformed_aws_file_is_one_line_naming_it_without_its_contents(capsys, monkeypatch, moto, tmp_path, which):
    broken = tmp_path / "broken-aws-file"
    broken.write_text("[broken\naws_access_key_id = AKIAFILESECRET000000\naws_secret_access_key = FileSecret99\n")
    monkeypatch.setenv(which, str(broken))
    for argv in ([], ["--profile", "harbor"]):
        code, out, err = run_once(capsys, "--endpoint", moto.endpoint, "--bucket", BUCKET, *argv)
        assert code == 2
        assert err.strip().splitlines() == [
            f"error: cannot parse {broken}: check its [section] headers and key = value lines"
        ]
        assert "AKIAFILESECRET" not in out + err and "FileSecret99" not in out + err


def test_a_profile_without_keys_says_so(capsys, monkeypatch, moto, tmp_path):
    config = tmp_path / "config"
    config.write_text("[profile p1]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    code, _, err = run_once(capsys, "--endpoint", moto.endpoint, "--bucket", BUCKET, "--profile", "p1")
    assert code == 2
    assert err.strip().splitlines() == [
        "error: --profile p1: the profile has no credentials "
        "(aws_access_key_id/aws_secret_access_key, sso_* or credential_process)"
    ]


@pytest.mark.parametrize("variable", ["AWS_PROFILE", "AWS_DEFAULT_PROFILE"])
def test_an_unknown_profile_from_the_environment_names_the_variable(capsys, monkeypatch, moto, variable):
    monkeypatch.setenv(variable, "zzz")
    code, out, err = run_once(capsys, "--endpoint", moto.endpoint, "--bucket", BUCKET)
    assert code == 2
    assert out == ""
    assert err.strip().splitlines() == [f"error: {variable}: no AWS profile named 'zzz'"]


def test_a_profile_from_the_environment_without_keys_names_the_variable(capsys, monkeypatch, moto, tmp_path):
    config = tmp_path / "config"
    config.write_text("[profile p1]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "p1")
    code, _, err = run_once(capsys, "--endpoint", moto.endpoint, "--bucket", BUCKET)
    assert code == 2
    assert err.strip().splitlines() == [
        "error: AWS_PROFILE p1: the profile has no credentials "
        "(aws_access_key_id/aws_secret_access_key, sso_* or credential_process)"
    ]


def test_a_missing_bucket_is_one_line_not_a_table(capsys, monkeypatch, moto):
    code, out, err = run(capsys, monkeypatch, moto, moto.admin, "--bucket", "nosuchbucket")
    assert code == 1
    assert out == ""
    assert err.strip().splitlines() == [
        "error: the bucket 'nosuchbucket' does not exist at this endpoint (GetBucketLocation: NoSuchBucket): check --bucket"
    ]


@pytest.mark.parametrize(
    ("operation", "status", "headers", "body"),
    [
        # AWS's wrong-region answer: botocore's redirector must still see it.
        ("GetBucketLocation", 301, {"x-amz-bucket-region": "eu-west-1", "x-amz-request-id": "R"},
         b"<?xml version='1.0'?><Error><Code>PermanentRedirect</Code></Error>"),
        ("GetBucketPolicy", 200, {"Content-Type": "application/json"}, b'{"Version": "2012-10-17"}'),  # JSON payload
        ("DeleteObject", 204, {"Content-Type": "text/html; charset=utf-8"}, b""),  # moto labels empty replies HTML
        ("GetObject", 200, {"Content-Type": "text/plain"}, b"harborops s3 verify\n"),  # object bodies are anything
    ],
    ids=["aws-region-redirect", "bucket-policy-json", "empty-204", "object-body"],
)
def test_real_s3_replies_are_not_mistaken_for_another_service(operation, status, headers, body):
    model = boto3.session.Session().client(
        "s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    ).meta.service_model.operation_model(operation)
    refuse_non_s3_reply({"status_code": status, "headers": headers, "body": body}, model)  # does not raise
