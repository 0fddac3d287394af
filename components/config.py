"""Stack configuration: pydantic models, validated once before any resource is declared.

Every top-level field of :class:`StackConfig` is one Pulumi config key in the
``harbor-platform`` namespace (``site``, ``storage``, ``projects`` ...), written in
camelCase in ``Pulumi.<stack>.yaml``. Secrets are *not* part of these models: they
are separate ``pulumi config set --secret`` keys (see :data:`SECRET_KEYS`) read with
``require_secret``, so a validation error can never echo one.

Example::

    config = load_stack_config(pulumi.Config())   # raises ConfigError, one line per problem
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import pulumi
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic.alias_generators import to_camel

PROJECT_NAME = "harbor-platform"

#: Harbor's own default robot prefix. Every robot login starts with it.
HARBOR_DEFAULT_ROBOT_PREFIX = "robot$"

#: Secret config keys (``pulumi config set --secret KEY``). Never part of a model.
#: load_stack_config refuses any ``harbor-platform:`` key that is neither here nor a
#: StackConfig field: a new secret (e.g. the Docker Hub token) must be added here, a new
#: model as an optional StackConfig field.
SECRET_KEYS: dict[str, str] = {
    "adminPassword": "Harbor admin password: the provider's credential and harbor_admin_password",
    "databasePassword": "Password of Harbor's bundled PostgreSQL (harbor.yml database.password)",
    "s3AccessKey": "S3 access key Harbor uses (storage.mode s3-compatible or existing)",
    "s3SecretKey": "S3 secret key Harbor uses (storage.mode s3-compatible or existing)",
    "s3AdminAccessKey": "S3 key allowed to create the bucket (storage.mode s3-compatible)",
    "s3AdminSecretKey": "S3 secret allowed to create the bucket (storage.mode s3-compatible)",
    "peerReplicationSecret": "Peer's replication robot secret (replication.peer.credentialsFrom config)",
    "dockerHubToken": "Docker Hub personal/organisation access token of dockerHubMirror.username (mirror stacks)",
}


class ConfigError(pulumi.RunError):
    """Stack configuration is invalid. ``str()`` is one line per problem, key path first.

    A ``RunError`` so the Pulumi CLI prints the message without a stack trace.
    """

    def __init__(self, problems: list[str], heading: str = "invalid stack configuration:"):
        self.problems = problems
        super().__init__(heading + "\n" + "\n".join(problems))


# --------------------------------------------------------------------------- schedules

_CRON_FIELD_RANGES: tuple[tuple[str, int, int], ...] = (
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
)
# Harbor parses schedules with robfig/cron, which also takes three-letter month and
# weekday names in any case (spec.go's bounds.names, looked up with strings.ToLower).
_CRON_NAMES: dict[str, dict[str, int]] = {
    "month": {
        name: number
        for number, name in enumerate(
            ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1
        )
    },
    "day of week": {name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))},
}
_CRON_NAME_HINT = {"month": " or a name JAN-DEC", "day of week": " or a name SUN-SAT"}
_CRON_ATOM = re.compile(r"^(\*|\?|([0-9A-Za-z]+)(?:-([0-9A-Za-z]+))?)(?:/(\d+))?$")


def _cron_value(text: str, field: str, low: int, high: int) -> int:
    names = _CRON_NAMES.get(field, {})
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise ValueError(f"cron {field} field {text!r} is not a number{_CRON_NAME_HINT.get(field, '')}")
    number = int(text)
    if not low <= number <= high:
        raise ValueError(f"cron {field} field {number} is outside {low}-{high}")
    return number


def _check_cron_atom(atom: str, field: str, low: int, high: int) -> None:
    match = _CRON_ATOM.match(atom)
    if not match:
        raise ValueError(f"cron {field} field {atom!r} is not a number, range, list, step, '*' or '?'")
    base, start, end, step = match.groups()
    if base == "?" and field not in ("day of month", "day of week"):
        raise ValueError(f"cron {field} field cannot be '?'")
    if step is not None and int(step) == 0:
        raise ValueError(f"cron {field} field has a step of 0")
    if start is not None:
        first = _cron_value(start, field, low, high)
        # robfig/cron refuses a range whose start is past its end ("beginning of range
        # beyond end of range"), so Harbor would refuse it at apply time.
        if end is not None and first > _cron_value(end, field, low, high):
            raise ValueError(f"cron {field} field range {base} ends before it starts")


def check_harbor_cron(expression: str) -> str:
    """Validate Harbor's 6-field cron (seconds first), e.g. ``0 0/10 * * * *`` or ``0 0 3 * * MON-FRI``."""
    fields = expression.split()
    if len(fields) != 6:
        raise ValueError(
            f"Harbor cron needs 6 fields (seconds first, e.g. '0 0 3 * * *'), got {len(fields)}"
        )
    for text, (field, low, high) in zip(fields, _CRON_FIELD_RANGES, strict=True):
        for atom in text.split(","):
            _check_cron_atom(atom, field, low, high)
    return expression


