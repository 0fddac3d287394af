"""ReplicationPair: this site's registry endpoint for its peer, and the two seed rules.

Why the pair cannot ping-pong (goharbor/harbor#17754)
----------------------------------------------------
Harbor does not remember where an artifact came from. An artifact that arrives by
replication is a push like any other, so it fires the receiving site's event-based
push rules. With an event-based push rule on *both* sites, every push bounces back;
Harbor answers #17754 with "that is how it works" (its only brake is that a copy of an
artifact the destination already holds is skipped, which still costs a round of jobs
per push and re-fires on every tag change).

So only one site pushes on events: the ``primary``. The push rule exists in both stacks
(so a failover is one config flip, role: primary <-> backup), but it is ``enabled``
on the primary only, derived from ``site.role`` rather than configurable. The backup
catches up with its scheduled *pull* from the primary every 10 minutes (a pull is
never event-triggered, so it cannot start a chain); the primary's pull from the backup
is declared but off by default, as in the seed. The program also refuses to run when
the peer's stack says it is primary too.

Provider traps handled here (pulumiverse-harbor 3.10.21):
- one filter per filter block: a block with both ``name`` and ``tag`` sends only one;
- ``dest_namespace_replace`` is always set (its docstring states the wrong default);
- Harbor health-checks a registry endpoint on create, so the peer must exist:
  :func:`resolve_peer` returns None (with a warning) until the peer stack has outputs;
- projects exist on this site before any rule (``depends_on``), because replication
  would otherwise create missing destination projects with default settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumiverse_harbor as harbor
from pulumi.runtime.sync_await import _sync_await

from components.config import ConfigError, StackConfig, StackSecrets

#: The seed's filters, one per block.
ALL_REPOSITORIES_AND_TAGS = (
    harbor.ReplicationFilterArgs(name="**"),
    harbor.ReplicationFilterArgs(tag="**"),
)
#: -1 as in the seed. With no destination namespace, names arrive unchanged.
DEST_NAMESPACE_REPLACE = -1

PEER_OUTPUTS = ("replicationRobotName", "replicationRobotSecret", "siteRole")


@dataclass(frozen=True)
class PeerCredential:
    robot_name: pulumi.Input[str]
    robot_secret: pulumi.Output[str]


@dataclass(frozen=True)
class ReplicationPairArgs:
    config: StackConfig
    peer: PeerCredential
    harbor_provider: harbor.Provider
    projects: list[harbor.Project]


def _bootstrap_message(config: StackConfig, missing: list[str]) -> str:
    peer = config.replication.peer
    return (
        f"peer stack {peer.stack} has no {', '.join(missing)} output yet, so the registry "
        f"endpoint and replication rules for {peer.site} are skipped this run. Bootstrap order: "
        f"`pulumi up --stack {config.site.name}`, `pulumi up --stack {peer.site}`, then "
        f"`pulumi up --stack {config.site.name}` again."
    )


def resolve_peer(config: StackConfig, secrets: StackSecrets) -> PeerCredential | None:
    """The peer's replication robot credential, or None while the peer has none yet.

    Raises ConfigError when the peer claims to be primary too: two event-based push
    rules would replicate every push back and forth (goharbor/harbor#17754).
    """
    peer = config.replication.peer
    if peer.credentials_from == "config":
        assert peer.robot_name is not None and secrets.peer_replication_secret is not None
        return PeerCredential(peer.robot_name, secrets.peer_replication_secret)

    reference = pulumi.StackReference(f"{config.site.name}-peer-{peer.site}", stack_name=peer.stack)
    # The resources to declare depend on whether the peer has outputs, so this must be
    # known now, not inside an apply (no resources are ever created inside an apply).
    details = {name: _sync_await(reference.get_output_details(name)) for name in PEER_OUTPUTS}
    missing = [n for n, d in details.items() if d.value is None and d.secret_value is None]
    if missing:
        pulumi.log.warn(_bootstrap_message(config, missing))
        return None
    if details["siteRole"].value == "primary" and config.site.role == "primary":
        raise ConfigError(
            [
                f"site.role: both {config.site.name} and {peer.site} are primary; only one site may "
                "push on events or every push replicates back and forth (goharbor/harbor#17754). "
                f"Set role: backup on one of them."
            ]
        )
    return PeerCredential(
        reference.get_output("replicationRobotName"),
        pulumi.Output.secret(reference.get_output("replicationRobotSecret")),
    )


class ReplicationPair(pulumi.ComponentResource):
    """This site's side of the two-way replication with its peer."""

    def __init__(self, name: str, args: ReplicationPairArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("harbor-platform:index:ReplicationPair", name, None, opts)
        config = args.config
        peer = config.replication.peer
        on_harbor = pulumi.ResourceOptions(
            parent=self, provider=args.harbor_provider, delete_before_replace=True
        )
        self.registry = harbor.Registry(
            f"{name}-registry",
            name=peer.site,
            provider_name="harbor",
            endpoint_url=peer.url,
            access_id=args.peer.robot_name,
            access_secret=args.peer.robot_secret,
            insecure=peer.insecure,
            description=f"Harbor at {peer.site} (managed by Pulumi)",
            opts=on_harbor,
        )
        after_projects = pulumi.ResourceOptions.merge(
            on_harbor, pulumi.ResourceOptions(depends_on=list(args.projects))
        )
        self.push = harbor.Replication(
            f"{name}-push",
            name=f"Replicate images on push to {peer.site}",
            description="Event-based push; enabled on the primary site only (goharbor/harbor#17754)",
            action="push",
            registry_id=self.registry.registry_id,
            schedule="event_based",
            filters=list(ALL_REPOSITORIES_AND_TAGS),
            dest_namespace_replace=DEST_NAMESPACE_REPLACE,
            deletion=False,
            override=True,
            enabled=config.push_enabled,
            opts=after_projects,
        )
        self.pull = harbor.Replication(
            f"{name}-pull",
            name=f"Replicate missing images/artifacts from {peer.site}",
            action="pull",
            registry_id=self.registry.registry_id,
            schedule=config.replication.pull_schedule,
            filters=list(ALL_REPOSITORIES_AND_TAGS),
            dest_namespace_replace=DEST_NAMESPACE_REPLACE,
            deletion=False,
            override=True,
            enabled=config.pull_enabled,
            opts=after_projects,
        )
        self.register_outputs({"registryId": self.registry.registry_id})
