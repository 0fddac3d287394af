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
