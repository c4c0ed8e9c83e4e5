"""An account's unpaid invoices, from the open reconciliation issues, as pushed alerts.

The billing sync (billing_sync/reconcile.py) keeps an open issue for each invoice that is
past due or uncollectible; the account's own people should hear of it, not only the
operators. ``MeterhouseInvoiceUnpaid`` carries labels account and invoice (a handful per
account at most); uncollectible invoices are critical.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from meterhouse.notify.pusher import RUNBOOK, PushedAlert
from meterhouse.store.base import Store

MAX_ALERTS: Final = 200
_UNPAID = """
SELECT account_id, subject, kind, stripe_value, suggested_action
FROM reconciliation_issues FINAL
WHERE status = 'open' AND account_id != ''
  AND kind IN ('past_due_invoice', 'uncollectible_invoice')
ORDER BY account_id, subject
LIMIT {n:UInt32}
"""


def unpaid_invoice_alerts(store: Store, now: datetime) -> list[PushedAlert]:
    del now  # the issues say what is open now
    name = "MeterhouseInvoiceUnpaid"
    alerts = []
    for row in store.query(_UNPAID, {"n": MAX_ALERTS}).dicts():
        account, invoice = str(row["account_id"]), str(row["subject"])
        critical = row["kind"] == "uncollectible_invoice"
        alerts.append(
            PushedAlert(
                {
                    "alertname": name,
                    "severity": "critical" if critical else "warning",
                    "account": account,
                    "invoice": invoice,
                },
                {
                    "summary": f"Invoice {invoice} of account {account} is "
                    + ("uncollectible" if critical else "unpaid"),
                    "description": f"{row['stripe_value']}. {row['suggested_action']}.",
                    "figure": str(row["stripe_value"]),
                    "threshold": "due date passed or a payment attempt failed",
                    "runbook_url": RUNBOOK + name.lower(),
                },
            )
        )
    return alerts
