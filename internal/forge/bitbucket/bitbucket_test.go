package bitbucket

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/forgetest"
)

func conn(f *fakeBitbucket, method slipway.AuthMethod) *forge.Conn {
	return &forge.Conn{
		Integration: slipway.Integration{Provider: slipway.ProviderBitbucket, AuthMethod: method, BaseURL: WebRoot},
		Secret:      forge.Secret{Token: testToken, Username: "jane@example.test"},
		HTTP:        f.http,
	}
}

func sign(h http.Header, body []byte, secret string) { h.Set("X-Hub-Signature", Sign(body, secret)) }

func TestParseHookContract(t *testing.T) {
	forgetest.TestHookParser(t, New(nil), sign, forgetest.LoadHookCases(t, "testdata/hooks"), "testdata/golden")
}

func FuzzParseHook(f *testing.F) {
	forgetest.FuzzHookParser(f, New(nil), sign, forgetest.LoadHookCases(f, "testdata/hooks"))
}

func TestParseHookEventsOnePerRef(t *testing.T) {
	body, err := os.ReadFile("testdata/hooks/push_branch_and_tag.json")
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"X-Event-Key": {"repo:push"}, "X-Request-Uuid": {"r-1"}}
	sign(h, body, "s3cret")
	evs, err := New(nil).ParseHookEvents(h, body, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Kind != slipway.EventPush || evs[1].Kind != slipway.EventTag {
		t.Fatalf("events = %+v, want a push then a tag", evs)
	}
	forgetest.CompareGolden(t, "testdata/golden/multi/push_branch_and_tag.json", evs)
}

func TestVerifySignature(t *testing.T) {
	body := []byte(`{"a":1}`)
	h := http.Header{"X-Hub-Signature": {Sign(body, "k")}}
	if !VerifySignature(h, body, "k") {
		t.Error("valid signature refused")
	}
	for name, hdr := range map[string]string{"sha1 prefix": "sha1=" + strings.TrimPrefix(Sign(body, "k"), "sha256="), "not hex": "sha256=zz", "empty": ""} {
		if VerifySignature(http.Header{"X-Hub-Signature": {hdr}}, body, "k") {
			t.Errorf("%s accepted", name)
		}
	}
	if VerifySignature(http.Header{"X-Hub-Signature": {Sign(body, "")}}, body, "") {
		t.Error("empty secret accepted")
	}
}

func TestRepoListerContract(t *testing.T) {
	f := newFake(t)
	var ids []string
	for n := 1; n <= 5; n++ {
		ids = append(ids, repoUUID(n))
	}
	forgetest.TestRepoLister(t, New(nil), conn(f, slipway.AuthOAuth), ids, "{99999999-0000-4000-8000-000000000000}")
	if _, err := New(nil).GetRepo(context.Background(), conn(f, slipway.AuthOAuth), "acme/svc-1"); slipway.ErrorCodeOf(err) != slipway.ECodeRepoNotVisible {
		t.Errorf("GetRepo(non-uuid) = %v, want repository_not_visible", err)
	}
}

