package sandbox

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"slipway.dev/slipway/internal/runtime"
)

// rootManager is a Manager on a workspace root outside /tmp (so private
// scratch is on), as root; it skips elsewhere.
func rootManager(t *testing.T) *Manager {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("isolation needs root")
	}
	base, err := os.MkdirTemp("/var/tmp", "slipway-sandbox-test-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(base, 0o711)
	t.Cleanup(func() { os.RemoveAll(base) })
	m, err := New(slog.New(slog.NewTextHandler(io.Discard, nil)), Options{Root: filepath.Join(base, "ws")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.cgroups.Close)
	return m
}

// target is a root-owned directory outside every workspace, standing in
// for /etc/cron.d; snapshot describes everything about it.
func target(t *testing.T) (dir string, snapshot func() string) {
	t.Helper()
	dir = t.TempDir()
	os.Chmod(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "sentinel"), []byte("root's"), 0o644)
	return dir, func() string {
		var b strings.Builder
		filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				return nil
			}
			st := fi.Sys().(*syscall.Stat_t)
			fmt.Fprintf(&b, "%s %o %d:%d %d\n", p, fi.Mode(), st.Uid, st.Gid, fi.Size())
			return nil
		})
		return b.String()
	}
}

// racer runs as the Service's user in the Service's own group and keeps
// swapping everything under builds/ (and builds/ and home/ themselves)
// for symlinks to dir.
func racer(t *testing.T, m *Manager, serviceID, ws string, u runtime.User, dir string) func() {
	t.Helper()
	g, err := m.NewGroup("release-racer", Limits{Pids: 64})
	if err != nil {
		t.Fatal(err)
	}
	script := `cd "$WS" || exit 1
while :; do
  for d in builds/*; do rm -rf "$d"; ln -sfn "$T" "$d"; done
  mv builds b2 2>/dev/null; ln -sfn "$T" builds; rm -f builds; mv b2 builds 2>/dev/null
  mv home h2 2>/dev/null; ln -sfn "$T" home; rm -f home; mv h2 home 2>/dev/null
done`
	cmd := m.Command(Spec{User: u, Home: ws, Dir: ws, Script: script, Env: map[string]string{"WS": ws, "T": dir}, Setpgid: true, Group: g})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return func() {
		g.Kill()
		cmd.Wait()
		g.Remove()
	}
}

func stageTree(t *testing.T, m *Manager) string {
	t.Helper()
	stage, err := m.Stage()
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(stage, "src", "sub"), 0o755)
	os.WriteFile(filepath.Join(stage, "src", "sub", "f"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(stage, "src", "run"), []byte("#!/bin/sh\n"), 0o755)
	return stage
}

// TestRootOperationsUnderRace attacks each root operation on a workspace
// separately (workspace and home creation, hand-over with chown, sealing,
// cleanup) for many rounds while the racer swaps paths for symlinks to a
// root-owned directory. The directory must stay exactly as it was.
func TestRootOperationsUnderRace(t *testing.T) {
	m := rootManager(t)
	ctx := context.Background()
	const svc = "svc_racer000000001"
	ws, u, err := m.Workspace(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	dir, snap := target(t)
	before := snap()
	stop := racer(t, m, svc, ws, u, dir)
	defer stop()
	rounds := 1500
	if testing.Short() {
		rounds = 200
	}
	for _, step := range []string{"workspace", "place", "seal", "discard"} {
		ok, refused := 0, 0
		start := time.Now()
		for i := 0; i < rounds; i++ {
			var err error
			name := fmt.Sprintf("b%d", i)
			switch step {
			case "workspace":
				_, _, err = m.Workspace(ctx, svc)
			case "place":
				_, err = m.Place(ctx, svc, stageTree(t, m), name)
			case "seal":
				if _, err = m.Place(ctx, svc, stageTree(t, m), name); err == nil {
					var sealed string
					sealed, err = m.Seal(ctx, svc, name)
					if err == nil {
						checkSealed(t, sealed, u)
					}
				}
			case "discard":
				if _, err = m.Place(ctx, svc, stageTree(t, m), name); err == nil {
					err = m.Discard(ctx, svc, name)
				}
			}
			if err != nil {
				refused++
			} else {
				ok++
			}
			if got := snap(); got != before {
				t.Fatalf("%s round %d changed the target outside the workspace:\n%s\nwas:\n%s", step, i, got, before)
			}
		}
		t.Logf("%s: %d rounds in %s: %d done, %d refused (the racer won the path)", step, rounds, time.Since(start).Round(time.Millisecond), ok, refused)
	}
	stop()
	// Delete, with symlinks to the target planted everywhere it looks.
	os.Symlink(dir, filepath.Join(ws, "builds", "planted"))
	os.Symlink(dir, filepath.Join(ws, "home", "planted"))
	if err := m.RemoveService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if got := snap(); got != before {
		t.Fatalf("delete changed the target:\n%s", got)
	}
	if _, err := os.Lstat(ws); !os.IsNotExist(err) {
		t.Errorf("workspace still there after delete: %v", err)
	}
	if _, err := lookup(UserName(svc)); err == nil {
		t.Error("service user still exists after delete")
	}
}

// checkSealed asserts a sealed tree is root's and read-only to the group.
func checkSealed(t *testing.T, dir string, u runtime.User) {
	t.Helper()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode()&os.ModeSymlink == 0 && (st.Uid != 0 || st.Gid != u.GID || fi.Mode().Perm()&0o027 != 0 || fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0) {
			t.Errorf("sealed %s is %d:%d %s", p, st.Uid, st.Gid, fi.Mode())
		}
		return nil
	})
}

