package azuredevops

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/forgetest"
)

func conn(f *fakeAzureDevOps) *forge.Conn {
	return &forge.Conn{
		Integration: slipway.Integration{Provider: slipway.ProviderAzureDevOps, AuthMethod: slipway.AuthToken, BaseURL: f.srv.URL + "/org"},
		Secret:      forge.Secret{Token: testPAT},
		HTTP:        f.http,
	}
}

func sign(h http.Header, _ []byte, secret string) { h.Set("Authorization", BasicAuth(secret)) }

func TestParseHookContract(t *testing.T) {
	forgetest.TestHookParser(t, New(nil), sign, forgetest.LoadHookCases(t, "testdata/hooks"), "testdata/golden")
}

func FuzzParseHook(f *testing.F) {
	forgetest.FuzzHookParser(f, New(nil), sign, forgetest.LoadHookCases(f, "testdata/hooks"))
}

func TestVerifyBasicAuth(t *testing.T) {
	if VerifyBasicAuth(http.Header{"Authorization": {BasicAuth("")}}, "") {
		t.Error("empty secret accepted")
	}
	if VerifyBasicAuth(http.Header{"Authorization": {"Bearer x"}}, "x") {
		t.Error("bearer accepted")
	}
	if !VerifyBasicAuth(http.Header{"Authorization": {BasicAuth("s")}}, "s") {
		t.Error("valid secret refused")
	}
}

func TestParseHookEventsOnePerRef(t *testing.T) {
	body, err := os.ReadFile("testdata/hooks/git_push.json")
	if err != nil {
		t.Fatal(err)
	}
	multi := strings.Replace(string(body), `"refUpdates": [`, `"refUpdates": [
        {"name": "refs/tags/v3.0.0", "oldObjectId": "0000000000000000000000000000000000000000", "newObjectId": "33b55f7cb7e7e245323987634f960cf4a6e6bc74"},`, 1)
	evs, err := New(nil).ParseHookEvents(http.Header{"Authorization": {BasicAuth("k")}}, []byte(multi), "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Kind != slipway.EventTag || evs[1].Kind != slipway.EventPush || evs[0].DeliveryID != evs[1].DeliveryID {
		t.Fatalf("events = %+v", evs)
	}
}

func TestRepoListerContract(t *testing.T) {
	f := newFake(t)
	var ids []string
	for n := 1; n <= 5; n++ {
		ids = append(ids, repoGUID(n))
	}
	forgetest.TestRepoLister(t, New(nil), conn(f), ids, "00000000-0000-4000-8000-000000000000")
	if r := f.last(); !strings.HasPrefix(r.Auth, "Basic ") {
		t.Errorf("auth = %q, want basic", r.Auth)
	}
}

func TestListReposSortedAndSearched(t *testing.T) {
	f := newFake(t)
	page, err := New(nil).ListRepos(context.Background(), conn(f), forge.ListOptions{Page: 1, PerPage: 3})
	if err != nil {
		t.Fatal(err)
	}
	forgetest.CompareGolden(t, "testdata/golden/api/list_repos_page1.json", page)
	found, err := New(nil).ListRepos(context.Background(), conn(f), forge.ListOptions{Search: "beta/"})
	if err != nil || len(found.Repos) != 2 {
		t.Errorf("search beta/ = %+v, %v; want the two Beta repositories", found, err)
	}
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	t.Run("ok", func(t *testing.T) {
		f := newFake(t)
		res, err := New(nil).Check(ctx, conn(f))
		if err != nil {
			t.Fatal(err)
		}
		forgetest.CompareGolden(t, "testdata/golden/api/check_ok.json", res)
	})
	t.Run("service hooks scope missing", func(t *testing.T) {
		f := newFake(t)
		f.override["_apis/hooks/subscriptions"] = func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "TF400813: The user is not authorized to access this resource.", "typeKey": "UnauthorizedRequestException"})
		}
		res, err := New(nil).Check(ctx, conn(f))
		e, ok := slipway.AsError(err)
		if !ok || e.Code != slipway.ECodeScopesMissing || e.Details["missing"] != scopeServiceHooks || !strings.Contains(e.Message, "Service Hooks") {
			t.Fatalf("err = %v, want scopes_missing naming Service Hooks", err)
		}
		if len(res.Missing) != 1 || len(res.Scopes) != 1 {
			t.Errorf("scopes = %v, missing = %v", res.Scopes, res.Missing)
		}
	})
	t.Run("bad token", func(t *testing.T) {
		f := newFake(t)
		c := conn(f)
		c.Secret.Token = "pat-zz-9183"
		if _, err := New(nil).Check(ctx, c); slipway.ErrorCodeOf(err) != slipway.ECodeCredentialsInvalid || strings.Contains(err.Error(), "pat-zz-9183") {
			t.Fatalf("err = %v, want credentials_invalid without the token", err)
		}
	})
	t.Run("sign-in page", func(t *testing.T) {
		f := newFake(t)
		f.override["_apis/connectionData"] = func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-TFS-FedAuthRedirect") != "Suppress" {
				t.Error("request lacks X-TFS-FedAuthRedirect: Suppress")
			}
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusNonAuthoritativeInfo)
			_, _ = w.Write([]byte("<html>Sign in</html>"))
		}
		if _, err := New(nil).Check(ctx, conn(f)); slipway.ErrorCodeOf(err) != slipway.ECodeCredentialsInvalid {
			t.Fatalf("err = %v, want credentials_invalid", err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		c := &forge.Conn{Integration: slipway.Integration{BaseURL: srv.URL + "/org"}, Secret: forge.Secret{Token: testPAT}}
		if _, err := New(nil).Check(ctx, c); slipway.ErrorCodeOf(err) != slipway.ECodeProviderUnreachable {
			t.Fatalf("err = %v, want provider_unreachable", err)
		}
	})
}

