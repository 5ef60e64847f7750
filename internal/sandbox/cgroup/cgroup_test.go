package cgroup

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeV2 lays out a unified hierarchy as the kernel shows it to a process
// in group /slipway.service: controllers available, nothing delegated.
func fakeV2(t *testing.T) (root, self string) {
	t.Helper()
	root = t.TempDir()
	own := filepath.Join(root, "slipway.service")
	os.MkdirAll(own, 0o755)
	os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("cpuset cpu io memory pids\n"), 0o644)
	os.WriteFile(filepath.Join(own, "cgroup.controllers"), []byte("cpu memory pids\n"), 0o644)
	os.WriteFile(filepath.Join(own, "cgroup.subtree_control"), nil, 0o644)
	return root, "0::/slipway.service\n"
}

func TestV2AgainstFakeCgroupfs(t *testing.T) {
	root, self := fakeV2(t)
	m, err := Probe(root, self, "slipway-test")
	if err != nil {
		t.Fatal(err)
	}
	if m.Version() != V2 {
		t.Fatalf("version = %s, want cgroup v2", m.Version())
	}
	base := filepath.Join(root, "slipway.service", "slipway-test")
	if got := readString(filepath.Join(root, "slipway.service", "cgroup.subtree_control")); got != "+memory +pids +cpu" {
		t.Errorf("own subtree_control = %q", got)
	}
	g, err := m.Create("build-dep1", Limits{MemoryBytes: 256 << 20, Pids: 64, CPUPercent: 150})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "build-dep1")
	for file, want := range map[string]string{"memory.max": "268435456", "memory.swap.max": "0", "pids.max": "64", "cpu.max": "150000 100000"} {
		if got := readString(filepath.Join(dir, file)); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	if l := g.Limits(); l != (Limits{MemoryBytes: 256 << 20, Pids: 64, CPUPercent: 150}) {
		t.Errorf("Limits() = %+v", l)
	}
	if got := g.ProcsFiles(); len(got) != 1 || got[0] != filepath.Join(dir, "cgroup.procs") {
		t.Errorf("ProcsFiles = %v", got)
	}
	os.WriteFile(filepath.Join(dir, "memory.events"), []byte("low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\n"), 0o644)
	if n := g.OOMKills(); n != 1 {
		t.Errorf("OOMKills = %d, want 1", n)
	}
	os.WriteFile(filepath.Join(dir, "pids.events"), []byte("max 3\n"), 0o644)
	if n := g.PidsLimitHits(); n != 3 {
		t.Errorf("PidsLimitHits = %d", n)
	}
	// Kill uses cgroup.kill on v2 (the fake has no processes to wait for).
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	if got := readString(filepath.Join(dir, "cgroup.kill")); got != "1" {
		t.Errorf("cgroup.kill = %q, want 1", got)
	}
	if got := m.List("build-"); len(got) != 1 || got[0] != "build-dep1" {
		t.Errorf("List = %v", got)
	}
}

func TestV2NotDelegableFallsBack(t *testing.T) {
	root, self := fakeV2(t)
	// The unified hierarchy lists no memory controller for our group, as
	// on a hybrid host where v1 owns it: v2 is not used, and with no v1
	// hierarchies either, nothing is.
	os.WriteFile(filepath.Join(root, "slipway.service", "cgroup.controllers"), []byte("cpu\n"), 0o644)
	m, err := Probe(root, self, "slipway-test")
	if err != nil {
		t.Fatal(err)
	}
	if m.Version() != None {
		t.Fatalf("version = %s, want none", m.Version())
	}
	g, err := m.Create("build-x", Limits{Pids: 5})
	if err != nil || g != nil {
		t.Fatalf("Create on None = %v, %v", g, err)
	}
	if err := g.Kill(); err != nil || g.OOMKills() != 0 || g.ProcsFiles() != nil {
		t.Error("a nil group must be a no-op")
	}
}

func TestProbeRefusesPathNames(t *testing.T) {
	root, self := fakeV2(t)
	for _, n := range []string{"", "../x", "a/b", "."} {
		if _, err := Probe(root, self, n); err == nil {
			t.Errorf("Probe(%q) accepted", n)
		}
	}
	m, _ := Probe(root, self, "ok")
	for _, n := range []string{"", "..", "a/b", "../../etc"} {
		if _, err := m.Create(n, Limits{}); err == nil {
			t.Errorf("Create(%q) accepted", n)
		}
	}
}

// hostManager probes the real host, skipping where no cgroup can be made.
func hostManager(t *testing.T) *Manager {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creating cgroups needs root")
	}
	m, err := ProbeHost(fmt.Sprintf("slipway-test-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	if m.Version() == None {
		t.Skip("no usable cgroup controller on this host")
	}
	t.Cleanup(m.Close)
	return m
}

// joinAndRun starts script in g the way the sandbox does: the shell
// writes its own pid into every cgroup.procs file before exec.
func joinAndRun(t *testing.T, g *Group, script string) *exec.Cmd {
	t.Helper()
	var join strings.Builder
	for _, f := range g.ProcsFiles() {
		fmt.Fprintf(&join, "echo $$ > %s || exit 125; ", f)
	}
	cmd := exec.Command("/bin/sh", "-c", join.String()+"exec /bin/sh -c '"+script+"'")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestHostKillTakesSetsidChildren(t *testing.T) {
	m := hostManager(t)
	g, err := m.Create("build-setsid", Limits{Pids: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Remove()
	if g.Limits().Pids != 64 {
		t.Fatalf("pids limit not in place: %+v", g.Limits())
	}
	cmd := joinAndRun(t, g, "setsid sleep 901 & setsid sh -c \"sleep 902 &\" ; sleep 903")
	deadline := time.Now().Add(5 * time.Second)
	for len(g.Pids()) < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	pids := g.Pids()
	if len(pids) < 3 {
		t.Fatalf("group holds %v, want the shell and both detached sleeps", pids)
	}
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			if raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !strings.Contains(string(raw), ") Z ") {
				t.Errorf("pid %d survived Kill", pid)
			}
		}
	}
}

func TestHostKillStale(t *testing.T) {
	m := hostManager(t)
	g, err := m.Create("build-stale", Limits{Pids: 16})
	if err != nil {
		t.Fatal(err)
	}
	cmd := joinAndRun(t, g, "setsid sleep 904 & sleep 905")
	defer cmd.Wait()
	for len(g.Pids()) < 2 {
		time.Sleep(20 * time.Millisecond)
	}
	other, _ := m.Create("release-keep", Limits{Pids: 16})
	defer other.Remove()
	// A fresh Manager, as after a restart, finds and kills the leftover.
	again, err := ProbeHost(filepath.Base(m.bases[m.firstController()]))
	if err != nil {
		t.Fatal(err)
	}
	killed := again.KillStale(slog.New(slog.NewTextHandler(io.Discard, nil)), "build-")
	if len(killed) != 1 || killed[0] != "build-stale" {
		t.Fatalf("KillStale = %v", killed)
	}
	if len(g.Pids()) != 0 {
		t.Error("leftover build still has processes")
	}
	if got := m.List(""); len(got) != 1 || got[0] != "release-keep" {
		t.Errorf("after KillStale: %v", got)
	}
}

func (m *Manager) firstController() string {
	for c := range m.bases {
		return c
	}
	return ""
}
