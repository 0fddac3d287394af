"""harborops kamal: hand a site's stack outputs to Kamal.

``secrets`` prints (or writes, mode 0600) the ``.kamal/secrets`` lines; ``registry``
prints the ``registry:`` block of ``config/deploy.yml``. Both take ``--site chi|iad``,
so failing over to Ashburn is the same command with ``--site iad``.

Input is the JSON of ``pulumi stack output --json --show-secrets``: from ``--from
FILE`` (``-`` for stdin), piped on stdin, or by running ``pulumi`` for ``--stack``
(default: the site's stack) when it is on PATH. Secret values never appear in an
error message; only output *names* do.
"""

from __future__ import annotations

import json
import os
import re
import shutil
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
def _run_pulumi(stack: str) -> tuple[str, str]:
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise UsageError("--stack: `pulumi` is not on PATH; pipe its JSON in or use --from FILE instead")
    command = [pulumi, "stack", "output", "--json", "--show-secrets", "--stack", stack]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PULUMI_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired as exc:
        raise HarborOpsError(f"`pulumi stack output --stack {stack}` did not finish in {PULUMI_TIMEOUT_SECONDS}s") from exc
    if done.returncode != 0:
        # pulumi's own message (e.g. "no stack named 'iad' found") names the problem;
        # its stderr never carries output values.
        first_line = next((line for line in done.stderr.splitlines() if line.strip()), "no message")
        raise StackOutputsError(f"`pulumi stack output --stack {stack}` failed (exit {done.returncode}): {first_line.strip()}")
    return done.stdout, f"pulumi stack {stack}"


def _read_source(source: str | None, stack: str | None, site: Site) -> tuple[str, str]:
    """Return (raw JSON text, a description of where it came from)."""
    if source is not None and stack is not None:
        raise UsageError("--from and --stack: give one source of stack outputs, not both")
    if source == "-":
        return sys.stdin.read(), "stdin"
    if source is not None:
        try:
            return Path(source).read_text(encoding="utf-8"), source
        except OSError as exc:
            raise UsageError(f"--from: cannot read {source}: {exc.strerror or exc}") from exc
    if stack is not None:
        return _run_pulumi(stack)
    if not sys.stdin.isatty():
        return sys.stdin.read(), "stdin"
    if shutil.which("pulumi") is not None:
        return _run_pulumi(site.value)
    raise UsageError(
        f"no stack outputs: pipe `pulumi stack output --json --show-secrets --stack {site.value}` in, "
        "or pass --from FILE or --stack NAME"
    )


def parse_outputs(text: str, where: str, site: Site) -> dict[str, Any]:
    """Parse and sanity-check the flat JSON object pulumi prints."""
    if not text.strip():
        raise StackOutputsError(f"{where}: no stack outputs (empty input)")
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
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise HarborOpsError(f"--output: cannot write {path}: {exc.strerror or exc}") from exc


# -- commands ---------------------------------------------------------------------
SiteOption = Annotated[Site, typer.Option("--site", help="Which registry: chi (primary) or iad (backup).")]
FromOption = Annotated[
    str | None, typer.Option("--from", help="File with `pulumi stack output --json --show-secrets`; - for stdin.")
]
StackOption = Annotated[
    str | None, typer.Option("--stack", help="Run pulumi for this stack (default when nothing is piped in: the site).")
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
        typer.Option("--var", help="Extra NAME=outputName line, repeatable, e.g. CI_REGISTRY_PASSWORD=ciRegistryPassword."),
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here (mode 0600) instead of stdout.")] = None,
    force_tty: Annotated[bool, typer.Option("--force-tty", help="Print secrets even when stdout is a terminal.")] = False,
) -> None:
    """Print the .kamal/secrets lines for a site's registry.

    Example: pulumi stack output --json --show-secrets --stack iad | harborops kamal secrets --site iad -o .kamal/secrets
    """
    mapping = parse_var_mappings(password_var, var or [])
    if output is None and sys.stdout.isatty() and not force_tty:
        raise UsageError("refusing to print secrets to a terminal: use --output .kamal/secrets, a pipe, or --force-tty")
    outputs, where = load_outputs(source, stack, site)
    text = secrets_text(outputs, mapping, where, site)
    if output is None:
        sys.stdout.write(text)
        return
    write_private_file(output, text)
    err.print(f"wrote {len(mapping)} variable(s) for site {site.value} to {output} (mode 0600)", soft_wrap=True)


@app.command()
def registry(
    site: SiteOption = Site.chi,
    source: FromOption = None,
    stack: StackOption = None,
    password_var: PasswordVarOption = DEFAULT_PASSWORD_VAR,
) -> None:
    """Print the registry: block for config/deploy.yml (the password is a secret reference).

    Example: harborops kamal registry --site iad --from iad.json
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
