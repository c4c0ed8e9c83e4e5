"""6 Billing: plans and subscriptions, invoices, reconciliation issues, sync freshness.

Everything comes from the Stripe mirror tables (latest version of each object: FINAL).
Customers map to accounts through ``stripe_customers.account_id`` (Stripe metadata).
"""

from __future__ import annotations

from meterhouse.dashboards import links, variables
from meterhouse.dashboards.grafana import CREDITS, Board
from meterhouse.dashboards.spec import Kind, columns
from meterhouse.dashboards.sql import accounts_filter, major_units

UID = links.BILLING
OVERVIEW_OF_ACCOUNT = links.to_board(
    "Overview of this account", links.OVERVIEW, (), {"account": "${__data.fields.Account}"}
)

CUSTOMERS = f"""(
    SELECT customer_id, account_id, email FROM stripe_customers FINAL
    WHERE deleted = 0 AND {accounts_filter("account_id")}
) AS c"""

SUBSCRIPTIONS_SQL = f"""SELECT
    c.account_id AS "Account",
    c.email AS "Customer",
    s.subscription_id AS "Subscription",
    s.status AS "Status",
    p.name AS "Product",
    p.plan AS "Plan",
    p.credits * i.quantity AS "Credits per period",
    {major_units("pr.unit_amount", "pr.currency")} * i.quantity AS "Price",
    upper(pr.currency) AS "Currency",
    pr.recurring_interval AS "Interval",
    i.current_period_start AS "Period start",
    i.current_period_end AS "Period end",
    if(s.cancel_at_period_end = 1, 'yes', '') AS "Cancels at period end"
FROM stripe_subscriptions AS s FINAL
INNER JOIN {CUSTOMERS} ON c.customer_id = s.customer_id
LEFT JOIN (SELECT * FROM stripe_subscription_items FINAL WHERE deleted = 0) AS i
    ON i.subscription_id = s.subscription_id
LEFT JOIN (SELECT * FROM stripe_products FINAL) AS p ON p.product_id = i.product_id
LEFT JOIN (SELECT * FROM stripe_prices FINAL) AS pr ON pr.price_id = i.price_id
ORDER BY "Status" = 'active' DESC, "Account", "Subscription"
"""

INVOICE_TOTALS_SQL = f"""SELECT
    countIf(v.status = 'open') AS "Open invoices",
    countIf(v.status = 'open' AND v.due_date < $__toTime) AS "Past due",
    countIf(v.status = 'paid' AND $__timeFilter(v.created)) AS "Paid in range",
    countIf(v.status IN ('uncollectible', 'void') AND $__timeFilter(v.created))
        AS "Void or uncollectible"
FROM stripe_invoices AS v FINAL
INNER JOIN {CUSTOMERS} ON c.customer_id = v.customer_id
"""

INVOICES_SQL = f"""SELECT
    v.created AS "Created",
    c.account_id AS "Account",
    v.invoice_id AS "Invoice",
    v.status AS "Status",
    {major_units("v.total", "v.currency")} AS "Total",
    {major_units("v.amount_paid", "v.currency")} AS "Paid",
    {major_units("v.amount_remaining", "v.currency")} AS "Remaining",
    upper(v.currency) AS "Currency",
    v.due_date AS "Due",
    v.period_start AS "Period start",
    v.period_end AS "Period end"
FROM stripe_invoices AS v FINAL
INNER JOIN {CUSTOMERS} ON c.customer_id = v.customer_id
WHERE $__timeFilter(v.created)
ORDER BY "Created" DESC
LIMIT 500
"""

PLANS_SQL = (
    """SELECT
    p.name AS "Product",
    p.plan AS "Plan",
    p.credits AS "Credits per period",
    pr.price_id AS "Price id",
    """
    + major_units("pr.unit_amount", "pr.currency")
    + """ AS "Price",
    upper(pr.currency) AS "Currency",
    pr.recurring_interval AS "Interval"
FROM stripe_products AS p FINAL
LEFT JOIN (SELECT * FROM stripe_prices FINAL WHERE active = 1) AS pr ON pr.product_id = p.product_id
WHERE p.active = 1
ORDER BY "Credits per period", "Product", "Interval"
"""
)

ISSUES_SQL = f"""SELECT
    last_seen AS "Last seen",
    kind AS "Kind",
    account_id AS "Account",
    customer_id AS "Customer",
    meterhouse_value AS "meterhouse",
    stripe_value AS "Stripe",
    suggested_action AS "Suggested action",
    first_seen AS "First seen"
FROM reconciliation_issues FINAL
WHERE status = 'open' AND {accounts_filter("account_id")}
ORDER BY "Last seen" DESC
"""

