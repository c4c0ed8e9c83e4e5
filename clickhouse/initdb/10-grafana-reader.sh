#!/bin/bash
# The read-only ClickHouse user Grafana's data source queries as (docker-compose.yml).
# The clickhouse image runs this once, on a fresh volume, after creating CLICKHOUSE_DB.
# Its settings profile pins the limits (constraints no query can lift), like the tenants'
# profile `mh/tenant` that `meterhouse users sync-clickhouse` renders (docs/access.md);
# it has no row policy: the operators' dashboards see every account.
set -euo pipefail
clickhouse client --user "$CLICKHOUSE_USER" --password "$CLICKHOUSE_PASSWORD" --multiquery <<SQL
CREATE SETTINGS PROFILE IF NOT EXISTS grafana_reader SETTINGS
    readonly = 1 CONST, allow_ddl = 0 CONST, allow_introspection_functions = 0 CONST,
    max_execution_time = 60 MAX 60 CHANGEABLE_IN_READONLY,
    max_result_rows = 1000000 CONST, result_overflow_mode = 'throw' CONST;
CREATE USER IF NOT EXISTS grafana
    IDENTIFIED WITH sha256_password BY '${GRAFANA_CLICKHOUSE_PASSWORD}'
    SETTINGS PROFILE grafana_reader;
GRANT SELECT ON ${CLICKHOUSE_DB}.* TO grafana;
REVOKE SELECT ON ${CLICKHOUSE_DB}.api_keys FROM grafana;
SQL
