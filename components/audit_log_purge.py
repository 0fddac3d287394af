"""AuditLogPurge: Harbor's audit-log purge schedule, set through Harbor's own API.

Why not ``harbor.PurgeAuditLog``: pulumiverse-harbor 3.10.21 only sends
``include_operations``. Harbor 2.13 moved audit logs to event types
(goharbor/harbor#21608) and its purge job filters on ``include_event_types``, so the
provider's schedule runs and purges nothing. This dynamic resource PUTs
``/api/v2.0/system/purgeaudit/schedule`` with both keys: ``include_event_types`` for
Harbor ≥2.13 and ``include_operations``, which Harbor's handler still requires.

Dynamic-provider rules this file keeps (the provider is pickled with dill and runs in
the engine's provider host):
- no client, lock or Output on the instance; an httpx client is built per request
  (and never carries a session cookie into a write: Harbor's CSRF check rejects that);
- credentials come from ``configure()`` (the stack's ``adminPassword`` secret and
  ``site.adminUsername``) or the ``HARBOR_USERNAME``/``HARBOR_PASSWORD`` environment,
  never from resource inputs, so they never land in state;
- ``diff`` compares only the four inputs it owns.

Harbor keeps exactly one purge schedule, so the resource is a singleton per site:
create adopts an existing schedule, delete sets the schedule type to ``None``.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from components.dynamic import ship_by_value

# Methods below spell out their constants instead of reading module globals: the class
# is shipped by value (ship_by_value) and must not depend on this module being importable.


@ship_by_value
class AuditLogPurgeProvider(ResourceProvider):
    """Talks to one Harbor's ``/api/v2.0/system/purgeaudit/schedule``."""

    serialize_as_secret_always = False

    def configure(self, req: ConfigureRequest) -> None:
        import json
        import os

        # The host's Config has only get(); an object value may arrive as JSON text.
        site = req.config.get("site") or {}
        if isinstance(site, str):
            site = json.loads(site)
        self.username = os.environ.get("HARBOR_USERNAME") or site.get("adminUsername") or "admin"
        self.password = os.environ.get("HARBOR_PASSWORD") or req.config.get("adminPassword") or ""
        self.verify_tls = not site.get("insecure", False)

    # ------------------------------------------------------------ pure helpers

    @staticmethod
    def schedule_body(props: dict[str, Any]) -> dict[str, Any]:
        """The PUT/POST body for ``props`` (sorted event types, so it is stable)."""
        schedule = props["schedule"]
        presets = {"Hourly": "0 0 * * * *", "Daily": "0 0 0 * * *", "Weekly": "0 0 0 * * 0"}
        kind, cron = (schedule, presets[schedule]) if schedule in presets else ("Custom", schedule)
        return {
            "schedule": {"type": kind, "cron": cron},
            "parameters": {
                "audit_retention_hour": int(props["retentionHours"]),
                "include_event_types": ",".join(sorted(props["includeEventTypes"])),
                "include_operations": "create,delete,pull",
                "dry_run": False,
            },
        }

    @staticmethod
    def outputs(harbor_url: str, current: dict[str, Any]) -> dict[str, Any]:
        """State from Harbor's GET answer: small, sorted, only what we own."""
        schedule = current.get("schedule") or {}
        parameters = current.get("job_parameters") or "{}"
        if isinstance(parameters, str):
            parameters = json.loads(parameters)
        kind = schedule.get("type", "")
        event_types = parameters.get("include_event_types", "")
        return {
            "harborUrl": harbor_url,
            "includeEventTypes": sorted(t for t in event_types.split(",") if t),
            "retentionHours": int(parameters.get("audit_retention_hour", 0)),
            "schedule": kind if kind in ("Hourly", "Daily", "Weekly") else schedule.get("cron", ""),
        }

    # ------------------------------------------------------------ HTTP

    def _call(self, method: str, harbor_url: str, body: dict[str, Any] | None = None) -> Any:
        import httpx

        path = "/api/v2.0/system/purgeaudit/schedule"
        # A fresh client per request: no cookie from a GET may ride along on a write.
        with httpx.Client(
            base_url=harbor_url,
            auth=(self.username, self.password),
            verify=self.verify_tls,
            timeout=30.0,
            headers={"Accept": "application/json"},
        ) as client:
            try:
                response = client.request(method, path, json=body)
            except httpx.HTTPError as exc:
                raise RuntimeError(f"Harbor {method} {path} at {harbor_url} failed: {exc}") from None
        if response.status_code >= 400:
            raise RuntimeError(
                f"Harbor {method} {path} at {harbor_url} answered {response.status_code}: "
                f"{response.text[:300]}"
            )
        return response.json() if response.content else None

    def _current(self, harbor_url: str) -> dict[str, Any] | None:
        current = self._call("GET", harbor_url)
        # Harbor answers 200 with an empty body when no schedule exists.
        kind = (current or {}).get("schedule", {}).get("type")
        return current if kind in ("Hourly", "Daily", "Weekly", "Custom") else None

    def _apply(self, props: dict[str, Any]) -> dict[str, Any]:
        harbor_url = props["harborUrl"]
        method = "PUT" if self._current(harbor_url) is not None else "POST"
        self._call(method, harbor_url, self.schedule_body(props))
        return self.outputs(harbor_url, self._current(harbor_url) or {})

    # ------------------------------------------------------------ CRUD

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        owned = ("harborUrl", "schedule", "retentionHours", "includeEventTypes")
        failures = [CheckFailure(key, f"{key} is required") for key in owned if not news.get(key)]
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._apply(props)
        return CreateResult(f"{props['harborUrl']}/purgeaudit", outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        current = self._current(props["harborUrl"])
        if current is None:
            return ReadResult(None, {})  # gone: the engine drops it and recreates on up
        return ReadResult(id_, self.outputs(props["harborUrl"], current))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        def normal(props: dict[str, Any], key: str) -> Any:
            value = props.get(key)
            return sorted(value) if isinstance(value, list) else value

        owned = ("harborUrl", "schedule", "retentionHours", "includeEventTypes")
        changed = [k for k in owned if normal(olds, k) != normal(news, k)]
        replaces = [k for k in changed if k == "harborUrl"]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=True)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._apply(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        # Harbor has no DELETE for the schedule; type None switches it off.
        off = {
            "schedule": {"type": "None", "cron": ""},
            "parameters": {"audit_retention_hour": 0, "include_operations": "create,delete,pull"},
        }
        self._call("PUT", props["harborUrl"], off)


class AuditLogPurge(pulumi.dynamic.Resource):
    """The site's audit-log purge schedule (a singleton in Harbor).

    Example::

        AuditLogPurge("chi-audit-log-purge", harbor_url="https://registry-chi...",
                      schedule="Daily", retention_hours=720,
                      include_event_types=["create_artifact", "pull_artifact"])
    """

    harborUrl: pulumi.Output[str]
    schedule: pulumi.Output[str]
    retentionHours: pulumi.Output[int]
    includeEventTypes: pulumi.Output[list[str]]

    def __init__(
        self,
        name: str,
        *,
        harbor_url: pulumi.Input[str],
        schedule: str,
        retention_hours: int,
        include_event_types: list[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "harborUrl": harbor_url,
            "schedule": schedule,
            "retentionHours": retention_hours,
            "includeEventTypes": sorted(include_event_types),
        }
        super().__init__(AuditLogPurgeProvider(), name, props, opts)
