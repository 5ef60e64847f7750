package build

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/clone"
	"slipway.dev/slipway/internal/sandbox"
	"slipway.dev/slipway/internal/testenv/proctest"
)

// showLimits makes the build print the limits of the cgroup it runs in,
// read from inside, so a test proves the limit applies to the build
// itself before it attacks it (v1 and v2 paths both).
const showLimits = `awk -F: '$2 ~ /(^|,)memory(,|$)/ {print "/sys/fs/cgroup/memory" $3 "/memory.limit_in_bytes"} $2 ~ /(^|,)pids(,|$)/ {print "/sys/fs/cgroup/pids" $3 "/pids.max"} $2 == "" {print "/sys/fs/cgroup" $3 "/memory.max"; print "/sys/fs/cgroup" $3 "/pids.max"}' /proc/self/cgroup |
while read f; do [ -r "$f" ] && echo "LIMIT $(basename "$f")=$(cat "$f")"; done
`

// limitedBuilder is a Builder with small cgroup limits on a workspace root
// outside /tmp; it fails (not skips) as root on a host without cgroups.
func limitedBuilder(t *testing.T) (*Builder, *sandbox.Manager) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("cgroups need root")
	}
	base, err := os.MkdirTemp("/var/tmp", "slipway-build-test-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(base, 0o711)
	t.Cleanup(func() { os.RemoveAll(base) })
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	sb, err := sandbox.New(logger, sandbox.Options{Root: filepath.Join(base, "ws")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Cgroups().Close)
	if len(sb.Cgroups().Controllers()) == 0 {
		t.Fatal("no usable cgroup controller on this host: the limits under test are not in place")
	}
	l := sandbox.BuildLimits()
	l.MemoryMB, l.Pids = 64, 40
	b, err := New(logger, sb, Options{SelfPath: "/usr/local/bin/slipway", Limits: l})
	if err != nil {
		t.Fatal(err)
	}
	return b, sb
}

func buildScript(t *testing.T, b *Builder, svc, script string) (string, error) {
	t.Helper()
	url, sha := repoWith(t, map[string]string{"Procfile": "web: true\n"})
	var logs bytes.Buffer
	_, err := b.Build(context.Background(), Request{ServiceID: svc, DeploymentID: "dep_" + svc, Source: clone.Options{Network: localSources, URL: url, SHA: sha},
		Settings: slipway.BuildSettings{BuildCommand: script}}, &logs)
	return logs.String(), err
}

func TestBuildPastMemoryLimitIsOutOfMemory(t *testing.T) {
	b, _ := limitedBuilder(t)
	// A string that doubles until it reaches 1 GiB.
	logs, err := buildScript(t, b, "svc_oombuild000001", showLimits+`exec awk 'BEGIN { s = "x"; while (length(s) < 1073741824) s = s s }'`)
	if !strings.Contains(logs, "LIMIT memory.limit_in_bytes=67108864") && !strings.Contains(logs, "LIMIT memory.max=67108864") {
		t.Fatalf("the build does not run under a 64 MiB memory limit:\n%s", logs)
	}
	if err == nil || slipway.ErrorCodeOf(err) != slipway.ECodeOutOfMemory || !strings.HasPrefix(slipway.ErrorMessageOf(err), "out of memory") {
		t.Fatalf("err = %v (code %s), want out of memory\n%s", err, slipway.ErrorCodeOf(err), logs)
	}
}

func TestBuildForkBombHitsPidsLimitAndSetsidDies(t *testing.T) {
	b, _ := limitedBuilder(t)
	// A bounded fork bomb: far more processes than the limit, each
	// detached. The shell dies when fork fails; the detached ones remain
	// until the build's end kills its group.
	script := showLimits + `i=0; while [ $i -lt 200 ]; do setsid sleep 907 2>/dev/null & i=$((i+1)); done; echo FORKED`
	logs, err := buildScript(t, b, "svc_forkbomb000001", script)
	if !strings.Contains(logs, "LIMIT pids.max=40") {
		t.Fatalf("the build does not run under a pids limit of 40:\n%s", logs)
	}
	if err == nil || strings.Contains(logs, "\nFORKED\n") {
		t.Errorf("200 processes fit under a limit of 40: err %v\n%s", err, logs)
	}
	if !strings.Contains(logs, "reached its limit of 40 processes") {
		t.Errorf("the pids limit was not hit or not reported:\n%s", logs)
	}
	if pids := proctest.Running("sleep907"); len(pids) > 0 {
		t.Fatalf("%d detached processes of the build outlived it: %v", len(pids), pids)
	}
}

func TestBuildSetsidChildDiesWithBuild(t *testing.T) {
	b, _ := limitedBuilder(t)
	logs, err := buildScript(t, b, "svc_setsid00000001", showLimits+"setsid sleep 901 & echo DETACHED")
	if !strings.Contains(logs, "LIMIT pids.max=40") || !strings.Contains(logs, "DETACHED") {
		t.Fatalf("build not limited or did not run:\n%s", logs)
	}
	if err != nil {
		t.Fatalf("Build: %v\n%s", err, logs)
	}
	if pids := proctest.Running("sleep901"); len(pids) > 0 {
		t.Fatalf("setsid sleep outlived the build: %v", pids)
	}
}

// TestCacheRecordTrustsOnlySealedBuilds: a record is only a cache hit
// when it points at a root-owned directory, so a directory the Service
// controls (its workspace, or a symlink planted there) is never reused
// as a finished build.
func TestCacheRecordTrustsOnlySealedBuilds(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ownership needs root")
	}
	b, sb := newBuilder(t)
	ws, u, err := sb.Workspace(context.Background(), "svc_cacherec000001")
	if err != nil {
		t.Fatal(err)
	}
	tenantDir := filepath.Join(ws, "builds-fake")
	os.Mkdir(tenantDir, 0o755)
	os.Lchown(tenantDir, int(u.UID), int(u.GID))
	link := filepath.Join(ws, "link")
	os.Symlink(t.TempDir(), link)
	for _, dir := range []string{tenantDir, link} {
		record := filepath.Join(b.stateDir, "forged.json")
		if err := b.save(record, Result{Dir: dir, StartCommand: "exec ./evil"}); err != nil {
			t.Fatal(err)
		}
		if _, ok := b.cached(record); ok {
			t.Errorf("a record pointing at %s was trusted", dir)
		}
	}
}
