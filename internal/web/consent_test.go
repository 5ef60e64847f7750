package web_test

import (
	"context"
	"html"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/github"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/web"
)

// newGitHubEnv is a dashboard with the GitHub provider. The App's host is
// a loopback port nothing listens on: a flow that wrongly got as far as
// calling GitHub fails there, and nothing leaves the machine.
func newGitHubEnv(t *testing.T, publicURL string) *env {
	t.Helper()
	gh := github.New(github.Options{Logger: slog.New(slog.DiscardHandler)})
	return newEnvAt(t, publicURL, map[slipway.Provider]forge.Provider{slipway.ProviderGitHub: gh}, web.Options{})
}

const unreachableGitHub = "http://127.0.0.1:1"

// startApp starts creating a GitHub App as the administrator and returns
// the flow's link (a path of the dashboard) and its state.
func (e *env) startApp(t *testing.T) (link, state string) {
	t.Helper()
	res, err := e.svc.GitHubManifestStart(context.Background(), e.admin(), service.GitHubManifestInput{Org: "acme", BaseURL: unreachableGitHub})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(res.FormURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.RequestURI(), res.State
}

// memberBrowser adds another administrator and signs them in.
func (e *env) memberBrowser(t *testing.T, email string) *browser {
	t.Helper()
	if _, err := e.svc.AddMember(context.Background(), e.admin(), service.CreateUserInput{Email: email, Password: "member-password-1", Role: slipway.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.signIn(email, "member-password-1")
	return b
}

func TestFlowLinkNeedsTheStarterAndBindsTheBrowser(t *testing.T) {
	e := newGitHubEnv(t, "http://slipway.test")
	link, state := e.startApp(t)
	if !strings.HasPrefix(link, service.FlowBeginPath+"?state=") {
		t.Fatalf("the flow's link is %q", link)
	}
	// Signed out: to the sign-in page and back, nothing bound.
	if a := e.browser().get(link); a.status != http.StatusSeeOther || a.location != "/login?next="+url.QueryEscape(link) {
		t.Fatalf("signed out: %d → %q", a.status, a.location)
	}
	// Another member of the organisation: refused.
	eve := e.memberBrowser(t, "eve@example.com")
	if a := eve.get(link); a.status != http.StatusForbidden || !strings.Contains(a.body, "started by another") {
		t.Fatalf("another member opens the link: %d", a.status)
	}
	if a := eve.get(link); strings.Contains(strings.Join(a.header.Values("Set-Cookie"), ";"), "slipway_flow") {
		t.Error("a refused browser got a flow cookie")
	}
	// The starter: the page that posts the manifest to GitHub, and the
	// nonce cookie.
	admin := e.adminBrowser()
	a := admin.get(link)
	if a.status != http.StatusOK || !strings.Contains(a.body, `action="`+html.EscapeString(unreachableGitHub+"/organizations/acme/settings/apps/new?state=")) ||
		!strings.Contains(a.body, `name="manifest"`) || !strings.Contains(a.body, "data-submit-on-load") {
		t.Fatalf("the starter opens the link: %d\n%s", a.status, a.body)
	}
	sc := strings.Join(a.header.Values("Set-Cookie"), "\n")
	for _, want := range []string{"slipway_flow=", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=3600"} {
		if !strings.Contains(sc, want) {
			t.Errorf("flow cookie %q lacks %s", sc, want)
		}
	}
	if strings.Contains(sc, "Domain=") {
		t.Errorf("flow cookie %q names a domain (a sibling host could then read it)", sc)
	}

	// The manifest callback in a wrong browser: refused, state kept (a
	// conversion would have failed on the unreachable host with another
	// error).
	callback := service.GitHubManifestCallbackPath + "?code=abc&state=" + url.QueryEscape(state)
	if a := eve.get(callback); a.status != http.StatusForbidden {
		t.Errorf("another member's callback: %d %s", a.status, a.body)
	}
	if a := e.adminBrowser().get(callback); a.status != http.StatusForbidden || !strings.Contains(a.body, "this browser did not start") {
		t.Errorf("the starter in another browser: %d", a.status)
	}
	if a := e.browser().get(callback); a.status != http.StatusSeeOther || !strings.HasPrefix(a.location, "/login?next=") {
		t.Errorf("signed out callback: %d → %q", a.status, a.location)
	}
	// The right browser gets as far as GitHub (unreachable here), which
	// proves the state was still there.
	if a := admin.get(callback); a.status == http.StatusForbidden || a.status == http.StatusBadRequest && strings.Contains(a.body, "already used") {
		t.Errorf("the starter's own callback after the refusals: %d %s", a.status, a.body)
	}
}

func TestGitHubBrowserLegsExplainThemselves(t *testing.T) {
	e := newGitHubEnv(t, "http://slipway.test")
	b := e.adminBrowser()
	a := b.get(service.GitHubManifestCallbackPath + "?code=abc&state=forged")
	if a.status != http.StatusBadRequest || !strings.Contains(a.body, "already used or has expired") || !strings.Contains(a.body, "What to do:") {
		t.Errorf("forged manifest state: %d\n%s", a.status, a.body)
	}
	a = b.get(service.GitHubSetupPath + "?installation_id=1&setup_action=install&state=forged")
	if a.status != http.StatusBadRequest || !strings.Contains(a.body, "already used or has expired") {
		t.Errorf("forged setup state: %d\n%s", a.status, a.body)
	}
	// Markup in the query never reaches the page unescaped.
	a = b.get(service.GitHubSetupPath + "?installation_id=%3Cscript%3E&state=%3Cscript%3E")
	if strings.Contains(a.body, "<script>") {
		t.Errorf("the page echoes markup:\n%s", a.body)
	}
	// A change made from GitHub's settings carries no state: back home.
	if a = b.get(service.GitHubSetupPath + "?installation_id=60001&setup_action=update"); a.status != http.StatusSeeOther || a.location != "/" {
		t.Errorf("update without state: %d %q", a.status, a.location)
	}
	// An installation request waiting for an owner is not an error.
	if a = b.get(service.GitHubSetupPath + "?setup_action=request"); a.status != http.StatusOK || !strings.Contains(a.body, "approve") {
		t.Errorf("installation request: %d\n%s", a.status, a.body)
	}
	// A confirmation posted without the session's CSRF token is refused.
	if a = b.post(service.FlowConfirmPath, url.Values{"state": {"x"}, "answer": {"confirm"}}); a.status != http.StatusForbidden {
		t.Errorf("confirmation without CSRF: %d", a.status)
	}
}

func TestCookiesAreSecureAndHostPrefixedOnHTTPS(t *testing.T) {
	e := newGitHubEnv(t, "https://slipway.test")
	link, _ := e.startApp(t)
	b := e.browser()
	signIn := b.post("/login", url.Values{"email": {e.boot.Email}, "password": {e.boot.Password}})
	var session *http.Cookie
	for _, c := range (&http.Response{Header: signIn.header}).Cookies() {
		if c.Name == "__Host-slipway_session" {
			session = c
		}
	}
	if session == nil || !session.Secure || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode {
		t.Fatalf("session cookie on https: %q", signIn.header.Values("Set-Cookie"))
	}
	// The jar keeps Secure cookies from http: send the session by hand.
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+link, nil)
	req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
	a := b.do(req)
	var flow *http.Cookie
	for _, c := range (&http.Response{Header: a.header}).Cookies() {
		if c.Name == "__Host-slipway_flow" {
			flow = c
		}
	}
	if a.status != http.StatusOK || flow == nil || !flow.Secure || !flow.HttpOnly || flow.SameSite != http.SameSiteLaxMode || flow.Path != "/" || flow.Domain != "" {
		t.Fatalf("flow cookie on https: %d %q", a.status, a.header.Values("Set-Cookie"))
	}
}
