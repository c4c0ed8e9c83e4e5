"""Meters: OpenMeter-style aggregation of free-form events (docs/events.md)."""
