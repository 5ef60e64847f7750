package github

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/forgetest"
)

func golden(t *testing.T, name string, v any) {
	t.Helper()
	forgetest.CompareGolden(t, filepath.Join("testdata", "golden", name+".json"), v)
}

// errorSummary is how a slipway error is kept in a golden file.
func errorSummary(err error) map[string]any {
	e, _ := slipway.AsError(err)
	if e == nil {
		return map[string]any{"error": "not a slipway error"}
	}
	return map[string]any{"code": e.Code, "message": e.Message, "fix": e.Fix, "details": e.Details}
}

func TestAPIBase(t *testing.T) {
	for in, want := range map[string]string{
		"":                                "https://api.github.com/",
		"https://github.com":              "https://api.github.com/",
		"https://github.com/":             "https://api.github.com/",
		"https://api.github.com":          "https://api.github.com/",
		"https://ghe.example.com":         "https://ghe.example.com/api/v3/",
		"https://ghe.example.com/":        "https://ghe.example.com/api/v3/",
		"https://ghe.example.com/api/v3":  "https://ghe.example.com/api/v3/",
		"https://ghe.example.com/api/v3/": "https://ghe.example.com/api/v3/",
		// GitHub Enterprise Cloud with data residency: no /api/v3.
		"https://octo-corp.ghe.com":      "https://api.octo-corp.ghe.com/",
		"https://octo-corp.ghe.com/":     "https://api.octo-corp.ghe.com/",
		"https://api.octo-corp.ghe.com":  "https://api.octo-corp.ghe.com/",
		"https://OCTO-corp.GHE.com":      "https://api.octo-corp.ghe.com/",
		"https://a.b.ghe.com":            "https://a.b.ghe.com/api/v3/", // not a tenant host: a GHES name
		"https://ghe.com":                "https://ghe.com/api/v3/",
		"https://octo-corp.ghe.com.evil": "https://octo-corp.ghe.com.evil/api/v3/",
	} {
		got, err := APIBase(in)
		if err != nil || got != want {
			t.Errorf("APIBase(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := APIBase("ftp://x"); slipway.ErrorCodeOf(err) != slipway.ECodeInvalid {
		t.Errorf("APIBase(ftp) error = %v", err)
	}
	if got := WebBase("https://ghe.example.com/api/v3/"); got != "https://ghe.example.com" {
		t.Errorf("WebBase(ghes) = %q", got)
	}
	if got := WebBase(DefaultAPIBase); got != "https://github.com" {
		t.Errorf("WebBase(github.com) = %q", got)
	}
	if got := WebBase("https://api.octo-corp.ghe.com/"); got != "https://octo-corp.ghe.com" {
		t.Errorf("WebBase(ghe.com) = %q", got)
	}
}

func TestManifest(t *testing.T) {
	params := ManifestParams{
		PublicURL: "https://slipway.example.com/", Name: "Slipway (acme)",
		HookURL: "https://slipway.example.com/hooks/github/int_5k2q9x3m7d1c8v4b", State: "st 1&2",
	}
	raw, postURL := Manifest(params)
	if postURL != "https://github.com/settings/apps/new?state=st+1%262" {
		t.Errorf("user post URL = %q", postURL)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	golden(t, "manifest", m)

	params.Org = "acme"
	if _, u := Manifest(params); u != "https://github.com/organizations/acme/settings/apps/new?state=st+1%262" {
		t.Errorf("org post URL = %q", u)
	}
	params.APIBase = "https://ghe.example.com"
	if _, u := Manifest(params); u != "https://ghe.example.com/organizations/acme/settings/apps/new?state=st+1%262" {
		t.Errorf("GHES post URL = %q", u)
	}
}

func TestConvertManifest(t *testing.T) {
	f := newFakeGitHub(t, 0)
	cfg, err := ConvertManifest(context.Background(), f.http, f.srv.URL, "a1b2c3d4e5")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "app_config", cfg)
	if cfg.PEM != f.keyPEM || cfg.WebhookSecret != "e7c1f0a9-hook-secret" || cfg.ClientSecret != "1d5b1c4e0c9a-client-secret" {
		t.Error("credentials not carried over from the conversion")
	}
	if s := cfg.String(); strings.Contains(s, "secret") || strings.Contains(s, "PRIVATE") {
		t.Errorf("String leaks credentials: %s", s)
	}
	// The converted App works: its key signs JWTs GitHub accepts.
	app, err := NewApp(cfg.ID, []byte(cfg.PEM), cfg.WebhookSecret, f.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.provider().VerifyInstallation(context.Background(), app, fakeInstallationID); err != nil {
		t.Errorf("VerifyInstallation with converted App: %v", err)
	}

	_, err = ConvertManifest(context.Background(), f.http, f.srv.URL, "expired")
	if slipway.ErrorCodeOf(err) != slipway.ECodeInvalid {
		t.Errorf("expired code: %v", err)
	}
}

func TestAppJWT(t *testing.T) {
	f := newFakeGitHub(t, 0)
	app, err := NewApp(fakeAppID, []byte(f.keyPEM), "", "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	tok, err := app.JWT(now)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("JWT has %d parts", len(parts))
	}
	var claims struct {
		Iat int64  `json:"iat"`
		Exp int64  `json:"exp"`
		Iss string `json:"iss"`
	}
	raw, _ := base64URL(parts[1])
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	if claims.Iss != "1040217" || claims.Iat != now.Unix()-60 || claims.Exp-now.Unix() > 600 || claims.Exp-claims.Iat > 600 {
		t.Errorf("claims = %+v (now %d)", claims, now.Unix())
	}
	if !strings.Contains(app.String(), "1040217") || strings.Contains(app.String(), "PRIVATE") {
		t.Errorf("App.String = %s", app.String())
	}
	if _, err := NewApp(fakeAppID, []byte("not a key"), "", ""); slipway.ErrorCodeOf(err) != slipway.ECodeCredentialsInvalid {
		t.Errorf("bad PEM: %v", err)
	}
}

func TestVerifyInstallation(t *testing.T) {
	f := newFakeGitHub(t, 0)
	p := f.provider()
	app, err := NewApp(fakeAppID, []byte(f.keyPEM), "", f.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := p.VerifyInstallation(context.Background(), app, fakeInstallationID)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "installation", inst)

	_, err = p.VerifyInstallation(context.Background(), app, 999)
	if slipway.ErrorCodeOf(err) != slipway.ECodeCredentialsInvalid {
		t.Fatalf("unknown installation: %v", err)
	}
	golden(t, "installation_not_found_error", errorSummary(err))

	// A JWT signed by another key is refused with 401.
	other := newFakeGitHub(t, 0)
	wrong, _ := NewApp(fakeAppID, []byte(other.keyPEM), "", f.srv.URL)
	_, err = p.VerifyInstallation(context.Background(), wrong, fakeInstallationID)
	if slipway.ErrorCodeOf(err) != slipway.ECodeCredentialsInvalid {
		t.Fatalf("wrong key: %v", err)
	}
	golden(t, "bad_credentials_error", errorSummary(err))
}

func TestTokenCacheOneMintForConcurrentCallers(t *testing.T) {
	f := newFakeGitHub(t, 1)
	f.mintDelay = 20 * time.Millisecond
	app, _ := NewApp(fakeAppID, []byte(f.keyPEM), "", f.srv.URL)
	tc := NewTokenCache(app, f.http, f.clock.Now)

	const callers = 50
	var wg sync.WaitGroup
	tokens := make([]string, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { tokens[i], errs[i] = tc.Token(context.Background(), fakeInstallationID) })
	}
	wg.Wait()
	for i := range callers {
		if errs[i] != nil || tokens[i] == "" || tokens[i] != tokens[0] {
			t.Fatalf("caller %d: %q, %v (first %q)", i, tokens[i], errs[i], tokens[0])
		}
	}
	if n := f.count("POST /api/v3/app/installations/{id}/access_tokens"); n != 1 {
		t.Fatalf("%d callers made %d mints, want 1", callers, n)
	}

	// Cached while more than five minutes remain (tokens live an hour)...
	f.clock.Add(54 * time.Minute)
	if tok, _ := tc.Token(context.Background(), fakeInstallationID); tok != tokens[0] {
		t.Error("token re-minted with 6 minutes left")
	}
	// ...and replaced once fewer remain.
	f.clock.Add(2 * time.Minute)
	tok, err := tc.Token(context.Background(), fakeInstallationID)
	if err != nil || tok == tokens[0] {
		t.Errorf("token not re-minted with 4 minutes left: %v", err)
	}
	if n := f.count("POST /api/v3/app/installations/{id}/access_tokens"); n != 2 {
		t.Errorf("mints = %d, want 2", n)
	}

	// A caller that gives up does not poison the mint for others.
	f.clock.Add(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tc.Token(ctx, fakeInstallationID); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller: %v", err)
	}
	if _, err := tc.Token(context.Background(), fakeInstallationID); err != nil {
		t.Errorf("after a cancelled caller: %v", err)
	}

	// An unknown installation is a clear error, not a cached failure.
	_, err = tc.Token(context.Background(), 424242)
	if slipway.ErrorCodeOf(err) != slipway.ECodeCredentialsInvalid {
		t.Errorf("unknown installation: %v", err)
	}
}

func TestNarrowTokenRequest(t *testing.T) {
	f := newFakeGitHub(t, 3)
	p := f.provider()
	c := f.conn()
	repo := forge.Repo{ID: "1001", FullName: "acme/repo-0001", CloneURL: "https://github.com/acme/repo-0001.git"}
	cred, err := p.CloneCredentials(context.Background(), c, repo)
	if err != nil {
		t.Fatal(err)
	}
	if cred.Username != "x-access-token" || !strings.HasPrefix(cred.Password, "ghs_") || cred.URL != repo.CloneURL ||
		!cred.ExpiresAt.Equal(f.clock.Now().Add(time.Hour).Truncate(time.Second)) {
		t.Errorf("clone credentials = %+v, %s, %s, %v", cred.Username, cred.URL, cred.ExpiresAt, cred.Password != "")
	}
	f.mu.Lock()
	bodies := append([]string(nil), f.tokenBodies...)
	f.mu.Unlock()
	if len(bodies) != 1 || bodies[0] != `{"repository_ids":[1001],"permissions":{"contents":"read"}}`+"\n" {
		t.Errorf("narrow token request body = %q", bodies)
	}
	if strings.Contains(cred.String(), cred.Password) {
		t.Error("CloneCredentials.String leaks the token")
	}
	_, err = p.CloneCredentials(context.Background(), c, forge.Repo{ID: "777", FullName: "someone/public-lib"})
	if slipway.ErrorCodeOf(err) != slipway.ECodeRepoNotVisible {
		t.Errorf("clone outside installation: %v", err)
	}
}

func TestCheck(t *testing.T) {
	f := newFakeGitHub(t, 0)
	p := f.provider()
	res, err := p.Check(context.Background(), f.conn())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "check_ok", res)

	f.mu.Lock()
	f.permissions = map[string]string{"contents": "write", "metadata": "read"}
	f.mu.Unlock()
	res, err = p.Check(context.Background(), f.conn())
	if err != nil || len(res.Problems) != 1 || res.Problems[0].Code != slipway.ECodeScopesMissing {
		t.Fatalf("without statuses:write: %+v, %v", res, err)
	}
	golden(t, "check_no_statuses", res)

	f.mu.Lock()
	f.permissions = map[string]string{"metadata": "read"}
	f.mu.Unlock()
	res, err = p.Check(context.Background(), f.conn())
	if slipway.ErrorCodeOf(err) != slipway.ECodeScopesMissing {
		t.Fatalf("without contents: %v", err)
	}
	if e, _ := slipway.AsError(err); e.Details["missing"] != "contents:read" {
		t.Errorf("missing = %q", e.Details["missing"])
	}
	golden(t, "check_no_contents", res)

	f.mu.Lock()
	f.permissions = map[string]string{"contents": "read", "metadata": "read", "statuses": "write"}
	f.suspended = true
	f.mu.Unlock()
	res, err = p.Check(context.Background(), f.conn())
	if slipway.ErrorCodeOf(err) != slipway.ECodeIntegrationNeedsAttention {
		t.Fatalf("suspended: %v", err)
	}
	golden(t, "check_suspended", res)

	c := f.conn()
	c.Integration.ExternalID = ""
	if _, err := p.Check(context.Background(), c); slipway.ErrorCodeOf(err) != slipway.ECodeIntegrationNeedsAttention {
		t.Errorf("no installation id: %v", err)
	}
}

func TestRepoListerContract(t *testing.T) {
	f := newFakeGitHub(t, 7)
	forgetest.TestRepoLister(t, f.provider(), f.conn(), []string{"1000", "1003", "1006"}, "424242")
}

func TestListRepos(t *testing.T) {
	f := newFakeGitHub(t, 7)
	p := f.provider()
	c := f.conn()
	page, err := p.ListRepos(context.Background(), c, forge.ListOptions{Page: 1, PerPage: 3})
	if err != nil {
		t.Fatal(err)
	}
	if page.NextPage != 2 || len(page.Repos) != 3 || page.ETag == "" {
		t.Fatalf("page 1 = next %d, %d repos, etag %q", page.NextPage, len(page.Repos), page.ETag)
	}
	golden(t, "repos_page1", page)
	last, err := p.ListRepos(context.Background(), c, forge.ListOptions{Page: 3, PerPage: 3})
	if err != nil || last.NextPage != 0 || len(last.Repos) != 1 {
		t.Fatalf("last page = %+v, %v", last, err)
	}

	// Conditional re-request: unchanged → 304, changed → new page and ETag.
	same, notModified, err := p.ListReposIfChanged(context.Background(), c, forge.ListOptions{Page: 1, PerPage: 3}, page.ETag)
	if err != nil || !notModified || same.ETag != page.ETag || len(same.Repos) != 0 || same.NextPage != 2 {
		t.Fatalf("unchanged page: %+v, %v, %v", same, notModified, err)
	}
	f.mu.Lock()
	f.repos[0].FullName = "acme/renamed"
	f.mu.Unlock()
	changed, notModified, err := p.ListReposIfChanged(context.Background(), c, forge.ListOptions{Page: 1, PerPage: 3}, page.ETag)
	if err != nil || notModified || changed.ETag == page.ETag || changed.Repos[0].FullName != "acme/renamed" {
		t.Fatalf("changed page: %+v, %v, %v", changed, notModified, err)
	}

	// Search walks every page and pages through the matches.
	found, err := p.ListRepos(context.Background(), c, forge.ListOptions{Search: "REPO-000", PerPage: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(found.Repos) != 4 || found.NextPage != 2 {
		t.Fatalf("search page 1: %d repos, next %d", len(found.Repos), found.NextPage)
	}
	found2, err := p.ListRepos(context.Background(), c, forge.ListOptions{Search: "REPO-000", PerPage: 4, Page: 2})
	if err != nil || len(found2.Repos) != 2 || found2.NextPage != 0 {
		t.Fatalf("search page 2: %+v, %v", found2, err)
	}
}

func TestGetRepoOutsideInstallation(t *testing.T) {
	f := newFakeGitHub(t, 2)
	p := f.provider()
	r, err := p.GetRepo(context.Background(), f.conn(), "1001")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "repo", r)
	// Public, readable by any token, but not granted to the installation.
	_, err = p.GetRepo(context.Background(), f.conn(), "777")
	if slipway.ErrorCodeOf(err) != slipway.ECodeRepoNotVisible {
		t.Fatalf("public repo outside installation: %v", err)
	}
	golden(t, "repo_not_visible_error", errorSummary(err))
	if _, err := p.GetRepo(context.Background(), f.conn(), "abc"); slipway.ErrorCodeOf(err) != slipway.ECodeRepoNotVisible {
		t.Errorf("non-numeric id: %v", err)
	}
}

var webRepo = forge.Repo{ID: "186853002", FullName: "acme/web", CloneURL: "https://github.com/acme/web.git"}

func TestRefs(t *testing.T) {
	f := newFakeGitHub(t, 0)
	p := f.provider()
	c := f.conn()
	refs, err := p.ListRefs(context.Background(), c, webRepo)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "refs", refs)

	resolved := map[string]slipway.Commit{}
	for _, ref := range []string{"main", "feature/pricing", "v1.4.0", "v1.3.0", shaFeature, shaOld[:7]} {
		cm, err := p.ResolveRef(context.Background(), c, webRepo, ref)
		if err != nil {
			t.Fatalf("ResolveRef(%s): %v", ref, err)
		}
		resolved[ref] = cm
	}
	if resolved["v1.4.0"].SHA != shaMain {
		t.Errorf("annotated tag not peeled: %s", resolved["v1.4.0"].SHA)
	}
	golden(t, "resolved_refs", resolved)

	for _, ref := range []string{"nope", "deadbeef"} {
		_, err := p.ResolveRef(context.Background(), c, webRepo, ref)
		if slipway.ErrorCodeOf(err) != slipway.ECodeRefNotFound {
			t.Errorf("ResolveRef(%s) = %v, want ref_not_found", ref, err)
		}
	}
	_, err = p.ListRefs(context.Background(), c, forge.Repo{ID: "5", FullName: "acme/gone"})
	if slipway.ErrorCodeOf(err) != slipway.ECodeRepoNotVisible {
		t.Errorf("refs of invisible repo: %v", err)
	}
}

func TestChangedFilesAndStatus(t *testing.T) {
	f := newFakeGitHub(t, 0)
	p := f.provider()
	c := f.conn()
	files, err := p.ChangedFiles(context.Background(), c, webRepo, shaOld, shaMain)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "changed_files", files)

	err = p.SetCommitStatus(context.Background(), c, webRepo, shaMain, forge.CommitStatus{
		State: forge.StatusSuccess, Context: "slipway/production/web",
		Description: strings.Repeat("d", 150), TargetURL: "https://slipway.example.com/deployments/dep_1",
	})
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	got := f.statusBodies
	f.mu.Unlock()
	want := shaMain + ` {"state":"success","target_url":"https://slipway.example.com/deployments/dep_1","description":"` +
		strings.Repeat("d", 139) + `…","context":"slipway/production/web"}`
	if len(got) != 1 || got[0] != want {
		t.Errorf("status request = %q\nwant %q", got, want)
	}
}