func TestRateLimited(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusForbidden} {
		f := newFake(t)
		f.override["_apis/git/repositories"] = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "12")
			w.Header().Set("X-RateLimit-Resource", "Core")
			w.Header().Set("X-RateLimit-Delay", "2.5")
			writeJSON(w, status, map[string]any{"message": "Request was blocked due to exceeding usage of resource 'Core'"})
		}
		_, err := New(nil).ListRepos(context.Background(), conn(f), forge.ListOptions{})
		e, ok := slipway.AsError(err)
		if !ok || e.Code != slipway.ECodeRateLimited || e.Details["retry_after"] != "12" || e.Details["resource"] != "Core" {
			t.Errorf("status %d: err = %v, want rate_limited", status, err)
		}
	}
}

func TestRefs(t *testing.T) {
	f := newFake(t)
	p, c, ctx := New(nil), conn(f), context.Background()
	repo := forge.Repo{ID: repoGUID(1), FullName: "Alpha/svc-1"}
	refs, err := p.ListRefs(ctx, c, repo)
	if err != nil {
		t.Fatal(err)
	}
	forgetest.CompareGolden(t, "testdata/golden/api/list_refs.json", refs)
	for ref, want := range map[string]string{"main": "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1", "v1.0.0": "d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3"} {
		cm, err := p.ResolveRef(ctx, c, repo, ref)
		if err != nil || cm.SHA != want {
			t.Errorf("ResolveRef(%s) = %+v, %v; want %s", ref, cm, err, want)
		}
	}
	cm, _ := p.ResolveRef(ctx, c, repo, "main")
	forgetest.CompareGolden(t, "testdata/golden/api/resolve_ref.json", cm)
	if _, err := p.ResolveRef(ctx, c, repo, "mai"); slipway.ErrorCodeOf(err) != slipway.ECodeRefNotFound {
		t.Errorf("prefix of a branch: %v, want ref_not_found", err)
	}
}

func TestHooks(t *testing.T) {
	f := newFake(t)
	p, c, ctx := New(nil), conn(f), context.Background()
	repo := forge.Repo{ID: repoGUID(1), FullName: "Alpha/svc-1"}
	id, err := p.InstallHook(ctx, c, repo, forge.HookConfig{URL: "https://slipway.example.test/hooks/azuredevops/int_1", Secret: "per-hook"})
	if err != nil || id != "fd672255-8b6b-4769-9260-beea83d752ce" {
		t.Fatalf("InstallHook = %q, %v", id, err)
	}
	r := f.last()
	if r.Method != http.MethodPost || r.Path != "_apis/hooks/subscriptions" || r.Body["publisherId"] != "tfs" || r.Body["eventType"] != "git.push" || r.Body["consumerId"] != "webHooks" || r.Body["consumerActionId"] != "httpRequest" {
		t.Errorf("install request %s %s %v", r.Method, r.Path, r.Body)
	}
	ci, _ := r.Body["consumerInputs"].(map[string]any)
	pi, _ := r.Body["publisherInputs"].(map[string]any)
	if ci["url"] != "https://slipway.example.test/hooks/azuredevops/int_1" || ci["basicAuthPassword"] != "per-hook" || pi["repository"] != repoGUID(1) || pi["projectId"] != "6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c" {
		t.Errorf("inputs = %v / %v", ci, pi)
	}
	if err := p.RemoveHook(ctx, c, repo, id); err != nil {
		t.Errorf("RemoveHook: %v", err)
	}
	if err := p.RemoveHook(ctx, c, repo, "gone"); err != nil {
		t.Errorf("removing a gone hook: %v", err)
	}
}

