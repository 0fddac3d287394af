"""Run the REAL ``__main__.py`` under Pulumi's mock runtime for a committed stack file.

What it does, per call:
1. a fresh asyncio event loop (Pulumi's runtime keeps global state per loop);
2. reads ``Pulumi.<stack>.yaml`` (the committed file, not a copy), adds placeholder
   secrets (:data:`PLACEHOLDER_SECRETS`, all marked secret) and applies overrides;
3. ``set_mocks`` with a recording monitor, then ``runpy.run_path("__main__.py")`` inside
   Pulumi's stack machinery, so ``pulumi.export`` works as under the engine;
4. waits for every RPC, resolves every stack output with its secretness, closes the loop.

It returns a :class:`ProgramRun`: every registered resource (type, name, inputs,
parent URN, provider, options the monitor sees: ``protect``, ``deleteBeforeReplace``,
``dependencies``), the stack outputs, and warnings logged by the program. If the
program raises (invalid config, say), the exception is in ``ProgramRun.error``.

Examples::

    run = run_program("chi")
    [project] = run.of_type("harbor:index/project:Project")
    assert project.inputs["name"] == "yourorg"
    assert run.outputs["kamalRegistryPassword"].secret

    # Peer stack outputs for the StackReference (default: the peer has them all):
    run = run_program("chi", peer_outputs={})          # first `up` of chi: no peer yet

    # Config overrides: top-level key -> value (None deletes); nested changes by hand:
    run = run_program("chi", config={"gc": {"workers": 9}})
    assert "gc.workers" in str(run.error)

    # Extra mock behaviour, e.g. outputs for a dynamic resource:
    def extra(args):            # MockResourceArgs -> (id, state) or None for the default
        if args.typ == "pulumi-python:dynamic:Resource":
            return "id-1", {**args.inputs, "catalogue": []}
    run = run_program("chi", new_resource=extra)
"""

from __future__ import annotations

import asyncio
import copy
import runpy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime import stack as pulumi_stack
from pulumi.runtime.config import set_all_config

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT = "harbor-platform"
ORGANIZATION = "organization"

#: Placeholder secret values. Distinctive so a test can grep every plain output for them.
PLACEHOLDER_SECRETS: dict[str, str] = {
    "adminPassword": "PLACEHOLDER-admin-password-7f3a",
    "databasePassword": "PLACEHOLDER-db-password-91c2",
    "s3AccessKey": "PLACEHOLDER-s3-access-key-4d1e",
    "s3SecretKey": "PLACEHOLDER-s3-secret-key-b8a0",
    "s3AdminAccessKey": "PLACEHOLDER-s3-admin-access-key-22f9",
    "s3AdminSecretKey": "PLACEHOLDER-s3-admin-secret-key-6c5d",
    "peerReplicationSecret": "PLACEHOLDER-peer-replication-secret-0e7b",
    "dockerHubToken": "PLACEHOLDER-dockerhub-token-5e21",
}
#: The Docker Hub catalogue a committed mirror stack sees unless a test brings its own
#: emulator: the program lists Docker Hub while it runs, and no test may reach the internet.
DEFAULT_HUB_REPOSITORIES = ("basecamp", "hey", "writebook")
#: What the mocks make up for provider-generated secrets (robot secrets, IAM keys).
GENERATED_ROBOT_SECRET = "GENERATED-robot-secret-5a9c"
GENERATED_AWS_SECRET_KEY = "GENERATED-aws-secret-key-3b8e"
GENERATED_SECRETS = (GENERATED_ROBOT_SECRET, GENERATED_AWS_SECRET_KEY)

STACK_REFERENCE_TYPE = "pulumi:pulumi:StackReference"


def default_peer_outputs(peer: str) -> dict[str, Any]:
    """Outputs a deployed peer stack exposes, as its own ``up`` would leave them."""
    return {
        "siteName": peer,
        "siteRole": "backup" if peer == "iad" else "primary",
        "replicationRobotName": f"robot$replication-{'chi' if peer == 'iad' else 'iad'}",
        "replicationRobotSecret": f"PEER-{peer}-robot-secret-1d4f",
    }


@dataclass(frozen=True)
class RecordedResource:
    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    parent: str
    provider: str
    custom: bool
    protect: bool
    delete_before_replace: bool
    dependencies: tuple[str, ...]

    @property
    def parent_name(self) -> str:
        """Logical name of the parent (the last URN segment), '' for the stack."""
        return self.parent.rsplit("::", 1)[-1] if self.parent else ""


