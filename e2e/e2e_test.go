// Package e2e holds Slipway's end-to-end tests: a real control plane (the
// same server `slipway serve` runs) against a real Gitea on loopback, the
// real git CLI and real processes. Nothing in the path from a push to a
// serving release is faked.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge/providers"
	"slipway.dev/slipway/internal/netpolicy"
	"slipway.dev/slipway/internal/runtime"
	"slipway.dev/slipway/internal/runtime/process"
	"slipway.dev/slipway/internal/sandbox"
	"slipway.dev/slipway/internal/server"
	"slipway.dev/slipway/internal/testenv/giteatest"
	"slipway.dev/slipway/internal/testenv/pgtest"
)

func TestMain(m *testing.M) { giteatest.Main(m) }

// logWriter sends server logs to the test log (visible with -v or on
// failure). A server a test leaves running (its job queue polling a
// database the test dropped) keeps logging after the test ended, which
// the testing package refuses with a panic: from the test's last cleanup
// on, lines are dropped.
type logWriter struct {
	t    testing.TB
	mu   *sync.Mutex
	done *bool
}

func newLogWriter(t testing.TB) logWriter {
	w := logWriter{t: t, mu: &sync.Mutex{}, done: new(bool)}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		*w.done = true
	})
	return w
}

func (w logWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !*w.done {
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

// startServer starts a control plane on a free loopback port with the
// given data directory (reuse one to simulate a restart).
func startServer(t testing.TB, dataDir, addr string, reconcile time.Duration) *server.Server {
	t.Helper()
	return startConfigured(t, dataDir, addr, reconcile, nil)
}

// startConfigured is startServer with a last say on the configuration.
func startConfigured(t testing.TB, dataDir, addr string, reconcile time.Duration, configure func(*server.Config)) *server.Server {
	t.Helper()
	// Workspaces must be reachable by the per-Service users: not under the
	// test's 0700 temporary directory. One per data directory, so a
	// restarted server finds its builds.
	ws := dataDir + "-workspaces"
	if w, ok := workspaces.Load(dataDir); ok {
		ws = w.(string)
	} else {
		dir, err := os.MkdirTemp("", "slipway-e2e-ws-")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o711); err != nil {
			t.Fatal(err)
		}
		ws = dir
		workspaces.Store(dataDir, dir)
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	logger := slog.New(slog.NewTextHandler(newLogWriter(t), &slog.HandlerOptions{Level: slog.LevelWarn}))
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	cfg := server.Config{
		DataDir: dataDir, WorkspaceDir: ws, Addr: addr, BaseDomain: "localhost",
		DNSResolver:       "127.0.0.1:1", // no DNS question leaves the machine; tests that need answers run dnstest
		DatabaseURL:       databaseURL(t, dataDir),
		ReconcileInterval: reconcile,
		Forges:            providers.All(logger, netpolicy.Policy{AllowPrivate: true}),
		Network:           netpolicy.Policy{AllowPrivate: true}, // the test Gitea is on loopback
		NewRuntime: func(sb *sandbox.Manager) (runtime.Runtime, error) {
			rt := process.New(logger, sb, process.Options{})
			// Releases are not tied to Slipway's process, so they would
			// outlive the test: stop what this server still runs.
			t.Cleanup(func() { rt.StopAll(context.Background()) })
			return rt, nil
		},
		Logger: logger,
	}
	if configure != nil {
		configure(&cfg)
	}
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	return srv
}

// workspaces remembers the workspace directory of each data directory.
var workspaces sync.Map

// databases remembers the database of each data directory.
var databases sync.Map

// databaseURL is "" (SQLite in the data directory) unless SLIPWAY_E2E_POSTGRES=1,
// in which case each data directory gets its own fresh PostgreSQL database
// on the test server (SLIPWAY_TEST_POSTGRES_URL).
func databaseURL(t testing.TB, dataDir string) string {
	if os.Getenv("SLIPWAY_E2E_POSTGRES") != "1" {
		return ""
	}
	if u, ok := databases.Load(dataDir); ok {
		return u.(string)
	}
	u := pgtest.URL(t)
	databases.Store(dataDir, u)
	return u
}

// api is a tiny JSON client for the test.
type api struct {
	t     testing.TB
	base  string
	token string
}

func (a api) do(method, path string, in, out any) (int, []byte) {
	a.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.base+path, body)
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			a.t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
	return resp.StatusCode, data
}

func (a api) must(method, path string, in, out any) {
	a.t.Helper()
	if code, data := a.do(method, path, in, out); code >= 300 {
		a.t.Fatalf("%s %s: %d %s", method, path, code, data)
	}
}

type deploymentList struct {
	Items []slipway.Deployment `json:"items"`
}

// waitFor polls cond until it is true or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}

func (a api) deployments(svc string) []slipway.Deployment {
	var l deploymentList
	a.must("GET", "/api/v1/services/"+svc+"/deployments", nil, &l)
	return l.Items
}

// waitLive waits until the deployment is live, failing fast with its log
// when it fails.
func (a api) waitLive(id string, timeout time.Duration) slipway.Deployment {
	a.t.Helper()
	var d slipway.Deployment
	waitFor(a.t, "deployment "+id+" live", timeout, func() bool {
		a.must("GET", "/api/v1/deployments/"+id, nil, &d)
		if d.Status == slipway.DeployFailed || d.Status == slipway.DeployCancelled {
			var logs struct {
				Items []struct{ Text string } `json:"items"`
			}
			a.must("GET", "/api/v1/deployments/"+id+"/logs", nil, &logs)
			var sb strings.Builder
			for _, l := range logs.Items {
				sb.WriteString(l.Text + "\n")
			}
			a.t.Fatalf("deployment %s %s: %s\nlog:\n%s", id, d.Status, d.Error, sb.String())
		}
		return d.Status == slipway.DeployLive
	})
	return d
}

// host returns the Service's host of the given kind, as the API lists it:
// tests never guess the naming scheme.
func (a api) host(serviceID string, kind slipway.HostKind) string {
	a.t.Helper()
	var svc slipway.Service
	a.must("GET", "/api/v1/services/"+serviceID, nil, &svc)
	for _, h := range svc.Hosts {
		if h.Kind == kind {
			return h.Host
		}
	}
	a.t.Fatalf("service %s has no %s host: %+v", serviceID, kind, svc.Hosts)
	return ""
}

// get fetches a deployed service through Slipway's router by Host header.
func get(base, host string) (int, string, error) {
	req, _ := http.NewRequest("GET", base+"/", nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// appSource is a small Go HTTP app that answers with the commit it runs.
var appSource = map[string]string{
	"go.mod": "module example.com/hello\n\ngo 1.22\n",
	"main.go": `package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", os.Getenv("SLIPWAY_COMMIT_SHA"))
	})
	http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil)
}
`,
}

// steadyLoad sends requests to host until stopped and counts failures.
type steadyLoad struct {
	ok, failed atomic.Int64
	stop       chan struct{}
	wg         sync.WaitGroup
	mu         sync.Mutex
	lastErr    string
}

func startLoad(base, host string, clients int) *steadyLoad {
	l := &steadyLoad{stop: make(chan struct{})}
	for range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				code, body, err := get(base, host)
				if err != nil || code != 200 || !strings.HasPrefix(body, "hello from ") {
					l.failed.Add(1)
					l.mu.Lock()
					l.lastErr = fmt.Sprintf("%d %q %v", code, body, err)
					l.mu.Unlock()
				} else {
					l.ok.Add(1)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	return l
}

func (l *steadyLoad) Stop() { close(l.stop); l.wg.Wait() }

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func ctx2() context.Context { return context.Background() }

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
