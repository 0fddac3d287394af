"""Stack configuration: the committed stack files validate, and broken ones fail with the
exact lines the user sees, one per problem, naming the key path and never a secret."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from components.config import (
    SECRET_KEYS,
    ConfigError,
    StackConfig,
    check_harbor_cron,
    required_secret_keys,
    validate_stack_config,
)
from tests.support.pulumi_program import PLACEHOLDER_SECRETS, REPO_ROOT, run_program, stack_file_config


@pytest.mark.parametrize("stack", ["chi", "iad"])
def test_committed_stack_files_validate_against_the_models(stack: str) -> None:
    config = validate_stack_config(stack_file_config(stack))
    assert isinstance(config, StackConfig)
    assert config.site.name == stack
    assert config.storage.mode == "s3-compatible"
    assert config.storage.region == "us-east-1"
    assert config.storage.force_path_style is True
    assert config.storage.chunk_size == 5 * 1024 * 1024
    assert config.install.metric.port == 9090 and config.install.metric.path == "/metrics"
    assert config.install.jobservice.max_job_workers == 20
    assert [p.name for p in config.projects] == ["yourorg"]


def test_chi_is_primary_and_iad_is_backup_each_on_its_own_endpoint() -> None:
    chi = validate_stack_config(stack_file_config("chi"))
    iad = validate_stack_config(stack_file_config("iad"))
    assert (chi.site.role, iad.site.role) == ("primary", "backup")
    assert chi.storage.endpoint != iad.storage.endpoint
    assert (chi.replication.peer.site, iad.replication.peer.site) == ("iad", "chi")
    # Only the primary pushes on events; the backup pulls every 10 minutes.
    assert (chi.push_enabled, iad.push_enabled) == (True, False)
    assert (chi.pull_enabled, iad.pull_enabled) == (False, True)
    assert iad.replication.pull_schedule == "0 0/10 * * * *"


def _broken(**changes: Any) -> dict[str, Any]:
    """chi's committed config with dotted-path changes; value None deletes the key."""
    config = copy.deepcopy(stack_file_config("chi"))
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = config
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    return config


