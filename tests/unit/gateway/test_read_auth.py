"""Reader credentials of the owner's read interface, and the settings a client may send."""

from __future__ import annotations

from base64 import b64encode

import pytest

from genai_audit.exporter.gateway.auth import AuthConfigError, AuthError, hash_token
from genai_audit.exporter.gateway.read_auth import Reader, ReaderAuth, load_readers
from genai_audit.exporter.gateway.read_service import ReadRefused, whitelisted

H1, H2 = hash_token("tok-one"), hash_token("tok-two")


def _file(tmp_path, text):
    path = tmp_path / "readers.toml"
    path.write_text(text)
    return path


def test_readers_file_maps_token_hashes_to_roles_and_tenants(tmp_path):
    path = _file(tmp_path, f'[[reader]]\nsha256 = "{H1}"\nrole = "auditor"\n'
                           f'[[reader]]\nsha256 = "{H2}"\nrole = "auditor"\ntenant = "acme"\n'
                           'name = "acme-team"\n')
    assert load_readers(path) == {H1: Reader("auditor", "auditor"),
                                  H2: Reader("acme-team", "auditor", "acme")}


@pytest.mark.parametrize("text, why", [
    ("", "no \\[\\[reader\\]\\]"),
    ('[[reader]]\nsha256 = "tok-one"\nrole = "auditor"\n', "64 hex"),
    (f'[[reader]]\nsha256 = "{H1}"\nrole = "root"\n', "role must be one of"),
    (f'[[reader]]\nsha256 = "{H1}"\nrole = "admin"\ntenant = "acme"\n', "only an auditor"),
    (f'[[reader]]\nsha256 = "{H1}"\nrole = "auditor"\ntenant = "a\'b"\n', "invalid tenant"),
    (f'[[reader]]\nsha256 = "{H1}"\nrole = "auditor"\n' * 2, "duplicate"),
])
def test_bad_readers_files_are_refused_with_the_reason(tmp_path, text, why):
    with pytest.raises(AuthConfigError, match=why):
        load_readers(_file(tmp_path, text))


def test_no_readers_file_no_read_endpoint():
    with pytest.raises(AuthConfigError, match="needs a readers file"):
        ReaderAuth.from_file(None)


def test_the_token_decides_whatever_the_user_name():
    auth = ReaderAuth({H1: Reader("a", "auditor")})
    basic = "Basic " + b64encode(b"anyone:tok-one").decode()
    assert auth.authenticate(None, basic).name == "a"
    assert auth.authenticate("tok-one", None).name == "a"
    assert auth.authenticate(None, "Bearer tok-one").name == "a"
    for key, authorization in ((None, None), ("tok-two", None), (None, "Basic !!"),
                               (None, "Basic " + b64encode(b"a:tok-two").decode())):
        with pytest.raises(AuthError):
            auth.authenticate(key, authorization)


def test_client_settings_are_whitelisted_never_passed_through():
    kept = whitelisted({"max_result_rows": "10", "readonly": "0", "query_id": "q",
                        "date_time_input_format": "best_effort", "wait_end_of_query": "1"})
    assert kept == {"max_result_rows": "10", "date_time_input_format": "best_effort"}
    for name, value in (("additional_table_filters", "{}"), ("allow_ddl", "1"),
                        ("max_result_rows", "1'; DROP")):
        with pytest.raises(ReadRefused) as refused:
            whitelisted({name: value})
        assert refused.value.code == 115 and refused.value.status == 400


def test_the_read_endpoint_serves_an_embedded_store_only(tmp_path):
    from genai_audit.config import Settings
    from genai_audit.exporter.gateway.runtime import GatewayError, check_read_settings
    readers = _file(tmp_path, f'[[reader]]\nsha256 = "{H1}"\nrole = "auditor"\n')
    assert check_read_settings(Settings()) is None  # off by default
    on = {"gateway_read_endpoint": "127.0.0.1:8124", "gateway_readers_file": str(readers)}
    assert check_read_settings(Settings(dsn=str(tmp_path / "s")).with_overrides(on))
    with pytest.raises(GatewayError, match="readers connect to the server itself"):
        check_read_settings(Settings(dsn="http://u:p@ch:8123").with_overrides(on))
    with pytest.raises(GatewayError, match="needs a readers file"):
        check_read_settings(Settings(dsn=str(tmp_path / "s"),
                                     gateway_read_endpoint="127.0.0.1:8124"))
