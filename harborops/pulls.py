"""harborops pulls: not implemented yet (see the open issue)."""

import typer

app = typer.Typer(no_args_is_help=True, help="(pulls: not implemented yet)")