BROKEN_CONFIGS = [
    pytest.param(
        _broken(storage__bucket=None),
        ["storage.bucket: Field required"],
        id="missing-bucket",
    ),
    pytest.param(
        _broken(storage__buckt="x"),
        ["storage.buckt: Extra inputs are not permitted"],
        id="typo-key",
    ),
    pytest.param(
        _broken(gc__workers=8),
        ["gc.workers: Input should be less than or equal to 5"],
        id="gc-workers-above-provider-limit",
    ),
    pytest.param(
        _broken(gc__schedule="0 3 * * *"),
        ["gc.schedule: Harbor cron needs 6 fields (seconds first, e.g. '0 0 3 * * *'), got 5"],
        id="five-field-cron",
    ),
    pytest.param(
        _broken(replication__pullSchedule="0 0/10 25 * * *"),
        ["replication.pullSchedule: cron hour field 25 is outside 0-23"],
        id="cron-out-of-range",
    ),
    pytest.param(
        _broken(auditLogPurge__schedule="daily"),
        ["auditLogPurge.schedule: write the schedule as one of Hourly, Daily, Weekly (exact case)"],
        id="preset-wrong-case",
    ),
    pytest.param(
        _broken(site__externalUrl="http://registry-chi.yourorg.example"),
        ["site.externalUrl: must be an https:// URL (TLS terminates at the load balancer)"],
        id="http-external-url",
    ),
    pytest.param(
        _broken(site__role="leader"),
        ["site.role: Input should be 'primary' or 'backup'"],
        id="unknown-role",
    ),
    pytest.param(
        _broken(storage__endpoint=None),
        ["storage.endpoint: required when mode is s3-compatible"],
        id="s3-compatible-without-endpoint",
    ),
    pytest.param(
        _broken(system__robotNamePrefix="bot$"),
        [
            "system.robotNamePrefix: changing it from 'robot$' renames every robot login and "
            "breaks the Kamal hosts; to do it anyway set acknowledgeRobotNamePrefixChange to 'bot$'"
        ],
        id="robot-prefix-change-unacknowledged",
    ),
    pytest.param(
        _broken(robots__kamalProject="apps"),
        ["robots.kamalProject: 'apps' is not in projects"],
        id="kamal-project-unknown",
    ),
    pytest.param(
        _broken(replication__peer__site="chi"),
        ["replication.peer.site: must be the other site, not 'chi'"],
        id="peer-is-self",
    ),
    pytest.param(
        _broken(projects__0__retention__rules=[{"mostRecentlyPushed": 5}] * 16),
        ["projects[0].retention.rules: needs 1 to 15 rules, got 16 (Harbor's limit is 15)"],
        id="more-than-15-retention-rules",
    ),
    pytest.param(
        _broken(projects__0__retention__rules=[{"mostRecentlyPushed": 5, "nDaysSinceLastPull": 3}]),
        [
            "projects[0].retention.rules[0]: set exactly one of mostRecentlyPushed, "
            "mostRecentlyPulled, nDaysSinceLastPush, nDaysSinceLastPull, alwaysRetain"
        ],
        id="retention-rule-two-conditions",
    ),
    pytest.param(
        _broken(projects__0__name="YourOrg", install__metric__port="ninety"),
        [
            "install.metric.port: Input should be a valid integer",
            "projects[0].name: must be lower-case letters and digits, with '.', '_' or '-' between them",
        ],
        id="two-problems-two-lines",
    ),
    pytest.param(
        _broken(replication__peer__credentialsFrom="config"),
        ["replication.peer.robotName: required when credentialsFrom is config"],
        id="peer-from-config-without-robot",
    ),
    pytest.param(
        _broken(gc__schedule="0 0 23-1 * * *"),
        ["gc.schedule: cron hour field range 23-1 ends before it starts"],
        id="cron-reversed-range",  # robfig/cron: "beginning of range beyond end of range"
    ),
    pytest.param(
        _broken(gc__schedule="0 0 3 * * MOX"),
        ["gc.schedule: cron day of week field 'MOX' is not a number or a name SUN-SAT"],
        id="cron-unknown-weekday-name",
    ),
    pytest.param(
        _broken(gc__schedule="0 0 MON * * *"),
        ["gc.schedule: cron hour field 'MON' is not a number"],
        id="cron-weekday-name-in-hour-field",
    ),
    pytest.param(
        _broken(replication__pullSchedule="Daily"),
        ["replication.pullSchedule: replication rules take a 6-field cron, not 'Daily'"],
        id="preset-on-replication-rule",
    ),
    pytest.param(
        _broken(gc__workers=True),
        ["gc.workers: Input should be a valid integer"],
        id="bool-is-not-a-worker-count",
    ),
    pytest.param(
        _broken(storage__region=""),
        ["storage.region: must not be empty"],
        id="empty-region",
    ),
    pytest.param(
        _broken(site__hostname="registry.yourorg.example"),
        [
            "site.hostname: 'registry.yourorg.example' is not the host of externalUrl "
            "('registry-chi.yourorg.example')"
        ],
        id="hostname-not-the-url-host",
    ),
    pytest.param(
        _broken(install__metric="on"),
        ["install.metric: expected a mapping (got the string 'on')"],
        id="string-where-a-mapping-belongs",
    ),
    pytest.param(
        _broken(projects=[]),
        ["projects: at least one project is needed"],
        id="no-projects-is-one-line-not-its-consequences",
    ),
    pytest.param(
        _broken(gc__workers=9, robots__kamalProject="apps"),
        ["gc.workers: Input should be less than or equal to 5", "robots.kamalProject: 'apps' is not in projects"],
        id="field-error-and-cross-reference-together",
    ),
    pytest.param(
        _broken(robots__kamalProject="apps", dockerHubMirror__targetProject="apps", replication__peer__site="chi"),
        [
            "replication.peer.site: must be the other site, not 'chi'",
            "robots.kamalProject: 'apps' is not in projects",
            "dockerHubMirror.targetProject: 'apps' is not in projects",
        ],
        id="every-cross-reference-error",
    ),
]


