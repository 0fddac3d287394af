"""Image pulls from Kamal deploy logs: a pure, streaming parser with no CLI code.

What Kamal prints (checked against capistrano/sshkit lib/sshkit/formatters/pretty.rb
and basecamp/kamal lib/kamal/commands/builder/base.rb, commands/accessory.rb,
cli/main.rb, sshkit_with_ext.rb and bin/kamal):

    Acquiring the deploy lock...                              <- a heading (Thor `say`)
      INFO [58be8d1d] Running docker pull reg/app:v1 on host1 <- level rjust(6), [id]
      INFO [58be8d1d] Finished in 3.100 seconds with exit status 0 (successful).
      Finished all in 13.5 seconds                            <- print_runtime, no id
      ERROR (SSHKit::Command::Failed): Exception while executing on host host1: docker exit status: 1

- Lines from different hosts interleave; only the id pairs Running with Finished.
- A command that fails with raise_on_non_zero_exit (every `docker pull`) never gets a
  Finished line: SSHKit raises before logging the exit. Kamal then prints the ERROR
  block (bin/kamal), with `Exceptions on N hosts:` and one `Exception while executing`
  line per host when several failed, possibly after the `Finished all in` lines.
- The app image is pulled with `docker pull`, accessories with `docker image pull`.
  `docker run` pulls implicitly without a line of its own, so it is not counted, and
  neither is the audit record "Pulled image with version" or the registry-mirror
  probe (`docker info --format '{{index .RegistryConfig.Mirrors 0}}'`).

The parser is fed decoded lines one at a time. `scan_stream` adds the fast path: it
reads bytes in large blocks and decodes only the few lines that can matter (see
`_BlockScanner`), which is what keeps a gigabyte log faster than gawk.
"""

from __future__ import annotations

import gzip
import heapq
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import BinaryIO, NamedTuple

DOCKER_HUB = "docker.io"
BLOCK_SIZE = 4 * 1024 * 1024
BINARY_SNIFF_BYTES = 8192

# CSI and OSC escapes. Kamal hard-codes "\e[31m...\e[0m" around its ERROR message
# even when piped; SSHKit colours level, id and command on a TTY or SSHKIT_COLOR.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
# Copying a log from the GitHub Actions UI splices line-number links into the text,
# digits and all: "Finished in [12](https://github.com/o/r/actions/runs/1/job/2#step:10:13)3.5".
_GITHUB_LINE_LINK = re.compile(r"\[(\d+)\]\(https://github\.com/[^)\s]*\)")
# search(), not match(): CI runners prefix timestamps, pastes lose the leading spaces.
_COMMAND_ID = re.compile(r"\[([0-9a-f]{4,40})\] ")  # SSHKit: "[uuid] " then the message
# The rest of an uncoloured Finished line after "[uuid] Finished" (scanner's shortcut).
_FINISHED_TAIL = re.compile(rb" in (\d+(?:\.\d+)?) seconds with exit status (\d+) \((successful|failed)\)")
# Greedy command, so " on " inside the command is kept and the last one wins.
_RUNNING = re.compile(r"^(?P<cmd>.+)\s(?:on\s|as\s(?P<user>[^\s@]+)@)(?P<host>\S+)\s*$")
# SSHKit joins a command's words with single spaces, so " pull " is in every pull.
_PULL = re.compile(r"^(?:/usr/bin/env )?docker (?P<sub>pull|image pull) (?P<args>.+)$")
_FINISHED = re.compile(
    r"^in\s+(?P<secs>\d+(?:\.\d+)?)\s+seconds\s+"
    r"(?:with\s+exit\s+status\s+(?P<status>\d+)\s+\((?P<result>successful|failed)\)"
    r"|command\s+(?P<old_result>successful|failed))"  # SSHKit < 1.8 had no exit status
)
_FINISHED_ALL = re.compile(r"Finished all in (?P<secs>\d+(?:\.\d+)?) seconds")
_ERROR = re.compile(r"\bERROR \((?P<cls>[\w:]+)\):\s?(?P<msg>.*)$")
_EXCEPTION = re.compile(
    r"Exception while executing (?:on host |as [^\s@]+@)(?P<host>\S+?):\s"
    r"(?:(?P<cmd>[\w./-]+) exit status: (?P<status>\d+))?"
)
_EXCEPTIONS_ON = re.compile(r"Exceptions on \d+ hosts:")
# Headings that open a deploy (kamal deploy / redeploy / setup / build pull).
_DEPLOY_HEADING = re.compile(
    r"(?:^|\s)(?:Acquiring the deploy lock|Log into image registry|Build and push app image"
    r"|Pull app image|Ensure Docker is installed)\.\.\.\s*$"
)
# docker pull options that take a value; every other option is a flag.
_VALUE_OPTIONS = frozenset({"--platform"})