func TestListRepos(t *testing.T) {
	f := newFake(t)
	p, ctx := New(nil), context.Background()
	page, err := p.ListRepos(ctx, conn(f, slipway.AuthOAuth), forge.ListOptions{Page: 1, PerPage: 2})
	if err != nil {
		t.Fatal(err)
	}
	r := f.last()
	if r.Path != "/2.0/repositories/acme" || r.Auth != "Bearer "+testToken {
		t.Errorf("request %s?%s auth %q", r.Path, r.Query, r.Auth)
	}
	forgetest.CompareGolden(t, "testdata/golden/api/list_repos_page1.json", page)

	// A user's listing walks every workspace they belong to, and ends.
	var all []string
	for pg := 1; pg != 0; {
		res, err := p.ListRepos(ctx, conn(f, slipway.AuthOAuth), forge.ListOptions{Page: pg, PerPage: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Repos {
			all = append(all, r.FullName)
		}
		if res.NextPage != 0 && res.NextPage <= pg {
			t.Fatalf("page %d → next %d: the listing would not end", pg, res.NextPage)
		}
		pg = res.NextPage
	}
	if strings.Join(all, " ") != "acme/svc-1 acme/svc-2 acme/svc-3 acme/svc-4 acme/svc-5" {
		t.Errorf("all pages = %v", all)
	}
	f.mu.Lock()
	for _, r := range f.requests {
		if r.Path == "/2.0/repositories" {
			t.Errorf("the removed cross-workspace listing was called: %s?%s", r.Path, r.Query)
		}
	}
	f.mu.Unlock()

	c := conn(f, slipway.AuthBasicToken)
	c.Integration.Settings = map[string]string{"workspace": "acme"}
	found, err := p.ListRepos(ctx, c, forge.ListOptions{Search: `svc-3`})
	if err != nil || len(found.Repos) != 1 || found.Repos[0].FullName != "acme/svc-3" {
		t.Fatalf("search = %+v, %v", found, err)
	}
	r = f.last()
	if r.Path != "/2.0/repositories/acme" || !strings.Contains(r.Query, "q=name+~+%22svc-3%22") {
		t.Errorf("workspace search request %s?%s", r.Path, r.Query)
	}
	if !strings.HasPrefix(r.Auth, "Basic ") {
		t.Errorf("API token auth = %q, want basic", r.Auth)
	}
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	t.Run("oauth scopes", func(t *testing.T) {
		f := newFake(t)
		res, err := New(nil).Check(ctx, conn(f, slipway.AuthOAuth))
		if err != nil {
			t.Fatal(err)
		}
		forgetest.CompareGolden(t, "testdata/golden/api/check_ok.json", res)
	})
	t.Run("missing scopes named", func(t *testing.T) {
		f := newFake(t)
		f.scopes = "account, repository"
		res, err := New(nil).Check(ctx, conn(f, slipway.AuthOAuth))
		e, ok := slipway.AsError(err)
		if !ok || e.Code != slipway.ECodeScopesMissing || e.Details["missing"] != "webhook" || !strings.Contains(e.Message, "webhook") {
			t.Fatalf("err = %v, want scopes_missing naming webhook", err)
		}
		if len(res.Missing) != 1 {
			t.Errorf("Missing = %v", res.Missing)
		}
	})
	t.Run("workspace access token", func(t *testing.T) {
		f := newFake(t)
		f.override["/2.0/user"] = func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"type": "error", "error": map[string]any{"message": "This API is not accessible with access tokens"}})
		}
		c := conn(f, slipway.AuthToken)
		c.Integration.AccountName = "acme"
		res, err := New(nil).Check(ctx, c)
		if err != nil || res.Account != "acme" {
			t.Fatalf("Check = %+v, %v", res, err)
		}
	})
	t.Run("expired token", func(t *testing.T) {
		f := newFake(t)
		c := conn(f, slipway.AuthOAuth)
		c.Secret.Token = "expired"
		if _, err := New(nil).Check(ctx, c); slipway.ErrorCodeOf(err) != slipway.ECodeCredentialsInvalid {
			t.Fatalf("err = %v, want credentials_invalid", err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		c := &forge.Conn{Integration: slipway.Integration{AuthMethod: slipway.AuthOAuth}, Secret: forge.Secret{Token: testToken},
			HTTP: apiDoc.NewTransport(t, srv.URL).Client()}
		if _, err := New(nil).Check(ctx, c); slipway.ErrorCodeOf(err) != slipway.ECodeProviderUnreachable {
			t.Fatalf("err = %v, want provider_unreachable", err)
		}
	})
}

func TestRateLimited(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusForbidden} {
		f := newFake(t)
		f.override["/2.0/repositories/acme"] = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "30")
			w.Header().Set("X-RateLimit-Limit", "1000")
			w.Header().Set("X-RateLimit-Resource", "api-repositories")
			writeJSON(w, status, map[string]any{"type": "error", "error": map[string]any{"message": "Rate limit for this resource has been exceeded"}})
		}
		c := conn(f, slipway.AuthOAuth)
		c.Integration.Settings = map[string]string{"workspace": "acme"}
		_, err := New(nil).ListRepos(context.Background(), c, forge.ListOptions{})
		e, ok := slipway.AsError(err)
		if !ok || e.Code != slipway.ECodeRateLimited || e.Details["retry_after"] != "30" || e.Details["resource"] != "api-repositories" {
			t.Errorf("status %d: err = %v, want rate_limited with details", status, err)
		}
	}
}

func TestRefs(t *testing.T) {
	f := newFake(t)
	p, c, ctx := New(nil), conn(f, slipway.AuthOAuth), context.Background()
	repo := forge.Repo{ID: repoUUID(1), FullName: "acme/svc-1"}
	refs, err := p.ListRefs(ctx, c, repo)
	if err != nil {
		t.Fatal(err)
	}
	forgetest.CompareGolden(t, "testdata/golden/api/list_refs.json", refs)
	for ref, want := range map[string]string{"feature/login": "c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2", "v1.0.0": "d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3", "abc1234": "abc1234000000000000000000000000000000000"} {
		cm, err := p.ResolveRef(ctx, c, repo, ref)
		if err != nil || cm.SHA != want {
			t.Errorf("ResolveRef(%s) = %+v, %v; want %s", ref, cm, err, want)
		}
	}
	cm, _ := p.ResolveRef(ctx, c, repo, "feature/login")
	forgetest.CompareGolden(t, "testdata/golden/api/resolve_ref.json", cm)
	if _, err := p.ResolveRef(ctx, c, repo, "nope"); slipway.ErrorCodeOf(err) != slipway.ECodeRefNotFound {
		t.Errorf("unknown ref: %v, want ref_not_found", err)
	}
}

