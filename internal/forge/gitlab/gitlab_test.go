package gitlab

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/forgetest"
)

func conn(f *fakeGitLab, method slipway.AuthMethod) *forge.Conn {
	return &forge.Conn{
		Integration: slipway.Integration{Provider: slipway.ProviderGitLab, AuthMethod: method, BaseURL: f.srv.URL},
		Secret:      forge.Secret{Token: testToken},
		HTTP:        f.http,
	}
}

func signToken(h http.Header, _ []byte, secret string) { h.Set("X-Gitlab-Token", secret) }

func TestParseHookContract(t *testing.T) {
	cases := forgetest.LoadHookCases(t, "testdata/hooks")
	forgetest.TestHookParser(t, New(nil), signToken, cases, "testdata/golden")
}

func FuzzParseHook(f *testing.F) {
	forgetest.FuzzHookParser(f, New(nil), signToken, forgetest.LoadHookCases(f, "testdata/hooks"))
}

func TestParseHookRejectsEmptySecret(t *testing.T) {
	h := http.Header{"X-Gitlab-Event": {"Push Hook"}, "X-Gitlab-Token": {""}}
	if _, err := New(nil).ParseHook(h, []byte(`{}`), ""); !errors.Is(err, forge.ErrBadSignature) {
		t.Fatalf("empty secret: got %v, want ErrBadSignature", err)
	}
}

func TestRepoListerContract(t *testing.T) {
	f := newFakeGitLab(t)
	forgetest.TestRepoLister(t, New(nil), conn(f, slipway.AuthToken), []string{"11", "12", "13", "14", "15"}, "999")
}

func TestListReposGolden(t *testing.T) {
	f := newFakeGitLab(t)
	page, err := New(nil).ListRepos(context.Background(), conn(f, slipway.AuthToken), forge.ListOptions{Page: 2, PerPage: 2})
	if err != nil {
		t.Fatal(err)
	}
	if page.NextPage != 3 {
		t.Errorf("NextPage = %d, want 3", page.NextPage)
	}
	r := f.last()
	for _, want := range []string{"membership=true", "min_access_level=20", "page=2", "per_page=2", "order_by=id"} {
		if !strings.Contains(r.Query, want) {
			t.Errorf("list query %q lacks %q", r.Query, want)
		}
	}
	if r.Auth != testToken {
		t.Errorf("PRIVATE-TOKEN = %q, want the token", r.Auth)
	}
	forgetest.CompareGolden(t, "testdata/golden/api/list_repos_page2.json", page)

	found, err := New(nil).ListRepos(context.Background(), conn(f, slipway.AuthToken), forge.ListOptions{Search: "service-13"})
	if err != nil || len(found.Repos) != 1 || found.Repos[0].ID != "13" || found.NextPage != 0 {
		t.Errorf("search = %+v, %v; want only project 13", found, err)
	}
	if q := f.last().Query; !strings.Contains(q, "search=service-13") {
		t.Errorf("search query %q lacks search=service-13", q)
	}
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	t.Run("token with api", func(t *testing.T) {
		f := newFakeGitLab(t)
		res, err := New(nil).Check(ctx, conn(f, slipway.AuthToken))
		if err != nil {
			t.Fatal(err)
		}
		forgetest.CompareGolden(t, "testdata/golden/api/check_ok.json", res)
	})
	t.Run("oauth scopes from token info", func(t *testing.T) {
		f := newFakeGitLab(t)
		res, err := New(nil).Check(ctx, conn(f, slipway.AuthOAuth))
		if err != nil {
			t.Fatal(err)
		}
		if r := f.last(); r.Path != "/oauth/token/info" || r.Auth != "Bearer "+testToken {
			t.Errorf("last request %s with auth %q, want /oauth/token/info with the bearer token", r.Path, r.Auth)
		}
		if len(res.Scopes) != 1 || res.Scopes[0] != "api" {
			t.Errorf("scopes = %v", res.Scopes)
		}
	})
	t.Run("missing scopes named", func(t *testing.T) {
		f := newFakeGitLab(t)
		f.scopes = []string{"read_api", "read_repository"}
		res, err := New(nil).Check(ctx, conn(f, slipway.AuthToken))
		e, ok := slipway.AsError(err)
		if !ok || e.Code != slipway.ECodeScopesMissing || e.Details["missing"] != "api" || !strings.Contains(e.Message, "api") {
			t.Fatalf("err = %#v, want scopes_missing naming api", err)
		}
		if len(res.Missing) != 1 || res.Missing[0] != "api" {
			t.Errorf("Missing = %v", res.Missing)
		}
	})
	t.Run("revoked token", func(t *testing.T) {
		f := newFakeGitLab(t)
		c := conn(f, slipway.AuthToken)
		c.Secret.Token = "glpat-revoked"
		_, err := New(nil).Check(ctx, c)
		if code := slipway.ErrorCodeOf(err); code != slipway.ECodeCredentialsInvalid {
			t.Fatalf("code = %s (%v), want credentials_invalid", code, err)
		}
		if strings.Contains(err.Error(), "glpat-revoked") {
			t.Errorf("error leaks the token: %v", err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		c := &forge.Conn{Integration: slipway.Integration{AuthMethod: slipway.AuthToken, BaseURL: url}, Secret: forge.Secret{Token: testToken}}
		_, err := New(nil).Check(ctx, c)
		if code := slipway.ErrorCodeOf(err); code != slipway.ECodeProviderUnreachable {
			t.Fatalf("code = %s (%v), want provider_unreachable", code, err)
		}
	})
}

func TestRateLimited(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusForbidden} {
		f := newFakeGitLab(t)
		f.override["/api/v4/projects"] = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("RateLimit-Limit", "2000")
			w.Header().Set("RateLimit-Remaining", "0")
			w.Header().Set("RateLimit-Reset", "1767225600")
			w.Header().Set("Retry-After", "42")
			writeJSON(w, status, map[string]any{"message": "Retry later"})
		}
		_, err := New(nil).ListRepos(context.Background(), conn(f, slipway.AuthToken), forge.ListOptions{})
		e, ok := slipway.AsError(err)
		if !ok || e.Code != slipway.ECodeRateLimited || e.Details["retry_after"] != "42" {
			t.Errorf("status %d: err = %#v, want rate_limited with retry_after", status, err)
		}
	}
}

