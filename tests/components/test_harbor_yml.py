"""harbor.yml: the secret `harborYml` output is the file a site is installed from."""

from __future__ import annotations

from pathlib import Path

import yaml

from components.harbor_yml import HarborYmlSecrets
from tests.support.pulumi_program import PLACEHOLDER_SECRETS, run_program

GOLDEN = Path(__file__).parent / "golden" / "harbor-chi.yml"


def _chi_harbor_yml() -> str:
    run = run_program("chi")
    assert run.error is None, run.error
    output = run.outputs["harborYml"]
    assert output.secret
    return output.value


def test_chi_harbor_yml_matches_the_golden_file() -> None:
    # Regenerate deliberately: python -c "from tests.components.test_harbor_yml import _chi_harbor_yml as f; print(f(), end='')" > tests/components/golden/harbor-chi.yml
    assert _chi_harbor_yml() == GOLDEN.read_text()


def test_chi_harbor_yml_parses_to_the_seed_settings_corrected_for_harbor_2x() -> None:
    document = yaml.safe_load(_chi_harbor_yml())
    assert document["hostname"] == "registry-chi.yourorg.example"
    assert document["external_url"] == "https://registry-chi.yourorg.example"
    assert document["http"] == {"port": 80}
    assert "https" not in document  # TLS ends at the load balancer
    assert "clair" not in document  # removed in Harbor 2.2
    assert document["harbor_admin_password"] == PLACEHOLDER_SECRETS["adminPassword"]
    assert document["data_volume"] == "/data"
    assert document["storage_service"] == {
        "s3": {
            "bucket": "docker-registry-bucket",
            "accesskey": PLACEHOLDER_SECRETS["s3AccessKey"],
            "secretkey": PLACEHOLDER_SECRETS["s3SecretKey"],
            "region": "us-east-1",
            "regionendpoint": "https://purestorage.chi.yourorg.example",
            "forcepathstyle": True,
            "encrypt": False,
            "secure": True,
            "v4auth": True,
            "chunksize": 5242880,
            "loglevel": "off",
        }
    }
    # The storage admin key creates the bucket; Harbor never gets it.
    assert PLACEHOLDER_SECRETS["s3AdminSecretKey"] not in yaml.safe_dump(document)
    assert document["metric"] == {"enabled": True, "port": 9090, "path": "/metrics"}
    assert document["database"] == {
        "password": PLACEHOLDER_SECRETS["databasePassword"],
        "max_idle_conns": 50,
        "max_open_conns": 100,
    }
    assert document["jobservice"] == {
        "max_job_workers": 20,
        "job_loggers": ["FILE"],
        "logger_sweeper_duration": 1,
    }
    assert document["log"] == {
        "level": "info",
        "local": {"rotate_count": 50, "rotate_size": "200M", "location": "/var/log/harbor"},
    }
    assert document["notification"] == {"webhook_job_max_retry": 3, "webhook_job_http_client_timeout": 10}
    assert document["_version"] == "2.13.0"


def test_iad_harbor_yml_points_at_iads_own_storage() -> None:
    run = run_program("iad")
    document = yaml.safe_load(run.outputs["harborYml"].value)
    assert document["storage_service"]["s3"]["regionendpoint"] == "https://purestorage.iad.yourorg.example"
    assert document["external_url"] == "https://registry-iad.yourorg.example"


def test_secrets_holder_repr_hides_values() -> None:
    held = HarborYmlSecrets("a-password", "b-password", "c-key", "d-secret")
    assert not any(value in repr(held) for value in ("a-password", "b-password", "c-key", "d-secret"))
