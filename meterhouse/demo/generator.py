"""A realistic, seeded sample of a platform's tenants and a month and a half of events.

Pure: the same seed and end time give the same tenants and events, so tests and the
dashboards' proofs can rely on what the demo contains (every job kind, failures with
logs, runs still running, one stuck run, one model the catalog does not know).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

from meterhouse import records as r

DEMO_SOURCE: Final = "demo.meterhouse"
UNKNOWN_MODEL: Final = "acme-internal-7b"

# (provider, model, relative popularity, typical input tokens, typical output tokens)
MODELS: Final = (
    ("openai", "gpt-4o", 30, 1800, 450),
    ("openai", "gpt-4o-mini", 40, 900, 300),
    ("anthropic", "claude-sonnet-4-20250514", 20, 2500, 700),
    ("google", "gemini-2.5-flash", 15, 1200, 350),
    ("anthropic", "claude-3-5-haiku-latest", 10, 700, 200),
    ("", UNKNOWN_MODEL, 2, 500, 150),
)

ERRORS: Final = {
    "scheduler": [
        ("TimeoutError", "step 'aggregate_daily' exceeded 900s"),
        ("KeyError", "'customer_id' missing in upstream row 4412"),
    ],
    "asset": [
        ("MaterializationError", "asset sales_by_region: upstream orders is stale (last 26h ago)"),
        ("MemoryError", "worker ran out of memory while joining 48M rows"),
    ],
    "webhook": [
        ("HTTPError", "POST https://hooks.example.com/orders returned 502 Bad Gateway"),
        ("ConnectionError", "connection to hooks.example.com:443 timed out after 10s"),
    ],
    "notification": [
        ("SMTPRecipientsRefused", "550 5.1.1 <ops@old-domain.example>: recipient unknown"),
        ("RateLimitError", "Slack API rate limited: retry after 30s"),
    ],
}


@dataclass
class DemoTenant:
    account_id: str
    name: str
    organisation: str
    time_zone: str
    plan: str
    custom_instructions: str
    teams: list[tuple[str, str]] = field(default_factory=list)  # (team id, name)
    projects: list[tuple[str, str, str]] = field(default_factory=list)  # (team, project, name)
    users: list[tuple[str, str, str]] = field(default_factory=list)  # (user id, email, name)


TENANTS: Final = (
    ("acme", "Acme Analytics", "Acme Analytics Ltd", "Europe/Paris", "pro"),
    ("globex", "Globex", "Globex Corporation", "America/New_York", "enterprise"),
    ("initech", "Initech", "Initech Inc", "America/Los_Angeles", "starter"),
    ("umbrella", "Umbrella Labs", "Umbrella Research KK", "Asia/Tokyo", "pro"),
    ("tinyco", "TinyCo", "TinyCo", "UTC", "free"),
)
TEAM_NAMES: Final = ("data", "ml", "platform", "growth")
PROJECT_NAMES: Final = ("churn-model", "support-bot", "etl-core", "reporting", "search", "rag-docs")
PEOPLE: Final = ("alice", "bob", "chen", "dana", "eve", "farid", "grace")


def demo_tenants(rng: random.Random) -> list[DemoTenant]:
    tenants: list[DemoTenant] = []
    for account_id, name, organisation, tz, plan in TENANTS:
        tenant = DemoTenant(
            account_id,
            name,
            organisation,
            tz,
            plan,
            custom_instructions=f"Answer as {name}'s analyst; cite the dataset you used.",
        )
        team_count = 1 if plan == "free" else rng.randint(2, 3)
        for team in TEAM_NAMES[:team_count]:
            tenant.teams.append((team, team.capitalize()))
        for index, project in enumerate(rng.sample(PROJECT_NAMES, team_count + 1)):
            team = tenant.teams[index % team_count][0]
            tenant.projects.append((team, project, project.replace("-", " ").title()))
        for person in rng.sample(PEOPLE, 2 if plan == "free" else 5):
            tenant.users.append((person, f"{person}@{account_id}.example", person.title()))
        tenants.append(tenant)
    return tenants


class _Ids:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def new(self, prefix: str) -> str:
        return f"{prefix}_{self.rng.getrandbits(64):016x}"


def _event(ids: _Ids, tenant: DemoTenant, kind: str, at: datetime, data: r.EventData) -> r.Event:
    return r.Event(
        id=ids.new("evt"),
        source=DEMO_SOURCE,
        type=kind,
        time=at,
        data=data,
        account_id=tenant.account_id,
    )


def _model_calls(
    rng: random.Random, ids: _Ids, tenant: DemoTenant, start: datetime, end: datetime, per_day: int
) -> list[r.Event]:
    events: list[r.Event] = []
    weights = [m[2] for m in MODELS]
    days = (end - start).days + 1
    for day in range(days):
        day_start = start + timedelta(days=day)
        weekend = day_start.weekday() >= 5
        count = int(per_day * (0.4 if weekend else 1.0) * rng.uniform(0.7, 1.3))
        for _ in range(count):
            at = day_start + timedelta(seconds=rng.uniform(0, 86_400))
            if at >= end:
                continue
            provider, model, _, tin, tout = rng.choices(MODELS, weights)[0]
            team, project, _ = rng.choice(tenant.projects)
            user = rng.choice(tenant.users)[0]
            input_tokens = max(1, int(rng.lognormvariate(0, 0.6) * tin))
            cache_read = int(input_tokens * rng.choice([0, 0, 0.3, 0.6]))
            output = max(1, int(rng.lognormvariate(0, 0.5) * tout))
            reasoning = int(output * 0.4) if "o" in model[-2:] and rng.random() < 0.1 else 0
            events.append(
                _event(
                    ids,
                    tenant,
                    r.MODEL_CALL,
                    at,
                    r.ModelCallData(
                        team_id=team,
                        project_id=project,
                        user_id=user,
                        model=model,
                        provider=provider,
                        input_tokens=input_tokens,
                        output_tokens=output,
                        cache_read_tokens=cache_read,
                        reasoning_tokens=reasoning,
                    ),
                )
            )
    return events


@dataclass(frozen=True)
class _JobSpec:
    kind: r.JobKind
    name: str
    every: timedelta
    typical_seconds: int
    failure_rate: float


JOB_SPECS: Final = (
    _JobSpec("scheduler", "nightly-aggregates", timedelta(days=1), 600, 0.05),
    _JobSpec("scheduler", "hourly-sync", timedelta(hours=3), 90, 0.04),
    _JobSpec("asset", "sales_by_region", timedelta(hours=12), 300, 0.08),
    _JobSpec("asset", "customer_features", timedelta(days=1), 900, 0.06),
    _JobSpec("webhook", "order-events", timedelta(hours=2), 3, 0.10),
    _JobSpec("notification", "daily-digest", timedelta(days=1), 20, 0.05),
    _JobSpec("notification", "budget-alerts", timedelta(hours=8), 5, 0.07),
)


def _jobs(
    rng: random.Random, ids: _Ids, tenant: DemoTenant, start: datetime, end: datetime, stuck: bool
) -> list[r.Event]:
    events: list[r.Event] = []
    specs = JOB_SPECS[:4] + JOB_SPECS[4:6] if tenant.plan == "free" else JOB_SPECS
    for spec in specs:
        team, project, _ = rng.choice(tenant.projects)
        job_id = f"{tenant.account_id}-{spec.name}"
        owner = (team, project)
        events.append(
            _event(
                ids,
                tenant,
                r.JOB_DEFINITION,
                start - timedelta(days=1),
                r.JobDefinitionData(
                    job_id=job_id,
                    kind=spec.kind,
                    name=spec.name,
                    schedule=_schedule(spec.every),
                    typical_duration_ms=spec.typical_seconds * 1000,
                    team_id=owner[0],
                    project_id=owner[1],
                ),
            )
        )
        at = start + timedelta(seconds=rng.uniform(0, spec.every.total_seconds()))
        while at < end:
            events.extend(_run(rng, ids, tenant, spec, job_id, owner, at, end))
            at += spec.every
        if stuck and spec.kind == "asset":
            stuck = False
            run_id = ids.new("run")
            began = end - timedelta(hours=6)
            stages: tuple[tuple[r.RunStatus, datetime], ...] = (
                ("queued", began - timedelta(seconds=5)),
                ("running", began),
            )
            for status, when in stages:
                events.append(
                    _event(
                        ids,
                        tenant,
                        r.JOB_RUN,
                        when,
                        r.JobRunData(
                            job_id=job_id,
                            run_id=run_id,
                            kind=spec.kind,
                            status=status,
                            team_id=owner[0],
                            project_id=owner[1],
                        ),
                    )
                )
            events.append(
                _event(
                    ids,
                    tenant,
                    r.JOB_LOG,
                    began + timedelta(seconds=2),
                    r.JobLogData(
                        job_id=job_id,
                        run_id=run_id,
                        kind=spec.kind,
                        level="warning",
                        message="waiting for lock on warehouse table sales_by_region",
                        team_id=owner[0],
                        project_id=owner[1],
                    ),
                )
            )
    return events


def _schedule(every: timedelta) -> str:
    hours = int(every.total_seconds() // 3600)
    return "0 2 * * *" if hours >= 24 else f"0 */{hours} * * *"


def _run(
    rng: random.Random,
    ids: _Ids,
    tenant: DemoTenant,
    spec: _JobSpec,
    job_id: str,
    owner: tuple[str, str],
    queued: datetime,
    end: datetime,
) -> list[r.Event]:
    run_id = ids.new("run")
    started = queued + timedelta(seconds=rng.uniform(0.2, 5))
    seconds = max(0.5, rng.lognormvariate(0, 0.35) * spec.typical_seconds)
    finished = started + timedelta(seconds=seconds)
    events = [
        _event(
            ids,
            tenant,
            r.JOB_RUN,
            queued,
            r.JobRunData(
                job_id=job_id,
                run_id=run_id,
                kind=spec.kind,
                status="queued",
                team_id=owner[0],
                project_id=owner[1],
            ),
        ),
    ]
    if started >= end:
        return events
    events.append(
        _event(
            ids,
            tenant,
            r.JOB_RUN,
            started,
            r.JobRunData(
                job_id=job_id,
                run_id=run_id,
                kind=spec.kind,
                status="running",
                team_id=owner[0],
                project_id=owner[1],
            ),
        )
    )
    events.append(
        _event(
            ids,
            tenant,
            r.JOB_LOG,
            started,
            r.JobLogData(
                job_id=job_id,
                run_id=run_id,
                kind=spec.kind,
                level="info",
                message=f"{spec.name} started",
                team_id=owner[0],
                project_id=owner[1],
            ),
        )
    )
    if finished >= end:
        return events
    failed = rng.random() < spec.failure_rate
    status: r.RunStatus = "succeeded"
    error_type = error_message = ""
    if failed:
        error_type, error_message = rng.choice(ERRORS[spec.kind])
        status = "timed_out" if error_type == "TimeoutError" else "failed"
        events.append(
            _event(
                ids,
                tenant,
                r.JOB_LOG,
                finished,
                r.JobLogData(
                    job_id=job_id,
                    run_id=run_id,
                    kind=spec.kind,
                    level="error",
                    message=f"{spec.name} failed: {error_message}",
                    error_type=error_type,
                    error_message=error_message,
                    stack_trace=(
                        "Traceback (most recent call last):\n"
                        f'  File "/app/jobs/{spec.kind}.py", line 88, in run\n'
                        "    result = step.execute(context)\n"
                        f'  File "/app/jobs/steps.py", line 214, in execute\n'
                        f"    raise {error_type}(message)\n"
                        f"{error_type}: {error_message}"
                    ),
                    team_id=owner[0],
                    project_id=owner[1],
                ),
            )
        )
    else:
        events.append(
            _event(
                ids,
                tenant,
                r.JOB_LOG,
                finished,
                r.JobLogData(
                    job_id=job_id,
                    run_id=run_id,
                    kind=spec.kind,
                    level="info",
                    message=f"{spec.name} finished in {seconds:.1f}s",
                    team_id=owner[0],
                    project_id=owner[1],
                ),
            )
        )
    events.append(
        _event(
            ids,
            tenant,
            r.JOB_RUN,
            finished,
            r.JobRunData(
                job_id=job_id,
                run_id=run_id,
                kind=spec.kind,
                status=status,
                started_at=started,
                duration_seconds=Decimal(f"{seconds:.3f}"),
                error_type=error_type,
                error_message=error_message,
                team_id=owner[0],
                project_id=owner[1],
            ),
        )
    )
    return events


def _api_calls(
    rng: random.Random, ids: _Ids, tenant: DemoTenant, start: datetime, end: datetime, per_day: int
) -> list[r.Event]:
    events: list[r.Event] = []
    routes = ("/v1/datasets", "/v1/query", "/v1/assets/{id}", "/v1/chat")
    total = per_day * ((end - start).days + 1)
    for _ in range(total):
        at = start + timedelta(seconds=rng.uniform(0, (end - start).total_seconds()))
        team, project, _ = rng.choice(tenant.projects)
        events.append(
            _event(
                ids,
                tenant,
                r.API_CALL,
                at,
                r.ApiCallData(
                    team_id=team,
                    project_id=project,
                    user_id=rng.choice(tenant.users)[0],
                    route=rng.choice(routes),
                    method=rng.choice(("GET", "GET", "POST")),
                    status_code=rng.choice((200, 200, 200, 201, 404, 500)),
                    duration_ms=int(rng.lognormvariate(4, 0.7)),
                ),
            )
        )
    return events


@dataclass
class DemoData:
    tenants: list[DemoTenant]
    events: list[r.Event]
    start: datetime
    end: datetime


def generate(
    end: datetime, *, days: int | None = None, seed: int = 7, scale: float = 1.0
) -> DemoData:
    """Tenants and their events up to ``end``, sorted by time.

    By default the events start a day before the previous calendar month, so every
    account's "this month" and "last month" are complete whatever its time zone.
    """
    rng = random.Random(seed)
    ids = _Ids(rng)
    if days is None:
        last_month = (end.replace(day=1) - timedelta(days=1)).replace(day=1)
        start = last_month.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    else:
        start = (end - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    tenants = demo_tenants(rng)
    events: list[r.Event] = []
    for index, tenant in enumerate(tenants):
        size = {"free": 10, "starter": 40, "pro": 110, "enterprise": 180}[tenant.plan]
        per_day = max(1, int(size * scale))
        events += _model_calls(rng, ids, tenant, start, end, per_day)
        events += _jobs(rng, ids, tenant, start, end, stuck=index == 0)
        events += _api_calls(rng, ids, tenant, start, end, max(1, per_day // 4))
    events.sort(key=lambda e: e.time)
    return DemoData(tenants=tenants, events=events, start=start, end=end)
