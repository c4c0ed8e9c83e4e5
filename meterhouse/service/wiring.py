"""The parts that plug into `meterhouse run`, in the order they are installed.

A composition place: the one module of meterhouse/service that imports the product
packages (collectors, billing_sync); the import contract in pyproject.toml names it.
"""

from __future__ import annotations

from billing_sync.service import billing_hook
from collectors.poller import install_poller
from collectors.service_hook import install_ingest
from meterhouse.access.read_api import install_access
from meterhouse.jobs.service import install_jobs
from meterhouse.ledger.api import install_ledger
from meterhouse.meters.api import install_meters
from meterhouse.service.notify_api import install_notify
from meterhouse.service.runner import ServiceHook


def default_hooks() -> list[ServiceHook]:
    # install_access last: it adds only the read routes no other part registered.
    return [
        install_ingest,
        install_ledger,
        install_jobs,
        install_poller,
        billing_hook,
        install_notify,
        install_meters,
        install_access,
    ]
