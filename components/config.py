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

import pulumi
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
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

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack configuration:\n" + "\n".join(problems))


# --------------------------------------------------------------------------- schedules

_CRON_FIELD_RANGES: tuple[tuple[str, int, int], ...] = (
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
)
_CRON_ATOM = re.compile(r"^(\*|\?|\d+(?:-\d+)?)(?:/(\d+))?$")


def _check_cron_atom(atom: str, field: str, low: int, high: int) -> None:
    match = _CRON_ATOM.match(atom)
    if not match:
        raise ValueError(f"cron {field} field {atom!r} is not a number, range, list, step, '*' or '?'")
    base, step = match.group(1), match.group(2)
    if base == "?" and field not in ("day of month", "day of week"):
        raise ValueError(f"cron {field} field cannot be '?'")
    if step is not None and int(step) == 0:
        raise ValueError(f"cron {field} field has a step of 0")
    if base not in ("*", "?"):
        for number in (int(n) for n in base.split("-")):
            if not low <= number <= high:
                raise ValueError(f"cron {field} field {number} is outside {low}-{high}")


def check_harbor_cron(expression: str) -> str:
    """Validate Harbor's 6-field cron (seconds first), e.g. ``0 0/10 * * * *``."""
    fields = expression.split()
    if len(fields) != 6:
        raise ValueError(
            f"Harbor cron needs 6 fields (seconds first, e.g. '0 0 3 * * *'), got {len(fields)}"
        )
    for text, (field, low, high) in zip(fields, _CRON_FIELD_RANGES, strict=True):
        for atom in text.split(","):
            _check_cron_atom(atom, field, low, high)
    return expression


def _schedule(presets: tuple[str, ...]):
    def check(value: str) -> str:
        if value in presets:
            return value
        if value.strip().lower() in {p.lower() for p in presets}:
            raise ValueError(f"write the schedule as one of {', '.join(presets)} (exact case)")
        return check_harbor_cron(value)

    return check


#: GC, retention and audit-log purge accept these presets or a 6-field cron.
PeriodicSchedule = Annotated[str, AfterValidator(_schedule(("Hourly", "Daily", "Weekly")))]
#: Replication pull rules take a cron only.
CronSchedule = Annotated[str, AfterValidator(check_harbor_cron)]


# --------------------------------------------------------------------------- base


class _Model(BaseModel):
    """camelCase keys as written in the stack file; unknown keys are errors; immutable."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=False
    )


def _https_url(value: str) -> str:
    if not re.match(r"^https://[^/\s]+", value):
        raise ValueError("must be an https:// URL (TLS terminates at the load balancer)")
    return value.rstrip("/")


def _http_url(value: str) -> str:
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


class StorageConfig(_Model):
    """Registry blob storage. ``aws`` creates everything; ``s3-compatible`` creates the
    bucket at ``endpoint``; ``existing`` creates nothing."""

    mode: Literal["aws", "s3-compatible", "existing"]
    bucket: Annotated[str, AfterValidator(_bucket_name)]
    endpoint: HttpUrl | None = None
    region: str = "us-east-1"
    force_path_style: bool = True
    chunk_size: Annotated[int, Field(ge=5 * 1024 * 1024)] = 5 * 1024 * 1024
    encrypt: bool = False
    secure: bool = True
    v4auth: bool = Field(default=True, alias="v4auth")
    #: Days before an incomplete multipart upload is aborted; null where the backend
    #: has no lifecycle support.
    abort_incomplete_multipart_upload_days: Annotated[int, Field(ge=1)] | None = 7
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
    port: Annotated[int, Field(ge=1, le=65535)] = 9090
    path: Annotated[str, Field(pattern=r"^/")] = "/metrics"


class DatabaseConfig(_Model):
    max_idle_conns: Annotated[int, Field(ge=1)] = 50
    max_open_conns: Annotated[int, Field(ge=1)] = 100

    @model_validator(mode="after")
    def _idle_within_open(self) -> DatabaseConfig:
        if self.max_idle_conns > self.max_open_conns:
            raise ValueError("maxIdleConns: cannot exceed maxOpenConns")
        return self


class JobserviceConfig(_Model):
    max_job_workers: Annotated[int, Field(ge=1, le=100)] = 20
    job_loggers: tuple[Literal["FILE", "DB", "STD_OUTPUT"], ...] = ("FILE",)
    logger_sweeper_duration: Annotated[int, Field(ge=1)] = 1


class LogConfig(_Model):
    level: Literal["debug", "info", "warning", "error", "fatal"] = "info"
    rotate_count: Annotated[int, Field(ge=0)] = 50
    rotate_size: Annotated[str, Field(pattern=r"^\d+[kMG]?$")] = "200M"
    location: str = "/var/log/harbor"


class NotificationConfig(_Model):
    webhook_job_max_retry: Annotated[int, Field(ge=0)] = 3
    webhook_job_http_client_timeout: Annotated[int, Field(ge=1)] = 10


class InstallConfig(_Model):
    """harbor.yml settings (config key ``install``). Defaults are the seed's values."""

    harbor_version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")] = "2.13.0"
    http_port: Annotated[int, Field(ge=1, le=65535)] = 80
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
    most_recently_pushed: Annotated[int, Field(ge=1)] | None = None
    most_recently_pulled: Annotated[int, Field(ge=1)] | None = None
    n_days_since_last_push: Annotated[int, Field(ge=1)] | None = None
    n_days_since_last_pull: Annotated[int, Field(ge=1)] | None = None
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
    storage_quota_gib: Annotated[int, Field(ge=1)] | None = None
    vulnerability_scanning: bool = False
    retention: RetentionConfig | None = RetentionConfig()