func TestRateLimited(t *testing.T) {
	f := newFakeGitHub(t, 3)
	p := f.provider()
	c := f.conn()
	if _, err := p.ListRepos(context.Background(), c, forge.ListOptions{}); err != nil { // mint while allowed
		t.Fatal(err)
	}
	f.mu.Lock()
	f.rateLimited = true
	f.mu.Unlock()
	_, err := p.ListRepos(context.Background(), c, forge.ListOptions{})
	if slipway.ErrorCodeOf(err) != slipway.ECodeRateLimited {
		t.Fatalf("rate limited: %v", err)
	}
	golden(t, "rate_limited_error", errorSummary(err))
	reset := f.clock.Now().Add(17 * time.Minute).UTC().Format(time.RFC3339)
	if !strings.Contains(slipway.ErrorMessageOf(err), reset) {
		t.Errorf("message %q lacks reset time %s", slipway.ErrorMessageOf(err), reset)
	}
}

func TestSecondaryRateLimit(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	resp := &http.Response{StatusCode: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"90"}}}
	e := rateLimitError("list branches", resp, now)
	if e == nil || e.Code != slipway.ECodeRateLimited || !strings.Contains(e.Message, "2026-03-02T10:01:30Z") {
		t.Errorf("Retry-After: %+v", e)
	}
	if rateLimitError("x", &http.Response{StatusCode: http.StatusForbidden, Header: http.Header{}}, now) != nil {
		t.Error("plain 403 reported as a rate limit")
	}
}

func TestUnreachable(t *testing.T) {
	f := newFakeGitHub(t, 0)
	c := f.conn()
	f.srv.Close()
	_, err := f.provider().ListRepos(context.Background(), c, forge.ListOptions{})
	if slipway.ErrorCodeOf(err) != slipway.ECodeProviderUnreachable {
		t.Errorf("closed server: %v", err)
	}
}
