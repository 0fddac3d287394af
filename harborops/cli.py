"""Wires the command groups together. Each group lives in its own module.

A group's module is imported only when that group runs (or when the top-level
--help lists them all): `harborops replication status` need not load boto3 or the
mirror planner first.
"""

from __future__ import annotations

import importlib
import os
import sys

import click
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from harborops.errors import HarborOpsError
from harborops.redact import redact

# command name -> the module whose `app` holds it, in the order --help lists them
GROUPS = {
    "mirror": "harborops.mirror",
    "replication": "harborops.replication",
    "sites": "harborops.sites",
    "s3": "harborops.s3",
    "kamal": "harborops.kamal",
    "pulls": "harborops.pulls",
}


class LazyGroups(TyperGroup):
    """The top-level group: each sub-group is built from its module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*GROUPS, *super().list_commands(ctx)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in GROUPS:
            return super().get_command(ctx, cmd_name)
        command = typer.main.get_group(importlib.import_module(GROUPS[cmd_name]).app)
        command.name = cmd_name
        return command


app = typer.Typer(
    name="harborops",
    cls=LazyGroups,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
    add_completion=False,
)


@app.callback()
def _harborops() -> None:
    """Operate the Harbor sites: mirror pacing, replication, drift, S3 checks, Kamal hand-off, pull times."""


err = Console(stderr=True, highlight=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point: expected failures, click's usage errors included, become one line on stderr and an exit code.

    Output that cannot be written is the last resort caught here: a reader that went
    away (`| head -1`) ends the run quietly with exit 1, as Python's own advice on
    SIGPIPE does; any other OSError (a full disk: `>/dev/full`) is one `error:` line,
    exit 1. stdout is flushed here, so that neither shows up in Python's at-exit flush
    as "Exception ignored ...".
    """
    try:
        code = _run(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_to_devnull()
        sys.exit(1)
    except OSError as exc:
        _stdout_to_devnull()
        where = f": {exc.filename}" if exc.filename else ""
        try:
            _error_line(f"{exc.strerror or exc}{where}")
        except OSError:
            pass  # stderr is gone too: the exit code is all that is left
        sys.exit(1)
    sys.exit(code)  # as standalone mode did: always SystemExit


def _run(argv: list[str] | None) -> int:
    try:
        # standalone_mode=False: click raises its usage errors instead of printing typer's boxed,
        # multi-line panel, and returns the code of a typer.Exit instead of calling sys.exit
        code = app(args=argv, prog_name="harborops", standalone_mode=False)
    except HarborOpsError as exc:
        _error_line(str(exc))
        return exc.exit_code
    except typer.TyperException as exc:  # the base of (typer's own copy of) click's exceptions
        if type(exc).__name__ != "NoArgsIsHelpError":  # its help text is already printed
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if exc.exit_code == 2 and ctx is not None else ""
            _error_line(" ".join(exc.format_message().split()) + hint)
        return exc.exit_code
    except typer.Abort:
        err.print("aborted")
        return 1
    return code if type(code) is int else 0


def _stdout_to_devnull() -> None:
    """Point fd 1 at /dev/null, so that the interpreter's final flush of what is still buffered succeeds."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real fd (tests capture stdout in memory)
        pass


def _error_line(message: str) -> None:
    # redact(): a server may echo a password in its error text; escape(): messages may
    # quote brackets (e.g. pulumi's "[secret]"), which rich would eat as markup
    err.print(f"[red]error:[/red] {escape(redact(message))}", markup=True, soft_wrap=True)
