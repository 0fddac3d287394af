"""Write a Kamal-like deploy log of a given size for the `pulls report` benchmark.

Deploys follow what Kamal 2 prints (headings, login, image rm, pull, inspect, boot,
prune), with many hosts whose lines interleave, --verbose DEBUG chunks, an
accessory `docker image pull` now and then, and an occasional pull that fails with
an ERROR block. About 5% of the lines are pull Running/Finished lines.

Command ids are unique (an odd-multiplier bijection of a counter), so the
benchmark can compare the set of pairs found by gawk with ours exactly.

Usage: python bench/pulls_generate.py OUT.log --megabytes 1024 [--seed 4]
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

HOSTS = [f"app-{n:02d}.chi.example.test" for n in range(1, 13)] + [f"app-{n:02d}.ams.example.test" for n in range(1, 9)]
REGISTRY = "harbor.chi.example.test"
APPS = ("hey", "bc4", "bc2")


class Ids:
    """Unique 8-hex ids: multiplying by an odd constant permutes 32-bit integers."""

    def __init__(self) -> None:
        self._next = 1

    def __call__(self) -> str:
        value = (self._next * 2654435761) & 0xFFFFFFFF
        self._next += 1
        return f"{value:08x}"


def _interleave(rng: random.Random, ids: Ids, command: str, hosts: list[str], seconds: tuple[float, float],
                debug: int = 0) -> Iterator[str]:
    """Running lines for every host, then DEBUG output and Finished lines in random order."""
    started = [(ids(), host) for host in hosts]
    for command_id, host in started:
        yield f"  INFO [{command_id}] Running {command.format(host=host)} on {host}\n"
    rng.shuffle(started)
    for command_id, _host in started:
        for line in range(debug):
            yield f" DEBUG [{command_id}] \t#{line} sha256:{rng.getrandbits(64):016x} exporting layers {rng.random():.1f}s done\n"
        yield f"  INFO [{command_id}] Finished in {rng.uniform(*seconds):.3f} seconds with exit status 0 (successful).\n"


def deploy(rng: random.Random, ids: Ids, number: int) -> Iterator[str]:
    app = APPS[number % len(APPS)]
    version = f"{rng.getrandbits(160):040x}"
    image = f"{REGISTRY}/basecamp/{app}:{version}"
    hosts = rng.sample(HOSTS, k=rng.randint(12, len(HOSTS)))
    failing = rng.choice(hosts) if number % 50 == 7 else None
    total = rng.uniform(60, 140)

    yield "Acquiring the deploy lock...\n"
    yield "Log into image registry...\n"
    yield from _interleave(rng, ids, f"docker login {REGISTRY} -u [REDACTED] -p [REDACTED]", hosts, (0.2, 1.5))
    yield "Pull app image...\n"
    yield from _interleave(rng, ids, f"docker image rm --force {image}", hosts, (0.05, 0.4))
    pulls = [(ids(), host) for host in hosts]
    for command_id, host in pulls:
        yield f"  INFO [{command_id}] Running docker pull {image} on {host}\n"
    rng.shuffle(pulls)
    for command_id, host in pulls:
        yield f" DEBUG [{command_id}] \t{version}: Pulling from basecamp/{app}\n"
        if host == failing:
            continue  # a failed pull has no Finished line: the ERROR block comes last
        slow = 2.5 if ".ams." in host else 1.0
        yield f"  INFO [{command_id}] Finished in {rng.uniform(3, 25) * slow:.3f} seconds with exit status 0 (successful).\n"
    yield from _interleave(rng, ids, "docker inspect -f '{{{{ .Config.Labels.service }}}}' " + image + f" | grep -x {app}",
                           hosts, (0.05, 0.3))
    if number % 10 == 3:
        yield f"  INFO [{(acc := ids())}] Running docker image pull mysql:8.0 on db-01.chi.example.test\n"
        yield f"  INFO [{acc}] Finished in {rng.uniform(5, 40):.3f} seconds with exit status 0 (successful).\n"
    yield "Ensure kamal-proxy is running...\n"
    yield from _interleave(rng, ids, "docker container start kamal-proxy || docker run --name kamal-proxy --network kamal "
                           "--detach --restart unless-stopped basecamp/kamal-proxy:v0.8.7", hosts, (0.1, 0.9))
    yield f"Start container with version {version}...\n"
    yield from _interleave(rng, ids, f"docker run --detach --restart unless-stopped --name {app}-web-{version} "
                           f"--network kamal --env-file .kamal/apps/{app}/env/roles/web.env {image}", hosts, (0.5, 3.0),
                           debug=8)
    yield from _interleave(rng, ids, f"docker exec kamal-proxy kamal-proxy deploy {app}-web --target \"{{host}}:80\"",
                           hosts, (1.0, 9.0), debug=4)
    yield "Prune old containers and images...\n"
    yield from _interleave(rng, ids, "docker image prune --force --filter label=service=" + app, hosts, (0.1, 2.0), debug=2)
    yield "Releasing the deploy lock...\n"
    yield f"  Finished all in {total:.1f} seconds\n"
    if failing is not None:
        yield ("  \x1b[31mERROR (SSHKit::Command::Failed): Exception while executing on host "
               f"{failing}: docker exit status: 1\n")
        yield "docker stdout: Nothing written\n"
        yield "docker stderr: Error response from daemon: received unexpected HTTP status: 502 Bad Gateway\x1b[0m\n"


def write_log(out: TextIO, megabytes: float, seed: int = 4) -> int:
    """Write deploys until the file reaches `megabytes`; return the number of deploys."""
    rng = random.Random(seed)
    ids = Ids()
    limit = int(megabytes * 1024 * 1024)
    written = 0
    number = 0
    while written < limit:
        number += 1
        chunk = "".join(deploy(rng, ids, number))
        out.write(chunk)
        written += len(chunk)
    return number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--megabytes", type=float, default=1024)
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    with args.out.open("w", encoding="ascii", newline="\n") as out:
        deploys = write_log(out, args.megabytes, args.seed)
    print(f"{args.out}: {args.out.stat().st_size} bytes, {deploys} deploys")


if __name__ == "__main__":
    main()
