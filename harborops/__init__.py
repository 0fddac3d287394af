"""harborops: operations CLI for the Harbor sites (python -m harborops)."""
