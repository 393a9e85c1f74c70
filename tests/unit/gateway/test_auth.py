"""Bearer tokens -> tenants; a tokens file holds hashes only."""

from __future__ import annotations

import pytest

from genai_audit.exporter.gateway.auth import (
    AuthConfigError,
    Authenticator,
    AuthError,
    hash_token,
    load_tokens,
)


def _tokens(tmp_path, body: str):
    path = tmp_path / "tokens.toml"
    path.write_text(body)
    return path


def test_token_decides_the_tenant(tmp_path):
    path = _tokens(tmp_path, f'''
[[token]]
tenant = "acme"
sha256 = "{hash_token("s3cret-acme")}"
[[token]]
tenant = "globex"
sha256 = "{hash_token("s3cret-globex")}"
trust_processed = true
''')
    auth = Authenticator.from_settings(str(path), allow_unauthenticated=False)
    acme = auth.authenticate("Bearer s3cret-acme")
    assert acme.tenant == "acme" and not acme.trust_processed
    assert auth.authenticate("bearer s3cret-globex").trust_processed
    for header, match in ((None, "missing"), ("Bearer nope", "unknown"),
                          ("Basic abc", "Bearer"), ("Bearer ", "Bearer")):
        with pytest.raises(AuthError, match=match):
            auth.authenticate(header)


def test_unauthenticated_only_when_explicitly_enabled():
    with pytest.raises(AuthConfigError, match="allow-unauthenticated"):
        Authenticator.from_settings(None, allow_unauthenticated=False)
    anonymous = Authenticator.from_settings(None, allow_unauthenticated=True).authenticate(None)
    assert anonymous.tenant is None


def test_tokens_and_unauthenticated_together_are_refused(tmp_path):
    path = _tokens(tmp_path, f'[[token]]\ntenant = "acme"\nsha256 = "{hash_token("t")}"\n')
    with pytest.raises(AuthConfigError, match="one or the other"):
        Authenticator.from_settings(str(path), allow_unauthenticated=True)


@pytest.mark.parametrize("body, message", [
    ("", "no \\[\\[token\\]\\]"),
    ('[[token]]\ntenant = "a"\nsha256 = "s3cret"', "64 hex"),
    (f'[[token]]\nsha256 = "{"a" * 64}"', "tenant is required"),
    (f'[[token]]\ntenant="a"\nsha256 = "{"a" * 64}"\n[[token]]\ntenant="b"\nsha256 = "{"a" * 64}"',
     "duplicate"),
    (f'[[token]]\ntenant="a"\nsha256 = "{"a" * 64}"\ntrust_processed = "yes"', "true or false"),
    ("[[token", "cannot read"),
])
def test_bad_tokens_files_are_refused_with_the_reason(tmp_path, body, message):
    with pytest.raises(AuthConfigError, match=message):
        load_tokens(_tokens(tmp_path, body))
