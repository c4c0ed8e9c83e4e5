"""The real clients against `meterhouse run` in a subprocess: OpenMeter's Python SDK and
OpenTelemetry's OTLP/HTTP span exporter, with keys made and revoked by the CLI."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from corehttp.exceptions import ClientAuthenticationError, HttpResponseError
from openmeter import Client
from openmeter.models import Event
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from tests.support.cli import RunningService, meterhouse, running_service

# slow: `meterhouse` in subprocesses (CONTRIBUTING.md, the fast and the full suite).
pytestmark = pytest.mark.slow

SDK_SOURCE = "platform.sdk"
OTLP_SOURCE = "chat-api.otlp"


@dataclass
class Live:
    service: RunningService
    data_dir: Path

    def cli(self, *args: str) -> str:
        done = meterhouse(self.data_dir, *args, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def key(self, source: str, *extra: str) -> str:
        match = re.search(
            r"^token: (mh_\S+)$", self.cli("keys", "create", "--source", source, *extra), re.M
        )
        assert match, "keys create printed no token"
        return match.group(1)

    def admin(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The key admin API directly (cheaper than a CLI process where the CLI is not
        what is being tested)."""
        answer = requests.request(
            method,
            f"{self.service.url}{path}",
            headers={"Authorization": f"Bearer {self.service.admin_token}"},
            timeout=30,
            **kwargs,
        )
        assert answer.status_code < 300, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def api_key(self, source: str) -> str:
        return str(self.admin("POST", "/api/v1/keys", json={"source": source})["token"])

    def drained(self, timeout: float = 30) -> None:
        """Acknowledged events are in the spool until its drainer writes them: wait for it
        to be empty (meterhouse_spool_bytes 0), so queries see every acknowledged event."""
        deadline = time.monotonic() + timeout
        while True:
            metrics = requests.get(f"{self.service.url}/metrics", timeout=10).text
            if re.search(r"^meterhouse_spool_bytes 0\.0$", metrics, re.M):
                return
            assert time.monotonic() < deadline, "the spool did not drain"
            time.sleep(0.05)

    def sql(self, query: str) -> list[list[Any]]:
        self.drained()
        answer = requests.post(
            f"{self.service.url}/api/v1/sql",
            json={"sql": query},
            headers={"Authorization": f"Bearer {self.service.admin_token}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        rows: list[list[Any]] = answer.json()["rows"]
        return rows


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("ingest_e2e")
    data_dir = root / "data"
    with running_service(data_dir, timeout=90, log_path=root / "service.log") as service:
        live = Live(service, data_dir)
        # Ingest refuses usage of accounts nobody created.
        accounts = ", ".join(f"('{a}', '{a}')" for a in ("acme", "globex", "umbrella"))
        insert = f"INSERT INTO accounts (account_id, name) VALUES {accounts}"
        live.admin("POST", "/api/v1/sql", json={"sql": insert, "write": True})
        yield live


def _sdk_event(event_id: str, account: str, tokens: int, **data: Any) -> Event:
    return Event(
        id=event_id,
        source=SDK_SOURCE,
        specversion="1.0",
        type="com.meterhouse.model.call",
        subject=account,
        time=datetime.now(UTC) - timedelta(minutes=1),
        data={
            "model": "gpt-4o-mini",
            "provider": "openai",
            "input_tokens": tokens,
            "output_tokens": 10,
            **data,
        },
    )


def test_openmeter_sdk_ingests_unchanged_and_duplicates_count_once(live: Live) -> None:
    token = live.key(SDK_SOURCE)
    run = uuid.uuid4().hex[:8]
    with Client(endpoint=live.service.url, token=token) as client:
        client.events.ingest_event(_sdk_event(f"{run}-1", "acme", 100))
        client.events.ingest_events(
            [_sdk_event(f"{run}-2", "acme", 200), _sdk_event(f"{run}-3", "globex", 300)]
        )
        client.events.ingest_events_json([_sdk_event(f"{run}-4", "acme", 400)])
        # A retry of everything, with other quantities: nothing more is counted.
        owners = {1: "acme", 2: "acme", 3: "globex", 4: "acme"}
        client.events.ingest_events(
            [_sdk_event(f"{run}-{i}", owner, 9999) for i, owner in owners.items()]
        )
        # The same id from another account is that account's own event, never dropped.
        client.events.ingest_events([_sdk_event(f"{run}-3", "acme", 50)])
        with pytest.raises(HttpResponseError) as refused:
            client.events.ingest_events([_sdk_event(f"{run}-5", "acme", -1)])
        assert refused.value.status_code == 400
    rows = live.sql(
        f"SELECT account_id, count(), sum(toUInt64(JSONExtractInt(attributes, 'input_tokens'))) "
        f"FROM usage_events WHERE startsWith(event_id, '{run}') GROUP BY account_id "
        "ORDER BY account_id"
    )
    assert rows == [["acme", 4, 750], ["globex", 1, 300]]
    daily = live.sql(
        "SELECT sum(events) FROM usage_daily WHERE usage_type = 'output' AND item = 'gpt-4o-mini'"
    )
    assert daily == [[5]]


def test_keys_revoked_by_the_cli_stop_working_at_once(live: Live) -> None:
    token = live.key(SDK_SOURCE, "--account", "acme", "--expires-in", "1d")
    key_id = token.split("_")[1]
    listed = json.loads(live.cli("keys", "list", "--format", "json"))
    assert any(k["key_id"] == key_id and k["account_id"] == "acme" for k in listed)
    with Client(endpoint=live.service.url, token=token) as client:
        client.events.ingest_event(_sdk_event(uuid.uuid4().hex, "acme", 1))
        assert f"revoked {key_id}" in live.cli("keys", "revoke", key_id)
        with pytest.raises(ClientAuthenticationError):
            client.events.ingest_event(_sdk_event(uuid.uuid4().hex, "acme", 1))
    every = live.admin("GET", "/api/v1/keys", params={"all": "1"})["keys"]
    assert [k["state"] for k in every if k["key_id"] == key_id] == ["revoked"]
    audit = live.sql(f"SELECT action FROM audit_log WHERE target_id = '{key_id}' ORDER BY at")
    assert audit == [["api_key.create"], ["api_key.revoke"]]


def _genai_spans(provider: TracerProvider, count: int) -> None:
    tracer = provider.get_tracer("tests.ingest")
    for index in range(count):
        with tracer.start_as_current_span("chat gpt-4o") as span:
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_attribute("gen_ai.request.model", "gpt-4o")
            span.set_attribute("gen_ai.provider.name", "openai")
            span.set_attribute("gen_ai.usage.input_tokens", 1000 + index)
            span.set_attribute("gen_ai.usage.output_tokens", 100)
            span.set_attribute("gen_ai.usage.cache_read.input_tokens", 600)
            span.set_attribute("meterhouse.user.id", "alice")
        with tracer.start_as_current_span("GET /health"):
            pass


def test_otlp_exporter_sends_genai_spans_that_become_usage(live: Live) -> None:
    token = live.api_key(OTLP_SOURCE)
    exporter = OTLPSpanExporter(
        endpoint=f"{live.service.url}/v1/traces",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    sent: list[Any] = []

    class Recording(SimpleSpanProcessor):
        def on_end(self, span: Any) -> None:
            sent.append(span)
            super().on_end(span)

    resource = Resource.create(
        {
            "service.name": "chat-api",
            "meterhouse.account.id": "umbrella",
            "meterhouse.team.id": "ml",
        }
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(Recording(exporter))
    _genai_spans(provider, 3)
    provider.shutdown()
    # A retried export of the same spans (as the exporter does after a time-out) is idempotent.
    again = OTLPSpanExporter(
        endpoint=f"{live.service.url}/v1/traces",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert again.export(sent) == SpanExportResult.SUCCESS
    rows = live.sql(
        "SELECT account_id, team_id, user_id, source, count(), "
        "sum(JSONExtractInt(attributes, 'cache_read_tokens')) FROM usage_events "
        f"WHERE source = '{OTLP_SOURCE}' GROUP BY ALL"
    )
    assert rows == [["umbrella", "ml", "alice", OTLP_SOURCE, 3, 1800]]
    metrics = requests.get(f"{live.service.url}/metrics", timeout=10).text
    assert 'meterhouse_ingest_events_accepted_total{type="com.meterhouse.model.call"}' in metrics
    assert "meterhouse_ingest_spans_ignored_total 6.0" in metrics
    assert 'meterhouse_ingest_batch_events_count{endpoint="otlp"}' in metrics


def test_exporter_with_a_revoked_key_fails(live: Live) -> None:
    token = live.api_key(OTLP_SOURCE)
    live.admin("POST", f"/api/v1/keys/{token.split('_')[1]}/revoke")
    exporter = OTLPSpanExporter(
        endpoint=f"{live.service.url}/v1/traces",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    provider = TracerProvider()
    spans: list[Any] = []

    class Keep(SimpleSpanProcessor):
        def on_end(self, span: Any) -> None:
            spans.append(span)

    provider.add_span_processor(Keep(exporter))
    _genai_spans(provider, 1)
    assert exporter.export(spans) == SpanExportResult.FAILURE
