-- API keys (stored hashed), role bindings and the audit log.

CREATE TABLE IF NOT EXISTS api_keys
(
    key_id       String,                               -- public prefix shown in listings
    key_hash     String,                               -- sha256 of the secret, hex
    purpose      LowCardinality(String),               -- ingest | read | admin
    source       String DEFAULT '',                    -- ingest keys: the CloudEvents source they may send as
    account_id   String DEFAULT '',                    -- '' = any account
    user_id      String DEFAULT '',                    -- read keys: whose bindings apply
    description  String DEFAULT '',
    created_at   DateTime64(3, 'UTC') DEFAULT now64(3),
    expires_at   Nullable(DateTime64(3, 'UTC')),
    revoked_at   Nullable(DateTime64(3, 'UTC')),
    updated_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY key_id;

CREATE TABLE IF NOT EXISTS role_bindings
(
    account_id  String,
    user_id     String,
    role        LowCardinality(String),                -- owner | admin | billing | member | viewer
    scope       LowCardinality(String),                -- account | team | project
    scope_id    String,
    updated_at  DateTime64(3, 'UTC') DEFAULT now64(3),
    is_deleted  UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(updated_at, is_deleted)
ORDER BY (account_id, user_id, scope, scope_id, role);

CREATE TABLE IF NOT EXISTS audit_log
(
    at           DateTime64(3, 'UTC') DEFAULT now64(3),
    actor        String,                               -- user id, key id, or cli:<os user>
    action       LowCardinality(String),               -- e.g. account.update, grant.create
    target_type  LowCardinality(String),
    target_id    String,
    account_id   String DEFAULT '',
    before       String DEFAULT '',                    -- JSON
    after        String DEFAULT ''                     -- JSON
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (account_id, at);
