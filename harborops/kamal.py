"""harborops kamal: hand a site's stack outputs to Kamal.

``secrets`` prints (or writes, mode 0600) the ``.kamal/secrets`` lines; ``registry``
prints the ``registry:`` block of ``config/deploy.yml``. Both take ``--site chi|iad``,
so failing over to Ashburn is the same command with ``--site iad``.

Input is the JSON of ``pulumi stack output --json --show-secrets``, from exactly one
place: ``--stack NAME`` runs pulumi, ``--from FILE`` reads a file, ``--from -`` reads
stdin; with neither, stdin is read when it is not a terminal (a pipe, a file, or
``/dev/null`` under cron), else the command says what to pass. Giving both is misuse.
Secret values never appear in an error message; only output *names* do, and
pulumi's own stderr is never echoed (it can quote values).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console

from harborops.errors import HarborOpsError, UsageError

app = typer.Typer(
    no_args_is_help=True,
    help="Hand stack outputs to Kamal: .kamal/secrets lines and the deploy.yml registry block.",
    pretty_exceptions_show_locals=False,  # locals hold registry passwords
)
err = Console(stderr=True, highlight=False)

DEFAULT_PASSWORD_VAR = "KAMAL_REGISTRY_PASSWORD"
PASSWORD_OUTPUT = "kamalRegistryPassword"
SERVER_OUTPUT = "kamalRegistryServer"
USERNAME_OUTPUT = "kamalRegistryUsername"
MASKED = "[secret]"  # what pulumi prints for a secret without --show-secrets
VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Values that need no quoting in a dotenv file. Anything else is single-quoted:
# Kamal reads .kamal/secrets with dotenv, which expands $VAR and $(cmd) in bare and
# double-quoted values. A Harbor robot login is "robot$project+name", so unquoted it
# would silently lose "$project".
BARE_VALUE = re.compile(r"^[A-Za-z0-9_.,:/@%+=-]*$")
PULUMI_TIMEOUT_SECONDS = 120


class Site(str, Enum):
    chi = "chi"
    iad = "iad"


class StackOutputsError(HarborOpsError):
    """The stack outputs are missing, malformed or incomplete."""


# -- reading stack outputs --------------------------------------------------------
#: pulumi failures recognised by their stderr, each with *our* wording. pulumi's own
#: lines are never shown: a message can quote config or output values.
PULUMI_FAILURES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"no stack named '[^']*' found"), "no stack named '{stack}' found"),
    (re.compile(r"incorrect passphrase", re.I), "incorrect passphrase for the stack's secrets (PULUMI_CONFIG_PASSPHRASE)"),
    (re.compile(r"passphrase must be set|PULUMI_CONFIG_PASSPHRASE", re.I),
     "the stack's secrets need a passphrase: set PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE"),
    (re.compile(r"PULUMI_ACCESS_TOKEN|not logged in|pulumi login", re.I),
     "pulumi is not logged in: run `pulumi login` or set PULUMI_ACCESS_TOKEN"),
    (re.compile(r"no Pulumi(\.yaml)? project", re.I),
     "no Pulumi project here: run from the directory with Pulumi.yaml or pass --stack org/project/stack"),
)


def pulumi_failure_summary(stderr: str, stack: str) -> str:
    """A known cause in our own words, or a pointer to run pulumi directly."""
    for pattern, summary in PULUMI_FAILURES:
        if pattern.search(stderr):
            return summary.format(stack=stack)
    return f"run `pulumi stack output --stack {stack}` to see why (its message is not repeated: it may quote secrets)"


def _run_pulumi(stack: str) -> tuple[str, str]:
    if not stack.strip():
        raise UsageError("--stack: must not be empty")
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise UsageError("--stack: `pulumi` is not on PATH; pipe its JSON in or use --from FILE instead")
    command = [pulumi, "stack", "output", "--json", "--show-secrets", "--stack", stack]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PULUMI_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired as exc:
        raise HarborOpsError(f"`pulumi stack output --stack {stack}` did not finish in {PULUMI_TIMEOUT_SECONDS}s") from exc
    if done.returncode != 0:
        summary = pulumi_failure_summary(done.stderr, stack)
        raise StackOutputsError(f"`pulumi stack output --stack {stack}` failed (exit {done.returncode}): {summary}")
    return done.stdout, f"pulumi stack {stack}"


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Not the offending bytes: the text may hold secrets.
        raise StackOutputsError(f"{where}: not valid JSON (not UTF-8 text)") from None


def _read_stdin() -> str:
    """stdin as UTF-8, the same check as for --from FILE (a text-only stream is read as is)."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:
        return sys.stdin.read()
    return _decode(buffer.read(), "stdin")