func TestChangedFiles(t *testing.T) {
	f := newFake(t)
	files, err := New(nil).ChangedFiles(context.Background(), conn(f), forge.Repo{ID: repoGUID(1)}, "aaaa", "bbbb")
	if err != nil {
		t.Fatal(err)
	}
	forgetest.CompareGolden(t, "testdata/golden/api/changed_files.json", files)
	if q := f.last().Query; !strings.Contains(q, "baseVersion=aaaa") || !strings.Contains(q, "targetVersion=bbbb") || !strings.Contains(q, "diffCommonCommit=false") {
		t.Errorf("diff query %q", q)
	}
}

func TestSetCommitStatus(t *testing.T) {
	f := newFake(t)
	err := New(nil).SetCommitStatus(context.Background(), conn(f), forge.Repo{ID: repoGUID(1)}, "b1b1", forge.CommitStatus{State: forge.StatusSuccess, Context: "slipway/production/web", Description: "Live", TargetURL: "https://slipway.example.test/d/1"})
	if err != nil {
		t.Fatal(err)
	}
	r := f.last()
	ctxm, _ := r.Body["context"].(map[string]any)
	if r.Path != "_apis/git/repositories/"+repoGUID(1)+"/commits/b1b1/statuses" || r.Body["state"] != "succeeded" || ctxm["genre"] != "slipway" || ctxm["name"] != "production/web" || r.Body["targetUrl"] != "https://slipway.example.test/d/1" {
		t.Errorf("status request %s %v", r.Path, r.Body)
	}
}

func TestCloneCredentials(t *testing.T) {
	c := &forge.Conn{Secret: forge.Secret{Token: "pat-x"}}
	cred, err := New(nil).CloneCredentials(context.Background(), c, forge.Repo{CloneURL: "https://acme@dev.azure.com/acme/Alpha/_git/svc-1"})
	if err != nil || cred.URL != "https://dev.azure.com/acme/Alpha/_git/svc-1" || cred.Username != "pat" || cred.Password != "pat-x" {
		t.Errorf("credentials %s %s, %v", cred.URL, cred.Username, err)
	}
}

// TestAPIVersionPerServer: Azure DevOps Server 2020 knows api-version 6.0
// at most and 2022 7.0; an unconfigured integration negotiates down once
// and keeps the version, a configured one is used as is.
func TestAPIVersionPerServer(t *testing.T) {
	ctx := context.Background()
	for _, max := range []string{"6.0", "7.0", ""} {
		f := newFake(t)
		f.maxVersion = max
		p := New(nil)
		if _, err := p.Check(ctx, conn(f)); err != nil {
			t.Fatalf("server up to %q: %v", max, err)
		}
		want := max
		if want == "" {
			want = "7.1"
		}
		f.mu.Lock()
		f.requests = nil
		f.mu.Unlock()
		if _, err := p.ListRepos(ctx, conn(f), forge.ListOptions{}); err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		for _, r := range f.requests {
			if !strings.Contains(r.Query, "api-version="+want) {
				t.Errorf("server up to %q: %s %s?%s after negotiation, want api-version %s from the first call", max, r.Method, r.Path, r.Query, want)
			}
		}
		f.mu.Unlock()
	}

	// Configured: 7.0 is sent as is, to a server that accepts it.
	f := newFake(t)
	f.maxVersion = "7.0"
	c := conn(f)
	c.Integration.Settings = map[string]string{"api_version": "7.0"}
	if _, err := New(nil).ListRepos(ctx, c, forge.ListOptions{}); err != nil || !strings.Contains(f.last().Query, "api-version=7.0") {
		t.Errorf("configured 7.0: %v, last query %s", err, f.last().Query)
	}
	// Configured and wrong: the server's refusal is reported, not hidden
	// by a silent downgrade.
	c.Integration.Settings["api_version"] = "7.1"
	if _, err := New(nil).ListRepos(ctx, c, forge.ListOptions{}); slipway.ErrorCodeOf(err) != slipway.ECodeProviderError {
		t.Errorf("configured 7.1 on a 7.0 server: %v, want provider_error", err)
	}
	c.Integration.Settings["api_version"] = "5.1"
	if _, err := New(nil).ListRepos(ctx, c, forge.ListOptions{}); slipway.ErrorCodeOf(err) != slipway.ECodeInvalid {
		t.Errorf("configured 5.1: %v, want invalid", err)
	}
}

