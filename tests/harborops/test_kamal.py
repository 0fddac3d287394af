"""``harborops kamal secrets`` / ``kamal registry`` with recorded stack outputs of both sites.

The fixtures are what ``pulumi stack output --json --show-secrets`` prints for the chi
stack (CI robot configured) and the iad stack (no CI robot), with placeholder secrets.
"""

from __future__ import annotations

import io
import json
import os
import pty
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from harborops.cli import main
from tests.conftest import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures"
CHI = FIXTURES / "stack-outputs-chi.json"
IAD = FIXTURES / "stack-outputs-iad.json"
CHI_MASKED = FIXTURES / "stack-outputs-chi-masked.json"
SECRET_KEYS = ("kamalRegistryPassword", "ciRegistryPassword", "replicationRobotSecret", "harborYml")


def outputs(path: Path) -> dict:
    return json.loads(path.read_text())


def all_secret_values() -> list[str]:
    values = []
    for path in (CHI, IAD):
        values += [outputs(path)[key] for key in SECRET_KEYS if key in outputs(path)]
    return values


class TerminalStdin(io.StringIO):
    """A stdin that says it is a terminal: nothing is piped in."""

    def isatty(self) -> bool:
        return True


def run(capsys, monkeypatch, *argv: str, stdin: io.StringIO | None = None) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", stdin if stdin is not None else TerminalStdin(""))
    with pytest.raises(SystemExit) as exited:
        main(["kamal", *argv])
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


def assert_no_secret_in(text: str, allowed: tuple[str, ...] = ()) -> None:
    for value in all_secret_values():
        if value not in allowed:
            assert value not in text


@pytest.fixture
def no_pulumi(monkeypatch, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture
def fake_pulumi(monkeypatch, tmp_path) -> Path:
    """A `pulumi` on PATH that prints the recorded outputs of the stack it is asked for."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "pulumi-calls"
    script = bin_dir / "pulumi"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import sys
            args = sys.argv[1:]
            with open({str(calls)!r}, "a") as log:
                log.write(" ".join(args) + "\\n")
            stack = args[args.index("--stack") + 1]
            fixtures = {{"chi": {str(CHI)!r}, "iad": {str(IAD)!r}}}
            if stack == "empty":
                print("{{}}")
            elif stack == "leaky":  # a pulumi whose error quotes a secret value
                print("error: decrypting kamalRegistryPassword=PlaceholderKamalSecretCHI0123456789ab failed", file=sys.stderr)
                sys.exit(1)
            elif stack == "locked":
                print("error: getting secrets manager: passphrase must be set with PULUMI_CONFIG_PASSPHRASE or "
                      "PULUMI_CONFIG_PASSPHRASE_FILE environment variables", file=sys.stderr)
                sys.exit(255)
            elif stack not in fixtures:
                print(f"error: no stack named '{{stack}}' found", file=sys.stderr)
                sys.exit(255)
            else:
                print(open(fixtures[stack]).read())
            """
        )
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return calls


# -- kamal secrets -----------------------------------------------------------------
def test_secrets_from_file_prints_the_password_line(capsys, monkeypatch, no_pulumi):
    code, out, err = run(capsys, monkeypatch, "secrets", "--from", str(CHI))
    assert code == 0, err
    assert out.splitlines() == [
        f"# Kamal secrets for the chi registry, from {CHI} (harborops kamal secrets)",
        "KAMAL_REGISTRY_PASSWORD=PlaceholderKamalSecretCHI0123456789ab",
    ]
    assert_no_secret_in(out, allowed=("PlaceholderKamalSecretCHI0123456789ab",))


def test_secrets_read_piped_stdin_for_the_backup_site(capsys, monkeypatch, no_pulumi):
    code, out, _ = run(capsys, monkeypatch, "secrets", "--site", "iad", stdin=io.StringIO(IAD.read_text()))
    assert code == 0
    assert out.splitlines()[1] == "KAMAL_REGISTRY_PASSWORD=PlaceholderKamalSecretIAD0123456789ab"
    assert "from stdin" in out.splitlines()[0]


