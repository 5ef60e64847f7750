package service

// GitHub App flows. A GitHub integration is one installation of one GitHub
// App. Slipway creates the App through GitHub's manifest flow:
//
//  1. GitHubManifestStart creates a pending integration and a one-time
//     state, and returns the flow's Slipway link (see consent.go: opening
//     it needs the starting user's sign-in and binds the flow to that
//     browser, which then posts the manifest to GitHub).
//  2. GitHub redirects to GitHubManifestCallbackPath with a code;
//     GitHubManifestCallback claims the state for that user and browser,
//     converts the code into the App's credentials, seals them in the
//     integration and returns the App's install URL (with a second
//     one-time state bound to the same browser).
//  3. After the user installs the App, GitHub redirects to GitHubSetupPath
//     with the installation id; GitHubSetup claims the state the same way
//     and verifies the id with the App's JWT, so a forged id is refused;
//     the installation is saved once the user confirms it (ConfirmFlow).
//
// One integration per installation: installing the same App on a second
// account creates a second integration holding its own sealed copy of the
// App's credentials. The App has a single webhook URL, the one of the
// integration that created it; deliveries for every installation arrive
// there, are verified with the App's webhook secret, and
// routeToInstallation hands them to the integration of the installation
// named in the payload.

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/store"
)

// Paths GitHub sends the browser back to, below Config.PublicURL. They are
// written into the App manifest, so they must stay stable.
const (
	GitHubManifestCallbackPath = "/integrations/github/manifest/callback"
	GitHubSetupPath            = "/integrations/github/setup"
)

// One-time state purposes of the two GitHub redirects.
const (
	statePurposeGitHubManifest = "github-manifest"
	statePurposeGitHubInstall  = "github-install"
)

// gitHubStateTTL is how long a manifest or install link works: GitHub's
// manifest code itself expires after an hour.
const gitHubStateTTL = time.Hour

// Settings keys of a GitHub App integration.
const (
	settingAppID   = "app_id"
	settingAppSlug = "app_slug"
	settingAppURL  = "html_url"
	// settingHookIntegration names the integration whose webhook URL the
	// App delivers to, on integrations created for further installations.
	settingHookIntegration = "hook_integration_id"
)

// GitHubManifestInput starts creating a GitHub App.
type GitHubManifestInput struct {
	Org     string `json:"org"`      // create the App under this GitHub organisation; empty: the signed-in GitHub user
	BaseURL string `json:"base_url"` // GitHub Enterprise Server address; empty for github.com
	Label   string `json:"label"`
}

// GitHubManifestResult is what the browser posts to GitHub: a form to
// PostURL with one field, "manifest", holding Manifest.
type GitHubManifestResult struct {
	Integration slipway.Integration `json:"integration"`
	PostURL     string              `json:"post_url"`
	Manifest    string              `json:"manifest"` // the App manifest JSON document
	State       string              `json:"state"`
	FormURL     string              `json:"form_url"` // the flow's Slipway link: sign in, then the browser posts the manifest
}

// gitHubAppFlow is what the GitHub provider offers for the App flows.
// The use cases see it through this interface only.
type gitHubAppFlow interface {
	AppManifest(publicURL, baseURL, org, name, hookURL, state string) (manifestJSON []byte, postURL string, err error)
	ConvertAppManifest(ctx context.Context, baseURL, code string) (forge.Secret, map[string]string, error)
	AppInstallURL(baseURL, slug, state string) string
	VerifyAppInstallation(ctx context.Context, c *forge.Conn) (id, account, repoSelection string, err error)
	VerifyApp(ctx context.Context, baseURL string, sec forge.Secret) (slug string, err error)
}

// gitHubFlow returns the GitHub provider's App flows.
func (s *Service) gitHubFlow() (gitHubAppFlow, error) {
	f, ok := s.forges[slipway.ProviderGitHub].(gitHubAppFlow)
	if !ok {
		return nil, slipway.Errorf(slipway.ECodeInvalid, "GitHub Apps are not available in this build")
	}
	return f, nil
}

