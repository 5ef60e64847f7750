package github

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
)

// The App creation flow as Provider methods, so the use cases reach it
// through a capability interface and never import this package.

// AppManifest returns the manifest of an App delivering to hookURL and the
// URL the browser form posts it to; see Manifest.
func (p *Provider) AppManifest(publicURL, baseURL, org, name, hookURL, state string) (manifestJSON []byte, postURL string, err error) {
	if _, err := APIBase(baseURL); err != nil {
		return nil, "", err
	}
	manifestJSON, postURL = Manifest(ManifestParams{PublicURL: publicURL, Name: name, Org: org, HookURL: hookURL, State: state, APIBase: baseURL})
	return manifestJSON, postURL, nil
}

// ConvertAppManifest exchanges GitHub's one-time code for the new App:
// its credentials as a forge.Secret (AppID, PrivateKey, WebhookSecret,
// ClientID, ClientSecret) and its non-secret settings (app_id, app_slug,
// html_url).
func (p *Provider) ConvertAppManifest(ctx context.Context, baseURL, code string) (forge.Secret, map[string]string, error) {
	cfg, err := ConvertManifest(ctx, p.http, baseURL, code)
	if err != nil {
		return forge.Secret{}, nil, err
	}
	sec := forge.Secret{AppID: strconv.FormatInt(cfg.ID, 10), PrivateKey: cfg.PEM, WebhookSecret: cfg.WebhookSecret,
		ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret}
	if cfg.ID <= 0 {
		sec.AppID = ""
	}
	return sec, map[string]string{"app_id": sec.AppID, "app_slug": cfg.Slug, "html_url": cfg.HTMLURL}, nil
}

// AppInstallURL is the page installing the App slug: {web}/apps/{slug}/installations/new?state=….
func (p *Provider) AppInstallURL(baseURL, slug, state string) string {
	web := WebBase(DefaultAPIBase)
	if base, err := APIBase(baseURL); err == nil {
		web = WebBase(base)
	}
	return web + "/apps/" + url.PathEscape(slug) + "/installations/new?state=" + url.QueryEscape(state)
}

// VerifyAppInstallation looks up c.Integration.ExternalID with the JWT of
// the App in c.Secret. An installation GitHub does not know for this App
// is ECodeCredentialsInvalid with Details["reason"] "installation_not_found".
func (p *Provider) VerifyAppInstallation(ctx context.Context, c *forge.Conn) (id, account, repoSelection string, err error) {
	apiBase, appID, installationID, err := connApp(c)
	if err != nil {
		return "", "", "", err
	}
	app, err := NewApp(appID, []byte(c.Secret.PrivateKey), c.Secret.WebhookSecret, apiBase)
	if err != nil {
		return "", "", "", err
	}
	inst, err := verifyInstallation(ctx, p.httpClient(c), p.now, app, installationID)
	if err != nil {
		return "", "", "", err
	}
	return strconv.FormatInt(inst.ID, 10), inst.Account, inst.RepositorySelection, nil
}

// VerifyApp authenticates as the App in sec (its id and private key) on
// the GitHub host at baseURL with GET /app, so App credentials are proven
// before they are saved. It returns the App's slug.
func (p *Provider) VerifyApp(ctx context.Context, baseURL string, sec forge.Secret) (slug string, err error) {
	appID, err := strconv.ParseInt(strings.TrimSpace(sec.AppID), 10, 64)
	if err != nil {
		appID = 0 // NewApp explains an invalid id
	}
	app, err := NewApp(appID, []byte(sec.PrivateKey), sec.WebhookSecret, baseURL)
	if err != nil {
		return "", err
	}
	client, err := app.client(p.httpClient(nil), p.now)
	if err != nil {
		return "", fmt.Errorf("github: verify App: %w", err)
	}
	got, resp, err := client.Apps.Get(ctx, "")
	if err != nil {
		return "", apiError("authenticate as the App", resp, err, p.now())
	}
	if got.GetID() != appID {
		return "", slipway.Errorf(slipway.ECodeCredentialsInvalid, "GitHub answered for App %d, not App %d", got.GetID(), appID).
			WithFix("check the App id and private key: they must be of the same App")
	}
	return got.GetSlug(), nil
}
