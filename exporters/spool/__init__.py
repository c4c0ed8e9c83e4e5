"""The ingest spool: acknowledged means kept (docs/durability.md)."""

from exporters.spool.log import Position, SegmentLog, SpoolError, SpoolFullError
from exporters.spool.spool import Faults, Spool

__all__ = ["Faults", "Position", "SegmentLog", "Spool", "SpoolError", "SpoolFullError"]