_PRESETS = ("Hourly", "Daily", "Weekly")


def _periodic_schedule(value: str) -> str:
    if value in _PRESETS:
        return value
    if value.strip().lower() in {p.lower() for p in _PRESETS}:
        raise ValueError(f"write the schedule as one of {', '.join(_PRESETS)} (exact case)")
    return check_harbor_cron(value)


def _replication_schedule(value: str) -> str:
    # Harbor's replication trigger is manual, event_based or scheduled with a cron
    # (trigger_settings.cron): it has no Hourly/Daily/Weekly presets.
    if value.strip().lower() in {p.lower() for p in _PRESETS}:
        raise ValueError(f"replication rules take a 6-field cron, not {value!r}")
    return check_harbor_cron(value)


#: GC, retention and audit-log purge accept these presets or a 6-field cron.
PeriodicSchedule = Annotated[str, AfterValidator(_periodic_schedule)]
#: Replication pull rules take a cron only.
CronSchedule = Annotated[str, AfterValidator(_replication_schedule)]


# --------------------------------------------------------------------------- base


class _Model(BaseModel):
    """camelCase keys as written in the stack file; unknown keys are errors; immutable."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=False
    )


def _no_credentials(value: str) -> None:
    # Never echo the URL: it would print the password.
    if "@" in urlsplit(value).netloc:
        raise ValueError("must not contain a user or password; credentials go in secret config keys")


def _https_url(value: str) -> str:
    _no_credentials(value)
    if not re.match(r"^https://[^/\s]+", value):
        raise ValueError("must be an https:// URL (TLS terminates at the load balancer)")
    return value.rstrip("/")


def _http_url(value: str) -> str:
    _no_credentials(value)
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


def _bucket_name(value: str) -> str:
    if not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", value):
        raise ValueError("must be 3-63 lower-case letters, digits, '.' or '-' (S3 bucket rules)")
    return value


def _project_name(value: str) -> str:
    # Harbor's own rule for project names.
    if not re.match(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$", value) or len(value) > 255:
        raise ValueError("must be lower-case letters and digits, with '.', '_' or '-' between them")
    return value


def _count_between(low: int, high: int, what: str, note: str = ""):
    # A length check as an after-validator runs only once every item is valid, so a
    # bad item is reported once, not also as "0 items".
    def check(items: tuple) -> tuple:
        if not low <= len(items) <= high:
            raise ValueError(f"needs {low} to {high} {what}, got {len(items)}{note}")
        return items

    return check


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


HttpsUrl = Annotated[str, AfterValidator(_https_url)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
SiteName = Literal["chi", "iad"]
# Harbor project names: lower case, digits, and . _ - between them.
ProjectName = Annotated[str, AfterValidator(_project_name)]


# --------------------------------------------------------------------------- site


class SiteConfig(_Model):
    """Who this site is. ``externalUrl`` is the https URL behind the load balancer."""

    name: SiteName
    role: Literal["primary", "backup"]
    hostname: Annotated[str, Field(pattern=r"^[A-Za-z0-9.-]+$")]
    external_url: HttpsUrl
    admin_username: str = "admin"
    # The Harbor provider defaults insecure to *true*; we verify TLS unless told not to.
    insecure: bool = False

    @model_validator(mode="after")
    def _hostname_is_the_url_host(self) -> SiteConfig:
        # hostname is what Kamal pushes to and harbor.yml's hostname; externalUrl is what
        # Harbor puts in token URLs. Two different hosts break `docker login`.
        url_host = urlsplit(self.external_url).hostname or ""
        if self.hostname.lower() != url_host:
            raise ValueError(f"hostname: {self.hostname!r} is not the host of externalUrl ({url_host!r})")
        return self


class StorageConfig(_Model):
    """Registry blob storage. ``aws`` creates everything; ``s3-compatible`` creates the
    bucket at ``endpoint``; ``existing`` creates nothing."""

    mode: Literal["aws", "s3-compatible", "existing"]
    bucket: Annotated[str, AfterValidator(_bucket_name)]
    endpoint: HttpUrl | None = None
    region: Annotated[str, AfterValidator(_not_blank)] = "us-east-1"
    force_path_style: bool = True
    chunk_size: Annotated[int, Strict(), Field(ge=5 * 1024 * 1024)] = 5 * 1024 * 1024
    encrypt: bool = False
    secure: bool = True
    v4auth: bool = Field(default=True, alias="v4auth")
    #: Days before an incomplete multipart upload is aborted; null where the backend
    #: has no lifecycle support.
    abort_incomplete_multipart_upload_days: Annotated[int, Strict(), Field(ge=1)] | None = 7
    #: The S3 driver's AWS SDK log level. The seed ran "debug", which logs every
    #: request; "off" unless you are chasing a storage problem.
    log_level: Literal["off", "debug", "debugwithsigning", "debugwithrequesterrors"] = "off"
    #: IAM user name (mode aws only).
    iam_user_name: str | None = None

    @model_validator(mode="after")
    def _endpoint_matches_mode(self) -> StorageConfig:
        if self.mode == "aws" and self.endpoint is not None:
            raise ValueError("endpoint: only for s3-compatible or existing storage, not aws")
        if self.mode == "s3-compatible" and self.endpoint is None:
            raise ValueError("endpoint: required when mode is s3-compatible")
        if self.mode != "aws" and self.iam_user_name is not None:
            raise ValueError("iamUserName: only for mode aws")
        return self


class MetricConfig(_Model):
    enabled: bool = True
    port: Annotated[int, Strict(), Field(ge=1, le=65535)] = 9090
    path: Annotated[str, Field(pattern=r"^/")] = "/metrics"


class DatabaseConfig(_Model):
    max_idle_conns: Annotated[int, Strict(), Field(ge=1)] = 50
    max_open_conns: Annotated[int, Strict(), Field(ge=1)] = 100

    @model_validator(mode="after")
    def _idle_within_open(self) -> DatabaseConfig:
        if self.max_idle_conns > self.max_open_conns:
            raise ValueError("maxIdleConns: cannot exceed maxOpenConns")
        return self


class JobserviceConfig(_Model):
    max_job_workers: Annotated[int, Strict(), Field(ge=1, le=100)] = 20
    job_loggers: tuple[Literal["FILE", "DB", "STD_OUTPUT"], ...] = ("FILE",)
    logger_sweeper_duration: Annotated[int, Strict(), Field(ge=1)] = 1


class LogConfig(_Model):
    level: Literal["debug", "info", "warning", "error", "fatal"] = "info"
    rotate_count: Annotated[int, Strict(), Field(ge=0)] = 50
    rotate_size: Annotated[str, Field(pattern=r"^\d+[kMG]?$")] = "200M"
    location: str = "/var/log/harbor"


class NotificationConfig(_Model):
    webhook_job_max_retry: Annotated[int, Strict(), Field(ge=0)] = 3
    webhook_job_http_client_timeout: Annotated[int, Strict(), Field(ge=1)] = 10


class InstallConfig(_Model):
    """harbor.yml settings (config key ``install``). Defaults are the seed's values."""

    harbor_version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")] = "2.13.0"
    http_port: Annotated[int, Strict(), Field(ge=1, le=65535)] = 80
    data_volume: str = "/data"
    metric: MetricConfig = MetricConfig()
    database: DatabaseConfig = DatabaseConfig()
    jobservice: JobserviceConfig = JobserviceConfig()
    log: LogConfig = LogConfig()
    notification: NotificationConfig = NotificationConfig()