// GitHubManifestStart creates a pending GitHub integration and the App
// manifest whose webhook points at it, with a one-time state (one hour)
// bound to the organisation and the user.
func (s *Service) GitHubManifestStart(ctx context.Context, a Actor, in GitHubManifestInput) (GitHubManifestResult, error) {
	if err := a.can(slipway.ResIntegrations, slipway.ActCreate); err != nil {
		return GitHubManifestResult{}, err
	}
	flow, err := s.gitHubFlow()
	if err != nil {
		return GitHubManifestResult{}, err
	}
	public := strings.TrimRight(s.cfg.PublicURL, "/")
	if pu, err := url.Parse(public); err != nil || pu.Host == "" || (pu.Scheme != "https" && pu.Scheme != "http") {
		return GitHubManifestResult{}, slipway.Errorf(slipway.ECodeInvalid, "Slipway's public URL %q is not an http(s) URL, so GitHub cannot reach it", s.cfg.PublicURL).
			WithFix("start the server with --public-url set to the address GitHub and browsers use to reach Slipway")
	}
	base, err := normalizeBaseURL(slipway.ProviderGitHub, in.BaseURL)
	if err != nil {
		return GitHubManifestResult{}, err
	}
	now := s.now().UTC()
	integ := slipway.Integration{ID: slipway.NewID(slipway.PrefixIntegration), OrgID: a.OrgID, Provider: slipway.ProviderGitHub,
		Label: firstNonEmpty(in.Label, "GitHub"), AuthMethod: slipway.AuthGitHubApp, BaseURL: base, Status: slipway.IntegrationPending,
		StatusReason: "the GitHub App is being created on GitHub",
		StatusFix:    "finish creating the App on GitHub; if the page was closed, start again from Integrations",
		Settings:     map[string]string{"github_org": in.Org}, CreatedAt: now, UpdatedAt: now}
	state, _ := newSecretToken("")
	manifest, postURL, err := flow.AppManifest(public, base, in.Org, gitHubAppName(public), s.hookURL(integ), state)
	if err != nil {
		return GitHubManifestResult{}, err
	}
	sealed, err := s.sealSecret(integ.ID, forge.Secret{})
	if err != nil {
		return GitHubManifestResult{}, err
	}
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.CreateIntegration(ctx, &integ, sealed); err != nil {
			return err
		}
		s.audit(ctx, tx, a, "integration.github_app_start", "integration", integ.ID, map[string]string{"github_org": in.Org})
		return tx.CreateOAuthState(ctx, store.OAuthState{State: state, OrgID: a.OrgID, UserID: a.UserID, IntegrationID: integ.ID,
			Purpose: statePurposeGitHubManifest, ExpiresAt: now.Add(gitHubStateTTL)})
	})
	if err != nil {
		return GitHubManifestResult{}, fmt.Errorf("start GitHub App creation: %w", err)
	}
	return GitHubManifestResult{Integration: integ, PostURL: postURL, Manifest: string(manifest), State: state,
		FormURL: s.FlowBeginURL(state)}, nil
}

// gitHubAppName proposes the App's name: GitHub names are unique across
// the host and at most 34 characters; the user may edit it on GitHub's form.
func gitHubAppName(publicURL string) string {
	name := "Slipway"
	if u, err := url.Parse(publicURL); err == nil && u.Hostname() != "" {
		name += " " + u.Hostname()
	}
	if len(name) > 34 {
		name = name[:34]
	}
	return name
}