def test_variable_names_are_configurable_and_extra_outputs_can_be_added(capsys, monkeypatch, no_pulumi):
    code, out, _ = run(
        capsys, monkeypatch, "secrets", "--from", str(CHI), "--password-var", "HARBOR_PASSWORD",
        "--var", "CI_REGISTRY_PASSWORD=ciRegistryPassword", "--var", "KAMAL_REGISTRY_USERNAME=kamalRegistryUsername",
    )
    assert code == 0
    assert out.splitlines()[1:] == [
        "HARBOR_PASSWORD=PlaceholderKamalSecretCHI0123456789ab",
        "CI_REGISTRY_PASSWORD=PlaceholderCiSecretCHI0123456789abcd",
        # Single quotes: Kamal's dotenv would expand "$yourorg" in a bare value.
        "KAMAL_REGISTRY_USERNAME='robot$yourorg+kamal'",
    ]


def test_ci_secret_absent_on_a_site_without_ci_robot_is_named(capsys, monkeypatch, no_pulumi):
    code, out, err = run(
        capsys, monkeypatch, "secrets", "--site", "iad", "--from", str(IAD),
        "--var", "CI_REGISTRY_PASSWORD=ciRegistryPassword",
    )
    assert code == 1
    assert out == ""
    assert "missing stack output(s): ciRegistryPassword" in err
    assert len(err.strip().splitlines()) == 1
    assert_no_secret_in(err)


def test_secrets_to_file_are_created_0600_even_with_a_permissive_umask(capsys, monkeypatch, no_pulumi, tmp_path):
    target = tmp_path / "secrets"
    target.write_text("OLD=1\n")
    target.chmod(0o644)  # an existing world-readable file must not keep its mode
    previous_umask = os.umask(0)
    try:
        code, out, err = run(capsys, monkeypatch, "secrets", "--from", str(CHI), "--output", str(target))
    finally:
        os.umask(previous_umask)
    assert code == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text().splitlines()[1] == "KAMAL_REGISTRY_PASSWORD=PlaceholderKamalSecretCHI0123456789ab"
    assert out == ""
    assert f"to {target} (mode 0600)" in err
    assert_no_secret_in(out + err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty-bin", "secrets"]  # no temp file left


def test_output_into_a_missing_directory_is_misuse(capsys, monkeypatch, no_pulumi, tmp_path):
    code, _, err = run(capsys, monkeypatch, "secrets", "--from", str(CHI), "-o", str(tmp_path / "nope" / "secrets"))
    assert code == 2
    assert "--output: directory" in err


@pytest.mark.parametrize("via_symlink", [False, True], ids=["fifo", "symlink-to-fifo"])
def test_output_that_is_not_a_regular_file_is_misuse_and_left_alone(capsys, monkeypatch, no_pulumi, tmp_path, via_symlink):
    # A rename over a FIFO or device node (think -o /dev/null) would replace it with the secrets.
    fifo = tmp_path / "ff"
    os.mkfifo(fifo)
    target = fifo
    if via_symlink:
        target = tmp_path / "link"
        target.symlink_to(fifo)
    code, out, err = run(capsys, monkeypatch, "secrets", "--from", str(CHI), "-o", str(target))
    assert code == 2
    assert out == ""
    assert err.strip().splitlines() == [
        f"error: --output: {fifo}{f' (the target of symlink {target})' if via_symlink else ''} is a FIFO, "
        "not a regular file; give a file such as .kamal/secrets"
    ]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert target.is_symlink() == via_symlink
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["empty-bin", "ff"] + (["link"] if via_symlink else []))


def test_output_through_a_symlink_replaces_the_file_it_points_to(capsys, monkeypatch, no_pulumi, tmp_path):
    real = tmp_path / "real-secrets"
    real.write_text("OLD=1\n")
    link = tmp_path / "secrets"
    link.symlink_to(real)
    code, _, err = run(capsys, monkeypatch, "secrets", "--from", str(CHI), "-o", str(link))
    assert code == 0, err
    assert link.is_symlink()
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    assert "KAMAL_REGISTRY_PASSWORD=" in real.read_text()


def test_output_through_a_dangling_symlink_is_misuse(capsys, monkeypatch, no_pulumi, tmp_path):
    link = tmp_path / "secrets"
    link.symlink_to(tmp_path / "gone")
    code, _, err = run(capsys, monkeypatch, "secrets", "--from", str(CHI), "-o", str(link))
    assert code == 2
    assert err.startswith("error: --output: ") and "does not exist" in err
    assert not (tmp_path / "gone").exists()