@pytest.mark.parametrize(("config", "expected"), BROKEN_CONFIGS)
def test_broken_configuration_fails_with_the_exact_lines(config: dict[str, Any], expected: list[str]) -> None:
    with pytest.raises(ConfigError) as failure:
        validate_stack_config(config)
    assert failure.value.problems == expected
    assert str(failure.value) == "invalid stack configuration:\n" + "\n".join(expected)


def test_acknowledged_robot_prefix_change_is_accepted() -> None:
    config = validate_stack_config(
        _broken(system__robotNamePrefix="bot$", system__acknowledgeRobotNamePrefixChange="bot$")
    )
    assert config.system.robot_name_prefix == "bot$"


@pytest.mark.parametrize(
    "cron",
    [
        "0 0/10 * * * *",
        "0 0 3 * * *",
        "0 0 4 * * 6",
        "*/30 * * * * ?",
        "0 0 0 1,15 * *",
        # robfig/cron (Harbor's parser) takes month and weekday names, in any case.
        "0 0 3 * JAN-mar MON-fri",
        "0 30 6 * * sun,Sat",
        "0 0 0 1 DEC/2 *",
    ],
)
def test_valid_harbor_crons(cron: str) -> None:
    assert check_harbor_cron(cron) == cron


def test_program_reports_bad_config_before_declaring_any_resource() -> None:
    run = run_program("chi", config={"gc": {"workers": 0, "schedule": "Daily"}})
    assert isinstance(run.error, ConfigError)
    assert str(run.error).splitlines() == [
        "invalid stack configuration:",
        "gc.workers: Input should be greater than or equal to 1",
    ]
    assert run.resources == []


def test_program_refuses_unknown_top_level_key_and_plaintext_secret() -> None:
    run = run_program(
        "chi",
        config={"projcts": [{"name": "x"}]},
        secrets={"adminPassword": None},
        plain_config={"adminPassword": "hunter2-plain"},
    )
    lines = str(run.error).splitlines()
    assert lines[1:] == [
        "adminPassword: must be set with `pulumi config set --secret --stack chi adminPassword`",
        "projcts: unknown config key (known: site, storage, install, projects, robots, gc, "
        "auditLogPurge, system, replication, dockerHubMirror)",
    ]
    assert "hunter2-plain" not in str(run.error)


def test_every_missing_secret_is_one_line_with_the_command_that_prompts_for_it() -> None:
    run = run_program("chi", secrets=dict.fromkeys(PLACEHOLDER_SECRETS))
    assert isinstance(run.error, ConfigError)
    # chi: s3-compatible storage, peer credentials from its stack, a Docker Hub mirror.
    assert str(run.error).splitlines() == ["missing secrets for stack chi:"] + [
        f"{key}: not set; run `pulumi config set --secret --stack chi {key}` (it prompts for the value)"
        for key in (
            "adminPassword", "databasePassword", "s3AccessKey", "s3SecretKey",
            "s3AdminAccessKey", "s3AdminSecretKey", "dockerHubToken",
        )
    ]
    assert run.resources == []


def test_missing_secret_names_the_key_and_no_value() -> None:
    run = run_program("iad", secrets={"s3SecretKey": None})
    assert str(run.error).splitlines()[1:] == [
        "s3SecretKey: not set; run `pulumi config set --secret --stack iad s3SecretKey` (it prompts for the value)"
    ]
    assert not any(value in str(run.error) for value in PLACEHOLDER_SECRETS.values())


