"""`--help` reads well at 80 and 120 columns: paragraphs reflow, metavars and examples are whole.

typer keeps a single newline inside a docstring paragraph, so a paragraph written over two
source lines breaks at that point at every width; each paragraph is one source line.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys

import pytest

from harborops import kamal, mirror, pulls, s3
from tests.conftest import REPO_ROOT

COMMANDS = {
    ("kamal", "secrets"): kamal.secrets,
    ("kamal", "registry"): kamal.registry,
    ("s3", "verify"): s3.verify,
    ("mirror", "trigger"): mirror.trigger,
    ("pulls", "report"): pulls.report,
}
BOX = re.compile(r"[│╭╮╰╯─]")


def help_text(columns: int, *command: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "harborops", *command, "--help"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": str(columns), "NO_COLOR": "1", "TERM": "dumb"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def lines(text: str) -> list[str]:
    return [" ".join(BOX.sub(" ", line).split()) for line in text.splitlines()]


def option_row(text: str, option: str) -> str:
    return next(line for line in lines(text) if line.startswith(option + " "))


@pytest.mark.parametrize("command", list(COMMANDS), ids=" ".join)
def test_each_docstring_paragraph_is_one_line_and_reflows(command: tuple[str, ...]) -> None:
    paragraphs = inspect.getdoc(COMMANDS[command]).split("\n\n")
    assert len(paragraphs) >= 2 and paragraphs[-1].startswith("Example: ")
    for paragraph in paragraphs:
        assert "\n" not in paragraph.strip(), paragraph
    wide = lines(help_text(400, *command))
    for paragraph in paragraphs:
        assert " ".join(paragraph.split()) in wide


def test_mirror_trigger_help_reflows_and_names_its_environment() -> None:
    for columns in (80, 120):
        text = " ".join(" ".join(lines(help_text(columns, "mirror", "trigger"))).split())
        assert "(someone stopped it in Harbor), 130 after Ctrl-C" in text
        assert "DOCKERHUB_BASE_URL (default https://hub.docker.com)" in text
        assert "$XDG_STATE_HOME/harborops/mirror-trigger.json" in text
        assert "~/.local/state/harborops/mirror-trigger.json when XDG_STATE_HOME is unset" in text
    wide = help_text(120, "mirror", "trigger")
    assert "in Harbor), 130 after Ctrl-C" in wide  # the docstring's old line break is gone


def test_pulls_report_by_has_a_short_metavar_and_lists_the_choices() -> None:
    for columns in (80, 120):
        text = help_text(columns, "pulls", "report")
        assert "Usage: harborops pulls report [OPTIONS] [LOG]..." in text
        assert option_row(text, "--by").startswith("--by FIELD Group statistics by host, registry, image")
        assert "imag e" not in " ".join(lines(text))


def test_kamal_secrets_var_example_is_whole_at_80_columns() -> None:
    assert "e.g. CI_PW=ciRegistryPassword." in " ".join(lines(help_text(80, "kamal", "secrets")))


def test_kamal_registry_help_reflows() -> None:
    assert "the variable `secrets` writes. Input as for" in help_text(120, "kamal", "registry")


def test_s3_verify_region_is_described() -> None:
    for columns in (80, 120):
        text = " ".join(lines(help_text(columns, "s3", "verify")))
        assert re.search(r"--region (<str> )?Signing region; on AWS, the bucket.s region\.", text), text