# --------------------------------------------------------------------------- projects


class RetentionRule(_Model):
    """One tag-retention rule. Exactly one of the retain conditions is set."""

    repo_matching: str = "**"
    tag_matching: str = "**"
    # Untagged artifacts are left to GC, so rules match tagged artifacts only.
    untagged_artifacts: bool = False
    most_recently_pushed: Annotated[int, Strict(), Field(ge=1)] | None = None
    most_recently_pulled: Annotated[int, Strict(), Field(ge=1)] | None = None
    n_days_since_last_push: Annotated[int, Strict(), Field(ge=1)] | None = None
    n_days_since_last_pull: Annotated[int, Strict(), Field(ge=1)] | None = None
    always_retain: bool | None = None

    @model_validator(mode="after")
    def _exactly_one_condition(self) -> RetentionRule:
        conditions = (
            self.most_recently_pushed,
            self.most_recently_pulled,
            self.n_days_since_last_push,
            self.n_days_since_last_pull,
            self.always_retain or None,
        )
        if sum(c is not None for c in conditions) != 1:
            raise ValueError(
                "set exactly one of mostRecentlyPushed, mostRecentlyPulled, "
                "nDaysSinceLastPush, nDaysSinceLastPull, alwaysRetain"
            )
        return self


#: Keep the 10 most recently pushed tags per repository, plus anything pulled in the
#: last 30 days: what took the seed's footprint from ~9 TiB to 1.5 TiB without
#: deleting a tag a host still runs.
DEFAULT_RETENTION_RULES: tuple[RetentionRule, ...] = (
    RetentionRule.model_validate({"mostRecentlyPushed": 10}),
    RetentionRule.model_validate({"nDaysSinceLastPull": 30}),
)


