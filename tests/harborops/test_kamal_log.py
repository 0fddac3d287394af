"""The Kamal log parser: what a deploy log says about each image pull.

Expected values are worked out by hand from the fixtures in tests/fixtures/kamal
(see the README there for what each one holds).
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest

from harborops.kamal_log import (
    KamalLogParser,
    LogFormatError,
    Pull,
    parse_image_reference,
    parse_lines,
    scan_stream,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "kamal"
ALL_FIXTURES = sorted(FIXTURES.glob("*.log"))


def scan_bytes(data: bytes, source: str = "test.log", block_size: int = 1 << 20) -> tuple[list[Pull], KamalLogParser]:
    parser = KamalLogParser(source=source)
    pulls = list(scan_stream(io.BufferedReader(io.BytesIO(data)), parser, block_size=block_size))  # type: ignore[arg-type]
    return pulls, parser


def scan_fixture(name: str) -> tuple[list[Pull], KamalLogParser]:
    return scan_bytes((FIXTURES / name).read_bytes(), source=name)


def summary(pull: Pull) -> tuple[object, ...]:
    tag = pull.ref.tag or pull.ref.digest
    return (pull.deploy, pull.host, pull.command, pull.ref.image, tag, pull.seconds, pull.exit_status, pull.outcome)


@pytest.mark.parametrize(
    ("reference", "registry", "repository", "tag", "digest"),
    [
        ("redis:7", "docker.io", "library/redis", "7", None),
        ("ubuntu", "docker.io", "library/ubuntu", None, None),
        ("basecamp/hey:abc", "docker.io", "basecamp/hey", "abc", None),
        ("harbor.chi.example.test/basecamp/hey:v1", "harbor.chi.example.test", "basecamp/hey", "v1", None),
        ("localhost:5555/myapp:0f1e", "localhost:5555", "myapp", "0f1e", None),
        ("localhost/myapp", "localhost", "myapp", None, None),
        ("registry:5000/a/b/c:1.2", "registry:5000", "a/b/c", "1.2", None),
        ("app@sha256:ff00", "docker.io", "library/app", None, "sha256:ff00"),
        ("reg.example.test/app:1.0@sha256:ab", "reg.example.test", "app", "1.0", "sha256:ab"),
        ("***/shopapp:abc", "***", "shopapp", "abc", None),  # registry masked by CI
    ],
)
def test_image_references_split_by_dockers_rule(reference: str, registry: str, repository: str, tag: str | None, digest: str | None) -> None:
    ref = parse_image_reference(reference)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert ref.image == f"{registry}/{repository}"


def test_interleaved_hosts_failures_and_deploy_boundaries() -> None:
    pulls, parser = scan_fixture("two_deploys_and_a_cut.log")
    harbor = "harbor.chi.example.test/shop/web"
    assert sorted(map(summary, pulls)) == sorted(
        [
            (1, "web-1.chi", "docker pull", harbor, "v1", 6.5, 0, "ok"),
            (1, "web-2.chi", "docker pull", harbor, "v1", 4.0, 0, "ok"),
            (1, "db-1.chi", "docker image pull", "docker.io/library/redis", "7.2", 2.25, 0, "ok"),
            (2, "web-3.chi", "docker pull", harbor, "v2", 3.0, 0, "ok"),
            # Exceptions on 2 hosts, printed after `Finished all in`: status per host.
            (2, "web-2.chi", "docker pull", harbor, "v2", None, 1, "failed"),
            (2, "web-1.chi", "docker pull", harbor, "v2", None, 18, "failed"),
            (3, "web-2.chi", "docker pull", "docker.io/shop/web", "sha256:0123abcd", 12.25, 0, "ok"),
            # The log ends while this pull runs, with no ERROR block.
            (3, "web-1.chi", "docker pull", "docker.io/shop/web", "v3", None, None, "unfinished"),
        ]
    )
    assert [(d.number, d.seconds) for d in parser.deploys] == [(1, 30.0), (2, 12.4), (3, None)]


def test_pulls_are_paired_by_id_not_by_order() -> None:
    pulls, _ = scan_fixture("two_deploys_and_a_cut.log")
    by_id = {p.command_id: p for p in pulls}
    # 10000003 (web-1) started first but finished last.
    assert (by_id["10000003"].host, by_id["10000003"].seconds, by_id["10000003"].line) == ("web-1.chi", 6.5, 11)
    assert (by_id["10000004"].host, by_id["10000004"].seconds, by_id["10000004"].line) == ("web-2.chi", 4.0, 13)


def test_docker_run_and_inspect_are_not_pulls() -> None:
    pulls, _ = scan_fixture("two_deploys_and_a_cut.log")
    assert "basecamp/kamal-proxy" not in {p.ref.repository for p in pulls}
    assert {p.command for p in pulls} == {"docker pull", "docker image pull"}


def test_every_noise_case() -> None:
    pulls, parser = scan_fixture("every_noise_case.log")
    image = "harbor.iad.example.test/shop/api"
    assert sorted(map(summary, pulls), key=str) == sorted(
        [
            # colours, CRLF, --platform, verbose chunks (one continuation line looks
            # like "Finished in 99.000 seconds" and must not count)
            (1, "api-1.iad", "docker pull", image, "7", 5.125, 0, "ok"),
            # GitHub Actions timestamp prefix, masked host
            (1, "***", "docker pull", image, "7", 2.75, 0, "ok"),
            # pasted without leading spaces, masked host, failed in a red ERROR block
            (1, "***", "docker pull", image, "7", None, 1, "failed"),
        ],
        key=str,
    )
    # The mirror probe never finishes, the audit line says "Pulled image", and
    # traefik is pulled by docker run: none of them is a pull.
    assert len(pulls) == 3
    assert [(d.number, d.seconds) for d in parser.deploys] == [(1, 21.3)]


def test_real_kamal_1674_error_block_after_finished_all() -> None:
    pulls, parser = scan_fixture("real_kamal_1674_local_registry.log")
    assert list(map(summary, pulls)) == [
        (1, "203.0.113.10", "docker pull", "localhost:5555/shopapp", "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c", None, 1, "failed")
    ]
    # kamal setup wraps deploy: two `Finished all in`, the outer one is the deploy's time.
    assert [(d.number, d.seconds) for d in parser.deploys] == [(1, 15.0)]


def test_real_kamal_694_github_actions_links_are_repaired() -> None:
    pulls, _ = scan_fixture("real_kamal_694_github_actions.log")
    assert list(map(summary, pulls)) == [
        (1, "198.51.100.7", "docker pull", "***/shopapp", "a494d90af6f3ed3c08ee4f29d345b3b9d8769722", 123.543, 0, "ok")
    ]


def test_real_kamal_1163_implicit_pull_by_docker_run_is_not_counted() -> None:
    pulls, parser = scan_fixture("real_kamal_1163_docker_run.log")
    assert pulls == []
    assert parser.deploys == []


@pytest.mark.parametrize("fixture", ALL_FIXTURES, ids=lambda p: p.name)
@pytest.mark.parametrize("block_size", [64, 333, 1 << 20])
def test_fast_path_finds_exactly_what_a_full_parse_finds(fixture: Path, block_size: int) -> None:
    data = fixture.read_bytes()
    fast, parser = scan_bytes(data, fixture.name, block_size)
    reference, deploys = parse_lines(data.decode().splitlines(keepends=True), fixture.name)
    key = lambda p: (p.line, p.command_id)  # noqa: E731
    assert sorted(fast, key=key) == sorted(reference, key=key)
    assert [(d.number, d.seconds) for d in parser.deploys] == [(d.number, d.seconds) for d in deploys]


def test_gzip_is_detected_by_content() -> None:
    data = gzip.compress((FIXTURES / "two_deploys_and_a_cut.log").read_bytes())
    pulls, _ = scan_bytes(data)
    assert len(pulls) == 8


def test_binary_input_is_rejected() -> None:
    with pytest.raises(LogFormatError, match="binary"):
        scan_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))


def test_broken_gzip_is_rejected() -> None:
    with pytest.raises(LogFormatError, match="gzip"):
        scan_bytes(b"\x1f\x8b" + b"not really gzip at all")


def test_line_numbers_survive_block_boundaries() -> None:
    text = "".join(f"  INFO [aa{n:06x}] Running echo {n} on h1\n" for n in range(500))
    text += "  INFO [bb000001] Running docker pull app:1 on h1\n  INFO [bb000001] Finished in 1.500 seconds with exit status 0 (successful).\n"
    pulls, _ = scan_bytes(text.encode(), block_size=100)
    assert [(p.line, p.seconds) for p in pulls] == [(501, 1.5)]


def test_a_new_deploy_closes_pulls_left_open_by_the_last_one() -> None:
    log = (
        "Acquiring the deploy lock...\n"
        "  INFO [00000001] Running docker pull app:1 on h1\n"
        "  Finished all in 5.0 seconds\n"
        "Acquiring the deploy lock...\n"
        "  INFO [00000002] Running docker pull app:2 on h1\n"
        "  INFO [00000002] Finished in 2.000 seconds with exit status 0 (successful).\n"
        "  ERROR (SSHKit::Command::Failed): Exception while executing on host h1: docker exit status: 1\n"
    )
    pulls, parser = scan_bytes(log.encode())
    # The ERROR belongs to deploy 2, where h1's pull finished: it changes nothing.
    assert [(p.deploy, p.ref.tag, p.outcome, p.exit_status) for p in pulls] == [(1, "1", "unfinished", None), (2, "2", "ok", 0)]
    assert [(d.number, d.seconds) for d in parser.deploys] == [(1, 5.0), (2, None)]


def test_error_for_another_command_does_not_fail_a_pull_on_another_host() -> None:
    log = (
        "  INFO [00000001] Running docker pull app:1 on h1\n"
        "  INFO [00000002] Running docker run --rm app:1 on h2\n"
        "  ERROR (SSHKit::Command::Failed): Exception while executing on host h2: docker exit status: 125\n"
        "  INFO [00000001] Finished in 3.000 seconds with exit status 0 (successful).\n"
    )
    pulls, _ = scan_bytes(log.encode())
    assert [(p.host, p.outcome, p.seconds) for p in pulls] == [("h1", "ok", 3.0)]


def test_connection_errors_fail_the_pull_without_an_exit_status() -> None:
    log = (
        "  INFO [00000001] Running docker pull app:1 on h1\n"
        "  ERROR (Net::SSH::ConnectionTimeout): Exception while executing on host h1: connection closed by remote host\n"
    )
    pulls, _ = scan_bytes(log.encode())
    assert [(p.outcome, p.exit_status) for p in pulls] == [("failed", None)]


def test_local_commands_and_old_sshkit_finished_lines() -> None:
    log = (
        "  INFO [00000001] Running docker pull registry.example.test/app:1 as deployer@localhost\n"
        "  INFO [00000001] Finished in 0.750 seconds command successful.\n"
    )
    pulls, _ = scan_bytes(log.encode())
    assert [(p.host, p.seconds, p.exit_status) for p in pulls] == [("localhost", 0.75, 0)]


def test_a_finished_pull_with_a_non_zero_exit_is_a_failure_with_its_time() -> None:
    log = (
        "  INFO [00000001] Running docker pull app:1 on h1\n"
        "  INFO [00000001] Finished in 4.250 seconds with exit status 1 (failed).\n"
    )
    pulls, _ = scan_bytes(log.encode())
    assert [(p.seconds, p.exit_status, p.outcome, p.success) for p in pulls] == [(4.25, 1, "failed", False)]


def test_deploy_numbers_continue_across_sources_and_pulls_do_not() -> None:
    parser = KamalLogParser(source="a.log")
    first = b"Acquiring the deploy lock...\n  INFO [00000001] Running docker pull app:1 on h1\n"
    second = (
        b"Acquiring the deploy lock...\n"
        b"  ERROR (SSHKit::Command::Failed): Exception while executing on host h1: docker exit status: 1\n"
        b"  INFO [00000001] Finished in 1.000 seconds with exit status 0 (successful).\n"
    )
    pulls = list(scan_stream(io.BufferedReader(io.BytesIO(first)), parser))  # type: ignore[arg-type]
    parser.next_source("b.log")
    pulls += list(scan_stream(io.BufferedReader(io.BytesIO(second)), parser))  # type: ignore[arg-type]
    assert [(p.source, p.deploy, p.outcome) for p in pulls] == [("a.log", 1, "unfinished")]
    assert [(d.number, d.source) for d in parser.deploys] == [(1, "a.log"), (2, "b.log")]
