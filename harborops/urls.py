"""One check for every http(s) URL a user hands harborops (HARBOR_URL, sites diff's
arguments, DOCKERHUB_BASE_URL), so that a typo is one line naming where it came from
instead of httpx's InvalidURL traceback or a misleading "cannot reach".

Example::

    http_url_problem("http://127.0.0.1:99999")  # -> "'http://127.0.0.1:99999': the port must be a number from 1 to 65535"
    http_url_problem("https://harbor.chi.example.com")  # -> None
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

EXAMPLE = "https://registry.example.com"


def http_url_problem(url: str, *, credentials_in: str = "the environment") -> str | None:
    """What is wrong with `url` as an http(s) base URL, or None when nothing is.

    The URL is quoted in the answer only when it holds no credentials (no "@" before the path).
    """
    raw = url.strip()
    authority = raw.split("://", 1)[-1].split("/", 1)[0]  # also without a scheme: "user:pw@host"
    if "@" in authority:  # user[:password]@host, before any parsing can fail
        return f"put credentials in {credentials_in}, not in the URL"
    shown = repr(raw)
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in raw):
        return f"{shown} contains a space or control character"
    try:
        parts = urlsplit(raw)
        port = parts.port  # raises ValueError for "abc" or 99999
    except ValueError as exc:  # "Port could not be cast...", "Port out of range...", "Invalid IPv6 URL"
        if str(exc).startswith("Port"):
            return f"{shown}: the port must be a number from 1 to 65535"
        return f"{shown} is not a valid URL ({exc}); e.g. {EXAMPLE}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{shown} is not an http(s) URL such as {EXAMPLE}"
    if port is not None and not 1 <= port <= 65535:
        return f"{shown}: the port must be a number from 1 to 65535"
    try:
        httpx.URL(raw)
    except httpx.InvalidURL:  # anything else httpx would refuse later, e.g. a bad character in the host
        return f"{shown} is not a valid URL; e.g. {EXAMPLE}"
    return None
