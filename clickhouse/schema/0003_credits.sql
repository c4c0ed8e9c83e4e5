-- Credit ledger (grants), budgets, the LLM price catalog with history, and the price book.

CREATE TABLE IF NOT EXISTS credit_grants
(
    grant_id         String,                          -- derived from the idempotency key
    account_id       String,
    kind             LowCardinality(String),          -- plan_allowance | top_up | promotional | adjustment
    amount           Decimal(38, 12),                 -- credits
    priority         UInt8 DEFAULT 10,                -- lower burns first
    effective_at     DateTime64(3, 'UTC'),
    expires_at       Nullable(DateTime64(3, 'UTC')),
    idempotency_key  String,
    description      String DEFAULT '',
    source           LowCardinality(String) DEFAULT 'manual',  -- manual | stripe | demo | api
    stripe_ref       String DEFAULT '',               -- subscription and period for allowances
    created_at       DateTime64(3, 'UTC') DEFAULT now64(3),
    voided           UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY (account_id, grant_id);

CREATE TABLE IF NOT EXISTS budgets
(
    account_id   String,
    scope        LowCardinality(String),              -- account | team | project
    scope_id     String,                              -- account, team or project id
    month        Date,                                -- first day of the month, account time zone
    amount       Decimal(38, 12),                     -- credits
    thresholds   Array(UInt8) DEFAULT [50, 80, 100],  -- percent
    updated_at   DateTime64(3, 'UTC') DEFAULT now64(3),
    is_deleted   UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(updated_at, is_deleted)
ORDER BY (account_id, scope, scope_id, month);

CREATE TABLE IF NOT EXISTS model_prices
(
    provider          LowCardinality(String),
    model_id          String,
    model_name        String DEFAULT '',
    effective_from    DateTime64(3, 'UTC'),
    effective_to      Nullable(DateTime64(3, 'UTC')),  -- NULL while current
    input_mtok        Nullable(Decimal(38, 12)),       -- USD per million tokens
    output_mtok       Nullable(Decimal(38, 12)),
    cache_read_mtok   Nullable(Decimal(38, 12)),
    cache_write_mtok  Nullable(Decimal(38, 12)),
    tiers             String DEFAULT '',               -- JSON of tiered prices, when the catalog has them
    context_window    Nullable(UInt64),
    catalog_version   LowCardinality(String),
    synced_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(synced_at)
ORDER BY (provider, model_id, effective_from);

CREATE TABLE IF NOT EXISTS price_book
(
    version            String,                          -- price book version, e.g. 2026-11-01
    plan               LowCardinality(String),          -- '' = every plan
    account_id         String DEFAULT '',               -- '' = list price; else a negotiated override
    kind               LowCardinality(String),          -- model | job | api
    item               LowCardinality(String),          -- model id, job kind, route, or '*'
    usage_type         LowCardinality(String),
    credits_per_unit   Nullable(Decimal(38, 12)),       -- NULL: derive from USD via credits_per_usd
    credits_per_usd    Decimal(38, 12) DEFAULT 100,
    discount_percent   Decimal(9, 4) DEFAULT 0,
    effective_from     DateTime64(3, 'UTC'),
    updated_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (plan, account_id, kind, item, usage_type, effective_from);