@pytest.mark.parametrize("command", ["secrets", "registry"])
def test_from_a_file_that_is_not_utf8_is_one_line(capsys, monkeypatch, no_pulumi, tmp_path, command):
    bad = tmp_path / "j"
    bad.write_bytes(b"\xff{}")
    code, out, err = run(capsys, monkeypatch, command, "--from", str(bad))
    assert code == 1  # as for stdin that is not JSON
    assert out == ""
    assert err.strip().splitlines() == [f"error: {bad}: not valid JSON (not UTF-8 text)"]


def test_stdin_that_is_not_utf8_is_one_line(no_pulumi):
    done = subprocess.run(
        [sys.executable, "-m", "harborops", "kamal", "secrets", "--from", "-"],
        cwd=REPO_ROOT, input=b"\xff{}", capture_output=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONIOENCODING": "utf-8"},
    )
    assert done.returncode == 1
    assert done.stderr.decode().strip().splitlines() == ["error: stdin: not valid JSON (not UTF-8 text)"]


def run_on_a_terminal(*argv: str) -> tuple[int, str]:
    """Run the CLI as a user would at a terminal: stdout is a real pty."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "harborops", "kamal", *argv],
        cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "200"},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return process.wait(timeout=30), b"".join(chunks).decode()


def test_refuses_to_print_secrets_to_a_terminal():
    code, screen = run_on_a_terminal("secrets", "--from", str(CHI))
    assert code == 2
    assert "refusing to print secrets to a terminal" in screen
    assert_no_secret_in(screen)


def test_force_tty_prints_to_a_terminal():
    code, screen = run_on_a_terminal("secrets", "--from", str(CHI), "--force-tty")
    assert code == 0
    assert "KAMAL_REGISTRY_PASSWORD=PlaceholderKamalSecretCHI0123456789ab" in screen


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{}", "the stack has no outputs; it has not been deployed yet (pulumi up --stack chi)"),
        ("", "no stack outputs (empty input)"),
        (CHI.read_text()[:200], "not valid JSON (line"),
        ("[1, 2]", "expected a JSON object of stack outputs, got a list"),
        (json.dumps({k: v for k, v in outputs(CHI).items() if k != "kamalRegistryPassword"}),
         "missing stack output(s): kamalRegistryPassword"),
        (CHI_MASKED.read_text(), "kamalRegistryPassword masked as [secret]; run pulumi with --show-secrets"),
    ],
    ids=["undeployed", "empty", "truncated", "not-an-object", "missing-password", "masked"],
)
def test_bad_input_is_one_clear_line_without_secrets(capsys, monkeypatch, no_pulumi, text, expected):
    code, out, err = run(capsys, monkeypatch, "secrets", "--from", "-", stdin=io.StringIO(text))
    assert code == 1
    assert out == ""
    assert expected in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert_no_secret_in(err)


def test_outputs_of_the_other_site_are_refused(capsys, monkeypatch, no_pulumi):
    code, out, err = run(capsys, monkeypatch, "secrets", "--site", "iad", "--from", str(CHI))
    assert code == 2
    assert out == ""
    assert "--site iad: these outputs are from site 'chi' (siteName)" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--var", "NOEQUALS"], "expected NAME=outputName"),
        (["--var", "1BAD=kamalRegistryUsername"], "variable name '1BAD'"),
        (["--var", "KAMAL_REGISTRY_PASSWORD=kamalRegistryPassword"], "variable given twice"),
        (["--stack", "chi"], "--from and --stack"),
        (["--site", "ord"], "ord"),
    ],
)
def test_misuse_exits_2_naming_the_flag(capsys, monkeypatch, no_pulumi, argv, expected):
    code, _, err = run(capsys, monkeypatch, "secrets", "--from", str(CHI), *argv)
    assert code == 2
    assert expected in err


def test_no_input_and_no_pulumi_is_misuse(capsys, monkeypatch, no_pulumi):
    code, _, err = run(capsys, monkeypatch, "secrets", "--site", "iad")
    assert code == 2
    assert "pulumi stack output --json --show-secrets --stack iad" in err
    code, _, err = run(capsys, monkeypatch, "secrets", "--stack", "iad")
    assert code == 2
    assert "--stack: `pulumi` is not on PATH" in err


# -- running pulumi ----------------------------------------------------------------
def test_failover_is_one_command_when_pulumi_is_on_path(capsys, monkeypatch, fake_pulumi, tmp_path):
    target = tmp_path / "kamal-secrets"
    code, _, err = run(capsys, monkeypatch, "secrets", "--site", "iad", "--stack", "iad", "-o", str(target))
    assert code == 0, err
    assert fake_pulumi.read_text().splitlines() == ["stack output --json --show-secrets --stack iad"]
    assert "KAMAL_REGISTRY_PASSWORD=PlaceholderKamalSecretIAD0123456789ab" in target.read_text()
    code, out, _ = run(capsys, monkeypatch, "registry", "--site", "iad", "--stack", "iad")
    assert code == 0
    assert yaml.safe_load(out)["registry"]["server"] == "registry-iad.yourorg.example"


def run_with_stdin_from_dev_null(*argv: str) -> subprocess.CompletedProcess:
    """As under cron or CI: stdin is not a terminal, and nothing is piped in."""
    return subprocess.run(
        [sys.executable, "-m", "harborops", "kamal", *argv],
        cwd=REPO_ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "200"},
    )


def test_stack_runs_pulumi_when_stdin_is_dev_null(fake_pulumi, tmp_path):
    target = tmp_path / "secrets"
    done = run_with_stdin_from_dev_null("secrets", "--site", "chi", "--stack", "chi", "-o", str(target))
    assert done.returncode == 0, done.stderr
    assert fake_pulumi.read_text().splitlines() == ["stack output --json --show-secrets --stack chi"]
    assert target.read_text().splitlines()[1] == "KAMAL_REGISTRY_PASSWORD=PlaceholderKamalSecretCHI0123456789ab"


def test_without_stack_or_from_an_empty_stdin_is_read_and_pulumi_is_not_run(fake_pulumi, tmp_path):
    done = run_with_stdin_from_dev_null("secrets", "--site", "chi", "-o", str(tmp_path / "secrets"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: stdin: no stack outputs (empty input); pass --stack chi to run pulumi, or --from FILE"
    ]
    assert not fake_pulumi.exists()  # never run unless asked for with --stack
    assert not (tmp_path / "secrets").exists()


def test_without_stack_or_from_on_a_terminal_says_what_to_pass(capsys, monkeypatch, fake_pulumi):
    code, out, err = run(capsys, monkeypatch, "registry", "--site", "iad")
    assert code == 2
    assert out == ""
    assert err.strip().splitlines() == [
        "error: no stack outputs: pass --stack iad to run pulumi, --from FILE, or pipe "
        "`pulumi stack output --json --show-secrets --stack iad` in"
    ]
    assert not fake_pulumi.exists()


def test_stack_and_from_stdin_together_are_misuse(capsys, monkeypatch, fake_pulumi):
    code, _, err = run(capsys, monkeypatch, "secrets", "--stack", "chi", "--from", "-", stdin=io.StringIO(CHI.read_text()))
    assert code == 2
    assert "--from and --stack: give one source of stack outputs, not both" in err
    assert not fake_pulumi.exists()


def test_explicit_stack_name_is_passed_to_pulumi(capsys, monkeypatch, fake_pulumi):
    code, _, _ = run(capsys, monkeypatch, "registry", "--stack", "iad", "--site", "iad")
    assert code == 0
    assert fake_pulumi.read_text().splitlines() == ["stack output --json --show-secrets --stack iad"]


def test_pulumi_failure_and_undeployed_stack_are_reported(capsys, monkeypatch, fake_pulumi):
    code, out, err = run(capsys, monkeypatch, "secrets", "--stack", "organization/harbor-platform/ord")
    assert code == 1
    assert out == ""
    assert err.strip().splitlines() == [
        "error: `pulumi stack output --stack organization/harbor-platform/ord` failed (exit 255): "
        "no stack named 'organization/harbor-platform/ord' found"
    ]
    code, _, err = run(capsys, monkeypatch, "secrets", "--stack", "empty")
    assert code == 1
    assert "has not been deployed yet" in err


# -- kamal registry ----------------------------------------------------------------
@pytest.mark.parametrize(("site", "fixture"), [("chi", CHI), ("iad", IAD)])
def test_registry_block_for_deploy_yml(capsys, monkeypatch, no_pulumi, site, fixture):
    code, out, _ = run(capsys, monkeypatch, "registry", "--site", site, "--from", str(fixture))
    assert code == 0
    assert out == (
        "registry:\n"
        f"  server: registry-{site}.yourorg.example\n"
        "  username: robot$yourorg+kamal\n"
        "  password:\n"
        "  - KAMAL_REGISTRY_PASSWORD\n"
    )
    assert yaml.safe_load(out) == {
        "registry": {
            "server": f"registry-{site}.yourorg.example",
            "username": "robot$yourorg+kamal",
            "password": ["KAMAL_REGISTRY_PASSWORD"],
        }
    }
    assert_no_secret_in(out)


def test_registry_needs_no_secrets_and_follows_the_password_var(capsys, monkeypatch, no_pulumi):
    code, out, _ = run(capsys, monkeypatch, "registry", "--from", str(CHI_MASKED), "--password-var", "HARBOR_PASSWORD")
    assert code == 0
    assert yaml.safe_load(out)["registry"]["password"] == ["HARBOR_PASSWORD"]


def test_registry_names_missing_outputs(capsys, monkeypatch, no_pulumi):
    partial = {k: v for k, v in outputs(IAD).items() if not k.startswith("kamalRegistry")}
    code, _, err = run(capsys, monkeypatch, "registry", "--site", "iad", "--from", "-", stdin=io.StringIO(json.dumps(partial)))
    assert code == 1
    assert "missing stack output(s): kamalRegistryServer, kamalRegistryUsername" in err


def test_pulumi_stderr_is_never_echoed(capsys, monkeypatch, fake_pulumi):
    """pulumi's message can quote a value: only known causes, in our own words, are shown."""
    code, out, err = run(capsys, monkeypatch, "secrets", "--stack", "leaky")
    assert code == 1
    assert out == ""
    assert err.strip().splitlines() == [
        "error: `pulumi stack output --stack leaky` failed (exit 1): run `pulumi stack output --stack leaky` "
        "to see why (its message is not repeated: it may quote secrets)"
    ]
    assert_no_secret_in(err)
    code, _, err = run(capsys, monkeypatch, "secrets", "--stack", "locked")
    assert code == 1
    assert err.strip().endswith(
        "failed (exit 255): the stack's secrets need a passphrase: set PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", "error: --output: must not be empty (e.g. --output .kamal/secrets)"), (".", "error: --output: . is a directory")],
    ids=["empty", "a-directory"],
)
def test_output_that_is_not_a_file_path_is_misuse_before_pulumi_runs(capsys, monkeypatch, fake_pulumi, value, expected):
    code, out, err = run(capsys, monkeypatch, "secrets", "--stack", "chi", "-o", value)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith(expected), err
    assert not fake_pulumi.exists()


