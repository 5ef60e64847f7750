package service_test

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
)

// member adds a second administrator to the admin's organisation,
// straight in the store, and returns their user id.
func (e *ghEnv) member(t *testing.T, name string) string {
	t.Helper()
	u := slipway.User{Email: name + "@example.com", Name: name}
	if err := e.st.CreateUser(e.ctx, &u, "not-a-real-hash"); err != nil {
		t.Fatal(err)
	}
	m, err := e.st.GetMembership(e.ctx, e.admin.OrgID, e.admin.UserID)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.AddMember(e.ctx, &slipway.Membership{OrgID: e.admin.OrgID, UserID: u.ID, RoleID: m.RoleID}); err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// wrongBrowsers are the callbacks an attacker can cause: no session,
// another member's session (with or without the victim's nonce cookie),
// and the starting user's session in a browser that did not begin the flow.
func wrongBrowsers(right service.Browser, otherUser string) map[string]service.Browser {
	return map[string]service.Browser{
		"no session":                              {},
		"no session, the right nonce":             {Nonce: right.Nonce},
		"another user's session":                  {UserID: otherUser},
		"another user's session, the right nonce": {UserID: otherUser, Nonce: right.Nonce},
		"the right user, no nonce":                {UserID: right.UserID},
		"the right user, another browser's nonce": {UserID: right.UserID, Nonce: strings.Repeat("n", 43)},
	}
}

func wantRefusal(t *testing.T, what string, err error) {
	t.Helper()
	switch slipway.ErrorCodeOf(err) {
	case slipway.ECodeUnauthenticated, slipway.ECodeForbidden:
		if e, ok := slipway.AsError(err); !ok || e.Fix == "" {
			t.Errorf("%s: the refusal says nothing of what to do: %v", what, err)
		}
	default:
		t.Errorf("%s: err = %v, want unauthenticated or forbidden", what, err)
	}
}

func TestGitHubCallbacksNeedTheStartingUserInTheStartingBrowser(t *testing.T) {
	e := newGHEnv(t)
	eve := e.member(t, "eve")
	start, err := e.svc.GitHubManifestStart(e.ctx, e.admin, service.GitHubManifestInput{Org: "acme", BaseURL: e.gh.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	link, _ := url.Parse(start.FormURL)
	if link.Path != service.FlowBeginPath || link.Query().Get("state") != start.State {
		t.Fatalf("the link to open is %q, want Slipway's flow link", start.FormURL)
	}

	// Another member cannot open the admin's link (nor rebind it to their
	// browser); nobody can without signing in.
	if _, err := e.svc.BeginFlow(e.ctx, service.Browser{UserID: eve}, start.State); slipway.ErrorCodeOf(err) != slipway.ECodeForbidden {
		t.Errorf("another member opens the link: err = %v, want forbidden", err)
	}
	if _, err := e.svc.BeginFlow(e.ctx, service.Browser{}, start.State); slipway.ErrorCodeOf(err) != slipway.ECodeUnauthenticated {
		t.Errorf("signed out: err = %v, want unauthenticated", err)
	}
	step, err := e.svc.BeginFlow(e.ctx, e.browser, start.State)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(step.ManifestPostURL, "/organizations/acme/settings/apps/new?state=") || !strings.Contains(step.Manifest, `"hook_attributes"`) {
		t.Fatalf("begin: %+v; want the manifest and GitHub's form address", step)
	}
	e.browser.Nonce = step.Nonce

	// The manifest conversion callback: every wrong browser is refused
	// before GitHub is asked anything, and the state stays usable.
	const conversions = "POST /api/v3/app-manifests/{code}/conversions"
	for what, b := range wrongBrowsers(e.browser, eve) {
		_, _, err := e.svc.GitHubManifestCallback(e.ctx, b, start.State, ghCode)
		wantRefusal(t, "manifest callback, "+what, err)
	}
	if n := e.gh.count(conversions); n != 0 {
		t.Fatalf("wrong browsers caused %d manifest conversions, want 0", n)
	}
	integ, installURL, err := e.svc.GitHubManifestCallback(e.ctx, e.browser, start.State, ghCode)
	if err != nil {
		t.Fatalf("the right browser after the refusals: %v", err)
	}
	if e.gh.count(conversions) != 1 {
		t.Errorf("conversions = %d, want 1", e.gh.count(conversions))
	}
	u, _ := url.Parse(installURL)
	installState := u.Query().Get("state")

	// The setup callback: the same refusals, no installation lookup.
	const lookups = "GET /api/v3/app/installations/{id}"
	for what, b := range wrongBrowsers(e.browser, eve) {
		_, err := e.svc.GitHubSetup(e.ctx, b, installState, strconv.Itoa(ghInstallAcme))
		wantRefusal(t, "setup callback, "+what, err)
	}
	if n := e.gh.count(lookups); n != 0 {
		t.Fatalf("wrong browsers caused %d installation lookups, want 0", n)
	}
	c, err := e.svc.GitHubSetup(e.ctx, e.browser, installState, strconv.Itoa(ghInstallAcme))
	if err != nil {
		t.Fatalf("the right browser after the refusals: %v", err)
	}
	org, _ := e.st.GetOrganisation(e.ctx, e.admin.OrgID)
	if c.Account != "acme" || c.OrgID != e.admin.OrgID || c.OrgName != org.Name || c.Provider != slipway.ProviderGitHub || c.State == "" {
		t.Errorf("confirmation = %+v; want account acme into organisation %s", c, org.Name)
	}
	// Nothing is saved before the confirmation, which is bound the same way.
	if got, _ := e.svc.GetIntegration(e.ctx, e.admin, integ.ID); got.Status != slipway.IntegrationPending || got.ExternalID != "" {
		t.Fatalf("before confirming: %s, installation %q; want still pending", got.Status, got.ExternalID)
	}
	for what, b := range wrongBrowsers(e.browser, eve) {
		_, err := e.svc.ConfirmFlow(e.ctx, b, c.State)
		wantRefusal(t, "confirmation, "+what, err)
	}
	got, err := e.svc.ConfirmFlow(e.ctx, e.browser, c.State)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != integ.ID || got.Status != slipway.IntegrationConnected || got.ExternalID != strconv.Itoa(ghInstallAcme) {
		t.Fatalf("after confirming: %+v", got)
	}
	if _, err := e.svc.ConfirmFlow(e.ctx, e.browser, c.State); slipway.ErrorCodeOf(err) != slipway.ECodeInvalid {
		t.Errorf("a second confirmation: err = %v, want invalid", err)
	}
}

func TestConsentStopsWhenTheStarterLeavesTheOrganisation(t *testing.T) {
	e := newGHEnv(t)
	eve := e.member(t, "eve")
	a, err := e.svc.ActorFor(e.ctx, e.admin.OrgID, eve)
	if err != nil {
		t.Fatal(err)
	}
	start, err := e.svc.GitHubManifestStart(e.ctx, a, service.GitHubManifestInput{BaseURL: e.gh.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	step, err := e.svc.BeginFlow(e.ctx, service.Browser{UserID: eve}, start.State)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RemoveMember(e.ctx, e.admin, eve); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.svc.GitHubManifestCallback(e.ctx, service.Browser{UserID: eve, Nonce: step.Nonce}, start.State, ghCode)
	wantRefusal(t, "a former member's callback", err)
	if n := e.gh.count("POST /api/v3/app-manifests/{code}/conversions"); n != 0 {
		t.Errorf("a former member's callback reached GitHub %d times", n)
	}
}

func TestForgedInstallationEventsCannotReachAnotherOrganisation(t *testing.T) {
	e := newGHEnv(t)
	// Organisation A: the App installed on acme, three repositories.
	victim, installState := e.createApp(t)
	if _, err := e.setup(installState, strconv.Itoa(ghInstallAcme)); err != nil {
		t.Fatal(err)
	}
	_, reposBefore, err := e.svc.ListRepos(e.ctx, e.admin, victim.ID, "", store.Page{Limit: 50})
	if err != nil || reposBefore != 3 {
		t.Fatalf("victim's repositories = %d, %v", reposBefore, err)
	}

	// Organisation B registers its own App by id, key and a webhook secret
	// of its choosing.
	mallory := slipway.User{Email: "mallory@example.com", Name: "mallory"}
	if err := e.st.CreateUser(e.ctx, &mallory, "not-a-real-hash"); err != nil {
		t.Fatal(err)
	}
	orgB, err := e.svc.CreateOrganisation(e.ctx, service.Actor{UserID: mallory.ID}, "mallory")
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.svc.ActorFor(e.ctx, orgB.ID, mallory.ID)
	if err != nil {
		t.Fatal(err)
	}
	const malloryApp, malloryInstall, mallorySecret = 3141592, 70001, "mallory-chose-this-secret"
	keyB := e.gh.addApp(t, malloryApp, malloryInstall, "mallory")
	connect := func(appID int, key string) (slipway.Integration, error) {
		return e.svc.Connect(e.ctx, b, service.ConnectInput{Provider: slipway.ProviderGitHub, BaseURL: e.gh.srv.URL,
			AppID: strconv.Itoa(appID), PrivateKey: key, WebhookSecret: mallorySecret})
	}
	// Someone else's App id with one's own key is refused, nothing saved.
	if _, err := connect(ghAppID, keyB); slipway.ErrorCodeOf(err) != slipway.ECodeCredentialsInvalid {
		t.Errorf("another App's id with mallory's key: err = %v, want credentials_invalid", err)
	}
	if all, _ := e.svc.ListIntegrations(e.ctx, b); len(all) != 0 {
		t.Fatalf("a refused App was saved: %+v", all)
	}
	attacker, err := connect(malloryApp, keyB)
	if err != nil {
		t.Fatal(err)
	}
	if attacker.Status != slipway.IntegrationPending || e.gh.count("GET /api/v3/app") != 2 {
		t.Fatalf("registered App: %s, App JWT calls %d; want pending after one verification each", attacker.Status, e.gh.count("GET /api/v3/app"))
	}
	spare, err := connect(malloryApp, keyB) // a second one, never installed
	if err != nil {
		t.Fatal(err)
	}

	// Mallory's own installation, signed with mallory's secret, connects
	// her integration (GitHub confirms it is her App's).
	d := e.deliverAs(t, orgB.ID, attacker.ID, mallorySecret, "installation", ghInstallationPayload("created", malloryInstall, "mallory"))
	if got, _ := e.svc.GetIntegration(e.ctx, b, attacker.ID); d.Verdict != service.VerdictProcessed || got.Status != slipway.IntegrationConnected ||
		got.ExternalID != strconv.Itoa(malloryInstall) {
		t.Fatalf("mallory's own installation: verdict %s (%s), integration %s %q", d.Verdict, d.Detail, got.Status, got.ExternalID)
	}

	victimInstall := strconv.Itoa(ghInstallAcme)
	forged := []struct {
		what, integ, event string
		body               []byte
	}{
		{"installation.deleted naming the victim's installation", attacker.ID, "installation", ghInstallationPayload("deleted", ghInstallAcme, "acme")},
		{"installation.suspend naming the victim's installation", attacker.ID, "installation", ghInstallationPayload("suspend", ghInstallAcme, "acme")},
		{"installation_repositories.removed naming the victim's installation", attacker.ID, "installation_repositories",
			installationReposPayload("removed", ghInstallAcme, 101, "acme/web")},
		{"installation_repositories.added naming the victim's installation", attacker.ID, "installation_repositories",
			installationReposPayload("added", ghInstallAcme, 666, "mallory/trojan")},
		{"installation.created adopting the victim's installation", spare.ID, "installation", ghInstallationPayload("created", ghInstallAcme, "acme")},
	}
	for _, f := range forged {
		d := e.deliverAs(t, orgB.ID, f.integ, mallorySecret, f.event, f.body)
		if d.Verdict != service.VerdictIgnored {
			t.Errorf("%s: verdict %s (%s), want ignored", f.what, d.Verdict, d.Detail)
		}
		if strings.Contains(d.Detail, victimInstall) || strings.Contains(d.Detail, victim.ID) || strings.Contains(d.Detail, "acme") {
			t.Errorf("%s: the verdict's detail tells about the other installation: %q", f.what, d.Detail)
		}
	}
	got, err := e.svc.GetIntegration(e.ctx, e.admin, victim.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != slipway.IntegrationConnected || got.ExternalID != victimInstall {
		t.Errorf("the victim's integration after the forged events: %s (%s), installation %q", got.Status, got.StatusReason, got.ExternalID)
	}
	repos, total, err := e.svc.ListRepos(e.ctx, e.admin, victim.ID, "", store.Page{Limit: 50})
	if err != nil || total != reposBefore {
		t.Errorf("the victim's picker after the forged events: %d repositories (%v), want %d", total, err, reposBefore)
	}
	for _, r := range repos {
		if r.FullName == "mallory/trojan" {
			t.Error("a forged event added a repository to the victim's picker")
		}
	}
	if s, _ := e.svc.GetIntegration(e.ctx, b, spare.ID); s.Status != slipway.IntegrationPending || s.ExternalID != "" {
		t.Errorf("mallory's spare integration adopted an installation: %s %q", s.Status, s.ExternalID)
	}
	// The victim's own deliveries still act on the victim's integration.
	e.deliver(t, victim.ID, "installation", ghInstallationPayload("suspend", ghInstallAcme, "acme"))
	if got, _ := e.svc.GetIntegration(e.ctx, e.admin, victim.ID); got.Status != slipway.IntegrationNeedsAttention {
		t.Errorf("the victim's own suspend: %s", got.Status)
	}
}

func installationReposPayload(action string, id, repoID int, fullName string) []byte {
	repo := map[string]any{"id": repoID, "full_name": fullName, "private": true}
	pl := map[string]any{"action": action, "repository_selection": "selected",
		"installation": map[string]any{"id": id, "account": map[string]any{"login": "acme"}, "app_id": ghAppID},
		"sender":       map[string]any{"login": "octocat"}}
	pl["repositories_"+action] = []any{repo}
	b, _ := json.Marshal(pl)
	return b
}
