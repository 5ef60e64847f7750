#!/usr/bin/env bash
# scripts/test.sh is the test command of the project.
#
# On a fresh Debian machine it installs the real parts the tests use
# (PostgreSQL, a container engine, Chromium, Git), builds and caches the Gitea
# server the forge tests run on loopback, starts throwaway services, then runs
# gofmt, go vet, the whole test suite and a short fuzz pass. Everything it
# starts is stopped on exit, also on failure or interrupt. It is safe to re-run:
# a warm machine skips installation and the Gitea build.
#
# Environment:
#   SLIPWAY_CACHE_DIR   where the Gitea binary and docker data are cached
#                       (default: $HOME/.cache/slipway)
#   SLIPWAY_FUZZTIME    time per fuzz target (default: 10s; 0 skips fuzzing)
#   SLIPWAY_SKIP_SETUP  set to 1 to skip package installation
set -uo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root" || exit 1

cache_dir="${SLIPWAY_CACHE_DIR:-$HOME/.cache/slipway}"
fuzztime="${SLIPWAY_FUZZTIME:-10s}"
mkdir -p "$cache_dir"

run_dir="$(mktemp -d "${TMPDIR:-/tmp}/slipway-test.XXXXXX")"
chmod 0755 "$run_dir"

started_postgres=""
started_dockerd_pid=""
declare -a summary=()
failed=0

log() { printf '==> %s\n' "$*"; }
warn() { printf '!!! %s\n' "$*" >&2; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$started_postgres" ]; then
		log "stopping PostgreSQL"
		run_as_postgres "$pg_bin/pg_ctl" -D "$started_postgres" -m fast -w stop >/dev/null 2>&1 || true
	fi
	if [ -n "$started_dockerd_pid" ]; then
		log "stopping dockerd (pid $started_dockerd_pid)"
		as_root kill "$started_dockerd_pid" 2>/dev/null || true
		for _ in $(seq 1 30); do
			kill -0 "$started_dockerd_pid" 2>/dev/null || break
			sleep 1
		done
		as_root kill -9 "$started_dockerd_pid" 2>/dev/null || true
	fi
	rm -rf "$run_dir"
	exit "$rc"
}
trap cleanup EXIT
trap 'warn "interrupted"; exit 130' INT
trap 'warn "terminated"; exit 143' TERM

# record NAME STATUS SECONDS adds a line to the final summary.
record() {
	summary+=("$(printf '%-40s %-5s %5ss' "$1" "$2" "$3")")
	if [ "$2" != "ok" ] && [ "$2" != "skip" ]; then failed=1; fi
}

# step NAME CMD... runs one check, timing it and recording its outcome.
step() {
	local name="$1"
	shift
	log "$name"
	local start=$SECONDS
	if "$@"; then
		record "$name" ok $((SECONDS - start))
	else
		record "$name" FAIL $((SECONDS - start))
	fi
}

# ---------------------------------------------------------------- packages