// GitHubManifestCallback completes the App creation: the state is
// claimed for the browser b, GitHub's one-time code is converted into the App's
// credentials, which are sealed into the integration, and the App's install
// URL (with a new one-time state) is returned for the browser to follow.
func (s *Service) GitHubManifestCallback(ctx context.Context, b Browser, state, code string) (slipway.Integration, string, error) {
	st, err := s.claimFlow(ctx, b, state, statePurposeGitHubManifest)
	if err != nil {
		return slipway.Integration{}, "", err
	}
	if code == "" {
		return slipway.Integration{}, "", slipway.Errorf(slipway.ECodeInvalid, "GitHub sent no App creation code").
			WithFix("start the GitHub App creation again from Integrations")
	}
	integ, err := s.store.GetIntegration(ctx, st.OrgID, st.IntegrationID)
	if err != nil {
		return slipway.Integration{}, "", err
	}
	if integ.Provider != slipway.ProviderGitHub || integ.AuthMethod != slipway.AuthGitHubApp {
		return slipway.Integration{}, "", slipway.Errorf(slipway.ECodeConflict, "integration %s is not a GitHub App integration", integ.ID)
	}
	flow, err := s.gitHubFlow()
	if err != nil {
		return slipway.Integration{}, "", err
	}
	sec, settings, err := flow.ConvertAppManifest(ctx, gitHubAPIAddress(integ), code)
	if err != nil {
		return slipway.Integration{}, "", fmt.Errorf("create the GitHub App: %w", err)
	}
	slug := settings[settingAppSlug]
	if sec.AppID == "" || slug == "" || sec.PrivateKey == "" || sec.WebhookSecret == "" {
		return slipway.Integration{}, "", slipway.Errorf(slipway.ECodeProviderError, "GitHub's answer for the new App lacks its id, slug, private key or webhook secret").
			WithFix("start the GitHub App creation again; delete the half-created App in GitHub's settings")
	}
	sealed, err := s.sealSecret(integ.ID, sec)
	if err != nil {
		return slipway.Integration{}, "", err
	}
	if integ.Settings == nil {
		integ.Settings = map[string]string{}
	}
	integ.Settings[settingAppID] = sec.AppID
	integ.Settings[settingAppSlug] = slug
	integ.Settings[settingAppURL] = settings[settingAppURL]
	integ.Status = slipway.IntegrationPending
	integ.StatusReason = fmt.Sprintf("the GitHub App %s was created but is not installed yet", slug)
	integ.StatusFix = "install the App on a user or organisation and choose the repositories to grant"
	integ.UpdatedAt = s.now().UTC()
	installState, _ := newSecretToken("")
	a := Actor{UserID: st.UserID, OrgID: st.OrgID}
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.UpdateIntegrationSecret(ctx, st.OrgID, integ.ID, sealed); err != nil {
			return err
		}
		if err := tx.UpdateIntegration(ctx, &integ); err != nil {
			return err
		}
		s.audit(ctx, tx, a, "integration.github_app_created", "integration", integ.ID, map[string]string{"app_id": sec.AppID, "app_slug": slug})
		// The browser that created the App goes on to install it.
		return tx.CreateOAuthState(ctx, store.OAuthState{State: installState, OrgID: st.OrgID, UserID: st.UserID, IntegrationID: integ.ID,
			Purpose: statePurposeGitHubInstall, NonceHash: st.NonceHash, ExpiresAt: s.now().UTC().Add(gitHubStateTTL)})
	})
	if err != nil {
		return slipway.Integration{}, "", fmt.Errorf("save the GitHub App: %w", err)
	}
	return integ, flow.AppInstallURL(integ.BaseURL, slug, installState), nil
}

