"""The demo's role bindings: every account gets users of several roles and scopes.

Called by the demo after its accounts, teams, projects and users exist. Accounts with five
users get an owner, a billing user, a member of their first team, a viewer of their first
project and an admin; accounts with two users an owner and an account-wide viewer. Every
grant is audited; running the demo again grants nothing twice.
"""

from __future__ import annotations

from meterhouse.access.users import grant, make_binding
from meterhouse.demo.generator import DemoData, DemoTenant
from meterhouse.store.base import Store


def _plan(tenant: DemoTenant) -> list[tuple[str, str, str, str]]:
    """(user, role, team, project) for the tenant's users, in order."""
    first_team = tenant.teams[0][0] if tenant.teams else ""
    first_project = tenant.projects[0][1] if tenant.projects else ""
    if len(tenant.users) < 5 or not (first_team and first_project):
        roles = [("owner", "", ""), ("viewer", "", "")]
    else:
        roles = [
            ("owner", "", ""),
            ("billing", "", ""),
            ("member", first_team, ""),
            ("viewer", "", first_project),
            ("admin", "", ""),
        ]
    return [
        (user[0], role, team, project)
        for user, (role, team, project) in zip(tenant.users, roles, strict=False)
    ]


def seed_access(store: Store, data: DemoData, actor: str) -> int:
    """Grant the demo's roles; returns how many bindings were new."""
    created = 0
    for tenant in data.tenants:
        for user_id, role, team, project in _plan(tenant):
            binding = make_binding(store, tenant.account_id, user_id, role, team, project)
            created += grant(store, binding, actor=actor)
    return created
