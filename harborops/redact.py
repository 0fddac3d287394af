"""Keep secrets out of everything harborops prints.

A server may echo what it was sent: a Harbor (or a proxy in front of it) answering
401 "bad login admin:<password>" would otherwise have its message printed word for
word. So every message that reaches the user passes through `redact()`, which
replaces each secret this process knows with `***`:

- the secret environment variables harborops (or boto3) reads, listed in
  SECRET_ENV_VARS, looked up at call time (case-insensitively, as pydantic-settings
  reads them);
- any secret a client was built with, registered with `register()` (e.g. a
  password handed to HarborClient directly).

Also replaced: a secret's URL-encoded and JSON-escaped forms, in which a server's
echo may come back.

Example::

    register(SecretStr("hunter2!"))
    redact("bad login admin:hunter2!")   # -> "bad login admin:***"
"""

from __future__ import annotations

import json
import os
import threading
from urllib.parse import quote, quote_plus

from pydantic import SecretStr

MASK = "***"
SECRET_ENV_VARS = (
    "HARBOR_PASSWORD",
    "HARBOR_LEFT_PASSWORD",
    "HARBOR_RIGHT_PASSWORD",
    "DOCKERHUB_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)

_registered: set[str] = set()
_lock = threading.Lock()


def register(secret: SecretStr | str | None) -> None:
    """Remember a secret so that `redact()` hides it from then on."""
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if value:
        with _lock:
            _registered.add(value)


def forget_registered() -> None:
    """Drop every secret `register()` remembered (one CLI run is one process; tests are not)."""
    with _lock:
        _registered.clear()


def known_secrets() -> set[str]:
    wanted = {name.upper() for name in SECRET_ENV_VARS}
    from_env = {value for name, value in os.environ.items() if name.upper() in wanted and value}
    with _lock:
        return from_env | _registered


def redact(text: str) -> str:
    """`text` with every known secret (and its URL/JSON-escaped forms) replaced by ***."""
    forms: set[str] = set()
    for secret in known_secrets():
        forms.update((secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]))
    # Longest first: a secret that contains another must not be left half-masked.
    for form in sorted(forms, key=len, reverse=True):
        if form:
            text = text.replace(form, MASK)
    return text
