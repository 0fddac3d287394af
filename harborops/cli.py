"""Wires the command groups together. Each group lives in its own module."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from harborops import kamal, mirror, pulls, replication, s3, sites
from harborops.errors import HarborOpsError
from harborops.redact import redact

app = typer.Typer(
    name="harborops",
    help="Operate the Harbor sites: mirror pacing, replication, drift, S3 checks, Kamal hand-off, pull times.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
    add_completion=False,
)
app.add_typer(mirror.app, name="mirror")
app.add_typer(replication.app, name="replication")
app.add_typer(sites.app, name="sites")
app.add_typer(s3.app, name="s3")
app.add_typer(kamal.app, name="kamal")
app.add_typer(pulls.app, name="pulls")

err = Console(stderr=True, highlight=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point: expected failures become one line on stderr and an exit code."""
    try:
        app(args=argv, prog_name="harborops")
    except HarborOpsError as exc:
        # redact(): a server may echo a password in its error text; escape(): messages may
        # quote brackets (e.g. pulumi's "[secret]"), which rich would eat as markup
        err.print(f"[red]error:[/red] {escape(redact(str(exc)))}", markup=True, soft_wrap=True)
        sys.exit(exc.exit_code)