def test_a_stack_file_copied_from_the_other_site_is_refused() -> None:
    # Pulumi.iad.yaml made by copying Pulumi.chi.yaml: the iad stack would manage chi's Harbor.
    run = run_program("iad", config=stack_file_config("chi"))
    assert str(run.error).splitlines() == [
        "invalid stack configuration:",
        "site.name: 'chi' does not match the stack 'iad'",
    ]
    assert run.resources == []


@pytest.mark.parametrize(
    ("config", "line"),
    [
        ({"site": "chi"}, "site: expected a mapping (got the string 'chi')"),
        ({"gc": "Daily"}, "gc: expected a mapping (got the string 'Daily')"),
        ({"projects": "yourorg"}, "projects: expected a list (got the string 'yourorg')"),
        ({"gc": 5}, "gc: expected a mapping (got the number 5)"),
    ],
)
def test_a_scalar_where_a_mapping_belongs_is_one_line(config: dict[str, Any], line: str) -> None:
    run = run_program("chi", config=config)
    assert str(run.error).splitlines() == ["invalid stack configuration:", line]


def test_a_scalar_set_with_secret_where_a_mapping_belongs_is_not_echoed() -> None:
    run = run_program("chi", config={"gc": None}, secrets={"gc": "hunter2-secret"})
    assert str(run.error).splitlines()[1:] == ["gc: expected a mapping (got a value set with --secret)"]


def test_credentials_in_the_storage_endpoint_are_refused_and_not_echoed() -> None:
    storage = {**stack_file_config("chi")["storage"], "endpoint": "https://AKIAEXAMPLE:wJalr-SECRET@s3.example"}
    run = run_program("chi", config={"storage": storage})
    assert str(run.error).splitlines()[1:] == [
        "storage.endpoint: must not contain a user or password; credentials go in secret config keys"
    ]
    assert "wJalr-SECRET" not in str(run.error) and "AKIAEXAMPLE" not in str(run.error)


def test_program_reports_field_and_cross_reference_errors_in_one_run() -> None:
    run = run_program("chi", config={"projects": [], "gc": {"workers": True}})
    assert str(run.error).splitlines()[1:] == [
        "projects: at least one project is needed",
        "gc.workers: Input should be a valid integer",
    ]


def test_a_secret_pasted_into_a_plain_key_is_not_echoed() -> None:
    run = run_program("chi", config={"storage": {**stack_file_config("chi")["storage"], "secretKey": "wJalr-SECRET"}})
    assert str(run.error).splitlines()[1:] == ["storage.secretKey: Extra inputs are not permitted"]
    assert "wJalr-SECRET" not in str(run.error)


README = (REPO_ROOT / "README.md").read_text()


@pytest.mark.parametrize("stack", ["chi", "iad"])
def test_stack_file_header_names_exactly_the_secrets_the_stack_needs(stack: str) -> None:
    text = (REPO_ROOT / f"Pulumi.{stack}.yaml").read_text()
    header = text[: text.index("\nconfig:")]
    needed = required_secret_keys(validate_stack_config(stack_file_config(stack), stack=stack))
    assert [key for key in SECRET_KEYS if re.search(rf"\b{key}\b", header)] == needed
    assert f"pulumi config set --secret --stack {stack} KEY" in header


def test_readme_has_a_prompting_command_for_every_secret_key() -> None:
    commands = re.findall(r"^pulumi config set --secret --stack chi (\w+)(.*)$", README, re.MULTILINE)
    assert {key for key, _ in commands} == set(SECRET_KEYS)
    assert all(rest == "" or rest.lstrip().startswith("#") for _, rest in commands)  # no value argument


def test_readme_never_puts_a_secret_value_on_the_command_line() -> None:
    # A value argument, not a comment, a pipe or a `< file` redirection.
    for match in re.finditer(r"pulumi config set --secret(?: --stack \w+)? \w+ (?!<\s)[^\s`#|]", README):
        pytest.fail(f"value on the command line: {match.group(0)!r}")