func TestHooks(t *testing.T) {
	f := newFake(t)
	p, c, ctx := New(nil), conn(f, slipway.AuthOAuth), context.Background()
	repo := forge.Repo{ID: repoUUID(1), FullName: "acme/svc-1"}
	id, err := p.InstallHook(ctx, c, repo, forge.HookConfig{URL: "https://slipway.example.test/hooks/bitbucket/int_1", Secret: "per-hook"})
	if err != nil || id != "{11111111-2222-4333-8444-555555555555}" {
		t.Fatalf("InstallHook = %q, %v", id, err)
	}
	r := f.last()
	if r.Method != http.MethodPost || r.Path != "/2.0/repositories/acme/svc-1/hooks" || r.Body["secret"] != "per-hook" || r.Body["active"] != true || r.Body["url"] != "https://slipway.example.test/hooks/bitbucket/int_1" {
		t.Errorf("install request %s %s %v", r.Method, r.Path, r.Body)
	}
	if ev, _ := r.Body["events"].([]any); len(ev) != 3 || ev[0] != "repo:push" || ev[2] != "repo:transfer" {
		t.Errorf("events = %v", r.Body["events"])
	}
	if err := p.RemoveHook(ctx, c, repo, id); err != nil {
		t.Errorf("RemoveHook: %v", err)
	}
	if r := f.last(); r.Method != http.MethodDelete {
		t.Errorf("remove method %s", r.Method)
	}
	if err := p.RemoveHook(ctx, c, repo, "{gone}"); err != nil {
		t.Errorf("removing a gone hook: %v", err)
	}
}

func TestChangedFilesFollowsPages(t *testing.T) {
	f := newFake(t)
	files, err := New(nil).ChangedFiles(context.Background(), conn(f, slipway.AuthOAuth), forge.Repo{FullName: "acme/svc-1"}, "aaaa", "bbbb")
	if err != nil {
		t.Fatal(err)
	}
	forgetest.CompareGolden(t, "testdata/golden/api/changed_files.json", files)
	f.mu.Lock()
	first := f.requests[0]
	f.mu.Unlock()
	if first.Path != "/2.0/repositories/acme/svc-1/diffstat/bbbb..aaaa" || !strings.Contains(first.Query, "topic=false") {
		t.Errorf("diffstat request %s?%s", first.Path, first.Query)
	}
}

func TestSetCommitStatus(t *testing.T) {
	f := newFake(t)
	long := "slipway/production/a-rather-long-service-name-here"
	err := New(nil).SetCommitStatus(context.Background(), conn(f, slipway.AuthOAuth), forge.Repo{FullName: "acme/svc-1", HTMLURL: "https://bitbucket.org/acme/svc-1"}, "b1b1",
		forge.CommitStatus{State: forge.StatusSuccess, Context: long, Description: "Live"})
	if err != nil {
		t.Fatal(err)
	}
	r := f.last()
	if r.Path != "/2.0/repositories/acme/svc-1/commit/b1b1/statuses/build" || r.Body["state"] != "SUCCESSFUL" || r.Body["name"] != long || r.Body["url"] != "https://bitbucket.org/acme/svc-1" {
		t.Errorf("status request %s %v", r.Path, r.Body)
	}
	if k, _ := r.Body["key"].(string); len(k) > 40 || k != statusKey(long) {
		t.Errorf("key %q is not the stable ≤40-char key", k)
	}
}

func TestCloneCredentials(t *testing.T) {
	ctx := context.Background()
	repo := forge.Repo{FullName: "acme/svc-1", CloneURL: "https://jdoe@bitbucket.org/acme/svc-1.git"}
	for method, user := range map[slipway.AuthMethod]string{slipway.AuthOAuth: "x-token-auth", slipway.AuthToken: "x-token-auth", slipway.AuthBasicToken: "x-bitbucket-api-token-auth"} {
		c := &forge.Conn{Integration: slipway.Integration{AuthMethod: method}, Secret: forge.Secret{Token: "t", Username: "jane@example.test"}}
		cred, err := New(nil).CloneCredentials(ctx, c, repo)
		if err != nil || cred.Username != user || cred.Password != "t" || cred.URL != "https://bitbucket.org/acme/svc-1.git" {
			t.Errorf("%s: %s %s, %v", method, cred.URL, cred.Username, err)
		}
	}
}

func TestOAuth(t *testing.T) {
	ep := New(nil).OAuthEndpoint("")
	if ep.AuthURL != "https://bitbucket.org/site/oauth2/authorize" || ep.TokenURL != "https://bitbucket.org/site/oauth2/access_token" {
		t.Errorf("endpoint = %+v", ep)
	}
	if got := strings.Join(New(nil).OAuthScopes(), " "); got != "repository account webhook" {
		t.Errorf("scopes = %q", got)
	}
}

func TestIgnoredIsNotBadSignature(t *testing.T) {
	body := []byte(`{}`)
	h := http.Header{"X-Event-Key": {"issue:created"}}
	sign(h, body, "k")
	if _, err := New(nil).ParseHook(h, body, "k"); !errors.Is(err, forge.ErrIgnored) {
		t.Errorf("err = %v, want ErrIgnored", err)
	}
}
