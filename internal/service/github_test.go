package service_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/github"
	"slipway.dev/slipway/internal/netpolicy"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
)

func init() {
	// Golden files are rewritten with -update. Another test file of this
	// package may declare the flag too; defining it twice would panic.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files")
	}
}

func ghUpdateGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// Identities the fake GitHub knows.
const (
	ghAppID        = 2718281
	ghCode         = "9c1f4e2a7b"
	ghInstallAcme  = 60001
	ghInstallBeta  = 60002
	ghHookSecret   = "4f0c1a2e-app-hook-secret"
	ghClientSecret = "0b2d9e-client-secret"
	testPublicURL  = "https://slipway.example.com"
)

// ghFakeInstallation is one installation of an App (ghAppID unless app
// says otherwise) and its repositories.
type ghFakeInstallation struct {
	account string
	repos   []ghFakeRepo
	app     int64
}

type ghFakeRepo struct {
	id   int64
	name string
}

// ghFake answers, in GitHub's documented shapes and under the GHES
// /api/v3/ prefix, the calls the App flows make: manifest conversion, the
// installation lookup and token mint (App JWT), and the installation's
// repository list (installation token).
type ghFake struct {
	t      *testing.T
	srv    *httptest.Server
	key    *rsa.PrivateKey
	keyPEM string

	mu            sync.Mutex
	appKeys       map[int64]*rsa.PrivateKey // every App the fake knows, ghAppID's key included
	installations map[int64]ghFakeInstallation
	tokens        map[string]int64 // token → installation
	calls         map[string]int
}

func newGHFake(t *testing.T) *ghFake {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &ghFake{t: t, key: key,
		keyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})),
		installations: map[int64]ghFakeInstallation{
			ghInstallAcme: {account: "acme", repos: []ghFakeRepo{{101, "acme/web"}, {102, "acme/api"}, {103, "acme/docs"}}},
			ghInstallBeta: {account: "beta", repos: []ghFakeRepo{{201, "beta/shop"}}},
		},
		tokens: map[string]int64{}, calls: map[string]int{},
	}
	f.appKeys = map[int64]*rsa.PrivateKey{ghAppID: key}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v3/app", f.withJWT(f.app))
	mux.HandleFunc("POST /api/v3/app-manifests/{code}/conversions", f.convert)
	mux.HandleFunc("GET /api/v3/app/installations/{id}", f.withJWT(f.installation))
	mux.HandleFunc("POST /api/v3/app/installations/{id}/access_tokens", f.withJWT(f.accessToken))
	mux.HandleFunc("GET /api/v3/installation/repositories", f.repositories)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		f.mu.Lock()
		f.calls[pattern]++
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *ghFake) count(pattern string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[pattern]
}

func (f *ghFake) reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *ghFake) notFound(w http.ResponseWriter, doc string) {
	f.reply(w, http.StatusNotFound, map[string]string{"message": "Not Found", "documentation_url": doc, "status": "404"})
}

// addApp registers another App (its own key) with one installation, and
// returns the App's private key in PEM.
func (f *ghFake) addApp(t *testing.T, appID, installationID int64, account string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.appKeys[appID] = key
	f.installations[installationID] = ghFakeInstallation{account: account, app: appID}
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
}

// ghFakeAppHeader carries the authenticated App id from withJWT to the
// handler (set by the fake itself, after verification).
const ghFakeAppHeader = "X-Fake-Authenticated-App"

// withJWT accepts only an RS256 JWT signed with the key of the App its
// issuer names.
func (f *ghFake) withJWT(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		var claims jwt.RegisteredClaims
		_, err := jwt.ParseWithClaims(raw, &claims, func(tok *jwt.Token) (any, error) {
			iss, err := tok.Claims.GetIssuer()
			if err != nil {
				return nil, err
			}
			id, _ := strconv.ParseInt(iss, 10, 64)
			f.mu.Lock()
			key, known := f.appKeys[id]
			f.mu.Unlock()
			if !known {
				return nil, fmt.Errorf("unknown App %q", iss)
			}
			return &key.PublicKey, nil
		}, jwt.WithValidMethods([]string{"RS256"}))
		if !ok || err != nil {
			f.reply(w, http.StatusUnauthorized, map[string]string{"message": "A JSON web token could not be decoded", "documentation_url": "https://docs.github.com/rest"})
			return
		}
		r.Header.Set(ghFakeAppHeader, claims.Issuer)
		h(w, r)
	}
}

