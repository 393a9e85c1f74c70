from __future__ import annotations

import json

from click.testing import CliRunner

from genai_audit.cli.main import cli


def test_settings_show_values_sources_and_mask_passwords(tmp_path, monkeypatch):
    cfg = tmp_path / "genai-audit.toml"
    cfg.write_text("retention_days = 400\nsync_tools = ['contract_review']\n")
    monkeypatch.setenv("GENAI_AUDIT_RETENTION_DAYS", "500")
    result = CliRunner().invoke(cli, ["settings", "--config", str(cfg), "--format", "json",
                                      "--dsn", "http://writer:s3cret@ch.internal:8123"])
    assert result.exit_code == 0, result.output
    rows = {r["setting"]: r for r in json.loads(result.output)}
    assert rows["retention_days"]["value"] == "500"
    assert rows["retention_days"]["source"] == "env GENAI_AUDIT_RETENTION_DAYS"
    assert rows["sync_tools"] == {"setting": "sync_tools", "value": "contract_review",
                                  "source": f"file {cfg}"}
    assert rows["dsn"]["value"] == "http://writer:***@ch.internal:8123"
    assert rows["dsn"]["source"] == "argument" and "s3cret" not in result.output
    assert rows["max_retries"]["source"] == "default"
