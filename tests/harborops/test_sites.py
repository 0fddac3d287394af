"""`harborops sites diff` between two emulated sites, as a user runs it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from harborops.sites import TagDrift, compare_tags
from tests.emulators.harbor import HarborEmulator
from tests.support.cli import run_cli


@pytest.fixture
def chi() -> Iterator[HarborEmulator]:
    with HarborEmulator() as site:
        yield site


@pytest.fixture
def iad() -> Iterator[HarborEmulator]:
    with HarborEmulator(password="iad-only-pw") as site:
        yield site


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARBOR_USERNAME", "admin")
    monkeypatch.setenv("HARBOR_PASSWORD", "Harbor12345")
    monkeypatch.setenv("HARBOR_RIGHT_PASSWORD", "iad-only-pw")  # per-site password for the 2nd URL
    monkeypatch.setenv("COLUMNS", "200")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    return run_cli(capsys, *argv)


def test_drift_in_both_directions_and_different_digests(
    chi: HarborEmulator, iad: HarborEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = chi.add_artifact("yourorg/app", ["1.0"])
    iad.add_artifact("yourorg/app", ["1.0"], digest=shared)
    chi.add_artifact("yourorg/team/api", ["2.0", "latest"])  # nested name: double-encoded path
    iad.add_artifact("yourorg/team/api", ["2.0"], digest="sha256:" + "b" * 64)
    only_iad = iad.add_artifact("yourorg/only-iad", ["0.1"])

    code, out, err = run(capsys, "sites", "diff", chi.url, iad.url, "--json")

    report = json.loads(out)
    assert (code, err) == (1, "")
    assert report["missing_on_left"] == [
        {"repository": "yourorg/only-iad", "tag": "0.1", "left_digest": None, "right_digest": only_iad}]
    assert [(e["repository"], e["tag"], e["right_digest"]) for e in report["missing_on_right"]] == [
        ("yourorg/team/api", "latest", None)]
    assert [(e["repository"], e["tag"], e["right_digest"]) for e in report["different"]] == [
        ("yourorg/team/api", "2.0", "sha256:" + "b" * 64)]
    assert report["repositories_compared"] == 3 and report["projects"] == ["yourorg"]


def test_sites_that_agree_exit_zero(
    chi: HarborEmulator, iad: HarborEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    for site in (chi, iad):
        site.add_artifact("yourorg/app", ["1.0", "latest"], digest="sha256:" + "a" * 64)

    code, out, _ = run(capsys, "sites", "diff", chi.url, iad.url)

    assert code == 0
    assert "1 repositories, 2 tags; 0 missing on left, 0 missing on right, 0 different" in out


def test_table_names_each_drift(chi: HarborEmulator, iad: HarborEmulator, capsys: pytest.CaptureFixture[str]) -> None:
    chi.add_artifact("yourorg/app", ["1.0"], digest="sha256:" + "c" * 64)

    code, out, _ = run(capsys, "sites", "diff", chi.url, iad.url)

    assert code == 1
    assert "missing on right" in out and "yourorg/app" in out and "cccccccccccc" in out


def test_one_project_only(chi: HarborEmulator, iad: HarborEmulator, capsys: pytest.CaptureFixture[str]) -> None:
    chi.add_artifact("yourorg/app", ["1.0"])
    chi.add_artifact("library/nginx", ["1.27"])
    iad.add_artifact("library/nginx", ["1.27"], digest=chi.add_artifact("library/nginx", ["1.27"]))

    code, out, _ = run(capsys, "sites", "diff", chi.url, iad.url, "--project", "library", "--json")

    assert code == 0 and json.loads(out)["projects"] == ["library"]
    assert not [r for r in chi.requests if "/projects/yourorg" in r.path]


def test_a_project_missing_on_one_side_counts_as_missing_tags(
    chi: HarborEmulator, iad: HarborEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    chi.add_artifact("newproj/app", ["1.0"])
    iad.add_project("other")

    code, out, _ = run(capsys, "sites", "diff", chi.url, iad.url, "-p", "newproj", "--json")

    assert code == 1
    assert [e["repository"] for e in json.loads(out)["missing_on_right"]] == ["newproj/app"]


def test_calls_run_concurrently_within_the_bound(
    chi: HarborEmulator, iad: HarborEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(12):
        digest = chi.add_artifact(f"yourorg/app{i:02d}", ["1.0"])
        iad.add_artifact(f"yourorg/app{i:02d}", ["1.0"], digest=digest)
    chi.latency = iad.latency = 0.02

    code, _, _ = run(capsys, "sites", "diff", chi.url, iad.url, "--concurrency", "3", "--json")

    assert code == 0
    assert max(chi.max_in_flight, iad.max_in_flight) > 1  # really concurrent
    assert chi.max_in_flight <= 3 and iad.max_in_flight <= 3
    assert len(chi.api_requests("GET", "/projects/yourorg/repositories/")) == 12
    assert len(iad.api_requests("GET", "/projects/yourorg/repositories/")) == 12


def test_wrong_password_on_one_site_names_that_site_and_hides_the_password(
    chi: HarborEmulator, iad: HarborEmulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARBOR_RIGHT_PASSWORD", "typo-pw")

    code, out, err = run(capsys, "sites", "diff", chi.url, iad.url)

    assert code == 1 and out == ""
    assert iad.url in err and "rejected the credentials" in err
    assert "typo-pw" not in err and "Harbor12345" not in err
    assert len(err.strip().splitlines()) == 1


def test_same_site_twice_is_misuse(chi: HarborEmulator, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "sites", "diff", chi.url, chi.url + "/api/v2.0")
    assert code == 2 and "same site" in err


def test_compare_tags_sorts_and_classifies() -> None:
    left = {"r": {"a": "sha256:1", "b": "sha256:2"}}
    right = {"r": {"b": "sha256:3", "c": "sha256:4"}, "s": {"x": "sha256:5"}}
    assert compare_tags(left, right) == (
        [TagDrift("r", "c", None, "sha256:4"), TagDrift("s", "x", None, "sha256:5")],
        [TagDrift("r", "a", "sha256:1", None)],
        [TagDrift("r", "b", "sha256:2", "sha256:3")],
    )


@pytest.mark.parametrize("name", ["nosuch", "YourOrg"])
def test_a_project_neither_site_has_is_an_error_not_agreement(
    chi: HarborEmulator, iad: HarborEmulator, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    for site in (chi, iad):
        site.add_artifact("yourorg/app", ["1.0"], digest="sha256:" + "a" * 64)

    code, out, err = run(capsys, "sites", "diff", chi.url, iad.url, "-p", name)

    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert f"--project {name!r}: no such project on {chi.url} or {iad.url}" in err
    assert ("did you mean 'yourorg'?" in err) == (name == "YourOrg")


def test_an_empty_project_name_is_misuse(chi: HarborEmulator, iad: HarborEmulator,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "sites", "diff", chi.url, iad.url, "-p", "")

    assert (code, out) == (2, "")
    assert err.strip() == "error: --project: empty project name (leave -p out to compare every project)"
    assert not chi.requests and not iad.requests


@pytest.mark.parametrize("named", [True, False])
def test_a_project_only_one_site_has_is_drift_even_when_empty(
    chi: HarborEmulator, iad: HarborEmulator, capsys: pytest.CaptureFixture[str], named: bool
) -> None:
    for site in (chi, iad):
        site.add_artifact("yourorg/app", ["1.0"], digest="sha256:" + "a" * 64)
    chi.add_project("chi-only")  # no repositories at all

    args = ["-p", "yourorg", "-p", "chi-only"] if named else []
    code, out, _ = run(capsys, "sites", "diff", chi.url, iad.url, *args)
    _, json_out, _ = run(capsys, "sites", "diff", chi.url, iad.url, *args, "--json")

    assert code == 1
    assert "project missing on right" in out and "chi-only/" in out and "1 projects on one site only" in out
    report = json.loads(json_out)
    assert (report["projects_missing_on_left"], report["projects_missing_on_right"]) == ([], ["chi-only"])


def test_table_cells_are_padded_from_the_border(
    chi: HarborEmulator, iad: HarborEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    chi.add_artifact("yourorg/app", ["1.0"])
    iad.add_project("yourorg")

    code, out, _ = run(capsys, "sites", "diff", chi.url, iad.url)

    assert code == 1
    assert "┃ Drift" in out and "│ missing on right" in out


@pytest.mark.parametrize("argv", [["http://127.0.0.1:1"], ["http://127.0.0.1:1", ""]], ids=["missing", "empty"])
def test_the_second_url_has_one_name_in_every_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    monkeypatch.delenv("HARBOR_RIGHT_URL", raising=False)

    code, _, err = run(capsys, "sites", "diff", *argv)

    assert code == 2 and "RIGHT_URL" in err and "right_url" not in err
