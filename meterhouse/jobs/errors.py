"""The one error type of the jobs package: a request that cannot be answered as asked."""

from __future__ import annotations

from meterhouse.errors import MeterhouseError


class JobsError(MeterhouseError):
    """Bad input to a jobs query (unknown kind, malformed time, missing filter); the
    message names what is wrong and what would work."""