# Substrings of every line the parser acts on, except two kinds the scanner adds
# while they can matter: the Finished line of an open pull (found by its id) and
# "Exception while executing" inside an ERROR block. Keep in step with feed_line.
# Needles of 6+ bytes let CPython's find use its skipping two-way search.
SELECT_KEYWORDS: tuple[bytes, ...] = (
    b" pull ",
    b"Finished all in ",
    b"ERROR (",
    b"...",  # deploy headings
    b"](https://github.com/",  # a spliced link may split an open pull's id
)
ERROR_BLOCK_KEYWORD = b"Exception while executing"


class LogFormatError(ValueError):
    """The input cannot be a Kamal log (binary data, broken gzip)."""


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An image reference split the way Docker normalises it."""

    reference: str
    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def image(self) -> str:
        """Registry and repository without tag or digest, e.g. docker.io/library/redis."""
        return f"{self.registry}/{self.repository}"


def parse_image_reference(reference: str) -> ImageRef:
    """Split `[registry/]repository[:tag][@digest]` by Docker's rules.

    The first path component is a registry only if it contains '.' or ':' or is
    'localhost' (or is a CI mask such as '***'); otherwise the registry is docker.io, and a one-component name
    lives under `library/` (docker/distribution reference.ParseNormalizedNamed).

    >>> parse_image_reference("redis:7").image
    'docker.io/library/redis'
    >>> parse_image_reference("localhost:5555/app@sha256:ab").registry
    'localhost:5555'
    """
    name, _, digest = reference.partition("@")
    first, slash, remainder = name.partition("/")
    masked = bool(first) and first.strip("*") == ""  # CI masked the registry secret
    if slash and (masked or "." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
    else:
        registry, path = DOCKER_HUB, name
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    tag: str | None = None
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1 :]
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    return ImageRef(reference, registry, path, tag or None, digest or None)


class Pull(NamedTuple):
    """One image pull: a `docker pull` or `docker image pull` Running line and its end.

    A NamedTuple: a gigabyte of logs makes hundreds of thousands of these.
    """

    deploy: int
    source: str
    line: int
    command_id: str
    command: str
    host: str
    ref: ImageRef
    seconds: float | None
    exit_status: int | None
    outcome: str  # "ok" | "failed" | "unfinished"

    @property
    def success(self) -> bool:
        return self.outcome == "ok"


@dataclass(slots=True)
class Deploy:
    """A run of Kamal between its opening heading and its last `Finished all in`."""

    number: int
    source: str
    seconds: float | None = None


class _OpenPull(NamedTuple):
    deploy: int
    line: int
    command_id: str
    command: str
    host: str
    ref: ImageRef


def clean_line(text: str) -> str:
    """The line as Kamal printed it: no colours, no spliced links, no line ending."""
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    if "](https://github.com/" in text:
        text = _GITHUB_LINE_LINK.sub(r"\1", text)
    return text.rstrip("\r\n")


@lru_cache(maxsize=1024)  # every host of a deploy runs the same pull command
def _pull_command(command: str) -> tuple[str, ImageRef] | None:
    """('docker pull', ref) when the command is a plain image pull, else None."""
    match = _PULL.match(command.strip())
    if match is None:
        return None
    words = match["args"].split()
    index = 0
    while index < len(words) and words[index].startswith("-"):
        option = words[index]
        index += 2 if option in _VALUE_OPTIONS else 1
    if index >= len(words):
        return None
    reference = words[index].strip("'\"")
    if not reference or reference.startswith("$"):
        return None
    kind = "docker image pull" if match["sub"] != "pull" else "docker pull"
    return kind, parse_image_reference(reference)


@dataclass
class KamalLogParser:
    """Turns Kamal log lines into Pull records, one source (file or stdin) at a time.

    Feed every line (or only the lines `_BlockScanner` selects: the result is the
    same) with `feed_line`, then call `finish`. Completed pulls collect in `ready`.
    Deploy numbers continue across sources when one parser is reused via `next_source`.
    """

    source: str = "-"
    ready: list[Pull] = field(default_factory=list)
    deploys: list[Deploy] = field(default_factory=list)
    _open: dict[str, _OpenPull] = field(default_factory=dict)
    _deploy_open: bool = False
    _in_error_block: bool = False
    _opened: list[str] = field(default_factory=list)

    @property
    def open_ids(self) -> tuple[str, ...]:
        """Ids of pulls that started and have not finished: their Finished line matters."""
        return tuple(self._open)

    @property
    def in_error_block(self) -> bool:
        return self._in_error_block

    def is_open(self, command_id: str) -> bool:
        return command_id in self._open

    def take_opened(self) -> list[str]:
        """Ids of pulls opened since the last call (the scanner starts looking for them)."""
        if not self._opened:
            return self._opened
        opened, self._opened = self._opened, []
        return opened

    def next_source(self, source: str) -> None:
        """Close what the previous source left open and continue with another one."""
        self.finish()
        self.source = source
        self._deploy_open = False
        self._in_error_block = False

    def feed_line(self, raw: str, line_number: int) -> None:
        if "\0" in raw:  # past the sniffed start; only lines that get decoded are checked
            raise LogFormatError(f"binary data (a NUL byte) on line {line_number}, not a Kamal log")
        text = clean_line(raw)
        command = _COMMAND_ID.search(text)
        if command is not None:
            # An SSHKit command line. Its output (DEBUG chunks) is never a heading,
            # ERROR block or summary, so nothing else needs checking.
            verb_at = command.end()
            if text.startswith("Running ", verb_at):
                self._on_running(command[1], text[verb_at + 8 :], line_number)
            elif text.startswith("Finished ", verb_at):
                self._on_finished(command[1], text[verb_at + 9 :].lstrip())
            return
        if (finished_all := _FINISHED_ALL.search(text)) is not None:
            self._on_finished_all(float(finished_all["secs"]))
        elif (error := _ERROR.search(text)) is not None:
            self._in_error_block = True
            self._on_exception_text(error["msg"])
        elif self._in_error_block and (exception := _EXCEPTION.match(text.lstrip())) is not None:
            self._resolve_from_exception(exception)
        elif _DEPLOY_HEADING.search(text) is not None:
            self._in_error_block = False
            self._open_deploy()

    def finish(self) -> None:
        """End of input: pulls still open never finished."""
        for open_pull in list(self._open.values()):
            self._complete(open_pull, seconds=None, exit_status=None, outcome="unfinished")

    # -- events --------------------------------------------------------------

    def _on_running(self, command_id: str, rest: str, line_number: int) -> None:
        running = _RUNNING.match(rest)
        if running is None:
            return
        pull = _pull_command(running["cmd"])
        if pull is None:
            return
        self._in_error_block = False
        if not self._deploy_open:
            self._open_deploy()
        kind, ref = pull
        self._open[command_id] = _OpenPull(
            self.deploys[-1].number, line_number, command_id, kind, running["host"], ref
        )
        self._opened.append(command_id)

    def _on_finished(self, command_id: str, rest: str) -> None:
        if command_id not in self._open:
            return
        finished = _FINISHED.match(rest)
        if finished is None:
            return
        result = finished["result"] or finished["old_result"]
        status = int(finished["status"]) if finished["status"] is not None else None
        self.finish_pull(command_id, float(finished["secs"]), status, result == "successful")

    def finish_pull(self, command_id: str, seconds: float, exit_status: int | None, successful: bool) -> None:
        """An open pull's Finished line: `Finished in S seconds with exit status N (...)`."""
        if exit_status is None:  # old SSHKit printed no status
            exit_status = 0 if successful else None
        outcome = "ok" if successful else "failed"
        self._complete(self._open[command_id], seconds=seconds, exit_status=exit_status, outcome=outcome)

    def _on_finished_all(self, seconds: float) -> None:
        # Nested print_runtime blocks (setup -> deploy) print several; the outermost,
        # printed last, is the longest.
        if self.deploys:
            current = self.deploys[-1]
            current.seconds = seconds if current.seconds is None else max(current.seconds, seconds)
        self._deploy_open = False

    def _on_exception_text(self, message: str) -> None:
        exception = _EXCEPTION.match(message)
        if exception is not None:
            self._resolve_from_exception(exception)
        elif _EXCEPTIONS_ON.match(message) is None:
            self._in_error_block = False  # some other error: its lines are not ours

    def _resolve_from_exception(self, exception: re.Match[str]) -> None:
        host = exception["host"]
        # Oldest open pull on that host first: with masked hosts (***) several share a name.
        for open_pull in self._open.values():
            if open_pull.host == host:
                status = int(exception["status"]) if exception["status"] is not None else None
                self._complete(open_pull, seconds=None, exit_status=status, outcome="failed")
                return

    def _open_deploy(self) -> None:
        if self._deploy_open:
            return
        # Pulls of the previous deploy that neither finished nor failed in an ERROR
        # block by now never will.
        self.finish()
        self.deploys.append(Deploy(len(self.deploys) + 1, self.source))
        self._deploy_open = True

    def _complete(self, open_pull: _OpenPull, *, seconds: float | None, exit_status: int | None, outcome: str) -> None:
        del self._open[open_pull.command_id]
        self.ready.append(
            Pull(
                deploy=open_pull.deploy,
                source=self.source,
                line=open_pull.line,
                command_id=open_pull.command_id,
                command=open_pull.command,
                host=open_pull.host,
                ref=open_pull.ref,
                seconds=seconds,
                exit_status=exit_status,
                outcome=outcome,
            )
        )


