"""HarborSite: one Harbor installation with its storage, projects, robots, retention and GC.

Attributes other components build on (issue #3's Docker Hub mirror among them):
``harbor_provider`` (the site's ``harbor.Provider``), ``projects`` (project name ->
``harbor.Project``), ``config_system``.

Provider traps this file designs around (pulumiverse-harbor 3.10.21 =
terraform-provider-harbor v3.10.21):
- ``insecure`` defaults to *true* on the provider: set explicitly from config (false).
- The provider logs in as the admin *user*: a robot credential fails with a misleading
  CSRF error (goharbor/terraform-provider-harbor#528, #554).
- Harbor names are unique, so create-before-delete replacement hits 409: projects,
  robots and retention policies use ``delete_before_replace``.
- ``harbor.ConfigSystem`` pushes its default for every field left unset: every field
  is set here.
- GC workers are 1-5 in this version (checked in the config model).
- Robot accounts are dropped from state on any read error (upstream #614): README
  "Recovering a robot account" says how to import or rotate.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumiverse_harbor as harbor

from components.audit_log_purge import AuditLogPurge
from components.config import RetentionConfig, StackConfig, StackSecrets
from components.harbor_yml import HarborYmlSecrets, render_harbor_yml
from components.s3_policy import policy_json

#: Exactly what Kamal needs: the builder pushes, the hosts pull, one credential.
KAMAL_ACCESS: tuple[tuple[str, str], ...] = (("repository", "pull"), ("repository", "push"))
CI_ACCESS: tuple[tuple[str, str], ...] = KAMAL_ACCESS

#: What the peer's replication rules need on this site, with projects created on both
#: sites beforehand (so no project create): its pull rule lists and pulls, its push
#: rule pushes and tags. Deletion is off, so no delete.
REPLICATION_PROJECT_ACCESS: tuple[tuple[str, str], ...] = (
    ("artifact", "list"),
    ("artifact", "read"),
    ("repository", "list"),
    ("repository", "pull"),
    ("repository", "push"),
    ("tag", "create"),
    ("tag", "list"),
)
REPLICATION_SYSTEM_ACCESS: tuple[tuple[str, str], ...] = (("project", "list"),)


@dataclass(frozen=True)
class HarborSiteArgs:
    config: StackConfig
    secrets: StackSecrets


@dataclass(frozen=True)
class _Storage:
    bucket_name: pulumi.Input[str]
    region_endpoint: str | None
    access_key: pulumi.Output[str]
    secret_key: pulumi.Output[str]


def _permission(
    kind: str, namespace: pulumi.Input[str], access: tuple[tuple[str, str], ...]
) -> harbor.RobotAccountPermissionArgs:
    return harbor.RobotAccountPermissionArgs(
        kind=kind,
        namespace=namespace,
        accesses=[
            harbor.RobotAccountPermissionAccessArgs(resource=resource, action=action, effect="allow")
            for resource, action in access
        ],
    )


class HarborSite(pulumi.ComponentResource):
    """One Harbor installation: storage, harbor.yml, projects, robots, retention, GC."""

    def __init__(self, name: str, args: HarborSiteArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("harbor-platform:index:HarborSite", name, None, opts)
        self._name = name
        config, secrets = args.config, args.secrets
        self.site = config.site

        storage = self._declare_storage(config, secrets)
        self.bucket_name: pulumi.Output[str] = pulumi.Output.from_input(storage.bucket_name)
        self.s3_policy_json: str = policy_json(config.storage.bucket)
        self.harbor_yml: pulumi.Output[str] = self._render_harbor_yml(config, secrets, storage)

        self.harbor_provider = harbor.Provider(
            f"{name}-harbor",
            url=config.site.external_url,
            username=config.site.admin_username,
            password=secrets.admin_password,
            insecure=config.site.insecure,
            robot_prefix=config.system.robot_name_prefix,
            api_version=2,
            opts=pulumi.ResourceOptions(parent=self),
        )
        on_harbor = pulumi.ResourceOptions(parent=self, provider=self.harbor_provider)
        self.config_system = self._declare_system(config, on_harbor)
        # Robot logins are built from the prefix: set it before any robot exists.
        after_system = pulumi.ResourceOptions.merge(
            on_harbor, pulumi.ResourceOptions(depends_on=[self.config_system])
        )
        self.projects: dict[str, harbor.Project] = self._declare_projects(config, on_harbor)
        self.kamal_robot = self._project_robot(
            "kamal", config.robots.kamal_project, KAMAL_ACCESS, config, after_system
        )
        self.ci_robot = (
            self._project_robot("ci", config.robots.ci_project, CI_ACCESS, config, after_system)
            if config.robots.ci_project
            else None
        )
        self.replication_robot = self._replication_robot(config, after_system)
        self.garbage_collection = harbor.GarbageCollection(
            f"{name}-gc",
            schedule=config.gc.schedule,
            delete_untagged=config.gc.delete_untagged,
            workers=config.gc.workers,
            opts=on_harbor,
        )
        self.audit_log_purge = AuditLogPurge(
            f"{name}-audit-log-purge",
            harbor_url=config.site.external_url,
            schedule=config.audit_log_purge.schedule,
            retention_hours=config.audit_log_purge.retention_hours,
            include_event_types=list(config.audit_log_purge.include_event_types),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.registry_host: str = config.site.hostname
        self.kamal_registry_username: pulumi.Output[str] = self.kamal_robot.full_name
        self.kamal_registry_password: pulumi.Output[str] = pulumi.Output.secret(self.kamal_robot.secret)
        self.replication_robot_name: pulumi.Output[str] = self.replication_robot.full_name
        self.replication_robot_secret: pulumi.Output[str] = pulumi.Output.secret(
            self.replication_robot.secret
        )
        self.register_outputs(
            {
                "registryHost": self.registry_host,
                "bucketName": self.bucket_name,
                "kamalRegistryUsername": self.kamal_registry_username,
                "replicationRobotName": self.replication_robot_name,
            }
        )

    # ------------------------------------------------------------------ storage

    def _declare_storage(self, config: StackConfig, secrets: StackSecrets) -> _Storage:
        storage = config.storage
        if storage.mode == "existing":
            assert secrets.s3_access_key is not None and secrets.s3_secret_key is not None
            return _Storage(storage.bucket, storage.endpoint, secrets.s3_access_key, secrets.s3_secret_key)

        child = pulumi.ResourceOptions(parent=self)
        if storage.mode == "s3-compatible":
            # pulumi-aws pointed at the site's own S3 endpoint (FlashBlade, MinIO, Ceph):
            # skip every AWS-only check, address buckets path-style.
            s3_provider = aws.Provider(
                f"{self._name}-s3",
                region=storage.region,
                access_key=secrets.s3_admin_access_key,
                secret_key=secrets.s3_admin_secret_key,
                endpoints=[aws.ProviderEndpointArgs(s3=storage.endpoint)],
                s3_use_path_style=storage.force_path_style,
                skip_credentials_validation=True,
                skip_metadata_api_check=True,
                skip_region_validation=True,
                skip_requesting_account_id=True,
                opts=child,
            )
            child = pulumi.ResourceOptions(parent=self, provider=s3_provider)

        # The bucket holds every image: protect it from an accidental destroy.
        bucket = aws.s3.Bucket(
            f"{self._name}-bucket",
            bucket=storage.bucket,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(protect=True)),
        )
        if storage.abort_incomplete_multipart_upload_days is not None:
            # Failed pushes leave multipart uploads behind; they cost space until aborted.
            aws.s3.BucketLifecycleConfiguration(
                f"{self._name}-bucket-lifecycle",
                bucket=bucket.bucket,
                rules=[
                    aws.s3.BucketLifecycleConfigurationRuleArgs(
                        id="abort-incomplete-multipart-uploads",
                        status="Enabled",
                        filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                        abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                            days_after_initiation=storage.abort_incomplete_multipart_upload_days
                        ),
                    )
                ],
                opts=child,
            )

        if storage.mode == "s3-compatible":
            assert secrets.s3_access_key is not None and secrets.s3_secret_key is not None
            return _Storage(bucket.bucket, storage.endpoint, secrets.s3_access_key, secrets.s3_secret_key)
        return self._declare_iam_user(config, bucket)

    def _declare_iam_user(self, config: StackConfig, bucket: aws.s3.Bucket) -> _Storage:
        child = pulumi.ResourceOptions(parent=self)
        user = aws.iam.User(
            f"{self._name}-harbor-s3",
            name=config.storage.iam_user_name or f"harbor-{config.site.name}",
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        aws.iam.UserPolicy(
            f"{self._name}-harbor-s3",
            user=user.name,
            policy=policy_json(config.storage.bucket),
            opts=child,
        )
        key = aws.iam.AccessKey(f"{self._name}-harbor-s3", user=user.name, opts=child)
        return _Storage(bucket.bucket, None, pulumi.Output.secret(key.id), pulumi.Output.secret(key.secret))

    def _render_harbor_yml(
        self, config: StackConfig, secrets: StackSecrets, storage: _Storage
    ) -> pulumi.Output[str]:
        def render(values: list[str]) -> str:
            bucket, admin, database, access, secret = values
            return render_harbor_yml(
                config.site,
                config.storage.model_copy(update={"bucket": bucket}),
                config.install,
                region_endpoint=storage.region_endpoint,
                secrets=HarborYmlSecrets(admin, database, access, secret),
            )

        text = pulumi.Output.all(
            storage.bucket_name,
            secrets.admin_password,
            secrets.database_password,
            storage.access_key,
            storage.secret_key,
        ).apply(render)
        return pulumi.Output.secret(text)

    # ------------------------------------------------------------------ harbor objects

    def _declare_system(self, config: StackConfig, opts: pulumi.ResourceOptions) -> harbor.ConfigSystem:
        system = config.system
        return harbor.ConfigSystem(
            f"{self._name}-system",
            project_creation_restriction=system.project_creation_restriction,
            read_only=system.read_only,
            robot_name_prefix=system.robot_name_prefix,
            robot_token_expiration=system.robot_token_expiration_days,
            scanner_skip_update_pulltime=system.scanner_skip_update_pulltime,
            skip_audit_log_database=system.skip_audit_log_database,
            storage_per_project=system.storage_per_project_gib,
            audit_log_forward_endpoint=system.audit_log_forward_endpoint,
            opts=opts,
        )

    def _declare_projects(self, config: StackConfig, opts: pulumi.ResourceOptions) -> dict[str, harbor.Project]:
        replace_first = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(delete_before_replace=True))
        projects: dict[str, harbor.Project] = {}
        for project in sorted(config.projects, key=lambda p: p.name):
            resource = harbor.Project(
                f"{self._name}-project-{project.name}",
                name=project.name,
                public=project.public,
                storage_quota=project.storage_quota_gib if project.storage_quota_gib is not None else -1,
                vulnerability_scanning=project.vulnerability_scanning,
                force_destroy=False,
                opts=replace_first,
            )
            projects[project.name] = resource
            if project.retention is not None:
                self._declare_retention(project.name, project.retention, resource, replace_first)
        return projects

    def _declare_retention(
        self,
        project_name: str,
        retention: RetentionConfig,
        project: harbor.Project,
        opts: pulumi.ResourceOptions,
    ) -> None:
        harbor.RetentionPolicy(
            f"{self._name}-retention-{project_name}",
            scope=project.id,
            schedule=retention.schedule,
            rules=[
                harbor.RetentionPolicyRuleArgs(
                    repo_matching=rule.repo_matching,
                    tag_matching=rule.tag_matching,
                    untagged_artifacts=rule.untagged_artifacts,
                    most_recently_pushed=rule.most_recently_pushed,
                    most_recently_pulled=rule.most_recently_pulled,
                    n_days_since_last_push=rule.n_days_since_last_push,
                    n_days_since_last_pull=rule.n_days_since_last_pull,
                    always_retain=rule.always_retain,
                )
                for rule in retention.rules
            ],
            opts=opts,
        )

    def _project_robot(
        self,
        role: str,
        project_name: str,
        access: tuple[tuple[str, str], ...],
        config: StackConfig,
        opts: pulumi.ResourceOptions,
    ) -> harbor.RobotAccount:
        project = self.projects[project_name]
        return harbor.RobotAccount(
            f"{self._name}-robot-{role}",
            name=role,  # Harbor makes the login robot$<project>+<role>
            description=f"{role} for project {project_name} on {config.site.name} (managed by Pulumi)",
            level="project",
            duration=config.robots.duration_days,
            permissions=[_permission("project", project.name, access)],
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(delete_before_replace=True)),
        )

    def _replication_robot(self, config: StackConfig, opts: pulumi.ResourceOptions) -> harbor.RobotAccount:
        peer = config.replication.peer.site
        return harbor.RobotAccount(
            f"{self._name}-robot-replication",
            name=f"replication-{peer}",
            description=f"used by {peer} to replicate to and from {config.site.name} (managed by Pulumi)",
            level="system",
            duration=config.robots.duration_days,
            permissions=[
                _permission("system", "/", REPLICATION_SYSTEM_ACCESS),
                _permission("project", "*", REPLICATION_PROJECT_ACCESS),
            ],
            # Projects exist before the robot that replicates into them.
            opts=pulumi.ResourceOptions.merge(
                opts,
                pulumi.ResourceOptions(
                    delete_before_replace=True, depends_on=list(self.projects.values())
                ),
            ),
        )
