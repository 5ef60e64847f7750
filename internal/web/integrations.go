package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
)

// providerCard is what the Integrations page says about one provider: how
// to create the credential it needs and which scopes to grant.
type providerCard struct {
	Provider    slipway.Provider
	Name        string
	Where       string   // where to create the token
	Scopes      []string // what to grant
	NeedsBase   bool     // self-hosted only: the base URL is required
	BaseHint    string
	Username    string // label of the username field, when the provider needs one
	OAuth       bool   // connects through an OAuth application too
	OAuthWhere  string
	GitHubApp   bool // GitHub connects as an App
	GenericGit  bool
	Connections []slipway.Integration
}

func providerCards() []providerCard {
	return []providerCard{
		{Provider: slipway.ProviderGitHub, Name: "GitHub", GitHubApp: true, BaseHint: "https://github.com (or your GitHub Enterprise Server URL)",
			Where:  "GitHub → Settings → Developer settings → GitHub Apps: use an existing App's id, private key and webhook secret, then install it on a user or organisation with only the repositories you deploy from",
			Scopes: []string{"Contents: read", "Metadata: read", "Commit statuses: read & write", "Webhooks: push"}},
		{Provider: slipway.ProviderGitLab, Name: "GitLab", BaseHint: "https://gitlab.com (or your self-managed URL)", OAuth: true,
			Where:      "GitLab → Preferences → Access tokens (or a project/group access token)",
			Scopes:     []string{"read_api", "read_repository", "api (to create webhooks)"},
			OAuthWhere: "GitLab → Preferences → Applications (or Admin → Applications): confidential, scopes api read_repository"},
		{Provider: slipway.ProviderBitbucket, Name: "Bitbucket", BaseHint: "https://bitbucket.org", OAuth: true, Username: "Atlassian account e-mail",
			Where:      "Atlassian account → Security → API tokens (with your account e-mail), or a repository/workspace access token",
			Scopes:     []string{"read:repository:bitbucket", "read:webhook:bitbucket", "write:webhook:bitbucket", "read:user:bitbucket"},
			OAuthWhere: "Bitbucket → Workspace settings → OAuth consumers: private consumer with Repositories: Read and Webhooks: Read and write"},
		{Provider: slipway.ProviderAzureDevOps, Name: "Azure DevOps", NeedsBase: true, BaseHint: "https://dev.azure.com/your-organisation",
			Where:  "Azure DevOps → User settings → Personal access tokens → New token, for your organisation",
			Scopes: []string{"Code (Read & status)", "Service Hooks (Read, write & manage)"}},
		{Provider: slipway.ProviderGitea, Name: "Gitea / Forgejo", NeedsBase: true, BaseHint: "https://git.example.com", OAuth: true,
			Where:      "Gitea → Settings → Applications → Generate token",
			Scopes:     []string{"read:user", "read:repository", "write:repository (to create webhooks)"},
			OAuthWhere: "Gitea → Settings → Applications → Manage OAuth2 applications: confidential client"},
		{Provider: slipway.ProviderGit, Name: "Generic Git", GenericGit: true, Username: "User (HTTPS, optional)",
			Where:  "Any Git server: give the repository's HTTPS URL (public, or with a user and token) or its SSH URL with a deploy key Slipway generates",
			Scopes: []string{"read access to the one repository"}},
	}
}

type integrationsData struct {
	Cards       []providerCard
	RedirectURI string
	Open        slipway.Provider // the card whose form failed, kept open
}

func (w *Web) integrationsData(r *http.Request, q *req) (integrationsData, error) {
	list, err := w.svc.ListIntegrations(r.Context(), q.a)
	if err != nil {
		return integrationsData{}, err
	}
	cards := providerCards()
	for i := range cards {
		for _, in := range list {
			if in.Provider == cards[i].Provider {
				cards[i].Connections = append(cards[i].Connections, in)
			}
		}
	}
	return integrationsData{Cards: cards, RedirectURI: w.svc.OAuthRedirectURL()}, nil
}

func (w *Web) integrationsPage(rw http.ResponseWriter, r *http.Request, q *req) error {
	d, err := w.integrationsData(r, q)
	if err != nil {
		return err
	}
	return w.render(rw, http.StatusOK, "integrations", q.page("Integrations", "integrations", d))
}

// formFailed re-renders the Integrations page with err next to the
// provider's form, or returns err when it is not the user's to fix.
func (w *Web) integrationFormFailed(rw http.ResponseWriter, r *http.Request, q *req, p slipway.Provider, err error) error {
	e, ok := slipway.AsError(err)
	if !ok || e.Code == slipway.ECodeNotFound || e.Code == slipway.ECodeForbidden {
		return err
	}
	d, derr := w.integrationsData(r, q)
	if derr != nil {
		return derr
	}
	d.Open = p
	page := q.page("Integrations", "integrations", d)
	page.Error = e
	return w.render(rw, httpStatus(e), "integrations", page)
}

func (w *Web) connect(rw http.ResponseWriter, r *http.Request, q *req) error {
	f := r.PostFormValue
	in := service.ConnectInput{Provider: slipway.Provider(f("provider")), Label: strings.TrimSpace(f("label")),
		BaseURL: strings.TrimSpace(f("base_url")), InternalURL: strings.TrimSpace(f("internal_url")), Token: strings.TrimSpace(f("token")),
		Username: strings.TrimSpace(f("username")), URL: strings.TrimSpace(f("url")), SSH: f("ssh") == "on",
		AppID: strings.TrimSpace(f("app_id")), PrivateKey: f("private_key"), WebhookSecret: f("webhook_secret"), InstallationID: strings.TrimSpace(f("installation_id"))}
	integ, err := w.svc.Connect(r.Context(), q.a, in)
	if err != nil {
		return w.integrationFormFailed(rw, r, q, in.Provider, err)
	}
	return redirect(rw, r, orgURL(q.org.ID, "integrations", integ.ID))
}

