"""AuditLogPurge: sends include_event_types (what Harbor >= 2.13 purges by), against the
loopback Harbor emulator, by direct calls and through the real dynamic-provider host."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from components.audit_log_purge import AuditLogPurgeProvider
from tests.emulators.harbor import HarborEmulator, harbor  # noqa: F401 - fixture
from tests.support.dynamic_host import DynamicHostCallError, DynamicProviderHost

ADMIN_PASSWORD = "Harbor12345"  # the emulator's admin password


class _Config:
    """What the engine hands configure(): the stack's config, read by key."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def get(self, key: str) -> Any:  # the host's pulumi.dynamic.Config has only get()
        value = self.values.get(key)
        return value if value is None or isinstance(value, str) else json.dumps(value)


def _provider(password: str = ADMIN_PASSWORD) -> AuditLogPurgeProvider:
    provider = AuditLogPurgeProvider()
    provider.configure(
        SimpleNamespace(config=_Config({"adminPassword": password, "site": {"adminUsername": "admin"}}))
    )
    return provider


def _props(url: str, **changes: Any) -> dict[str, Any]:
    return {
        "harborUrl": url,
        "schedule": "Daily",
        "retentionHours": 720,
        "includeEventTypes": ["pull_artifact", "create_artifact", "delete_artifact"],
        **changes,
    }


def _sent_parameters(emulator: HarborEmulator) -> dict[str, Any]:
    return json.loads(emulator.purge_schedule["job_parameters"])


def test_create_sends_include_event_types_and_the_legacy_key(harbor: HarborEmulator) -> None:  # noqa: F811
    created = _provider().create(_props(harbor.url))
    assert _sent_parameters(harbor) == {
        "audit_retention_hour": 720,
        "dry_run": False,
        "include_event_types": "create_artifact,delete_artifact,pull_artifact",
        "include_operations": "create,delete,pull",
    }
    assert harbor.purge_schedule["schedule"] == {
        "type": "Daily",
        "cron": "0 0 0 * * *",
        "next_scheduled_time": harbor.purge_schedule["schedule"]["next_scheduled_time"],
    }
    assert created.outs == {
        "harborUrl": harbor.url,
        "includeEventTypes": ["create_artifact", "delete_artifact", "pull_artifact"],
        "retentionHours": 720,
        "schedule": "Daily",
    }
    [post] = harbor.api_requests("POST", "/system/purgeaudit/schedule")
    assert post.status == 201
    # No session cookie rides along on a write: Harbor's CSRF check would refuse it.
    assert "cookie" not in {k.lower() for k in post.headers}


def test_update_puts_a_custom_cron_and_read_reports_it(harbor: HarborEmulator) -> None:  # noqa: F811
    provider = _provider()
    created = provider.create(_props(harbor.url))
    provider.update(created.id, created.outs, _props(harbor.url, schedule="0 30 1 * * *", retentionHours=48))
    assert harbor.purge_schedule["schedule"]["type"] == "Custom"
    assert harbor.purge_schedule["schedule"]["cron"] == "0 30 1 * * *"
    read = provider.read(created.id, _props(harbor.url))
    assert read.outs["schedule"] == "0 30 1 * * *" and read.outs["retentionHours"] == 48
    [put] = harbor.api_requests("PUT", "/system/purgeaudit/schedule")
    assert put.status == 200


def test_delete_turns_the_schedule_off_and_read_then_reports_it_gone(harbor: HarborEmulator) -> None:  # noqa: F811
    provider = _provider()
    created = provider.create(_props(harbor.url))
    provider.delete(created.id, created.outs)
    assert harbor.purge_schedule is None
    assert provider.read(created.id, _props(harbor.url)).id is None


def test_diff_compares_only_owned_inputs() -> None:
    provider = AuditLogPurgeProvider()
    olds = {**_props("https://h"), "__provider": "old-pickle", "extra": 1}
    same = provider.diff("id", olds, {**_props("https://h"), "includeEventTypes": ["delete_artifact", "create_artifact", "pull_artifact"]})
    assert same.changes is False
    changed = provider.diff("id", olds, _props("https://h", retentionHours=1))
    assert changed.changes is True and changed.replaces == []
    moved = provider.diff("id", olds, _props("https://other"))
    assert moved.replaces == ["harborUrl"]


def test_wrong_password_fails_with_harbors_answer_and_no_secret(harbor: HarborEmulator) -> None:  # noqa: F811
    with pytest.raises(RuntimeError) as failure:
        _provider(password="not-the-password-x9").create(_props(harbor.url))
    message = str(failure.value)
    assert "answered 401" in message
    assert "not-the-password-x9" not in message


def test_every_call_through_the_real_dynamic_provider_host(harbor: HarborEmulator) -> None:  # noqa: F811
    # Credentials come from the stack config the engine sends to Configure, never from inputs.
    with DynamicProviderHost() as host:
        host.configure(
            {
                "harbor-platform:adminPassword": ADMIN_PASSWORD,
                "harbor-platform:site": json.dumps({"adminUsername": "admin"}),
            }
        )
        provider = host.serialize(AuditLogPurgeProvider())
        checked = host.check(provider, olds={}, news=_props(harbor.url))
        created = host.create(provider, checked["inputs"])
        assert _sent_parameters(harbor)["include_event_types"] == "create_artifact,delete_artifact,pull_artifact"
        assert ADMIN_PASSWORD not in json.dumps(created)
        diff = host.diff(provider, created["id"], olds=created["outs"], news=_props(harbor.url, retentionHours=24))
        assert diff["changes"] == "DIFF_SOME"
        host.update(provider, created["id"], olds=created["outs"], news=_props(harbor.url, retentionHours=24))
        assert _sent_parameters(harbor)["audit_retention_hour"] == 24
        read = host.read(provider, created["id"], _props(harbor.url))
        assert read["outs"]["retentionHours"] == 24
        host.delete(provider, created["id"], read["outs"])
        assert harbor.purge_schedule is None
        # Removed behind Pulumi's back: read says "gone" (empty id), so `up` recreates it.
        assert host.read(provider, created["id"], _props(harbor.url))["id"] == ""


def test_host_reports_unreachable_harbor_without_credentials() -> None:
    with DynamicProviderHost(env={"HARBOR_PASSWORD": "env-secret-q7"}) as host:
        host.configure({})
        provider = host.serialize(AuditLogPurgeProvider())
        with pytest.raises(DynamicHostCallError) as failure:
            host.create(provider, _props("http://127.0.0.1:9"))
    assert "failed" in failure.value.details
    assert "env-secret-q7" not in failure.value.details
