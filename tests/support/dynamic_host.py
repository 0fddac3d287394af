"""Drive a Pulumi dynamic provider through the REAL provider host, as the engine does.

The engine runs ``python -u -m pulumi.dynamic`` (via the ``pulumi-resource-pulumi-python``
plugin), reads the gRPC port the host prints on stdout, calls ``Configure`` and then
``Check``/``Diff``/``Create``/``Read``/``Update``/``Delete`` with the provider serialized
into the ``__provider`` property. This harness does the same, with two deliberate choices:

* the host runs from a fresh temporary directory OUTSIDE the repository and with
  ``PYTHONPATH`` removed, so a provider that was pickled by reference to a repo module
  (``components.foo.Provider``) fails here instead of on a CI runner;
* the provider is serialized with the SDK's own ``serialize_provider`` exactly as
  ``pulumi.dynamic.Resource.__init__`` does, so what the host unpickles is what the state holds.

Every call takes and returns plain Python dicts; the ``__provider`` key is added on the
way in and stripped on the way out. A failure inside the provider surfaces as
:class:`DynamicHostCallError` carrying the host's traceback text.

Example::

    with DynamicProviderHost(env={"MY_TOKEN": "x"}) as host:
        provider = host.serialize(MyProvider())
        checked = host.check(provider, olds={}, news={"a": 1})
        created = host.create(provider, checked["inputs"])
        diff = host.diff(provider, created["id"], olds=created["outs"], news={"a": 2})
"""

from __future__ import annotations

import asyncio
import os
import select
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Coroutine, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import grpc
from google.protobuf import struct_pb2
from pulumi.dynamic import ResourceProvider
from pulumi.dynamic.dynamic import serialize_provider as _sdk_serialize_provider
from pulumi.runtime import proto, rpc
from pulumi.runtime._serialization import _serialize
from pulumi.runtime.proto import provider_pb2_grpc

PROVIDER_KEY = "__provider"
_REPO_ROOT = Path(__file__).resolve().parents[2]
_T = TypeVar("_T")
#: The URN every request names: the host only echoes it back in errors.
_URN = "urn:pulumi:test::harbor-platform::pulumi-python:dynamic:Resource::r"

_DIFF_NAMES = {
    proto.DiffResponse.DIFF_UNKNOWN: "DIFF_UNKNOWN",
    proto.DiffResponse.DIFF_NONE: "DIFF_NONE",
    proto.DiffResponse.DIFF_SOME: "DIFF_SOME",
}


class DynamicHostError(RuntimeError):
    """The host process could not be started or did not answer."""


