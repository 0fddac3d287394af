"""Harbor connection settings: flags first, then the environment.

    HARBOR_URL        the Harbor address, with or without /api/v2.0   (flag: --url)
    HARBOR_USERNAME   the Harbor user                                  (flag: --username)
    HARBOR_PASSWORD   the password; environment only, never a flag, never printed

The seed's monitor script set HARBOR_USER but read HARBOR_USERNAME; we read
HARBOR_USERNAME and say so when only HARBOR_USER is set.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from harborops.clients.harbor import HarborClient, normalize_base_url
from harborops.errors import UsageError

ENV_PREFIX = "HARBOR_"

UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="Harbor address, with or without /api/v2.0 (env: HARBOR_URL).", show_default=False),
]
UsernameOption = Annotated[
    str | None,
    typer.Option("--username", "-u", show_default=False,
                 help="Harbor user (env: HARBOR_USERNAME). The password is read from HARBOR_PASSWORD only."),
]
MAX_SECONDS = 3600.0  # the most any seconds flag accepts: beyond, time arithmetic overflows (inf, 1e12)


def finite_seconds(value: float | None) -> float | None:
    """A typer callback for a seconds flag: NaN passes click's range check, so refuse it here."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a number of seconds")
    return value


def SecondsOption(flag: str, help: str, *, min: float) -> Any:  # noqa: A002, N802 (typer's own names)
    """A seconds flag bounded to [min, MAX_SECONDS] and finite: a bad value is one error line, exit 2."""
    return typer.Option(flag, min=min, max=MAX_SECONDS, callback=finite_seconds, help=help)


TimeoutOption = Annotated[
    float,
    SecondsOption("--timeout", "Seconds to wait for each Harbor answer (0.1 to 3600).", min=0.1),
]


class HarborSettings(BaseSettings):
    """What the environment says. `_env_prefix` picks another set (e.g. HARBOR_LEFT_)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", case_sensitive=False)

    url: str | None = None
    username: str | None = None
    password: SecretStr | None = None


@dataclass(frozen=True)
class HarborConnection:
    """Everything needed to talk to one Harbor. Its repr never shows the password."""

    url: str
    username: str
    password: SecretStr
    # Where each came from, for "check HARBOR_RIGHT_PASSWORD" rather than a guess.
    username_source: str = f"{ENV_PREFIX}USERNAME"
    password_source: str = f"{ENV_PREFIX}PASSWORD"

    def client(self, *, timeout: float = 10.0, max_connections: int = 10) -> HarborClient:
        return HarborClient(self.url, self.username, self.password, timeout=timeout,
                            max_connections=max_connections,
                            credentials_hint=f"{self.username_source} / {self.password_source}")


def resolve_connection(
    url: str | None,
    username: str | None,
    *,
    url_flag: str = "--url",
    env_prefix: str = ENV_PREFIX,
) -> HarborConnection:
    """Flags win over the environment; the password comes from the environment only.

    `env_prefix` other than HARBOR_ (per-site credentials) falls back to HARBOR_ for
    the username and password. Anything missing is a UsageError naming what to set.
    """
    specific = HarborSettings(_env_prefix=env_prefix)  # type: ignore[call-arg]
    common = HarborSettings() if env_prefix != ENV_PREFIX else specific
    url_env = f"{env_prefix}URL"

    chosen_url = url or specific.url
    if not chosen_url:
        raise UsageError(f"no Harbor URL: pass {url_flag} or set {url_env}")
    normalized = normalize_base_url(chosen_url, flag=url_flag if url else url_env)

    chosen_user = username or specific.username or common.username
    user_source = ("--username" if username
                   else f"{env_prefix}USERNAME" if specific.username else f"{ENV_PREFIX}USERNAME")
    if not chosen_user:
        hint = " (HARBOR_USER is set, but harborops reads HARBOR_USERNAME)" if os.environ.get("HARBOR_USER") else ""
        raise UsageError(f"no Harbor username: pass --username or set {ENV_PREFIX}USERNAME{hint}")

    password = specific.password or common.password
    if password is None or not password.get_secret_value():
        names = f"{env_prefix}PASSWORD" + (f" or {ENV_PREFIX}PASSWORD" if env_prefix != ENV_PREFIX else "")
        raise UsageError(f"no Harbor password: set {names} in the environment")
    password_source = f"{env_prefix}PASSWORD" if specific.password else f"{ENV_PREFIX}PASSWORD"
    return HarborConnection(normalized, chosen_user, password, user_source, password_source)
