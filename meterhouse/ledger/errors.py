"""The ledger's own error: what was asked, and what to do instead."""

from __future__ import annotations

from meterhouse.errors import MeterhouseError


class LedgerError(MeterhouseError):
    """A ledger request names something that does not exist or is not allowed."""


class LedgerNotFoundError(LedgerError):
    """The account, team, project or budget named does not exist."""
