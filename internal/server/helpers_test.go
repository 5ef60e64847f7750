package server_test

import (
	"bytes"
	"context"
	"encoding/json"
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

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge/providers"
	"slipway.dev/slipway/internal/netpolicy"
	"slipway.dev/slipway/internal/runtime"
	"slipway.dev/slipway/internal/runtime/process"
	"slipway.dev/slipway/internal/sandbox"
	"slipway.dev/slipway/internal/server"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/testenv/pgtest"
)

// lockedBuffer collects the server's log; the job queue keeps logging from
// its own goroutines, so writes are serialised.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServer starts a full control plane on 127.0.0.1:0 with a temporary
// data directory and the real providers and process runtime. databaseURL
// empty means SQLite. The server log is printed when the test fails.
func startServer(t *testing.T, databaseURL string) *server.Server {
	t.Helper()
	srv := startServerWith(t, databaseURL, nil)
	if !srv.Bootstrap.Created || srv.Bootstrap.Token == "" {
		t.Fatalf("first start did not create the default organisation and an admin token: %+v", srv.Bootstrap.Created)
	}
	return srv
}

// startServerWith is startServer with a last say on the configuration.
func startServerWith(t *testing.T, databaseURL string, configure func(*server.Config)) *server.Server {
	t.Helper()
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := server.Config{
		DataDir:           filepath.Join(t.TempDir(), "data"),
		Addr:              "127.0.0.1:0",
		DatabaseURL:       databaseURL,
		ReconcileInterval: -1,
		Forges:            providers.All(logger, netpolicy.Policy{AllowPrivate: true, AllowFiles: true}),
		Network:           netpolicy.Policy{AllowPrivate: true, AllowFiles: true}, // sources are directories and the loopback Gitea
		NewRuntime: func(sb *sandbox.Manager) (runtime.Runtime, error) {
			return process.New(logger, sb, process.Options{}), nil
		},
		Logger: logger,
	}
	if configure != nil {
		configure(&cfg)
	}
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Logf("shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return srv
}

// databases runs fn on SQLite and, when configured, on PostgreSQL.
func databases(t *testing.T, fn func(t *testing.T, databaseURL string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, "") })
	t.Run("postgres", func(t *testing.T) { fn(t, pgtest.URL(t)) })
}

// apiClient sends JSON requests with one bearer token.
type apiClient struct {
	t     *testing.T
	base  string
	token string
	http  *http.Client // nil: a plain client
}

type apiResponse struct {
	status int
	header http.Header
	body   []byte
}

func (r apiResponse) problemCode() string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(r.body, &p)
	return p.Code
}

// do sends a request; body is marshalled unless it is already []byte.
func (c apiClient) do(method, path string, body any) apiResponse {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			c.t.Fatalf("marshal %s %s body: %v", method, path, err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatalf("new request %s %s: %v", method, path, err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	client := c.http
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return apiResponse{status: resp.StatusCode, header: resp.Header, body: raw}
}

// must sends a request that has to answer want, and decodes the answer
// into out when out is not nil.
func (c apiClient) must(want int, method, path string, body, out any) {
	c.t.Helper()
	r := c.do(method, path, body)
	if r.status != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, want, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			c.t.Fatalf("%s %s: decode %s: %v", method, path, r.body, err)
		}
	}
}

// seedToken gives userID an API token in orgID directly through the store:
// no API route issues a token for another organisation than the caller's,
// so a test that needs an actor in a second organisation seeds one.
func seedToken(t *testing.T, srv *server.Server, orgID, userID string) string {
	t.Helper()
	secret := "slw_" + strings.ReplaceAll(slipway.NewID("seed")+slipway.NewID("x"), "_", "")
	tok := &slipway.APIToken{ID: slipway.NewID(slipway.PrefixToken), OrgID: orgID, UserID: userID, Name: "seeded by test", CreatedAt: time.Now().UTC()}
	if err := srv.Store.CreateAPIToken(context.Background(), tok, service.HashToken(secret)); err != nil {
		t.Fatalf("seed token: %v", err)
	}
	return secret
}

// bareRepo makes a bare Git repository with one commit on main and returns
// its file:// URL, a source the generic Git provider reads without network.
func bareRepo(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not available")
	}
	dir := t.TempDir()
	work, bare := filepath.Join(dir, "work"), filepath.Join(dir, "repo.git")
	git := func(wd string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = wd
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
			"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	git(dir, "init", "--bare", "-b", "main", bare)
	git(work, "init", "-b", "main")
	if err := os.WriteFile(filepath.Join(work, "README"), []byte("isolation test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(work, "add", "README")
	git(work, "commit", "-m", "first")
	git(work, "push", bare, "main")
	return "file://" + bare
}
