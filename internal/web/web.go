// Package web is Slipway's dashboard: server-rendered pages under "/" for
// signing in, connecting Git providers, shaping Applications, Environments
// and Services, and watching deployments live. Pages are html/template,
// the CSS and the little JavaScript are embedded, and every use case goes
// through internal/service with the signed-in user's Actor, so the
// dashboard can do nothing the API would refuse.
//
// Security: sessions are random 256-bit ids stored hashed; every POST form
// carries the session's CSRF token (compared in constant time) and is also
// checked by the standard cross-origin protection. URLs name the
// organisation; a user who is not a member of it gets 404, exactly as for
// a missing resource.
package web

import (
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/clientaddr"
	"slipway.dev/slipway/internal/httpapi"
	"slipway.dev/slipway/internal/service"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure the dashboard.
type Options struct {
	// SecureCookies marks cookies Secure and gives them the __Host- prefix.
	// It is on whenever the service's public URL is https, whatever is
	// set here.
	SecureCookies bool
	// Clock replaces time.Now (tests of session expiry). Nil means time.Now.
	Clock func() time.Time
	// ClientAddr finds a request's client address for sign-in limits
	// (`--trusted-proxies`); the zero value uses the TCP peer.
	ClientAddr clientaddr.Resolver
}

// Web serves the dashboard. Construct it with New.
type Web struct {
	svc   *service.Service
	log   *slog.Logger
	opts  Options
	now   func() time.Time
	pages map[string]*template.Template
	// xorigin refuses state-changing requests a browser sends from another
	// origin (Sec-Fetch-Site / Origin): a second wall next to the CSRF
	// token, which also covers the sign-in form that has no session yet.
	xorigin *http.CrossOriginProtection
}

// New builds the dashboard; templates are parsed once here, so a broken
// template fails at start rather than on a user's request.
func New(svc *service.Service, logger *slog.Logger, opts Options) *Web {
	if u, err := url.Parse(svc.Config().PublicURL); err == nil && strings.EqualFold(u.Scheme, "https") {
		opts.SecureCookies = true
	}
	w := &Web{svc: svc, log: logger, opts: opts, now: opts.Clock, xorigin: http.NewCrossOriginProtection()}
	if w.now == nil {
		w.now = time.Now
	}
	w.pages = mustParsePages()
	return w
}

func mustParsePages() map[string]*template.Template {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t := template.New("layout.html").Funcs(funcs)
		pages[base] = template.Must(t.ParseFS(templateFS, "templates/layout.html", n))
	}
	return pages
}

