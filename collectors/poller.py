"""Pull jobs, runs and logs from a job platform that cannot push (docs/jobs.md).

For each stream (jobs, then runs, then logs) the poller asks
``GET {base}/{stream}?limit=N[&updated_since=CURSOR]`` for pages
``{"items": [...], "next_cursor": "..."}`` until a page comes back empty, turns the items
into the same events a pushing platform sends (meterhouse/jobs/platform.py), rates them and
lays out their rows as ingest does (meterhouse/processing/columns.py), writes them with
``ClickHouseWriter.write_tables``, and only then saves ``next_cursor`` in sync_state.
A crash or a failed write between the two re-fetches that page next time; the events'
ids are derived from the items, so the writer drops what is already stored and nothing
is counted twice.

Requests that fail with 5xx, 429 or a broken connection are retried with exponential
backoff and full jitter (``Backoff``), a bounded number of times; other answers fail the
stream at once with the platform's reason. ``poll_once`` never raises: it returns what
each stream did, errors included.

With MH_POLLER_URL set, `meterhouse run` polls every MH_POLLER_INTERVAL_SECONDS
(``install_poller``; one poll at a time, a late one is skipped, not queued).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import msgspec
import requests
from prometheus_client import CollectorRegistry, Counter, Gauge

from exporters.clickhouse_writer import ClickHouseWriter
from meterhouse import records as r
from meterhouse.errors import ConfigError, MeterhouseError
from meterhouse.jobs.cursors import CursorStore
from meterhouse.jobs.platform import STREAMS, ItemError, Stream
from meterhouse.logs import get_logger
from meterhouse.processing.accounts import AccountDirectory
from meterhouse.processing.columns import ColumnBuilder
from meterhouse.rating.rater import Rater
from meterhouse.service.schedule import interval_scheduler
from meterhouse.settings import Settings
from meterhouse.store.base import Store

if TYPE_CHECKING:
    from meterhouse.service.context import ServiceContext

log = get_logger(__name__)

USER_AGENT: Final = "meterhouse-poller/1"
_BODY_SNIPPET: Final = 300


@dataclass(frozen=True)
class Backoff:
    """How often and how patiently one request is retried.

    ``attempts`` counts the first try. The n-th retry waits a random time between 0 and
    ``min(max_seconds, base_seconds * 2**n)`` ("full jitter", so many pollers restarted
    together do not retry in step); a 429's or 503's Retry-After is honoured up to
    ``max_seconds``.
    """

    attempts: int = 5
    base_seconds: float = 0.5
    max_seconds: float = 30.0

    def delay(self, retry: int, rng: random.Random, retry_after: float | None = None) -> float:
        ceiling = min(self.max_seconds, self.base_seconds * 2**retry)
        wait = rng.uniform(0, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_seconds))
        return wait


class PollError(MeterhouseError):
    """A stream could not be pulled; the message says what the platform answered."""


class NotOfferedError(PollError):
    """The platform answered 404 for a stream's path."""


class Page(msgspec.Struct, frozen=True):
    items: list[msgspec.Raw]
    next_cursor: str | int | None = None


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After in seconds (only the delta-seconds form; an HTTP date is ignored)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