@dataclass(frozen=True)
class StackOutput:
    value: Any
    secret: bool


@dataclass
class ProgramRun:
    resources: list[RecordedResource] = field(default_factory=list)
    outputs: dict[str, StackOutput] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: BaseException | None = None

    def of_type(self, type_token: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_token]

    def named(self, name: str) -> RecordedResource:
        [match] = [r for r in self.resources if r.name == name]
        return match

    def urn_of(self, name: str) -> str:
        return self.named(name).urn


# --------------------------------------------------------------------------- mocks


class _Mocks(pulumi.runtime.Mocks):
    def __init__(
        self,
        peer_outputs: Mapping[str, Any] | None,
        new_resource: Callable[[pulumi.runtime.MockResourceArgs], tuple[str, dict] | None] | None,
    ) -> None:
        self.peer_outputs = peer_outputs
        self.extra = new_resource

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        if self.extra is not None:
            answer = self.extra(args)
            if answer is not None:
                return answer
        if args.typ == STACK_REFERENCE_TYPE:
            outputs = dict(self.peer_outputs or {})
            return args.inputs.get("name", args.name), {"name": args.inputs.get("name"), "outputs": outputs}
        state = dict(args.inputs)
        # What the real providers compute, made up plausibly.
        if args.typ == "harbor:index/robotAccount:RobotAccount":
            prefix = "robot$"
            project = _robot_project(args.inputs)
            full = f"{prefix}{project}+{args.inputs['name']}" if project else f"{prefix}{args.inputs['name']}"
            state.update(fullName=full, secret=GENERATED_ROBOT_SECRET, robotId="1")
        elif args.typ == "harbor:index/registry:Registry":
            state.update(registryId=7)
        elif args.typ == "harbor:index/project:Project":
            state.update(projectId=1)
        elif args.typ == "aws:iam/accessKey:AccessKey":
            state.update(secret=GENERATED_AWS_SECRET_KEY)
        resource_id = f"{args.name}-id"
        if args.typ == "harbor:index/project:Project":
            resource_id = f"/projects/{args.inputs.get('name')}"
        if args.typ == "aws:iam/accessKey:AccessKey":
            resource_id = "AKIAMOCKACCESSKEY"
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list | None]:
        return {}, None


def _robot_project(inputs: Mapping[str, Any]) -> str | None:
    if inputs.get("level") != "project":
        return None
    permissions = inputs.get("permissions") or [{}]
    return permissions[0].get("namespace")


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, also keeping what the request says about options."""

    def __init__(self, mocks: _Mocks) -> None:
        super().__init__(mocks)
        self.recorded: list[RecordedResource] = []

    def RegisterResource(self, request):  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = pulumi_mocks.rpc.deserialize_properties(request.object)
            self.recorded.append(
                RecordedResource(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    inputs=_plain(inputs),
                    parent=request.parent,
                    provider=request.provider,
                    custom=bool(request.custom),
                    protect=bool(request.protect),
                    delete_before_replace=bool(request.deleteBeforeReplace),
                    dependencies=tuple(request.dependencies),
                )
            )
        return response

    def ReadResource(self, request):  # noqa: N802 - StackReference is a read
        response = super().ReadResource(request)
        self.recorded.append(
            RecordedResource(
                type=request.type, name=request.name, urn=response.urn,
                inputs=_plain(pulumi_mocks.rpc.deserialize_properties(request.properties)),
                parent=request.parent, provider=request.provider, custom=True,
                protect=False, delete_before_replace=False, dependencies=tuple(request.dependencies),
            )
        )
        return response


def _plain(value: Any) -> Any:
    """Unwrap the SDK's secret markers so tests see plain values."""
    if isinstance(value, dict):
        if value.get("4dabf18193072939515e22adb298388d") == "1b47061264138c4ac30d75fd1eb44270":
            return _plain(value.get("value"))
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- config


def stack_file_config(stack: str) -> dict[str, Any]:
    """``config:`` of the committed ``Pulumi.<stack>.yaml``, keys without namespace."""
    document = yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())
    prefix = f"{PROJECT}:"
    return {k[len(prefix):]: v for k, v in document["config"].items() if k.startswith(prefix)}


