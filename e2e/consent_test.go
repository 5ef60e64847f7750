package e2e

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/testenv/giteatest"
)

// dashboard is a browser of Slipway's dashboard: a cookie jar, and
// redirects are not followed, so a test sees each answer.
type dashboard struct {
	t    *testing.T
	base string
	http *http.Client
}

func newDashboard(t *testing.T, base string) *dashboard {
	jar, _ := cookiejar.New(nil)
	return &dashboard{t: t, base: base, http: &http.Client{Jar: jar, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status   int
	location string
	header   http.Header
	body     string
}

func (d *dashboard) do(req *http.Request) page {
	d.t.Helper()
	resp, err := d.http.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, location: resp.Header.Get("Location"), header: resp.Header, body: string(b)}
}

// get opens u, a full URL or a path of the dashboard.
func (d *dashboard) get(u string) page {
	d.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = d.base + u
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	return d.do(req)
}

func (d *dashboard) post(path string, form url.Values) page {
	d.t.Helper()
	req, err := http.NewRequest(http.MethodPost, d.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		d.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", d.base)
	return d.do(req)
}

func (d *dashboard) signIn(email, password string) *dashboard {
	d.t.Helper()
	if p := d.post("/login", url.Values{"email": {email}, "password": {password}}); p.status != http.StatusSeeOther {
		d.t.Fatalf("sign in as %s: HTTP %d %.300s", email, p.status, p.body)
	}
	return d
}

// adminDashboard is a browser signed in as p's first-start administrator.
func adminDashboard(t *testing.T, p *proc) *dashboard {
	t.Helper()
	pw, err := os.ReadFile(filepath.Join(p.dataDir, "admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	return newDashboard(t, p.url).signIn("admin@slipway.local", strings.TrimSpace(string(pw)))
}

// cookie returns the jar's cookie name for the dashboard, or nil.
func (d *dashboard) cookie(name string) *http.Cookie {
	u, _ := url.Parse(d.base)
	for _, c := range d.http.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

var (
	csrfField  = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	stateField = regexp.MustCompile(`name="state" value="([^"]+)"`)
)

// confirm answers a confirmation page with "confirm".
func (d *dashboard) confirm(confirmation page) page {
	d.t.Helper()
	csrf, state := csrfField.FindStringSubmatch(confirmation.body), stateField.FindStringSubmatch(confirmation.body)
	if csrf == nil || state == nil {
		d.t.Fatalf("the confirmation page has no form: HTTP %d %.500s", confirmation.status, confirmation.body)
	}
	return d.post(service.FlowConfirmPath, url.Values{"csrf": {csrf[1]}, "state": {state[1]}, "answer": {"confirm"}})
}

// beginFlow opens a flow's Slipway link and returns where it sends the
// browser (the provider).
func (d *dashboard) beginFlow(openURL string) string {
	d.t.Helper()
	p := d.get(openURL)
	if p.status != http.StatusSeeOther || p.location == "" {
		d.t.Fatalf("open the flow's link: HTTP %d %.300s", p.status, p.body)
	}
	return p.location
}

// countingProxy forwards to target and counts requests for one path.
func countingProxy(t *testing.T, target, path string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == path {
			n.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestOAuthConsentNeedsTheStartingUserInTheStartingBrowser drives a real
// Gitea's OAuth consent from `slipway integration connect gitea --oauth`
// (the real CLI against the real server) and opens the provider's redirect
// back to Slipway the ways an attacker can: with no session, with a
// garbage session cookie, with another member's session (with and without
// the starter's nonce cookie), and with the starter's session in a browser
// that did not begin the flow. Every one is refused before the code is
// exchanged — the token endpoint, reached through a counting proxy as the
// integration's internal URL, sees zero requests — and the state is still
// there for the starter, whose browser then sees a confirmation naming the
// Gitea account and the organisation, and connects.
func TestOAuthConsentNeedsTheStartingUserInTheStartingBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	p := startProc(t, filepath.Join(root, "data"), traversableTempDir(t), freeAddr(t))
	a := api{t: t, base: p.url, token: p.token()}
	g := giteatest.Shared(t)
	user := giteatest.UniqueName("consent")
	pass := g.CreateUser(t, user)
	g.CreateRepo(t, user, "consented", true)
	clientID, clientSecret := g.CreateOAuthApp(t, user, pass, giteatest.UniqueName("slipway"), p.url+service.OAuthCallbackPath)
	proxy, tokenRequests := countingProxy(t, g.URL(), "/login/oauth/access_token")

	admin := adminDashboard(t, p)
	a.must("POST", "/api/v1/members", map[string]any{"email": "eve@example.com", "name": "eve", "password": "eve-password-123", "role": "admin"}, nil)
	eve := newDashboard(t, p.url).signIn("eve@example.com", "eve-password-123")

	// The CLI starts the flow and prints Slipway's own link.
	cli := exec.Command(slipwayBinary(t), "integration", "connect", "gitea", "--oauth", "--base-url", g.URL(), "--internal-url", proxy.URL,
		"--client-id", clientID, "--client-secret", clientSecret, "--label", "consent")
	cli.Env = append(os.Environ(), "SLIPWAY_SERVER="+p.url, "SLIPWAY_TOKEN="+p.token(), "SLIPWAY_CONFIG="+filepath.Join(root, "cli.json"))
	out, err := cli.CombinedOutput()
	if err != nil {
		t.Fatalf("slipway integration connect --oauth: %v\n%s", err, out)
	}
	lines := strings.Fields(strings.TrimSpace(string(out)))
	openURL := lines[len(lines)-1]
	if !strings.HasPrefix(openURL, p.url+service.FlowBeginPath+"?state=") || strings.Contains(string(out), g.URL()) {
		t.Fatalf("the CLI printed %q; want Slipway's flow link, not the provider's", out)
	}

	// Opening the link needs a session, and only the starter's.
	if pg := newDashboard(t, p.url).get(openURL); pg.status != http.StatusSeeOther || !strings.HasPrefix(pg.location, "/login?next=") {
		t.Fatalf("the link signed out: HTTP %d → %q; want the sign-in page", pg.status, pg.location)
	}
	if pg := eve.get(openURL); pg.status != http.StatusForbidden {
		t.Fatalf("the link opened by another member: HTTP %d; want 403", pg.status)
	}
	authorize := admin.beginFlow(openURL)
	if !strings.HasPrefix(authorize, g.URL()+"/login/oauth/authorize?") {
		t.Fatalf("the link sends the starter to %q; want Gitea's consent screen", authorize)
	}
	nonce := admin.cookie("slipway_flow")
	if nonce == nil || len(nonce.Value) < 40 {
		t.Fatalf("no flow nonce cookie after opening the link: %+v", nonce)
	}
	if sc := strings.Join(admin.get(openURL).header.Values("Set-Cookie"), "\n"); !strings.Contains(sc, "slipway_flow=") ||
		!strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Lax") || !strings.Contains(sc, "Path=/") {
		t.Errorf("flow cookie %q lacks HttpOnly, SameSite=Lax or Path=/", sc)
	}

	back := g.Consent(t, user, pass, authorize)
	if back.Query().Get("code") == "" || !strings.HasPrefix(back.String(), p.url+service.OAuthCallbackPath+"?") {
		t.Fatalf("Gitea redirected to %s", redactQuery(back.String()))
	}
	callback := back.String()

	garbage := newDashboard(t, p.url)
	u, _ := url.Parse(p.url)
	garbage.http.Jar.SetCookies(u, []*http.Cookie{{Name: "slipway_session", Value: "garbage"}, {Name: "slipway_flow", Value: nonce.Value}})
	eveWithNonce := newDashboard(t, p.url).signIn("eve@example.com", "eve-password-123")
	eveWithNonce.http.Jar.SetCookies(u, []*http.Cookie{{Name: "slipway_flow", Value: nonce.Value}})
	attacks := []struct {
		what   string
		d      *dashboard
		status int
	}{
		{"no session", newDashboard(t, p.url), http.StatusSeeOther},
		{"a garbage session cookie with the starter's nonce", garbage, http.StatusSeeOther},
		{"another member's session", eve, http.StatusForbidden},
		{"another member's session with the starter's nonce", eveWithNonce, http.StatusForbidden},
		{"the starter's session in another browser", adminDashboard(t, p), http.StatusForbidden},
	}
	for _, at := range attacks {
		pg := at.d.get(callback)
		if pg.status != at.status || (at.status == http.StatusSeeOther && !strings.HasPrefix(pg.location, "/login?next=")) {
			t.Errorf("callback with %s: HTTP %d → %q %.200s; want %d", at.what, pg.status, pg.location, pg.body, at.status)
		}
	}
	if n := tokenRequests.Load(); n != 0 {
		t.Fatalf("the refused callbacks made %d token requests to Gitea, want 0", n)
	}

	// The starter's browser: a confirmation first, naming the account and
	// the organisation; nothing saved yet.
	confirmation := admin.get(callback)
	if confirmation.status != http.StatusOK || !strings.Contains(confirmation.body, `id="confirm-account">`+user+`<`) ||
		!strings.Contains(confirmation.body, `id="confirm-org">default<`) {
		t.Fatalf("the starter's callback: HTTP %d %.800s; want a confirmation naming %s and organisation default", confirmation.status, confirmation.body, user)
	}
	if n := tokenRequests.Load(); n != 1 {
		t.Errorf("token requests after the starter's callback = %d, want 1", n)
	}
	integID := ""
	var list struct{ Items []slipway.Integration }
	a.must("GET", "/api/v1/integrations", nil, &list)
	for _, in := range list.Items {
		if in.Label == "consent" {
			integID = in.ID
			if in.Status != slipway.IntegrationPending {
				t.Errorf("before the confirmation the integration is %s, want pending", in.Status)
			}
		}
	}
	if eve.confirm(confirmation).status != http.StatusForbidden {
		t.Error("another member answered the starter's confirmation")
	}
	done := admin.confirm(confirmation)
	if done.status != http.StatusSeeOther || done.location != "/orgs/"+orgOf(t, a)+"/integrations/"+integID {
		t.Fatalf("confirm: HTTP %d → %q %.300s", done.status, done.location, done.body)
	}
	var integ slipway.Integration
	a.must("GET", "/api/v1/integrations/"+integID, nil, &integ)
	if integ.Status != slipway.IntegrationConnected || integ.AccountName != user {
		t.Fatalf("after confirming: %s as %q; want connected as %s", integ.Status, integ.AccountName, user)
	}
	if pg := admin.get(callback); pg.status != http.StatusBadRequest || !strings.Contains(pg.body, "already used or has expired") {
		t.Errorf("the callback opened again: HTTP %d; want 400 already used", pg.status)
	}
}

// orgOf is the organisation of the API token.
func orgOf(t *testing.T, a api) string {
	t.Helper()
	var me struct {
		OrgID string `json:"org_id"`
	}
	a.must("GET", "/api/v1/me", nil, &me)
	if me.OrgID == "" {
		t.Fatal("/api/v1/me names no organisation")
	}
	return me.OrgID
}
