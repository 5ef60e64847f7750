package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/github"
	"slipway.dev/slipway/internal/netpolicy"
	"slipway.dev/slipway/internal/secrets"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
)

// newGitHubTestServer serves the API with the GitHub provider wired in. No
// call reaches GitHub: these tests cover the edge (the manifest start).
func newGitHubTestServer(t *testing.T) (srvURL, token string) {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	st, err := store.Open(ctx, "", dir, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	keys, err := secrets.LoadOrCreate(filepath.Join(dir, "master.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	forges := map[slipway.Provider]forge.Provider{slipway.ProviderGitHub: github.New(github.Options{Logger: logger})}
	svc := service.New(st, keys, forges, noJobs{}, service.Config{PublicURL: "https://slipway.example.com", BaseDomain: "localhost", Network: netpolicy.Policy{AllowPrivate: true}}, logger)
	boot, err := svc.Bootstrap(ctx, "admin@example.com")
	if err != nil {
		t.Fatal(err)
	}
	api := New(svc, logger)
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL, boot.Token
}

// noRedirects lets a test look at a redirect instead of following it.
func noRedirects() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func TestGitHubManifestRoute(t *testing.T) {
	base, token := newGitHubTestServer(t)
	req, _ := http.NewRequest("POST", base+"/api/v1/integrations/github/manifest", bytes.NewReader([]byte(`{"org":"acme","label":"GitHub acme"}`)))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := noRedirects().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res service.GitHubManifestResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 201 || !strings.HasPrefix(res.PostURL, "https://github.com/organizations/acme/settings/apps/new?state=") ||
		res.State == "" || !strings.Contains(res.Manifest, `"hook_attributes"`) || res.Integration.Status != slipway.IntegrationPending {
		t.Fatalf("manifest route: %d %+v", resp.StatusCode, res)
	}

	// The link to open is Slipway's own: it needs the starting user's
	// sign-in before anything reaches GitHub (internal/web tests it).
	if formURL, err := url.Parse(res.FormURL); err != nil || formURL.Path != service.FlowBeginPath || formURL.Query().Get("state") != res.State {
		t.Errorf("form URL %q", res.FormURL)
	}

	// Without a bearer token the route is refused.
	resp2, err := http.Post(base+"/api/v1/integrations/github/manifest", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous manifest start: %d, want 401", resp2.StatusCode)
	}
}
