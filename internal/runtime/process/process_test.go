package process

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway.dev/slipway/internal/runtime"
	"slipway.dev/slipway/internal/sandbox"
)

// testApp is the deployed code: it answers the commit from its
// environment, exits with status 2 on /crash and answers /healthz from
// HEALTH_STATUS.
const testApp = `package main

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
)

func main() {
	fmt.Println("app starting on port", os.Getenv("PORT"))
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, os.Getenv("COMMIT")) })
	http.HandleFunc("/crash", func(w http.ResponseWriter, r *http.Request) { fmt.Println("crashing on request"); os.Exit(2) })
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(os.Getenv("HEALTH_STATUS"))
		if code == 0 {
			code = 200
		}
		w.WriteHeader(code)
	})
	if err := http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
`

var buildOnce sync.Once

// buildApp compiles testApp once (as the test's own user, with its warm
// build cache) and returns the binary's path.
func buildApp(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go toolchain not available")
	}
	dir := filepath.Join(os.TempDir(), "slipway-process-testapp")
	bin := filepath.Join(dir, "app")
	var err error
	var out []byte
	buildOnce.Do(func() {
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.test/app\n\ngo 1.22\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "main.go"), []byte(testApp), 0o644)
		cmd := exec.Command("go", "build", "-o", bin, ".")
		cmd.Dir = dir
		out, err = cmd.CombinedOutput()
	})
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// newRelease sets up a runtime and a release whose workspace holds the test
// app, owned by the Service's user when running as root.
func newRelease(t *testing.T, serviceID string) (*Runtime, runtime.Release) {
	t.Helper()
	bin := buildApp(t)
	base := t.TempDir()
	for d := base; strings.HasPrefix(filepath.Base(d), "Test") || d == base; d = filepath.Dir(d) {
		os.Chmod(d, 0o711)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	sb, err := sandbox.New(logger, sandbox.Options{Root: filepath.Join(base, "ws")})
	if err != nil {
		t.Fatal(err)
	}
	ws, user, err := sb.Workspace(context.Background(), serviceID)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "app"), raw, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(ws, "app"), int(user.UID), int(user.GID)); os.Geteuid() == 0 && err != nil {
		t.Fatal(err)
	}
	rt := New(logger, sb, Options{HealthTimeout: 10 * time.Second, GracePeriod: 2 * time.Second, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second})
	rel := runtime.Release{ServiceID: serviceID, DeploymentID: "dep_" + serviceID, Name: "web", Dir: ws,
		Command: "exec ./app", Env: map[string]string{"COMMIT": "abc1234"}, User: user}
	return rt, rel
}

func get(t *testing.T, url string) (int, string, error) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func TestStartServeStop(t *testing.T) {
	rt, rel := newRelease(t, "svc_procstart000001")
	ctx := context.Background()
	var logs strings.Builder
	inst, err := rt.Start(ctx, rel, &syncWriter{w: &logs})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(inst.Addr, "127.0.0.1:") || inst.DeploymentID != rel.DeploymentID {
		t.Fatalf("instance = %+v", inst)
	}
	if code, body, err := get(t, "http://"+inst.Addr+"/"); err != nil || code != 200 || body != "abc1234" {
		t.Fatalf("GET / = %d %q %v", code, body, err)
	}
	if !strings.Contains(logs.String(), "app starting on port") {
		t.Errorf("start logs = %q", logs.String())
	}
	var rlogs strings.Builder
	if err := rt.Logs(ctx, rel.DeploymentID, &rlogs); err != nil || !strings.Contains(rlogs.String(), "app starting") {
		t.Errorf("runtime logs = %q, %v", rlogs.String(), err)
	}
	again, err := rt.Start(ctx, rel, io.Discard)
	if err != nil || again.Addr != inst.Addr {
		t.Errorf("second Start = %+v, %v; want the running instance", again, err)
	}
	if err := rt.Stop(ctx, rel.DeploymentID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := get(t, "http://"+inst.Addr+"/"); err == nil {
		t.Error("release still answers after Stop")
	}
	if err := rt.Stop(ctx, rel.DeploymentID); err != nil {
		t.Errorf("stopping an unknown release: %v", err)
	}
	if err := rt.Logs(ctx, rel.DeploymentID, io.Discard); !errors.Is(err, runtime.ErrUnknownRelease) {
		t.Errorf("Logs after Stop: %v", err)
	}
}

func TestCrashRestart(t *testing.T) {
	rt, rel := newRelease(t, "svc_proccrash000001")
	ctx := context.Background()
	inst, err := rt.Start(ctx, rel, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Stop(ctx, rel.DeploymentID) })
	get(t, "http://"+inst.Addr+"/crash") // the connection dies with the process
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := rt.Status(ctx, rel.DeploymentID)
		if err != nil {
			t.Fatal(err)
		}
		if st.Restarts >= 1 && st.Running {
			if code, body, err := get(t, "http://"+inst.Addr+"/"); err == nil && code == 200 && body == "abc1234" {
				if st.LastExit != "exited with status 2" {
					t.Errorf("LastExit = %q", st.LastExit)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not restarted: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var rlogs strings.Builder
	rt.Logs(ctx, rel.DeploymentID, &rlogs)
	if !strings.Contains(rlogs.String(), "restarting in") || strings.Count(rlogs.String(), "app starting") < 2 {
		t.Errorf("runtime logs do not show the restart:\n%s", rlogs.String())
	}
}

func TestHealthCheckFailures(t *testing.T) {
	rt, rel := newRelease(t, "svc_prochealth00001")
	ctx := context.Background()

	exits := rel
	exits.DeploymentID = "dep_exits"
	exits.Command = "echo 'cannot open config.yml' >&2; exit 3"
	_, err := rt.Start(ctx, exits, io.Discard)
	var hc *runtime.HealthCheckError
	if !errors.As(err, &hc) || !strings.Contains(hc.Reason, "exited with status 3") || !strings.Contains(hc.Reason, "cannot open config.yml") {
		t.Errorf("exiting release: %v", err)
	}

	unhealthy := rel
	unhealthy.DeploymentID = "dep_unhealthy"
	unhealthy.HealthPath = "/healthz"
	unhealthy.Env = map[string]string{"HEALTH_STATUS": "503"}
	rt.opts.HealthTimeout = time.Second
	start := time.Now()
	_, err = rt.Start(ctx, unhealthy, io.Discard)
	if !errors.As(err, &hc) || !strings.Contains(hc.Reason, "answered 503") {
		t.Errorf("unhealthy release: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("health timeout not honoured: %s", time.Since(start))
	}
	if _, err := rt.Status(ctx, unhealthy.DeploymentID); !errors.Is(err, runtime.ErrUnknownRelease) {
		t.Errorf("a failed release is still tracked: %v", err)
	}
}

func TestStopKillsProcessGroup(t *testing.T) {
	rt, rel := newRelease(t, "svc_procgroup000001")
	ctx := context.Background()
	pidFile := filepath.Join(rel.Dir, "child.pid")
	rel.Command = "sleep 300 & echo $! > child.pid; exec ./app"
	if _, err := rt.Start(ctx, rel, io.Discard); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(raw))
	if _, err := os.Stat("/proc/" + pid); err != nil {
		t.Fatalf("child not running: %v", err)
	}
	if err := rt.Stop(ctx, rel.DeploymentID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break // gone, or a zombie awaiting its reaper
		}
		if time.Now().After(deadline) {
			t.Fatal("the start command's child survived Stop")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
