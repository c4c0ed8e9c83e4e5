"""The one error type of the notify package."""

from __future__ import annotations

from meterhouse.errors import MeterhouseError


class NotifyError(MeterhouseError):
    """A channel, a secret, a payload or a setting of notifications is not usable."""