ensure_packages() {
	local wanted=(postgresql docker.io chromium git git-lfs busybox-static ca-certificates iptables util-linux iproute2)
	local missing=()
	local p
	for p in "${wanted[@]}"; do
		dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	if [ "${#missing[@]}" -eq 0 ]; then
		log "system packages present"
		return 0
	fi
	log "installing: ${missing[*]}"
	as_root apt-get update -q &&
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# ------------------------------------------------------------------- Gitea

gitea_version() {
	(cd tools/gitea && go list -m -f '{{.Version}}' code.gitea.io/gitea)
}

# ensure_gitea builds the Gitea server once into the cache. A build started
# elsewhere (another run of this script) is waited for rather than repeated.
ensure_gitea() {
	local version bin
	version="$(gitea_version)" || return 1
	bin="$cache_dir/gitea-$version"
	exec 9>"$cache_dir/gitea-build.lock"
	if ! flock -w 900 9; then
		warn "timed out waiting for another Gitea build"
		return 1
	fi
	# A build started by hand into the same path: wait for it to finish.
	while pgrep -f "go build -tags sqlite.*-o $bin" >/dev/null 2>&1; do
		log "waiting for a running Gitea build into $bin"
		sleep 10
	done
	if [ ! -x "$bin" ] || ! "$bin" --version >/dev/null 2>&1; then
		log "building Gitea $version (takes a few minutes the first time)"
		local tmp="$bin.tmp.$$"
		if ! (cd tools/gitea && go build -tags 'sqlite sqlite_unlock_notify' -o "$tmp" code.gitea.io/gitea); then
			rm -f "$tmp"
			flock -u 9
			return 1
		fi
		mv -f "$tmp" "$bin"
	fi
	flock -u 9
	local static
	static="$(cd tools/gitea && go list -m -f '{{.Dir}}' code.gitea.io/gitea)" || return 1
	if [ ! -d "$static/templates" ]; then
		(cd tools/gitea && go mod download code.gitea.io/gitea) || return 1
	fi
	export SLIPWAY_GITEA_BIN="$bin"
	export SLIPWAY_GITEA_STATIC="$static"
	log "Gitea: $SLIPWAY_GITEA_BIN"
}

# ------------------------------------------------------------------ Pebble

# The ACME test server and its DNS server, built once into the cache from
# the Go module proxy at a pinned version.
pebble_version=v2.10.3

ensure_pebble() {
	local dir="$cache_dir/pebble-$pebble_version"
	if [ ! -x "$dir/pebble" ] || [ ! -x "$dir/pebble-challtestsrv" ]; then
		log "building Pebble $pebble_version"
		mkdir -p "$dir.tmp.$$" &&
			(cd / && GOBIN="$dir.tmp.$$" GOFLAGS=-mod=mod go install \
				"github.com/letsencrypt/pebble/v2/cmd/pebble@$pebble_version" \
				"github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@$pebble_version") || {
			rm -rf "$dir.tmp.$$"
			return 1
		}
		rm -rf "$dir" && mv "$dir.tmp.$$" "$dir"
	fi
	export SLIPWAY_PEBBLE_DIR="$dir"
	log "Pebble: $SLIPWAY_PEBBLE_DIR"
}

# -------------------------------------------------------------- PostgreSQL

pg_bin=/usr/lib/postgresql/15/bin

run_as_postgres() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start_postgres() {
	if [ ! -x "$pg_bin/initdb" ]; then
		pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
	fi
	if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
		warn "PostgreSQL binaries not found"
		return 1
	fi
	local dir="$run_dir/postgres"
	mkdir -p "$dir/data" "$dir/sock"
	if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$dir"; fi
	run_as_postgres "$pg_bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
		>"$dir/initdb.log" 2>&1 || {
		cat "$dir/initdb.log" >&2
		return 1
	}
	local attempt port
	for attempt in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 40000))
		port_in_use "$port" && continue
		if run_as_postgres "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
			-o "-c listen_addresses=127.0.0.1 -p $port -k $dir/sock -c max_connections=200 -c fsync=off" \
			start >/dev/null 2>&1; then
			started_postgres="$dir/data"
			export SLIPWAY_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
			log "PostgreSQL on 127.0.0.1:$port"
			return 0
		fi
		warn "PostgreSQL did not start on port $port (attempt $attempt)"
	done
	tail -n 20 "$dir/server.log" >&2 2>/dev/null
	return 1
}

# ------------------------------------------------------------------ Docker

start_docker() {
	if docker info >/dev/null 2>&1; then
		log "using the running Docker daemon"
		return 0
	fi
	if ! command -v dockerd >/dev/null 2>&1; then
		warn "dockerd not installed"
		return 1
	fi
	local exec_root=/run/slipway-dockerd
	local data_root="$cache_dir/docker"
	as_root mkdir -p "$exec_root" "$data_root"
	log "starting dockerd (data root $data_root)"
	as_root dockerd \
		--host unix:///var/run/docker.sock \
		--data-root "$data_root" \
		--exec-root "$exec_root" \
		--pidfile "$exec_root/docker.pid" \
		>"$run_dir/dockerd.log" 2>&1 &
	started_dockerd_pid=$!
	local _
	for _ in $(seq 1 60); do
		if docker info >/dev/null 2>&1; then
			return 0
		fi
		if ! kill -0 "$started_dockerd_pid" 2>/dev/null; then
			break
		fi
		sleep 1
	done
	warn "dockerd did not come up; its last log lines:"
	tail -n 20 "$run_dir/dockerd.log" >&2
	as_root kill "$started_dockerd_pid" 2>/dev/null || true
	started_dockerd_pid=""
	return 1
}

