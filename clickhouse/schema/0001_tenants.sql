-- Accounts, teams, projects and users: the tenants every usage row belongs to.
-- Latest version wins (ReplacingMergeTree on updated_at); query with FINAL.

CREATE TABLE IF NOT EXISTS accounts
(
    account_id          String,
    name                String,
    organisation        String DEFAULT '',
    time_zone           LowCardinality(String) DEFAULT 'UTC',
    plan                LowCardinality(String) DEFAULT 'free',
    stripe_customer_id  String DEFAULT '',
    custom_instructions String DEFAULT '',
    status              LowCardinality(String) DEFAULT 'active',
    created_at          DateTime64(3, 'UTC') DEFAULT now64(3),
    updated_at          DateTime64(3, 'UTC') DEFAULT now64(3),
    is_deleted          UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(updated_at, is_deleted)
ORDER BY account_id;

CREATE TABLE IF NOT EXISTS teams
(
    account_id  String,
    team_id     String,
    name        String,
    created_at  DateTime64(3, 'UTC') DEFAULT now64(3),
    updated_at  DateTime64(3, 'UTC') DEFAULT now64(3),
    is_deleted  UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(updated_at, is_deleted)
ORDER BY (account_id, team_id);

CREATE TABLE IF NOT EXISTS projects
(
    account_id  String,
    team_id     String,
    project_id  String,
    name        String,
    created_at  DateTime64(3, 'UTC') DEFAULT now64(3),
    updated_at  DateTime64(3, 'UTC') DEFAULT now64(3),
    is_deleted  UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(updated_at, is_deleted)
ORDER BY (account_id, project_id);

CREATE TABLE IF NOT EXISTS users
(
    account_id  String,
    user_id     String,
    email       String,
    name        String DEFAULT '',
    created_at  DateTime64(3, 'UTC') DEFAULT now64(3),
    updated_at  DateTime64(3, 'UTC') DEFAULT now64(3),
    is_deleted  UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(updated_at, is_deleted)
ORDER BY (account_id, user_id);