_ERROR_TAG = "!error-block"


def _decode(line: bytes) -> str:
    return line.decode("utf-8", errors="replace")


class _BlockScanner:
    """Finds, in order, the lines of a block the parser can act on.

    A line matters only if it holds one of SELECT_KEYWORDS or the id of an open pull.
    bytes.find runs at memory speed; a heap keeps the next position of every needle,
    so each selected line costs a few heap operations, whatever the number of hosts
    pulling at once. Everything else in the block is never decoded.
    """

    def __init__(self, parser: KamalLogParser) -> None:
        self._parser = parser

    def scan(self, block: bytes, first_line_number: int) -> int:
        """Feed the block's selected lines; return the next block's first line number."""
        parser = self._parser
        find = block.find
        absent = len(block)  # position meaning "not in the rest of the block"
        # Uncoloured, an open pull's id matters only on its Finished line; coloured,
        # escapes sit between the id and "] Finished", so any line with the id is fed.
        first_escape = block.find(b"\x1b")  # memchr: cheap when there are none
        coloured = first_escape >= 0 and block.find(b"[\x1b[", max(0, first_escape - 1)) >= 0
        id_suffix = b"" if coloured else b"] Finished"

        def next_at(needle: bytes, start: int) -> int:
            at = find(needle, start)
            return absent if at < 0 else at

        open_pulls = parser._open  # the scanner is the parser's companion in this module

        def still_wanted(tag: str) -> bool:
            if tag == _ERROR_TAG:
                return parser.in_error_block
            return tag in open_pulls

        # (position, needle, tag): tag "" for keywords, _ERROR_TAG, or a command id
        heap = [(next_at(keyword, 0), keyword, "") for keyword in SELECT_KEYWORDS]
        for command_id in parser.open_ids:
            needle = command_id.encode() + id_suffix
            heap.append((next_at(needle, 0), needle, command_id))
        error_block_followed = parser.in_error_block
        if error_block_followed:
            heap.append((next_at(ERROR_BLOCK_KEYWORD, 0), ERROR_BLOCK_KEYWORD, _ERROR_TAG))
        heapq.heapify(heap)
        line_number = first_line_number
        counted_to = 0
        while heap[0][0] < absent:
            hit, needle, tag = heap[0]
            if tag and not still_wanted(tag):
                heapq.heappop(heap)  # a pull closed elsewhere, or the ERROR block ended
                if tag == _ERROR_TAG:
                    error_block_followed = False
                continue
            end = find(b"\n", hit)
            if end < 0:
                end = absent
            tail = _FINISHED_TAIL.match(block, hit + len(needle), end) if id_suffix and tag else None
            if tail is not None:
                # What feed_line would do with this line, without decoding it.
                parser.finish_pull(tag, float(tail[1]), int(tail[2]), tail[3] == b"successful")
            else:
                start = block.rfind(b"\n", 0, hit) + 1
                line_number += block.count(b"\n", counted_to, start)
                counted_to = start
                parser.feed_line(_decode(block[start:end]), line_number)
            resume = end + 1
            while heap[0][0] < resume:
                _, needle, tag = heapq.heappop(heap)
                if not tag or still_wanted(tag):
                    at = find(needle, resume)
                    heapq.heappush(heap, (absent if at < 0 else at, needle, tag))
                elif tag == _ERROR_TAG:
                    error_block_followed = False
            if parser._opened:
                for opened in parser.take_opened():
                    needle = opened.encode() + id_suffix
                    heapq.heappush(heap, (next_at(needle, resume), needle, opened))
            if parser.in_error_block and not error_block_followed:
                heapq.heappush(heap, (next_at(ERROR_BLOCK_KEYWORD, resume), ERROR_BLOCK_KEYWORD, _ERROR_TAG))
                error_block_followed = True
        return line_number + block.count(b"\n", counted_to)


