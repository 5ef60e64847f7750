package web_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/secrets"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
	"slipway.dev/slipway/internal/web"
)

// noJobs accepts jobs and runs none: these tests look at pages, not pipelines.
type noJobs struct{}

func (noJobs) EnqueueDeploy(context.Context, *store.Tx, string, string) error   { return nil }
func (noJobs) EnqueueDelivery(context.Context, *store.Tx, string, string) error { return nil }

// clock is a settable time source shared by the dashboard under test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t      *testing.T
	svc    *service.Service
	store  *store.Store
	srv    *httptest.Server
	clock  *clock
	boot   service.BootstrapResult
	secure bool
	dir    string
}

func newEnv(t *testing.T, opts web.Options) *env {
	t.Helper()
	return newEnvAt(t, "http://slipway.test", nil, opts)
}

// newEnvAt is newEnv with the service's public URL and providers.
func newEnvAt(t *testing.T, publicURL string, forges map[slipway.Provider]forge.Provider, opts web.Options) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	st, err := store.Open(ctx, "", dir, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	keys, err := secrets.LoadOrCreate(filepath.Join(dir, "master.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	if forges == nil {
		forges = map[slipway.Provider]forge.Provider{}
	}
	svc := service.New(st, keys, forges, noJobs{}, service.Config{PublicURL: publicURL, BaseDomain: "apps.test"}, logger)
	boot, err := svc.Bootstrap(ctx, "admin@example.com")
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Now()}
	svc.SetClock(c.Now)
	opts.Clock = c.Now
	mux := http.NewServeMux()
	web.New(svc, logger, opts).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{t: t, svc: svc, store: st, srv: srv, clock: c, boot: boot, secure: strings.HasPrefix(publicURL, "https:"), dir: dir}
}

