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
from typing import Any, Final

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


@dataclass
class _Run:
    """One run of one job: makes its state and log events with the job's ids and owner."""

    ids: _Ids
    tenant: DemoTenant
    spec: _JobSpec
    job_id: str
    owner: tuple[str, str]
    run_id: str
    events: list[r.Event] = field(default_factory=list)

    def state(self, status: r.RunStatus, at: datetime, **final: Any) -> None:
        data = r.JobRunData(
            job_id=self.job_id,
            run_id=self.run_id,
            kind=self.spec.kind,
            status=status,
            team_id=self.owner[0],
            project_id=self.owner[1],
            **final,
        )
        self.events.append(_event(self.ids, self.tenant, r.JOB_RUN, at, data))

    def log(self, level: r.LogLevel, at: datetime, message: str, **error: str) -> None:
        data = r.JobLogData(
            job_id=self.job_id,
            run_id=self.run_id,
            kind=self.spec.kind,
            level=level,
            message=message,
            team_id=self.owner[0],
            project_id=self.owner[1],
            **error,
        )
        self.events.append(_event(self.ids, self.tenant, r.JOB_LOG, at, data))


def _jobs(
    rng: random.Random, ids: _Ids, tenant: DemoTenant, start: datetime, end: datetime, stuck: bool
) -> list[r.Event]:
    events: list[r.Event] = []
    specs = JOB_SPECS[:4] + JOB_SPECS[4:6] if tenant.plan == "free" else JOB_SPECS
    for spec in specs:
        team, project, _ = rng.choice(tenant.projects)
        job_id = f"{tenant.account_id}-{spec.name}"
        definition = r.JobDefinitionData(
            job_id=job_id,
            kind=spec.kind,
            name=spec.name,
            schedule=_schedule(spec.every),
            typical_duration_ms=spec.typical_seconds * 1000,
            team_id=team,
            project_id=project,
        )
        events.append(_event(ids, tenant, r.JOB_DEFINITION, start - timedelta(days=1), definition))
        at = start + timedelta(seconds=rng.uniform(0, spec.every.total_seconds()))
        while at < end:
            run = _Run(ids, tenant, spec, job_id, (team, project), ids.new("run"))
            _play_run(rng, run, at, end)
            events += run.events
            at += spec.every
        if stuck and spec.kind == "asset":
            stuck = False
            run = _Run(ids, tenant, spec, job_id, (team, project), ids.new("run"))
            began = end - timedelta(hours=6)
            run.state("queued", began - timedelta(seconds=5))
            run.state("running", began)
            run.log(
                "warning",
                began + timedelta(seconds=2),
                "waiting for lock on warehouse table sales_by_region",
            )
            events += run.events
    return events


def _schedule(every: timedelta) -> str:
    hours = int(every.total_seconds() // 3600)
    return "0 2 * * *" if hours >= 24 else f"0 */{hours} * * *"


def _play_run(rng: random.Random, run: _Run, queued: datetime, end: datetime) -> None:
    """Queued, running, then succeeded or failed with an error log, as far as ``end``."""
    spec = run.spec
    started = queued + timedelta(seconds=rng.uniform(0.2, 5))
    seconds = max(0.5, rng.lognormvariate(0, 0.35) * spec.typical_seconds)
    finished = started + timedelta(seconds=seconds)
    run.state("queued", queued)
    if started >= end:
        return
    run.state("running", started)
    run.log("info", started, f"{spec.name} started")
    if finished >= end:
        return
    status: r.RunStatus = "succeeded"
    error_type = error_message = ""
    if rng.random() < spec.failure_rate:
        error_type, error_message = rng.choice(ERRORS[spec.kind])
        status = "timed_out" if error_type == "TimeoutError" else "failed"
        run.log(
            "error",
            finished,
            f"{spec.name} failed: {error_message}",
            error_type=error_type,
            error_message=error_message,
            stack_trace=_stack_trace(spec.kind, error_type, error_message),
        )
    else:
        run.log("info", finished, f"{spec.name} finished in {seconds:.1f}s")
    run.state(
        status,
        finished,
        started_at=started,
        duration_seconds=Decimal(f"{seconds:.3f}"),
        error_type=error_type,
        error_message=error_message,
    )


def _stack_trace(kind: str, error_type: str, message: str) -> str:
    return (
        "Traceback (most recent call last):\n"
        f'  File "/app/jobs/{kind}.py", line 88, in run\n'
        "    result = step.execute(context)\n"
        '  File "/app/jobs/steps.py", line 214, in execute\n'
        f"    raise {error_type}(message)\n"
        f"{error_type}: {message}"
    )


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
