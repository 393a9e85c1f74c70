from __future__ import annotations

import pytest

from genai_audit.config import Settings, SettingsError


def test_precedence_argument_over_env_over_file(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[genai_audit]\nretention_days = 400\nsync_timeout_ms = 111\nmax_retries = 1\n')
    env = {"GENAI_AUDIT_RETENTION_DAYS": "500", "GENAI_AUDIT_SYNC_TIMEOUT_MS": "222"}
    s = Settings.load({"retention_days": 600, "dsn": None}, env=env, config_file=f)
    assert (s.retention_days, s.sync_timeout_ms, s.max_retries) == (600, 222, 1)
    assert s.sources["retention_days"] == "argument"
    assert s.sources["sync_timeout_ms"] == "env GENAI_AUDIT_SYNC_TIMEOUT_MS"
    assert s.sources["max_retries"].startswith("file ")
    assert s.describe()["max_batch_size"] == (512, "default")


def test_env_config_file_and_lists(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('sync_tools = ["contract_review", "hr_helpdesk"]\ncapture_content = false\n')
    s = Settings.load(env={"GENAI_AUDIT_CONFIG": str(f)})
    assert s.sync_tools == frozenset({"contract_review", "hr_helpdesk"})
    assert s.capture_content is False
    assert Settings.load(env={"GENAI_AUDIT_SYNC_TOOLS": " a, ,b "}).sync_tools == {"a", "b"}


@pytest.mark.parametrize("env, message", [
    ({"GENAI_AUDIT_RETENTION_DAYS": "soon"}, "retention_days: expected a whole number"),
    ({"GENAI_AUDIT_RETENTION_DAYS": "-3"}, "must be > 0"),
    ({"GENAI_AUDIT_RETENTION_DAYS": "40000"}, "at most 10950 days"),
    ({"GENAI_AUDIT_SYNC_ON_FAILURE": "panic"}, "one of raise, continue"),
    ({"GENAI_AUDIT_CAPTURE_CONTENT": "maybe"}, "expected true or false"),
])
def test_bad_values_name_setting_and_source(env, message):
    with pytest.raises(SettingsError, match=message) as info:
        Settings.load(env=env, config_file=None)
    assert "env GENAI_AUDIT_" in str(info.value)


def test_bad_files(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        Settings.load(env={}, config_file=tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("retention_days = [")
    with pytest.raises(SettingsError, match="invalid TOML"):
        Settings.load(env={}, config_file=bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("retension_days = 3")
    with pytest.raises(SettingsError, match="unknown setting"):
        Settings.load(env={}, config_file=unknown)
    with pytest.raises(SettingsError, match="unknown setting"):
        Settings.load({"nope": 1}, env={})


@pytest.mark.parametrize("table, hint", [
    ("[regions.EU]\nreroute_to = 'http://127.0.0.1:1/v1'", "[redaction.regions]"),
    ("[retention]\ndays = 30", "retention set"),
    ("[ledger]\ncheckpoint_seconds = 5", "ledger_checkpoint_seconds"),
])
def test_tables_nothing_reads_are_an_error_with_a_hint(tmp_path, table, hint):
    """A region rule in a top-level [regions] table used to be accepted and ignored."""
    path = tmp_path / "genai-audit.toml"
    path.write_text(table)
    with pytest.raises(SettingsError, match="nothing reads them") as err:
        Settings.load(env={}, config_file=path)
    assert hint in str(err.value) and str(path) in str(err.value)


def test_settings_remember_the_file_they_were_read_from(tmp_path, monkeypatch):
    path = tmp_path / "gw.toml"
    path.write_text("retention_days = 30\n")
    assert Settings.load(env={}, config_file=path).config_file == str(path)
    assert Settings.load(env={"GENAI_AUDIT_CONFIG": str(path)}).config_file == str(path)
    monkeypatch.chdir(tmp_path)  # no ./genai-audit.toml here
    assert Settings.load(env={}).config_file is None


def test_the_config_flag_reaches_the_redaction_policy_of_the_pipeline(tmp_path, monkeypatch):
    """`serve --config gw.toml` used to drop the file's [redaction] table: the pipeline read
    only GENAI_AUDIT_CONFIG or ./genai-audit.toml, so a tool's capture_content = false was
    silently ignored and its content stored."""
    from genai_audit.keystore import LocalKeyStore
    from genai_audit.processor.factory import default_pipeline
    from genai_audit.processor.redaction.stage import RedactionStage

    monkeypatch.chdir(tmp_path)
    for name in ("GENAI_AUDIT_CONFIG", "GENAI_AUDIT_REDACTION_POLICY"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "gw.toml"
    path.write_text("[redaction.tools.hr_helpdesk]\ncapture_content = false\n")
    settings = Settings.load(env={}, config_file=path)
    pipeline = default_pipeline(settings, LocalKeyStore(tmp_path / "keys"))
    stage = next(s for s in pipeline.stages if isinstance(s, RedactionStage))
    assert stage.policies.source == f"file {path}"
    assert stage.policies.for_call("acme", "hr_helpdesk").capture_content is False
    assert stage.policies.for_call("acme", "other").capture_content is True
