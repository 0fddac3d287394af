"""Smoke test for the benchmark's log generator: a small log, parsed, agrees with itself.

The timing runs live in bench/pulls_bench.py; this only keeps the generator honest.
"""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

from harborops.kamal_log import KamalLogParser, scan_stream

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from pulls_generate import write_log  # noqa: E402


def test_generated_log_pairs_every_pull_by_id() -> None:
    out = io.StringIO()
    deploys = write_log(out, megabytes=0.45, seed=7)  # deploy 3 has an accessory, 7 a failure
    text = out.getvalue()
    running = re.findall(r"\[([0-9a-f]{8})\] Running docker (?:image )?pull ", text)
    assert len(running) == len(set(running))  # ids are unique, as the gawk comparison needs
    parser = KamalLogParser(source="generated")
    pulls = list(scan_stream(io.BufferedReader(io.BytesIO(text.encode())), parser, block_size=4096))  # type: ignore[arg-type]
    assert sorted(p.command_id for p in pulls) == sorted(running)
    assert len(parser.deploys) == deploys
    failed = [p for p in pulls if not p.success]
    assert len(failed) == 1 and (failed[0].outcome, failed[0].exit_status, failed[0].deploy) == ("failed", 1, 7)
    assert any(p.command == "docker image pull" for p in pulls)
    finished = set(re.findall(r"\[([0-9a-f]{8})\] Finished in", text))
    assert {p.command_id for p in pulls if p.success} == set(running) & finished
