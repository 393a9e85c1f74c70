"""The S3 archive honours the AWS configuration a user already has (issue 23): endpoint,
key pair, profile and region, below genai-audit's own settings."""

from __future__ import annotations

import pytest

from genai_audit.clickhouse.archive_location import aws_defaults, location_from_settings
from genai_audit.clickhouse.errors import ConfigError
from genai_audit.config import Settings

NONE = Settings.load({}, env={})


def test_environment_endpoint_and_keys():
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_ENDPOINT_URL_S3":
           "http://127.0.0.1:9001", "AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "s"}
    loc = location_from_settings("s3://audit-archive/prod", NONE, env)
    assert loc.base == "http://127.0.0.1:9001/audit-archive/prod"  # the S3-specific one wins
    assert (loc.access_key_id, loc.secret_access_key) == ("AKIAENV", "s")


def test_a_profile_and_its_region(tmp_path):
    creds, config = tmp_path / "credentials", tmp_path / "config"
    creds.write_text("[default]\naws_access_key_id = AKIADEF\naws_secret_access_key = d\n"
                     "[audit]\naws_access_key_id = AKIAAUD\naws_secret_access_key = a\n")
    config.write_text("[profile audit]\nregion = eu-central-1\n")
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_CONFIG_FILE": str(config),
           "AWS_PROFILE": "audit"}
    loc = location_from_settings("s3://audit-archive/prod", NONE, env)
    assert loc.access_key_id == "AKIAAUD"
    assert loc.base == "https://audit-archive.s3.eu-central-1.amazonaws.com/prod"
    assert aws_defaults({**env, "AWS_PROFILE": ""})["access_key_id"] == "AKIADEF"
    assert aws_defaults({**env, "AWS_REGION": "us-west-2"})["region"] == "us-west-2"


def test_genai_audit_settings_win_over_aws():
    settings = Settings.load({"s3_endpoint_url": "http://127.0.0.1:7000", "s3_access_key_id":
                              "AKIAOWN", "s3_secret_access_key": "o"}, env={})
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_ACCESS_KEY_ID": "AKIAENV",
           "AWS_SECRET_ACCESS_KEY": "s"}
    loc = location_from_settings("s3://audit-archive/prod", settings, env)
    assert loc.base.startswith("http://127.0.0.1:7000/") and loc.access_key_id == "AKIAOWN"


def test_no_aws_configuration_is_the_public_endpoint_without_keys(tmp_path):
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
           "AWS_CONFIG_FILE": str(tmp_path / "none")}
    loc = location_from_settings("s3://audit-archive/prod", NONE, env)
    assert loc.base == "https://audit-archive.s3.amazonaws.com/prod" and not loc.access_key_id


def test_a_bad_region_is_refused():
    with pytest.raises(ConfigError, match="not a region name"):
        location_from_settings("s3://audit-archive/p", NONE, {"AWS_REGION": "eu/../x"})
