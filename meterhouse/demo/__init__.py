"""`meterhouse demo`: a month of realistic platform data, stored through the real paths.

Everything only the demo needs lives here, outside the product's runtime packages:

    generator.py          the month of events, tenants and jobs
    runner.py             stores it through the real write path (or via_api.py, over HTTP)
    ledger_seed.py        the demo's allowances, top-ups, promotion and budgets
    access_seed.py        demo users with several roles and scopes
    billing_seed.py       the demo's Stripe catalog and customers
    local_stripe*.py      an in-memory Stripe account behind a Stripe-shaped HTTP server,
                          used when MH_STRIPE_API_KEY is empty (and by the billing tests)
    summary.py            the per-account overview `meterhouse demo` prints
"""