// app is GET /app: the authenticated App.
func (f *ghFake) app(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.Header.Get(ghFakeAppHeader), 10, 64)
	f.reply(w, http.StatusOK, map[string]any{"id": id, "slug": fmt.Sprintf("app-%d", id), "node_id": "A_kwDOBc9Xzs4AKXbZ", "name": fmt.Sprintf("App %d", id),
		"owner":       map[string]any{"login": "acme", "id": 9919, "type": "Organization"},
		"description": nil, "external_url": testPublicURL, "html_url": fmt.Sprintf("https://github.com/apps/app-%d", id),
		"created_at": "2026-03-01T08:00:00Z", "updated_at": "2026-03-01T08:00:00Z",
		"permissions": map[string]string{"contents": "read", "metadata": "read"}, "events": []string{"push"}})
}

func (f *ghFake) convert(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("code") != ghCode {
		f.notFound(w, "https://docs.github.com/rest/apps/apps#create-a-github-app-from-a-manifest")
		return
	}
	f.reply(w, http.StatusCreated, map[string]any{
		"id": ghAppID, "slug": "slipway-example", "node_id": "A_kwDOBc9Xzs4AKXbZ", "name": "Slipway slipway.example.com",
		"owner":       map[string]any{"login": "acme", "id": 9919, "type": "Organization"},
		"description": nil, "external_url": testPublicURL, "html_url": "https://github.com/apps/slipway-example",
		"created_at": "2026-03-01T08:00:00Z", "updated_at": "2026-03-01T08:00:00Z",
		"permissions": map[string]string{"contents": "read", "metadata": "read", "statuses": "write", "pull_requests": "read"},
		"events":      []string{"push", "create", "delete", "repository"},
		"client_id":   "Iv23liQwErTy123456", "client_secret": ghClientSecret, "webhook_secret": ghHookSecret, "pem": f.keyPEM,
	})
}

func (f *ghFake) lookup(w http.ResponseWriter, r *http.Request, doc string) (int64, ghFakeInstallation, bool) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	app, _ := strconv.ParseInt(r.Header.Get(ghFakeAppHeader), 10, 64)
	f.mu.Lock()
	inst, ok := f.installations[id]
	f.mu.Unlock()
	if inst.app == 0 {
		inst.app = ghAppID
	}
	if !ok || inst.app != app { // an App sees only its own installations
		f.notFound(w, doc)
		return id, inst, false
	}
	return id, inst, ok
}

func (f *ghFake) installation(w http.ResponseWriter, r *http.Request) {
	id, inst, ok := f.lookup(w, r, "https://docs.github.com/rest/apps/apps#get-an-installation-for-the-authenticated-app")
	if !ok {
		return
	}
	f.reply(w, http.StatusOK, map[string]any{
		"id": id, "app_id": inst.app, "app_slug": "slipway-example", "client_id": "Iv23liQwErTy123456",
		"account":              map[string]any{"login": inst.account, "id": 9919, "type": "Organization"},
		"repository_selection": "selected", "target_type": "Organization",
		"access_tokens_url": f.srv.URL + "/api/v3/app/installations/" + strconv.FormatInt(id, 10) + "/access_tokens",
		"permissions":       map[string]string{"contents": "read", "metadata": "read", "statuses": "write", "pull_requests": "read"},
		"events":            []string{"create", "delete", "push", "repository"},
		"created_at":        "2026-03-01T08:00:00.000Z", "updated_at": "2026-03-01T08:00:00.000Z", "suspended_at": nil, "suspended_by": nil,
	})
}