func TestForbiddenWithoutRateLimitIsNotRateLimited(t *testing.T) {
	f := newFakeGitLab(t)
	f.override["/api/v4/projects/11/hooks"] = func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusForbidden, map[string]any{"error": "insufficient_scope", "error_description": "The request requires higher privileges than provided by the access token.", "scope": "api"})
	}
	_, err := New(nil).InstallHook(context.Background(), conn(f, slipway.AuthToken), forge.Repo{ID: "11", FullName: "acme/service-11"}, forge.HookConfig{URL: "https://x.test/h", Secret: "s"})
	if code := slipway.ErrorCodeOf(err); code != slipway.ECodeScopesMissing {
		t.Fatalf("code = %s (%v), want scopes_missing", code, err)
	}
}

func TestRefs(t *testing.T) {
	f := newFakeGitLab(t)
	p, c, ctx := New(nil), conn(f, slipway.AuthToken), context.Background()
	repo := forge.Repo{ID: "11", FullName: "acme/service-11"}
	refs, err := p.ListRefs(ctx, c, repo)
	if err != nil {
		t.Fatal(err)
	}
	forgetest.CompareGolden(t, "testdata/golden/api/list_refs.json", refs)

	cm, err := p.ResolveRef(ctx, c, repo, "feature/login")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.last().Path; got != "/api/v4/projects/11/repository/commits/feature%2Flogin" {
		t.Errorf("resolve path = %s, want the ref escaped as one segment", got)
	}
	forgetest.CompareGolden(t, "testdata/golden/api/resolve_ref.json", cm)

	if _, err := p.ResolveRef(ctx, c, repo, "nope"); slipway.ErrorCodeOf(err) != slipway.ECodeRefNotFound {
		t.Errorf("unknown ref: %v, want ref_not_found", err)
	}
}

func TestHooksInstallAndRemove(t *testing.T) {
	f := newFakeGitLab(t)
	p, c, ctx := New(nil), conn(f, slipway.AuthToken), context.Background()
	repo := forge.Repo{ID: "12", FullName: "acme/service-12"}
	id, err := p.InstallHook(ctx, c, repo, forge.HookConfig{URL: "https://slipway.example.test/hooks/gitlab/int_1", Secret: "per-hook-secret"})
	if err != nil || id != "1042" {
		t.Fatalf("InstallHook = %q, %v", id, err)
	}
	r := f.last()
	if r.Method != http.MethodPost || r.Path != "/api/v4/projects/12/hooks" {
		t.Errorf("install request %s %s", r.Method, r.Path)
	}
	for k, want := range map[string]any{"url": "https://slipway.example.test/hooks/gitlab/int_1", "token": "per-hook-secret", "push_events": true, "tag_push_events": true, "enable_ssl_verification": true} {
		if r.Body[k] != want {
			t.Errorf("hook body %s = %v, want %v", k, r.Body[k], want)
		}
	}
	if err := p.RemoveHook(ctx, c, repo, id); err != nil {
		t.Errorf("RemoveHook: %v", err)
	}
	if r := f.last(); r.Method != http.MethodDelete || r.Path != "/api/v4/projects/12/hooks/1042" {
		t.Errorf("remove request %s %s", r.Method, r.Path)
	}
	if err := p.RemoveHook(ctx, c, repo, "7"); err != nil {
		t.Errorf("removing a gone hook: %v, want success", err)
	}
}

func TestChangedFiles(t *testing.T) {
	f := newFakeGitLab(t)
	files, err := New(nil).ChangedFiles(context.Background(), conn(f, slipway.AuthToken), forge.Repo{ID: "11"}, "aaaa", "bbbb")
	if err != nil {
		t.Fatal(err)
	}
	if q := f.last().Query; !strings.Contains(q, "from=aaaa") || !strings.Contains(q, "to=bbbb") || !strings.Contains(q, "straight=true") {
		t.Errorf("compare query = %q", q)
	}
	forgetest.CompareGolden(t, "testdata/golden/api/changed_files.json", files)
}

