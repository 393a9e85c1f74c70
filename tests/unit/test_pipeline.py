from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence

import pytest

from genai_audit.clickhouse.writer import record_row
from genai_audit.config import Settings
from genai_audit.processor.commitments import commitment_key
from genai_audit.processor.encryption import open_sealed
from genai_audit.processor.factory import default_pipeline
from genai_audit.processor.pipeline import RecordPipeline
from genai_audit.processor.record import AuditRecord, ContentState, Flag
from genai_audit.processor.render import RenderStage


def test_default_pipeline_pseudonymizes_renders_commits_encrypts_and_prices(make_span,
                                                                             keystore):
    pipeline = default_pipeline(Settings.load(env={}), keystore)
    [r] = pipeline.build([make_span()])
    assert r.user_id is None
    subject = keystore.find_subject("acme", "alice")
    assert subject is not None and r.user_key == subject.pseudonym
    assert r.content_state is ContentState.ENCRYPTED and r.content_key_id == subject.key_id
    assert r.content.is_empty()  # parsed messages dropped once rendered
    prompt = open_sealed(subject, r.id, "full_prompt_text", r.prompt_text)
    assert prompt == '[{"parts":[{"content":"hi","type":"text"}],"role":"user"}]'
    assert open_sealed(subject, r.id, "response_preview", r.response_preview) == "hello"
    commit_key = commitment_key(subject)
    assert r.prompt_hash == hmac.new(commit_key, prompt.encode(), hashlib.sha256).digest()
    assert r.total_cost > 0 and r.retention_days == 365


def test_same_user_same_key_other_tenant_other_key(make_span, keystore):
    pipeline = default_pipeline(Settings.load(env={}), keystore)
    a, b, c = pipeline.build([make_span(), make_span(), make_span(**{"tenant.id": "globex"})])
    assert a.user_key == b.user_key != c.user_key


def test_capture_off_stores_metadata_only(make_span, keystore):
    pipeline = default_pipeline(Settings.load({"capture_content": False}, env={}), keystore)
    [r] = pipeline.build([make_span()])
    assert (r.prompt_text, r.response_text, r.response_preview) == ("", "", "")
    assert r.content_state is ContentState.NOT_CAPTURED and r.prompt_tokens == 10


class _FailsOn:
    name = "flaky"
    failure_flag = Flag.REDACTION_FAILED

    def __init__(self, bad_tool: str) -> None:
        self.bad_tool = bad_tool

    def process(self, records: Sequence[AuditRecord]) -> None:
        for record in records:
            if record.tool_name == self.bad_tool:
                raise RuntimeError("secret content in the message: alice@example.com")


def test_a_failing_stage_withholds_only_the_bad_records(make_span, caplog):
    caplog.set_level(logging.DEBUG)  # not even at DEBUG: tracebacks carry the message
    good, bad = make_span(), make_span(**{"genai_audit.tool": "boom"})
    records = RecordPipeline([_FailsOn("boom")]).build([good, bad])
    assert records[0].content.input_messages and not records[0].flags
    assert records[1].content_state is ContentState.WITHHELD
    assert {Flag.REDACTION_FAILED, Flag.CONTENT_WITHHELD} <= records[1].flags
    assert records[1].prompt_tokens == 10  # metadata kept
    assert "alice@example.com" not in caplog.text  # never log exception texts
    assert "RuntimeError" in caplog.text and "raised at" in caplog.text  # type and place


def test_writer_refuses_plaintext_user(make_span):
    [r] = RecordPipeline([]).build([make_span()])
    with pytest.raises(ValueError, match="plaintext user id"):
        record_row(r)


def test_render_keeps_the_text_and_drops_the_parsed_messages(make_span):
    [r] = RecordPipeline([RenderStage()]).build([make_span()])
    assert r.prompt_text == '[{"parts":[{"content":"hi","type":"text"}],"role":"user"}]'
    assert r.response_preview == "hello" and r.content_state is ContentState.PLAINTEXT
    assert r.content.is_empty()


def test_finish_reasons_from_the_output_messages_when_the_span_has_none(make_span):
    from genai_audit.processor.normalize import normalize

    record = normalize(make_span(**{"gen_ai.response.finish_reasons": None,
                                    "gen_ai.output.messages": '[{"role": "assistant", "parts": '
                                    '[], "finish_reason": "length"}]'}))
    RenderStage().process([record])
    assert record.finish_reasons == ("length",)
