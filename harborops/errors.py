"""The exception family every harborops command raises for an expected failure.

The CLI turns these into one line on stderr and an exit code, never a traceback.
"""


class HarborOpsError(Exception):
    """An operational failure: exit code 1."""

    exit_code = 1


class UsageError(HarborOpsError):
    """The user asked for something that cannot work as given: exit code 2."""

    exit_code = 2
