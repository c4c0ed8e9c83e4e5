"""OpenMeter's own SDK against `meterhouse run`: free-form events in, meters defined in the
meters file and through the API, queried back with every parameter (day windows across
the end of summer time in Europe/Berlin included), as JSON and CSV; each answer equals a
recount written here from the events sent. A read key sees its own account only."""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
import requests
from corehttp.exceptions import HttpResponseError
from openmeter import Client
from openmeter.models import Event

from tests.support.cli import RunningService, meterhouse, running_service

TYPE = "gpu.usage"
SOURCE = "gpu-cluster"
BERLIN = ZoneInfo("Europe/Berlin")
# The Sunday summer time ends in Berlin (a 25-hour day), and the days around it.
START = datetime(2026, 10, 23, 22, 0, tzinfo=UTC)  # 2026-10-24 00:00 in Berlin
END = datetime(2026, 10, 27, 23, 0, tzinfo=UTC)  # 2026-10-28 00:00 in Berlin
# Day windows in Berlin over the whole range, as most queries below ask.
DAYS: dict[str, Any] = {
    "from_parameter": START,
    "to": END,
    "window_size": "DAY",
    "window_time_zone": "Europe/Berlin",
}
METERS_FILE = """\
meters:
  - slug: gpu_minutes
    name: GPU minutes
    eventType: gpu.usage
    aggregation: SUM
    valueProperty: $.minutes
    groupBy:
      gpu: $.gpu
      region: $['where'].region
    unit: minute
"""


@dataclass(frozen=True)
class Sent:
    account: str
    subject: str
    event_id: str
    time: datetime
    minutes: Decimal
    gpu: str
    region: str
    job: str


@dataclass
class Live:
    service: RunningService
    data_dir: Path
    read_token: str  # alice's: billing role in acme
    events: list[Sent]

    def client(self, token: str | None = None) -> Client:
        return Client(endpoint=self.service.url, token=token or self.service.admin_token)


