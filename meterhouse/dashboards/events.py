"""4 Events: the logs of job runs, with their errors, searchable as free text."""

from __future__ import annotations

from meterhouse.dashboards import links, variables
from meterhouse.dashboards.grafana import Board
from meterhouse.dashboards.spec import Kind, columns
from meterhouse.dashboards.sql import TENANT_FILTER

UID = links.EVENTS

# The expression of job_logs' n-gram index idx_search (clickhouse/schema/0030), character
# for character, so that a search can skip granules. % and _ in the text are wildcards.
SEARCH_EXPRESSION = r"lower(concat(message, '\n', error_type, '\n', error_message))"
SEARCH_PATTERN = "concat('%', lower(${search:singlequote}), '%')"

# Empty text boxes and "All" make the plugin replace each call by 1=1.
LOG_FILTER = (
    f"{TENANT_FILTER}"
    " AND $__conditionalAll(kind IN (${job_kind:singlequote}), $job_kind)"
    " AND $__conditionalAll(level IN (${level:singlequote}), $level)"
    " AND $__conditionalAll(run_id = ${run:singlequote}, $run)"
    f" AND $__conditionalAll({SEARCH_EXPRESSION} LIKE {SEARCH_PATTERN}, $search)"
    " AND $__timeFilter(log_time)"
)

VOLUME_SQL = f"""SELECT
    $__timeInterval(log_time) AS time,
    level,
    count() AS lines
FROM job_logs
WHERE {LOG_FILTER}
GROUP BY time, level
ORDER BY time, level
"""

ERRORS_SQL = f"""SELECT
    error_type,
    kind,
    count() AS occurrences,
    uniqExact(run_id) AS runs,
    max(log_time) AS last_seen,
    argMax(error_message, log_time) AS latest_message
FROM job_logs
WHERE {LOG_FILTER} AND error_type != ''
GROUP BY error_type, kind
ORDER BY occurrences DESC, error_type
"""

LOGS_SQL = f"""SELECT
    log_time,
    level,
    kind,
    job_id,
    run_id,
    message,
    error_type,
    error_message,
    stack_trace
FROM job_logs
WHERE {LOG_FILTER}
ORDER BY log_time DESC
LIMIT 500
"""


def build() -> Board:
    board = Board(
        UID,
        "meterhouse / 4 Events",
        "Logs of every job run with their error messages. Type in Search to find text in "
        "messages and errors; Run shows one run (the Jobs dashboard links here).",
        file_name="04-events.json",
    )
    variables.tenant(board, time_zone=False)
    variables.pick_list(board, "job_kind", "Job kind", variables.JOB_KINDS)
    variables.pick_list(board, "level", "Level", variables.LOG_LEVELS)
    variables.text_box(
        board,
        "search",
        "Search",
        "Case-insensitive text to find in log messages and error messages; empty: all.",
    )
    variables.text_box(board, "run", "Run", "One run id; empty: all runs.")
    board.timeseries(
        "Log lines by level",
        VOLUME_SQL,
        cols=columns(time=Kind.TIME, level=Kind.STRING, lines=Kind.NUMBER),
        description="How many log lines match, per interval and level.",
        unit="short",
        bars=True,
        stacked=True,
        series_label="level",
    )
    board.table(
        "Errors by type",
        ERRORS_SQL,
        cols=columns(
            error_type=Kind.STRING,
            kind=Kind.STRING,
            occurrences=Kind.NUMBER,
            runs=Kind.NUMBER,
            last_seen=Kind.TIME,
            latest_message=Kind.STRING,
        ),
        description="Error types in the matching logs, most frequent first, with the latest "
        "message of each. The panel link opens the Jobs dashboard on the same selection.",
        w=12,
        h=8,
        links=[links.to_board("Jobs", links.JOBS, (*links.TENANT, "job_kind"))],
    )
    board.table(
        "Job logs",
        LOGS_SQL,
        cols=columns(
            log_time=Kind.TIME,
            level=Kind.STRING,
            kind=Kind.STRING,
            job_id=Kind.STRING,
            run_id=Kind.STRING,
            message=Kind.STRING,
            error_type=Kind.STRING,
            error_message=Kind.STRING,
            stack_trace=Kind.STRING,
        ),
        description="The latest 500 matching log lines, newest first. Inspect a cell to "
        "read a whole stack trace.",
        widths={"log_time": 180, "level": 80, "message": 420},
        h=16,
        links=[links.to_board("Jobs", links.JOBS, (*links.TENANT, "job_kind"))],
    )
    return board