// TestServiceCannotChangeSealedBuild runs as the Service's user against
// its own sealed build: writing, creating, removing and chmod fail, and
// the staging directory (where fetches land) cannot even be listed.
func TestServiceCannotChangeSealedBuild(t *testing.T) {
	m := rootManager(t)
	ctx := context.Background()
	const svc = "svc_sealed00000001"
	ws, u, err := m.Workspace(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	defer m.RemoveService(ctx, svc)
	if _, err := m.Place(ctx, svc, stageTree(t, m), "b1"); err != nil {
		t.Fatal(err)
	}
	sealed, err := m.Seal(ctx, svc, "b1")
	if err != nil {
		t.Fatal(err)
	}
	script := `for a in "echo x >> $D/run" "touch $D/new" "rm -f $D/sub/f" "chmod 777 $D/run" "mv $D/sub $D/sub2" "ls $S"; do
  if sh -c "$a" 2>/dev/null; then echo "ALLOWED: $a"; fi
done
cat "$D/sub/f" && echo READ-OK`
	out, err := m.Command(Spec{User: u, Home: ws, Dir: ws, Script: script,
		Env: map[string]string{"D": sealed, "S": filepath.Join(m.root, stagingDir)}}).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.Contains(string(out), "ALLOWED") || !strings.Contains(string(out), "READ-OK") {
		t.Fatalf("the Service changed its sealed build or cannot read it:\n%s", out)
	}
}

// TestSealRefusesForeignFiles: a build that leaves a file of another owner
// in its tree (a hard link to a root file, where the host allows one) is
// not sealed, so root never chowns that file to the Service's group.
func TestSealRefusesForeignFiles(t *testing.T) {
	m := rootManager(t)
	ctx := context.Background()
	const svc = "svc_foreign0000001"
	if _, _, err := m.Workspace(ctx, svc); err != nil {
		t.Fatal(err)
	}
	defer m.RemoveService(ctx, svc)
	placed, err := m.Place(ctx, svc, stageTree(t, m), "b1")
	if err != nil {
		t.Fatal(err)
	}
	dir, snap := target(t)
	before := snap()
	// Root plants it here; a tenant could with protected_hardlinks off.
	if err := os.Link(filepath.Join(dir, "sentinel"), filepath.Join(placed, "sub", "stolen")); err != nil {
		t.Skip("cannot hard-link across these directories:", err)
	}
	if _, err := m.Seal(ctx, svc, "b1"); err == nil || !strings.Contains(err.Error(), "tampered") {
		t.Fatalf("Seal = %v, want refusal", err)
	}
	if got := snap(); !strings.Contains(got, "644 0:0") || strings.Count(got, "\n") != strings.Count(before, "\n") {
		t.Fatalf("target changed:\n%s\nwas\n%s", got, before)
	}
}
