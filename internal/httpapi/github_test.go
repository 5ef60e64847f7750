package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
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
	"slipway.dev/slipway/internal/secrets"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
)

// newGitHubTestServer serves the API and the GitHub browser handlers with
// the GitHub provider wired in. No call reaches GitHub: these tests cover
// the edge (the manifest start and the refusals before any provider call).
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
	svc := service.New(st, keys, forges, noJobs{}, service.Config{PublicURL: "https://slipway.example.com", BaseDomain: "localhost"}, logger)
	boot, err := svc.Bootstrap(ctx, "admin@example.com")
	if err != nil {
		t.Fatal(err)
	}
	api := New(svc, logger)
	mux := http.NewServeMux()
	api.Register(mux)
	api.GitHubBrowserHandlers(mux)
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

	// The form page the CLI points at posts the same manifest to GitHub,
	// and showing it does not spend the state (the callback needs it).
	formURL, err := url.Parse(res.FormURL)
	if err != nil || formURL.Path != service.GitHubManifestFormPath {
		t.Fatalf("form URL %q", res.FormURL)
	}
	local := base + formURL.RequestURI() // the public URL names another host: ask the test server
	for range 2 {
		page, err := noRedirects().Get(local)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(page.Body)
		page.Body.Close()
		if page.StatusCode != 200 || !strings.Contains(string(body), `action="`+strings.ReplaceAll(res.PostURL, "&", "&amp;")+`"`) ||
			!strings.Contains(string(body), `name="manifest"`) || !strings.Contains(page.Header.Get("Content-Security-Policy"), "nonce-") {
			t.Fatalf("manifest form page: %d\n%s", page.StatusCode, body)
		}
	}
	bad, err := noRedirects().Get(strings.Replace(local, "state=", "state=x", 1))
	if err != nil {
		t.Fatal(err)
	}
	bad.Body.Close()
	if bad.StatusCode != http.StatusBadRequest {
		t.Errorf("manifest form with a wrong state: %d, want 400", bad.StatusCode)
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

func TestGitHubBrowserHandlers(t *testing.T) {
	base, _ := newGitHubTestServer(t)
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := noRedirects().Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}

	// An unknown state: an HTML page with the message and the fix.
	resp, body := get(service.GitHubManifestCallbackPath + "?code=abc&state=forged")
	if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, "already used or has expired") || !strings.Contains(body, "What to do:") {
		t.Errorf("forged manifest state: %d %q\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	resp, body = get(service.GitHubSetupPath + "?installation_id=1&setup_action=install&state=forged")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "already used or has expired") {
		t.Errorf("forged setup state: %d\n%s", resp.StatusCode, body)
	}
	// Markup in the query never reaches the page unescaped.
	resp, body = get(service.GitHubSetupPath + "?installation_id=%3Cscript%3E&state=")
	if strings.Contains(body, "<script>") {
		t.Errorf("the page echoes markup:\n%s", body)
	}
	// A change made from GitHub's settings carries no state: back to the list.
	resp, _ = get(service.GitHubSetupPath + "?installation_id=60001&setup_action=update")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Errorf("update without state: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// An installation request waiting for an owner is not an error.
	resp, body = get(service.GitHubSetupPath + "?setup_action=request")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "approve") {
		t.Errorf("installation request: %d\n%s", resp.StatusCode, body)
	}
}