func TestSetCommitStatus(t *testing.T) {
	f := newFakeGitLab(t)
	p, c, ctx := New(nil), conn(f, slipway.AuthOAuth), context.Background()
	err := p.SetCommitStatus(ctx, c, forge.Repo{ID: "11"}, "7b5c3cc8", forge.CommitStatus{State: forge.StatusFailure, Context: "slipway/production/web", Description: "Build failed", TargetURL: "https://slipway.example.test/d/1"})
	if err != nil {
		t.Fatal(err)
	}
	r := f.last()
	if r.Path != "/api/v4/projects/11/statuses/7b5c3cc8" || r.Auth != "Bearer "+testToken {
		t.Errorf("status request %s auth %q", r.Path, r.Auth)
	}
	for k, want := range map[string]any{"state": "failed", "name": "slipway/production/web", "description": "Build failed", "target_url": "https://slipway.example.test/d/1"} {
		if r.Body[k] != want {
			t.Errorf("status body %s = %v, want %v", k, r.Body[k], want)
		}
	}

	f.override["/api/v4/projects/11/statuses/"] = func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "Cannot transition status via :run from :running"})
	}
	if err := p.SetCommitStatus(ctx, c, forge.Repo{ID: "11"}, "7b5c3cc8", forge.CommitStatus{State: forge.StatusPending, Context: "slipway"}); err != nil {
		t.Errorf("repeating the current state: %v, want success", err)
	}
}

func TestCloneCredentials(t *testing.T) {
	c := &forge.Conn{
		Integration: slipway.Integration{BaseURL: "https://gitlab.example.test", InternalURL: "http://gitlab.internal:8080"},
		Secret:      forge.Secret{Token: "tok"},
	}
	cred, err := New(nil).CloneCredentials(context.Background(), c, forge.Repo{CloneURL: "https://gitlab.example.test/acme/web.git"})
	if err != nil {
		t.Fatal(err)
	}
	if cred.URL != "http://gitlab.internal:8080/acme/web.git" || cred.Username != "oauth2" || cred.Password != "tok" {
		t.Errorf("credentials = %s %s (password set: %v)", cred.URL, cred.Username, cred.Password == "tok")
	}
}

func TestOAuth(t *testing.T) {
	p := New(nil)
	ep := p.OAuthEndpoint("https://gitlab.example.test/")
	if ep.AuthURL != "https://gitlab.example.test/oauth/authorize" || ep.TokenURL != "https://gitlab.example.test/oauth/token" {
		t.Errorf("endpoint = %+v", ep)
	}
	if s := p.OAuthScopes(); len(s) != 1 || s[0] != "api" {
		t.Errorf("scopes = %v", s)
	}
	if p.Kind() != slipway.ProviderGitLab {
		t.Errorf("Kind = %s", p.Kind())
	}
}

// TestDeliveryKeyUniquePerDelivery: before GitLab 17.4 one request runs
// the same project hook once per ref with one X-Gitlab-Event-UUID; each
// run must keep its own delivery key (or the receiver's dedupe drops a
// ref), while a retry of one run keeps its key.
func TestDeliveryKeyUniquePerDelivery(t *testing.T) {
	cases := map[string]forgetest.HookCase{}
	for _, c := range forgetest.LoadHookCases(t, "testdata/hooks") {
		cases[c.Name] = c
	}
	parse := func(c forgetest.HookCase) slipway.Event {
		t.Helper()
		h := c.Header.Clone()
		h.Set("X-Gitlab-Token", "s3cret")
		ev, err := New(nil).ParseHook(h, c.Body, "s3cret")
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		return ev
	}
	branch, tag := parse(cases["multi_ref_1_branch"]), parse(cases["multi_ref_2_tag"])
	if cases["multi_ref_1_branch"].Header.Get("X-Gitlab-Event-UUID") != cases["multi_ref_2_tag"].Header.Get("X-Gitlab-Event-UUID") {
		t.Fatal("the fixtures must share one event UUID, as GitLab before 17.4 sends")
	}
	if branch.DeliveryID == "" || branch.DeliveryID == tag.DeliveryID {
		t.Errorf("two hook runs of one request share delivery key %q", branch.DeliveryID)
	}
	if again := parse(cases["multi_ref_1_branch"]); again.DeliveryID != branch.DeliveryID {
		t.Errorf("a retry changed the delivery key: %q then %q", branch.DeliveryID, again.DeliveryID)
	}
	// 17.4 and later: Idempotency-Key is the key as sent.
	push := cases["push"]
	if got := parse(push).DeliveryID; got != push.Header.Get("Idempotency-Key") {
		t.Errorf("with Idempotency-Key the key is %q", got)
	}
	// No UUID at all (old instances): still one key per body.
	old := cases["multi_ref_1_branch"]
	old.Header = old.Header.Clone()
	old.Header.Del("X-Gitlab-Event-UUID")
	if got := parse(old).DeliveryID; got == "" || got == branch.DeliveryID {
		t.Errorf("without an event UUID the key is %q", got)
	}
}
