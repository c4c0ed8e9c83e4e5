"""Access and user management: tenants, users, roles, keys, tenant isolation, audit.

    tenants.py          accounts, teams and projects, each change audited
    keys.py             API keys (ingest, read, admin): create, check, revoke
    roles.py            the roles, scopes and what each role may read (the one matrix)
    users.py            users and role bindings: add, remove, grant, revoke, each audited
    visibility.py       what one caller may see of one account, from its bindings
    statement_view.py   a statement as a team- or project-scoped caller may see it
    read_api.py         jobs, runs, events and users read routes, and the service hook
    clickhouse_plan.py  ClickHouse users, roles, grants and row policies from the bindings
    clickhouse_sync.py  discover what exists, check and apply that plan
    grafana_sync.py     a Grafana folder and team per account, through Grafana's HTTP API
    key_auth.py         the ingest key behind a bearer token, and the brake on guessing

Authentication of the read APIs (admin token, read keys, failure rate limit) lives in
meterhouse/service/auth.py; docs/access.md describes the whole model.
"""
