package web

import (
	"net/http"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/service"
)

// The browser legs of the consent flows (OAuth connect, GitHub App
// creation and installation; see internal/service/consent.go). Every one
// needs a session: without one, a GET goes to the sign-in page and comes
// back, and the flow's state is untouched. The service checks the user
// and this browser's nonce cookie before a state is spent.

// flowCookieTTL outlives every flow state (GitHub's are one hour).
const flowCookieTTL = 3600

func (w *Web) flowCookieName() string {
	if w.opts.SecureCookies {
		return "__Host-slipway_flow"
	}
	return "slipway_flow"
}

// browser is who the request comes from, for the consent flows.
func (w *Web) browser(r *http.Request, q *req) service.Browser {
	b := service.Browser{UserID: q.s.UserID}
	if c, err := r.Cookie(w.flowCookieName()); err == nil {
		b.Nonce = c.Value
	}
	return b
}

func (w *Web) setFlowCookie(rw http.ResponseWriter, nonce string) {
	http.SetCookie(rw, &http.Cookie{Name: w.flowCookieName(), Value: nonce, Path: "/", MaxAge: flowCookieTTL,
		HttpOnly: true, Secure: w.opts.SecureCookies, SameSite: http.SameSiteLaxMode})
}

func (w *Web) registerConsent(mux *http.ServeMux) {
	mux.Handle("GET "+service.FlowBeginPath, w.signedIn(w.beginFlow))
	mux.Handle("POST "+service.FlowConfirmPath, w.signedIn(w.confirmFlow))
	mux.Handle("GET "+service.OAuthCallbackPath, w.signedIn(w.oauthCallback))
	mux.Handle("GET "+service.GitHubManifestCallbackPath, w.signedIn(w.githubManifestCallback))
	mux.Handle("GET "+service.GitHubSetupPath, w.signedIn(w.githubSetup))
}

// beginFlow is the flow's link: it binds the flow to this browser and
// sends it on to the provider.
func (w *Web) beginFlow(rw http.ResponseWriter, r *http.Request, q *req) error {
	step, err := w.svc.BeginFlow(r.Context(), w.browser(r, q), r.URL.Query().Get("state"))
	if err != nil {
		return err
	}
	w.setFlowCookie(rw, step.Nonce)
	if step.ManifestPostURL != "" {
		return w.render(rw, http.StatusOK, "github_manifest", q.page("Create the GitHub App", "integrations",
			struct{ PostURL, Manifest string }{step.ManifestPostURL, step.Manifest}))
	}
	return redirect(rw, r, step.RedirectURL)
}

// confirmData is the confirmation page's data.
type confirmData struct {
	service.FlowConfirmation
	Action string
}

func (w *Web) renderConfirm(rw http.ResponseWriter, q *req, c service.FlowConfirmation) error {
	return w.render(rw, http.StatusOK, "confirm", q.page("Confirm the connection", "integrations", confirmData{FlowConfirmation: c, Action: service.FlowConfirmPath}))
}

// oauthCallback is where the provider sends the browser back after consent.
func (w *Web) oauthCallback(rw http.ResponseWriter, r *http.Request, q *req) error {
	v := r.URL.Query()
	if e := v.Get("error"); e != "" {
		return slipway.Errorf(slipway.ECodeInvalid, "the provider did not grant access: %s %s", e, v.Get("error_description")).
			WithFix("start connecting again from Integrations and approve the access on the consent screen")
	}
	c, err := w.svc.OAuthCallback(r.Context(), w.browser(r, q), v.Get("state"), v.Get("code"))
	if err != nil {
		return err
	}
	return w.renderConfirm(rw, q, c)
}

// githubManifestCallback is where GitHub sends the browser once the App
// exists; the browser goes on to install it.
func (w *Web) githubManifestCallback(rw http.ResponseWriter, r *http.Request, q *req) error {
	v := r.URL.Query()
	_, installURL, err := w.svc.GitHubManifestCallback(r.Context(), w.browser(r, q), v.Get("state"), v.Get("code"))
	if err != nil {
		return err
	}
	return redirect(rw, r, installURL)
}

// githubSetup is the App's setup URL, where GitHub sends the browser after
// an installation.
func (w *Web) githubSetup(rw http.ResponseWriter, r *http.Request, q *req) error {
	v := r.URL.Query()
	switch {
	case v.Get("setup_action") == "request":
		// A member asked an owner of the account to install the App;
		// GitHub calls back again once it is installed.
		p := q.page("Waiting for an owner's approval", "integrations", nil)
		p.Notice = "The installation request was sent to the GitHub account's owners: an owner must approve it; the integration connects when the App is installed."
		return w.render(rw, http.StatusOK, "notice", p)
	case v.Get("setup_action") == "update" && v.Get("state") == "":
		// Changed from GitHub's settings: the installation webhook
		// carries the change, nothing to verify here.
		return redirect(rw, r, "/")
	}
	c, err := w.svc.GitHubSetup(r.Context(), w.browser(r, q), v.Get("state"), v.Get("installation_id"))
	if err != nil {
		return err
	}
	return w.renderConfirm(rw, q, c)
}

// confirmFlow saves (or drops) what the confirmation page showed.
func (w *Web) confirmFlow(rw http.ResponseWriter, r *http.Request, q *req) error {
	b, state := w.browser(r, q), r.PostFormValue("state")
	if r.PostFormValue("answer") == "cancel" {
		integ, err := w.svc.CancelFlow(r.Context(), b, state)
		if err != nil {
			return err
		}
		return redirect(rw, r, orgURL(integ.OrgID, "integrations"))
	}
	integ, err := w.svc.ConfirmFlow(r.Context(), b, state)
	if err != nil {
		return err
	}
	return redirect(rw, r, orgURL(integ.OrgID, "integrations", integ.ID))
}
