-- Credit ledger: statements issued to accounts, so a re-generated statement can say REVISED.
-- Append-only: each `meterhouse statement --issue` adds a row; the latest per
-- (account_id, month, scope) is the one a new statement compares itself with.

CREATE TABLE IF NOT EXISTS statements_issued
(
    account_id       String,
    month            Date,                            -- first day of the month, account time zone
    scope            String DEFAULT '',               -- '' whole account; team:<id>, project:<id>, or both joined by '/'
    issued_at        DateTime64(3, 'UTC'),
    issued_by        String DEFAULT '',               -- actor, as in audit_log
    opening_balance  Decimal(38, 12),
    credit_total     Decimal(38, 12),                 -- grants and top-ups taking effect in the month
    debit_total      Decimal(38, 12),                 -- usage debits: sum of usage_events.credits in the month (scope)
    expired_total    Decimal(38, 12),                 -- remainders of grants that expired in the month
    closing_balance  Decimal(38, 12),
    content_hash     String                           -- sha256 of the statement's lines and totals
)
ENGINE = MergeTree
ORDER BY (account_id, month, scope, issued_at);
