"""`meterhouse <args>` with faults injected into the spool's drainer, for tests only.

    python -m tests.support.faulty_run hold_drain=1,pause_before_checkpoint=30 run ...

The product has no setting for faults: this wrapper passes them to every ``Spool`` the
command builds (its ``faults`` parameter), then runs the real CLI in this process.
"""

from __future__ import annotations

import sys
from typing import Any

from exporters.spool.spool import Faults, Spool
from meterhouse.cli import cli

FAULT_NAMES = ("hold_drain", "pause_before_checkpoint")


def parse_faults(text: str) -> Faults:
    """``name=value`` pairs separated by commas; unknown names are refused."""
    values: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        values[name.strip()] = value.strip()
    unknown = set(values) - set(FAULT_NAMES)
    if unknown:
        raise SystemExit(f"unknown faults: {', '.join(sorted(unknown))}")
    return Faults(
        hold_drain=values.get("hold_drain", "0") not in ("", "0", "false"),
        pause_before_checkpoint=float(values.get("pause_before_checkpoint") or 0),
    )


def inject(faults: Faults) -> None:
    original = Spool.__init__

    def with_faults(self: Spool, *args: Any, **kwargs: Any) -> None:
        kwargs["faults"] = faults
        original(self, *args, **kwargs)

    Spool.__init__ = with_faults  # type: ignore[method-assign]


if __name__ == "__main__":
    inject(parse_faults(sys.argv[1]))
    cli(args=sys.argv[2:], prog_name="meterhouse")