def dotenv_names(text: str) -> set[str]:
    return {line.split("=", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def referenced_secrets(registry: dict) -> set[str]:
    """The names Kamal looks up in .kamal/secrets: list values of username/password (a string is a literal)."""
    return {name for key in ("username", "password") if isinstance(registry.get(key), list) for name in registry[key]}


@pytest.mark.parametrize("site", ["chi", "iad"])
@pytest.mark.parametrize("password_var", [[], ["--password-var", "HARBOR_PASSWORD"]], ids=["default", "renamed"])
def test_registry_block_and_secrets_file_together_give_kamal_everything(
    capsys, monkeypatch, fake_pulumi, tmp_path, site, password_var
):
    target = tmp_path / "secrets"
    code, _, err = run(capsys, monkeypatch, "secrets", "--site", site, "--stack", site, "-o", str(target), *password_var)
    assert code == 0, err
    code, out, err = run(capsys, monkeypatch, "registry", "--site", site, "--stack", site, *password_var)
    assert code == 0, err
    registry = yaml.safe_load(out)["registry"]
    recorded = outputs(CHI if site == "chi" else IAD)
    assert registry["server"] == recorded["kamalRegistryServer"]
    assert registry["username"] == recorded["kamalRegistryUsername"]  # a literal, not a secret reference
    assert referenced_secrets(registry) == {password_var[1] if password_var else "KAMAL_REGISTRY_PASSWORD"}
    assert referenced_secrets(registry) <= dotenv_names(target.read_text())
