"""Output that cannot be written (a full disk, a reader that went away) ends the run with
one line or quietly, never a traceback or Python's "Exception ignored ..." at exit."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.emulators.harbor import HarborEmulator

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")


@pytest.fixture
def harbor_env() -> Iterator[tuple[HarborEmulator, dict[str, str]]]:
    with HarborEmulator() as emulator:
        env = dict(os.environ, HARBOR_URL=emulator.url, HARBOR_USERNAME="admin", HARBOR_PASSWORD=emulator.password)
        yield emulator, env


def harborops(*argv: str) -> list[str]:
    return [sys.executable, "-m", "harborops", *argv]


def many_executions(emulator: HarborEmulator, count: int) -> None:
    for i in range(count):
        emulator.start_execution(emulator.add_policy(f"mirror-dockerhub-r{i:03d}", task_seconds=100_000).id)


@pytest.mark.parametrize("executions", [0, 300], ids=["tiny output, fails at the final flush", "large output"])
def test_a_full_disk_is_one_error_line_exit_1(
    harbor_env: tuple[HarborEmulator, dict[str, str]], executions: int
) -> None:
    emulator, env = harbor_env
    many_executions(emulator, executions)

    with open("/dev/full", "w") as full:
        result = subprocess.run(harborops("replication", "status", "--all", "--json"), stdout=full,
                                stderr=subprocess.PIPE, text=True, env=env, timeout=60)

    assert result.returncode == 1
    assert result.stderr == "error: No space left on device\n"


@pytest.mark.parametrize("argv", [["kamal", "registry", "--help"], ["pulls", "report", "--help"], ["--help"]])
def test_every_command_shares_the_net(argv: list[str]) -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run(harborops(*argv), stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)

    assert (result.returncode, result.stderr) == (1, "error: No space left on device\n")


def test_a_reader_that_goes_away_ends_the_run_quietly(harbor_env: tuple[HarborEmulator, dict[str, str]]) -> None:
    emulator, env = harbor_env
    many_executions(emulator, 600)  # ~200 KB of JSON: far more than a pipe holds, so the write must fail

    process = subprocess.Popen(harborops("replication", "status", "--all", "--json"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env)
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()  # `| head -1`
    process.stdout.close()
    stderr = process.stderr.read().decode()
    code = process.wait(timeout=60)

    assert first == b"[\n"
    assert (code, stderr) == (1, "")


@pytest.mark.parametrize("argv", [["replication", "status", "--json"], ["--help"]])
def test_a_reader_gone_before_the_first_write_ends_the_run_quietly(
    harbor_env: tuple[HarborEmulator, dict[str, str]], argv: list[str]
) -> None:
    """`| true`: the few bytes sit in stdout's buffer until the final flush, after click's own EPIPE handling."""
    _, env = harbor_env
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(harborops(*argv), stdout=write_end, stderr=subprocess.PIPE, text=True, env=env,
                                timeout=60)
    finally:
        os.close(write_end)

    assert (result.returncode, result.stderr) == (1, "")
