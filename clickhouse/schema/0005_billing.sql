-- Stripe mirror tables (latest version wins: ReplacingMergeTree on the object's version,
-- query with FINAL), the sync cursor, processed webhook events and reconciliation issues.
-- raw keeps the whole Stripe object as JSON for fields the columns leave out.

CREATE TABLE IF NOT EXISTS stripe_customers
(
    customer_id  String,
    email        String DEFAULT '',
    name         String DEFAULT '',
    account_id   String DEFAULT '',                    -- metadata.meterhouse_account
    balance      Int64 DEFAULT 0,                      -- minor units
    currency     LowCardinality(String) DEFAULT '',
    created      DateTime64(3, 'UTC'),
    deleted      UInt8 DEFAULT 0,
    raw          String,
    version      UInt64                               -- event time in ms, or sync time
)
ENGINE = ReplacingMergeTree(version)
ORDER BY customer_id;

CREATE TABLE IF NOT EXISTS stripe_products
(
    product_id   String,
    name         String,
    active       UInt8,
    plan         LowCardinality(String) DEFAULT '',    -- metadata.meterhouse_plan
    credits      Decimal(38, 12) DEFAULT 0,            -- metadata.meterhouse_credits per period
    raw          String,
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY product_id;

CREATE TABLE IF NOT EXISTS stripe_prices
(
    price_id         String,
    product_id       String,
    active           UInt8,
    currency         LowCardinality(String),
    unit_amount      Nullable(Int64),                  -- minor units
    unit_amount_decimal  Nullable(Decimal(38, 12)),
    recurring_interval   LowCardinality(String) DEFAULT '',
    raw              String,
    version          UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY price_id;

CREATE TABLE IF NOT EXISTS stripe_subscriptions
(
    subscription_id  String,
    customer_id      String,
    status           LowCardinality(String),
    cancel_at_period_end UInt8 DEFAULT 0,
    created          DateTime64(3, 'UTC'),
    canceled_at      Nullable(DateTime64(3, 'UTC')),
    raw              String,
    version          UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY subscription_id;

CREATE TABLE IF NOT EXISTS stripe_subscription_items
(
    item_id               String,
    subscription_id       String,
    price_id              String,
    product_id            String,
    quantity              UInt64 DEFAULT 1,
    current_period_start  DateTime64(3, 'UTC'),
    current_period_end    DateTime64(3, 'UTC'),
    deleted               UInt8 DEFAULT 0,
    raw                   String,
    version               UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (subscription_id, item_id);

CREATE TABLE IF NOT EXISTS stripe_invoices
(
    invoice_id       String,
    customer_id      String,
    subscription_id  String DEFAULT '',                -- parent.subscription_details.subscription
    status           LowCardinality(String),           -- draft | open | paid | uncollectible | void
    currency         LowCardinality(String),
    total            Int64,
    amount_due       Int64,
    amount_paid      Int64,
    amount_remaining Int64,
    due_date         Nullable(DateTime64(3, 'UTC')),
    period_start     DateTime64(3, 'UTC'),
    period_end       DateTime64(3, 'UTC'),
    created          DateTime64(3, 'UTC'),
    raw              String,
    version          UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY invoice_id;

CREATE TABLE IF NOT EXISTS stripe_invoice_lines
(
    invoice_id   String,
    line_id      String,
    description  String DEFAULT '',
    amount       Int64,
    currency     LowCardinality(String),
    quantity     Nullable(UInt64),
    price_id     String DEFAULT '',                    -- pricing.price_details.price
    period_start DateTime64(3, 'UTC'),
    period_end   DateTime64(3, 'UTC'),
    raw          String,
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (invoice_id, line_id);

CREATE TABLE IF NOT EXISTS stripe_balance_transactions
(
    transaction_id  String,
    customer_id     String,
    type            LowCardinality(String),
    amount          Int64,
    currency        LowCardinality(String),
    created         DateTime64(3, 'UTC'),
    raw             String,
    version         UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (customer_id, transaction_id);

CREATE TABLE IF NOT EXISTS sync_state
(
    name        String,                                 -- e.g. stripe.events
    cursor      String,
    last_success_at  Nullable(DateTime64(3, 'UTC')),
    last_duration_ms UInt64 DEFAULT 0,
    updated_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY name;

CREATE TABLE IF NOT EXISTS stripe_webhook_events
(
    event_id     String,
    type         LowCardinality(String),
    created      DateTime64(3, 'UTC'),
    received_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(received_at)
ORDER BY event_id;

CREATE TABLE IF NOT EXISTS reconciliation_issues
(
    issue_id          String,                          -- kind + subject, stable across passes
    account_id        String DEFAULT '',
    customer_id       String DEFAULT '',
    kind              LowCardinality(String),          -- plan_mismatch | past_due_invoice | ...
    meterhouse_value  String,
    stripe_value      String,
    suggested_action  String,
    status            LowCardinality(String),          -- open | resolved
    first_seen        DateTime64(3, 'UTC'),
    last_seen         DateTime64(3, 'UTC'),
    version           UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY issue_id;