class DynamicHostCallError(DynamicHostError):
    """A provider method raised inside the host; ``details`` is the host's traceback text."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{method} failed in the dynamic provider host ({code.name}):\n{details}")
        self.method = method
        self.code = code
        self.details = details


def serialize_provider(provider: ResourceProvider) -> str:
    """Serialize ``provider`` the way ``pulumi.dynamic.Resource`` does before registering it."""
    serialized, _contains_secrets = _serialize(True, _sdk_serialize_provider, provider)
    return serialized


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    # A private loop: never touch the caller's (possibly Pulumi-mock-owned) event loop.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def _to_struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    return _run(rpc.serialize_properties(dict(props), {}))


def _from_struct(struct: struct_pb2.Struct, keep_unknowns: bool = False) -> dict[str, Any]:
    props = rpc.deserialize_properties(struct, keep_unknowns) or {}
    props = dict(props)
    props.pop(PROVIDER_KEY, None)
    return props


def _host_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    # The repository must not be importable in the host: only what dill shipped by value
    # and what is installed in the interpreter may be used.
    env.pop("PYTHONPATH", None)
    env.setdefault("PULUMI_PROJECT", "harbor-platform")
    env.update(extra or {})
    return env


class DynamicProviderHost:
    """A running ``python -m pulumi.dynamic`` process and a gRPC stub to it."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        start_timeout: float = 30.0,
        call_timeout: float = 60.0,
    ) -> None:
        self._env = _host_env(env)
        self._python = python
        self._start_timeout = start_timeout
        self._call_timeout = call_timeout
        self._workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: grpc.Channel | None = None
        self._stub: provider_pb2_grpc.ResourceProviderStub | None = None
        self.port: int | None = None

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> DynamicProviderHost:
        self._workdir = Path(tempfile.mkdtemp(prefix="dynamic-host-"))
        if _REPO_ROOT in self._workdir.parents:
            raise DynamicHostError(f"host working directory {self._workdir} is inside the repository")
        self._process = subprocess.Popen(
            [self._python, "-u", "-m", "pulumi.dynamic"],
            cwd=self._workdir,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.port = self._read_port()
        self._channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        grpc.channel_ready_future(self._channel).result(timeout=self._start_timeout)
        self._stub = provider_pb2_grpc.ResourceProviderStub(self._channel)
        return self

    def _read_port(self) -> int:
        assert self._process is not None and self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], self._start_timeout)
        line = self._process.stdout.readline() if ready else b""
        if not line.strip().isdigit():
            stderr = self._stop_and_collect_stderr()
            raise DynamicHostError(f"dynamic provider host did not print its port; stderr:\n{stderr}")
        return int(line)

    def _stop_and_collect_stderr(self) -> str:
        if self._process is None:
            return ""
        if self._process.poll() is None:
            self._process.terminate()
        try:
            _, stderr = self._process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            _, stderr = self._process.communicate()
        return (stderr or b"").decode(errors="replace")

    def stop(self) -> str:
        """Stop the host; returns what it wrote on stderr (useful to assert nothing leaked)."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        stderr = self._stop_and_collect_stderr()
        self._process = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        return stderr

    def __enter__(self) -> DynamicProviderHost:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- helpers -------------------------------------------------------------------
    @staticmethod
    def serialize(provider: ResourceProvider) -> str:
        return serialize_provider(provider)

    def _call(self, method: str, request: Any) -> Any:
        if self._stub is None:
            raise DynamicHostError("host is not started")
        try:
            return getattr(self._stub, method)(request, timeout=self._call_timeout)
        except grpc.RpcError as exc:
            raise DynamicHostCallError(method, exc.code(), exc.details() or "") from None

    @staticmethod
    def _with_provider(provider: str, props: Mapping[str, Any]) -> dict[str, Any]:
        # An explicit ``__provider`` in props wins: olds from state may carry an older build.
        return {PROVIDER_KEY: provider, **props}

    # -- the provider protocol -----------------------------------------------------
    def configure(self, config: Mapping[str, Any]) -> None:
        """Send stack config (keys as ``project:key``) the way the engine does before any call."""
        variables = {k: v if isinstance(v, str) else str(v) for k, v in config.items()}
        request = proto.ConfigureRequest(variables=variables, args=_to_struct(config))
        self._call("Configure", request)

    def check(self, provider: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> dict[str, Any]:
        request = proto.CheckRequest(
            urn=_URN,
            olds=_to_struct(self._with_provider(provider, olds) if olds else {}),
            news=_to_struct(self._with_provider(provider, news)),
        )
        response = self._call("Check", request)
        return {
            "inputs": _from_struct(response.inputs),
            "failures": [{"property": f.property, "reason": f.reason} for f in response.failures],
        }

    def diff(self, provider: str, id_: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> dict[str, Any]:
        request = proto.DiffRequest(
            id=id_,
            urn=_URN,
            olds=_to_struct(self._with_provider(provider, olds)),
            news=_to_struct(self._with_provider(provider, news)),
        )
        response = self._call("Diff", request)
        return {
            "changes": _DIFF_NAMES[response.changes],
            "replaces": sorted(response.replaces),
            "delete_before_replace": response.deleteBeforeReplace,
        }

    def create(self, provider: str, props: Mapping[str, Any]) -> dict[str, Any]:
        request = proto.CreateRequest(
            urn=_URN,
            properties=_to_struct(self._with_provider(provider, props)),
        )
        response = self._call("Create", request)
        return {"id": response.id, "outs": _from_struct(response.properties)}

    def read(self, provider: str, id_: str, props: Mapping[str, Any]) -> dict[str, Any]:
        request = proto.ReadRequest(
            id=id_,
            urn=_URN,
            properties=_to_struct(self._with_provider(provider, props)),
        )
        response = self._call("Read", request)
        result: dict[str, Any] = {"id": response.id, "outs": _from_struct(response.properties)}
        if response.HasField("inputs"):
            result["inputs"] = _from_struct(response.inputs)
        return result

    def update(self, provider: str, id_: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> dict[str, Any]:
        request = proto.UpdateRequest(
            id=id_,
            urn=_URN,
            olds=_to_struct(self._with_provider(provider, olds)),
            news=_to_struct(self._with_provider(provider, news)),
        )
        response = self._call("Update", request)
        return {"outs": _from_struct(response.properties)}

    def delete(self, provider: str, id_: str, props: Mapping[str, Any]) -> None:
        request = proto.DeleteRequest(
            id=id_,
            urn=_URN,
            properties=_to_struct(self._with_provider(provider, props)),
        )
        self._call("Delete", request)
