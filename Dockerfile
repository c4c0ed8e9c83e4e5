# meterhouse service image: `docker build -t meterhouse .`
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Only what the package build needs (README.md is optional at this point of the project,
# hence the glob). Copy the project folders one by one so a local .venv never ends up
# in the image.
COPY pyproject.toml README.md* ./
COPY meterhouse ./meterhouse
COPY collectors ./collectors
COPY exporters ./exporters
COPY billing_sync ./billing_sync
COPY clickhouse ./clickhouse
RUN pip install .

RUN useradd --create-home --uid 10001 meterhouse \
    && mkdir -p /var/lib/meterhouse/spool && chown -R meterhouse /var/lib/meterhouse \
    && mkdir -p /etc/alertmanager-rendered && chown 65534:65534 /etc/alertmanager-rendered
# (the compose file's alertmanager-config step writes there as Alertmanager's user, nobody)
USER meterhouse

EXPOSE 8080

HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=5 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]

CMD ["meterhouse", "run", "--host", "0.0.0.0", "--port", "8080"]
