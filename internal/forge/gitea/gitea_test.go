package gitea_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/gitea"
	"slipway.dev/slipway/internal/testenv/giteatest"
)

var record = flag.Bool("record", false, "rewrite testdata/hooks from deliveries of the real Gitea")

func TestMain(m *testing.M) { giteatest.Main(m) }

func conn(s *giteatest.Server, token string) *forge.Conn {
	return &forge.Conn{
		Integration: slipway.Integration{Provider: slipway.ProviderGitea, BaseURL: s.URL()},
		Secret:      forge.Secret{Token: token},
	}
}

// account is a user with a full-scope token on the shared server.
type account struct {
	user, password, token string
}

func newAccount(t *testing.T, s *giteatest.Server, prefix string) account {
	t.Helper()
	user := giteatest.UniqueName(prefix)
	pw := s.CreateUser(t, user)
	tok := s.CreateToken(t, user, pw, "slipway", gitea.ScopeReadUser, gitea.ScopeWriteRepository)
	return account{user, pw, tok}
}

func TestCheck(t *testing.T) {
	s := giteatest.Shared(t)
	p := gitea.New()
	ctx := context.Background()
	a := newAccount(t, s, "check")

	res, err := p.Check(ctx, conn(s, a.token))
	if err != nil {
		t.Fatalf("full-scope token: %v", err)
	}
	if res.Account != a.user || len(res.Missing) != 0 || len(res.Problems) != 0 {
		t.Errorf("full-scope token: %+v", res)
	}

	narrow := s.CreateToken(t, a.user, a.password, "narrow", gitea.ScopeReadUser, gitea.ScopeReadRepository)
	res, err = p.Check(ctx, conn(s, narrow))
	e, ok := slipway.AsError(err)
	if !ok || e.Code != slipway.ECodeScopesMissing {
		t.Fatalf("narrow token: err = %v, want %s", err, slipway.ECodeScopesMissing)
	}
	if e.Details["missing"] != gitea.ScopeWriteRepository || !strings.Contains(e.Message, gitea.ScopeWriteRepository) {
		t.Errorf("narrow token: details %v, message %q", e.Details, e.Message)
	}
	if !slices.Equal(res.Missing, []string{gitea.ScopeWriteRepository}) || res.Account != a.user {
		t.Errorf("narrow token result: %+v", res)
	}

	repoOnly := s.CreateToken(t, a.user, a.password, "repo-only", gitea.ScopeWriteRepository)
	_, err = p.Check(ctx, conn(s, repoOnly))
	if e, ok := slipway.AsError(err); !ok || e.Code != slipway.ECodeScopesMissing || e.Details["missing"] != gitea.ScopeReadUser {
		t.Errorf("token without read:user: %v", err)
	}

	s.DeleteToken(t, a.user, a.password, "narrow")
	if _, err := p.Check(ctx, conn(s, narrow)); slipway.ErrorCodeOf(err) != slipway.ECodeCredentialsInvalid {
		t.Errorf("deleted token: %v, want %s", err, slipway.ECodeCredentialsInvalid)
	}

	c := conn(s, a.token)
	c.Integration.BaseURL = "http://127.0.0.1:1"
	if _, err := p.Check(ctx, c); slipway.ErrorCodeOf(err) != slipway.ECodeProviderUnreachable {
		t.Errorf("unreachable: %v, want %s", err, slipway.ECodeProviderUnreachable)
	}
	if strings.Contains(fmt.Sprint(err), a.token) {
		t.Error("token in error message")
	}
}

