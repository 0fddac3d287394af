"""`harborops pulls report`: from Kamal logs on disk or stdin to what the user sees.

Runs the real CLI entry point in-process (harborops.cli.main), so errors go through
the same one-line-on-stderr path as in production. Expected numbers are worked out
by hand from tests/fixtures/kamal (see its README).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
from pathlib import Path

import pytest

from harborops.cli import main

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "kamal"
TWO = str(FIXTURES / "two_deploys_and_a_cut.log")
NOISE = str(FIXTURES / "every_noise_case.log")
BEFORE = str(FIXTURES / "before_docker_hub.log")
AFTER = str(FIXTURES / "after_harbor.log")


class FakeStdin(io.TextIOWrapper):
    def __init__(self, data: bytes, tty: bool = False) -> None:
        super().__init__(io.BufferedReader(io.BytesIO(data)))  # type: ignore[arg-type]
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str,
        stdin: bytes = b"", tty: bool = False) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", FakeStdin(stdin, tty))
    try:
        main(["pulls", "report", *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def invoke(*args: str, stdin: bytes = b"", tty: bool = False) -> tuple[int, str, str]:
        return run(capsys, monkeypatch, *args, stdin=stdin, tty=tty)

    return invoke


def by_group(rows: list[dict], key: str) -> dict[str, dict]:  # type: ignore[type-arg]
    return {row["group"][key]: row for row in rows}


def test_json_rows_stats_and_deploys(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli(TWO, "--json")
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert document["version"] == 1
    assert document["by"] == ["repository"]
    # Successful pulls only by default: 4 of shop/web and the redis accessory.
    assert sorted((p["host"], p["seconds"]) for p in document["pulls"]) == [
        ("db-1.chi", 2.25), ("web-1.chi", 6.5), ("web-2.chi", 4.0), ("web-2.chi", 12.25), ("web-3.chi", 3.0),
    ]
    stats = by_group(document["stats"], "repository")
    assert stats["shop/web"] == {
        "group": {"repository": "shop/web"},
        "count": 4, "failures": 3,  # 2 failed in the ERROR block, 1 unfinished
        "min": 3.0, "median": 5.25, "p90": 10.525, "p95": 11.3875, "max": 12.25, "total": 25.75,
    }
    assert stats["library/redis"]["count"] == 1 and stats["library/redis"]["median"] == 2.25
    assert document["deploys"] == [
        {"deploy": 1, "source": TWO, "seconds": 30.0, "pulls": 3, "failures": 0, "pull_seconds": 12.75},
        {"deploy": 2, "source": TWO, "seconds": 12.4, "pulls": 3, "failures": 2, "pull_seconds": 3.0},
        {"deploy": 3, "source": TWO, "seconds": None, "pulls": 2, "failures": 1, "pull_seconds": 12.25},
    ]
    assert document["baseline"] is None and document["comparison"] is None
    row = next(p for p in document["pulls"] if p["id"] == "30000002")
    assert row == {
        "deploy": 3, "source": TWO, "line": 43, "id": "30000002", "host": "web-2.chi", "command": "docker pull",
        "reference": "shop/web@sha256:0123abcd", "image": "docker.io/shop/web", "registry": "docker.io",
        "repository": "shop/web", "tag": None, "digest": "sha256:0123abcd", "seconds": 12.25, "success": True,
        "exit_status": 0, "outcome": "ok",
    }


def test_include_failed_lists_failures_with_their_exit_status(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli(TWO, "--json", "--include-failed", "--by", "host")
    document = json.loads(out)
    failed = sorted((p["host"], p["outcome"], p["exit_status"]) for p in document["pulls"] if not p["success"])
    assert failed == [("web-1.chi", "failed", 18), ("web-1.chi", "unfinished", None), ("web-2.chi", "failed", 1)]
    web1 = by_group(document["stats"], "host")["web-1.chi"]
    # Listed in the rows, but without a duration neither failure is in count or the times.
    assert (web1["count"], web1["failures"], web1["median"]) == (1, 2, 6.5)


# shop/web: 4 good pulls (2, 4, 6, 8 s); w5 failed after 10 s (a Finished line);
# w6 failed in the ERROR block (no duration); w7 never finished.
TINY = """Acquiring the deploy lock...
  INFO [00000001] Running docker pull shop/web:v1 on w1
  INFO [00000001] Finished in 2.000 seconds with exit status 0 (successful).
  INFO [00000002] Running docker pull shop/web:v1 on w2
  INFO [00000002] Finished in 4.000 seconds with exit status 0 (successful).
  INFO [00000003] Running docker pull shop/web:v1 on w3
  INFO [00000003] Finished in 6.000 seconds with exit status 0 (successful).
  INFO [00000004] Running docker pull shop/web:v1 on w4
  INFO [00000004] Finished in 8.000 seconds with exit status 0 (successful).
  INFO [00000005] Running docker pull shop/web:v1 on w5
  INFO [00000005] Finished in 10.000 seconds with exit status 1 (failed).
  INFO [00000006] Running docker pull shop/web:v1 on w6
  INFO [00000007] Running docker pull shop/web:v1 on w7
  ERROR (SSHKit::Command::Failed): Exception while executing on host w6: docker exit status: 1
