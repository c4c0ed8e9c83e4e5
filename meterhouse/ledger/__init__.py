"""The credit ledger: grants, consumption, balances, statements and budgets."""