def _open_stream(stream: BinaryIO) -> BinaryIO:
    """Transparently gunzip when the stream starts with the gzip magic number."""
    peek = getattr(stream, "peek", None)
    head = peek(2)[:2] if peek is not None else b""
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    return stream


def sniff_log(stream: BinaryIO) -> None:
    """Raise LogFormatError unless the start of the stream looks like text (or gzipped text)."""
    head = _read_first(_open_stream(stream), BINARY_SNIFF_BYTES)
    if b"\0" in head:
        raise LogFormatError("binary data, not a Kamal log")


def _read_first(stream: BinaryIO, size: int) -> bytes:
    try:
        return stream.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise LogFormatError(f"not a readable log or gzip file ({exc})") from exc


def _read_blocks(stream: BinaryIO, block_size: int) -> Iterator[bytes]:
    """Blocks that end on a line boundary (the last one may not).

    At most two blocks are alive at a time, which bounds the reader's memory.
    """
    carry = b""
    while True:
        try:
            chunk = stream.read(block_size)
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            raise LogFormatError(f"not a readable log or gzip file ({exc})") from exc
        if not chunk:
            break
        data = carry + chunk if carry else chunk
        del chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            carry = data
            continue
        if cut == len(data):
            carry = b""
            yield data
        else:
            carry = data[cut:]
            block = data[:cut]
            del data
            yield block
            del block
    if carry:
        yield carry