"""


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        # count, failures, min, median, p90, p95, max, total
        ((), ["4", "3", "2.0", "5.0", "7.4", "7.7", "8.0", "20.0"]),
        # + w5, the one failure with a duration; w6 and w7 stay in failures only
        (("--include-failed",), ["5", "3", "2.0", "6.0", "9.2", "9.6", "10.0", "30.0"]),
    ],
    ids=["default", "include-failed"],
)
def test_count_is_the_pulls_the_times_cover(cli, tmp_path: Path, flags: tuple[str, ...], expected: list[str]) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "tiny.log"
    log.write_text(TINY)
    code, out, _ = cli(str(log), "--csv", *flags)
    assert code == 0
    assert list(csv.reader(io.StringIO(out)))[1] == ["shop/web", *expected]
    code, out, _ = cli(str(log), "--json", *flags)
    (stats,) = json.loads(out)["stats"]
    assert (stats["count"], stats["failures"], stats["total"]) == (int(expected[0]), 3, float(expected[-1]))
    code, out, _ = cli(str(log), *flags)
    line = next(row for row in out.splitlines() if "shop/web" in row)
    assert [cell.strip() for cell in line.strip("│ ").split("│")][1:3] == expected[:2]


def test_several_group_keys(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli(TWO, "--json", "--by", "registry", "--by", "host")
    groups = {(r["group"]["registry"], r["group"]["host"]): (r["count"], r["failures"]) for r in json.loads(out)["stats"]}
    assert groups == {
        ("docker.io", "db-1.chi"): (1, 0),
        ("docker.io", "web-1.chi"): (0, 1),
        ("docker.io", "web-2.chi"): (1, 0),
        ("harbor.chi.example.test", "web-1.chi"): (1, 1),
        ("harbor.chi.example.test", "web-2.chi"): (1, 1),
        ("harbor.chi.example.test", "web-3.chi"): (1, 0),
    }


def test_table_for_people(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli(TWO)
    assert (code, err) == (0, "")
    assert "Image pull times by repository (seconds)" in out
    line = next(row for row in out.splitlines() if "shop/web" in row)
    assert [cell.strip() for cell in line.strip("│ ").split("│")] == [
        "shop/web", "4", "3", "3.00", "5.25", "10.53", "11.39", "12.25", "25.75",
    ]
    assert "3 deploys, median deploy time: 21.2 s" in out


def test_rows_table(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli(TWO, "--rows", "--include-failed", "--host", "web-1*")
    lines = [row for row in out.splitlines() if "web-1.chi" in row]
    assert len(lines) == 3
    assert any("18" in row and "failed" in row for row in lines)
    assert any("unfinished" in row for row in lines)


def test_baseline_comparison_computes_the_improvement(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli(AFTER, "--baseline", BEFORE, "--json")
    assert (code, err) == (0, "")
    document = json.loads(out)
    (row,) = document["comparison"]
    assert row["group"] == {"repository": "shop/web"}
    # before: 20, 22, 28, 30 s from Docker Hub; after: 4, 5, 5, 6 s from Harbor
    assert (row["baseline"]["median"], row["current"]["median"]) == (25.0, 5.0)
    assert row["delta"]["median"] == {"abs": -20.0, "rel": -0.8}
    assert row["delta"]["p95"] == {"abs": -23.85, "rel": -0.803}
    assert row["delta"]["max"] == {"abs": -24.0, "rel": -0.8}
    assert row["delta"]["count"] == 0
    assert [d["seconds"] for d in document["baseline"]["deploys"]] == [60.0, 58.0]


def test_baseline_by_host_table(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli(AFTER, "--baseline", BEFORE, "--by", "host")
    web1 = next(row for row in out.splitlines() if "web-1" in row)
    cells = [cell.strip() for cell in web1.strip("│ ").split("│")]
    # host, count, failures, median before → now, Δ, Δ %, p95 before → now, Δ, Δ %
    assert cells[:6] == ["web-1", "2 → 2", "0 → 0", "29.00 → 5.50", "-23.50", "-81.0%"]
    assert "baseline 2 deploys, median 59.0 s, Δ -17.0 s" in out


def test_groups_on_one_side_only_have_no_delta(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli(AFTER, "--baseline", BEFORE, "--by", "registry", "--json")
    rows = by_group(json.loads(out)["comparison"], "registry")
    assert rows["docker.io"]["current"] is None and rows["docker.io"]["delta"] is None
    assert rows["harbor.chi.example.test"]["baseline"] is None


def test_csv_statistics_and_rows(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli(TWO, "--csv")
    assert list(csv.reader(io.StringIO(out))) == [
        ["repository", "count", "failures", "min", "median", "p90", "p95", "max", "total"],
        ["library/redis", "1", "0", "2.25", "2.25", "2.25", "2.25", "2.25", "2.25"],
        ["shop/web", "4", "3", "3.0", "5.25", "10.525", "11.3875", "12.25", "25.75"],
    ]
    code, out, _ = cli(TWO, "--csv", "--rows", "--include-failed")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 8
    unfinished = next(r for r in rows if r["outcome"] == "unfinished")
    assert (unfinished["host"], unfinished["seconds"], unfinished["exit_status"], unfinished["success"]) == ("web-1.chi", "", "", "false")


def test_csv_comparison_columns(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli(AFTER, "--baseline", BEFORE, "--csv")
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert (row["median_baseline"], row["median"], row["median_delta"], row["median_delta_rel"]) == ("25.0", "5.0", "-20.0", "-0.8")


@pytest.mark.parametrize(
    ("flags", "hosts"),
    [
        (("--host", "web-2*"), {"web-2.chi"}),
        (("--registry", "docker.io"), {"db-1.chi", "web-2.chi"}),
        (("--image", "*redis*"), {"db-1.chi"}),
        (("--image", "harbor.chi.example.test/shop/*", "--image", "library/*"), {"web-1.chi", "web-2.chi", "web-3.chi", "db-1.chi"}),
    ],
)
def test_filters(cli, flags: tuple[str, ...], hosts: set[str]) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli(TWO, "--json", *flags)
    assert {p["host"] for p in json.loads(out)["pulls"]} == hosts


def test_stdin_and_gzip(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = (FIXTURES / "two_deploys_and_a_cut.log").read_bytes()
    code, out, _ = cli("--csv", stdin=gzip.compress(data))
    assert code == 0 and "shop/web,4,3" in out
    compressed = tmp_path / "deploy.log.gz"
    compressed.write_bytes(gzip.compress(data))
    code, out, _ = cli(str(compressed), "-", "--json", stdin=(FIXTURES / "every_noise_case.log").read_bytes())
    document = json.loads(out)
    # deploy numbers continue from the file into stdin
    assert {(p["source"], p["deploy"]) for p in document["pulls"]} == {
        (str(compressed), 1), (str(compressed), 2), (str(compressed), 3), ("-", 4),
    }


@pytest.mark.parametrize(
    ("make", "args", "code", "message"),
    [
        (lambda d: d.joinpath("empty.log").write_bytes(b""), ("empty.log",), 1, "empty.log: the log is empty"),
        (lambda d: d.joinpath("bin.log").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(200)), ("bin.log",), 2, "bin.log: binary data, not a Kamal log"),
        (lambda d: d.joinpath("bad.gz").write_bytes(b"\x1f\x8bnot gzip"), ("bad.gz",), 2, "bad.gz: not a readable log or gzip file"),
        (lambda d: d.joinpath("text.log").write_text("hello\nworld\n"), ("text.log",), 1, "no image pulls ('docker pull' or 'docker image pull') found in"),
        (lambda d: None, ("missing.log",), 2, "missing.log: no such log file"),
        (lambda d: None, (".",), 2, ".: is a directory"),
    ],
    ids=["empty", "binary", "broken-gzip", "no-pulls", "missing", "directory"],
)
def test_bad_input_is_one_line_and_an_exit_code(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make, args, code, message) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    make(tmp_path)
    got_code, out, err = cli(*args, "--json")
    assert got_code == code
    assert out == ""  # nothing half-written on stdout
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_real_log_without_pulls(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli(str(FIXTURES / "real_kamal_1163_docker_run.log"))
    assert code == 1 and "no image pulls" in err and out == ""


def test_filters_matching_nothing_name_the_flags(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli(TWO, "--json", "--host", "db-*", "--registry", "harbor*")
    assert (code, out) == (1, "")
    assert "8 pulls in log" in err and "none matching --host/--registry/--image" in err


def test_a_bad_file_later_in_the_list_stops_before_any_output(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    binary = tmp_path / "second.log"
    binary.write_bytes(bytes(range(256)))
    code, out, err = cli(TWO, str(binary), "--json")
    assert (code, out) == (2, "")
    assert "second.log: binary data" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((TWO, "--json", "--csv"), "--json and --csv: choose one output format"),
        ((TWO, "--plot", "pulls.svg"), "--plot pulls.svg: the file name must end in .png"),
        ((TWO, "--plot", "no/such/dir/p.png"), "directory no/such/dir does not exist"),
        ((TWO, "--plot", ".png"), "--plot .png: give a file name before .png"),
        ((TWO, "--plot", f"{TWO}/p.png"), f"--plot {TWO}/p.png: {TWO} is not a directory"),
        ((TWO, "--plot", f"{TWO}/deeper/p.png"), f"{TWO} is not a directory"),
        (("-", "--baseline", "-"), "--baseline - and LOG -: stdin can be read once"),
        ((TWO, "--baseline", "-", "--baseline", "-"), "--baseline - given twice: stdin can be read once"),
        (("-", TWO, "-"), "LOG - given twice: stdin can be read once"),
        (("--baseline", "-"), "--baseline - without a LOG (which then reads stdin): stdin can be read once"),
    ],
)
def test_misuse_exits_2(cli, args: tuple[str, ...], message: str) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli(*args, stdin=(FIXTURES / "two_deploys_and_a_cut.log").read_bytes())
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and message in err


def test_plot_target_that_is_a_directory_stops_before_any_output(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "old.png").mkdir()
    for flags in ((), ("--csv",), ("--json",)):
        code, out, err = cli(TWO, *flags, "--plot", str(tmp_path / "old.png"))
        assert (code, out) == (2, "") and err.count("\n") == 1 and "old.png: is a directory" in err


def test_plot_where_no_file_can_be_created_stops_before_any_output(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli(TWO, "--plot", "/proc/pulls.png")  # procfs refuses new files, even to root
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and "--plot /proc/pulls.png: cannot create a file in /proc" in err


def test_a_nul_byte_after_the_sniffed_start_is_binary_data(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "late.log"
    text = (FIXTURES / "two_deploys_and_a_cut.log").read_bytes()
    log.write_bytes(b"x" * 9000 + b"\n" + text.replace(b"Running docker pull shop/web:v3", b"Running docker pull shop/web:v3\0"))
    code, out, err = cli(str(log))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "late.log: binary data (a NUL byte) on line 43, not a Kamal log" in err


def test_deploys_line_says_one_deploy_and_n_a(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli(str(FIXTURES / "real_kamal_694_github_actions.log"))
    assert code == 0
    assert "1 deploy, median deploy time: n/a (from 'Finished all in')" in out


def test_no_log_and_a_terminal_on_stdin(cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli(tty=True)
    assert code == 2 and "give one or more LOG files, or pipe a Kamal log on stdin" in err


def test_secrets_in_the_log_never_reach_the_output(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    secret = "hunter2-S3CRET-token"
    log = tmp_path / "leaky.log"
    log.write_text(
        f"  INFO [00000001] Running docker login reg.example.test -u deployer -p {secret} on h1\n"
        "  INFO [00000001] Finished in 0.500 seconds with exit status 0 (successful).\n"
        "  INFO [00000002] Running docker pull reg.example.test/app:1 on h1\n"
        f"  ERROR (SSHKit::Command::Failed): Exception while executing on host h1: docker exit status: 1\n"
        f"docker stderr: unauthorized: token {secret} expired\n"
    )
    for flags in ((), ("--json", "--include-failed"), ("--csv", "--rows", "--include-failed"), ("--rows", "--include-failed")):
        code, out, err = cli(str(log), *flags)
        assert secret not in out and secret not in err


def test_plot_with_baseline_is_a_png(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "pulls.png"
    code, out, err = cli(AFTER, "--baseline", BEFORE, "--by", "host", "--plot", str(target))
    assert (code, err) == (0, "")
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_plot_needs_at_least_one_duration(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "pulls.png"
    code, out, err = cli(str(FIXTURES / "real_kamal_1674_local_registry.log"), "--plot", str(target))
    assert (code, out) == (1, "") and "nothing to plot" in err and not target.exists()


def test_fast_json_rows_are_exactly_json_dumps() -> None:
    from harborops.kamal_log import KamalLogParser, scan_stream
    from harborops.pulls import RowEncoder, pull_row

    encoder = RowEncoder()
    for fixture in sorted(FIXTURES.glob("*.log")):
        with fixture.open("rb") as stream:
            for pull in scan_stream(stream, KamalLogParser(source=f"{fixture.name} \"quoted\" ü")):  # type: ignore[arg-type]
                assert encoder.encode(pull) == json.dumps(pull_row(pull))


def test_histogram_quantiles_stay_exact_when_it_turns_dense() -> None:
    from harborops.pulls import Histogram

    times_ms = [(i * 7919) % 120_000 + 1 for i in range(5000)] + [45 * 60 * 1000, 2 * 3600 * 1000]
    histogram = Histogram()
    for ms in times_ms:
        histogram.add_ms(ms)
    assert histogram._dense is not None and histogram._overflow  # switched, long pulls kept apart
    ordered = sorted(times_ms)

    def linear(q: float) -> float:  # numpy's default, by hand
        position = (len(ordered) - 1) * q
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        return (ordered[low] + (ordered[high] - ordered[low]) * (position - low)) / 1000

    assert histogram.quantiles([0, 0.5, 0.9, 0.95, 1]) == pytest.approx([linear(q) for q in (0, 0.5, 0.9, 0.95, 1)])
    assert histogram.summary()["total"] == sum(times_ms) / 1000


def test_empty_stdin_says_so(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("--json", stdin=b"")
    assert (code, out) == (1, "") and "-: the log is empty" in err


def test_gzip_cut_off_in_the_middle(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    whole = gzip.compress((FIXTURES / "two_deploys_and_a_cut.log").read_bytes() * 40)
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    code, out, err = cli(str(cut), "--csv")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "cut.log.gz: not a readable log or gzip file" in err


def crowded_log(groups: int) -> str:
    """One pull per group, all with the same count; the higher the number, the slower."""
    lines = ["Acquiring the deploy lock..."]
    for number in range(groups):
        host = f"app-server-{number:02d}.production.ams3.internal.example-company.test"
        lines += [
            f"  INFO [{number + 1:08x}] Running docker pull harbor.chi.example-company.test/platform/service-with-a-long-name:v1 on {host}",
            f"  INFO [{number + 1:08x}] Finished in {number + 1}.000 seconds with exit status 0 (successful).",
        ]
    lines.append("  INFO [ffffffff] Running docker pull harbor.chi.example-company.test/platform/service-with-a-long-name:v1 on lost-host")
    return "\n".join(lines) + "\n"


@pytest.fixture
def saved_figures(monkeypatch: pytest.MonkeyPatch) -> list[dict]:  # type: ignore[type-arg]
    """What each --plot figure shows, measured in pixels just before it is written."""
    from matplotlib.figure import Figure

    seen: list[dict] = []  # type: ignore[type-arg]
    real_savefig = Figure.savefig

    def savefig(figure: Figure, *args, **kwargs):  # type: ignore[no-untyped-def]
        renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
        (axes,) = figure.axes
        title = figure._suptitle  # type: ignore[attr-defined]
        seen.append({
            "title": title.get_text(),
            "title_box": title.get_window_extent(renderer),
            "width": figure.bbox.width,
            "labels": [tick.get_text() for tick in axes.get_yticklabels()],
            "axes_left": axes.get_position().x0,
        })
        return real_savefig(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return seen


def test_plot_of_many_long_groups_says_how_they_were_chosen(cli, tmp_path: Path, saved_figures: list[dict]) -> None:  # type: ignore[no-untyped-def, type-arg]
    log = tmp_path / "crowded.log"
    log.write_text(crowded_log(30))
    code, _, err = cli(str(log), "--by", "host", "--by", "image", "--plot", str(tmp_path / "p.png"))
    assert (code, err) == (0, "")
    (figure,) = saved_figures
    title = " ".join(figure["title"].split())
    assert title.startswith("Image pull times by host / image")
    assert "the 25 of 30 groups with the most timed pulls (ties: longest total time)" in title
    assert "1 failed or unfinished pull not shown (--include-failed adds those with a duration)" in title
    assert 0 <= figure["title_box"].x0 and figure["title_box"].x1 <= figure["width"]  # nothing cut off
    # Every group has one pull: the 25 slowest in total are shown, not the first 25 by name.
    hosts = sorted(label.split(" / ")[0] for label in figure["labels"])
    assert hosts == [f"app-server-{n:02d}…company.test" for n in range(5, 30)]
    assert all(len(label.split("\n")[0]) <= 56 for label in figure["labels"])
    assert figure["axes_left"] < 0.45  # the labels leave the boxes most of the width