// Register mounts the dashboard on mux. It claims "/" and leaves /api/,
// /hooks/, /healthz, /readyz and /metrics to the handlers registered there
// (their patterns are more specific, so they win).
func (w *Web) Register(mux *http.ServeMux) {
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(time.Hour, http.FileServerFS(static))))

	// Public pages.
	mux.Handle("GET /{$}", w.public(w.home))
	mux.Handle("GET /login", w.public(w.loginPage))
	mux.Handle("POST /login", w.public(w.login))
	// Consent flows: signed in as the user who started them, in the
	// browser that began them.
	w.registerConsent(mux)

	// Signed in, no organisation in the URL.
	mux.Handle("POST /logout", w.signedIn(w.logout))
	mux.Handle("POST /switch-org", w.signedIn(w.switchOrg))
	mux.Handle("GET /invitations", w.signedIn(w.invitationsPage))
	mux.Handle("POST /invitations/{inv}/accept", w.signedIn(w.answerInvitation(true)))
	mux.Handle("POST /invitations/{inv}/decline", w.signedIn(w.answerInvitation(false)))

	// Organisation pages.
	org := func(method, path string, h orgHandler) {
		mux.Handle(method+" /orgs/{org}"+path, w.inOrg(h))
	}
	org("GET", "/{$}", w.orgHome)
	org("GET", "/integrations", w.integrationsPage)
	org("POST", "/integrations/connect", w.connect)
	org("POST", "/integrations/oauth", w.oauthStart)
	org("GET", "/integrations/{id}", w.integrationPage)
	org("POST", "/integrations/{id}/check", w.checkIntegration)
	org("POST", "/integrations/{id}/disconnect", w.disconnect)
	org("POST", "/integrations/{id}/deliveries/{dlv}/replay", w.replayDelivery)

	org("GET", "/apps", w.appsPage)
	org("POST", "/apps", w.createApp)
	org("GET", "/apps/{app}", w.appPage)
	org("POST", "/apps/{app}/status", w.setAppStatus)
	org("POST", "/apps/{app}/envs", w.createEnv)
	org("POST", "/envs/{env}/activate", w.activateEnv)
	org("POST", "/envs/{env}/default", w.defaultEnv)
	org("GET", "/envs/{env}/services/new", w.newServicePage)
	org("POST", "/envs/{env}/services", w.createService)

	org("GET", "/services/{svc}", w.servicePage)
	org("GET", "/services/{svc}/deployments", w.deploymentsFragment)
	org("POST", "/services/{svc}/deploy", w.deploy)
	org("POST", "/services/{svc}/redeploy", w.redeploy)
	org("POST", "/services/{svc}/rollback", w.rollback)
	org("POST", "/services/{svc}/restart", w.releaseAction(service.ActionRestart))
	org("POST", "/services/{svc}/stop", w.releaseAction(service.ActionStop))
	org("POST", "/services/{svc}/resume", w.resumeAutoDeploy)
	org("POST", "/services/{svc}/variables", w.setVariable)
	org("POST", "/services/{svc}/domains", w.setDomains)
	org("POST", "/services/{svc}/routing", w.setRouting)
	org("POST", "/services/{svc}/domains/{domain}/verify", w.verifyDomain)
	org("POST", "/services/{svc}/deploy-hook", w.rotateDeployHook)

	org("GET", "/projects", w.projectsPage)
	org("GET", "/projects/{project}", w.projectPage)
	mux.Handle("GET /projects/{project}", w.signedIn(w.legacyProjectURL))

	org("GET", "/deployments/{dep}", w.deploymentPage)
	org("GET", "/deployments/{dep}/events", w.deploymentEvents)
	org("POST", "/deployments/{dep}/cancel", w.cancelDeployment)

	// Anything else the dashboard does not know is a page-shaped 404.
	mux.Handle("/", w.public(func(rw http.ResponseWriter, r *http.Request) error {
		return slipway.Errorf(slipway.ECodeNotFound, "there is no page at %s", r.URL.Path)
	}))
}

func cacheFor(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(d.Seconds())))
		h.ServeHTTP(rw, r)
	})
}

// securityHeaders are set on every dashboard answer: no framing, no
// sniffing, and a policy that allows only our own scripts and styles.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self' http: https:; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
}

// pageData is what every template gets.
type pageData struct {
	Title   string
	Session *session
	Orgs    []slipway.Organisation
	Org     *slipway.Organisation
	Actor   service.Actor
	Section string
	Error   *slipway.Error
	Notice  string
	Data    any
}

// CSRF returns the session's token for the hidden form field.
func (p pageData) CSRF() string {
	if p.Session == nil {
		return ""
	}
	return p.Session.CSRFToken
}

func (w *Web) render(rw http.ResponseWriter, status int, name string, p pageData) error {
	t, ok := w.pages[name]
	if !ok {
		return fmt.Errorf("render: no template %q", name)
	}
	var buf strings.Builder
	if err := t.Execute(&buf, p); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	rw.Header().Set("Cache-Control", "no-store")
	rw.WriteHeader(status)
	_, err := rw.Write([]byte(buf.String()))
	return err
}

// errorPage renders err as a page that says what happened and what to do.
// Internal errors are logged and shown as a generic message.
func (w *Web) errorPage(rw http.ResponseWriter, r *http.Request, p pageData, err error) {
	e, ok := slipway.AsError(err)
	if !ok {
		w.log.Error("dashboard request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		e = slipway.Errorf(slipway.ECodeInternal, "something went wrong on our side").WithFix("try again; if it keeps failing, the server log has the details")
	}
	status := httpapi.StatusFor(e.Code)
	if e.Code == slipway.ECodeNotFound && e.Fix == "" {
		e = &slipway.Error{Code: e.Code, Message: e.Message, Fix: "check the address, or go back to the list and pick it from there"}
	}
	p.Title = http.StatusText(status)
	p.Error = e
	if rerr := w.render(rw, status, "error", p); rerr != nil {
		w.log.Error("render error page", "err", rerr)
		http.Error(rw, e.Message, status)
	}
}

func redirect(rw http.ResponseWriter, r *http.Request, to string) error {
	http.Redirect(rw, r, to, http.StatusSeeOther)
	return nil
}

func httpStatus(e *slipway.Error) int { return httpapi.StatusFor(e.Code) }
