#!/usr/bin/env bash
# The test command: `make test` runs this. It makes sure every real service
# the tests need is reachable, then runs go vet and go test across every
# package, integration tests included.
#
#   TEST_DATABASE_URL   PostgreSQL the tests create throwaway databases in
#                       (default postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)
#   TEST_RACE=0         skip the race detector (default: on)
#   TEST_SHORT=1        unit tests only (go test -short): no PostgreSQL needed
#   TEST_TIMEOUT        go test -timeout (default 20m)
#
# Where PostgreSQL is installed but not running, a throwaway cluster is
# started for the run (as the postgres user when run as root) and removed at
# the end. Where it is not installed, the script says how to get it.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'test: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "Go is not installed: see https://go.dev/doc/install (Go 1.26 or newer)"

: "${TEST_DATABASE_URL:=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}"
export TEST_DATABASE_URL

# host and port of a postgres:// URL (no user-info parsing beyond '@').
pg_hostport() {
	local rest=${1#*://}
	rest=${rest#*@}
	rest=${rest%%/*}
	rest=${rest%%\?*}
	local host=${rest%%:*} port=5432
	[[ $rest == *:* ]] && port=${rest##*:}
	echo "$host" "$port"
}

reachable() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

cleanup_cmds=()
cleanup() {
	local i
	set +e
	for ((i = ${#cleanup_cmds[@]} - 1; i >= 0; i--)); do eval "${cleanup_cmds[i]}"; done
}
trap cleanup EXIT

find_pg_bin() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) /usr/local/pgsql/bin /opt/homebrew/bin /usr/local/bin /usr/bin; do
		if [[ -x $d/initdb && -x $d/pg_ctl ]]; then echo "$d"; return 0; fi
	done
	return 1
}

PG_RUN_AS=""
as_pg() { if [[ -n $PG_RUN_AS ]]; then runuser -u "$PG_RUN_AS" -- "$@"; else "$@"; fi; }

start_throwaway_pg() {
	local bin dir port
	bin=$(find_pg_bin) || die "PostgreSQL is not reachable at $TEST_DATABASE_URL and no PostgreSQL server is installed.
  Debian/Ubuntu: sudo apt-get install postgresql
  macOS:         brew install postgresql@15
  or point TEST_DATABASE_URL at a server (trust or password auth, a user that may CREATE DATABASE)."
	port=$(( 20000 + RANDOM % 20000 ))
	dir=$(mktemp -d /tmp/nurture-pg.XXXXXX)
	if [[ $(id -u) == 0 ]]; then
		PG_RUN_AS=postgres
		id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user to run a throwaway cluster as"
		chown postgres "$dir"
	fi
	log "PostgreSQL is not running: starting a throwaway cluster on port $port ($bin)"
	as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
	as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null \
		|| { cat "$dir/server.log" >&2; die "could not start the throwaway PostgreSQL"; }
	cleanup_cmds+=("as_pg '$bin/pg_ctl' -D '$dir/data' -m immediate -w stop >/dev/null 2>&1 || true; rm -rf '$dir'")
	TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
	export TEST_DATABASE_URL
}

ensure_chromium() {
	command -v chromium >/dev/null && return 0
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		log "installing chromium and chromium-driver (page tests need a headless browser)"
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/tmp/nurture-apt.log 2>&1 \
			|| { tail -20 /tmp/nurture-apt.log >&2; die "could not install chromium"; }
		return 0
	fi
	die "headless Chromium is needed for the page tests: install the 'chromium' package (Debian/Ubuntu: sudo apt-get install chromium chromium-driver)"
}

short=()
if [[ ${TEST_SHORT:-0} == 1 ]]; then
	short=(-short)
	log "short mode: unit tests only"
else
	read -r pg_host pg_port < <(pg_hostport "$TEST_DATABASE_URL")
	if reachable "$pg_host" "$pg_port"; then
		log "PostgreSQL reachable at $pg_host:$pg_port"
	else
		start_throwaway_pg
	fi
	ensure_chromium
fi

race=(-race)
[[ ${TEST_RACE:-1} == 0 ]] && race=()

log "go vet ./..."
go vet ./...

log "go test ${race[*]} ${short[*]} ./..."
logf=$(mktemp /tmp/nurture-test.XXXXXX)
cleanup_cmds+=("rm -f '$logf'")
set +e +o pipefail
go test "${race[@]}" "${short[@]}" -timeout "${TEST_TIMEOUT:-20m}" ./... 2>&1 | tee "$logf" | grep -Ev '^(=== (RUN|PAUSE|CONT|NAME)|\s*--- PASS)'
status=${PIPESTATUS[0]}
set -e -o pipefail
pass=$(grep -c "^ok " "$logf" || true)
fail=$(grep -Ec "^(FAIL|--- FAIL)" "$logf" || true)
echo "packages: $pass passed, $fail failed"
exit "$status"