def _engine_config(
    stack: str,
    overrides: Mapping[str, Any] | None,
    secrets: Mapping[str, str | None] | None,
    plain: Mapping[str, str] | None,
) -> tuple[dict[str, str], list[str]]:
    import json

    values: dict[str, Any] = copy.deepcopy(stack_file_config(stack))
    for key, value in (overrides or {}).items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    if "dockerHubMirror" in values and "dockerHubMirror" not in (overrides or {}):
        values["dockerHubMirror"] = {**values["dockerHubMirror"], "apiUrl": _default_hub(values["dockerHubMirror"]).url}
    secret_values = {**PLACEHOLDER_SECRETS, **(secrets or {})}
    engine: dict[str, str] = {}
    for key, value in values.items():
        # The engine hands object values to the program as JSON text.
        engine[f"{PROJECT}:{key}"] = value if isinstance(value, str) else json.dumps(value)
    secret_keys = []
    for key, value in secret_values.items():
        if value is not None:
            engine[f"{PROJECT}:{key}"] = value
            secret_keys.append(f"{PROJECT}:{key}")
    for key, value in (plain or {}).items():
        engine[f"{PROJECT}:{key}"] = value
    return engine, secret_keys


_default_hub_emulator: Any = None


def _default_hub(mirror: Mapping[str, Any]) -> Any:
    """One loopback Docker Hub per test process for the committed stack's mirror block."""
    global _default_hub_emulator
    if _default_hub_emulator is None:
        import atexit

        from tests.emulators.dockerhub import DockerHubEmulator

        emulator = DockerHubEmulator().start()
        emulator.add_namespace(mirror["namespace"], list(DEFAULT_HUB_REPOSITORIES), private={"basecamp"})
        emulator.add_user(mirror["username"], PLACEHOLDER_SECRETS["dockerHubToken"], member_of={mirror["namespace"]})
        atexit.register(emulator.stop)
        _default_hub_emulator = emulator
    return _default_hub_emulator


# --------------------------------------------------------------------------- run


def run_program(
    stack: str,
    *,
    config: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str | None] | None = None,
    plain_config: Mapping[str, str] | None = None,
    peer_outputs: Mapping[str, Any] | None | str = "default",
    new_resource: Callable[[pulumi.runtime.MockResourceArgs], tuple[str, dict] | None] | None = None,
    preview: bool = False,
) -> ProgramRun:
    """Run ``__main__.py`` for ``Pulumi.<stack>.yaml`` under mocks. See the module doc.

    ``secrets``: override placeholder secrets (None removes one). ``plain_config``:
    extra keys set WITHOUT the secret flag (to test that mistake).
    """
    peer = "iad" if stack == "chi" else "chi"
    outputs_of_peer = default_peer_outputs(peer) if peer_outputs == "default" else peer_outputs
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    run = ProgramRun()
    try:
        mocks = _Mocks(outputs_of_peer, new_resource)  # type: ignore[arg-type]
        monitor = _RecordingMonitor(mocks)
        pulumi_settings.reset_options()
        pulumi.runtime.set_mocks(
            mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor,
            organization=ORGANIZATION,
        )
        engine_config, secret_keys = _engine_config(stack, config, secrets, plain_config)
        set_all_config(engine_config, secret_keys)
        run.warnings = _capture_warnings()
        try:
            loop.run_until_complete(pulumi_stack.run_pulumi_func(_program))
        except BaseException as exc:  # noqa: BLE001 - handed to the test as data
            run.error = exc
        run.resources = list(monitor.recorded)
        if run.error is None:
            run.outputs = loop.run_until_complete(_resolve_outputs())
    finally:
        _restore_warnings()
        pulumi_settings.reset_options()
        loop.close()
        asyncio.set_event_loop(None)
    return run


def _program() -> None:
    runpy.run_path(str(REPO_ROOT / "__main__.py"), run_name="__main__")


async def _resolve_outputs() -> dict[str, StackOutput]:
    root = pulumi_settings.get_root_resource()
    resolved: dict[str, StackOutput] = {}
    for name, value in sorted((root.outputs if root else {}).items()):
        output = pulumi.Output.from_input(value)
        resolved[name] = StackOutput(value=await output.future(), secret=await output.is_secret())
    return resolved


_original_warn = pulumi.log.warn


def _capture_warnings() -> list[str]:
    captured: list[str] = []

    def warn(msg: str, *args: Any, **kwargs: Any) -> None:
        captured.append(msg)

    pulumi.log.warn = warn  # type: ignore[assignment]
    return captured


def _restore_warnings() -> None:
    pulumi.log.warn = _original_warn  # type: ignore[assignment]
