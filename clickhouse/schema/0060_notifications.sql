-- Alert notifications (meterhouse/notify/): where each account wants to hear about its
-- alerts, and every delivery attempt to those places.

-- Channels are versioned like users: a removal writes a newer row with is_deleted = 1.
-- account_id '' holds the operators' channels (alerts that name no account).
CREATE TABLE IF NOT EXISTS notification_channels
(
    account_id     String,
    channel_id     String,
    type           LowCardinality(String),             -- webhook | email | slack
    target         String,                             -- webhook URL, e-mail addresses, or Slack host (the URL is secret)
    secret_sealed  String DEFAULT '',                  -- webhook signing secret or Slack URL, sealed with MH_NOTIFY_SECRET_KEY
    min_severity   LowCardinality(String) DEFAULT 'info', -- info | warning | critical
    kinds          Array(LowCardinality(String)),      -- alert kinds wanted; empty = all
    description    String DEFAULT '',
    created_at     DateTime64(3, 'UTC') DEFAULT now64(3),
    updated_at     DateTime64(3, 'UTC') DEFAULT now64(3),
    is_deleted     UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(updated_at, is_deleted)
ORDER BY (account_id, channel_id);

-- One row per delivery attempt; the latest attempt of a delivery id is its state.
CREATE TABLE IF NOT EXISTS notifications
(
    at             DateTime64(3, 'UTC') DEFAULT now64(3),
    account_id     String,                             -- '' = operators
    alert          LowCardinality(String),             -- alert name, e.g. MeterhouseBudget80PercentUsed
    severity       LowCardinality(String),
    status         LowCardinality(String),             -- firing | resolved
    fingerprint    String,                             -- Alertmanager's fingerprint of the alert
    channel_id     String,
    channel_type   LowCardinality(String),
    delivery_id    String,                             -- the same for every attempt of one delivery
    attempt        UInt16,
    outcome        LowCardinality(String),             -- sent | retrying | dead
    response_code  UInt16 DEFAULT 0,                   -- HTTP status or SMTP reply code; 0 = no answer
    error          String DEFAULT '',
    summary        String DEFAULT '',
    payload        String DEFAULT ''                   -- the alert as JSON, so a restart can resume retries
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (account_id, at)
TTL toDateTime(at) + INTERVAL 400 DAY;