def _read_source(source: str | None, stack: str | None, site: Site) -> tuple[str, str]:
    """Return (raw JSON text, a description of where it came from)."""
    if source is not None and stack is not None:
        raise UsageError("--from and --stack: give one source of stack outputs, not both")
    if stack is not None:
        return _run_pulumi(stack)
    if source == "-":
        return _read_stdin(), "stdin"
    if source is not None:
        if not source.strip():
            raise UsageError("--from: must not be empty (a file, or - for stdin)")
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise UsageError(f"--from: cannot read {source}: {exc.strerror or exc}") from exc
        return _decode(data, source), source
    if not sys.stdin.isatty():
        return _read_stdin(), "stdin"
    raise UsageError(
        f"no stack outputs: pass --stack {site.value} to run pulumi, --from FILE, or pipe "
        f"`pulumi stack output --json --show-secrets --stack {site.value}` in"
    )


def parse_outputs(text: str, where: str, site: Site) -> dict[str, Any]:
    """Parse and sanity-check the flat JSON object pulumi prints."""
    if not text.strip():
        hint = f"; pass --stack {site.value} to run pulumi, or --from FILE" if where == "stdin" else ""
        raise StackOutputsError(f"{where}: no stack outputs (empty input){hint}")
    try:
        outputs = json.loads(text)
    except json.JSONDecodeError as exc:
        # The position only: the message must not quote the text, which holds secrets.
        raise StackOutputsError(f"{where}: not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(outputs, dict):
        raise StackOutputsError(f"{where}: expected a JSON object of stack outputs, got a {type(outputs).__name__}")
    if not outputs:
        raise StackOutputsError(
            f"{where}: the stack has no outputs; it has not been deployed yet (pulumi up --stack {site.value})"
        )
    recorded_site = outputs.get("siteName")
    if recorded_site is not None and recorded_site != site.value:
        raise UsageError(f"--site {site.value}: these outputs are from site {recorded_site!r} (siteName)")
    return outputs


def load_outputs(source: str | None, stack: str | None, site: Site) -> tuple[dict[str, Any], str]:
    text, where = _read_source(source, stack, site)
    return parse_outputs(text, where, site), where


def require(outputs: dict[str, Any], names: list[str], where: str) -> dict[str, str]:
    """The named outputs as strings, or one error naming every one that is missing."""
    missing = [name for name in names if outputs.get(name) in (None, "")]
    if missing:
        raise StackOutputsError(
            f"{where}: missing stack output(s): {', '.join(missing)} "
            "(deployed with an older program, or no CI robot configured?)"
        )
    masked = [name for name in names if outputs[name] == MASKED]
    if masked:
        raise StackOutputsError(f"{where}: {', '.join(masked)} masked as {MASKED}; run pulumi with --show-secrets")
    wrong_type = [name for name in names if not isinstance(outputs[name], str)]
    if wrong_type:
        raise StackOutputsError(f"{where}: stack output(s) {', '.join(wrong_type)} are not strings")
    return {name: outputs[name] for name in names}


# -- .kamal/secrets ---------------------------------------------------------------
def parse_var_mappings(password_var: str, extra: list[str]) -> dict[str, str]:
    """``--password-var`` plus ``--var NAME=output`` as {variable: output name}, in order."""
    mapping = {password_var: PASSWORD_OUTPUT}
    for item in extra:
        name, sep, output = item.partition("=")
        if not sep or not output:
            raise UsageError(f"--var {item!r}: expected NAME=outputName, e.g. CI_REGISTRY_PASSWORD=ciRegistryPassword")
        if name in mapping:
            raise UsageError(f"--var {name}: variable given twice")
        mapping[name] = output
    for name in mapping:
        if not VAR_NAME.match(name):
            raise UsageError(f"variable name {name!r}: use letters, digits and underscores, not starting with a digit")
    return mapping


def dotenv_line(name: str, value: str, output: str) -> str:
    if BARE_VALUE.match(value):
        return f"{name}={value}"
    if "'" in value or "\n" in value or "\r" in value:
        raise StackOutputsError(f"stack output {output}: contains a quote or newline that .kamal/secrets cannot hold")
    return f"{name}='{value}'"


def secrets_text(outputs: dict[str, Any], mapping: dict[str, str], where: str, site: Site) -> str:
    values = require(outputs, list(dict.fromkeys(mapping.values())), where)
    lines = [f"# Kamal secrets for the {site.value} registry, from {where} (harborops kamal secrets)"]
    lines += [dotenv_line(name, values[output], output) for name, output in mapping.items()]
    return "\n".join(lines) + "\n"


def output_path(raw: str) -> Path:
    """``--output`` as a file path, checked before any work is done."""
    if not raw.strip():
        raise UsageError("--output: must not be empty (e.g. --output .kamal/secrets)")
    path = Path(raw)
    if path.is_dir() or raw.endswith(("/", os.sep)):
        raise UsageError(f"--output: {raw} is a directory; give a file such as {Path(raw, 'secrets')}")
    link = raw if path.is_symlink() else None
    if link is not None:
        path = path.resolve()  # the file the link points to is replaced; the link stays
    refuse_non_regular(path, link)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise UsageError(f"--output: directory {directory} does not exist")
    return path


def refuse_non_regular(path: Path, link: str | None = None) -> None:
    """An existing ``--output`` must be a regular file; ``link`` is the symlink given, if any.

    The file is replaced by a rename, so a FIFO, socket or device node (``/dev/null``!)
    would itself be replaced by a regular file holding the secrets.
    """
    via = f" (the target of symlink {link})" if link is not None else ""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if link is not None:
            raise UsageError(f"--output: {path}{via} does not exist; give a regular file") from None
        return
    except OSError as exc:
        raise UsageError(f"--output: cannot use {path}{via}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(mode):
        kind = (
            "a FIFO" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file"
        )
        raise UsageError(f"--output: {path}{via} is {kind}, not a regular file; give a file such as .kamal/secrets")


def write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, created with mode 0600 from the first byte.

    A temporary file in the same directory is opened with O_EXCL and mode 0600, then
    renamed over ``path``: an existing 0644 file is replaced, not reused, and a
    failure never leaves a half-written secrets file.
    """
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise UsageError(f"--output: directory {directory} does not exist")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)  # mkstemp: O_EXCL, 0600
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        refuse_non_regular(path)  # again: it may have changed while pulumi ran
        os.replace(temporary, path)
    except UsageError:
        Path(temporary).unlink(missing_ok=True)
        raise
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise HarborOpsError(f"--output: cannot write {path}: {exc.strerror or exc}") from exc


# -- commands ---------------------------------------------------------------------
SiteOption = Annotated[Site, typer.Option("--site", help="Which registry: chi (primary) or iad (backup).")]
FromOption = Annotated[
    str | None, typer.Option("--from", help="File with `pulumi stack output --json --show-secrets`; - for stdin.")
]
StackOption = Annotated[
    str | None, typer.Option("--stack", help="Run `pulumi stack output` for this stack, e.g. chi or iad.")
]
PasswordVarOption = Annotated[
    str, typer.Option("--password-var", help="Variable holding the registry password.")
]


@app.command()
def secrets(
    site: SiteOption = Site.chi,
    source: FromOption = None,
    stack: StackOption = None,
    password_var: PasswordVarOption = DEFAULT_PASSWORD_VAR,
    var: Annotated[
        list[str] | None,
        typer.Option("--var", help="Extra NAME=output line, repeatable, e.g. CI_PW=ciRegistryPassword."),
    ] = None,
    output: Annotated[str | None, typer.Option(
            "--output", "-o",
            help="Write here (mode 0600) instead of stdout; an existing target must be a regular file (a symlink is followed).",
        )] = None,
    force_tty: Annotated[bool, typer.Option("--force-tty", help="Print secrets even when stdout is a terminal.")] = False,
) -> None:
    """Print the .kamal/secrets lines for a site's registry.

    Input: --stack NAME runs pulumi; --from FILE (or - for stdin) reads JSON; with neither, stdin is read if it is not a terminal. pulumi never runs without --stack.

    Example: harborops kamal secrets --site iad --stack iad -o .kamal/secrets
    """
    mapping = parse_var_mappings(password_var, var or [])
    target = output_path(output) if output is not None else None
    if target is None and sys.stdout.isatty() and not force_tty:
        raise UsageError("refusing to print secrets to a terminal: use --output .kamal/secrets, a pipe, or --force-tty")
    outputs, where = load_outputs(source, stack, site)
    text = secrets_text(outputs, mapping, where, site)
    if target is None:
        sys.stdout.write(text)
        return
    write_private_file(target, text)
    err.print(f"wrote {len(mapping)} variable(s) for site {site.value} to {target} (mode 0600)", soft_wrap=True)


@app.command()
def registry(
    site: SiteOption = Site.chi,
    source: FromOption = None,
    stack: StackOption = None,
    password_var: PasswordVarOption = DEFAULT_PASSWORD_VAR,
) -> None:
    """Print the registry: block for config/deploy.yml (the password is a secret reference).

    The login is written as it is; the password names the variable `secrets` writes. Input as for `secrets`: --stack NAME, --from FILE or -, or piped stdin.

    Example: harborops kamal registry --site iad --stack iad
    """
    if not VAR_NAME.match(password_var):
        raise UsageError(f"--password-var {password_var!r}: use letters, digits and underscores")
    outputs, where = load_outputs(source, stack, site)
    values = require(outputs, [SERVER_OUTPUT, USERNAME_OUTPUT], where)
    block = {
        "registry": {
            "server": values[SERVER_OUTPUT],
            "username": values[USERNAME_OUTPUT],
            "password": [password_var],
        }
    }
    sys.stdout.write(yaml.safe_dump(block, sort_keys=False, default_flow_style=False))
