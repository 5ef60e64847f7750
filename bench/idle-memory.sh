#!/usr/bin/env bash
# bench/idle-memory.sh measures the resident memory of an idle
# `slipway serve` (embedded SQLite, job queue, reconciler, router) next to
# a baseline measured in the same run: the smallest Go HTTP server.
# Usage: bench/idle-memory.sh [seconds-idle]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
idle="${1:-20}"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

go build -o "$work/slipway" ./cmd/slipway
cat >"$work/hello.go" <<'GO'
package main

import "net/http"

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	http.ListenAndServe("127.0.0.1:18089", nil)
}
GO
(cd "$work" && go mod init hello >/dev/null 2>&1 && go build -o hello hello.go)

"$work/slipway" serve --data "$work/data" --workspaces "$work/ws" --addr 127.0.0.1:18088 >"$work/serve.log" 2>&1 &
slipway_pid=$!
"$work/hello" &
hello_pid=$!
sleep "$idle"
curl -fs http://127.0.0.1:18088/readyz >/dev/null
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
printf 'idle after %ss\n' "$idle"
printf '%-28s %8s KiB\n' "slipway serve (SQLite)" "$(rss $slipway_pid)"
printf '%-28s %8s KiB\n' "baseline: minimal Go server" "$(rss $hello_pid)"
