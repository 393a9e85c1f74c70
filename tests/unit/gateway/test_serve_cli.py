"""`genai-audit serve`: usage errors exit 2 with one line; --hash-token; --help teaches."""

from __future__ import annotations

import io

import pytest

from genai_audit.cli.main import main
from genai_audit.exporter.gateway.auth import hash_token


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in ("GENAI_AUDIT_CONFIG", "GENAI_AUDIT_DSN", "GENAI_AUDIT_GATEWAY_TOKENS_FILE",
                 "GENAI_AUDIT_GATEWAY_ALLOW_UNAUTHENTICATED"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("args, message", [
    ([], "allow-unauthenticated"),
    (["--allow-unauthenticated", "--grpc", "nonsense"], "host:port"),
    (["--allow-unauthenticated", "--grpc", "off", "--http", "off"], "both listeners are off"),
    (["--allow-unauthenticated", "--tls-cert", "x.pem"], "both gateway_tls_cert"),
    (["--tokens-file", "missing.toml"], "cannot read"),
    (["--allow-unauthenticated", "--workers", "0"], "must be > 0"),
    (["--allow-unauthenticated", "--tokens-file", "tokens.toml"], "one or the other"),
])
def test_usage_errors_exit_2_with_one_line(capsys, args, message, tmp_path):
    (tmp_path / "tokens.toml").write_text(f'[[token]]\ntenant = "a"\nsha256 = "{"a" * 64}"\n')
    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_hash_token_prints_the_tokens_file_line(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    assert main(["serve", "--hash-token"]) == 0
    assert capsys.readouterr().out.strip() == f'sha256 = "{hash_token("s3cret")}"'


def test_help_teaches(capsys):
    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    for text in ("Examples:", "--tokens-file", "--workers", "docs/deploy.md", "/readyz"):
        assert text in out
