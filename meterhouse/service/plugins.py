"""The parts that plug into `meterhouse run`, in the order they are installed."""

from __future__ import annotations

from billing_sync.service import billing_hook
from collectors.plugin import install_ingest
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
        billing_hook,
        install_notify,
        install_meters,
        install_access,
    ]
