"""The ingest endpoints: POST /api/v1/events (CloudEvents) and POST /v1/traces (OTLP).

Each handler authenticates, reads the bounded body, then hands decode -> validate ->
rate -> write to a worker thread, so the event loop never waits on ClickHouse.
CloudEvents batches are all-or-nothing (as OpenMeter's): one invalid event refuses the
request and nothing is stored. OTLP follows its own spec: valid spans are stored and the
rest counted in ``partial_success``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from collectors import cloudevents as ce
from collectors import genai, otlp
from collectors.http import ClientError, client_ip, media_type, read_body
from collectors.ingest import Ingestor, IngestOutcome
from collectors.metrics import IngestMetrics
from collectors.problems import FieldError
from collectors.validate import Limits
from meterhouse import records as r
from meterhouse.access.key_auth import AuthBrake, KeyDirectory, key_id_of
from meterhouse.access.keys import ApiKey
from meterhouse.access.tenants import now_utc
from meterhouse.errors import StoreError
from meterhouse.logs import get_logger
from meterhouse.service.context import bearer_token

log = get_logger(__name__)

MAX_OTLP_MESSAGES = 5
INGEST_THREADS = 4
_T = TypeVar("_T")
_AUTH_DETAIL = {
    "missing": "send Authorization: Bearer <ingest key>; `meterhouse keys create` makes one",
    "malformed": "the bearer token is not a meterhouse key (mh_<key id>_<secret>)",
    "unknown": "unknown API key",
    "bad_secret": "unknown API key",
    "revoked": "this API key was revoked",
    "expired": "this API key has expired",
}


@dataclass
class IngestRoutes:
    ingestor: Ingestor
    keys: KeyDirectory
    limiter: AuthBrake
    limits: Limits
    metrics: IngestMetrics
    clock: Callable[[], datetime] = now_utc
    # Ingest's own threads: a burst of batches never waits behind (nor starves) the other
    # endpoints' work on the event loop's default pool.
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(INGEST_THREADS, thread_name_prefix="ingest")
    )

    async def _work(self, function: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    async def authorize(self, request: Request) -> ApiKey:
        client = client_ip(request)
        token = bearer_token(request)
        key_id = key_id_of(token)
        wait = self.limiter.retry_after(client, key_id)
        if wait is not None:
            raise ClientError(
                429,
                "Too Many Requests",
                f"too many failed authentications from {client}; retry in {wait} s",
                "rate_limited",
                headers={"Retry-After": str(wait)},
            )
        try:
            key, failure = await asyncio.to_thread(self.keys.authenticate, token, self.clock())
        except StoreError as exc:
            raise ClientError(
                503,
                "Service Unavailable",
                f"the API key cannot be checked now (ClickHouse: {exc}); retry later",
                "unavailable",
                headers={"Retry-After": "5"},
            ) from exc
        if failure is not None or key is None:
            self.limiter.failed(client, key_id)
            reason = failure or "unknown"
            log.info("ingest authentication failed", reason=reason, client=client, key=key_id)
            self.metrics.auth_failures.labels(reason).inc()
            raise ClientError(
                401,
                "Unauthorized",
                _AUTH_DETAIL[reason],
                "unauthorized",
                headers={"WWW-Authenticate": 'Bearer realm="meterhouse ingest"'},
            )
        self.limiter.succeeded(key.key_id)
        if key.purpose != "ingest":
            self.metrics.auth_failures.labels("purpose").inc()
            raise ClientError(
                403,
                "Forbidden",
                f"key {key.key_id} is a {key.purpose} key; sending events needs an ingest key",
                "forbidden",
            )
        return key

    def _refused(self, endpoint: str, error: ClientError) -> None:
        self.metrics.requests_rejected.labels(endpoint, error.reason).inc()
        if error.status >= 500:
            log.warning("ingest unavailable", endpoint=endpoint, detail=error.detail)

    # -- CloudEvents -------------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        try:
            key = await self.authorize(request)
            kind = media_type(request, ce.MEDIA_TYPES)
            body = await read_body(request, self.limits.max_body_bytes)
            await self._work(self.ingest_cloudevents, body, kind, key)
        except ClientError as error:
            self._refused("cloudevents", error)
            return error.problem()
        return Response(status_code=204)

    def ingest_cloudevents(self, body: bytes, kind: str, key: ApiKey) -> IngestOutcome:
        try:
            decoded = ce.decode_events(body, kind, key, self.clock(), self.limits)
        except ce.BodyError as exc:
            status = 413 if exc.too_many else 400
            title = "Payload Too Large" if exc.too_many else "Bad Request"
            reason = "too_large" if exc.too_many else "malformed"
            raise ClientError(status, title, exc.error.message, reason, [exc.error]) from exc
        self.metrics.batch_events.labels("cloudevents").observe(len(decoded.types))
        if decoded.invalid:
            self._count_rejected(decoded)
            scope_only = all(reason == "scope" for reason in decoded.reasons)
            raise ClientError(
                403 if scope_only else 400,
                "Forbidden" if scope_only else "Invalid events",
                f"{len(decoded.invalid)} of {len(decoded.types)} events refused; none was "
                "stored (a batch is all-or-nothing): fix them and send the batch again",
                "forbidden" if scope_only else "invalid",
                decoded.errors,
            )
        self._refuse_unknown_accounts(decoded)
        outcome = self.ingestor.ingest(decoded.events)
        if not outcome.ok:
            raise _unavailable(outcome)
        for event_type, count in Counter(decoded.types).items():
            self.metrics.accepted.labels(event_type).inc(count)
        return outcome

    def _unknown_accounts(self, events: Sequence[r.Event]) -> set[str]:
        try:
            return self.ingestor.accounts.unknown(event.data.account_id for event in events)
        except StoreError as exc:
            raise ClientError(
                503,
                "Service Unavailable",
                f"the accounts cannot be checked now (ClickHouse: {exc}); retry later",
                "unavailable",
                headers={"Retry-After": "5"},
            ) from exc

    def _refuse_unknown_accounts(self, decoded: ce.Decoded) -> None:
        """Usage of an account nobody created is refused, never stored under a stray id.

        Every event is valid here, so events[i] is element i of the batch.
        """
        unknown = self._unknown_accounts(decoded.events)
        if not unknown:
            return
        for index, event in enumerate(decoded.events):
            account = event.data.account_id
            if account in unknown:
                decoded.add(index, None, [_unknown_account(index, account)])
        self._count_rejected(decoded)
        raise ClientError(
            400,
            "Invalid events",
            f"{len(decoded.invalid)} of {len(decoded.types)} events name an account that does "
            "not exist; none was stored: create the account first "
            "(`meterhouse accounts create <id>`) or fix the id, then send the batch again",
            "invalid",
            decoded.errors,
        )

    def _count_rejected(self, decoded: ce.Decoded) -> None:
        invalid = dict(zip(decoded.invalid, decoded.reasons, strict=True))
        for index, event_type in enumerate(decoded.types):
            reason = invalid.get(index, "batch_rejected")
            self.metrics.rejected.labels(event_type, reason).inc()

    # -- OTLP traces -------------------------------------------------------------------

    async def traces(self, request: Request) -> Response:
        declared = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        try:
            key = await self.authorize(request)
            kind = media_type(request, otlp.MEDIA_TYPES)
            body = await read_body(request, self.limits.max_body_bytes)
            rejected, message = await self._work(self.ingest_traces, body, kind, key)
        except ClientError as error:
            self._refused("otlp", error)
            return error.otlp_status(declared)
        return Response(
            otlp.encode_response(rejected, message, kind), status_code=200, media_type=kind
        )

    def ingest_traces(self, body: bytes, kind: str, key: ApiKey) -> tuple[int, str]:
        try:
            export = otlp.decode_request(body, kind)
        except otlp.OtlpDecodeError as exc:
            raise ClientError(400, "Bad Request", str(exc), "malformed") from exc
        now = self.clock()
        events: list[r.Event] = []
        spans: list[int] = []  # each event's span index, for the problems named below
        problems: list[FieldError] = []
        index = ignored = 0
        for resource_spans in export.resource_spans:
            resource = genai.attribute_map(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attrs = genai.SpanAttributes(genai.attribute_map(span.attributes), resource)
                    if not genai.is_model_call(attrs):
                        ignored += 1
                    else:
                        event, errors = genai.span_event(index, span, attrs, key, now, self.limits)
                        if event is not None:
                            events.append(event)
                            spans.append(index)
                        else:
                            problems.append(errors[0])
                    index += 1
                    if index > self.limits.max_batch_events:
                        raise ClientError(
                            413,
                            "Payload Too Large",
                            f"more than {self.limits.max_batch_events} spans in one request "
                            "(MH_INGEST_MAX_BATCH_EVENTS)",
                            "too_large",
                        )
        unknown = self._unknown_accounts(events) if events else set()
        if unknown:
            kept: list[r.Event] = []
            for span_index, event in zip(spans, events, strict=True):
                if event.data.account_id in unknown:
                    problems.append(
                        _unknown_account(
                            span_index, event.data.account_id, genai.ACCOUNT_ATTRIBUTES[0]
                        )
                    )
                else:
                    kept.append(event)
            problems.sort(key=lambda problem: problem.index or 0)
            events = kept
        self.metrics.batch_events.labels("otlp").observe(index)
        self.metrics.spans_ignored.inc(ignored)
        for problem in problems:
            self.metrics.rejected.labels(r.MODEL_CALL, problem.reason).inc()
        if events:
            outcome = self.ingestor.ingest(events)
            if not outcome.ok:
                raise _unavailable(outcome)
            self.metrics.accepted.labels(r.MODEL_CALL).inc(len(events))
        message = "; ".join(
            f"span {p.index}: {p.field}: {p.message}" for p in problems[:MAX_OTLP_MESSAGES]
        )
        if len(problems) > MAX_OTLP_MESSAGES:
            message += f"; and {len(problems) - MAX_OTLP_MESSAGES} more"
        return len(problems), message


def _unknown_account(index: int, account: str, field: str = "subject") -> FieldError:
    return FieldError(
        index,
        field,
        f"no account {account[:80]!r}: create it first (`meterhouse accounts create "
        f"{account[:80]}`) or fix the id",
        "unknown_account",
    )


_UNAVAILABLE = {
    "rate": ("rating failed", "5"),
    "write": ("the store refused the write", "5"),
    "spool": ("the ingest spool cannot take the batch", "5"),
    "spool_full": ("the ingest spool is full: ClickHouse is not taking writes", "10"),
}


def _unavailable(outcome: IngestOutcome) -> ClientError:
    what, retry_after = _UNAVAILABLE.get(outcome.stage, ("ingest failed", "5"))
    return ClientError(
        503,
        "Service Unavailable",
        f"{what}; nothing was acknowledged, send the same request again: {outcome.error[:300]}",
        "unavailable",
        headers={"Retry-After": retry_after},
    )
