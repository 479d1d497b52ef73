#!/usr/bin/env bash
# Runs CMD with a throwaway PostgreSQL 15 server: initdb in a new temporary directory, the
# server on 127.0.0.1 (a random free port) with trust authentication, a database `engram`, and
# ENGRAM_TEST_PG=postgresql://engram@127.0.0.1:PORT/engram exported for CMD. Whatever CMD does,
# the server is stopped and the directory removed afterwards; every wait is bounded. The exit
# code is CMD's (or 1 if the server could not be started).
#
#   scripts/with_postgres.sh build/engram_tests --gtest_filter='*Postgres*'
#
# initdb refuses to run as root, so as root the server runs as the `postgres` user (made by
# Debian's postgresql-15 package) through runuser. Durability is off (fsync, synchronous
# commit): the server only lives for one test run, and a client killed mid-transaction (the
# crash tests) is rolled back by the server either way.
set -euo pipefail

bin=/usr/lib/postgresql/15/bin
if [ $# -lt 1 ]; then
  echo "usage: $0 CMD [ARGS...]" >&2
  exit 2
fi
if [ ! -x "$bin/initdb" ]; then
  echo "with_postgres: $bin/initdb not found (Debian package postgresql-15; scripts/setup.sh installs it)" >&2
  exit 1
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/engram-pg.XXXXXX")
as_server=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || { echo "with_postgres: no user 'postgres' to run the server as" >&2; rm -rf "$dir"; exit 1; }
  chown postgres: "$dir"
  as_server=(runuser -u postgres --)
fi

stop_server() {
  if [ -f "$dir/data/postmaster.pid" ]; then
    timeout 30 "${as_server[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -t 20 stop \
      >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! timeout 120 "${as_server[@]}" "$bin/initdb" -D "$dir/data" -U engram -A trust -E UTF8 \
  --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1; then
  echo "with_postgres: initdb failed:" >&2
  cat "$dir/initdb.log" >&2
  exit 1
fi

# A random port; if it is taken the server fails to start and another is tried.
started=0
for attempt in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 40000))
  if timeout 60 "${as_server[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null 2>&1; then
    started=1
    break
  fi
done
if [ "$started" -ne 1 ]; then
  echo "with_postgres: the server did not start; its log:" >&2
  cat "$dir/server.log" >&2 || true
  exit 1
fi
if ! timeout 30 "$bin/createdb" -h 127.0.0.1 -p "$port" -U engram engram; then
  echo "with_postgres: createdb failed" >&2
  exit 1
fi

export ENGRAM_TEST_PG="postgresql://engram@127.0.0.1:$port/engram"
rc=0
"$@" || rc=$?
exit "$rc"
