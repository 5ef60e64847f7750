package httpapi

import (
	"net/http"

	"slipway.dev/slipway/internal/service"
)

// GitHubInstallLink is the answer of the install-link route.
type GitHubInstallLink struct {
	InstallURL string `json:"install_url"`
}

// githubRoutes are the GitHub App flows' API routes. The browser legs
// (GitHub redirecting back to Slipway) are dashboard pages: they need the
// session of the user who started the flow (internal/web).
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
		{method: "POST", pattern: "/api/v1/integrations/{int}/github/install-link", summary: "A fresh Slipway link (sign in as yourself, then GitHub) to install the integration's GitHub App (on another account: a new integration)", tag: "integrations",
			response: GitHubInstallLink{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				link, err := s.GitHubInstallLink(r.Context(), a, r.PathValue("int"))
				return respond(w, 200, GitHubInstallLink{InstallURL: link}, err)
			}},
	}
}