def scan_stream(
    stream: BinaryIO,
    parser: KamalLogParser,
    *,
    block_size: int = BLOCK_SIZE,
    on_block: Callable[[], None] | None = None,
) -> Iterator[Pull]:
    """Parse one source with the fast path, yielding pulls as they complete."""
    scanner = _BlockScanner(parser)
    line_number = 1
    first = True
    for block in _read_blocks(_open_stream(stream), block_size):
        if first:
            first = False
            if b"\0" in block[:BINARY_SNIFF_BYTES]:
                raise LogFormatError("binary data, not a Kamal log")
        line_number = scanner.scan(block, line_number)
        if parser.ready:
            yield from parser.ready
            parser.ready.clear()
        if on_block is not None:
            on_block()
    parser.finish()
    yield from parser.ready
    parser.ready.clear()


def parse_lines(lines: Iterator[str] | list[str], source: str = "-") -> tuple[list[Pull], list[Deploy]]:
    """Reference path: feed every line. Tests compare it with the fast path."""
    parser = KamalLogParser(source=source)
    pulls: list[Pull] = []
    for number, line in enumerate(lines, start=1):
        parser.feed_line(line, number)
        parser.take_opened()  # only the fast path needs them
        pulls.extend(parser.ready)
        parser.ready.clear()
    parser.finish()
    pulls.extend(parser.ready)
    return pulls, parser.deploys
