package service_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/azuredevops"
	"slipway.dev/slipway/internal/netpolicy"
	"slipway.dev/slipway/internal/secrets"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
)

// scriptedForge is a provider whose refs the test sets. Its "payloads"
// are normalized events, so the test says exactly what a provider's
// parser would hand the service (Head empty: the payload did not say
// which commit a tag points at).
type scriptedForge struct {
	mu       sync.Mutex
	refs     []forge.Ref
	commits  map[string]string // ref name → the commit it points at, peeled
	resolved []string          // refs ResolveRef was asked for
}

var testRepo = forge.Repo{ID: "7", FullName: "alice/app", CloneURL: "https://git.example.test/alice/app.git", DefaultBranch: "main"}

func (*scriptedForge) Kind() slipway.Provider { return slipway.ProviderGitea }
func (*scriptedForge) Check(context.Context, *forge.Conn) (forge.CheckResult, error) {
	return forge.CheckResult{Account: "alice"}, nil
}
func (*scriptedForge) ListRepos(context.Context, *forge.Conn, forge.ListOptions) (forge.RepoPage, error) {
	return forge.RepoPage{Repos: []forge.Repo{testRepo}}, nil
}
func (*scriptedForge) GetRepo(_ context.Context, _ *forge.Conn, id string) (forge.Repo, error) {
	if id != testRepo.ID {
		return forge.Repo{}, slipway.Errorf(slipway.ECodeRepoNotVisible, "no repository %s", id)
	}
	return testRepo, nil
}
func (f *scriptedForge) ListRefs(context.Context, *forge.Conn, forge.Repo) ([]forge.Ref, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]forge.Ref(nil), f.refs...), nil
}
func (f *scriptedForge) ResolveRef(_ context.Context, _ *forge.Conn, _ forge.Repo, ref string) (slipway.Commit, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resolved = append(f.resolved, ref)
	if sha, ok := f.commits[ref]; ok {
		return slipway.Commit{SHA: sha, Message: "release " + ref}, nil
	}
	return slipway.Commit{}, slipway.Errorf(slipway.ECodeRefNotFound, "no ref %s", ref)
}
func (*scriptedForge) InstallHook(context.Context, *forge.Conn, forge.Repo, forge.HookConfig) (string, error) {
	return "h1", nil
}
func (*scriptedForge) RemoveHook(context.Context, *forge.Conn, forge.Repo, string) error { return nil }
func (*scriptedForge) ParseHook(_ http.Header, body []byte, _ string) (slipway.Event, error) {
	var ev slipway.Event
	return ev, json.Unmarshal(body, &ev)
}

func (f *scriptedForge) setTag(name, sha string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refs = append(f.refs, forge.Ref{Name: name, Kind: forge.RefTag, SHA: sha})
	f.commits[name] = sha
}

type pinJobs struct{}

func (pinJobs) EnqueueDeploy(context.Context, *store.Tx, string, string) error   { return nil }
func (pinJobs) EnqueueDelivery(context.Context, *store.Tx, string, string) error { return nil }

type pinEnv struct {
	ctx   context.Context
	fake  *scriptedForge
	st    *store.Store
	svc   *service.Service
	admin service.Actor
	integ slipway.Integration
}

// newTestService is a Service on a fresh SQLite store with a bootstrapped
// organisation, and its administrator.
func newTestService(t *testing.T, forges map[slipway.Provider]forge.Provider, jobs service.Jobs, cfg service.Config) (*store.Store, *service.Service, service.Actor) {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "slipway.db"), "", logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	keys, err := secrets.NewKeyring("k1", map[string][]byte{"k1": key})
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(st, keys, forges, jobs, cfg, logger)
	boot, err := svc.Bootstrap(ctx, "admin@example.test")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := svc.ActorFor(ctx, boot.OrgID, boot.UserID)
	if err != nil {
		t.Fatal(err)
	}
	return st, svc, admin
}

