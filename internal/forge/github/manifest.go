package github

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"slipway.dev/slipway"
)

// ManifestParams describe the App Slipway asks GitHub to create.
type ManifestParams struct {
	PublicURL string // Slipway's public address, e.g. https://slipway.example.com
	Name      string // App name shown on GitHub (must be unique there)
	Org       string // create the App under this organisation; empty: the signed-in user
	HookURL   string // the webhook receiver, {PublicURL}/hooks/github/{integrationID}
	State     string // opaque anti-forgery value GitHub echoes to the redirect URL
	// APIBase selects the host: empty for github.com, a GHES address or API
	// base otherwise.
	APIBase string
}

// manifest is GitHub's App manifest document.
type manifest struct {
	Name               string            `json:"name"`
	URL                string            `json:"url"`
	HookAttributes     hookAttributes    `json:"hook_attributes"`
	RedirectURL        string            `json:"redirect_url"`
	CallbackURLs       []string          `json:"callback_urls"`
	SetupURL           string            `json:"setup_url"`
	SetupOnUpdate      bool              `json:"setup_on_update"`
	Public             bool              `json:"public"`
	DefaultPermissions map[string]string `json:"default_permissions"`
	DefaultEvents      []string          `json:"default_events"`
}

type hookAttributes struct {
	URL    string `json:"url"`
	Active bool   `json:"active"`
}

// RequiredPermissions are what Slipway needs from an installation: read the
// code and the repository metadata. StatusesPermission is optional.
var requiredPermissions = map[string]string{"contents": "read", "metadata": "read"}

// Manifest returns the App manifest JSON and the URL the browser form posts
// it to (as the "manifest" field). Installation events need no
// subscription: GitHub always sends them to an App.
func Manifest(p ManifestParams) (manifestJSON []byte, postURL string) {
	public := strings.TrimSuffix(p.PublicURL, "/")
	m := manifest{
		Name:           p.Name,
		URL:            public,
		HookAttributes: hookAttributes{URL: p.HookURL, Active: true},
		RedirectURL:    public + "/integrations/github/manifest/callback",
		CallbackURLs:   []string{public + "/integrations/github/callback"},
		SetupURL:       public + "/integrations/github/setup",
		SetupOnUpdate:  true,
		Public:         false,
		DefaultPermissions: map[string]string{
			"contents":      "read",
			"metadata":      "read",
			"statuses":      "write",
			"pull_requests": "read",
		},
		DefaultEvents: []string{"push", "create", "delete", "repository"},
	}
	raw, _ := json.Marshal(m) // a struct of strings, bools and maps cannot fail to marshal

	web := WebBase(DefaultAPIBase)
	if p.APIBase != "" {
		if base, err := APIBase(p.APIBase); err == nil {
			web = WebBase(base)
		}
	}
	postURL = web + "/settings/apps/new"
	if p.Org != "" {
		postURL = web + "/organizations/" + url.PathEscape(p.Org) + "/settings/apps/new"
	}
	if p.State != "" {
		postURL += "?state=" + url.QueryEscape(p.State)
	}
	return raw, postURL
}

// AppConfig is what GitHub returns when a manifest is converted into an
// App: its identity and its credentials. String hides the credentials.
type AppConfig struct {
	ID            int64  `json:"id"`
	Slug          string `json:"slug"`
	Name          string `json:"name"`
	PEM           string `json:"-"`
	WebhookSecret string `json:"-"`
	ClientID      string `json:"client_id"`
	ClientSecret  string `json:"-"`
	HTMLURL       string `json:"html_url"`
	Owner         string `json:"owner"`
}

// String keeps credentials out of fmt output.
func (c AppConfig) String() string {
	return fmt.Sprintf("github.AppConfig{ID: %d, Slug: %s, Owner: %s}", c.ID, c.Slug, c.Owner)
}

// ConvertManifest exchanges the one-time code GitHub sent to the redirect
// URL for the new App's configuration (POST /app-manifests/{code}/conversions;
// the code itself is the authentication). apiBase as in APIBase.
func ConvertManifest(ctx context.Context, httpClient *http.Client, apiBase, code string) (AppConfig, error) {
	base, err := APIBase(apiBase)
	if err != nil {
		return AppConfig{}, err
	}
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	client, err := newClient(httpClient, base, nil)
	if err != nil {
		return AppConfig{}, fmt.Errorf("github: convert manifest: %w", err)
	}
	cfg, resp, err := client.Apps.CompleteAppManifest(ctx, code)
	if err != nil {
		if statusOf(resp) == http.StatusNotFound || statusOf(resp) == http.StatusUnprocessableEntity {
			return AppConfig{}, fmt.Errorf("github: convert manifest: %w", slipway.Errorf(slipway.ECodeInvalid,
				"GitHub did not accept the App creation code (it is single-use and expires after an hour)").
				WithFix("start the GitHub App creation again from Integrations"))
		}
		return AppConfig{}, apiError("convert the App manifest", resp, err, time.Now())
	}
	out := AppConfig{
		ID:            cfg.GetID(),
		Slug:          cfg.GetSlug(),
		Name:          cfg.GetName(),
		PEM:           cfg.GetPEM(),
		WebhookSecret: cfg.GetWebhookSecret(),
		ClientID:      cfg.GetClientID(),
		ClientSecret:  cfg.GetClientSecret(),
		HTMLURL:       cfg.GetHTMLURL(),
		Owner:         cfg.GetOwner().GetLogin(),
	}
	return out, nil
}
