"""The composition root: what a process that builds records runs, decided in one place.

``compose`` is called by every entry path: the in-process exporter
(``ClickHouseSpanExporter``), the gateway's store owner and each gateway worker process. It
decides

* the pipeline and its stage order (``factory.default_pipeline``);
* the retention policy source: always the store's ``retention_policies``
  (``StorePolicies``), read from the store by its owner and, in a gateway worker (which
  cannot open an embedded store), asked of the owner over its socket (``load``);
* the keystore and the application clock (``genai_audit.clock``), injected everywhere below;
* for the store's owner only: the ledgered writer (positions, checkpoints on the clock,
  checkpoint failures recorded as control failures), the write-time legal-hold copy
  (``ActiveHolds``), and the maintenance schedule (holds, retention, archive), which the
  owner starts with ``Composition.start`` (``ClickHouseSpanExporter.shutdown`` stops it and
  signs the final checkpoints).

A worker gets no writer and no maintenance, so a store has exactly one maintenance runner
whatever the number of gateway workers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from genai_audit.clickhouse.control_events import CHECKPOINT, UNJOINED_EVENTS, ControlEvents
from genai_audit.clickhouse.holds import ActiveHolds
from genai_audit.clickhouse.ledger.log import Ledger
from genai_audit.clickhouse.maintain import MaintenanceScheduler, run_maintenance
from genai_audit.clickhouse.policies import StorePolicies
from genai_audit.clickhouse.store import Store
from genai_audit.clickhouse.writer import COLUMNS, InteractionWriter
from genai_audit.clock import SYSTEM_CLOCK, Clock
from genai_audit.config import Settings
from genai_audit.keystore import KeyStore, open_keystore
from genai_audit.processor.events import Dropped
from genai_audit.processor.factory import default_pipeline, default_policy
from genai_audit.processor.pipeline import RecordPipeline
from genai_audit.processor.retention import RetentionPolicy

POLICY_REFRESH_S = 30.0  # a policy change reaches new records within this long
HOLD_REFRESH_S = 5.0  # a hold placed by another process reaches the writer within this long

PolicyLoader = Callable[[], dict[str, RetentionPolicy]]


@dataclass
class OwnerParts:
    """What only the store's owner runs."""

    store: Store
    writer: InteractionWriter
    holds: ActiveHolds
    events: ControlEvents
    maintenance: MaintenanceScheduler | None  # None: maintenance_interval_seconds = 0


@dataclass
class Composition:
    settings: Settings
    clock: Clock
    keys: KeyStore
    policies: StorePolicies
    pipeline: RecordPipeline
    owner: OwnerParts | None = None  # None in a gateway worker

    def start(self) -> None:
        """Start the owner's background maintenance (idempotent; nothing for a worker)."""
        if self.owner is not None and self.owner.maintenance is not None:
            self.owner.maintenance.start()

    def stats(self) -> dict[str, int]:
        """Background counters for ``/metrics``: maintenance runs and failures, checkpoint
        failures (zeros for a worker)."""
        out = {"maintenance_runs": 0, "maintenance_failures": 0, "checkpoint_failures": 0}
        if self.owner is not None:
            if self.owner.maintenance is not None:
                out.update(self.owner.maintenance.stats)
            if self.owner.writer.ledger is not None:
                out["checkpoint_failures"] = self.owner.writer.ledger.stats[
                    "checkpoint_failures"]
        return out


def compose(settings: Settings, *, store: Store | None = None,
            load_policies: PolicyLoader | None = None, keys: KeyStore | None = None,
            clock: Clock = SYSTEM_CLOCK) -> Composition:
    """Build the parts for an owner of ``store``, or for a worker of that store's owner.

    Exactly one of ``store`` (the owner's writing side) and ``load_policies`` (the gateway's
    listeners, in a worker or the owner's own process: they read the owner's policy table
    through their sink) is given. Nothing starts here: an owner calls
    ``Composition.start`` once it is ready to write.
    """
    if (store is None) == (load_policies is None):
        raise ValueError("compose needs either the store (an owner) or the owner's policy "
                         "loader (a worker)")
    keys = keys if keys is not None else open_keystore(settings)
    policies = StorePolicies(store, default_policy(settings), refresh_s=POLICY_REFRESH_S,
                             clock=clock.monotonic, load=load_policies)
    pipeline = default_pipeline(settings, keys, policies, clock=clock)
    owner = None if store is None else _owner_parts(settings, store, keys, clock)
    if owner is not None and pipeline.joiner is not None:
        pipeline.joiner.on_dropped = _control_note(owner.events)
    return Composition(settings, clock, keys, policies, pipeline, owner)


def _control_note(events: ControlEvents) -> Callable[[list[Dropped]], None]:
    """Dropped GenAI events as one ``control_events`` row per expiry pass (ids and counts,
    never content)."""
    def record(notes: list[Dropped]) -> None:
        spans = ", ".join(f"{n.trace_id}/{n.span_id}:{n.events}" for n in notes[:20])
        more = f" and {len(notes) - 20} more span(s)" if len(notes) > 20 else ""
        events.record(UNJOINED_EVENTS, False,
                      f"{sum(n.events for n in notes)} event(s) of {len(notes)} span(s) "
                      f"dropped unjoined ({notes[0].reason}): {spans}{more}")
    return record


def _owner_parts(settings: Settings, store: Store, keys: KeyStore, clock: Clock) -> OwnerParts:
    events = ControlEvents(store, clock=clock)

    def checkpoint_failed(logs: int, code: str) -> None:
        events.record(CHECKPOINT, False, f"{logs} log(s) not checkpointed: {code}")

    ledger = Ledger(store, keys.signing_key(), row_columns=COLUMNS,
                    checkpoint_records=settings.ledger_checkpoint_records,
                    checkpoint_seconds=settings.ledger_checkpoint_seconds,
                    clock=clock.monotonic, on_checkpoint_failure=checkpoint_failed)
    events.writer_id = ledger.writer_id
    holds = ActiveHolds(store, refresh_s=HOLD_REFRESH_S, clock=clock)
    writer = InteractionWriter(store, ledger, holds)
    maintenance = None
    if settings.maintenance_interval_seconds:
        maintenance = MaintenanceScheduler(
            lambda: run_maintenance(store, keys, settings, clock=clock),
            settings.maintenance_interval_seconds, clock=clock, events=events)
    return OwnerParts(store, writer, holds, events, maintenance)
