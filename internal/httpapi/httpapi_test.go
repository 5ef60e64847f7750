package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/secrets"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
)

// noJobs accepts enqueues and runs nothing: these tests look at the HTTP
// edge, not at the pipeline.
type noJobs struct{}

func (noJobs) EnqueueDeploy(context.Context, *store.Tx, string, string) error   { return nil }
func (noJobs) EnqueueDelivery(context.Context, *store.Tx, string, string) error { return nil }

// testAPI is the API on a real SQLite store behind an httptest server.
type testAPI struct {
	api   *API
	url   string
	token string // the bootstrap administrator's token
}

func newTestAPI(t *testing.T) testAPI {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	st, err := store.Open(ctx, "", dir, logger)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	keys, err := secrets.LoadOrCreate(filepath.Join(dir, "master.key"), "")
	if err != nil {
		t.Fatalf("master key: %v", err)
	}
	svc := service.New(st, keys, map[slipway.Provider]forge.Provider{}, noJobs{}, service.Config{PublicURL: "http://127.0.0.1", BaseDomain: "localhost"}, logger)
	boot, err := svc.Bootstrap(ctx, "admin@example.com")
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	api := New(svc, logger)
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return testAPI{api: api, url: srv.URL, token: boot.Token}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) problem(t *testing.T) Problem {
	t.Helper()
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("Content-Type %q, want application/problem+json (status %d): %s", ct, a.status, a.body)
	}
	var p Problem
	if err := json.Unmarshal(a.body, &p); err != nil {
		t.Fatalf("problem document is not JSON: %v: %s", err, a.body)
	}
	if p.Status != a.status {
		t.Errorf("problem status %d differs from the HTTP status %d", p.Status, a.status)
	}
	if p.Type == "" || p.Title == "" || p.Detail == "" {
		t.Errorf("problem lacks type, title or detail: %s", a.body)
	}
	return p
}

// send makes one request; token "" sends no Authorization header.
func (ta testAPI) send(t *testing.T, method, path, token string, body []byte) answer {
	t.Helper()
	auth := ""
	if token != "" {
		auth = "Bearer " + token
	}
	return ta.sendAuth(t, method, path, auth, body)
}

// sendAuth makes one request with a literal Authorization header.
func (ta testAPI) sendAuth(t *testing.T, method, path, auth string, body []byte) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, ta.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: raw}
}