func newPinEnv(t *testing.T) *pinEnv {
	t.Helper()
	ctx := context.Background()
	fake := &scriptedForge{commits: map[string]string{"main": "aaaa000000000000000000000000000000000000"}}
	fake.refs = []forge.Ref{{Name: "main", Kind: forge.RefBranch, SHA: fake.commits["main"]}}
	st, svc, admin := newTestService(t, map[slipway.Provider]forge.Provider{slipway.ProviderGitea: fake}, pinJobs{},
		service.Config{PublicURL: "https://slipway.example.test", BaseDomain: "apps.example.test"})
	integ, err := svc.Connect(ctx, admin, service.ConnectInput{Provider: slipway.ProviderGitea, BaseURL: "https://git.example.test", Token: "t0ken"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateApplication(ctx, admin, service.ApplicationInput{Name: "shop"}); err != nil {
		t.Fatal(err)
	}
	return &pinEnv{ctx: ctx, fake: fake, st: st, svc: svc, admin: admin, integ: integ}
}

func (e *pinEnv) service(t *testing.T, name string, src slipway.ServiceSource) slipway.Service {
	t.Helper()
	src.IntegrationID, src.RepoID, src.AutoDeploy = e.integ.ID, testRepo.ID, true
	s, err := e.svc.CreateService(e.ctx, e.admin, "shop/production", service.ServiceInput{Name: name, Source: &src})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// deliver receives ev on the repository's hook and processes it, as the
// receiver and the delivery job would.
func (e *pinEnv) deliver(t *testing.T, ev slipway.Event) store.Delivery {
	t.Helper()
	hooks, err := e.st.ListRepoHooks(e.ctx, e.admin.OrgID, e.integ.ID)
	if err != nil || len(hooks) != 1 {
		t.Fatalf("repository hooks = %v, %v", hooks, err)
	}
	body, _ := json.Marshal(ev)
	res, err := e.svc.ReceiveDelivery(e.ctx, slipway.ProviderGitea, e.integ.ID, hooks[0].ID, http.Header{}, body)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.ProcessDelivery(e.ctx, e.admin.OrgID, res.DeliveryID); err != nil {
		t.Fatal(err)
	}
	d, err := e.st.GetDelivery(e.ctx, e.admin.OrgID, res.DeliveryID)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (e *pinEnv) deployments(t *testing.T, s slipway.Service) []slipway.Deployment {
	t.Helper()
	ds, _, err := e.svc.ListDeployments(e.ctx, e.admin, s.ID, store.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

const (
	tagObject = "7a90000000000000000000000000000000000000" // what an annotated tag's ref names
	tagCommit = "c0ff000000000000000000000000000000000000" // the commit the tag points at
)

// TestTagPushPinsThePeeledCommit: a tag push whose payload names only the
// tag object (Azure DevOps, or any parser that cannot peel) deploys the
// commit, as a manual deploy of the same tag resolves it, and that manual
// deploy then adds nothing.
func TestTagPushPinsThePeeledCommit(t *testing.T) {
	e := newPinEnv(t)
	e.fake.setTag("v1.1.0", tagCommit)
	release := e.service(t, "release", slipway.ServiceSource{TagPattern: "v*"})

	d := e.deliver(t, slipway.Event{Kind: slipway.EventTag, DeliveryID: "d-1", Repo: slipway.RepoRef{ID: testRepo.ID, FullName: testRepo.FullName},
		Push: &slipway.PushEvent{Ref: "refs/tags/v1.1.0", Tag: "v1.1.0", After: tagObject, Created: true}})
	ds := e.deployments(t, release)
	if d.Verdict != service.VerdictProcessed || len(ds) != 1 {
		t.Fatalf("delivery %s (%s), deployments %+v", d.Verdict, d.Detail, ds)
	}
	if ds[0].CommitSHA != tagCommit || ds[0].Ref != "refs/tags/v1.1.0" || ds[0].Trigger != slipway.TriggerTag {
		t.Errorf("deployment pins %s (ref %s, trigger %s); want the commit %s, never the tag object", ds[0].CommitSHA, ds[0].Ref, ds[0].Trigger, tagCommit)
	}

	manual, err := e.svc.Deploy(e.ctx, e.admin, release.ID, service.DeployInput{Ref: "v1.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	if manual.ID != ds[0].ID || len(e.deployments(t, release)) != 1 {
		t.Errorf("a manual deploy of the tag being deployed made %s (deployments %d); want the existing %s", manual.ID, len(e.deployments(t, release)), ds[0].ID)
	}

	// A payload that names the commit (GitHub's head_commit, GitLab's
	// checkout_sha) is trusted: no API call.
	e.fake.setTag("v1.2.0", "c1ff000000000000000000000000000000000000")
	before := len(e.fake.resolved)
	e.deliver(t, slipway.Event{Kind: slipway.EventTag, DeliveryID: "d-2", Repo: slipway.RepoRef{ID: testRepo.ID, FullName: testRepo.FullName},
		Push: &slipway.PushEvent{Ref: "refs/tags/v1.2.0", Tag: "v1.2.0", After: tagObject, Head: slipway.Commit{SHA: "c1ff000000000000000000000000000000000000"}}})
	if got := e.deployments(t, release)[0].CommitSHA; got != "c1ff000000000000000000000000000000000000" {
		t.Errorf("head-commit payload deployed %s", got)
	}
	if len(e.fake.resolved) != before {
		t.Errorf("the provider was asked to resolve %v for a payload that named the commit", e.fake.resolved[before:])
	}

	// A tag that cannot be resolved fails the delivery job (it is
	// retried), and deploys nothing.
	hooks, _ := e.st.ListRepoHooks(e.ctx, e.admin.OrgID, e.integ.ID)
	body, _ := json.Marshal(slipway.Event{Kind: slipway.EventTag, DeliveryID: "d-3", Repo: slipway.RepoRef{ID: testRepo.ID},
		Push: &slipway.PushEvent{Ref: "refs/tags/v9", Tag: "v9", After: tagObject}})
	res, err := e.svc.ReceiveDelivery(e.ctx, slipway.ProviderGitea, e.integ.ID, hooks[0].ID, http.Header{}, body)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.ProcessDelivery(e.ctx, e.admin.OrgID, res.DeliveryID); err == nil {
		t.Error("an unresolvable tag was processed without error")
	}
	if n := len(e.deployments(t, release)); n != 2 {
		t.Errorf("deployments = %d, want 2", n)
	}
}

// TestReconcileFollowsTagPatterns: tags come back through the reconciler
// like branches do (GitLab sends no hook at all for a push of more than
// three refs): the newest matching tag in version order, once.
func TestReconcileFollowsTagPatterns(t *testing.T) {
	e := newPinEnv(t)
	for tag, sha := range map[string]string{"v1.2.0": "1200", "v1.10.0": "1100", "v1.9.9": "0990", "release-3": "3000", "v1.10.0-rc1": "1101"} {
		e.fake.setTag(tag, sha+"000000000000000000000000000000000000")
	}
	pattern := e.service(t, "release", slipway.ServiceSource{TagPattern: "v*"})
	fixed := e.service(t, "pinned", slipway.ServiceSource{Tag: "v1.2.0"})

	queued, err := e.svc.Reconcile(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(queued) != 2 {
		t.Fatalf("queued %v, want one deployment per tag-following Service", queued)
	}
	if ds := e.deployments(t, pattern); len(ds) != 1 || ds[0].CommitSHA != "1100000000000000000000000000000000000000" || ds[0].Ref != "refs/tags/v1.10.0" || ds[0].Trigger != slipway.TriggerReconcile {
		t.Errorf("pattern Service deployments: %+v; want v1.10.0 by the reconciler", ds)
	}
	if ds := e.deployments(t, fixed); len(ds) != 1 || ds[0].CommitSHA != "1200000000000000000000000000000000000000" {
		t.Errorf("fixed-tag Service deployments: %+v", ds)
	}
	if again, err := e.svc.Reconcile(e.ctx); err != nil || len(again) != 0 {
		t.Errorf("a second reconcile queued %v, %v; want nothing", again, err)
	}

	e.fake.setTag("v1.10.1", "1101100000000000000000000000000000000000")
	queued, err = e.svc.Reconcile(e.ctx)
	if err != nil || len(queued) != 1 {
		t.Fatalf("after a new tag: queued %v, %v", queued, err)
	}
	if ds := e.deployments(t, pattern); ds[0].Ref != "refs/tags/v1.10.1" {
		t.Errorf("newest deployment is of %s, want v1.10.1", ds[0].Ref)
	}
}

func TestNewestMatchingTag(t *testing.T) {
	for _, c := range []struct {
		pattern string
		tags    []string
		want    string
	}{
		{"v*", []string{"v1.2.0", "v1.10.0", "v1.9.9"}, "v1.10.0"},
		{"v*", []string{"v2", "v1.99"}, "v2"},
		{"v*", []string{"v1.0", "v1.0.1"}, "v1.0.1"},
		{"v*", []string{"v1.0.0", "v1.0.0-rc1"}, "v1.0.0"},
		{"v*", []string{"v1.0-rc1", "v1.0.1"}, "v1.0.1"},
		{"v*", []string{"v1.0", "v1.00"}, "v1.00"},
		{"release-*", []string{"v9", "release-2", "release-10"}, "release-10"},
		{"v*", []string{"release-1"}, ""},
		{"[", []string{"v1"}, ""}, // a malformed pattern matches nothing
		{"v*", nil, ""},
	} {
		if got := service.NewestMatchingTag(c.pattern, c.tags); got != c.want {
			t.Errorf("NewestMatchingTag(%q, %v) = %q, want %q", c.pattern, c.tags, got, c.want)
		}
	}
}

// TestConnectRefusesAnHTTPHookTargetForAzureDevOps: Azure DevOps would
// refuse every service hook to an http public URL, so connect refuses
// first, with the fix, and saves nothing.
func TestConnectRefusesAnHTTPHookTargetForAzureDevOps(t *testing.T) {
	_, svc, admin := newTestService(t, map[slipway.Provider]forge.Provider{slipway.ProviderAzureDevOps: azuredevops.New(nil)}, pinJobs{},
		service.Config{PublicURL: "http://slipway.example.test", BaseDomain: "apps.example.test", Network: netpolicy.Policy{AllowPrivate: true}})
	// A loopback organisation URL: were the check ever skipped, the
	// provider's call would stay on this machine and fail.
	_, err := svc.Connect(context.Background(), admin, service.ConnectInput{Provider: slipway.ProviderAzureDevOps, BaseURL: "https://127.0.0.1:1/acme", Token: "pat"})
	e, ok := slipway.AsError(err)
	if !ok || e.Code != slipway.ECodeInvalid || !strings.Contains(e.Fix, "https") {
		t.Fatalf("connect with an http public URL = %v, want invalid with an https fix", err)
	}
	if all, _ := svc.ListIntegrations(context.Background(), admin); len(all) != 0 {
		t.Errorf("integrations saved: %v", all)
	}
}

// FuzzNewestMatchingTag: tag names come from the provider; whatever they
// are, the choice is one of the matching tags and does not depend on the
// order they were listed in.
func FuzzNewestMatchingTag(f *testing.F) {
	f.Add("v*", "v1.2.0", "v1.10.0", "v1.0-rc1")
	f.Add("*", "", "0", "00")
	f.Add("release-*", "release-2", "release-10", "v9")
	f.Fuzz(func(t *testing.T, pattern, a, b, c string) {
		got := service.NewestMatchingTag(pattern, []string{a, b, c})
		if again := service.NewestMatchingTag(pattern, []string{c, a, b}); again != got {
			t.Fatalf("order matters: %q then %q", got, again)
		}
		if got != "" && got != a && got != b && got != c {
			t.Fatalf("chose %q, not a listed tag", got)
		}
	})
}
