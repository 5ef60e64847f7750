package httpapi

import (
	"crypto/rand"
	"encoding/base64"
	"html/template"
	"net/http"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/service"
)

// GitHubInstallLink is the answer of the install-link route.
type GitHubInstallLink struct {
	InstallURL string `json:"install_url"`
}

// githubRoutes are the GitHub App flows' API routes. The browser legs
// (GitHub redirecting back to Slipway) are GitHubBrowserHandlers.
func (api *API) githubRoutes() []route {
	s := api.svc
	return []route{
		{method: "POST", pattern: "/api/v1/integrations/github/manifest", summary: "Start creating a GitHub App: the dashboard posts the manifest to post_url in an auto-submitting form", tag: "integrations",
			request: service.GitHubManifestInput{}, response: service.GitHubManifestResult{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				var in service.GitHubManifestInput
				if err := decode(r, &in); err != nil {
					return err
				}
				res, err := s.GitHubManifestStart(r.Context(), a, in)
				return respond(w, 201, res, err)
			}},
		{method: "POST", pattern: "/api/v1/integrations/{int}/github/install-link", summary: "A fresh link to install the integration's GitHub App (on another account: a new integration)", tag: "integrations",
			response: GitHubInstallLink{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				link, err := s.GitHubInstallLink(r.Context(), a, r.PathValue("int"))
				return respond(w, 200, GitHubInstallLink{InstallURL: link}, err)
			}},
	}
}

// GitHubBrowserHandlers mounts the pages GitHub sends the browser back to:
// the manifest callback (which continues to the App's install page) and
// the setup URL (which ends on the integration's page). They carry no
// bearer token: the one-time state GitHub echoes is what authorizes them.
func (api *API) GitHubBrowserHandlers(mux *http.ServeMux) {
	api.GitHubBrowserHandlersFor(mux, nil)
}

// GitHubBrowserHandlersFor is GitHubBrowserHandlers with the signed-in
// user: when userOf returns a user id, a state started by another user is
// refused. userOf may be nil.
func (api *API) GitHubBrowserHandlersFor(mux *http.ServeMux, userOf func(r *http.Request) string) {
	user := func(r *http.Request) string {
		if userOf == nil {
			return ""
		}
		return userOf(r)
	}
	mux.HandleFunc("GET "+service.GitHubManifestCallbackPath, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		_, installURL, err := api.svc.GitHubManifestCallback(r.Context(), user(r), q.Get("state"), q.Get("code"))
		if err != nil {
			api.githubErrorPage(w, err)
			return
		}
		http.Redirect(w, r, installURL, http.StatusSeeOther)
	})
	mux.HandleFunc("GET "+service.GitHubSetupPath, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case q.Get("setup_action") == "request":
			// A member asked an owner of the account to install the App;
			// GitHub calls back again once it is installed.
			githubPage(w, http.StatusOK, "Waiting for an owner's approval", "the installation request was sent to the GitHub account's owners",
				"an owner of the account must approve the request; the integration connects when the App is installed")
			return
		case q.Get("setup_action") == "update" && q.Get("state") == "":
			// Changed from GitHub's settings: the installation webhook
			// carries the change, nothing to verify here.
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		integ, err := api.svc.GitHubSetup(r.Context(), user(r), q.Get("state"), q.Get("installation_id"))
		if err != nil {
			api.githubErrorPage(w, err)
			return
		}
		http.Redirect(w, r, githubDonePath(integ), http.StatusSeeOther)
	})
	mux.HandleFunc("GET "+service.GitHubManifestFormPath, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		manifest, postURL, err := api.svc.GitHubManifestForm(r.Context(), q.Get("integration"), q.Get("state"))
		if err != nil {
			api.githubErrorPage(w, err)
			return
		}
		nonce := make([]byte, 16)
		_, _ = rand.Read(nonce)
		n := base64.StdEncoding.EncodeToString(nonce)
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+n+"'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("Cache-Control", "no-store")
		_ = githubManifestTemplate.Execute(w, struct{ PostURL, Manifest, Nonce string }{postURL, manifest, n})
	})
}

// githubManifestTemplate posts the App manifest to GitHub: GitHub's
// manifest flow starts with a browser form POST, which a command line
// cannot make, so the CLI prints this page's URL.
var githubManifestTemplate = template.Must(template.New("manifest").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Create the GitHub App · Slipway</title></head>
<body><main>
<h1>Create Slipway's GitHub App</h1>
<p>GitHub will show the App it is about to create, with the permissions Slipway needs: contents and metadata read, commit statuses write.</p>
<form id="manifest" method="post" action="{{.PostURL}}">
<input type="hidden" name="manifest" value="{{.Manifest}}">
<button type="submit">Continue to GitHub</button>
</form>
<script nonce="{{.Nonce}}">document.getElementById("manifest").submit()</script>
</main></body></html>
`))

// githubDonePath is the dashboard page a finished flow lands on.
func githubDonePath(integ slipway.Integration) string {
	return "/orgs/" + integ.OrgID + "/integrations/" + integ.ID
}

var githubPageTemplate = template.Must(template.New("github").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} · Slipway</title></head>
<body><main>
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{if .Fix}}<p><strong>What to do:</strong> {{.Fix}}</p>{{end}}
<p><a href="/">Back to Slipway</a></p>
</main></body></html>
`))

// githubErrorPage answers a browser with a short HTML page explaining err
// and its fix. Internal errors are logged and shown generically.
func (api *API) githubErrorPage(w http.ResponseWriter, err error) {
	code := slipway.ErrorCodeOf(err)
	if code == slipway.ECodeInternal {
		api.log.Error("GitHub App flow", "err", err)
	}
	var fix string
	if e, ok := slipway.AsError(err); ok {
		fix = e.Fix
	}
	githubPage(w, StatusFor(code), "Connecting GitHub did not finish", slipway.ErrorMessageOf(err), fix)
}

func githubPage(w http.ResponseWriter, status int, title, message, fix string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = githubPageTemplate.Execute(w, struct{ Title, Message, Fix string }{title, message, fix})
}
