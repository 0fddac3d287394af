"""harbor-platform: load and validate the stack's config, build the components, export outputs."""

import pulumi

from components.config import load_stack_config, read_stack_secrets
from components.dockerhub_catalog import CATALOG_OUTPUT
from components.dockerhub_mirror import DockerHubMirror, DockerHubMirrorArgs, load_catalog, read_docker_hub_token
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

mirror_config = stack.docker_hub_mirror
if mirror_config is not None:  # Docker Hub mirror rules: the catalogue is read now, rules declared in plain Python
    mirror_token = read_docker_hub_token(config)
    mirror = DockerHubMirror(
        "dockerhub-mirror",
        DockerHubMirrorArgs(
            config=mirror_config,
            catalog=load_catalog(mirror_config, mirror_token),
            token=mirror_token.output,
            target_project=site.projects[mirror_config.target_project],
        ),
        opts=pulumi.ResourceOptions(providers=[site.harbor_provider]),
    )
    pulumi.export(CATALOG_OUTPUT, mirror.catalog_record)
    pulumi.export("dockerHubMirrorRules", mirror.rule_names)

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
