"""Alert notifications: per-account channels, message rendering, signed delivery, the log.

Alertmanager decides what to send and when (grouping, repeats, silences, inhibition);
meterhouse's receiver endpoint turns each Alertmanager notification into deliveries to the
channels of the account it names (operators' channels for alerts that name none), and
keeps every attempt in the ``notifications`` table. See docs/alerts.md.
"""