ISSUE_COUNT_SQL = f"""SELECT count() AS "Open reconciliation issues"
FROM reconciliation_issues FINAL
WHERE status = 'open' AND {accounts_filter("account_id")}
"""

# Freshness is about the present, so it is measured against the server clock.
SYNC_SQL = """SELECT
    name AS "Sync",
    last_success_at AS "Last success",
    dateDiff('second', last_success_at, now()) AS "Age",
    last_duration_ms / 1000 AS "Duration",
    cursor AS "Cursor"
FROM sync_state FINAL
ORDER BY "Sync"
"""


def build() -> Board:
    board = Board(
        UID,
        "meterhouse / 6 Billing",
        "Plans, subscriptions and invoices mirrored from Stripe, the differences between "
        "Stripe and meterhouse that need a decision, and how fresh the mirror is.",
        file_name="06-billing.json",
    )
    variables.accounts(board)
    board.stat(
        "Invoices",
        INVOICE_TOTALS_SQL,
        cols=columns(
            **{
                "Open invoices": Kind.NUMBER,
                "Past due": Kind.NUMBER,
                "Paid in range": Kind.NUMBER,
                "Void or uncollectible": Kind.NUMBER,
            }
        ),
        description="Open invoices now and those past their due date; invoices created in "
        "the time range that were paid, voided or marked uncollectible.",
        w=18,
    )
    board.stat(
        "Reconciliation issues",
        ISSUE_COUNT_SQL,
        cols=columns(**{"Open reconciliation issues": Kind.NUMBER}),
        description="Open differences between Stripe and meterhouse (table below).",
        w=6,
    )
    board.table(
        "Subscriptions",
        SUBSCRIPTIONS_SQL,
        cols=columns(
            Account=Kind.STRING,
            Customer=Kind.STRING,
            Subscription=Kind.STRING,
            Status=Kind.STRING,
            Product=Kind.STRING,
            Plan=Kind.STRING,
            **{"Credits per period": Kind.NUMBER},
            Price=Kind.NUMBER,
            Currency=Kind.STRING,
            Interval=Kind.STRING,
            **{
                "Period start": Kind.TIME,
                "Period end": Kind.TIME,
                "Cancels at period end": Kind.STRING,
            },
        ),
        description="Each account's Stripe subscriptions with their plan, price and current "
        "period. Active first. Click an account for its overview.",
        units={"Credits per period": CREDITS},
        cell_links={"Account": OVERVIEW_OF_ACCOUNT},
        h=8,
    )
    board.table(
        "Invoices in range",
        INVOICES_SQL,
        cols=columns(
            Created=Kind.TIME,
            Account=Kind.STRING,
            Invoice=Kind.STRING,
            Status=Kind.STRING,
            Total=Kind.NUMBER,
            Paid=Kind.NUMBER,
            Remaining=Kind.NUMBER,
            Currency=Kind.STRING,
            Due=Kind.TIME,
            **{"Period start": Kind.TIME, "Period end": Kind.TIME},
        ),
        description="Invoices created in the time range, newest first, in the invoice's "
        "currency. Click an account for its overview.",
        cell_links={"Account": OVERVIEW_OF_ACCOUNT},
        h=10,
    )
    board.table(
        "Open reconciliation issues",
        ISSUES_SQL,
        cols=columns(
            **{"Last seen": Kind.TIME},
            Kind=Kind.STRING,
            Account=Kind.STRING,
            Customer=Kind.STRING,
            meterhouse=Kind.STRING,
            Stripe=Kind.STRING,
            **{"Suggested action": Kind.STRING, "First seen": Kind.TIME},
        ),
        description="What the billing sync found different between Stripe and meterhouse "
        "(plan, credits, invoices), with the suggested fix.",
        h=8,
    )
    board.table(
        "Plans",
        PLANS_SQL,
        cols=columns(
            Product=Kind.STRING,
            Plan=Kind.STRING,
            **{"Credits per period": Kind.NUMBER, "Price id": Kind.STRING},
            Price=Kind.NUMBER,
            Currency=Kind.STRING,
            Interval=Kind.STRING,
        ),
        description="The active Stripe products that are meterhouse plans, with their "
        "credits per period and active prices.",
        units={"Credits per period": CREDITS},
        w=14,
        h=8,
    )
    board.table(
        "Sync freshness",
        SYNC_SQL,
        cols=columns(
            Sync=Kind.STRING,
            **{"Last success": Kind.TIME},
            Age=Kind.NUMBER,
            Duration=Kind.NUMBER,
            Cursor=Kind.STRING,
        ),
        description="When each Stripe sync last succeeded and how long ago (server clock).",
        units={"Age": "s", "Duration": "s"},
        w=10,
        h=8,
    )
    return board