// TestHookTargetMustBeHTTPS: basic-auth service hooks go only to https.
func TestHookTargetMustBeHTTPS(t *testing.T) {
	p := New(nil)
	if err := p.CheckHookTarget("https://slipway.example.test/hooks/azuredevops/int_1"); err != nil {
		t.Errorf("https target refused: %v", err)
	}
	for _, bad := range []string{"http://slipway.example.test/hooks/azuredevops/int_1", "http://127.0.0.1:8080/hooks/azuredevops/int_1", "/hooks/azuredevops/int_1", "https:///x"} {
		err := p.CheckHookTarget(bad)
		e, ok := slipway.AsError(err)
		if !ok || e.Code != slipway.ECodeInvalid || !strings.Contains(e.Fix, "https") {
			t.Errorf("CheckHookTarget(%q) = %v, want invalid with an https fix", bad, err)
		}
	}
}

// TestEveryCallOnServer runs every call Slipway makes against a Server
// 2020 (6.0) and a Server 2022 (7.0) fake: after negotiation each request
// is validated against that version's published description.
func TestEveryCallOnServer(t *testing.T) {
	ctx := context.Background()
	for _, max := range []string{"6.0", "7.0"} {
		f := newFake(t)
		f.maxVersion = max
		p, c := New(nil), conn(f)
		repo := forge.Repo{ID: repoGUID(1), FullName: "Alpha/svc-1"}
		if _, err := p.Check(ctx, c); err != nil {
			t.Fatalf("%s: Check: %v", max, err)
		}
		if _, err := p.ListRepos(ctx, c, forge.ListOptions{}); err != nil {
			t.Errorf("%s: ListRepos: %v", max, err)
		}
		if _, err := p.GetRepo(ctx, c, repoGUID(1)); err != nil {
			t.Errorf("%s: GetRepo: %v", max, err)
		}
		if _, err := p.ListRefs(ctx, c, repo); err != nil {
			t.Errorf("%s: ListRefs: %v", max, err)
		}
		if _, err := p.ResolveRef(ctx, c, repo, "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1"); err != nil {
			t.Errorf("%s: ResolveRef(sha): %v", max, err)
		}
		if _, err := p.ChangedFiles(ctx, c, repo, "aaaa", "bbbb"); err != nil {
			t.Errorf("%s: ChangedFiles: %v", max, err)
		}
		id, err := p.InstallHook(ctx, c, repo, forge.HookConfig{URL: "https://slipway.example.test/hooks/azuredevops/int_1", Secret: "per-hook"})
		if err != nil {
			t.Errorf("%s: InstallHook: %v", max, err)
		}
		if err := p.RemoveHook(ctx, c, repo, id); err != nil {
			t.Errorf("%s: RemoveHook: %v", max, err)
		}
		if err := p.SetCommitStatus(ctx, c, repo, "b1b1", forge.CommitStatus{State: forge.StatusPending, Context: "slipway/production/web"}); err != nil {
			t.Errorf("%s: SetCommitStatus: %v", max, err)
		}
		if q := f.last().Query; !strings.Contains(q, "api-version="+max) {
			t.Errorf("%s: last call's query %q", max, q)
		}
	}
}

// TestMultiRefPushGolden: one git.push delivery for a branch and an
// annotated tag gives one event per ref; the tag's head is left for the
// service to peel (the payload has only the tag object).
func TestMultiRefPushGolden(t *testing.T) {
	body, err := os.ReadFile("testdata/hooks/git_push_multi_ref.json")
	if err != nil {
		t.Fatal(err)
	}
	evs, err := New(nil).ParseHookEvents(http.Header{"Authorization": {BasicAuth("k")}}, body, "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[1].Kind != slipway.EventTag || evs[1].Push.Head.SHA != "" || evs[0].Push.Head.SHA == "" {
		t.Fatalf("events = %+v", evs)
	}
	forgetest.CompareGolden(t, "testdata/golden/multi/git_push_multi_ref.json", evs)
}