func (w *Web) oauthStart(rw http.ResponseWriter, r *http.Request, q *req) error {
	f := r.PostFormValue
	in := service.OAuthStartInput{Provider: slipway.Provider(f("provider")), Label: strings.TrimSpace(f("label")),
		BaseURL: strings.TrimSpace(f("base_url")), InternalURL: strings.TrimSpace(f("internal_url")),
		ClientID: strings.TrimSpace(f("client_id")), ClientSecret: strings.TrimSpace(f("client_secret"))}
	res, err := w.svc.OAuthStart(r.Context(), q.a, in)
	if err != nil {
		return w.integrationFormFailed(rw, r, q, in.Provider, err)
	}
	// The flow's link binds it to this browser, then goes on to the
	// provider's consent screen.
	return redirect(rw, r, res.OpenURL)
}

type integrationData struct {
	Integration slipway.Integration
	Diagnosis   *service.Diagnosis
	Search      string
	Repos       []forge.Repo
	ReposError  *slipway.Error
	Pager       pager
	Hooks       []store.RepoHook
	Deliveries  []store.Delivery
}

const reposPerPage = 20

func (w *Web) integrationData(r *http.Request, q *req, id string) (integrationData, error) {
	ctx := r.Context()
	integ, err := w.svc.GetIntegration(ctx, q.a, id)
	if err != nil {
		return integrationData{}, err
	}
	d := integrationData{Integration: integ, Search: strings.TrimSpace(r.URL.Query().Get("q"))}
	if integ.Status == slipway.IntegrationConnected || integ.Status == slipway.IntegrationNeedsAttention {
		d.Pager = pagerFrom(r, reposPerPage)
		repos, total, err := w.svc.ListRepos(ctx, q.a, id, d.Search, store.Page{Limit: reposPerPage, Offset: d.Pager.Offset()})
		if err != nil {
			d.ReposError = userError(err)
		}
		d.Repos, d.Pager.Total = repos, total
	}
	if d.Hooks, err = w.svc.ListRepoHooks(ctx, q.a, id); err != nil {
		return d, err
	}
	if d.Deliveries, _, err = w.svc.ListDeliveries(ctx, q.a, id, store.Page{Limit: 50}); err != nil {
		return d, err
	}
	return d, nil
}

func (w *Web) integrationPage(rw http.ResponseWriter, r *http.Request, q *req) error {
	d, err := w.integrationData(r, q, r.PathValue("id"))
	if err != nil {
		return err
	}
	return w.render(rw, http.StatusOK, "integration", q.page(d.Integration.Label, "integrations", d))
}

func (w *Web) checkIntegration(rw http.ResponseWriter, r *http.Request, q *req) error {
	id := r.PathValue("id")
	diag, err := w.svc.CheckIntegration(r.Context(), q.a, id)
	if err != nil {
		return err
	}
	d, err := w.integrationData(r, q, id)
	if err != nil {
		return err
	}
	d.Diagnosis = &diag
	return w.render(rw, http.StatusOK, "integration", q.page(d.Integration.Label, "integrations", d))
}

func (w *Web) disconnect(rw http.ResponseWriter, r *http.Request, q *req) error {
	id := r.PathValue("id")
	if _, err := w.svc.Disconnect(r.Context(), q.a, id); err != nil {
		return err
	}
	return redirect(rw, r, orgURL(q.org.ID, "integrations", id))
}

func (w *Web) replayDelivery(rw http.ResponseWriter, r *http.Request, q *req) error {
	id := r.PathValue("id")
	if _, err := w.svc.ReplayDelivery(r.Context(), q.a, id, r.PathValue("dlv")); err != nil {
		e := userError(err)
		if e.Code == slipway.ECodeNotFound || e.Code == slipway.ECodeInternal {
			return err
		}
		d, derr := w.integrationData(r, q, id)
		if derr != nil {
			return derr
		}
		p := q.page(d.Integration.Label, "integrations", d)
		p.Error = e
		return w.render(rw, httpStatus(e), "integration", p)
	}
	return redirect(rw, r, orgURL(q.org.ID, "integrations", id)+"#deliveries")
}

// pager is offset pagination for lists.
type pager struct {
	Page, PerPage, Total int
	query                url.Values // the request's other parameters (search, wizard state), kept across pages
}

func pagerFrom(r *http.Request, perPage int) pager {
	p, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if p < 1 {
		p = 1
	}
	return pager{Page: p, PerPage: perPage, query: r.URL.Query()}
}

func (p pager) urlFor(page int) string {
	v := url.Values{}
	for k, vs := range p.query {
		v[k] = vs
	}
	v.Set("page", strconv.Itoa(page))
	return "?" + v.Encode()
}

// PrevURL and NextURL link the neighbouring pages.
func (p pager) PrevURL() string { return p.urlFor(p.Page - 1) }
func (p pager) NextURL() string { return p.urlFor(p.Page + 1) }

func (p pager) Offset() int   { return (p.Page - 1) * p.PerPage }
func (p pager) HasPrev() bool { return p.Page > 1 }
func (p pager) HasNext() bool { return p.Page*p.PerPage < p.Total }

// userError is err as the user sees it: its *slipway.Error, or a generic
// internal one.
func userError(err error) *slipway.Error {
	if e, ok := slipway.AsError(err); ok {
		return e
	}
	return slipway.Errorf(slipway.ECodeInternal, "something went wrong on our side").WithFix("try again; if it keeps failing, the server log has the details")
}
