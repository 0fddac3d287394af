"""The dynamic-host harness itself: it must run the real host from outside the repository."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from components.dynamic import ship_by_value
from tests.support.dynamic_host import DynamicHostCallError, DynamicProviderHost


class EchoByReference(ResourceProvider):
    """Defined in an importable test module: dill pickles it as ``tests.components...``."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult("echo", dict(props))


@ship_by_value
class EchoByValue(ResourceProvider):
    serialize_as_secret_always = False

    def configure(self, req: Any) -> None:
        import os

        self.suffix = req.config.get("suffix") or os.environ.get("ECHO_SUFFIX", "")

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult("echo", {"text": self._render(props["text"], self.suffix)})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=olds.get("text") != news.get("text"), replaces=[])

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, {"text": props["text"]})

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult({"text": self._render(news["text"], self.suffix)})

    @staticmethod
    def _render(text: str, suffix: str) -> str:
        return json.dumps(text + suffix)


@pytest.fixture(scope="module")
def host() -> Any:
    with DynamicProviderHost(env={"ECHO_SUFFIX": "!"}) as running:
        yield running


def test_provider_pickled_by_reference_fails_outside_the_repository(host: DynamicProviderHost) -> None:
    with pytest.raises(DynamicHostCallError) as failure:
        host.create(host.serialize(EchoByReference()), {"text": "hi"})
    assert "No module named 'tests'" in failure.value.details


def test_provider_shipped_by_value_runs_every_call_through_the_real_host() -> None:
    with DynamicProviderHost(env={"ECHO_SUFFIX": "!"}) as host:
        provider = host.serialize(EchoByValue())
        assert host.check(provider, {}, {"text": "hi"}) == {"inputs": {"text": "hi"}, "failures": []}
        assert host.create(provider, {"text": "hi"}) == {"id": "echo", "outs": {"text": '"hi!"'}}
        assert host.diff(provider, "echo", {"text": "hi"}, {"text": "hi"})["changes"] == "DIFF_NONE"
        assert host.diff(provider, "echo", {"text": "hi"}, {"text": "yo"})["changes"] == "DIFF_SOME"
        assert host.read(provider, "echo", {"text": "hi"}) == {"id": "echo", "outs": {"text": "hi"}}
        assert host.update(provider, "echo", {"text": "hi"}, {"text": "yo"}) == {"outs": {"text": '"yo!"'}}
        host.delete(provider, "echo", {"text": "yo"})


def test_configure_reaches_the_provider_before_it_is_unpickled() -> None:
    with DynamicProviderHost() as host:
        host.configure({"harbor-platform:suffix": "?"})
        provider = host.serialize(EchoByValue())
        assert host.create(provider, {"text": "hi"})["outs"] == {"text": '"hi?"'}