class RetentionConfig(_Model):
    schedule: PeriodicSchedule = "0 0 2 * * *"
    # Harbor refuses more than 15 rules per policy.
    rules: Annotated[tuple[RetentionRule, ...], AfterValidator(_count_between(1, 15, "rules", " (Harbor's limit is 15)"))] = (
        DEFAULT_RETENTION_RULES
    )


class ProjectConfig(_Model):
    name: ProjectName
    public: bool = False
    #: GiB; null means unlimited.
    storage_quota_gib: Annotated[int, Strict(), Field(ge=1)] | None = None
    vulnerability_scanning: bool = False
    retention: RetentionConfig | None = RetentionConfig()


class RobotsConfig(_Model):
    """Which project the Kamal robot (and the optional CI robot) belong to."""

    kamal_project: ProjectName
    ci_project: ProjectName | None = None
    #: Robot lifetime in days; -1 never expires (rotation is a deliberate act).
    duration_days: Annotated[int, Strict(), Field(ge=-1)] = -1

    @model_validator(mode="after")
    def _no_zero_duration(self) -> RobotsConfig:
        if self.duration_days == 0:
            raise ValueError("durationDays: must be -1 (never expires) or a number of days")
        return self


class GcConfig(_Model):
    schedule: PeriodicSchedule = "0 0 4 * * 6"
    delete_untagged: bool = True
    # pulumiverse-harbor 3.10.21 accepts 1-5 workers only.
    workers: Annotated[int, Strict(), Field(ge=1, le=5)] = 1


#: Harbor ≥2.13 audit event types (src/pkg/auditext/model EventTypes + legacy ones).
AUDIT_EVENT_TYPES: tuple[str, ...] = (
    "create_artifact",
    "delete_artifact",
    "pull_artifact",
    "create_project",
    "delete_project",
    "create_repository",
    "delete_repository",
    "create_robot",
    "delete_robot",
    "create_user",
    "delete_user",
    "update_user",
    "login_user",
    "logout_user",
    "update_configure",
    "create_tag",
    "delete_tag",
)


class AuditLogPurgeConfig(_Model):
    schedule: PeriodicSchedule = "Daily"
    retention_hours: Annotated[int, Strict(), Field(ge=1)] = 24 * 30
    include_event_types: Annotated[
        tuple[Literal[AUDIT_EVENT_TYPES], ...], AfterValidator(_count_between(1, 100, "event types"))
    ] = (
        AUDIT_EVENT_TYPES
    )


