"""DockerHubMirror: Harbor pulls a Docker Hub organisation, one replication rule per repository.

A single ``**`` rule gets throttled with 429s even on a paid Docker Hub account, so, as in the
seed, every repository gets its own manual pull rule that ``harborops mirror trigger`` paces.
The rule list comes from the catalogue decided by :mod:`components.dockerhub_catalog` BEFORE any
resource is declared, so every rule is declared in plain Python and shows in ``pulumi preview``.

Example (what ``__main__.py`` does)::

    token = read_docker_hub_token(pulumi.Config())
    catalog = load_catalog(stack.docker_hub_mirror, token)          # reads Docker Hub now
    mirror = DockerHubMirror("dockerhub-mirror", DockerHubMirrorArgs(
        config=stack.docker_hub_mirror, catalog=catalog, token=token.output,
        target_project=site.projects["yourorg"]), opts=pulumi.ResourceOptions(providers=[site.harbor_provider]))
    pulumi.export(CATALOG_OUTPUT, mirror.catalog_record)
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import pulumi
import pulumiverse_harbor as harbor
from pydantic import SecretStr

from components.config import DockerHubMirrorConfig
from components.dockerhub_catalog import CatalogDecision, DockerHubCatalog, decide_catalog, read_last_snapshot
from harborops.clients.dockerhub import Catalog, DockerHubClient

TOKEN_KEY = "dockerHubToken"


@dataclass(frozen=True)
class DockerHubToken:
    """The mirror's Docker Hub token: a SecretStr for the program's own fetch, an Output for Harbor."""

    value: SecretStr
    output: pulumi.Output[str]


def read_docker_hub_token(config: pulumi.Config) -> DockerHubToken:
    """Read the secret key ``dockerHubToken``; a missing key fails with Pulumi's one-line message naming it."""
    output = config.require_secret(TOKEN_KEY)
    return DockerHubToken(value=SecretStr(config.require(TOKEN_KEY)), output=output)


def load_catalog(
    config: DockerHubMirrorConfig, token: DockerHubToken, reference_name: str = "dockerhub-mirror-last-catalog"
) -> CatalogDecision:
    """Read the last recorded catalogue, fetch the live one, and decide by the safety rules."""
    previous = read_last_snapshot(reference_name)

    def fetch() -> Catalog:
        with DockerHubClient(
            base_url=config.api_url,
            username=config.username,
            token=token.value,
            max_concurrency=config.max_concurrency,
            timeout=config.request_timeout_seconds,
        ) as client:
            return client.fetch_catalog(config.namespace)

    return decide_catalog(
        config.namespace,
        fetch,
        previous,
        max_shrink_fraction=config.max_shrink_fraction,
        allow_shrink=config.allow_shrink,
    )


def selected_repositories(config: DockerHubMirrorConfig, names: list[str]) -> list[str]:
    """The repositories that get a rule: matching an ``include`` glob and no ``exclude`` glob, sorted."""
    return sorted(
        name
        for name in set(names)
        if any(fnmatchcase(name, glob) for glob in config.include)
        and not any(fnmatchcase(name, glob) for glob in config.exclude)
    )


@dataclass(frozen=True)
class DockerHubMirrorArgs:
    config: DockerHubMirrorConfig
    catalog: CatalogDecision
    #: Secret Output of the Docker Hub token, for the Harbor registry endpoint.
    token: pulumi.Input[str]
    #: The Harbor project the rules write into; rules wait for it.
    target_project: pulumi.Resource | None = None


class DockerHubMirror(pulumi.ComponentResource):
    """Docker Hub registry endpoint, the recorded catalogue, one pull rule per repository,
    and optionally a proxy-cache project for official images."""

    def __init__(self, name: str, args: DockerHubMirrorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("harbor-platform:index:DockerHubMirror", name, None, opts)
        config = args.config
        # Harbor names are unique: a create-before-delete replacement would get a 409.
        child = pulumi.ResourceOptions(parent=self, delete_before_replace=True)
        for warning in args.catalog.warnings:
            pulumi.log.warn(warning, resource=self)

        self.registry = harbor.Registry(
            f"{name}-registry",
            name=config.registry_name,
            provider_name="docker-hub",
            endpoint_url=config.endpoint_url,
            access_id=config.username,
            access_secret=pulumi.Output.secret(args.token),
            description=f"Docker Hub organisation {config.namespace}: mirror source (managed by Pulumi)",
            opts=child,
        )
        self.catalog = DockerHubCatalog(f"{name}-catalog", args.catalog.snapshot, opts=child)

        self.repositories = selected_repositories(config, args.catalog.snapshot.names)
        rule_opts = child.merge(
            pulumi.ResourceOptions(depends_on=[args.target_project] if args.target_project is not None else [])
        )
        self.rules: dict[str, harbor.Replication] = {
            repository: self._rule(name, config, repository, rule_opts) for repository in self.repositories
        }
        self.rule_names = [f"{config.rule_name_prefix}{repository}" for repository in self.repositories]

        self.proxy_cache_project = None
        if config.proxy_cache is not None:
            self.proxy_cache_project = harbor.Project(
                f"{name}-proxy-cache",
                name=config.proxy_cache.project,
                public=config.proxy_cache.public,
                registry_id=self.registry.registry_id,
                opts=child,
            )

        # Read back by the next run (read_last_snapshot): what the dynamic resource recorded.
        self.catalog_record: pulumi.Output[dict[str, Any]] = pulumi.Output.all(
            namespace=self.catalog.namespace, repositories=self.catalog.repositories
        )
        self.register_outputs(
            {
                "registryId": self.registry.registry_id,
                "ruleNames": self.rule_names,
                "catalogSource": args.catalog.source,
                "catalog": self.catalog_record,
            }
        )

    def _rule(
        self, name: str, config: DockerHubMirrorConfig, repository: str, opts: pulumi.ResourceOptions
    ) -> harbor.Replication:
        # The seed's settings: manual pull, flatten one level into the target project, chunked copy.
        # Name and tag are separate filter blocks: combined in one block the name is lost
        # (seen with the Crossplane provider: globallogicuki/provider-harbor#9).
        return harbor.Replication(
            f"{name}-{repository}",
            name=f"{config.rule_name_prefix}{repository}",
            description=f"Mirror {config.namespace}/{repository} from Docker Hub (managed by Pulumi)",
            action="pull",
            schedule="manual",
            enabled=True,
            registry_id=self.registry.registry_id,
            dest_namespace=config.target_project,
            dest_namespace_replace=1,
            override=True,
            copy_by_chunk=True,
            filters=[
                harbor.ReplicationFilterArgs(name=f"{config.namespace}/{repository}"),
                harbor.ReplicationFilterArgs(tag=config.tag_filter),
            ],
            opts=opts,
        )