// GitHubInstallLink returns a fresh link (the flow's Slipway link, which
// continues to the App's install page) for an integration's App, to install
// it on another account (which becomes a new integration) or to finish an
// installation whose link expired.
func (s *Service) GitHubInstallLink(ctx context.Context, a Actor, integrationID string) (string, error) {
	if err := a.can(slipway.ResIntegrations, slipway.ActCreate); err != nil {
		return "", err
	}
	integ, err := s.store.GetIntegration(ctx, a.OrgID, integrationID)
	if err != nil {
		return "", err
	}
	if integ.Provider != slipway.ProviderGitHub || integ.AuthMethod != slipway.AuthGitHubApp || integ.Settings[settingAppSlug] == "" {
		return "", slipway.Errorf(slipway.ECodeConflict, "integration %s is not a GitHub App created by Slipway", integ.Label).
			WithFix("install the App from its page on GitHub, or create one from Integrations → GitHub")
	}
	if integ.Status == slipway.IntegrationDisconnected {
		return "", slipway.Errorf(slipway.ECodeIntegrationNeedsAttention, "integration %s is disconnected and holds no App credentials", integ.Label).
			WithFix("create the GitHub App again from Integrations → GitHub")
	}
	if _, err := s.gitHubFlow(); err != nil {
		return "", err
	}
	state, _ := newSecretToken("")
	if err := s.store.CreateOAuthState(ctx, store.OAuthState{State: state, OrgID: a.OrgID, UserID: a.UserID, IntegrationID: integ.ID,
		Purpose: statePurposeGitHubInstall, ExpiresAt: s.now().UTC().Add(gitHubStateTTL)}); err != nil {
		return "", fmt.Errorf("create GitHub install link: %w", err)
	}
	return s.FlowBeginURL(state), nil
}

// gitHubAPIAddress is where server-to-server calls for integ go: the
// internal URL when one is set.
func gitHubAPIAddress(integ slipway.Integration) string {
	return firstNonEmpty(integ.InternalURL, integ.BaseURL)
}

// GitHubSetup handles GitHub's redirect after the App was installed. The
// state is claimed for the browser b; the installation id comes from the
// browser, so it is verified with the App's JWT: an id GitHub does not know
// for this App is refused. Nothing is saved yet: once the user confirms
// (ConfirmFlow) the integration becomes connected and its repositories
// synced.
// When the App's integration already serves another installation, a new
// integration is created for this one, holding its own sealed copy of the
// App's credentials; a repeated setup of the same installation updates the
// integration that has it.
func (s *Service) GitHubSetup(ctx context.Context, b Browser, state, installationID string) (FlowConfirmation, error) {
	st, err := s.claimFlow(ctx, b, state, statePurposeGitHubInstall)
	if err != nil {
		return FlowConfirmation{}, err
	}
	instID, err := strconv.ParseInt(strings.TrimSpace(installationID), 10, 64)
	if err != nil || instID <= 0 {
		return FlowConfirmation{}, slipway.Errorf(slipway.ECodeInvalid, "GitHub sent no valid installation id (%q)", installationID).
			WithFix("install the App again from the integration's page")
	}
	owner, err := s.store.GetIntegration(ctx, st.OrgID, st.IntegrationID)
	if err != nil {
		return FlowConfirmation{}, err
	}
	sec, err := s.openSecret(ctx, owner.OrgID, owner.ID)
	if err != nil {
		return FlowConfirmation{}, err
	}
	if sec.AppID == "" || sec.PrivateKey == "" {
		return FlowConfirmation{}, slipway.Errorf(slipway.ECodeIntegrationNeedsAttention, "integration %s holds no GitHub App credentials", owner.Label).
			WithFix("create the GitHub App again from Integrations → GitHub")
	}
	flow, err := s.gitHubFlow()
	if err != nil {
		return FlowConfirmation{}, err
	}
	probe := owner
	probe.ExternalID = strconv.FormatInt(instID, 10)
	verifiedID, account, selection, err := flow.VerifyAppInstallation(ctx, s.newConn(probe, sec))
	if err != nil {
		if e, ok := slipway.AsError(err); ok && e.Details["reason"] == "installation_not_found" {
			return FlowConfirmation{}, slipway.Errorf(slipway.ECodeForbidden,
				"GitHub does not know installation %d of the App %s: the link was altered, or the App was uninstalled meanwhile", instID, owner.Settings[settingAppSlug]).
				WithFix("install the App again from the integration's page in Slipway")
		}
		return FlowConfirmation{}, fmt.Errorf("verify GitHub installation %d: %w", instID, err)
	}

	integ, isNew, err := s.integrationForInstallation(ctx, owner, strconv.FormatInt(instID, 10))
	if err != nil {
		return FlowConfirmation{}, err
	}
	integ.ExternalID = verifiedID
	if isNew && account != "" {
		integ.Label = owner.Label + " (" + account + ")"
	}
	integ.AccountName = account
	integ.RepoSelection = selection
	integ.Status, integ.StatusReason, integ.StatusFix = slipway.IntegrationConnected, "", ""
	if cerr := s.checkNew(ctx, s.forges[slipway.ProviderGitHub], s.newConn(integ, sec), &integ); cerr != nil {
		p := problemFor(integ, cerr)
		integ.Status, integ.StatusReason, integ.StatusFix = slipway.IntegrationNeedsAttention, p.Message, p.Fix
	}
	return s.holdForConfirmation(ctx, st, pendingConnection{Kind: pendingGitHubInstall, Integration: integ, Secret: sec, IsNew: isNew, OwnerID: owner.ID})
}

