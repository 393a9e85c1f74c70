"""The default pipeline for a given configuration: the one place stage order is decided."""

from __future__ import annotations

from genai_audit.config import Settings
from genai_audit.keystore import KeyStore
from genai_audit.processor.commitments import CommitmentStage
from genai_audit.processor.pipeline import RecordPipeline, Stage
from genai_audit.processor.pricing import PricingStage, load_price_table
from genai_audit.processor.pseudonym import PseudonymStage
from genai_audit.processor.redaction.stage import RedactionStage
from genai_audit.processor.render import RenderStage
from genai_audit.processor.retention import RetentionStage


def default_pipeline(settings: Settings, keys: KeyStore) -> RecordPipeline:
    stages: list[Stage] = [
        PseudonymStage(keys),
        RedactionStage(keys),  # policy validated here; the model loads on the first batch
        RenderStage(capture_content=settings.capture_content),
        CommitmentStage(keys),
        PricingStage(load_price_table(settings.pricing_file)),
        RetentionStage(settings.retention_days),
    ]
    return RecordPipeline(stages)
