"""harbor-platform: load and validate the stack's config, build the components, export outputs."""

import pulumi

from components.config import load_stack_config, read_stack_secrets
from components.harbor_site import HarborSite, HarborSiteArgs
from components.replication_pair import ReplicationPair, ReplicationPairArgs, resolve_peer

config = pulumi.Config()
stack = load_stack_config(config)  # one line per problem, before any resource
secrets = read_stack_secrets(config, stack)

site = HarborSite(stack.site.name, HarborSiteArgs(config=stack, secrets=secrets))

peer = resolve_peer(stack, secrets)  # None, with a warning, until the peer stack has outputs
if peer is not None:
    ReplicationPair(
        f"{stack.site.name}-{stack.replication.peer.site}",
        ReplicationPairArgs(
            config=stack,
            peer=peer,
            harbor_provider=site.harbor_provider,
            projects=list(site.projects.values()),
        ),
    )

pulumi.export("siteName", stack.site.name)
pulumi.export("siteRole", stack.site.role)
pulumi.export("registryHost", site.registry_host)
pulumi.export("kamalRegistryServer", site.registry_host)
pulumi.export("kamalRegistryUsername", site.kamal_registry_username)
pulumi.export("kamalRegistryPassword", site.kamal_registry_password)
if site.ci_robot is not None:
    pulumi.export("ciRegistryUsername", site.ci_robot.full_name)
    pulumi.export("ciRegistryPassword", pulumi.Output.secret(site.ci_robot.secret))
pulumi.export("replicationRobotName", site.replication_robot_name)
pulumi.export("replicationRobotSecret", site.replication_robot_secret)
pulumi.export("bucketName", site.bucket_name)
pulumi.export("s3PolicyJson", site.s3_policy_json)
pulumi.export("harborYml", site.harbor_yml)
