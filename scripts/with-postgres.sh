#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL 15 on a free loopback port.
#
# The server lives in a temporary directory owned by an unprivileged user (PostgreSQL refuses to
# run as root) and is stopped, and its directory removed, when the command exits, even on failure.
# The command sees TEST_POSTGRES_URL (a postgresql+psycopg:// URL of an empty database).
# Without initdb/pg_ctl it runs the command anyway with the variable unset, so the PostgreSQL-marked
# tests skip with a message instead of the whole suite failing on a machine without PostgreSQL.
set -euo pipefail

pg_bin=""
for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
  if [ -x "$d/pg_ctl" ]; then pg_bin="$d"; break; fi
done
if [ -z "$pg_bin" ] && command -v pg_ctl >/dev/null; then pg_bin="$(dirname "$(readlink -f "$(command -v pg_ctl)")")"; fi
if [ -z "$pg_bin" ]; then
  echo "with-postgres: no pg_ctl found; PostgreSQL tests will be skipped" >&2
  exec "$@"
fi

run_as=()
if [ "$(id -u)" = "0" ]; then
  user="${PG_TEST_USER:-postgres}"
  id "$user" >/dev/null 2>&1 || useradd --system --no-create-home "$user"
  run_as=(runuser -u "$user" --)
fi

dir="$(mktemp -d /tmp/aitbc-pg.XXXXXX)"
chmod 755 "$dir"
[ "${#run_as[@]}" -gt 0 ] && chown "${user}" "$dir"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"

cleanup() {
  "${run_as[@]}" "$pg_bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

"${run_as[@]}" "$pg_bin/initdb" -D "$dir/data" -U aitbc --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }
"${run_as[@]}" "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 -c fsync=off" start >/dev/null \
  || { cat "$dir/server.log" >&2; exit 1; }
"${run_as[@]}" "$pg_bin/createdb" -h 127.0.0.1 -p "$port" -U aitbc aitbc_test

export TEST_POSTGRES_URL="postgresql+psycopg://aitbc@127.0.0.1:${port}/aitbc_test"
echo "with-postgres: PostgreSQL on 127.0.0.1:${port}" >&2
set +e
"$@"
rc=$?
exit $rc