class SystemConfig(_Model):
    """harbor.ConfigSystem: every field is set, because the provider pushes its own
    default for any field left unset."""

    robot_name_prefix: Annotated[str, Field(min_length=1)] = HARBOR_DEFAULT_ROBOT_PREFIX
    #: Must equal robotNamePrefix when it differs from Harbor's ``robot$``.
    acknowledge_robot_name_prefix_change: str | None = None
    project_creation_restriction: Literal["adminonly", "everyone"] = "adminonly"
    robot_token_expiration_days: Annotated[int, Strict(), Field(ge=1)] = 30
    read_only: bool = False
    storage_per_project_gib: Annotated[int, Strict(), Field(ge=-1)] = -1
    scanner_skip_update_pulltime: bool = False
    skip_audit_log_database: bool = False
    audit_log_forward_endpoint: str = ""

    @model_validator(mode="after")
    def _prefix_change_is_acknowledged(self) -> SystemConfig:
        prefix = self.robot_name_prefix
        if prefix != HARBOR_DEFAULT_ROBOT_PREFIX and self.acknowledge_robot_name_prefix_change != prefix:
            raise ValueError(
                f"robotNamePrefix: changing it from {HARBOR_DEFAULT_ROBOT_PREFIX!r} renames every "
                "robot login and breaks the Kamal hosts; to do it anyway set "
                f"acknowledgeRobotNamePrefixChange to {prefix!r}"
            )
        return self


class PeerConfig(_Model):
    """The other site. Its replication robot credential comes from its stack's outputs
    (``credentialsFrom: stack``) or from config (``credentialsFrom: config``)."""

    site: SiteName
    url: HttpsUrl
    credentials_from: Literal["stack", "config"] = "stack"
    #: Fully qualified stack name, e.g. ``organization/harbor-platform/iad``.
    stack: str | None = None
    #: Robot login when credentialsFrom is config (secret: peerReplicationSecret).
    robot_name: str | None = None
    insecure: bool = False

    @model_validator(mode="after")
    def _credentials_source_complete(self) -> PeerConfig:
        if self.credentials_from == "stack" and not self.stack:
            raise ValueError("stack: required when credentialsFrom is stack")
        if self.credentials_from == "config" and not self.robot_name:
            raise ValueError("robotName: required when credentialsFrom is config")
        return self


class ReplicationConfig(_Model):
    peer: PeerConfig
    pull_schedule: CronSchedule = "0 0/10 * * * *"
    #: Whether the scheduled pull from the peer runs. Defaults on for the backup site
    #: (it is how the backup catches up) and off for the primary, as in the seed.
    pull_enabled: bool | None = None


# --------------------------------------------------------------------------- docker hub mirror (issue 3)
# Owned by the Docker Hub mirror work stream (components/dockerhub_mirror.py).


def _glob(value: str) -> str:
    if not value.strip() or "/" in value:
        raise ValueError("must be a non-empty repository-name glob without '/', e.g. 'app-*'")
    return value


