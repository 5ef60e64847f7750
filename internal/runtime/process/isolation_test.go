package process

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"slipway.dev/slipway/internal/runtime"
	"slipway.dev/slipway/internal/sandbox"
	"slipway.dev/slipway/internal/testenv/proctest"
)

func requireGroup(t *testing.T, rt *Runtime, id string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	p, err := rt.get(id)
	if err != nil {
		t.Fatal(err)
	}
	if l := p.group.Limits(); l.Pids <= 0 || l.MemoryBytes <= 0 {
		t.Fatalf("the release runs without its cgroup limits (%+v): the test would prove nothing", l)
	}
}

// TestReleaseDetachedChildGoneAfterStop: a setsid child of the app leaves
// the process group, so only the release's cgroup can take it down.
func TestReleaseDetachedChildGoneAfterStop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("cgroups need root")
	}
	rt, rel := newRelease(t, "svc_procsetsid00001")
	ctx := context.Background()
	rel.Command = "setsid sleep 911 & exec ./app"
	if _, err := rt.Start(ctx, rel, io.Discard); err != nil {
		t.Fatal(err)
	}
	requireGroup(t, rt, rel.DeploymentID)
	deadline := time.Now().Add(3 * time.Second)
	for len(proctest.Running("sleep911")) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if len(proctest.Running("sleep911")) == 0 {
		t.Fatal("the detached child never started")
	}
	if err := rt.Stop(ctx, rel.DeploymentID); err != nil {
		t.Fatal(err)
	}
	if pids := proctest.Running("sleep911"); len(pids) > 0 {
		t.Fatalf("setsid child outlived its release: %v", pids)
	}
}

// TestPortTakenByAnotherUserGetsNoTraffic: between allocation and health
// check another Service's process binds the release's port and answers
// the health check. The release must not become healthy.
func TestPortTakenByAnotherUserGetsNoTraffic(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs two users")
	}
	rt, rel := newRelease(t, "svc_procport0000001")
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	rt.opts.PickPort = func() (int, error) { return port, nil }
	rt.opts.HealthTimeout = 3 * time.Second

	// The thief: the same app binary, as another Service's user.
	thiefWS, thief, err := rt.sb.Workspace(context.Background(), "svc_procthief000001")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(rel.Dir, "app"))
	os.WriteFile(filepath.Join(thiefWS, "app"), raw, 0o755)
	os.Lchown(filepath.Join(thiefWS, "app"), int(thief.UID), int(thief.GID))
	cmd := rt.sb.Command(sandbox.Spec{User: thief, Home: thiefWS, Dir: thiefWS, Script: "exec ./app",
		Env: map[string]string{"PORT": strconv.Itoa(port), "COMMIT": "stolen"}, Setpgid: true})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if code, body, err := get(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/"); err == nil && code == 200 && body == "stolen" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the thief never listened")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The release itself never binds (as if it lost the race).
	rel.Command = "exec sleep 60"
	_, err = rt.Start(context.Background(), rel, io.Discard)
	var he *runtime.HealthCheckError
	if !errors.As(err, &he) || !strings.Contains(he.Reason, "held by another user") {
		t.Fatalf("Start = %v, want a health check refusing the thief's listener", err)
	}
}

func TestListenerUIDs(t *testing.T) {
	const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000   992        0 1 1 0 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000   0        0 2 1 0 20 4 30 10 -1
   2: 00000000:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000   0        0 3 1 0 100 0 0 10 0
   3: garbage
`
	if got := listenerUIDs(strings.NewReader(tcp), 8080); len(got) != 1 || got[0] != 992 {
		t.Errorf("port 8080: %v", got)
	}
	if got := listenerUIDs(strings.NewReader(tcp), 8081); len(got) != 1 || got[0] != 0 {
		t.Errorf("port 8081: %v", got)
	}
}

func FuzzListenerUIDs(f *testing.F) {
	f.Add("   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000   992        0 1\n", 8080)
	f.Add("0: :::: 0A a b c d e\n", 0)
	f.Fuzz(func(t *testing.T, s string, port int) {
		listenerUIDs(strings.NewReader(s), port)
	})
}

func TestReleasePastMemoryLimitSaysOutOfMemory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("cgroups need root")
	}
	rt, rel := newRelease(t, "svc_procoom00000001")
	rt.opts.Limits.MemoryMB = 64
	if rt.sb.Cgroups() == nil || len(rt.sb.Cgroups().Controllers()) == 0 {
		t.Fatal("no usable cgroup controller: the memory limit under test is not in place")
	}
	rel.Command = `exec awk 'BEGIN { s = "x"; while (length(s) < 1073741824) s = s s }'`
	_, err := rt.Start(context.Background(), rel, io.Discard)
	var he *runtime.HealthCheckError
	if !errors.As(err, &he) || !strings.Contains(he.Reason, "out of memory") {
		t.Fatalf("Start = %v, want an out-of-memory reason", err)
	}
}
