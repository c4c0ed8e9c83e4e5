-- Billing sync (billing_sync/): what the Stripe mirror needs beyond 0005_billing.sql.
-- Tombstones: an object Stripe deleted (or a line/item that left its parent) gets a row
-- with deleted = 1 at a higher version, so FINAL shows the deletion.

ALTER TABLE stripe_products ADD COLUMN IF NOT EXISTS deleted UInt8 DEFAULT 0;
ALTER TABLE stripe_prices ADD COLUMN IF NOT EXISTS deleted UInt8 DEFAULT 0;
ALTER TABLE stripe_subscriptions ADD COLUMN IF NOT EXISTS deleted UInt8 DEFAULT 0;
ALTER TABLE stripe_invoices ADD COLUMN IF NOT EXISTS deleted UInt8 DEFAULT 0;
ALTER TABLE stripe_invoice_lines ADD COLUMN IF NOT EXISTS deleted UInt8 DEFAULT 0;

-- How Stripe collects an invoice and how often it tried: an open invoice that was
-- attempted, or whose due date passed, is past due.
ALTER TABLE stripe_invoices ADD COLUMN IF NOT EXISTS collection_method LowCardinality(String) DEFAULT '';
ALTER TABLE stripe_invoices ADD COLUMN IF NOT EXISTS attempt_count UInt32 DEFAULT 0;

-- Events applied by the scheduled sync are recorded beside webhook deliveries, so an
-- event id is applied once whichever path saw it first.
ALTER TABLE stripe_webhook_events ADD COLUMN IF NOT EXISTS source LowCardinality(String) DEFAULT 'webhook';

-- What an issue is about (account, customer, subscription or invoice id) and when it closed.
ALTER TABLE reconciliation_issues ADD COLUMN IF NOT EXISTS subject String DEFAULT '';
ALTER TABLE reconciliation_issues ADD COLUMN IF NOT EXISTS resolved_at Nullable(DateTime64(3, 'UTC'));
