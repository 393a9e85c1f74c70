"""Policy files and environment: layering, and a clear error for each kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from genai_audit.processor.redaction.policy import PolicyError, load_policy

POLICY = """
[redaction]
operator = "replace"
threshold = 0.4
allow = ["Acme Corp"]
[redaction.operators]
CREDIT_CARD = "mask"
[redaction.tools.contract_review]
operator = "hmac"
[redaction.tenants.acme]
allow = ["Acme"]
entities = ["PERSON", "EMAIL_ADDRESS"]
[redaction.tenants.acme.tools.hr_helpdesk]
capture_content = false
[redaction.regions.EU]
allowed_endpoints = ["http://127.0.0.1:11434/v1"]
reroute_to = "http://127.0.0.1:11434/v1/"
model = "llama3"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def test_layers_resolve_base_tool_tenant_tenant_tool(tmp_path: Path) -> None:
    policies = load_policy(write(tmp_path, POLICY), env={})
    base = policies.for_call("other", "chat")
    assert (base.operator, base.threshold, base.operator_for("CREDIT_CARD")) == (
        "replace", 0.4, "mask")
    assert base.allowed("ACME  corp") and not base.allowed("Acme")
    assert policies.for_call("other", "contract_review").operator == "hmac"
    acme = policies.for_call("acme", "chat")
    assert acme.entities == {"PERSON", "EMAIL_ADDRESS"} and acme.allowed("acme")
    assert acme.allowed("acme corp")  # allow-lists add up
    assert policies.for_call("acme", "hr_helpdesk").capture_content is False
    assert policies.for_call("acme", "chat").capture_content is True
    rule = policies.region("eu")
    assert rule is not None and rule.reroute_to == "http://127.0.0.1:11434/v1"
    assert rule.model == "llama3"


def test_env_overrides_base_and_names_the_policy_file(tmp_path: Path) -> None:
    path = write(tmp_path, POLICY)
    policies = load_policy(env={"GENAI_AUDIT_REDACTION_POLICY": str(path),
                                "GENAI_AUDIT_REDACTION_OPERATOR": "drop",
                                "GENAI_AUDIT_REDACTION_MODEL": "my_model"})
    assert policies.for_call("x", "y").operator == "drop"
    assert policies.model == "my_model"


def test_reads_the_redaction_table_of_the_main_config(tmp_path: Path) -> None:
    config = tmp_path / "genai-audit.toml"
    config.write_text('retention_days = 30\n[redaction]\noperator = "mask"\n')
    policies = load_policy(env={"GENAI_AUDIT_CONFIG": str(config)})
    assert policies.for_call("t", "x").operator == "mask"


def test_no_file_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    policy = load_policy(env={}).for_call("t", "x")
    assert policy.operator == "replace" and policy.entities is None and policy.capture_content


@pytest.mark.parametrize(("text", "message"), [
    ('[redaction]\noperator = "shred"', r"redaction\.operator: unknown operator 'shred'"),
    ("[redaction]\nthreshold = 1.5", r"redaction\.threshold: expected a score between 0 and 1"),
    ('[redaction]\nentities = ["PASSPORT_PHOTO"]', r"unknown entity type 'PASSPORT_PHOTO'"),
    ("[redaction]\ncolour = 1", r"redaction: unknown key\(s\) colour"),
    ('[redaction.tenants.acme]\ncapture_content = "maybe"',
     r"redaction\.tenants\.acme\.capture_content: expected true or false"),
    ('[redaction.tenants.acme.tools.x]\nthresholds = { PERSON = "high" }',
     r"redaction\.tenants\.acme\.tools\.x\.thresholds: expected a score"),
    ('[redaction.regions.EU]\nallowed_endpoints = ["ftp://x"]', r"is not an http\(s\) URL"),
    ("[redaction]\ntimeout_ms = 0", r"redaction\.timeout_ms: must be > 0"),
    ("[redaction\n", r"invalid TOML"),
])
def test_errors_name_the_key_and_the_source(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError, match=message) as info:
        load_policy(path, env={})
    assert str(path) in str(info.value)


def test_bad_env_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="GENAI_AUDIT_REDACTION_THRESHOLD"):
        load_policy(write(tmp_path, ""), env={"GENAI_AUDIT_REDACTION_THRESHOLD": "high"})


def test_missing_named_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(env={"GENAI_AUDIT_REDACTION_POLICY": str(tmp_path / "nope.toml")})


def test_languages_are_a_layer_and_bad_ones_are_named(tmp_path: Path) -> None:
    policies = load_policy(write(tmp_path, """
[redaction]
languages = ["de", "FR"]
[redaction.tools.intake]
languages = "es"
[redaction.tenants.acme]
languages = ["en"]
[redaction.tenants.acme.tools.intake]
languages = ["en", "de"]
"""), env={})
    assert policies.for_call("other", "chat").languages == ("de", "fr")
    assert policies.for_call("other", "intake").languages == ("es",)  # tool < tenant
    assert policies.for_call("acme", "chat").languages == ("en",)
    assert policies.for_call("acme", "intake").languages == ("en", "de")
    assert load_policy(write(tmp_path, ""), env={}).for_call("a", "b").languages == (
        "en", "de", "fr", "es")
    assert load_policy(write(tmp_path, ""), env={
        "GENAI_AUDIT_REDACTION_LANGUAGES": "es"}).for_call("a", "b").languages == ("es",)
    with pytest.raises(PolicyError, match=r"redaction\.languages.*unknown language 'xx'"):
        load_policy(write(tmp_path, '[redaction]\nlanguages = ["en", "xx"]'), env={})
    with pytest.raises(PolicyError,
                       match=r"redaction\.tenants\.acme\.languages.*unknown language 'xx'"):
        load_policy(write(tmp_path, '[redaction.tenants.acme]\nlanguages = ["xx"]'), env={})
    with pytest.raises(PolicyError, match="GENAI_AUDIT_REDACTION_LANGUAGES"):
        load_policy(write(tmp_path, ""), env={"GENAI_AUDIT_REDACTION_LANGUAGES": " "})