def _cli(data_dir: Path, *args: str) -> str:
    done = meterhouse(data_dir, *args, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _token(output: str) -> str:
    found = re.search(r"^token: (mh_\S+)$", output, re.M)
    assert found, output
    return found.group(1)


def _events() -> list[Sent]:
    rng = random.Random(17)
    span_ms = int((END - START - timedelta(hours=12)).total_seconds() * 1000)
    sent = []
    for index in range(160):
        account, subject = rng.choice(
            [("acme", "cust-a"), ("acme", "cust-b"), ("acme", "cust-a"), ("globex", "cust-a")]
        )
        time = START + timedelta(milliseconds=rng.randrange(span_ms))
        minutes = Decimal(rng.randrange(1, 400)) / 4
        sent.append(
            Sent(
                account,
                subject,
                f"e{index}",
                time,
                minutes,
                rng.choice(["a100", "h100"]),
                rng.choice(["eu", "us"]),
                f"job-{rng.randrange(12)}",
            )
        )
    return sent


def _sdk_event(sent: Sent) -> Event:
    value: Any = str(sent.minutes) if sent.event_id.endswith("3") else float(sent.minutes)
    return Event(
        id=sent.event_id,
        source=SOURCE,
        specversion="1.0",
        type=TYPE,
        subject=sent.subject,
        time=sent.time,
        data={"minutes": value, "gpu": sent.gpu, "where": {"region": sent.region}, "job": sent.job},
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("meters_e2e")
    data_dir = root / "data"
    meters_file = root / "meters.yaml"
    meters_file.write_text(METERS_FILE)
    _cli(data_dir, "migrate")
    for account in ("acme", "globex"):
        # The accounts' own time zone is the one the day windows below are asked in.
        _cli(data_dir, "accounts", "create", account, "--name", account.title(),
             "--time-zone", "Europe/Berlin")  # fmt: skip
    _cli(data_dir, "users", "add", "alice", "--account", "acme", "--email", "a@acme.test",
         "--role", "billing")  # fmt: skip
    read_token = _token(
        _cli(
            data_dir, "keys", "create", "--purpose", "read", "--user", "alice", "--account", "acme"
        )
    )
    ingest = {
        account: _token(_cli(data_dir, "keys", "create", "--source", SOURCE, "--account", account))
        for account in ("acme", "globex")
    }
    events = _events()
    with running_service(
        data_dir, timeout=90, log_path=root / "service.log", MH_METERS_FILE=str(meters_file)
    ) as service:
        for account, token in ingest.items():
            mine = [_sdk_event(e) for e in events if e.account == account]
            with Client(endpoint=service.url, token=token) as client:
                client.events.ingest_events(mine[:40])
                client.events.ingest_events(mine)  # a retry of the first 40: counted once
                # Not this meter's: another free-form type, and a typed model call.
                other = Event(id="x1", source=SOURCE, specversion="1.0", type="storage.gb",
                              subject="cust-a", time=START + timedelta(hours=2),
                              data={"minutes": 1000})  # fmt: skip
                client.events.ingest_events([other])
        live = Live(service, data_dir, read_token, events)
        _drained(live)
        yield live


def _drained(live: Live, timeout: float = 30) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=timeout)
    while True:
        metrics = requests.get(f"{live.service.url}/metrics", timeout=10).text
        if re.search(r"^meterhouse_spool_bytes 0\.0$", metrics, re.M):
            return
        assert datetime.now(UTC) < deadline, "the spool did not drain"


# -- the recount --------------------------------------------------------------------


def _day(moment: datetime) -> tuple[datetime, datetime]:
    local = moment.astimezone(BERLIN).date()
    start = datetime(local.year, local.month, local.day, tzinfo=BERLIN)
    after = local + timedelta(days=1)
    end = datetime(after.year, after.month, after.day, tzinfo=BERLIN)
    return start.astimezone(UTC), end.astimezone(UTC)


def _hour(moment: datetime) -> tuple[datetime, datetime]:
    start = moment.replace(minute=0, second=0, microsecond=0)  # Berlin: whole-hour offsets
    return start, start + timedelta(hours=1)


def _minute(moment: datetime) -> tuple[datetime, datetime]:
    start = moment.replace(second=0, microsecond=0)
    return start, start + timedelta(minutes=1)


Key = tuple[datetime, datetime, str | None, tuple[tuple[str, str], ...]]


def _recount(
    events: list[Sent],
    window: Callable[[datetime], tuple[datetime, datetime]] | None,
    groups: tuple[str, ...],
    value: Callable[[list[Sent]], Any],
    *,
    by_subject: bool = True,
    start: datetime = START,
    end: datetime = END,
) -> dict[Key, Any]:
    buckets: dict[Key, list[Sent]] = defaultdict(list)
    for sent in events:
        if not start <= sent.time < end:
            continue
        span = window(sent.time) if window else (start, end)
        named = tuple((g, str(getattr(sent, g))) for g in groups)
        buckets[(*span, sent.subject if by_subject else None, named)].append(sent)
    return {key: value(found) for key, found in buckets.items()}


def _answer(rows: Any, groups: tuple[str, ...]) -> dict[Key, Any]:
    return {
        (
            row.window_start.astimezone(UTC),
            row.window_end.astimezone(UTC),
            row.subject,
            tuple((g, row.group_by[g]) for g in groups),
        ): row.value
        for row in rows
    }


def _sum(found: list[Sent]) -> float:
    return float(sum(e.minutes for e in found))


def _acme(live: Live) -> list[Sent]:
    return [e for e in live.events if e.account == "acme"]


# -- the tests -----------------------------------------------------------------------


def test_query_days_across_the_end_of_summer_time(live: Live) -> None:
    with live.client(live.read_token) as client:
        rows = client.meters.query_json(
            "gpu_minutes",
            **DAYS,
            group_by=["subject", "gpu"],
        ).data
    expected = _recount(_acme(live), _day, ("gpu",), _sum)
    assert _answer(rows, ("gpu",)) == expected
    long_day = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
    assert any(k[0] == long_day and k[1] - k[0] == timedelta(hours=25) for k in expected)


def test_query_filters_by_subject_and_group_in_hours(live: Live) -> None:
    with live.client(live.read_token) as client:
        rows = client.meters.query_json(
            "gpu_minutes",
            from_parameter=START,
            to=END,
            window_size="HOUR",
            window_time_zone="Europe/Berlin",
            subject=["cust-a"],
            filter_group_by={"region": "eu"},
        ).data
    chosen = [e for e in _acme(live) if e.subject == "cust-a" and e.region == "eu"]
    assert _answer(rows, ()) == _recount(chosen, _hour, (), _sum)


def test_query_with_advanced_group_filters(live: Live) -> None:
    advanced = {
        "gpu": {"$in": ["a100", "l4"]},
        "region": {"$or": [{"$eq": "eu"}, {"$like": "u%"}], "$ne": "us"},
    }
    with live.client(live.read_token) as client:
        rows = client.meters.query_json(
            "gpu_minutes",
            **DAYS,
            group_by=["subject"],
            advanced_meter_group_by_filters=advanced,
        ).data
    chosen = [e for e in _acme(live) if e.gpu == "a100" and e.region == "eu"]
    assert _answer(rows, ()) == _recount(chosen, _day, (), _sum)


def test_query_without_window_and_in_minutes(live: Live) -> None:
    with live.client(live.read_token) as client:
        total = client.meters.query_json("gpu_minutes", from_parameter=START, to=END).data
        first = min(e.time for e in _acme(live)).replace(second=0, microsecond=0)
        minutes = client.meters.query_json(
            "gpu_minutes",
            from_parameter=first,
            to=first + timedelta(hours=6),
            window_size="MINUTE",
            group_by=["region"],
        ).data
    assert _answer(total, ()) == _recount(_acme(live), None, (), _sum, by_subject=False)
    expected = _recount(
        _acme(live),
        _minute,
        ("region",),
        _sum,
        by_subject=False,
        start=first,
        end=first + timedelta(hours=6),
    )
    assert expected and _answer(minutes, ("region",)) == expected


def test_query_as_csv(live: Live) -> None:
    with live.client(live.read_token) as client:
        text = client.meters.query_csv(
            "gpu_minutes",
            **DAYS,
            group_by=["subject", "gpu"],
        )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["window_start", "window_end", "subject", "gpu", "value"]
    found = {
        (
            datetime.fromisoformat(r["window_start"]),
            datetime.fromisoformat(r["window_end"]),
            r["subject"],
            (("gpu", r["gpu"]),),
        ): Decimal(r["value"])
        for r in rows
    }
    expected = _recount(_acme(live), _day, ("gpu",), lambda f: sum(e.minutes for e in f))
    assert found == expected


AGGREGATIONS: dict[str, tuple[str | None, Callable[[list[Sent]], Any]]] = {
    "COUNT": (None, len),
    "UNIQUE_COUNT": ("$.job", lambda f: len({e.job for e in f})),
    "AVG": ("$.minutes", lambda f: pytest.approx(float(sum(e.minutes for e in f) / len(f)))),
    "MIN": ("$.minutes", lambda f: float(min(e.minutes for e in f))),
    "MAX": ("$.minutes", lambda f: float(max(e.minutes for e in f))),
    "LATEST": ("$.minutes", lambda f: float(max(f, key=lambda e: (e.time, e.event_id)).minutes)),
}


def test_meters_added_through_the_api_count_events_stored_before(live: Live) -> None:
    with live.client() as admin:
        for aggregation, (path, _) in AGGREGATIONS.items():
            body: dict[str, Any] = {
                "slug": f"gpu_{aggregation.lower()}",
                "eventType": TYPE,
                "aggregation": aggregation,
                "groupBy": {"gpu": "$.gpu"},
            }
            if path:
                body["valueProperty"] = path
            made = admin.meters.create(body)
            assert made.slug == body["slug"] and made.aggregation == aggregation
        listed = [m.slug for m in admin.meters.list()]
        assert listed == sorted(["gpu_minutes", *(f"gpu_{a.lower()}" for a in AGGREGATIONS)])
        by_id = admin.meters.get(admin.meters.get("gpu_max").id)
        assert by_id.slug == "gpu_max" and by_id.value_property == "$.minutes"
    with live.client(live.read_token) as client:
        for aggregation, (_, value) in AGGREGATIONS.items():
            rows = client.meters.query_json(
                f"gpu_{aggregation.lower()}",
                **DAYS,
                group_by=["subject"],
            ).data
            assert _answer(rows, ()) == _recount(_acme(live), _day, (), value), aggregation


def test_a_meter_updated_with_a_new_group_counts_by_it(live: Live) -> None:
    with live.client() as admin:
        updated = admin.meters.update(
            "gpu_count",
            {"name": "GPU events", "groupBy": {"gpu": "$.gpu", "region": "$.where.region"}},
        )
        assert updated.name == "GPU events" and set(updated.group_by) == {"gpu", "region"}
        with pytest.raises(HttpResponseError) as fixed:
            admin.meters.update("gpu_minutes", {"name": "x"})  # the file's: edit the file
        assert fixed.value.status_code == 409
    with live.client(live.read_token) as client:
        rows = client.meters.query_json("gpu_count", **DAYS, group_by=["region"]).data
    expected = _recount(_acme(live), _day, ("region",), len, by_subject=False)
    assert _answer(rows, ("region",)) == expected


def test_subjects_group_values_and_events_are_the_readers_own(live: Live) -> None:
    acme = _acme(live)
    with live.client(live.read_token) as client:
        assert client.meters.list_subjects("gpu_minutes") == ["cust-a", "cust-b"]
        values = client.meters.list_group_by_values("gpu_minutes", "gpu", from_parameter=START)
        assert values == sorted({e.gpu for e in acme})
        subjects = client.subjects.list()
        assert [s.key for s in subjects] == ["cust-a", "cust-b"]
        listed = client.events.list(subject="cust-b", from_parameter=START, limit=100)
    wanted = sorted((e for e in acme if e.subject == "cust-b"), key=lambda e: e.time, reverse=True)[
        :100
    ]
    assert [e.event.id for e in listed] == [e.event_id for e in wanted]
    assert listed[0].event.data["gpu"] == wanted[0].gpu
    with live.client() as admin:
        everyone = admin.meters.query_json("gpu_minutes", from_parameter=START, to=END).data
        assert [s.key for s in admin.subjects.list()] == ["cust-a", "cust-a", "cust-b"]
    assert everyone[0].value == pytest.approx(_sum(live.events))


def test_errors_are_problem_json(live: Live) -> None:
    url = live.service.url
    bearer = {"Authorization": f"Bearer {live.read_token}"}
    with live.client(live.read_token) as client:
        with pytest.raises(HttpResponseError) as missing:
            client.meters.get("no_such_meter")
        assert missing.value.status_code == 404
        with pytest.raises(HttpResponseError) as unknown_group:
            client.meters.query_json("gpu_minutes", group_by=["colour"])
        assert unknown_group.value.status_code == 400
        with pytest.raises(HttpResponseError) as not_admin:
            client.meters.create({"slug": "x", "eventType": "t", "aggregation": "COUNT"})
        assert not_admin.value.status_code == 401
    with live.client() as admin:
        with pytest.raises(HttpResponseError) as bad_path:
            admin.meters.create(
                {"slug": "bad", "eventType": TYPE, "aggregation": "SUM", "valueProperty": "minutes"}
            )
        assert bad_path.value.status_code == 400
    answer = requests.get(f"{url}/api/v1/meters/gpu_minutes/query?windowSize=WEEK", headers=bearer)
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["field"] == "windowSize"
    wrong_type = requests.post(
        f"{url}/api/v1/meters",
        headers={"Authorization": f"Bearer {live.service.admin_token}"},
        json={
            "slug": "gpu_text",
            "eventType": TYPE,
            "aggregation": "SUM",
            "valueProperty": "$.gpu",
        },
        timeout=30,
    )
    assert wrong_type.status_code == 400, wrong_type.text
    assert wrong_type.json()["field"] == "valueProperty"
    assert "a100" in wrong_type.json()["detail"] or "h100" in wrong_type.json()["detail"]


def test_cli_defines_meters_through_the_running_service(live: Live) -> None:
    made = _cli(
        live.data_dir, "meters", "add", "gpu_regions", "--event-type", TYPE,
        "--aggregation", "UNIQUE_COUNT", "--value-property", "$.where.region",
        "--group-by", "gpu=$.gpu", "--unit", "region", "--format", "json",
    )  # fmt: skip
    assert json.loads(made)[0]["valueProperty"] == "$.where.region"
    shown = json.loads(_cli(live.data_dir, "meters", "show", "gpu_regions", "--format", "json"))
    assert shown[0]["annotations"]["meterhouse.unit"] == "region"
    with live.client(live.read_token) as client:
        rows = client.meters.query_json("gpu_regions", from_parameter=START, to=END).data
    assert rows[0].value == len({e.region for e in _acme(live)})
    refused = meterhouse(live.data_dir, "meters", "remove", "gpu_minutes", timeout=60)
    assert refused.returncode == 1 and "meters file" in refused.stderr
    _cli(live.data_dir, "meters", "remove", "gpu_regions")
    listed = json.loads(_cli(live.data_dir, "meters", "list", "--format", "json"))
    assert "gpu_regions" not in {m["slug"] for m in listed}
    assert {m["slug"]: m["annotations"]["meterhouse.origin"] for m in listed}["gpu_minutes"] == (
        "file"
    )


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/meters/gpu_minutes/query?windowTimeZone=Mars/Olympus", "windowTimeZone"),
        ("/api/v1/meters/gpu_minutes/query?from=yesterday", "from"),
        ("/api/v1/meters/gpu_minutes/query?filterGroupBy=" + "[" * 3000, "filterGroupBy"),
        ("/api/v1/meters/gpu_minutes/query?filterGroupBy[colour]=red", "groupBy"),
        (
            "/api/v1/meters/gpu_minutes/query?advancedMeterGroupByFilters="
            + quote(json.dumps({"gpu": {"$regex": "a.*"}})),
            "advancedMeterGroupByFilters",
        ),
        (
            "/api/v1/meters/gpu_minutes/query?advancedMeterGroupByFilters=[1]",
            "advancedMeterGroupByFilters",
        ),
        ("/api/v1/meters/gpu_minutes/group-by/colour/values", "groupByKey"),
        ("/api/v1/events?limit=0", "limit"),
        ("/api/v1/events?customerId=c1", "customerId"),
        ("/api/v1/meters?pageSize=abc", "pageSize"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(live: Live, path: str, field: str) -> None:
    answer = requests.get(
        f"{live.service.url}{path}",
        headers={"Authorization": f"Bearer {live.read_token}"},
        timeout=30,
    )
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["field"] == field


def test_ingest_keys_read_nothing(live: Live) -> None:
    token = _token(_cli(live.data_dir, "keys", "create", "--source", SOURCE))
    answer = requests.get(
        f"{live.service.url}/api/v1/events",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("application/problem+json")
