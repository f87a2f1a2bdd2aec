# arbitrex serve paper trading on the simulator (ops/compose.yaml builds and runs it).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY brokers ./brokers
COPY sim ./sim
COPY scenarios ./scenarios
# The postgres extra: compose keeps the audit trail in PostgreSQL.
RUN pip install ".[postgres]" && rm -rf /src

# A user of its own: the server never needs root. /data and /run/arbitrex exist owned by it
# so that the named volumes compose mounts there start writable by it.
RUN useradd --system --uid 10001 --home-dir /data arbitrex \
    && mkdir -p /data /run/arbitrex && chown arbitrex:arbitrex /data /run/arbitrex
USER arbitrex
WORKDIR /data

EXPOSE 8000
CMD ["arbitrex", "serve", "--broker", "sim", "--host", "0.0.0.0"]