class PlatformClient:
    """GET pages from the platform, retrying what is worth retrying."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str = "",
        backoff: Backoff | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
        stop: threading.Event | None = None,
        rng: random.Random | None = None,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.backoff = backoff or Backoff()
        self.timeout = timeout
        self.stop = stop or threading.Event()
        self.rng = rng or random.Random()
        self.on_retry = on_retry
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self.session.close()

    def get_page(self, path: str, params: dict[str, Any]) -> Page:
        url = f"{self.base_url}/{path}"
        problem = ""
        for attempt in range(self.backoff.attempts):
            retry_after: float | None = None
            try:
                response = self.session.get(url, params=params, timeout=self.timeout)
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return _decode_page(response.content, url)
                if response.status_code == 404:
                    raise NotOfferedError(f"GET {url} answered 404 Not Found")
                if response.status_code != 429 and response.status_code < 500:
                    raise PollError(
                        f"GET {url} answered {response.status_code}: "
                        f"{response.text[:_BODY_SNIPPET].strip()}"
                    )
                problem = f"HTTP {response.status_code}"
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            if attempt + 1 >= self.backoff.attempts:
                break
            wait = self.backoff.delay(attempt, self.rng, retry_after)
            log.info("platform request failed; retrying", url=url, problem=problem, wait=wait)
            if self.on_retry:
                self.on_retry()
            if self.stop.wait(wait):
                raise PollError(f"GET {url}: stopped while waiting to retry ({problem})")
        raise PollError(f"GET {url} failed {self.backoff.attempts} times; last: {problem}")


def _decode_page(body: bytes, url: str) -> Page:
    try:
        return msgspec.json.decode(body, type=Page)
    except msgspec.DecodeError as exc:
        raise PollError(
            f'GET {url} did not answer a page {{"items": [...], "next_cursor": ...}}: {exc}'
        ) from None


@dataclass
class StreamResult:
    stream: str
    cursor: str = ""
    pages: int = 0
    items: int = 0
    rejected: int = 0
    rows_written: int = 0
    duplicates: int = 0
    skipped: str = ""
    error: str = ""


@dataclass
class PollResult:
    streams: list[StreamResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(s.error for s in self.streams)

    def rows(self) -> list[dict[str, Any]]:
        return [vars(s).copy() for s in self.streams]


class PollerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.polls = Counter(
            "meterhouse_jobs_poller_polls",
            "Polls of MH_POLLER_URL by outcome (ok: every stream pulled).",
            ["outcome"],
            registry=registry,
        )
        self.items = Counter(
            "meterhouse_jobs_poller_items",
            "Items pulled from the platform by stream and outcome (stored or rejected).",
            ["stream", "outcome"],
            registry=registry,
        )
        self.retries = Counter(
            "meterhouse_jobs_poller_retries",
            "Platform requests retried after a 5xx, a 429 or a broken connection.",
            registry=registry,
        )
        self.last_success = Gauge(
            "meterhouse_jobs_poller_last_success_timestamp_seconds",
            "When a poll last pulled every stream without error (Unix time).",
            registry=registry,
        )

    def record(self, result: PollResult) -> None:
        self.polls.labels(outcome="ok" if result.ok else "error").inc()
        for stream in result.streams:
            self.items.labels(stream=stream.stream, outcome="stored").inc(
                stream.items - stream.rejected
            )
            self.items.labels(stream=stream.stream, outcome="rejected").inc(stream.rejected)
        if result.ok:
            self.last_success.set(time.time())


def _identity(raw: bytes) -> str:
    """The ids an item carries, for a log line about it."""
    try:
        decoded = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return "(not JSON)"
    if not isinstance(decoded, dict):
        return "(not an object)"
    keys = ("account_id", "job_id", "run_id", "id")
    return " ".join(f"{k}={decoded[k]}" for k in keys if isinstance(decoded.get(k), str))


class Poller:
    """Pulls every stream once per ``poll_once``; one poll at a time."""

    def __init__(
        self,
        store: Store,
        base_url: str,
        *,
        token: str = "",
        page_size: int = 500,
        max_pages: int = 200,
        backoff: Backoff | None = None,
        rater: Rater | None = None,
        registry: CollectorRegistry | None = None,
        streams: Sequence[Stream] = STREAMS,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"MH_POLLER_URL must be an http(s) URL such as https://platform.example/api, "
                f"got {base_url!r}"
            )
        if page_size < 1 or max_pages < 1:
            raise ConfigError("the poller's page_size and max_pages must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.source = f"poller:{parts.netloc}"
        self.page_size = page_size
        self.max_pages = max_pages
        self.streams = tuple(streams)
        self.metrics = PollerMetrics(registry) if registry is not None else None
        self._stop = threading.Event()
        self.client = PlatformClient(
            self.base_url,
            token=token,
            backoff=backoff,
            stop=self._stop,
            on_retry=self.metrics.retries.inc if self.metrics else None,
        )
        self.cursors = CursorStore(store)
        self.builder = ColumnBuilder(AccountDirectory(store), rater or Rater.default())
        self.writer = ClickHouseWriter(store)
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, store: Store, *, registry: CollectorRegistry | None = None
    ) -> Poller:
        return cls(
            store,
            settings.poller_url,
            token=settings.poller_token.get_secret_value(),
            registry=registry,
        )

    def cursor_name(self, stream: Stream) -> str:
        return f"poller.{stream.name}@{self.base_url}"

    def stop(self) -> None:
        """Make a poll in progress give up at its next wait (service shutdown)."""
        self._stop.set()

    def close(self) -> None:
        self.client.close()

    def poll_once(self) -> PollResult:
        started = time.perf_counter()
        result = PollResult()
        with self._lock:
            # Plans and time zones may have changed since the last poll.
            self.builder.accounts.refresh()
            for stream in self.streams:
                if self._stop.is_set():
                    break
                result.streams.append(self._poll_stream(stream))
        result.seconds = time.perf_counter() - started
        if self.metrics:
            self.metrics.record(result)
        log.info(
            "poll finished" if result.ok else "poll failed",
            seconds=round(result.seconds, 3),
            streams={s.stream: s.error or s.skipped or s.items for s in result.streams},
        )
        return result

    def _poll_stream(self, stream: Stream) -> StreamResult:
        result = StreamResult(stream.name)
        name = self.cursor_name(stream)
        try:
            cursor = self.cursors.load(name)
            result.cursor = cursor
            for _ in range(self.max_pages):
                page_started = time.perf_counter()
                params: dict[str, Any] = {"limit": self.page_size}
                if cursor:
                    params["updated_since"] = cursor
                page = self.client.get_page(stream.name, params)
                if not page.items:
                    break
                self._store_page(stream, page, result)
                if result.error:
                    break
                next_cursor = "" if page.next_cursor is None else str(page.next_cursor)
                if not next_cursor:
                    result.error = (
                        f"GET {self.base_url}/{stream.name} returned items without next_cursor; "
                        "cannot resume after them"
                    )
                    break
                duration_ms = int((time.perf_counter() - page_started) * 1000)
                self.cursors.save(name, next_cursor, duration_ms=duration_ms)
                if next_cursor == cursor:
                    break
                cursor = result.cursor = next_cursor
        except NotOfferedError as exc:
            if stream.optional:
                result.skipped = "not offered by the platform (404)"
            else:
                result.error = str(exc)
        except MeterhouseError as exc:
            result.error = str(exc)
        except Exception as exc:  # a bug must not stop the service's scheduler thread
            log.exception("poller failed unexpectedly", stream=stream.name)
            result.error = f"unexpected {type(exc).__name__}: {exc}"
        if result.error:
            log.warning("stream not pulled", stream=stream.name, error=result.error)
        return result

    def _store_page(self, stream: Stream, page: Page, result: StreamResult) -> None:
        events: list[r.Event] = []
        for index, raw in enumerate(page.items):
            try:
                events.extend(stream.events(bytes(raw), self.source))
            except ItemError as exc:
                result.rejected += 1
                log.warning(
                    "platform item rejected",
                    stream=stream.name,
                    index=index,
                    item=_identity(bytes(raw)),
                    error=str(exc),
                )
        written = self.writer.write_tables(self.builder.build(events).tables)
        if not written.ok:
            result.error = f"the store refused the page (it will be fetched again): {written.error}"
            return
        result.pages += 1
        result.items += len(page.items)
        result.rows_written += sum(written.written.values())
        result.duplicates += written.duplicates


def install_poller(ctx: ServiceContext) -> None:
    """Service hook (meterhouse/service/wiring.py): poll the job platform when configured."""
    if not ctx.settings.poller_url:
        return
    poller = Poller.from_settings(ctx.settings, ctx.store, registry=ctx.registry)
    seconds = ctx.settings.poller_interval_seconds
    scheduler = interval_scheduler(poller.poll_once, seconds, "jobs-poller")
    log.info(
        "polling job platform",
        url=poller.base_url,
        every_seconds=ctx.settings.poller_interval_seconds,
    )

    def stop() -> None:
        poller.stop()  # a poll waiting to retry gives up now
        scheduler.shutdown(wait=True)
        poller.close()

    ctx.on_startup.append(scheduler.start)
    ctx.on_shutdown.append(stop)
