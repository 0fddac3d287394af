"""Shared pytest setup. Loopback emulators live in tests/emulators, helpers in tests/support."""

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# No test may reach the internet: make any proxy settings from the machine inert
# for loopback traffic.
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")


# A guard for "no test ever reaches the internet": inside the pytest process, a
# connection to anything but loopback fails loudly instead of quietly going out.
import ipaddress  # noqa: E402
import socket  # noqa: E402

import pytest  # noqa: E402

_real_connect = socket.socket.connect


def _is_loopback(address) -> bool:
    if not isinstance(address, tuple):
        return True  # unix sockets
    host = address[0]
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _loopback_only_connect(self, address):
    if not _is_loopback(address):
        raise ConnectionRefusedError(f"test tried to reach {address!r}: only loopback is allowed in tests")
    return _real_connect(self, address)


@pytest.fixture(autouse=True, scope="session")
def _no_network():
    socket.socket.connect = _loopback_only_connect
    yield
    socket.socket.connect = _real_connect


@pytest.fixture(autouse=True)
def _forget_registered_secrets():
    """Secrets a client registered for masking belong to that test only: a password such as
    'wrong' registered by one test would otherwise mask that word in every later test."""
    yield
    from harborops.redact import forget_registered

    forget_registered()