class RobotsConfig(_Model):
    """Which project the Kamal robot (and the optional CI robot) belong to."""

    kamal_project: ProjectName
    ci_project: ProjectName | None = None
    #: Robot lifetime in days; -1 never expires (rotation is a deliberate act).
    duration_days: Annotated[int, Field(ge=-1)] = -1

    @model_validator(mode="after")
    def _no_zero_duration(self) -> RobotsConfig:
        if self.duration_days == 0:
            raise ValueError("durationDays: must be -1 (never expires) or a number of days")
        return self


class GcConfig(_Model):
    schedule: PeriodicSchedule = "0 0 4 * * 6"
    delete_untagged: bool = True
    # pulumiverse-harbor 3.10.21 accepts 1-5 workers only.
    workers: Annotated[int, Field(ge=1, le=5)] = 1


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
    retention_hours: Annotated[int, Field(ge=1)] = 24 * 30
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
    robot_token_expiration_days: Annotated[int, Field(ge=1)] = 30
    read_only: bool = False
    storage_per_project_gib: Annotated[int, Field(ge=-1)] = -1
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
    max_concurrency: Annotated[int, Field(ge=1, le=16)] = 4
    request_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 15.0
    proxy_cache: ProxyCacheConfig | None = None

    @model_validator(mode="after")
    def _includes_something(self) -> DockerHubMirrorConfig:
        if not self.include:
            raise ValueError("include: needs at least one glob ('*' mirrors every repository)")
        return self


# --------------------------------------------------------------------------- stack


class StackConfig(_Model):
    """Everything one stack declares. Field names are the Pulumi config keys."""

    site: SiteConfig
    storage: StorageConfig
    install: InstallConfig = InstallConfig()
    projects: tuple[ProjectConfig, ...]
    robots: RobotsConfig
    gc: GcConfig = GcConfig()
    audit_log_purge: AuditLogPurgeConfig = AuditLogPurgeConfig()
    system: SystemConfig = SystemConfig()
    replication: ReplicationConfig
    #: Docker Hub mirror (issue 3); absent on a stack that does not mirror.
    docker_hub_mirror: DockerHubMirrorConfig | None = None

    @model_validator(mode="after")
    def _docker_hub_mirror_references(self) -> StackConfig:
        mirror, names = self.docker_hub_mirror, [p.name for p in self.projects]
        if mirror is not None and mirror.target_project not in names:
            raise ValueError(f"dockerHubMirror.targetProject: {mirror.target_project!r} is not in projects")
        if mirror is not None and mirror.proxy_cache is not None and mirror.proxy_cache.project in names:
            raise ValueError(
                f"dockerHubMirror.proxyCache.project: {mirror.proxy_cache.project!r} is already a normal "
                "project; a proxy-cache project needs its own name"
            )
        return self

    @model_validator(mode="after")
    def _cross_references(self) -> StackConfig:
        if not self.projects:
            raise ValueError("projects: at least one project is needed")
        names = [p.name for p in self.projects]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"projects: duplicate project name(s) {', '.join(duplicates)}")
        if self.robots.kamal_project not in names:
            raise ValueError(f"robots.kamalProject: {self.robots.kamal_project!r} is not in projects")
        if self.robots.ci_project is not None and self.robots.ci_project not in names:
            raise ValueError(f"robots.ciProject: {self.robots.ci_project!r} is not in projects")
        if self.replication.peer.site == self.site.name:
            raise ValueError(f"replication.peer.site: must be the other site, not {self.site.name!r}")
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