func (f *ghFake) accessToken(w http.ResponseWriter, r *http.Request) {
	id, _, ok := f.lookup(w, r, "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app")
	if !ok {
		return
	}
	f.mu.Lock()
	tok := fmt.Sprintf("ghs_fake%d_%d", id, len(f.tokens))
	f.tokens[tok] = id
	f.mu.Unlock()
	f.reply(w, http.StatusCreated, map[string]any{"token": tok, "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		"permissions": map[string]string{"contents": "read", "metadata": "read"}, "repository_selection": "selected"})
}

func (f *ghFake) repositories(w http.ResponseWriter, r *http.Request) {
	raw, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	id, ok := f.tokens[raw]
	inst := f.installations[id]
	f.mu.Unlock()
	if !ok {
		f.reply(w, http.StatusUnauthorized, map[string]string{"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
		return
	}
	repos := []map[string]any{}
	for _, rp := range inst.repos {
		owner, name, _ := strings.Cut(rp.name, "/")
		repos = append(repos, map[string]any{"id": rp.id, "name": name, "full_name": rp.name, "private": true,
			"owner": map[string]any{"login": owner, "type": "Organization"}, "default_branch": "main",
			"html_url": "https://github.com/" + rp.name, "clone_url": "https://github.com/" + rp.name + ".git"})
	}
	f.reply(w, http.StatusOK, map[string]any{"total_count": len(repos), "repository_selection": "selected", "repositories": repos})
}

// ghJobs records what the service enqueues instead of running it.
type ghJobs struct {
	mu          sync.Mutex
	deliveries  []string
	deployments []string
}

func (j *ghJobs) EnqueueDeploy(_ context.Context, _ *store.Tx, _, id string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.deployments = append(j.deployments, id)
	return nil
}

func (j *ghJobs) EnqueueDelivery(_ context.Context, _ *store.Tx, _, id string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.deliveries = append(j.deliveries, id)
	return nil
}

type ghEnv struct {
	ctx     context.Context
	gh      *ghFake
	st      *store.Store
	svc     *service.Service
	jobs    *ghJobs
	admin   service.Actor
	browser service.Browser // the admin's browser, with its flow nonce once a flow began there
}

func newGHEnv(t *testing.T) *ghEnv {
	t.Helper()
	fake := newGHFake(t)
	jobs := &ghJobs{}
	forges := map[slipway.Provider]forge.Provider{slipway.ProviderGitHub: github.New(github.Options{HTTP: fake.srv.Client(), Logger: slog.New(slog.DiscardHandler)})}
	st, svc, admin := newTestService(t, forges, jobs, service.Config{PublicURL: testPublicURL, BaseDomain: "apps.example.com", Network: netpolicy.Policy{AllowPrivate: true}})
	return &ghEnv{ctx: context.Background(), gh: fake, st: st, svc: svc, jobs: jobs, admin: admin, browser: service.Browser{UserID: admin.UserID}}
}

// begin opens a flow's link in the admin's browser (binding the flow to
// it) and returns the state.
func (e *ghEnv) begin(t *testing.T, state string) string {
	t.Helper()
	step, err := e.svc.BeginFlow(e.ctx, e.browser, state)
	if err != nil {
		t.Fatalf("begin flow: %v", err)
	}
	e.browser.Nonce = step.Nonce
	return state
}

// setup is GitHub's redirect to the setup URL in the admin's browser,
// then the admin's confirmation.
func (e *ghEnv) setup(state, installationID string) (slipway.Integration, error) {
	c, err := e.svc.GitHubSetup(e.ctx, e.browser, state, installationID)
	if err != nil {
		return slipway.Integration{}, err
	}
	return e.svc.ConfirmFlow(e.ctx, e.browser, c.State)
}

// createApp runs the manifest flow up to the install URL and returns the
// integration and the install state GitHub will echo to the setup URL.
func (e *ghEnv) createApp(t *testing.T) (slipway.Integration, string) {
	t.Helper()
	start, err := e.svc.GitHubManifestStart(e.ctx, e.admin, service.GitHubManifestInput{Org: "acme", BaseURL: e.gh.srv.URL, Label: "GitHub acme"})
	if err != nil {
		t.Fatal(err)
	}
	integ, installURL, err := e.svc.GitHubManifestCallback(e.ctx, e.browser, e.begin(t, start.State), ghCode)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(installURL)
	if err != nil {
		t.Fatal(err)
	}
	return integ, u.Query().Get("state")
}

func TestGitHubManifestStart(t *testing.T) {
	e := newGHEnv(t)
	res, err := e.svc.GitHubManifestStart(e.ctx, e.admin, service.GitHubManifestInput{Org: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	integ := res.Integration
	if integ.Provider != slipway.ProviderGitHub || integ.AuthMethod != slipway.AuthGitHubApp || integ.Status != slipway.IntegrationPending ||
		integ.StatusReason == "" || integ.StatusFix == "" || integ.BaseURL != "https://github.com" {
		t.Fatalf("pending integration = %+v", integ)
	}
	if want := "https://github.com/organizations/acme/settings/apps/new?state=" + url.QueryEscape(res.State); res.PostURL != want {
		t.Errorf("post URL = %q, want %q", res.PostURL, want)
	}
	if len(res.State) < 40 {
		t.Errorf("state %q is too short to be unguessable", res.State)
	}
	var m struct {
		HookAttributes struct{ URL string } `json:"hook_attributes"`
		RedirectURL    string               `json:"redirect_url"`
		SetupURL       string               `json:"setup_url"`
	}
	if err := json.Unmarshal([]byte(res.Manifest), &m); err != nil {
		t.Fatal(err)
	}
	if m.HookAttributes.URL != testPublicURL+"/hooks/github/"+integ.ID || m.RedirectURL != testPublicURL+service.GitHubManifestCallbackPath ||
		m.SetupURL != testPublicURL+service.GitHubSetupPath {
		t.Errorf("manifest URLs = %+v", m)
	}
	stored, err := e.svc.GetIntegration(e.ctx, e.admin, integ.ID)
	if err != nil || stored.Status != slipway.IntegrationPending {
		t.Fatalf("stored integration = %+v, %v", stored, err)
	}

	// The manifest document itself, with the random integration id masked.
	var pretty map[string]any
	_ = json.Unmarshal([]byte(strings.ReplaceAll(res.Manifest, integ.ID, "{integration}")), &pretty)
	got, _ := json.MarshalIndent(pretty, "", "  ")
	ghGolden(t, filepath.Join("testdata", "github", "manifest.json"), append(got, '\n'))

	// A role without integrations:create cannot start it.
	dev := e.admin
	dev.RoleName, dev.Permissions = slipway.RoleDeveloper, slipway.DeveloperPermissions()
	if _, err := e.svc.GitHubManifestStart(e.ctx, dev, service.GitHubManifestInput{}); slipway.ErrorCodeOf(err) != slipway.ECodeForbidden {
		t.Errorf("developer start: err = %v, want forbidden", err)
	}
}

func ghGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if ghUpdateGolden() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from golden:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestGitHubAppFlowConnectsAndListsRepos(t *testing.T) {
	e := newGHEnv(t)
	integ, installState := e.createApp(t)
	if integ.Settings["app_id"] != strconv.Itoa(ghAppID) || integ.Settings["app_slug"] != "slipway-example" ||
		integ.Settings["html_url"] != "https://github.com/apps/slipway-example" || integ.Status != slipway.IntegrationPending {
		t.Fatalf("after the callback: %+v", integ)
	}
	if installState == "" {
		t.Fatal("the install URL carries no state")
	}

	got, err := e.setup(installState, strconv.Itoa(ghInstallAcme))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != integ.ID || got.Status != slipway.IntegrationConnected || got.ExternalID != strconv.Itoa(ghInstallAcme) ||
		got.AccountName != "acme" || got.RepoSelection != "selected" {
		t.Fatalf("after setup: %+v", got)
	}
	if e.gh.count("GET /api/v3/app/installations/{id}") == 0 {
		t.Error("the installation id was not verified with the App JWT")
	}
	// The repository picker was synced through the service's connection,
	// which mints installation tokens from the sealed App credentials.
	repos, total, err := e.svc.ListRepos(e.ctx, e.admin, integ.ID, "", store.Page{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	if total != 3 || len(repos) != 3 {
		t.Fatalf("repos = %d (%v), want 3", total, repos)
	}
	if e.gh.count("POST /api/v3/app/installations/{id}/access_tokens") == 0 || e.gh.count("GET /api/v3/installation/repositories") == 0 {
		t.Error("the repository list did not come from GitHub with an installation token")
	}
	n, err := e.svc.SyncRepos(e.ctx, e.admin, integ.ID)
	if err != nil || n != 3 {
		t.Errorf("SyncRepos = %d, %v; want 3", n, err)
	}

	// The sealed credentials never show in the integration, its JSON or the audit.
	raw, _ := json.Marshal(got)
	for _, secret := range []string{ghHookSecret, ghClientSecret, "PRIVATE KEY"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("integration JSON contains a credential (%q)", secret)
		}
	}
}

func TestGitHubSetupRefusesForgedInstallation(t *testing.T) {
	e := newGHEnv(t)
	integ, installState := e.createApp(t)
	_, err := e.setup(installState, "99999999")
	if slipway.ErrorCodeOf(err) != slipway.ECodeForbidden {
		t.Fatalf("forged installation: err = %v, want forbidden", err)
	}
	if se, _ := slipway.AsError(err); se == nil || !strings.Contains(se.Message, "99999999") || se.Fix == "" {
		t.Errorf("the refusal does not explain itself: %#v", se)
	}
	stored, err := e.svc.GetIntegration(e.ctx, e.admin, integ.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.ExternalID != "" || stored.Status != slipway.IntegrationPending {
		t.Errorf("a forged installation was stored: %+v", stored)
	}
	all, _ := e.svc.ListIntegrations(e.ctx, e.admin)
	if len(all) != 1 {
		t.Errorf("integrations = %d, want 1", len(all))
	}
	if n := e.gh.count("GET /api/v3/installation/repositories"); n != 0 {
		t.Errorf("repositories were listed %d times for a refused installation", n)
	}
	// Not a number at all.
	link, err := e.svc.GitHubInstallLink(e.ctx, e.admin, integ.ID)
	if err != nil {
		t.Fatal(err)
	}
	lu, _ := url.Parse(link)
	if _, err := e.setup(e.begin(t, lu.Query().Get("state")), "1; DROP"); slipway.ErrorCodeOf(err) != slipway.ECodeInvalid {
		t.Errorf("non-numeric installation id: err = %v, want invalid", err)
	}
}

func TestGitHubStatesWorkOnceForTheirStep(t *testing.T) {
	e := newGHEnv(t)
	start, err := e.svc.GitHubManifestStart(e.ctx, e.admin, service.GitHubManifestInput{BaseURL: e.gh.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	// A state of another step is refused (and not spent).
	if _, err := e.setup(e.begin(t, start.State), strconv.Itoa(ghInstallAcme)); slipway.ErrorCodeOf(err) != slipway.ECodeInvalid {
		t.Errorf("manifest state used for setup: err = %v, want invalid", err)
	}
	_, installURL, err := e.svc.GitHubManifestCallback(e.ctx, e.browser, start.State, ghCode)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(installURL, e.gh.srv.URL+"/apps/slipway-example/installations/new?state=") {
		t.Errorf("install URL = %q", installURL)
	}
	conversions := e.gh.count("POST /api/v3/app-manifests/{code}/conversions")
	if _, _, err := e.svc.GitHubManifestCallback(e.ctx, e.browser, start.State, ghCode); slipway.ErrorCodeOf(err) != slipway.ECodeInvalid {
		t.Errorf("reused manifest state: err = %v, want invalid", err)
	}
	if e.gh.count("POST /api/v3/app-manifests/{code}/conversions") != conversions {
		t.Error("a reused state reached GitHub")
	}
	// The install state is bound to the browser that created the App.
	u, _ := url.Parse(installURL)
	installState := u.Query().Get("state")
	if _, err := e.setup(installState, strconv.Itoa(ghInstallAcme)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.setup(installState, strconv.Itoa(ghInstallAcme)); slipway.ErrorCodeOf(err) != slipway.ECodeInvalid {
		t.Errorf("reused install state: err = %v, want invalid", err)
	}
	// An expired state is refused.
	start, err = e.svc.GitHubManifestStart(e.ctx, e.admin, service.GitHubManifestInput{BaseURL: e.gh.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	e.begin(t, start.State)
	e.svc.SetClock(func() time.Time { return time.Now().Add(61 * time.Minute) })
	if _, _, err := e.svc.GitHubManifestCallback(e.ctx, e.browser, start.State, ghCode); slipway.ErrorCodeOf(err) != slipway.ECodeInvalid {
		t.Errorf("expired state: err = %v, want invalid", err)
	}
}

func TestGitHubManifestCallbackRefusedCode(t *testing.T) {
	e := newGHEnv(t)
	start, err := e.svc.GitHubManifestStart(e.ctx, e.admin, service.GitHubManifestInput{BaseURL: e.gh.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = e.svc.GitHubManifestCallback(e.ctx, e.browser, e.begin(t, start.State), "expired-code")
	if slipway.ErrorCodeOf(err) != slipway.ECodeInvalid {
		t.Fatalf("refused code: err = %v, want invalid", err)
	}
	stored, _ := e.svc.GetIntegration(e.ctx, e.admin, start.Integration.ID)
	if stored.Settings["app_id"] != "" || stored.Status != slipway.IntegrationPending {
		t.Errorf("a refused code changed the integration: %+v", stored)
	}
}

// deliver signs body with the App's webhook secret, receives it at the
// App's hook URL (integration hookOwner) in the admin's organisation and
// processes it.
func (e *ghEnv) deliver(t *testing.T, hookOwner, event string, body []byte) store.Delivery {
	t.Helper()
	return e.deliverAs(t, e.admin.OrgID, hookOwner, ghHookSecret, event, body)
}

// deliverAs signs body with secret, receives it at integrationID's App
// hook URL, checks it was enqueued, processes it in orgID and returns the
// stored delivery.
func (e *ghEnv) deliverAs(t *testing.T, orgID, integrationID, secret, event string, body []byte) store.Delivery {
	t.Helper()
	h := http.Header{}
	h.Set("X-GitHub-Event", event)
	h.Set("X-GitHub-Delivery", slipway.NewID("gh"))
	h.Set("X-Hub-Signature-256", github.Sign(body, secret))
	h.Set("Content-Type", "application/json")
	before := len(e.jobs.deliveries)
	res, err := e.svc.ReceiveDelivery(e.ctx, slipway.ProviderGitHub, integrationID, "", h, body)
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != service.VerdictReceived || len(e.jobs.deliveries) != before+1 || e.jobs.deliveries[before] != res.DeliveryID {
		t.Fatalf("receive: %+v, enqueued %v", res, e.jobs.deliveries)
	}
	if err := e.svc.ProcessDelivery(e.ctx, orgID, res.DeliveryID); err != nil {
		t.Fatal(err)
	}
	d, err := e.st.GetDelivery(e.ctx, orgID, res.DeliveryID)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func ghInstallationPayload(action string, id int, account string) []byte {
	b, _ := json.Marshal(map[string]any{
		"action": action,
		"installation": map[string]any{"id": id, "account": map[string]any{"login": account, "type": "Organization"},
			"repository_selection": "selected", "app_id": ghAppID, "app_slug": "slipway-example"},
		"sender": map[string]any{"login": "octocat"},
	})
	return b
}

func TestGitHubInstallationWebhooksFlipStatus(t *testing.T) {
	e := newGHEnv(t)
	integ, installState := e.createApp(t)
	if _, err := e.setup(installState, strconv.Itoa(ghInstallAcme)); err != nil {
		t.Fatal(err)
	}
	status := func() slipway.Integration {
		t.Helper()
		got, err := e.svc.GetIntegration(e.ctx, e.admin, integ.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	e.deliver(t, integ.ID, "installation", ghInstallationPayload("suspend", ghInstallAcme, "acme"))
	if got := status(); got.Status != slipway.IntegrationNeedsAttention || got.StatusFix == "" {
		t.Errorf("after suspend: %s (%s)", got.Status, got.StatusReason)
	}
	e.deliver(t, integ.ID, "installation", ghInstallationPayload("unsuspend", ghInstallAcme, "acme"))
	if got := status(); got.Status != slipway.IntegrationConnected {
		t.Errorf("after unsuspend: %s", got.Status)
	}
	e.deliver(t, integ.ID, "installation", ghInstallationPayload("deleted", ghInstallAcme, "acme"))
	if got := status(); got.Status != slipway.IntegrationDisconnected {
		t.Errorf("after deleted: %s", got.Status)
	}

	// A delivery signed with another secret is refused and stored nowhere.
	body := ghInstallationPayload("unsuspend", ghInstallAcme, "acme")
	h := http.Header{"X-Github-Event": {"installation"}, "X-Hub-Signature-256": {github.Sign(body, "not-the-secret")}}
	if _, err := e.svc.ReceiveDelivery(e.ctx, slipway.ProviderGitHub, integ.ID, "", h, body); slipway.ErrorCodeOf(err) != slipway.ECodeBadSignature {
		t.Errorf("badly signed delivery: err = %v, want bad_signature", err)
	}
	if got := status(); got.Status != slipway.IntegrationDisconnected {
		t.Errorf("a badly signed delivery changed the status to %s", got.Status)
	}
}

func TestGitHubSecondInstallationGetsItsOwnIntegrationAndItsPushes(t *testing.T) {
	e := newGHEnv(t)
	appInteg, installState := e.createApp(t)
	if _, err := e.setup(installState, strconv.Itoa(ghInstallAcme)); err != nil {
		t.Fatal(err)
	}
	link, err := e.svc.GitHubInstallLink(e.ctx, e.admin, appInteg.ID)
	if err != nil {
		t.Fatal(err)
	}
	lu, _ := url.Parse(link)
	beta, err := e.setup(e.begin(t, lu.Query().Get("state")), strconv.Itoa(ghInstallBeta))
	if err != nil {
		t.Fatal(err)
	}
	if beta.ID == appInteg.ID || beta.ExternalID != strconv.Itoa(ghInstallBeta) || beta.AccountName != "beta" ||
		beta.Status != slipway.IntegrationConnected || beta.Settings["hook_integration_id"] != appInteg.ID {
		t.Fatalf("second installation: %+v", beta)
	}
	if a, _ := e.svc.GetIntegration(e.ctx, e.admin, appInteg.ID); a.ExternalID != strconv.Itoa(ghInstallAcme) {
		t.Errorf("the App's first integration lost its installation: %+v", a)
	}
	repos, total, err := e.svc.ListRepos(e.ctx, e.admin, beta.ID, "", store.Page{Limit: 50})
	if err != nil || total != 1 || repos[0].FullName != "beta/shop" {
		t.Fatalf("beta repos = %v (%d), %v", repos, total, err)
	}

	// Setting the same installation up again updates, never duplicates.
	link, _ = e.svc.GitHubInstallLink(e.ctx, e.admin, appInteg.ID)
	lu, _ = url.Parse(link)
	again, err := e.setup(e.begin(t, lu.Query().Get("state")), strconv.Itoa(ghInstallBeta))
	if err != nil || again.ID != beta.ID {
		t.Fatalf("repeated setup = %+v, %v; want integration %s", again, err, beta.ID)
	}
	if all, _ := e.svc.ListIntegrations(e.ctx, e.admin); len(all) != 2 {
		t.Errorf("integrations = %d, want 2", len(all))
	}

	// A Service of the beta installation follows beta/shop@main.
	svc := e.serviceOn(t, beta.ID, "201", "beta/shop", "main")

	// The push arrives at the App's only hook URL, the first integration's.
	push, _ := json.Marshal(map[string]any{
		"ref": "refs/heads/main", "before": "1111111111111111111111111111111111111111", "after": "2222222222222222222222222222222222222222",
		"created": false, "deleted": false, "forced": false,
		"repository":   map[string]any{"id": 201, "full_name": "beta/shop", "private": true, "clone_url": "https://github.com/beta/shop.git"},
		"installation": map[string]any{"id": ghInstallBeta, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNjAwMDI="},
		"pusher":       map[string]any{"name": "octocat"},
		"head_commit": map[string]any{"id": "2222222222222222222222222222222222222222", "message": "Ship it", "timestamp": "2026-03-02T10:00:00Z",
			"author": map[string]any{"name": "Octo Cat"}, "added": []string{"a.go"}, "removed": []string{}, "modified": []string{}},
		"commits": []map[string]any{{"id": "2222222222222222222222222222222222222222", "message": "Ship it",
			"author": map[string]any{"name": "Octo Cat"}, "added": []string{"a.go"}, "removed": []string{}, "modified": []string{}}},
	})
	d := e.deliver(t, appInteg.ID, "push", push)
	if d.Verdict != service.VerdictProcessed || len(d.Caused) != 1 {
		t.Fatalf("push delivery: verdict %s (%s), caused %v", d.Verdict, d.Detail, d.Caused)
	}
	dep, err := e.st.GetDeployment(e.ctx, e.admin.OrgID, d.Caused[0])
	if err != nil {
		t.Fatal(err)
	}
	if dep.ServiceID != svc.ID || dep.IntegrationID != beta.ID || dep.CommitSHA != "2222222222222222222222222222222222222222" {
		t.Errorf("deployment = %+v", dep)
	}
	if len(e.jobs.deployments) != 1 {
		t.Errorf("deployments enqueued = %v", e.jobs.deployments)
	}

	// An installation event for beta, also at the App's URL, reaches beta.
	e.deliver(t, appInteg.ID, "installation", ghInstallationPayload("suspend", ghInstallBeta, "beta"))
	if got, _ := e.svc.GetIntegration(e.ctx, e.admin, beta.ID); got.Status != slipway.IntegrationNeedsAttention {
		t.Errorf("beta after suspend: %s", got.Status)
	}
	if got, _ := e.svc.GetIntegration(e.ctx, e.admin, appInteg.ID); got.Status != slipway.IntegrationConnected {
		t.Errorf("the App's first integration after beta's suspend: %s", got.Status)
	}
}

// serviceOn creates an auto-deploying Service following repo@branch
// through integrationID, straight in the store.
func (e *ghEnv) serviceOn(t *testing.T, integrationID, repoID, repoName, branch string) slipway.Service {
	t.Helper()
	app := &slipway.Application{OrgID: e.admin.OrgID, Name: "shop", Status: slipway.AppActive}
	if err := e.st.CreateApplication(e.ctx, app); err != nil {
		t.Fatal(err)
	}
	env := &slipway.Environment{OrgID: e.admin.OrgID, ApplicationID: app.ID, Name: "production", Status: slipway.EnvActive, IsDefault: true}
	if err := e.st.CreateEnvironment(e.ctx, env); err != nil {
		t.Fatal(err)
	}
	svc := &slipway.Service{OrgID: e.admin.OrgID, ApplicationID: app.ID, EnvironmentID: env.ID, Name: "web", Type: slipway.ServiceApp,
		Source: slipway.ServiceSource{IntegrationID: integrationID, RepoID: repoID, RepoName: repoName, Branch: branch, AutoDeploy: true}}
	if err := e.st.CreateService(e.ctx, svc); err != nil {
		t.Fatal(err)
	}
	return *svc
}
