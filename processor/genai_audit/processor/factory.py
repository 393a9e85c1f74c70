"""The default pipeline for a given configuration: the one place stage order is decided."""

from __future__ import annotations

from genai_audit.clock import SYSTEM_CLOCK, Clock
from genai_audit.config import Settings
from genai_audit.keystore import KeyStore
from genai_audit.processor.commitments import CommitmentStage
from genai_audit.processor.encryption import EncryptionStage
from genai_audit.processor.events import EventJoiner
from genai_audit.processor.merge import CallMerger
from genai_audit.processor.pipeline import RecordPipeline, Stage
from genai_audit.processor.pricing import PricingStage, load_price_table
from genai_audit.processor.pseudonym import PseudonymStage
from genai_audit.processor.redaction.policy import load_policy
from genai_audit.processor.redaction.stage import RedactionStage
from genai_audit.processor.render import RenderStage
from genai_audit.processor.retention import (
    PolicySource,
    RetentionPolicy,
    RetentionStage,
    StaticPolicies,
)


def default_policy(settings: Settings) -> RetentionPolicy:
    """The configured default retention (used where no tenant policy is recorded)."""
    return RetentionPolicy(settings.retention_days)


def default_pipeline(settings: Settings, keys: KeyStore,
                     policies: PolicySource | None = None,
                     clock: Clock = SYSTEM_CLOCK) -> RecordPipeline:
    """``policies``: per-tenant retention (the store's, from the exporter); default: static.
    ``clock``: the application's clock (the merge's memory of recent calls and the event
    joiner's bound run on it)."""
    stages: list[Stage] = [
        PseudonymStage(keys),
        # policy validated here (from the settings' own config file: --config reaches it);
        # the model loads off the request thread
        RedactionStage(keys, load_policy(config_file=settings.config_file)),
        RenderStage(capture_content=settings.capture_content),
        CommitmentStage(keys),
        EncryptionStage(keys),
        PricingStage(load_price_table(settings.pricing_file)),
        RetentionStage(policies or StaticPolicies(default_policy(settings))),
    ]
    return RecordPipeline(stages, merger=CallMerger(clock=clock), joiner=EventJoiner(clock=clock))