def format_validation_error(exc: ValidationError, *, root: str = "") -> list[str]:
    """One ``key.path: message`` line per problem. Input values are never included.

    Example: ``storage.bucket: Field required``
    """
    lines = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        location: list[str | int] = [root, *error["loc"]] if root else list(error["loc"])
        message = _message(error)
        blamed = _BLAMED_FIELD.match(message) if error["type"] == "value_error" else None
        if blamed:
            location.extend(blamed.group(1).split("."))
            message = blamed.group(2)
        lines.append(f"{_key_path(location) or '(stack)'}: {message}")
    return lines


def validate_stack_config(raw: Mapping[str, Any]) -> StackConfig:
    """Validate a mapping of config key -> value. Raises :class:`ConfigError`."""
    try:
        return StackConfig.model_validate(dict(raw))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def _namespace_keys() -> set[str]:
    """Every ``harbor-platform:*`` key the stack sets, without the namespace.

    pulumi.Config cannot list keys, so this reads the runtime's config map (the
    language host fills it from the stack file) to catch a misspelt top-level key.
    """
    from pulumi.runtime import config as runtime_config

    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    prefix = f"{PROJECT_NAME}:"
    return {k[len(prefix) :] for k in keys if k.startswith(prefix)}


def _stray_key_problems() -> list[str]:
    from pulumi.runtime import config as runtime_config

    problems = []
    for key in sorted(_namespace_keys()):
        if key in SECRET_KEYS:
            if not runtime_config.is_config_secret(f"{PROJECT_NAME}:{key}"):
                problems.append(f"{key}: must be set with `pulumi config set --secret {key}`")
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
        except Exception:  # noqa: BLE001 - Pulumi raises a bare JSONDecodeError for bad JSON
            problems.append(f"{key}: is not valid YAML/JSON")
            continue
        if value is not None:
            raw[key] = value
    try:
        stack_config = StackConfig.model_validate(raw)
    except ValidationError as exc:
        problems.extend(format_validation_error(exc))
    if problems:
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


def read_stack_secrets(config: pulumi.Config, stack: StackConfig) -> StackSecrets:
    """``require_secret`` exactly the keys this stack's modes need.

    A missing key fails with Pulumi's own one-line ``Missing required configuration
    variable`` message, which names the key and never a value.
    """
    mode = stack.storage.mode
    needs_harbor_s3_keys = mode in ("s3-compatible", "existing")
    needs_peer_secret = stack.replication.peer.credentials_from == "config"
    return StackSecrets(
        admin_password=config.require_secret("adminPassword"),
        database_password=config.require_secret("databasePassword"),
        s3_access_key=config.require_secret("s3AccessKey") if needs_harbor_s3_keys else None,
        s3_secret_key=config.require_secret("s3SecretKey") if needs_harbor_s3_keys else None,
        s3_admin_access_key=(
            config.require_secret("s3AdminAccessKey") if mode == "s3-compatible" else None
        ),
        s3_admin_secret_key=(
            config.require_secret("s3AdminSecretKey") if mode == "s3-compatible" else None
        ),
        peer_replication_secret=(
            config.require_secret("peerReplicationSecret") if needs_peer_secret else None
        ),
    )
