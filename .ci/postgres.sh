#!/usr/bin/env bash
# Start a throw-away PostgreSQL cluster on 127.0.0.1 for the test run (sourced by .ci/run).
# Installs PostgreSQL from Debian's packages when it is absent. Exports STROP_TEST_POSTGRES_URL
# (a role that may create databases: each test gets its own) and stops the cluster on exit.
set -euo pipefail

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
pg_data=$(mktemp -d /tmp/strop-ci-pg.XXXXXX)
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
run_as=()
if [ "$(id -u)" = 0 ]; then  # PostgreSQL refuses to run as root
    chown postgres "$pg_data"
    run_as=(runuser -u postgres --)
fi
"${run_as[@]}" "$pg_bin/initdb" -D "$pg_data" -A trust -U postgres >/dev/null
"${run_as[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_data/server.log" -w \
    -o "-h 127.0.0.1 -p $pg_port -k $pg_data -c fsync=off -c max_connections=200" start >/dev/null
"${run_as[@]}" "$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -q \
    -c "CREATE ROLE strop LOGIN CREATEDB PASSWORD 'strop'" >/dev/null
trap '"${run_as[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -m immediate stop >/dev/null 2>&1; rm -rf "$pg_data"' EXIT
export STROP_TEST_POSTGRES_URL="postgresql+psycopg://strop:strop@127.0.0.1:$pg_port/postgres"
echo "PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$pg_port for the tests"
