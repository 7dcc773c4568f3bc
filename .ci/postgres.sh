#!/usr/bin/env bash
# Starts a throw-away PostgreSQL server on 127.0.0.1 for the state-store tests, installing it
# from Debian's packages when missing, and prints the connection string.
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  else
    sudo apt-get update -qq >&2 && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  fi
fi
bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
port=${WORKBRIDGE_PG_PORT:-$((50000 + RANDOM % 10000))}
data=$(mktemp -d /tmp/workbridge-pg.XXXXXX)
run() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown -R postgres "$data"
    su postgres -s /bin/bash -c "$*"
  else
    bash -c "$*"
  fi
}
run "'$bin/initdb' -D '$data' -A trust -U workbridge" >/dev/null
run "'$bin/pg_ctl' -D '$data' -l '$data/log' -w -o \"-p $port -k /tmp -c listen_addresses=127.0.0.1\" start" >/dev/null
echo "host=127.0.0.1 port=$port user=workbridge dbname=postgres"
