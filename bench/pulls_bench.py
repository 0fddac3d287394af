"""Benchmark `harborops pulls report --json` against the seed's gawk one-liner.

For each size it generates a Kamal-like log (bench/pulls_generate.py) into the
git-ignored bench/work/, runs both tools the same way (reading the file, writing
their output to a file, under /usr/bin/time -v), checks that both found the same
Running/Finished pairs of `docker pull`, records wall time and peak memory in
bench/results/pulls.json and pulls.md, and deletes the log again.

gawk is not installed by default: as root the script runs
`apt-get install -y gawk`; otherwise install it first.

Usage: python bench/pulls_bench.py [--sizes 256,1024] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "bench"))

from pulls_generate import write_log  # noqa: E402

# The seed's "from a logfile" one-liner, verbatim apart from the file name.
SEED_GAWK = r"""
/Running .*docker pull/ {
  if (match($0, /\[([a-f0-9]+)\]/, m)) {
    id = m[1]
    running[id] = $0
  }
}
/Finished/ {
  if (match($0, /\[([a-f0-9]+)\]/, m)) {
    id = m[1]
    if (id in running) {
      print running[id]
      print $0
      print ""
      delete running[id]
    }
  }
}
"""
ID = re.compile(r"\[([a-f0-9]+)\]")


def ensure_gawk() -> str:
    gawk = shutil.which("gawk")
    if gawk:
        return gawk
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "gawk"], check=True)
        gawk = shutil.which("gawk")
    if not gawk:
        sys.exit("gawk is needed: apt-get install -y gawk")
    return gawk


def timed(command: list[str], out: Path) -> dict[str, float]:
    """Run under /usr/bin/time -v with stdout to `out`; wall seconds and peak RSS in MiB."""
    report = out.with_suffix(".time")
    started = time.perf_counter()
    with out.open("wb") as sink:
        subprocess.run(["/usr/bin/time", "-v", "-o", str(report), *command], stdout=sink, check=True, cwd=ROOT)
    wall = time.perf_counter() - started
    text = report.read_text()
    report.unlink()
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))  # type: ignore[union-attr]
    user = float(re.search(r"User time \(seconds\): ([\d.]+)", text).group(1))  # type: ignore[union-attr]
    system = float(re.search(r"System time \(seconds\): ([\d.]+)", text).group(1))  # type: ignore[union-attr]
    return {"wall_s": round(wall, 2), "cpu_s": round(user + system, 2), "peak_rss_mib": round(rss_kb / 1024, 1)}


def gawk_pairs(output: Path) -> set[str]:
    """Ids of the Finished lines gawk printed (every pair is Running, Finished, blank)."""
    pairs = set()
    with output.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if "Finished" in line and (match := ID.search(line)):
                pairs.add(match.group(1))
    return pairs


def harborops_pairs(output: Path) -> tuple[set[str], int]:
    """Ids of `docker pull` rows with a duration (what gawk can see), and all rows."""
    document = json.loads(output.read_text())
    rows = document["pulls"]
    return {r["id"] for r in rows if r["command"] == "docker pull" and r["seconds"] is not None}, len(rows)


def best(runs: list[dict[str, float]]) -> dict[str, float]:
    """Fastest wall and CPU time and highest peak memory over the repeats."""
    return {
        "wall_s": min(r["wall_s"] for r in runs),
        "cpu_s": min(r["cpu_s"] for r in runs),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "runs": len(runs),
    }


def run_size(megabytes: int, gawk: str, keep: bool, repeat: int) -> dict[str, object]:
    log = WORK / f"pulls-{megabytes}mb.log"
    started = time.perf_counter()
    with log.open("w", encoding="ascii", newline="\n") as out:
        deploys = write_log(out, megabytes)
    generated = time.perf_counter() - started
    size = log.stat().st_size
    with log.open("rb") as data:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: data.read(1 << 24), b""))
    print(f"{log.name}: {size / 2**20:.0f} MiB, {lines} lines, {deploys} deploys ({generated:.0f} s to write)", flush=True)
    try:
        gawk_out = WORK / f"pulls-{megabytes}mb.gawk.txt"
        ours_out = WORK / f"pulls-{megabytes}mb.harborops.json"
        gawk_cmd = [gawk, SEED_GAWK, str(log)]
        ours_cmd = [sys.executable, "-m", "harborops", "pulls", "report", str(log), "--json", "--include-failed"]
        gawk_runs, ours_runs = [], []
        for _ in range(repeat):  # alternate, so a noisy neighbour hurts both alike
            gawk_runs.append(timed(gawk_cmd, gawk_out))
            ours_runs.append(timed(ours_cmd, ours_out))
        gawk_run, ours_run = best(gawk_runs), best(ours_runs)
        print(f"  gawk      {gawk_run}", flush=True)
        print(f"  harborops {ours_run}", flush=True)
        by_gawk = gawk_pairs(gawk_out)
        by_us, rows = harborops_pairs(ours_out)
        same = by_gawk == by_us
        print(f"  pairs: gawk {len(by_gawk)}, harborops {len(by_us)} (+{rows - len(by_us)} rows gawk cannot see: "
              f"failed pulls and 'docker image pull'), same: {same}", flush=True)
        return {
            "megabytes": round(size / 2**20, 1),
            "lines": lines,
            "deploys": deploys,
            "pull_pairs": len(by_us),
            "harborops_rows": rows,
            "same_pairs": same,
            "only_gawk": sorted(by_gawk - by_us)[:10],
            "only_harborops": sorted(by_us - by_gawk)[:10],
            "gawk": gawk_run,
            "harborops": ours_run,
        }
    finally:
        if not keep:
            for path in WORK.glob(f"pulls-{megabytes}mb*"):
                path.unlink()


def write_results(results: list[dict[str, object]], gawk: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    gawk_version = subprocess.run([gawk, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    meta = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}",
        "gawk": gawk_version,
        "command": "harborops pulls report LOG --json --include-failed  vs  gawk '<seed one-liner>' LOG",
    }
    (RESULTS / "pulls.json").write_text(json.dumps({"meta": meta, "runs": results}, indent=2) + "\n")
    lines = [
        "# pulls report vs the seed's gawk one-liner",
        "",
        f"{meta['when']} · {meta['machine']} · {meta['gawk']}",
        "",
        "Best of the runs (alternating gawk and harborops); CPU = user + system.",
        "",
        "| log | lines | pull pairs | same pairs | gawk wall | gawk CPU | gawk peak RSS | harborops wall | harborops CPU | harborops peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in results:
        g, h = run["gawk"], run["harborops"]
        assert isinstance(g, dict) and isinstance(h, dict)
        lines.append(
            f"| {run['megabytes']} MiB | {run['lines']} | {run['pull_pairs']} | {run['same_pairs']} | "
            f"{g['wall_s']} s | {g['cpu_s']} s | {g['peak_rss_mib']} MiB | "
            f"{h['wall_s']} s | {h['cpu_s']} s | {h['peak_rss_mib']} MiB |"
        )
    (RESULTS / "pulls.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,1024", help="log sizes in MiB, comma-separated")
    parser.add_argument("--keep", action="store_true", help="keep the generated logs and outputs in bench/work")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool and size; the best time is kept")
    args = parser.parse_args()
    gawk = ensure_gawk()
    WORK.mkdir(parents=True, exist_ok=True)
    results = [run_size(int(size), gawk, args.keep, args.repeat) for size in args.sizes.split(",")]
    write_results(results, gawk)
    print((RESULTS / "pulls.md").read_text())


if __name__ == "__main__":
    main()