# ensure_base_image imports slipway/busybox:test, a tiny root filesystem made
# of Debian's static busybox: no image registry is reachable from here.
ensure_base_image() {
	local image=slipway/busybox:test
	if docker image inspect "$image" >/dev/null 2>&1; then
		return 0
	fi
	# busybox-static installs a statically linked /bin/busybox.
	local busybox=/bin/busybox
	local rootfs="$run_dir/busybox-rootfs"
	mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/www"
	chmod 1777 "$rootfs/tmp"
	cp "$busybox" "$rootfs/bin/busybox"
	local applet
	for applet in $("$busybox" --list); do
		[ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
	log "importing $image"
	tar -C "$rootfs" -c . | docker import \
		--change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' - "$image" >/dev/null
}

setup_docker() {
	if start_docker && ensure_base_image; then
		export SLIPWAY_TEST_DOCKER=1
		return 0
	fi
	warn "continuing without Docker: the container tests will skip"
	return 1
}

# ------------------------------------------------------------------ checks

check_gofmt() {
	local out
	out="$(gofmt -l . 2>&1)"
	if [ -n "$out" ]; then
		warn "gofmt would change:"
		printf '%s\n' "$out" >&2
		return 1
	fi
}

run_fuzz() {
	if [ "$fuzztime" = "0" ]; then
		record "fuzz" skip 0
		return 0
	fi
	local file dir name
	while IFS= read -r file; do
		dir="./$(dirname "$file")"
		for name in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
			step "fuzz $dir $name" go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$dir"
		done
	done < <(grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' . | grep -v '^\./tools/' | sed 's|^\./||' | sort)
}

# -------------------------------------------------------------------- main

total_start=$SECONDS

if [ "${SLIPWAY_SKIP_SETUP:-}" != "1" ]; then
	step "install system packages" ensure_packages
fi
step "build or reuse Gitea" ensure_gitea
step "build or reuse Pebble" ensure_pebble
step "start PostgreSQL" start_postgres
if setup_docker; then
	record "start Docker" ok 0
else
	record "start Docker" skip 0
fi
if [ -x /usr/bin/chromium ]; then
	export SLIPWAY_CHROMIUM=/usr/bin/chromium
fi

step "gofmt" check_gofmt
step "go vet" go vet ./...
step "go test" go test -p 2 -count=1 -timeout 30m ./...
# The end-to-end suite once more with the control plane on PostgreSQL (River
# on its database/sql driver), when the test PostgreSQL is up.
if [ -n "${SLIPWAY_TEST_POSTGRES_URL:-}" ]; then
	step "e2e on PostgreSQL" env SLIPWAY_E2E_POSTGRES=1 go test -count=1 -timeout 20m ./e2e
fi
run_fuzz

echo
echo "================================ summary ================================"
printf '%s\n' "${summary[@]}"
printf 'Gitea:      %s\n' "${SLIPWAY_GITEA_BIN:-not available}"
printf 'Pebble:     %s\n' "${SLIPWAY_PEBBLE_DIR:-not available}"
printf 'PostgreSQL: %s\n' "${SLIPWAY_TEST_POSTGRES_URL:-not available}"
printf 'Docker:     %s\n' "$([ -n "${SLIPWAY_TEST_DOCKER:-}" ] && echo available || echo 'not available (tests skip)')"
printf 'Chromium:   %s\n' "${SLIPWAY_CHROMIUM:-not available}"
printf 'total time: %ss\n' "$((SECONDS - total_start))"
if [ "$failed" -ne 0 ]; then
	echo "RESULT: FAIL"
	exit 1
fi
echo "RESULT: ok"