DockerHubNamespace = Annotated[str, Field(pattern=r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$", max_length=255)]
RepositoryGlob = Annotated[str, AfterValidator(_glob)]


class ProxyCacheConfig(_Model):
    """A Harbor proxy-cache project in front of Docker Hub, for official images (ruby, postgres)."""

    project: ProjectName = "dockerhub-proxy"
    public: bool = False


class DockerHubMirrorConfig(_Model):
    """One pull-replication rule per repository of a Docker Hub organisation (config key
    ``dockerHubMirror``; its token is the secret key ``dockerHubToken``)."""

    namespace: DockerHubNamespace
    target_project: ProjectName
    username: Annotated[str, Field(min_length=1)]
    registry_name: Annotated[str, Field(min_length=1)] = "docker-hub"
    #: The Harbor registry endpoint. Harbor's docker-hub adapter talks to hub.docker.com.
    endpoint_url: HttpsUrl = "https://hub.docker.com"
    #: Where the program lists the catalogue; http allowed for a corporate proxy or a test.
    api_url: HttpUrl = "https://hub.docker.com"
    rule_name_prefix: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")] = "mirror-dockerhub-"
    tag_filter: Annotated[str, Field(min_length=1)] = "**"
    include: tuple[RepositoryGlob, ...] = ("*",)
    exclude: tuple[RepositoryGlob, ...] = ()
    #: Share of the recorded catalogue that may vanish in one run without allowShrink.
    max_shrink_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    allow_shrink: bool = False
    max_concurrency: Annotated[int, Strict(), Field(ge=1, le=16)] = 4
    request_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 15.0
    proxy_cache: ProxyCacheConfig | None = None

    @model_validator(mode="after")
    def _includes_something(self) -> DockerHubMirrorConfig:
        if not self.include:
            raise ValueError("include: needs at least one glob ('*' mirrors every repository)")
        return self


# --------------------------------------------------------------------------- stack


def _projects_listed_once(projects: tuple[ProjectConfig, ...]) -> tuple[ProjectConfig, ...]:
    if not projects:
        raise ValueError("at least one project is needed")
    names = [p.name for p in projects]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate project name(s) {', '.join(duplicates)}")
    return projects


Location = tuple[str | int, ...]


def cross_reference_problems(parts: Mapping[str, Any], *, stack: str | None = None) -> list[tuple[Location, str]]:
    """Checks between top-level keys, as ``(key path, message)``, every one of them.

    ``parts`` maps StackConfig field names to validated values; a check runs only when
    every key it reads is there, so it also runs beside field errors in other keys.
    ``stack`` is the Pulumi stack name, which must be ``site.name``.
    """
    site, projects, robots = parts.get("site"), parts.get("projects"), parts.get("robots")
    replication, mirror = parts.get("replication"), parts.get("docker_hub_mirror")
    problems: list[tuple[Location, str]] = []
    if site is not None and stack is not None and site.name != stack:
        # e.g. Pulumi.iad.yaml copied from Pulumi.chi.yaml: the iad stack would manage chi's Harbor.
        problems.append((("site", "name"), f"{site.name!r} does not match the stack {stack!r}"))
    if site is not None and replication is not None and replication.peer.site == site.name:
        problems.append((("replication", "peer", "site"), f"must be the other site, not {site.name!r}"))
    if projects is not None:
        names = [p.name for p in projects]
        if robots is not None and robots.kamal_project not in names:
            problems.append((("robots", "kamalProject"), f"{robots.kamal_project!r} is not in projects"))
        if robots is not None and robots.ci_project is not None and robots.ci_project not in names:
            problems.append((("robots", "ciProject"), f"{robots.ci_project!r} is not in projects"))
        if mirror is not None and mirror.target_project not in names:
            problems.append((("dockerHubMirror", "targetProject"), f"{mirror.target_project!r} is not in projects"))
        if mirror is not None and mirror.proxy_cache is not None and mirror.proxy_cache.project in names:
            problems.append(
                (
                    ("dockerHubMirror", "proxyCache", "project"),
                    f"{mirror.proxy_cache.project!r} is already a normal project; "
                    "a proxy-cache project needs its own name",
                )
            )
    return problems


class StackConfig(_Model):
    """Everything one stack declares. Field names are the Pulumi config keys."""

    site: SiteConfig
    storage: StorageConfig
    install: InstallConfig = InstallConfig()
    projects: Annotated[tuple[ProjectConfig, ...], AfterValidator(_projects_listed_once)]
    robots: RobotsConfig
    gc: GcConfig = GcConfig()
    audit_log_purge: AuditLogPurgeConfig = AuditLogPurgeConfig()
    system: SystemConfig = SystemConfig()
    replication: ReplicationConfig
    #: Docker Hub mirror (issue 3); absent on a stack that does not mirror.
    docker_hub_mirror: DockerHubMirrorConfig | None = None

    @model_validator(mode="after")
    def _cross_references(self, info: ValidationInfo) -> StackConfig:
        problems = cross_reference_problems(dict(self), stack=(info.context or {}).get("stack"))
        if problems:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(type=PydanticCustomError("cross_reference", message), loc=location, input=None)
                    for location, message in problems
                ],
            )
        return self

    @property
    def push_enabled(self) -> bool:
        """Event-based push runs on the primary only: see ReplicationPair (goharbor/harbor#17754)."""
        return self.site.role == "primary"

    @property
    def pull_enabled(self) -> bool:
        configured = self.replication.pull_enabled
        return configured if configured is not None else self.site.role == "backup"


#: The Pulumi config keys that hold models (everything else is a secret or foreign).
MODEL_KEYS: tuple[str, ...] = tuple(
    field.alias or name for name, field in StackConfig.model_fields.items()
)


# --------------------------------------------------------------------------- errors