// browser is a client with a cookie jar that does not follow redirects,
// so tests see each answer.
type browser struct {
	e    *env
	http *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type answer struct {
	status   int
	body     string
	location string
	header   http.Header
}

func (b *browser) do(req *http.Request) answer {
	b.e.t.Helper()
	res, err := b.http.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return answer{status: res.StatusCode, body: string(body), location: res.Header.Get("Location"), header: res.Header}
}

func (b *browser) get(path string) answer {
	req, _ := http.NewRequest(http.MethodGet, b.e.srv.URL+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) answer {
	req, _ := http.NewRequest(http.MethodPost, b.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token from a page's forms.
func (b *browser) csrf(path string) string {
	b.e.t.Helper()
	a := b.get(path)
	m := csrfInput.FindStringSubmatch(a.body)
	if m == nil {
		b.e.t.Fatalf("GET %s: no CSRF field (status %d)", path, a.status)
	}
	return m[1]
}

func (b *browser) signIn(email, password string) answer {
	b.e.t.Helper()
	a := b.post("/login", url.Values{"email": {email}, "password": {password}})
	if a.status != http.StatusSeeOther {
		b.e.t.Fatalf("sign in: status %d: %s", a.status, a.body)
	}
	return a
}

func (e *env) adminBrowser() *browser {
	b := e.browser()
	b.signIn(e.boot.Email, e.boot.Password)
	return b
}

func (e *env) orgPath(parts ...string) string {
	return "/orgs/" + e.boot.OrgID + "/" + strings.Join(parts, "/")
}

func TestSignInSetsAHardenedSessionCookie(t *testing.T) {
	// Secure follows the public URL alone: nothing needs setting.
	for _, secure := range []bool{false, true} {
		public := "http://slipway.test"
		if secure {
			public = "https://slipway.test"
		}
		e := newEnvAt(t, public, nil, web.Options{})
		b := e.browser()
		if a := b.get(e.orgPath("apps")); a.status != http.StatusSeeOther || !strings.HasPrefix(a.location, "/login?next=") {
			t.Fatalf("signed out: status %d location %q, want a redirect to /login", a.status, a.location)
		}
		if a := b.post("/login", url.Values{"email": {e.boot.Email}, "password": {"wrong-password"}}); a.status != http.StatusUnauthorized || !strings.Contains(a.body, "wrong e-mail or password") {
			t.Fatalf("wrong password: status %d, body lacks the reason", a.status)
		}
		a := b.signIn(e.boot.Email, e.boot.Password)
		if a.location != e.orgPath("apps") {
			t.Errorf("after sign-in: location %q, want %q", a.location, e.orgPath("apps"))
		}
		setCookie := a.header.Get("Set-Cookie")
		for _, want := range []string{"HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=43200"} {
			if !strings.Contains(setCookie, want) {
				t.Errorf("secure=%v: cookie %q lacks %s", secure, setCookie, want)
			}
		}
		if secure != strings.HasPrefix(setCookie, "__Host-") || secure != strings.Contains(setCookie, "Secure") {
			t.Errorf("secure=%v: cookie %q", secure, setCookie)
		}
		value := strings.SplitN(strings.SplitN(setCookie, ";", 2)[0], "=", 2)[1]
		if len(value) != 43 { // 32 bytes, base64url without padding
			t.Errorf("session id %q is not 256 bits", value)
		}
		if secure {
			continue // the jar does not send Secure cookies over http
		}
		if a := b.get(e.orgPath("apps")); a.status != http.StatusOK || !strings.Contains(a.body, "No applications yet") {
			t.Fatalf("apps page: status %d", a.status)
		}
		csrf := b.csrf(e.orgPath("apps"))
		if a := b.post("/logout", url.Values{"csrf": {csrf}}); a.status != http.StatusSeeOther || a.location != "/login" {
			t.Fatalf("sign out: status %d location %q", a.status, a.location)
		}
		if a := b.get(e.orgPath("apps")); a.status != http.StatusSeeOther {
			t.Fatalf("after sign-out: status %d, want a redirect to sign in", a.status)
		}
	}
}

func TestSignInRedirectsOnlyToLocalPaths(t *testing.T) {
	e := newEnv(t, web.Options{})
	b := e.browser()
	for next, want := range map[string]string{
		e.orgPath("integrations"): e.orgPath("integrations"),
		"//evil.example/":         "/",
		"https://evil.example/":   "/",
		"/%09/evil.example":       "/",
		"/\t/evil.example":        "/",
		"/\\evil.example":         "/",
		"/%2F%2Fevil.example":     "/",
		"/%5Cevil.example":        "/",
	} {
		a := b.post("/login", url.Values{"email": {e.boot.Email}, "password": {e.boot.Password}, "next": {next}})
		if a.location != want {
			t.Errorf("next=%q: redirected to %q, want %q", next, a.location, want)
		}
	}
}

func TestPostsWithoutTheSessionsCSRFTokenAreRefused(t *testing.T) {
	e := newEnv(t, web.Options{})
	b := e.adminBrowser()
	other := e.adminBrowser() // a second session has its own token
	otherToken := other.csrf(e.orgPath("apps"))
	for name, form := range map[string]url.Values{
		"missing":       {"name": {"shop"}},
		"wrong":         {"name": {"shop"}, "csrf": {"not-the-token"}},
		"other session": {"name": {"shop"}, "csrf": {otherToken}},
	} {
		a := b.post(e.orgPath("apps"), form)
		if a.status != http.StatusForbidden || !strings.Contains(a.body, "security token") {
			t.Errorf("%s token: status %d, want 403 with the reason", name, a.status)
		}
	}
	apps, _, err := e.svc.ListApplications(context.Background(), e.admin(), "", store.Page{})
	if err != nil || len(apps) != 0 {
		t.Fatalf("refused posts created %d applications (err %v)", len(apps), err)
	}
	a := b.post(e.orgPath("apps"), url.Values{"name": {"shop"}, "csrf": {b.csrf(e.orgPath("apps"))}})
	if a.status != http.StatusSeeOther {
		t.Fatalf("with the token: status %d: %s", a.status, a.body)
	}
	// A browser's cross-site form post is refused even before the token is looked at.
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+e.orgPath("apps"), strings.NewReader(url.Values{"name": {"x"}, "csrf": {b.csrf(e.orgPath("apps"))}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if a := b.do(req); a.status != http.StatusForbidden {
		t.Errorf("cross-site post: status %d, want 403", a.status)
	}
}

func (e *env) admin() service.Actor {
	a, err := e.svc.ActorFor(context.Background(), e.boot.OrgID, e.boot.UserID)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func TestSessionsExpireAfterTwelveIdleHoursAndSlideWithUse(t *testing.T) {
	e := newEnv(t, web.Options{})
	b := e.adminBrowser()
	for i := 0; i < 3; i++ { // used every 11 hours: stays signed in for 33 hours
		e.clock.Advance(11 * time.Hour)
		if a := b.get(e.orgPath("apps")); a.status != http.StatusOK {
			t.Fatalf("after %dh of regular use: status %d, want 200", 11*(i+1), a.status)
		}
	}
	csrf := b.csrf(e.orgPath("apps"))
	e.clock.Advance(12*time.Hour + time.Minute)
	if a := b.get(e.orgPath("apps")); a.status != http.StatusSeeOther || !strings.HasPrefix(a.location, "/login") {
		t.Fatalf("after 12h idle: status %d location %q, want a redirect to sign in", a.status, a.location)
	}
	if a := b.post(e.orgPath("apps"), url.Values{"name": {"late"}, "csrf": {csrf}}); a.status != http.StatusUnauthorized || !strings.Contains(a.body, "session has expired") {
		t.Fatalf("post after expiry: status %d, want 401 saying the session expired", a.status)
	}
}

func TestForeignOrganisationsAnswerNotFound(t *testing.T) {
	e := newEnv(t, web.Options{})
	ctx := context.Background()
	admin := e.admin()
	// A second organisation the developer is not a member of, with content.
	other, err := e.svc.CreateOrganisation(ctx, admin, "other")
	if err != nil {
		t.Fatal(err)
	}
	otherAdmin, err := e.svc.ActorFor(ctx, other.ID, e.boot.UserID)
	if err != nil {
		t.Fatal(err)
	}
	app, err := e.svc.CreateApplication(ctx, otherAdmin, service.ApplicationInput{Name: "secret-app"})
	if err != nil {
		t.Fatal(err)
	}
	svc := slipway.Service{OrgID: other.ID, ApplicationID: app.ID, EnvironmentID: app.DefaultEnvironmentID, Name: "api"}
	if err := e.store.CreateService(ctx, &svc); err != nil {
		t.Fatal(err)
	}
	dep := slipway.Deployment{OrgID: other.ID, ServiceID: svc.ID, CommitSHA: "0123456789abcdef", Trigger: slipway.TriggerManual}
	if _, err := e.store.CreateDeployment(ctx, &dep, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.AddMember(ctx, admin, service.CreateUserInput{Email: "dev@example.com", Password: "developer-password", Role: slipway.RoleDeveloper}); err != nil {
		t.Fatal(err)
	}
	dev := e.browser()
	dev.signIn("dev@example.com", "developer-password")
	own := func(parts ...string) string { return e.orgPath(parts...) }
	foreign := func(parts ...string) string { return "/orgs/" + other.ID + "/" + strings.Join(parts, "/") }
	for _, path := range []string{
		foreign("apps"), foreign("integrations"), foreign("apps", app.ID), foreign("services", svc.ID), foreign("deployments", dep.ID),
		foreign("deployments", dep.ID, "events"),
		// The developer's own organisation in the URL, a foreign resource id.
		own("apps", app.ID), own("services", svc.ID), own("deployments", dep.ID), own("deployments", dep.ID, "events"),
		own("services", svc.ID, "deployments"), own("envs", app.DefaultEnvironmentID, "services", "new"),
	} {
		if a := dev.get(path); a.status != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, a.status)
		}
	}
	csrf := dev.csrf(own("apps"))
	for _, path := range []string{foreign("apps"), own("services", svc.ID, "deploy"), own("apps", app.ID, "status"), own("deployments", dep.ID, "cancel")} {
		if a := dev.post(path, url.Values{"csrf": {csrf}, "name": {"x"}, "status": {"archived"}}); a.status != http.StatusNotFound {
			t.Errorf("POST %s: status %d, want 404", path, a.status)
		}
	}
	if a := dev.post("/switch-org", url.Values{"csrf": {csrf}, "org": {other.ID}}); a.status != http.StatusNotFound {
		t.Errorf("switching to a foreign organisation: status %d, want 404", a.status)
	}
	got, err := e.store.GetDeployment(ctx, other.ID, dep.ID)
	if err != nil || got.Status != slipway.DeployQueued {
		t.Errorf("foreign deployment changed: %v %v", got.Status, err)
	}
}

func TestOrganisationSwitcherChangesTheCurrentOrganisation(t *testing.T) {
	e := newEnv(t, web.Options{})
	other, err := e.svc.CreateOrganisation(context.Background(), e.admin(), "second")
	if err != nil {
		t.Fatal(err)
	}
	b := e.adminBrowser()
	page := b.get(e.orgPath("apps"))
	if !strings.Contains(page.body, `id="org-switch"`) || !strings.Contains(page.body, ">second<") {
		t.Fatal("a member of two organisations sees no switcher")
	}
	a := b.post("/switch-org", url.Values{"csrf": {b.csrf(e.orgPath("apps"))}, "org": {other.ID}})
	if a.status != http.StatusSeeOther || a.location != "/orgs/"+other.ID+"/apps" {
		t.Fatalf("switch: status %d location %q", a.status, a.location)
	}
	if a := b.get("/"); a.location != "/orgs/"+other.ID+"/apps" {
		t.Errorf("home after switching goes to %q, want the new organisation", a.location)
	}
}

func TestApplicationsAndEnvironments(t *testing.T) {
	e := newEnv(t, web.Options{})
	b := e.adminBrowser()
	csrf := b.csrf(e.orgPath("apps"))
	a := b.post(e.orgPath("apps"), url.Values{"csrf": {csrf}, "name": {"Bad Name"}})
	if a.status != http.StatusBadRequest || !strings.Contains(a.body, "lower-case letters") || !strings.Contains(a.body, `value="Bad Name"`) {
		t.Fatalf("invalid name: status %d; want 400 with the reason and the value kept", a.status)
	}
	a = b.post(e.orgPath("apps"), url.Values{"csrf": {csrf}, "name": {"shop"}, "description": {"the shop"}})
	if a.status != http.StatusSeeOther {
		t.Fatalf("create: status %d", a.status)
	}
	appPath := a.location
	page := b.get(appPath)
	if page.status != http.StatusOK || !strings.Contains(page.body, "production") || !strings.Contains(page.body, "No services in production yet") {
		t.Fatalf("app page: status %d, missing the default environment or its empty state", page.status)
	}
	if a := b.post(appPath+"/envs", url.Values{"csrf": {csrf}, "name": {"staging"}}); a.status != http.StatusSeeOther {
		t.Fatalf("create env: status %d: %s", a.status, a.body)
	}
	envs, err := e.svc.ListEnvironments(context.Background(), e.admin(), "shop")
	if err != nil || len(envs) != 2 {
		t.Fatalf("environments: %v %v", envs, err)
	}
	var staging slipway.Environment
	for _, env := range envs {
		if env.Name == "staging" {
			staging = env
		}
	}
	for _, action := range []string{"activate", "default"} {
		if a := b.post(e.orgPath("envs", staging.ID, action), url.Values{"csrf": {csrf}}); a.status != http.StatusSeeOther {
			t.Fatalf("%s: status %d", action, a.status)
		}
	}
	got, _ := e.svc.GetEnvironment(context.Background(), e.admin(), staging.ID)
	app, _ := e.svc.GetApplication(context.Background(), e.admin(), "shop")
	if got.Status != slipway.EnvActive || app.DefaultEnvironmentID != staging.ID || app.Status != slipway.AppActive {
		t.Fatalf("after activate and default: env %s, app default %s status %s", got.Status, app.DefaultEnvironmentID, app.Status)
	}
	if a := b.post(appPath+"/status", url.Values{"csrf": {csrf}, "status": {"archived"}}); a.status != http.StatusSeeOther {
		t.Fatalf("archive: status %d", a.status)
	}
	if list := b.get(e.orgPath("apps")); strings.Contains(list.body, ">shop<") {
		t.Error("an archived application is still listed with the current ones")
	}
	if list := b.get(e.orgPath("apps") + "?archived=1"); !strings.Contains(list.body, ">shop<") {
		t.Error("the archived list does not show the archived application")
	}
	if a := b.post(appPath+"/envs", url.Values{"csrf": {csrf}, "name": {"qa"}}); a.status != http.StatusConflict || !strings.Contains(a.body, "restore it first") {
		t.Errorf("env in an archived app: status %d, want 409 with the fix", a.status)
	}
	if a := b.post(appPath+"/status", url.Values{"csrf": {csrf}, "status": {"active"}}); a.status != http.StatusSeeOther {
		t.Fatalf("restore: status %d", a.status)
	}
}

func TestIntegrationsPageExplainsEveryProvider(t *testing.T) {
	e := newEnv(t, web.Options{})
	b := e.adminBrowser()
	page := b.get(e.orgPath("integrations"))
	if page.status != http.StatusOK {
		t.Fatalf("status %d", page.status)
	}
	for _, want := range []string{
		"GitHub", "GitLab", "Bitbucket", "Azure DevOps", "Gitea / Forgejo", "Generic Git",
		"Settings → Applications → Generate token", "read:repository", "write:repository",
		"read_api", "read_repository", "Code (Read &amp; status)", "Service Hooks",
		"http://slipway.test/integrations/oauth/callback",
	} {
		if !strings.Contains(page.body, want) {
			t.Errorf("integrations page lacks %q", want)
		}
	}
	// A provider this build lacks is refused inline, with the form kept open.
	a := b.post(e.orgPath("integrations", "connect"), url.Values{"csrf": {b.csrf(e.orgPath("integrations"))}, "provider": {"gitea"}, "token": {"t0ken"}, "base_url": {"http://127.0.0.1:1"}})
	if a.status != http.StatusBadRequest || !strings.Contains(a.body, "not available in this build") || !strings.Contains(a.body, "<details open>") {
		t.Errorf("connect refused: status %d, want 400 with the reason and the form open", a.status)
	}
	if strings.Contains(a.body, "t0ken") {
		t.Error("the refused token is echoed back into the page")
	}
}

func TestOAuthCallbackWithAnUnknownStateSaysWhatToDo(t *testing.T) {
	e := newEnv(t, web.Options{})
	b := e.adminBrowser()
	// Signed out, the callback only sends the browser to sign in and back.
	if a := e.browser().get(service.OAuthCallbackPath + "?state=nope&code=abc"); a.status != http.StatusSeeOther ||
		a.location != "/login?next="+url.QueryEscape(service.OAuthCallbackPath+"?state=nope&code=abc") {
		t.Fatalf("signed out: status %d location %q; want a redirect to sign in and back", a.status, a.location)
	}
	a := b.get(service.OAuthCallbackPath + "?state=nope&code=abc")
	if a.status != http.StatusBadRequest || !strings.Contains(a.body, "already used or has expired") || !strings.Contains(a.body, "start connecting again") {
		t.Fatalf("status %d; want 400 with the reason and the fix", a.status)
	}
	a = b.get(service.OAuthCallbackPath + "?error=access_denied&error_description=denied")
	if a.status != http.StatusBadRequest || !strings.Contains(a.body, "did not grant access") {
		t.Fatalf("denied consent: status %d", a.status)
	}
}

// seedService stores a Service with one running and one live deployment
// directly, since creating one through the use case needs a real forge.
func (e *env) seedService(t *testing.T) (slipway.Service, slipway.Deployment) {
	ctx := context.Background()
	app, err := e.svc.CreateApplication(ctx, e.admin(), service.ApplicationInput{Name: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	svc := slipway.Service{OrgID: e.boot.OrgID, ApplicationID: app.ID, EnvironmentID: app.DefaultEnvironmentID, Name: "web",
		Source: slipway.ServiceSource{RepoID: "42", RepoName: "team/web", Branch: "main", AutoDeploy: true}}
	if err := e.store.CreateService(ctx, &svc); err != nil {
		t.Fatal(err)
	}
	// Written to the store directly, like a Service of an older version:
	// the start-up pass claims its hosts (the previous scheme's too).
	if err := e.svc.EnsureHostClaims(ctx); err != nil {
		t.Fatal(err)
	}
	live := slipway.Deployment{OrgID: e.boot.OrgID, ServiceID: svc.ID, CommitSHA: "aaaaaaa1111111", CommitMessage: "First release\n\nbody", CommitAuthor: "Ada", Trigger: slipway.TriggerManual}
	if _, err := e.store.CreateDeployment(ctx, &live, ""); err != nil {
		t.Fatal(err)
	}
	for _, s := range []slipway.DeploymentStatus{slipway.DeployCloning, slipway.DeployBuilding, slipway.DeployDeploying, slipway.DeployLive} {
		if _, err := e.store.TransitionDeployment(ctx, e.boot.OrgID, live.ID, s, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.SetLiveDeployment(ctx, e.boot.OrgID, svc.ID, live.ID); err != nil {
		t.Fatal(err)
	}
	return svc, live
}

func TestServicePageShowsTheLiveReleaseAndPicksUpNewDeployments(t *testing.T) {
	e := newEnv(t, web.Options{})
	ctx := context.Background()
	svc, live := e.seedService(t)
	b := e.adminBrowser()
	page := b.get(e.orgPath("services", svc.ID))
	if page.status != http.StatusOK {
		t.Fatalf("status %d", page.status)
	}
	for _, want := range []string{"aaaaaaa", "First release", "by Ada", "Redeploy without cache", "Roll back", "http://web.production.shop.default.apps.test", `id="service-hosts"`,
		`>web.production.shop.apps.test</a></td><td>previous</td><td>active`, `>web.production.shop.default.apps.test</a></td><td>generated</td><td>active`, `data-poll="` + e.orgPath("services", svc.ID, "deployments") + `"`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("service page lacks %q", want)
		}
	}
	if strings.Contains(page.body, "body") && strings.Contains(page.body, "First release\n\nbody") {
		t.Error("the commit message body is shown in the summary")
	}
	// A push creates a deployment; the polled fragment has it.
	push := slipway.Deployment{OrgID: e.boot.OrgID, ServiceID: svc.ID, CommitSHA: "bbbbbbb2222222", CommitMessage: "Second", Trigger: slipway.TriggerPush}
	if _, err := e.store.CreateDeployment(ctx, &push, ""); err != nil {
		t.Fatal(err)
	}
	frag := b.get(e.orgPath("services", svc.ID, "deployments"))
	if frag.status != http.StatusOK || !strings.Contains(frag.body, `data-id="`+push.ID+`"`) || !strings.Contains(frag.body, `data-id="`+live.ID+`"`) || strings.Contains(frag.body, "<html") {
		t.Fatalf("fragment: status %d, want both deployments' rows and no page around them:\n%s", frag.status, frag.body)
	}
	// Variables: a secret's value never reaches the page.
	csrf := b.csrf(e.orgPath("services", svc.ID))
	for _, v := range []url.Values{{"key": {"PLAIN"}, "value": {"visible-value"}}, {"key": {"TOKEN"}, "value": {"hidden-value"}, "secret": {"on"}}} {
		v.Set("csrf", csrf)
		if a := b.post(e.orgPath("services", svc.ID, "variables"), v); a.status != http.StatusSeeOther {
			t.Fatalf("set variable: status %d: %s", a.status, a.body)
		}
	}
	page = b.get(e.orgPath("services", svc.ID))
	if !strings.Contains(page.body, "visible-value") || strings.Contains(page.body, "hidden-value") || !strings.Contains(page.body, "TOKEN") {
		t.Error("variables: want the plain value shown and the secret masked")
	}
	if a := b.post(e.orgPath("services", svc.ID, "variables"), url.Values{"csrf": {csrf}, "key": {"PORT"}, "value": {"1"}}); a.status != http.StatusBadRequest || !strings.Contains(a.body, "not PORT") {
		t.Errorf("PORT: status %d, want 400 with the reason", a.status)
	}
	// The deploy hook is shown once, on the rotation's answer.
	a := b.post(e.orgPath("services", svc.ID, "deploy-hook"), url.Values{"csrf": {csrf}})
	if a.status != http.StatusOK || !strings.Contains(a.body, "http://slipway.test/hooks/deploy/dh_") {
		t.Fatalf("rotate: status %d, no hook URL", a.status)
	}
	if page := b.get(e.orgPath("services", svc.ID)); strings.Contains(page.body, "/hooks/deploy/dh_") {
		t.Error("the deploy-hook URL is shown again after the rotation")
	}
	// A save the use case refuses is shown inline with the reason.
	if a := b.post(e.orgPath("services", svc.ID, "domains"), url.Values{"csrf": {csrf}, "domains": {"www.example.com"}}); a.status != http.StatusBadRequest || !strings.Contains(a.body, `role="alert"`) || !strings.Contains(a.body, "needs an integration") {
		t.Fatalf("domains on a service without integration: status %d, want 400 shown inline", a.status)
	}
	img := slipway.Service{OrgID: e.boot.OrgID, ApplicationID: svc.ApplicationID, EnvironmentID: svc.EnvironmentID, Name: "cache", Type: slipway.ServiceDocker, Image: "redis:7"}
	if err := e.store.CreateService(ctx, &img); err != nil {
		t.Fatal(err)
	}
	if a := b.post(e.orgPath("services", img.ID, "domains"), url.Values{"csrf": {csrf}, "domains": {"WWW.Example.com, shop.example.com"}}); a.status != http.StatusSeeOther {
		t.Fatalf("domains: status %d: %s", a.status, a.body)
	}
	got, _ := e.svc.ResolveService(ctx, e.admin(), img.ID)
	if strings.Join(got.Domains, " ") != "www.example.com shop.example.com" && strings.Join(got.Domains, " ") != "shop.example.com www.example.com" {
		t.Errorf("domains saved as %v", got.Domains)
	}
	// Both wait for their DNS record: the page names the record to create
	// and offers the check; a check that finds nothing says so inline.
	page = b.get(e.orgPath("services", img.ID))
	for _, want := range []string{`id="pending-domains"`, "<code>_slipway-challenge.www.example.com</code>", "slipway-verify-",
		e.orgPath("services", img.ID, "domains", "shop.example.com", "verify")} {
		if !strings.Contains(page.body, want) {
			t.Errorf("service page lacks %q", want)
		}
	}
	for _, h := range got.Hosts {
		if h.Kind == slipway.HostCustom {
			t.Errorf("a pending domain is a host: %+v", h)
		}
	}
	// Routing settings: saved from the form, a limit out of range shown inline.
	if a := b.post(e.orgPath("services", img.ID, "routing"), url.Values{"csrf": {csrf}, "max_body_mb": {"12"}, "hsts": {"on"}}); a.status != http.StatusSeeOther {
		t.Fatalf("routing: status %d: %s", a.status, a.body)
	}
	if got, _ := e.svc.ResolveService(ctx, e.admin(), img.ID); got.MaxBodyMB != 12 || !got.HSTS {
		t.Errorf("routing saved as %d MiB, hsts %v", got.MaxBodyMB, got.HSTS)
	}
	if a := b.post(e.orgPath("services", img.ID, "routing"), url.Values{"csrf": {csrf}, "max_body_mb": {"0"}}); a.status != http.StatusBadRequest || !strings.Contains(a.body, "out of range") {
		t.Errorf("max_body_mb 0: status %d, want 400 shown inline", a.status)
	}
}

func TestDeploymentPageStreamsTheLogOverServerSentEvents(t *testing.T) {
	e := newEnv(t, web.Options{})
	ctx := context.Background()
	svc, _ := e.seedService(t)
	dep := slipway.Deployment{OrgID: e.boot.OrgID, ServiceID: svc.ID, CommitSHA: "ccccccc3333333", CommitMessage: "Third", Trigger: slipway.TriggerManual}
	if _, err := e.store.CreateDeployment(ctx, &dep, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.TransitionDeployment(ctx, e.boot.OrgID, dep.ID, slipway.DeployCloning, ""); err != nil {
		t.Fatal(err)
	}
	b := e.adminBrowser()
	page := b.get(e.orgPath("deployments", dep.ID))
	if page.status != http.StatusOK || !strings.Contains(page.body, `data-events="`+e.orgPath("deployments", dep.ID, "events")+`"`) {
		t.Fatalf("deployment page: status %d, no event source", page.status)
	}
	if !regexp.MustCompile(`<li class="done" data-phase="queued">`).MatchString(page.body) || !strings.Contains(page.body, `<li class="current" data-phase="cloning">`) || !strings.Contains(page.body, `<li class="pending" data-phase="live">`) {
		t.Errorf("progress indicator does not show queued done, cloning current, live pending")
	}

	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+e.orgPath("deployments", dep.ID, "events"), nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := b.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); res.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("events: status %d type %q", res.StatusCode, ct)
	}
	go func() { // the pipeline writes while the browser listens
		time.Sleep(300 * time.Millisecond)
		_ = e.store.AppendDeploymentLog(ctx, dep.ID, []store.LogLine{{At: time.Now(), Stream: "stdout", Text: "cloned at ccccccc"}})
		for _, s := range []slipway.DeploymentStatus{slipway.DeployBuilding, slipway.DeployDeploying, slipway.DeployLive} {
			_, _ = e.store.TransitionDeployment(ctx, e.boot.OrgID, dep.ID, s, "")
		}
	}()
	var events []string
	sc := bufio.NewScanner(res.Body)
	deadline := time.AfterFunc(10*time.Second, func() { res.Body.Close() })
	defer deadline.Stop()
	for sc.Scan() {
		line := sc.Text()
		if ev, ok := strings.CutPrefix(line, "event: "); ok {
			events = append(events, ev)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok && strings.Contains(data, "cloned at ccccccc") {
			events = append(events, "log-text")
		}
	}
	got := strings.Join(events, ",")
	if !strings.HasPrefix(got, "status,") || !strings.Contains(got, "log,log-text") || !strings.HasSuffix(got, "status,end") {
		t.Fatalf("events %s: want a status, the log line, the live status and end", got)
	}
}

func TestStaticAssetsAndUnknownPages(t *testing.T) {
	e := newEnv(t, web.Options{})
	b := e.browser()
	for _, p := range []string{"/static/app.css", "/static/app.js"} {
		if a := b.get(p); a.status != http.StatusOK || len(a.body) < 500 {
			t.Errorf("GET %s: status %d, %d bytes", p, a.status, len(a.body))
		}
	}
	a := b.get("/no/such/page")
	if a.status != http.StatusNotFound || !strings.Contains(a.body, "check the address") {
		t.Errorf("unknown page: status %d", a.status)
	}
	if csp := a.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || a.header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("security headers missing: %q", csp)
	}
	if a := b.get("/"); a.status != http.StatusSeeOther || a.location != "/login" {
		t.Errorf("home signed out: %d %q", a.status, a.location)
	}
}
