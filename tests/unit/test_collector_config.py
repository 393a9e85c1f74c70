"""otel-collector.yaml: the structure the gateway's durability relies on, and only
components that exist in otelcol-contrib."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

CONFIG = Path(__file__).resolve().parents[2] / "otel-collector.yaml"

# Component type ids (each component's metadata.yaml `type:`) of the modules listed in the
# otelcol-contrib distribution manifest: open-telemetry/opentelemetry-collector-releases,
# distributions/otelcol-contrib/manifest.yaml at commit
# 008cde8ca78cc0286ee3f0de92fa95e1641a445a (otelcol-contrib 0.135.0, modules v0.136.0).
# Only the ones this project may use are listed, each with its module.
OTELCOL_CONTRIB: dict[str, dict[str, str]] = {
    "receivers": {
        "otlp": "go.opentelemetry.io/collector/receiver/otlpreceiver",
    },
    "processors": {
        "batch": "go.opentelemetry.io/collector/processor/batchprocessor",
        "memory_limiter": "go.opentelemetry.io/collector/processor/memorylimiterprocessor",
        "redaction": "github.com/open-telemetry/opentelemetry-collector-contrib/processor/"
                     "redactionprocessor",
        "attributes": "github.com/open-telemetry/opentelemetry-collector-contrib/processor/"
                      "attributesprocessor",
    },
    "exporters": {
        "otlp": "go.opentelemetry.io/collector/exporter/otlpexporter",
        "otlphttp": "go.opentelemetry.io/collector/exporter/otlphttpexporter",
        "debug": "go.opentelemetry.io/collector/exporter/debugexporter",
    },
    "extensions": {
        "health_check": "github.com/open-telemetry/opentelemetry-collector-contrib/extension/"
                        "healthcheckextension",
        "file_storage": "github.com/open-telemetry/opentelemetry-collector-contrib/extension/"
                        "storage/filestorage",
        "bearertokenauth": "github.com/open-telemetry/opentelemetry-collector-contrib/"
                           "extension/bearertokenauthextension",
    },
}


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(CONFIG.read_text())


def _type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def test_every_component_exists_in_otelcol_contrib(config):
    for kind in ("receivers", "processors", "exporters", "extensions"):
        for component_id in config[kind]:
            assert _type(component_id) in OTELCOL_CONTRIB[kind], (kind, component_id)


def test_pipeline_references_defined_components_in_order(config):
    service = config["service"]
    [pipeline] = service["pipelines"].values()
    assert list(service["pipelines"]) == ["traces"]
    for kind in ("receivers", "processors", "exporters"):
        for component_id in pipeline[kind]:
            assert component_id in config[kind], (kind, component_id)
    assert [_type(p) for p in pipeline["processors"]] == ["memory_limiter", "batch"]
    assert set(service["extensions"]) == set(config["extensions"])
    assert [_type(r) for r in pipeline["receivers"]] == ["otlp"]
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}


def test_gateway_exporter_is_durable_authenticated_and_encrypted(config):
    [exporter_id] = config["service"]["pipelines"]["traces"]["exporters"]
    assert _type(exporter_id) == "otlp"
    exporter = config["exporters"][exporter_id]
    queue = exporter["sending_queue"]
    assert queue["enabled"] is True
    assert _type(queue["storage"]) == "file_storage" and queue["storage"] in config["extensions"]
    assert config["extensions"][queue["storage"]]["fsync"] is True
    retry = exporter["retry_on_failure"]
    assert retry["enabled"] is True and retry["max_elapsed_time"] == 0
    auth = exporter["auth"]["authenticator"]
    assert _type(auth) == "bearertokenauth" and auth in config["extensions"]
    assert exporter["tls"]["insecure"] is False and exporter["tls"]["ca_file"]
    assert exporter["endpoint"] == "${env:GENAI_AUDIT_GATEWAY_ENDPOINT}"
    assert "health_check" in config["extensions"]


def test_the_comment_block_explains_each_choice():
    head = CONFIG.read_text().split("\nextensions:", 1)[0]
    for topic in ("memory_limiter", "batch", "sending_queue", "retry_on_failure",
                  "health_check", "bearertokenauth", "TLS"):
        assert topic in head, topic