// integrationForInstallation picks the integration an installation of
// owner's App belongs to: the one already holding it, owner itself while
// it has no installation, or a new integration (isNew) for the App's
// further installation.
func (s *Service) integrationForInstallation(ctx context.Context, owner slipway.Integration, installationID string) (slipway.Integration, bool, error) {
	if owner.ExternalID == installationID {
		return owner, false, nil
	}
	if existing, ok, err := s.findAppInstallation(ctx, owner, installationID); err != nil || ok {
		return existing, false, err
	}
	// An integration without an installation, or whose installation was
	// deleted on GitHub, takes the new one: its Services keep working.
	if owner.ExternalID == "" || owner.Status == slipway.IntegrationDisconnected {
		return owner, false, nil
	}
	now := s.now().UTC()
	integ := owner
	integ.ID = slipway.NewID(slipway.PrefixIntegration)
	integ.CreatedAt, integ.UpdatedAt, integ.CheckedAt = now, now, nil
	integ.ExternalID, integ.AccountName, integ.RepoSelection, integ.Scopes = installationID, "", "", nil
	integ.Settings = map[string]string{}
	for k, v := range owner.Settings {
		integ.Settings[k] = v
	}
	integ.Settings[settingHookIntegration] = firstNonEmpty(owner.Settings[settingHookIntegration], owner.ID)
	return integ, true, nil
}

// findAppInstallation finds, in owner's organisation, the integration of
// the same App (same host, same App id) for installationID.
func (s *Service) findAppInstallation(ctx context.Context, owner slipway.Integration, installationID string) (slipway.Integration, bool, error) {
	all, err := s.store.ListIntegrations(ctx, owner.OrgID)
	if err != nil {
		return slipway.Integration{}, false, err
	}
	for _, i := range all {
		if i.Provider == slipway.ProviderGitHub && i.AuthMethod == slipway.AuthGitHubApp && i.BaseURL == owner.BaseURL &&
			i.Settings[settingAppID] != "" && i.Settings[settingAppID] == owner.Settings[settingAppID] && i.ExternalID == installationID {
			return i, true, nil
		}
	}
	return slipway.Integration{}, false, nil
}

// routeToInstallation picks the integration an App-level delivery is
// for. GitHub sends every installation's deliveries to the one webhook URL
// of the App, which names the integration that created it; the event
// names its installation, and the integration of that installation (same
// organisation, same App) is the one whose Services it concerns. Anything
// else stays with the integration the URL named.
func (s *Service) routeToInstallation(ctx context.Context, integ slipway.Integration, ev slipway.Event) (slipway.Integration, error) {
	if integ.Provider != slipway.ProviderGitHub || ev.InstallationID == "" || ev.InstallationID == integ.ExternalID {
		return integ, nil
	}
	other, ok, err := s.findAppInstallation(ctx, integ, ev.InstallationID)
	if err != nil || !ok {
		return integ, err
	}
	return other, nil
}