func TestRepoLister(t *testing.T) {
	s := giteatest.Shared(t)
	p := gitea.New()
	a := newAccount(t, s, "lister")
	org := giteatest.UniqueName("org")
	s.CreateOrg(t, a.user, org)
	var ids []string
	for i := range 3 {
		ids = append(ids, strconv.FormatInt(s.CreateRepo(t, a.user, fmt.Sprintf("own-%d", i), i == 0), 10))
	}
	for i := range 2 {
		ids = append(ids, strconv.FormatInt(s.CreateRepo(t, org, fmt.Sprintf("team-%d", i), i == 1), 10))
	}
	// Someone else's private repository must not show up.
	other := newAccount(t, s, "other")
	hidden := strconv.FormatInt(s.CreateRepo(t, other.user, "secret", true), 10)

	forgetestRepoLister(t, p, conn(s, a.token), ids, hidden)

	page, err := p.ListRepos(context.Background(), conn(s, a.token), forge.ListOptions{Search: "team"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range page.Repos {
		names = append(names, r.FullName)
	}
	slices.Sort(names)
	if want := []string{org + "/team-0", org + "/team-1"}; !slices.Equal(names, want) {
		t.Errorf("search team: %v, want %v", names, want)
	}
}

func TestRefs(t *testing.T) {
	s := giteatest.Shared(t)
	p := gitea.New()
	ctx := context.Background()
	a := newAccount(t, s, "refs")
	s.CreateRepo(t, a.user, "app", false)
	c := conn(s, a.token)
	repo := repoByName(t, p, c, a.user+"/app")

	sha := s.PushCommit(t, a.user, a.password, repo.FullName, "feature", map[string]string{"x.txt": "x"}, "feature work")
	s.CreateTag(t, a.user, "app", "v1", "feature", "annotated v1")
	s.CreateTag(t, a.user, "app", "v1-light", "feature", "")

	refs, err := p.ListRefs(ctx, c, repo)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]forge.Ref{}
	for _, r := range refs {
		got[string(r.Kind)+":"+r.Name] = r
	}
	for _, key := range []string{"branch:main", "branch:feature", "tag:v1", "tag:v1-light"} {
		if _, ok := got[key]; !ok {
			t.Errorf("ref %s missing from %v", key, refs)
		}
	}
	for _, key := range []string{"branch:feature", "tag:v1", "tag:v1-light"} {
		if got[key].SHA != sha {
			t.Errorf("%s at %s, want %s", key, got[key].SHA, sha)
		}
	}

	for _, ref := range []string{"feature", "v1", "v1-light", sha} {
		cm, err := p.ResolveRef(ctx, c, repo, ref)
		if err != nil || cm.SHA != sha || !strings.Contains(cm.Message, "feature work") {
			t.Errorf("ResolveRef(%s) = %+v, %v", ref, cm, err)
		}
	}
	for _, ref := range []string{"nope", strings.Repeat("a", 40)} {
		if _, err := p.ResolveRef(ctx, c, repo, ref); slipway.ErrorCodeOf(err) != slipway.ECodeRefNotFound {
			t.Errorf("ResolveRef(%s): %v, want %s", ref, err, slipway.ECodeRefNotFound)
		}
	}

	creds, err := p.CloneCredentials(ctx, c, repo)
	if err != nil || creds.URL != s.URL()+"/"+repo.FullName+".git" || creds.Username != "oauth2" || creds.Password != a.token {
		t.Errorf("CloneCredentials = %v (url %s), %v", creds, creds.URL, err)
	}
}

func repoByName(t *testing.T, p *gitea.Provider, c *forge.Conn, fullName string) forge.Repo {
	t.Helper()
	for page := 1; page != 0; {
		res, err := p.ListRepos(context.Background(), c, forge.ListOptions{Page: page})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Repos {
			if r.FullName == fullName {
				return r
			}
		}
		page = res.NextPage
	}
	t.Fatalf("repository %s not listed", fullName)
	return forge.Repo{}
}

// delivery is one webhook request as received.
type delivery struct {
	header http.Header
	body   []byte
}

type receiver struct {
	mu   sync.Mutex
	got  []delivery
	news chan struct{}
}

func newReceiver(t *testing.T) (*receiver, string) {
	r := &receiver{news: make(chan struct{}, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, delivery{req.Header.Clone(), body})
		r.mu.Unlock()
		r.news <- struct{}{}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return r, srv.URL + "/hooks/gitea/test"
}

// wait returns the first delivery of event type kind satisfying match.
func (r *receiver) wait(t *testing.T, kind string, match func(body string) bool) delivery {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		for _, d := range r.got {
			if d.header.Get("X-Gitea-Event") == kind && match(string(d.body)) {
				r.mu.Unlock()
				return d
			}
		}
		r.mu.Unlock()
		select {
		case <-r.news:
		case <-deadline:
			t.Fatalf("no %s delivery within 30s", kind)
		}
	}
}

func TestHookDeliveryCompareStatus(t *testing.T) {
	s := giteatest.Shared(t)
	p := gitea.New()
	ctx := context.Background()
	a := newAccount(t, s, "hooks")
	s.CreateRepo(t, a.user, "web", false)
	c := conn(s, a.token)
	repo := repoByName(t, p, c, a.user+"/web")

	rcv, hookURL := newReceiver(t)
	secret := "hook-secret-" + a.user
	hookID, err := p.InstallHook(ctx, c, repo, forge.HookConfig{URL: hookURL, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	hooks := s.ListHooks(t, a.user, "web")
	if len(hooks) != 1 || strconv.FormatInt(hooks[0].ID, 10) != hookID || !hooks[0].Active ||
		hooks[0].Type != "gitea" || hooks[0].Config["content_type"] != "json" {
		t.Fatalf("hooks after install: %+v", hooks)
	}

	before := s.PushCommit(t, a.user, a.password, repo.FullName, "main", map[string]string{"README.md": "one"}, "first")
	sha := s.PushCommit(t, a.user, a.password, repo.FullName, "main",
		map[string]string{"src/app.go": "package app", "docs/x.md": "x"}, "second")

	push := rcv.wait(t, "push", func(b string) bool { return strings.Contains(b, sha) && strings.Contains(b, `"refs/heads/main"`) })
	ev, err := p.ParseHook(push.header, push.body, secret)
	if err != nil {
		t.Fatalf("ParseHook(push): %v", err)
	}
	if ev.Kind != slipway.EventPush || ev.Repo.ID != repo.ID || ev.Push.Branch != "main" || ev.Push.After != sha ||
		ev.Push.Before != before || ev.Push.Head.SHA != sha || !ev.Push.ChangedFilesComplete ||
		!slices.Contains(ev.Push.ChangedFiles, "src/app.go") || ev.DeliveryID == "" {
		t.Errorf("push event: %+v push %+v", ev, ev.Push)
	}
	if _, err := p.ParseHook(push.header, push.body, "wrong"); err != forge.ErrBadSignature {
		t.Errorf("wrong secret: %v", err)
	}

	s.CreateTag(t, a.user, "web", "v2", "main", "release")
	tagPush := rcv.wait(t, "push", func(b string) bool { return strings.Contains(b, `"refs/tags/v2"`) })
	ev, err = p.ParseHook(tagPush.header, tagPush.body, secret)
	if err != nil || ev.Kind != slipway.EventTag || ev.Push.Tag != "v2" {
		t.Errorf("tag push: %+v, %v", ev, err)
	}

	// An annotated tag pushed with git: Gitea's after is the tag object,
	// and only head_commit is the commit, which is what Head must carry.
	tagCommit, tagObject := s.PushAnnotatedTag(t, a.user, a.password, repo.FullName, "main", "v3", "release v3")
	if tagCommit == tagObject {
		t.Fatalf("git made a lightweight tag (%s)", tagObject)
	}
	annotated := rcv.wait(t, "push", func(b string) bool { return strings.Contains(b, `"refs/tags/v3"`) })
	ev, err = p.ParseHook(annotated.header, annotated.body, secret)
	if err != nil || ev.Kind != slipway.EventTag || ev.Push.Head.SHA != tagCommit {
		t.Errorf("annotated tag push: head %+v (commit %s, tag object %s), %v", ev.Push, tagCommit, tagObject, err)
	}
	if ev.Push != nil && ev.Push.After != tagObject {
		t.Logf("note: Gitea's after for an annotated tag is %s (tag object %s, commit %s)", ev.Push.After, tagObject, tagCommit)
	}
	create := rcv.wait(t, "create", func(string) bool { return true })
	if _, err := p.ParseHook(create.header, create.body, secret); err != forge.ErrIgnored {
		t.Errorf("create event: %v, want ErrIgnored", err)
	}

	s.PushCommit(t, a.user, a.password, repo.FullName, "doomed", map[string]string{"d": "d"}, "doomed")
	s.DeleteBranch(t, a.user, "web", "doomed")
	del := rcv.wait(t, "delete", func(b string) bool { return strings.Contains(b, "doomed") })
	ev, err = p.ParseHook(del.header, del.body, secret)
	if err != nil || ev.Kind != slipway.EventBranchDeleted || ev.Push.Branch != "doomed" {
		t.Errorf("branch delete: %+v, %v", ev, err)
	}

	if *record {
		saveDelivery(t, "push", push)
		saveDelivery(t, "push_tag", tagPush)
		saveDelivery(t, "push_annotated_tag", annotated)
		saveDelivery(t, "create_tag", create)
		saveDelivery(t, "delete_branch", del)
	}

	files, err := p.ChangedFiles(ctx, c, repo, before, sha)
	slices.Sort(files)
	if err != nil || !slices.Equal(files, []string{"docs/x.md", "src/app.go"}) {
		t.Errorf("ChangedFiles = %v, %v", files, err)
	}

	st := forge.CommitStatus{State: forge.StatusSuccess, Context: "slipway/production/web", Description: "deployed", TargetURL: "http://127.0.0.1/d/1"}
	if err := p.SetCommitStatus(ctx, c, repo, sha, st); err != nil {
		t.Fatal(err)
	}
	var statuses []struct {
		Status  string `json:"status"`
		Context string `json:"context"`
	}
	if err := s.API(ctx, a.user, a.password, http.MethodGet, "/repos/"+repo.FullName+"/statuses/"+sha, nil, &statuses); err != nil {
		t.Fatal(err)
	}
	if len(statuses) != 1 || statuses[0].Status != "success" || statuses[0].Context != st.Context {
		t.Errorf("statuses = %+v", statuses)
	}

	if err := p.RemoveHook(ctx, c, repo, hookID); err != nil {
		t.Fatal(err)
	}
	if err := p.RemoveHook(ctx, c, repo, hookID); err != nil {
		t.Errorf("removing a removed hook: %v", err)
	}
	if hooks := s.ListHooks(t, a.user, "web"); len(hooks) != 0 {
		t.Errorf("hooks after removal: %+v", hooks)
	}
}

// saveDelivery records a real delivery as testdata/hooks/<name>.json and
// .headers, without its signatures (the contract suite signs them again).
func saveDelivery(t *testing.T, name string, d delivery) {
	t.Helper()
	dir := filepath.Join("testdata", "hooks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var hdr strings.Builder
	for _, k := range []string{"X-Gitea-Event", "X-Gitea-Event-Type", "X-Gitea-Delivery"} {
		fmt.Fprintf(&hdr, "%s: %s\n", k, d.header.Get(k))
	}
	if err := os.WriteFile(filepath.Join(dir, name+".headers"), []byte(hdr.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), d.body, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOAuthCodeFlowWithPKCEAndRefresh(t *testing.T) {
	s := giteatest.Shared(t)
	p := gitea.New()
	ctx := context.Background()
	a := newAccount(t, s, "oauth")
	redirect := "http://127.0.0.1:1/oauth/callback"
	clientID, clientSecret := s.CreateOAuthApp(t, a.user, a.password, "slipway", redirect)
	cfg := &oauth2.Config{
		ClientID: clientID, ClientSecret: clientSecret, RedirectURL: redirect,
		Endpoint: p.OAuthEndpoint(s.URL()), Scopes: p.OAuthScopes(),
	}
	verifier := oauth2.GenerateVerifier()
	state := randomState()
	to := s.Consent(t, a.user, a.password, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
	if to.Query().Get("state") != state {
		t.Fatalf("callback state %q, want %q", to.Query().Get("state"), state)
	}
	code := to.Query().Get("code")
	if code == "" {
		t.Fatalf("no code in callback %s", to.Redacted())
	}
	if _, err := cfg.Exchange(ctx, code, oauth2.VerifierOption("wrong-verifier-"+verifier)); err == nil {
		t.Error("exchange with a wrong PKCE verifier succeeded")
	}
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	res, err := p.Check(ctx, conn(s, tok.AccessToken))
	if err != nil || res.Account != a.user {
		t.Errorf("Check with the OAuth token: %+v, %v", res, err)
	}

	// A real refresh: Gitea rotates refresh tokens and refuses the old one.
	old := tok.RefreshToken
	expired := &oauth2.Token{RefreshToken: old, Expiry: time.Now().Add(-time.Hour)}
	fresh, err := cfg.TokenSource(ctx, expired).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if fresh.RefreshToken == "" || fresh.RefreshToken == old || fresh.AccessToken == "" {
		t.Errorf("refresh did not rotate: new refresh differs=%v", fresh.RefreshToken != old)
	}
	if _, err := cfg.TokenSource(ctx, expired).Token(); err == nil {
		t.Error("the old refresh token still works after rotation")
	}
	if res, err := p.Check(ctx, conn(s, fresh.AccessToken)); err != nil || res.Account != a.user {
		t.Errorf("Check with the refreshed token: %+v, %v", res, err)
	}
}

func randomState() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}