def _key_path(location: Iterable[str | int]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def _message(error: Mapping[str, Any]) -> str:
    message = str(error["msg"])
    # pydantic prefixes messages raised from validators; the key path says enough.
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return message


# Our own validators name the field they blame first ("endpoint: required when ..."),
# relative to the model they run on; that name is appended to the error's location.
_BLAMED_FIELD = re.compile(r"^([A-Za-z][\w.]*): (.+)$", re.DOTALL)


# pydantic's "Input should be a valid dictionary or instance of GcConfig" for a plain
# string says neither what was expected in YAML terms nor what was found.
_EXPECTED = {
    "model_type": "a mapping",
    "dict_type": "a mapping",
    "model_attributes_type": "a mapping",
    "tuple_type": "a list",
    "list_type": "a list",
}


def _describe(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, str):
        return f"the string {value if len(value) <= 40 else value[:37] + '...'!r}"
    if isinstance(value, int | float):
        return f"the number {value}"
    return "a mapping" if isinstance(value, Mapping) else "a list"


def format_validation_error(
    exc: ValidationError, *, root: str = "", secret_keys: Iterable[str] = ()
) -> list[str]:
    """One ``key.path: message`` line per problem.

    Input values are never included, except the scalar found where a mapping or list
    belongs (``gc: expected a mapping (got the string 'Daily')``), and not even that
    under a top-level key in ``secret_keys`` (a key set with ``--secret``).

    Example: ``storage.bucket: Field required``
    """
    secret = set(secret_keys)
    lines = []
    for error in exc.errors(include_url=False, include_input=True, include_context=False):
        location: list[str | int] = [root, *error["loc"]] if root else list(error["loc"])
        message = _message(error)
        blamed = _BLAMED_FIELD.match(message) if error["type"] == "value_error" else None
        if blamed:
            location.extend(blamed.group(1).split("."))
            message = blamed.group(2)
        if error["type"] in _EXPECTED:
            hidden = bool(error["loc"]) and error["loc"][0] in secret
            found = "a value set with --secret" if hidden else _describe(error["input"])
            message = f"expected {_EXPECTED[error['type']]} (got {found})"
        lines.append(f"{_key_path(location) or '(stack)'}: {message}")
    return lines


_FIELD_ADAPTERS: dict[str, TypeAdapter[Any]] = {}


def _valid_parts(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level fields of ``raw`` that validate on their own (defaults for absent ones)."""
    parts: dict[str, Any] = {}
    for name, field in StackConfig.model_fields.items():
        key = field.alias or name
        if key not in raw:
            if not field.is_required():
                parts[name] = field.get_default(call_default_factory=True)
            continue
        if name not in _FIELD_ADAPTERS:
            annotation = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
            _FIELD_ADAPTERS[name] = TypeAdapter(annotation)
        try:
            parts[name] = _FIELD_ADAPTERS[name].validate_python(raw[key])
        except ValidationError:
            pass
    return parts


def stack_config_problems(
    raw: Mapping[str, Any], *, stack: str | None = None, secret_keys: Iterable[str] = ()
) -> tuple[StackConfig | None, list[str]]:
    """Validate ``raw`` (config key -> value): the model, or None and every problem.

    Field errors and cross-reference errors come together: pydantic skips the
    whole-model checks once a field fails, so they are run again on the keys that
    validated. ``stack``: the Pulumi stack name, which must be ``site.name``.
    """
    try:
        return StackConfig.model_validate(dict(raw), context={"stack": stack}), []
    except ValidationError as exc:
        problems = format_validation_error(exc, secret_keys=secret_keys)
        checked = any(e["type"] == "cross_reference" for e in exc.errors())
    if not checked:
        problems += [
            f"{_key_path(location)}: {message}"
            for location, message in cross_reference_problems(_valid_parts(raw), stack=stack)
        ]
    return None, problems


def validate_stack_config(raw: Mapping[str, Any], *, stack: str | None = None) -> StackConfig:
    """Validate a mapping of config key -> value. Raises :class:`ConfigError`."""
    config, problems = stack_config_problems(raw, stack=stack)
    if config is None:
        raise ConfigError(problems)
    return config


def _namespace_keys() -> set[str]:
    """Every ``harbor-platform:*`` key the stack sets, without the namespace.

    pulumi.Config cannot list keys, so this reads the runtime's config map (the
    language host fills it from the stack file) to catch a misspelt top-level key.
    """
    from pulumi.runtime import config as runtime_config

    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    prefix = f"{PROJECT_NAME}:"
    return {k[len(prefix) :] for k in keys if k.startswith(prefix)}


def _is_secret(key: str) -> bool:
    from pulumi.runtime import config as runtime_config

    return runtime_config.is_config_secret(f"{PROJECT_NAME}:{key}")


def set_secret_command(key: str) -> str:
    """The command that sets a secret key of this stack; it prompts for the value."""
    return f"pulumi config set --secret --stack {pulumi.get_stack()} {key}"


def _stray_key_problems() -> list[str]:
    problems = []
    for key in sorted(_namespace_keys()):
        if key in SECRET_KEYS:
            if not _is_secret(key):
                problems.append(f"{key}: must be set with `{set_secret_command(key)}`")
        elif key not in MODEL_KEYS:
            problems.append(f"{key}: unknown config key (known: {', '.join(MODEL_KEYS)})")
    return problems


def load_stack_config(config: pulumi.Config) -> StackConfig:
    """Read every model key from the stack's Pulumi config and validate it.

    Raises :class:`ConfigError` listing unknown keys, secrets stored in plain text and
    every validation problem, one per line.
    """
    problems = _stray_key_problems()
    raw: dict[str, Any] = {}
    for key in MODEL_KEYS:
        try:
            value = config.get_object(key)
        except (pulumi.ConfigTypeError, ValueError):
            # Pulumi hands a mapping or list over as JSON text; text that is not JSON
            # is a plain string, e.g. `gc: Daily`. The model says what belongs there.
            value = config.get(key)
        if value is not None:
            raw[key] = value
    stack_config, model_problems = stack_config_problems(
        raw, stack=pulumi.get_stack(), secret_keys=[k for k in raw if _is_secret(k)]
    )
    problems += model_problems
    if problems or stack_config is None:
        raise ConfigError(problems)
    return stack_config


# --------------------------------------------------------------------------- secrets


@dataclass(frozen=True)
class StackSecrets:
    """The secret config keys this stack needs, as secret Outputs (never plain text)."""

    admin_password: pulumi.Output[str]
    database_password: pulumi.Output[str]
    s3_access_key: pulumi.Output[str] | None = None
    s3_secret_key: pulumi.Output[str] | None = None
    s3_admin_access_key: pulumi.Output[str] | None = None
    s3_admin_secret_key: pulumi.Output[str] | None = None
    peer_replication_secret: pulumi.Output[str] | None = None


def required_secret_keys(stack: StackConfig) -> list[str]:
    """The secret keys this stack's modes need, in SECRET_KEYS order."""
    mode = stack.storage.mode
    needed = {
        "adminPassword": True,
        "databasePassword": True,
        "s3AccessKey": mode in ("s3-compatible", "existing"),
        "s3SecretKey": mode in ("s3-compatible", "existing"),
        "s3AdminAccessKey": mode == "s3-compatible",
        "s3AdminSecretKey": mode == "s3-compatible",
        "peerReplicationSecret": stack.replication.peer.credentials_from == "config",
        # Read by components/dockerhub_mirror.py; checked here so it is listed with the rest.
        "dockerHubToken": stack.docker_hub_mirror is not None,
    }
    return [key for key in SECRET_KEYS if needed[key]]


def read_stack_secrets(config: pulumi.Config, stack: StackConfig) -> StackSecrets:
    """``require_secret`` exactly the keys this stack's modes need.

    Raises :class:`ConfigError` naming every missing key, one per line, each with the
    command that sets it (the command prompts for the value, so it never sits in the
    shell history). Values are never read into the message.
    """
    needed = required_secret_keys(stack)
    missing = [key for key in needed if config.get_secret(key) is None]
    if missing:
        raise ConfigError(
            [f"{key}: not set; run `{set_secret_command(key)}` (it prompts for the value)" for key in missing],
            heading=f"missing secrets for stack {pulumi.get_stack()}:",
        )
    secrets = {key: config.require_secret(key) for key in needed}
    return StackSecrets(
        admin_password=secrets["adminPassword"],
        database_password=secrets["databasePassword"],
        s3_access_key=secrets.get("s3AccessKey"),
        s3_secret_key=secrets.get("s3SecretKey"),
        s3_admin_access_key=secrets.get("s3AdminAccessKey"),
        s3_admin_secret_key=secrets.get("s3AdminSecretKey"),
        peer_replication_secret=secrets.get("peerReplicationSecret"),
    )
