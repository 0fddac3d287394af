"""The real __main__.py under Pulumi's mock runtime, once per committed stack file:
what gets declared (types, counts, key inputs, parents, options) and what gets exported."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from components.config import ConfigError
from components.s3_policy import policy_document
from tests.support.pulumi_program import (
    GENERATED_SECRETS,
    PLACEHOLDER_SECRETS,
    ProgramRun,
    default_peer_outputs,
    run_program,
    stack_file_config,
)

HARBOR = "harbor:index"
PROJECT_T = f"{HARBOR}/project:Project"
ROBOT_T = f"{HARBOR}/robotAccount:RobotAccount"
REPLICATION_T = f"{HARBOR}/replication:Replication"
REGISTRY_T = f"{HARBOR}/registry:Registry"


@pytest.fixture(scope="module")
def chi() -> ProgramRun:
    run = run_program("chi")
    assert run.error is None, run.error
    return run


@pytest.fixture(scope="module")
def iad() -> ProgramRun:
    run = run_program("iad")
    assert run.error is None, run.error
    return run


EXPECTED_COUNTS = {
    "harbor-platform:index:HarborSite": 1,
    "harbor-platform:index:ReplicationPair": 1,
    "pulumi:pulumi:StackReference": 1,
    "pulumi:providers:harbor": 1,
    "pulumi:providers:aws": 1,
    "aws:s3/bucket:Bucket": 1,
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": 1,
    f"{HARBOR}/configSystem:ConfigSystem": 1,
    PROJECT_T: 1,
    f"{HARBOR}/retentionPolicy:RetentionPolicy": 1,
    ROBOT_T: 3,
    f"{HARBOR}/garbageCollection:GarbageCollection": 1,
    "pulumi-python:dynamic:Resource": 1,
    REGISTRY_T: 1,
    REPLICATION_T: 2,
}
#: Chicago also mirrors Docker Hub (the harness's default emulator lists 3 repositories):
#: the component, its self-reference for the last catalogue, the catalogue record, the
#: docker-hub endpoint and one rule per repository. Ashburn mirrors nothing.
MIRROR_COUNTS = {
    "harbor-platform:index:DockerHubMirror": 1,
    "pulumi:pulumi:StackReference": 1,
    "pulumi-python:dynamic/harbor-platform:DockerHubCatalog": 1,
    REGISTRY_T: 1,
    REPLICATION_T: 3,
}


@pytest.mark.parametrize("stack", ["chi", "iad"])
def test_each_stack_declares_exactly_these_resources(stack: str, request: pytest.FixtureRequest) -> None:
    run: ProgramRun = request.getfixturevalue(stack)
    expected = Counter(EXPECTED_COUNTS) + (Counter(MIRROR_COUNTS) if stack == "chi" else Counter())
    assert Counter(r.type for r in run.resources) == expected
    # The legacy purge resource is never used: it purges nothing on Harbor >= 2.13.
    assert not run.of_type(f"{HARBOR}/purgeAuditLog:PurgeAuditLog")


@pytest.mark.parametrize("stack", ["chi", "iad"])
def test_children_hang_under_their_component(stack: str, request: pytest.FixtureRequest) -> None:
    run: ProgramRun = request.getfixturevalue(stack)
    peer = "iad" if stack == "chi" else "chi"
    site_urn = run.urn_of(stack)
    pair_urn = run.urn_of(f"{stack}-{peer}")
    mirror_urns = {r.urn for r in run.resources if r.type == "harbor-platform:index:DockerHubMirror"}
    for resource in run.resources:
        if resource.urn in mirror_urns or resource.parent in mirror_urns or resource.name.startswith("dockerhub-mirror"):
            continue  # the mirror's own tree: tests/components/test_dockerhub_mirror.py
        if resource.type in (REGISTRY_T, REPLICATION_T):
            assert resource.parent == pair_urn, resource.name
        elif resource.type.startswith(("harbor:", "aws:", "pulumi:providers:", "pulumi-python:")):
            assert resource.parent == site_urn, resource.name
        assert resource.name.startswith(stack), resource.name


def test_chicago_mirrors_docker_hub_and_ashburn_does_not(chi: ProgramRun, iad: ProgramRun) -> None:
    assert chi.outputs["dockerHubMirrorRules"].value == [
        "mirror-dockerhub-basecamp", "mirror-dockerhub-hey", "mirror-dockerhub-writebook",
    ]
    mirror_urn = chi.urn_of("dockerhub-mirror")
    rules = [r for r in chi.of_type(REPLICATION_T) if r.parent == mirror_urn]
    assert {r.inputs["destNamespace"] for r in rules} == {"yourorg"}
    assert "dockerHubMirrorRules" not in iad.outputs and not iad.of_type("harbor-platform:index:DockerHubMirror")


def test_harbor_provider_verifies_tls_and_logs_in_as_admin(chi: ProgramRun) -> None:
    [provider] = chi.of_type("pulumi:providers:harbor")
    assert provider.inputs["insecure"] == "false"  # provider config travels as strings
    assert provider.inputs["username"] == "admin"
    assert provider.inputs["url"] == "https://registry-chi.yourorg.example"
    assert provider.inputs["robotPrefix"] == "robot$"
    harbor_resources = [r for r in chi.resources if r.type.startswith("harbor:")]
    assert harbor_resources and all(r.provider.startswith(provider.urn) for r in harbor_resources)


def test_s3_compatible_storage_uses_the_sites_endpoint_path_style(chi: ProgramRun) -> None:
    [aws] = chi.of_type("pulumi:providers:aws")
    assert json.loads(aws.inputs["endpoints"]) == [{"s3": "https://purestorage.chi.yourorg.example"}]
    assert aws.inputs["s3UsePathStyle"] == "true"
    assert aws.inputs["region"] == "us-east-1"
    [bucket] = chi.of_type("aws:s3/bucket:Bucket")
    assert bucket.inputs["bucket"] == "docker-registry-bucket"
    assert bucket.protect and bucket.provider.startswith(aws.urn)
    [lifecycle] = chi.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    [rule] = lifecycle.inputs["rules"]
    assert rule["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 7}
    assert rule["status"] == "Enabled"


def test_every_name_unique_harbor_object_is_deleted_before_replacement(chi: ProgramRun) -> None:
    for type_ in (PROJECT_T, ROBOT_T, REGISTRY_T, REPLICATION_T, f"{HARBOR}/retentionPolicy:RetentionPolicy"):
        for resource in chi.of_type(type_):
            assert resource.delete_before_replace, resource.name


def test_config_system_sets_every_field(chi: ProgramRun) -> None:
    [system] = chi.of_type(f"{HARBOR}/configSystem:ConfigSystem")
    assert system.inputs == {
        "auditLogForwardEndpoint": "",
        "projectCreationRestriction": "adminonly",
        "readOnly": False,
        "robotNamePrefix": "robot$",
        "robotTokenExpiration": 30,
        "scannerSkipUpdatePulltime": False,
        "skipAuditLogDatabase": False,
        "storagePerProject": -1,
    }


def test_kamal_and_ci_robots_push_and_pull_one_project_only(chi: ProgramRun) -> None:
    for name in ("chi-robot-kamal", "chi-robot-ci"):
        robot = chi.named(name)
        assert robot.inputs["level"] == "project"
        [permission] = robot.inputs["permissions"]
        assert permission["kind"] == "project" and permission["namespace"] == "yourorg"
        assert sorted((a["resource"], a["action"]) for a in permission["accesses"]) == [
            ("repository", "pull"),
            ("repository", "push"),
        ]
        assert chi.named("chi-system").urn in robot.dependencies


def test_replication_robot_has_only_what_replication_needs(chi: ProgramRun) -> None:
    robot = chi.named("chi-robot-replication")
    assert robot.inputs["level"] == "system"
    accesses = {
        (p["kind"], p["namespace"], a["resource"], a["action"])
        for p in robot.inputs["permissions"]
        for a in p["accesses"]
    }
    assert accesses == {
        ("system", "/", "project", "list"),
        *{("project", "*", r, a) for r, a in [
            ("artifact", "list"), ("artifact", "read"), ("repository", "list"),
            ("repository", "pull"), ("repository", "push"), ("tag", "create"), ("tag", "list"),
        ]},
    }
    assert not any(a in ("delete", "create") and r in ("project", "repository") for _, _, r, a in accesses)


def test_retention_gc_and_audit_purge_inputs(chi: ProgramRun) -> None:
    [retention] = chi.of_type(f"{HARBOR}/retentionPolicy:RetentionPolicy")
    assert retention.inputs["scope"] == "/projects/yourorg"
    assert [(r.get("mostRecentlyPushed"), r.get("nDaysSinceLastPull")) for r in retention.inputs["rules"]] == [
        (10, None),
        (None, 30),
    ]
    assert all(r["untaggedArtifacts"] is False for r in retention.inputs["rules"])
    [gc] = chi.of_type(f"{HARBOR}/garbageCollection:GarbageCollection")
    assert gc.inputs == {"schedule": "0 0 4 * * 6", "deleteUntagged": True, "workers": 2}
    [purge] = chi.of_type("pulumi-python:dynamic:Resource")
    assert purge.inputs["harborUrl"] == "https://registry-chi.yourorg.example"
    assert purge.inputs["retentionHours"] == 720 and purge.inputs["schedule"] == "Daily"
    assert "pull_artifact" in purge.inputs["includeEventTypes"]
    assert not any(v in json.dumps(purge.inputs) for v in PLACEHOLDER_SECRETS.values())


@pytest.mark.parametrize(("stack", "push_on", "pull_on"), [("chi", True, False), ("iad", False, True)])
def test_replication_rules_follow_the_seed_and_cannot_ping_pong(
    stack: str, push_on: bool, pull_on: bool, request: pytest.FixtureRequest
) -> None:
    run: ProgramRun = request.getfixturevalue(stack)
    peer = "iad" if stack == "chi" else "chi"
    push, pull = run.named(f"{stack}-{peer}-push"), run.named(f"{stack}-{peer}-pull")
    assert push.inputs["name"] == f"Replicate images on push to {peer}"
    assert pull.inputs["name"] == f"Replicate missing images/artifacts from {peer}"
    assert (push.inputs["action"], push.inputs["schedule"]) == ("push", "event_based")
    assert (pull.inputs["action"], pull.inputs["schedule"]) == ("pull", "0 0/10 * * * *")
    for rule in (push, pull):
        # One filter per block: a block with both name and tag sends only one.
        assert rule.inputs["filters"] == [{"name": "**"}, {"tag": "**"}]
        assert rule.inputs["destNamespaceReplace"] == -1
        assert rule.inputs["deletion"] is False
        assert rule.inputs["registryId"] == 7
        assert run.urn_of(f"{stack}-project-yourorg") in rule.dependencies
    assert (push.inputs["enabled"], pull.inputs["enabled"]) == (push_on, pull_on)


def test_registry_endpoint_uses_the_peers_replication_robot(chi: ProgramRun) -> None:
    [registry] = [r for r in chi.of_type(REGISTRY_T) if r.parent == chi.urn_of("chi-iad")]
    peer = default_peer_outputs("iad")
    assert registry.inputs["endpointUrl"] == "https://registry-iad.yourorg.example"
    assert registry.inputs["providerName"] == "harbor"
    assert registry.inputs["accessId"] == peer["replicationRobotName"]
    assert registry.inputs["accessSecret"] == peer["replicationRobotSecret"]
    assert registry.inputs["insecure"] is False
    [reference] = [r for r in chi.of_type("pulumi:pulumi:StackReference") if r.name == "chi-peer-iad"]
    assert reference.inputs["name"] == "organization/harbor-platform/iad"


def test_first_up_before_the_peer_exists_warns_and_skips_replication() -> None:
    run = run_program("chi", peer_outputs={})
    assert run.error is None
    assert run.warnings == [
        "peer stack organization/harbor-platform/iad has no replicationRobotName, "
        "replicationRobotSecret, siteRole output yet, so the registry endpoint and replication "
        "rules for iad are skipped this run. Bootstrap order: `pulumi up --stack chi`, "
        "`pulumi up --stack iad`, then `pulumi up --stack chi` again."
    ]
    peer_side = [r for r in run.resources if r.type in (REGISTRY_T, REPLICATION_T) and not r.name.startswith("dockerhub-mirror")]
    assert peer_side == []
    assert run.outputs["replicationRobotSecret"].secret  # iad can read it on its first up


def test_two_primaries_are_refused_with_one_line() -> None:
    run = run_program("chi", peer_outputs={**default_peer_outputs("iad"), "siteRole": "primary"})
    assert isinstance(run.error, ConfigError)
    assert str(run.error).splitlines()[1].startswith(
        "site.role: both chi and iad are primary; only one site may push on events"
    )
    assert not run.of_type(REPLICATION_T)


def test_peer_credential_from_config_needs_no_stack_reference() -> None:
    replication = stack_file_config("iad")["replication"]
    peer = {**replication["peer"], "credentialsFrom": "config", "robotName": "robot$replication-iad"}
    peer.pop("stack")
    run = run_program("iad", config={"replication": {**replication, "peer": peer}})
    assert run.error is None, run.error
    assert not run.of_type("pulumi:pulumi:StackReference")
    [registry] = run.of_type(REGISTRY_T)
    assert registry.inputs["accessSecret"] == PLACEHOLDER_SECRETS["peerReplicationSecret"]


SECRET_OUTPUTS = {
    "kamalRegistryPassword",
    "ciRegistryPassword",
    "replicationRobotSecret",
    "harborYml",
}


@pytest.mark.parametrize("stack", ["chi", "iad"])
def test_outputs_secret_ones_are_secret_and_plain_ones_leak_nothing(
    stack: str, request: pytest.FixtureRequest
) -> None:
    run: ProgramRun = request.getfixturevalue(stack)
    mirror_outputs = {"dockerHubCatalog", "dockerHubMirrorRules"} if stack == "chi" else set()
    assert set(run.outputs) == SECRET_OUTPUTS | mirror_outputs | {
        "siteName", "siteRole", "registryHost", "kamalRegistryServer", "kamalRegistryUsername",
        "ciRegistryUsername", "replicationRobotName", "bucketName", "s3PolicyJson",
    }
    assert {name for name, out in run.outputs.items() if out.secret} == SECRET_OUTPUTS
    every_secret = [*PLACEHOLDER_SECRETS.values(), *GENERATED_SECRETS]
    for name, out in run.outputs.items():
        if not out.secret:
            assert not any(s in json.dumps(out.value) for s in every_secret), name
    assert run.outputs["kamalRegistryUsername"].value == "robot$yourorg+kamal"
    assert run.outputs["kamalRegistryServer"].value == f"registry-{stack}.yourorg.example"
    assert json.loads(run.outputs["s3PolicyJson"].value) == policy_document("docker-registry-bucket")


def test_aws_mode_creates_bucket_user_policy_and_key() -> None:
    storage = {"mode": "aws", "bucket": "harbor-chi-images", "iamUserName": "harbor-chi"}
    run = run_program("chi", config={"storage": storage})
    assert run.error is None, run.error
    assert not run.of_type("pulumi:providers:aws")  # ambient AWS credentials
    [user] = run.of_type("aws:iam/user:User")
    [policy] = run.of_type("aws:iam/userPolicy:UserPolicy")
    assert user.inputs["name"] == "harbor-chi"
    assert json.loads(policy.inputs["policy"]) == policy_document("harbor-chi-images")
    assert len(run.of_type("aws:iam/accessKey:AccessKey")) == 1
    harbor_yml = run.outputs["harborYml"]
    assert harbor_yml.secret and "GENERATED-aws-secret-key" in harbor_yml.value
    assert "regionendpoint" not in harbor_yml.value


def test_existing_mode_creates_no_storage() -> None:
    storage = {**stack_file_config("chi")["storage"], "mode": "existing"}
    run = run_program("chi", config={"storage": storage}, secrets={"s3AdminAccessKey": None, "s3AdminSecretKey": None})
    assert run.error is None, run.error
    assert not [r for r in run.resources if r.type.startswith(("aws:", "pulumi:providers:aws"))]
    assert run.outputs["bucketName"].value == "docker-registry-bucket"
