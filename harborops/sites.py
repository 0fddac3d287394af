"""harborops sites: compare what two Harbor sites hold, tag by tag.

Credentials: HARBOR_USERNAME / HARBOR_PASSWORD serve both sites, unless a site has
its own: HARBOR_LEFT_USERNAME / HARBOR_LEFT_PASSWORD for the first URL and
HARBOR_RIGHT_USERNAME / HARBOR_RIGHT_PASSWORD for the second (each falls back to the
common one on its own, so a shared user with per-site passwords works too).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from harborops.clients.harbor import HarborClient, HarborNotFound
from harborops.errors import HarborOpsError, UsageError
from harborops.settings import TimeoutOption, UsernameOption, resolve_connection

app = typer.Typer(no_args_is_help=True, help="Compare the two Harbor sites.")

T = TypeVar("T")
TagMap = dict[str, dict[str, str]]  # repository -> tag -> digest


@dataclass(frozen=True, order=True)
class TagDrift:
    repository: str
    tag: str
    left_digest: str | None
    right_digest: str | None


@dataclass
class SiteDiff:
    """What --json prints (field names are stable)."""

    left: str
    right: str
    projects: list[str]
    repositories_compared: int = 0
    tags_compared: int = 0
    missing_on_left: list[TagDrift] = field(default_factory=list)
    missing_on_right: list[TagDrift] = field(default_factory=list)
    different: list[TagDrift] = field(default_factory=list)
    projects_missing_on_left: list[str] = field(default_factory=list)  # even when empty: drift
    projects_missing_on_right: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return bool(self.missing_on_left or self.missing_on_right or self.different
                    or self.projects_missing_on_left or self.projects_missing_on_right)


def compare_tags(left: TagMap, right: TagMap) -> tuple[list[TagDrift], list[TagDrift], list[TagDrift]]:
    """(missing_on_left, missing_on_right, different), each sorted by repository and tag."""
    missing_left, missing_right, different = [], [], []
    for repo in sorted(left.keys() | right.keys()):
        lt, rt = left.get(repo, {}), right.get(repo, {})
        for tag in sorted(lt.keys() | rt.keys()):
            entry = TagDrift(repo, tag, lt.get(tag), rt.get(tag))
            if entry.left_digest is None:
                missing_left.append(entry)
            elif entry.right_digest is None:
                missing_right.append(entry)
            elif entry.left_digest != entry.right_digest:
                different.append(entry)
    return missing_left, missing_right, different


class _Bounded:
    """One thread pool for both sites: at most `limit` Harbor calls in flight."""

    def __init__(self, limit: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="sites-diff")

    def all(self, calls: Iterable[Callable[[], T]], on_done: Callable[[], None] | None = None) -> list[T]:
        futures: list[Future[T]] = [self.pool.submit(call) for call in calls]
        if on_done:
            for f in futures:
                f.add_done_callback(lambda _: on_done())
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _project_names(client: HarborClient) -> list[str]:
    return [p.name for p in client.list_projects()]


def _repositories(client: HarborClient, project: str) -> list[str]:
    try:
        return [r.name for r in client.list_repositories(project)]
    except HarborNotFound:
        return []  # the project is missing on this side: all its tags are "missing"


def _tags(client: HarborClient, repository: str) -> dict[str, str]:
    try:
        artifacts = client.list_artifacts(repository)
    except HarborNotFound:
        return {}
    return {tag.name: artifact.digest for artifact in artifacts for tag in artifact.tags}


def diff_sites(left: HarborClient, right: HarborClient, projects: list[str] | None, *,
               concurrency: int, progress: Progress | None = None) -> SiteDiff:
    bounded = _Bounded(concurrency)
    try:
        sides = (left, right)
        on_left, on_right = (set(names) for names in bounded.all([partial(_project_names, c) for c in sides]))
        if projects:
            _check_projects_exist(projects, on_left | on_right, left, right)
        else:
            projects = sorted(on_left | on_right)
        repo_lists = bounded.all([partial(_repositories, c, p) for p in projects for c in sides])
        repositories = sorted({name for names in repo_lists for name in names})
        advance = None
        if progress is not None:
            advance = partial(progress.advance, progress.add_task("comparing tags", total=2 * len(repositories)))
        # left, right, left, right...: index 2i is the left side of repositories[i]
        tag_maps = bounded.all([partial(_tags, c, r) for r in repositories for c in sides], advance)
    finally:
        bounded.pool.shutdown(wait=True, cancel_futures=True)
    left_tags = {repo: tag_maps[2 * i] for i, repo in enumerate(repositories)}
    right_tags = {repo: tag_maps[2 * i + 1] for i, repo in enumerate(repositories)}
    result = SiteDiff(left.base_url, right.base_url, projects, repositories_compared=len(repositories),
                      tags_compared=len({(r, t) for r, m in (*left_tags.items(), *right_tags.items()) for t in m}))
    result.missing_on_left, result.missing_on_right, result.different = compare_tags(left_tags, right_tags)
    result.projects_missing_on_left = [p for p in projects if p not in on_left]
    result.projects_missing_on_right = [p for p in projects if p not in on_right]
    return result


def _check_projects_exist(wanted: list[str], known: set[str], left: HarborClient, right: HarborClient) -> None:
    """A --project that neither site has is a typo, not two sites that agree."""
    for name in wanted:
        if name in known:
            continue
        close = sorted(k for k in known if k.lower() == name.lower())
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise HarborOpsError(f"--project {name!r}: no such project on {left.base_url} or {right.base_url} "
                             f"(or user {left.username!r} cannot see it){hint}")


def drift_table(diff: SiteDiff) -> Table:
    table = Table()
    table.add_column("Drift")
    table.add_column("Repository", no_wrap=True)
    table.add_column("Tag", no_wrap=True)
    table.add_column("Left digest", no_wrap=True)
    table.add_column("Right digest", no_wrap=True)
    short = lambda d: d.removeprefix("sha256:")[:12] if d else "-"  # noqa: E731
    for label, projects in (("project missing on left", diff.projects_missing_on_left),
                            ("project missing on right", diff.projects_missing_on_right)):
        for name in projects:
            table.add_row(label, name + "/", "-", "-", "-")
    for label, entries in (("missing on left", diff.missing_on_left), ("missing on right", diff.missing_on_right),
                           ("different", diff.different)):
        for e in entries:
            table.add_row(label, e.repository, e.tag, short(e.left_digest), short(e.right_digest))
    return table


CREDENTIALS_HELP = (
    "Credentials, from the environment only: HARBOR_USERNAME (or --username) and HARBOR_PASSWORD serve both "
    "sites; HARBOR_LEFT_USERNAME / HARBOR_LEFT_PASSWORD (first URL) and HARBOR_RIGHT_USERNAME / "
    "HARBOR_RIGHT_PASSWORD (second URL) override them per site. Passwords are never flags and never printed."
)


@app.command(epilog=CREDENTIALS_HELP)
def diff(
    # metavar: click's own errors ("Missing argument") then use the names our errors use
    left_url: Annotated[str, typer.Argument(metavar="LEFT_URL", help="First site, e.g. https://harbor.chi.example.com",
                                            show_default=False)],
    right_url: Annotated[str, typer.Argument(metavar="RIGHT_URL",
                                             help="Second site, e.g. https://harbor.iad.example.com",
                                             show_default=False)],
    project: Annotated[list[str] | None, typer.Option("--project", "-p",
                                                      help="Only this project (repeatable); it must exist on at "
                                                           "least one site. Default: all.")] = None,
    username: UsernameOption = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=32,
                                             help="Harbor calls in flight at once, both sites together.")] = 8,
    json_output: Annotated[bool, typer.Option("--json", help="A JSON object on stdout.")] = False,
    timeout: TimeoutOption = 10.0,
) -> None:
    """Compare repositories, tags and digests of two sites; exit 1 when they drift.

    Drift is a tag missing on one side or pointing at another digest, or a project only one site has (even an empty one). A --project that neither site has is an error (exit 1), not "no drift".

    --json prints {"left", "right", "projects", "repositories_compared", "tags_compared", "missing_on_left", "missing_on_right", "different", "projects_missing_on_left", "projects_missing_on_right"}; each tag drift entry has repository, tag, left_digest and right_digest.

    Example: harborops sites diff https://harbor.chi.example.com https://harbor.iad.example.com -p yourorg
    """
    for name in project or []:
        if not name.strip():
            raise UsageError("--project: empty project name (leave -p out to compare every project)")
    left_conn = resolve_connection(left_url, username, url_flag="LEFT_URL", env_prefix="HARBOR_LEFT_")
    right_conn = resolve_connection(right_url, username, url_flag="RIGHT_URL", env_prefix="HARBOR_RIGHT_")
    if left_conn.url == right_conn.url:
        raise UsageError(f"LEFT_URL and RIGHT_URL are the same site ({left_conn.url}); nothing to compare")
    err = Console(stderr=True)
    with left_conn.client(timeout=timeout, max_connections=concurrency) as left, \
            right_conn.client(timeout=timeout, max_connections=concurrency) as right:
        left.current_user()
        right.current_user()
        with Progress(console=err, transient=True, disable=json_output or not err.is_terminal) as progress:
            wanted = list(dict.fromkeys(project)) if project else None  # -p twice is one project
            result = diff_sites(left, right, wanted, concurrency=concurrency, progress=progress)
    if json_output:
        print(json.dumps(asdict(result), indent=2))
    else:
        out = Console()
        if result.drifted:
            out.print(drift_table(result))
        projects_missing = len(result.projects_missing_on_left) + len(result.projects_missing_on_right)
        out.print(f"{result.left} vs {result.right}: {result.repositories_compared} repositories, "
                  f"{result.tags_compared} tags; {len(result.missing_on_left)} missing on left, "
                  f"{len(result.missing_on_right)} missing on right, {len(result.different)} different"
                  + (f"; {projects_missing} projects on one site only" if projects_missing else ""))
    if result.drifted:
        raise typer.Exit(1)
