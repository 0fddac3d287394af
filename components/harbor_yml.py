"""Render the harbor.yml a site is installed from.

Pure functions, no Pulumi: HarborSite calls :func:`render_harbor_yml` inside one
``Output.all(...).apply`` and exports the text as the secret ``harborYml``.

Corrections to the seed's 2.10 excerpt for current Harbor 2.x:
- ``clair`` is gone (removed in Harbor 2.2; Trivy is the scanner), so it is dropped.
- ``external_url`` is set to the https URL: TLS terminates at the load balancer,
  and without it Harbor hands out http:// token realms and ``docker login`` fails.
- ``jobservice.logger_sweeper_duration`` is in *days* in Harbor 2.x; the seed's 3600
  would keep job logs for ten years. We default to 1.
- ``storage_service.s3.loglevel`` defaults to ``off``: the seed's ``debug`` logs every
  S3 request.
- ``upload_purging`` is on, so Harbor itself cleans abandoned uploads in ``_uploads``.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from components.config import InstallConfig, SiteConfig, StorageConfig


@dataclass(frozen=True, repr=False)
class HarborYmlSecrets:
    """The secret values harbor.yml carries. ``repr`` never shows them."""

    admin_password: str
    database_password: str
    s3_access_key: str
    s3_secret_key: str

    def __repr__(self) -> str:
        return "HarborYmlSecrets(<redacted>)"


def harbor_yml_document(
    site: SiteConfig,
    storage: StorageConfig,
    install: InstallConfig,
    *,
    region_endpoint: str | None,
    secrets: HarborYmlSecrets,
) -> dict:
    """harbor.yml as a dict, in the installer's key order."""
    s3 = {
        "bucket": storage.bucket,
        "accesskey": secrets.s3_access_key,
        "secretkey": secrets.s3_secret_key,
        "region": storage.region,
        # AWS itself needs no endpoint; S3-compatible backends need it and path style.
        **({"regionendpoint": region_endpoint, "forcepathstyle": storage.force_path_style}
           if region_endpoint else {}),
        "encrypt": storage.encrypt,
        "secure": storage.secure,
        "v4auth": storage.v4auth,
        "chunksize": storage.chunk_size,
        "loglevel": storage.log_level,
    }
    return {
        "hostname": site.hostname,
        "http": {"port": install.http_port},
        "external_url": site.external_url,
        "harbor_admin_password": secrets.admin_password,
        "database": {
            "password": secrets.database_password,
            "max_idle_conns": install.database.max_idle_conns,
            "max_open_conns": install.database.max_open_conns,
        },
        "data_volume": install.data_volume,
        "storage_service": {"s3": s3},
        "jobservice": {
            "max_job_workers": install.jobservice.max_job_workers,
            "job_loggers": list(install.jobservice.job_loggers),
            "logger_sweeper_duration": install.jobservice.logger_sweeper_duration,
        },
        "notification": {
            "webhook_job_max_retry": install.notification.webhook_job_max_retry,
            "webhook_job_http_client_timeout": install.notification.webhook_job_http_client_timeout,
        },
        "log": {
            "level": install.log.level,
            "local": {
                "rotate_count": install.log.rotate_count,
                "rotate_size": install.log.rotate_size,
                "location": install.log.location,
            },
        },
        "metric": {
            "enabled": install.metric.enabled,
            "port": install.metric.port,
            "path": install.metric.path,
        },
        "upload_purging": {"enabled": True, "age": "168h", "interval": "24h", "dryrun": False},
        "_version": install.harbor_version,
    }


def render_harbor_yml(
    site: SiteConfig,
    storage: StorageConfig,
    install: InstallConfig,
    *,
    region_endpoint: str | None,
    secrets: HarborYmlSecrets,
) -> str:
    """harbor.yml text: stable key order, so a diff shows only what changed."""
    document = harbor_yml_document(
        site, storage, install, region_endpoint=region_endpoint, secrets=secrets
    )
    header = f"# harbor.yml for {site.name} ({site.role}), rendered by the harbor-platform stack.\n"
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
