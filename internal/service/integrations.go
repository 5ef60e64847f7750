package service

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"golang.org/x/oauth2"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/store"
)

// ConnectInput connects a provider with a token (or, for GitHub, an
// existing App's credentials).
type ConnectInput struct {
	Provider    slipway.Provider `json:"provider"`
	Label       string           `json:"label"`
	BaseURL     string           `json:"base_url"`
	InternalURL string           `json:"internal_url"`
	Token       string           `json:"token"`
	Username    string           `json:"username"`              // Bitbucket API token e-mail, generic Git user
	APIVersion  string           `json:"api_version,omitempty"` // Azure DevOps Server: the REST api-version to use (6.0, 7.0); negotiated when empty
	URL         string           `json:"url"`                   // generic Git repository URL
	SSH         bool             `json:"ssh"`                   // generic Git over SSH with a generated deploy key

	// GitHub App registration.
	AppID          string `json:"app_id"`
	PrivateKey     string `json:"private_key"`
	WebhookSecret  string `json:"webhook_secret"`
	InstallationID string `json:"installation_id"`
}

// defaultBaseURL is each hosted provider's public base URL.
var defaultBaseURL = map[slipway.Provider]string{
	slipway.ProviderGitHub:      "https://github.com",
	slipway.ProviderGitLab:      "https://gitlab.com",
	slipway.ProviderBitbucket:   "https://bitbucket.org",
	slipway.ProviderAzureDevOps: "https://dev.azure.com",
}

func sealAAD(integrationID string) []byte { return []byte("integration:" + integrationID) }

func (s *Service) sealSecret(integrationID string, sec forge.Secret) ([]byte, error) {
	raw, err := json.Marshal(sec)
	if err != nil {
		return nil, err
	}
	return s.keys.Seal(raw, sealAAD(integrationID))
}

func (s *Service) openSecret(ctx context.Context, orgID, integrationID string) (forge.Secret, error) {
	sealed, err := s.store.GetIntegrationSecret(ctx, orgID, integrationID)
	if err != nil {
		return forge.Secret{}, fmt.Errorf("load integration secret: %w", err)
	}
	var sec forge.Secret
	if len(sealed) == 0 {
		return sec, nil
	}
	raw, err := s.keys.Open(sealed, sealAAD(integrationID))
	if err != nil {
		return forge.Secret{}, fmt.Errorf("open integration secret: %w", err)
	}
	if err := json.Unmarshal(raw, &sec); err != nil {
		return forge.Secret{}, fmt.Errorf("decode integration secret: %w", err)
	}
	return sec, nil
}

func normalizeBaseURL(p slipway.Provider, raw string) (string, error) {
	if raw == "" {
		raw = defaultBaseURL[p]
	}
	if raw == "" {
		return "", slipway.Errorf(slipway.ECodeInvalid, "%s needs --base-url (the address of your instance)", p)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", slipway.Errorf(slipway.ECodeInvalid, "base URL %q must be an http(s) URL", raw)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// Connect creates an integration from a token (or App credentials),
// checks it against the provider and refuses it, saving nothing, when the
// provider rejects it or scopes are missing.
func (s *Service) Connect(ctx context.Context, a Actor, in ConnectInput) (slipway.Integration, error) {
	if err := a.can(slipway.ResIntegrations, slipway.ActCreate); err != nil {
		return slipway.Integration{}, err
	}
	if !in.Provider.Valid() {
		return slipway.Integration{}, slipway.Errorf(slipway.ECodeInvalid, "unknown provider %q (one of github, gitlab, bitbucket, azuredevops, gitea, git)", in.Provider)
	}
	p, ok := s.forges[in.Provider]
	if !ok {
		return slipway.Integration{}, slipway.Errorf(slipway.ECodeInvalid, "provider %s is not available in this build", in.Provider)
	}
	now := s.now().UTC()
	integ := slipway.Integration{ID: slipway.NewID(slipway.PrefixIntegration), OrgID: a.OrgID, Provider: in.Provider, Label: in.Label,
		Status: slipway.IntegrationConnected, Settings: map[string]string{}, CreatedAt: now, UpdatedAt: now}
	sec := forge.Secret{Token: in.Token, Username: in.Username}
	switch in.Provider {
	case slipway.ProviderGit:
		if in.URL == "" {
			return slipway.Integration{}, slipway.Errorf(slipway.ECodeInvalid, "generic Git needs --url (the repository's HTTPS or SSH URL)")
		}
		integ.Settings["url"] = in.URL
		switch {
		case in.SSH:
			integ.AuthMethod = slipway.AuthSSHKey
			kg, ok := p.(interface {
				GenerateDeployKey() (private, public string, err error)
			})
			if !ok {
				return slipway.Integration{}, slipway.Errorf(slipway.ECodeInvalid, "SSH deploy keys are not available in this build")
			}
			priv, pub, err := kg.GenerateDeployKey()
			if err != nil {
				return slipway.Integration{}, fmt.Errorf("generate deploy key: %w", err)
			}
			sec.PrivateKey = priv
			integ.Settings["deploy_key"] = pub
		case in.Token != "":
			integ.AuthMethod = slipway.AuthBasicToken
		default:
			integ.AuthMethod = slipway.AuthNone
		}
	case slipway.ProviderGitHub:
		if in.AppID == "" || in.PrivateKey == "" || in.WebhookSecret == "" {
			return slipway.Integration{}, slipway.Errorf(slipway.ECodeInvalid, "GitHub connects as a GitHub App: give --app-id, --private-key and --webhook-secret, or use --create-app")
		}
		integ.AuthMethod = slipway.AuthGitHubApp
		sec = forge.Secret{AppID: in.AppID, PrivateKey: in.PrivateKey, WebhookSecret: in.WebhookSecret}
		integ.Settings["app_id"] = in.AppID
		integ.ExternalID = in.InstallationID
		if in.InstallationID == "" {
			integ.Status = slipway.IntegrationPending
			integ.StatusReason = "the GitHub App is registered but not installed yet"
			integ.StatusFix = "install the App on a user or organisation and choose the repositories to grant"
		}
	default:
		if in.Token == "" {
			return slipway.Integration{}, slipway.Errorf(slipway.ECodeInvalid, "%s needs --token (or --oauth to connect through the provider's consent screen)", in.Provider)
		}
		integ.AuthMethod = slipway.AuthToken
		if in.Username != "" {
			integ.AuthMethod = slipway.AuthBasicToken
		}
	}
	if in.Provider != slipway.ProviderGit {
		base, err := normalizeBaseURL(in.Provider, in.BaseURL)
		if err != nil {
			return slipway.Integration{}, err
		}
		integ.BaseURL = base
		if in.InternalURL != "" {
			if integ.InternalURL, err = normalizeBaseURL(in.Provider, in.InternalURL); err != nil {
				return slipway.Integration{}, err
			}
		}
	}
	// Refuse a URL the network policy forbids before anything dials it,
	// with the policy's reason and fix (the dialer enforces it again).
	for _, u := range []string{integ.Settings["url"], integ.BaseURL, integ.InternalURL} {
		if u != "" {
			if err := s.cfg.Network.CheckURL(u); err != nil {
				return slipway.Integration{}, err
			}
		}
	}
	if integ.Label == "" {
		integ.Label = string(in.Provider)
	}
	if in.Provider == slipway.ProviderGitHub && integ.ExternalID == "" {
		// Not installed yet, so there is no installation to check: the App
		// itself is proven (a JWT signed with its key) before its webhook
		// secret may sign anything this organisation receives.
		if err := s.verifyGitHubApp(ctx, &integ, sec); err != nil {
			return slipway.Integration{}, err
		}
	}
	if in.APIVersion != "" {
		integ.Settings["api_version"] = in.APIVersion
	}
	if hc, ok := p.(forge.HookTargetChecker); ok {
		if err := hc.CheckHookTarget(s.hookURL(integ)); err != nil {
			return slipway.Integration{}, err
		}
	}
	if integ.Status == slipway.IntegrationConnected {
		conn := s.newConn(integ, sec)
		if err := s.checkNew(ctx, p, conn, &integ); err != nil {
			return slipway.Integration{}, err
		}
	}
	sealed, err := s.sealSecret(integ.ID, sec)
	if err != nil {
		return slipway.Integration{}, err
	}
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.CreateIntegration(ctx, &integ, sealed); err != nil {
			return err
		}
		s.audit(ctx, tx, a, "integration.connect", "integration", integ.ID, map[string]string{"provider": string(integ.Provider)})
		return nil
	})
	if err != nil {
		return slipway.Integration{}, err
	}
	if integ.Status == slipway.IntegrationConnected {
		if _, err := s.SyncRepos(ctx, a, integ.ID); err != nil {
			s.log.Warn("first repository sync failed", "integration", integ.ID, "err", err)
		}
	}
	return integ, nil
}

// verifyGitHubApp authenticates as the App of sec on integ's GitHub host
// and records the App's slug.
func (s *Service) verifyGitHubApp(ctx context.Context, integ *slipway.Integration, sec forge.Secret) error {
	flow, err := s.gitHubFlow()
	if err != nil {
		return err
	}
	slug, err := flow.VerifyApp(ctx, gitHubAPIAddress(*integ), sec)
	if err != nil {
		return err
	}
	if slug != "" {
		integ.Settings[settingAppSlug] = slug
	}
	return nil
}

// checkNew runs the provider's check for a connection being created and
// fills account and scopes; any problem refuses the connection.
func (s *Service) checkNew(ctx context.Context, p forge.Provider, conn *forge.Conn, integ *slipway.Integration) error {
	ch, ok := p.(forge.Checker)
	if !ok {
		return nil
	}
	res, err := ch.Check(ctx, conn)
	if err != nil {
		return err
	}
	if len(res.Missing) > 0 {
		return &slipway.Error{Code: slipway.ECodeScopesMissing,
			Message: fmt.Sprintf("the token is missing scopes: %s", strings.Join(res.Missing, ", ")),
			Fix:     "create a token with these scopes and connect again",
			Details: map[string]string{"missing": strings.Join(res.Missing, ",")}}
	}
	integ.AccountName = res.Account
	integ.Scopes = res.Scopes
	now := s.now().UTC()
	integ.CheckedAt = &now
	return nil
}

// Diagnosis is the result of `slipway integration check`.
type Diagnosis struct {
	Integration slipway.Integration `json:"integration"`
	Account     string              `json:"account,omitempty"`
	Scopes      []string            `json:"scopes,omitempty"`
	Problems    []forge.Problem     `json:"problems"`
}

// CheckIntegration runs a full diagnosis and updates the integration's
// status: connected when nothing is wrong, needs attention with the first
// problem's reason and fix otherwise.
func (s *Service) CheckIntegration(ctx context.Context, a Actor, id string) (Diagnosis, error) {
	if err := a.can(slipway.ResIntegrations, slipway.ActRead); err != nil {
		return Diagnosis{}, err
	}
	integ, err := s.store.GetIntegration(ctx, a.OrgID, id)
	if err != nil {
		return Diagnosis{}, err
	}
	d := Diagnosis{Problems: []forge.Problem{}}
	p := s.forges[integ.Provider]
	conn, err := s.conn(ctx, integ)
	if err == nil {
		if ch, ok := p.(forge.Checker); ok {
			var res forge.CheckResult
			res, err = ch.Check(ctx, conn)
			d.Account, d.Scopes = res.Account, res.Scopes
			d.Problems = append(d.Problems, res.Problems...)
			if err == nil && len(res.Missing) > 0 {
				d.Problems = append(d.Problems, forge.Problem{Code: slipway.ECodeScopesMissing,
					Message: "the token is missing scopes: " + strings.Join(res.Missing, ", "),
					Fix:     "create a new token with these scopes and reconnect"})
			}
		}
	}
	if err != nil {
		d.Problems = append(d.Problems, problemFor(integ, err))
	}
	if integ.Status == slipway.IntegrationPending && len(d.Problems) == 0 {
		d.Problems = append(d.Problems, forge.Problem{Code: slipway.ECodeIntegrationNeedsAttention, Message: integ.StatusReason, Fix: integ.StatusFix})
	}
	now := s.now().UTC()
	integ.CheckedAt = &now
	if integ.Status != slipway.IntegrationDisconnected && integ.Status != slipway.IntegrationPending {
		if len(d.Problems) == 0 {
			integ.Status, integ.StatusReason, integ.StatusFix = slipway.IntegrationConnected, "", ""
			if d.Account != "" {
				integ.AccountName = d.Account
			}
			if d.Scopes != nil {
				integ.Scopes = d.Scopes
			}
		} else {
			integ.Status, integ.StatusReason, integ.StatusFix = slipway.IntegrationNeedsAttention, d.Problems[0].Message, d.Problems[0].Fix
		}
	}
	integ.UpdatedAt = now
	if err := s.store.UpdateIntegration(ctx, &integ); err != nil {
		return Diagnosis{}, err
	}
	d.Integration = integ
	return d, nil
}

// problemFor turns an error from a provider call into a Problem with a fix.
func problemFor(integ slipway.Integration, err error) forge.Problem {
	code := slipway.ErrorCodeOf(err)
	p := forge.Problem{Code: code, Message: slipway.ErrorMessageOf(err)}
	if e, ok := slipway.AsError(err); ok && e.Fix != "" {
		p.Fix = e.Fix
		return p
	}
	switch code {
	case slipway.ECodeCredentialsInvalid:
		p.Fix = "the credential was revoked or has expired: create a new one on " + string(integ.Provider) + " and reconnect"
	case slipway.ECodeProviderUnreachable:
		p.Fix = "check that " + integ.BaseURL + " is reachable from the Slipway server (or set an internal URL)"
	case slipway.ECodeScopesMissing:
		p.Fix = "create a token with the missing scopes and reconnect"
	case slipway.ECodeRateLimited:
		p.Fix = "wait for the rate limit to reset; Slipway retries automatically"
	default:
		p.Message = "provider call failed: " + err.Error()
		p.Fix = "run `slipway integration check " + integ.ID + "` again; if it persists, check the provider's status"
	}
	return p
}

// markNeedsAttention records that a provider call failed in a way the user
// must fix (revoked token, suspended installation).
func (s *Service) markNeedsAttention(ctx context.Context, integ slipway.Integration, err error) {
	switch slipway.ErrorCodeOf(err) {
	case slipway.ECodeCredentialsInvalid, slipway.ECodeScopesMissing:
	default:
		return
	}
	p := problemFor(integ, err)
	integ.Status, integ.StatusReason, integ.StatusFix = slipway.IntegrationNeedsAttention, p.Message, p.Fix
	integ.UpdatedAt = s.now().UTC()
	if uerr := s.store.UpdateIntegration(ctx, &integ); uerr != nil {
		s.log.Warn("mark integration needs attention", "integration", integ.ID, "err", uerr)
	}
}

// ListIntegrations lists the organisation's integrations.
func (s *Service) ListIntegrations(ctx context.Context, a Actor) ([]slipway.Integration, error) {
	if err := a.can(slipway.ResIntegrations, slipway.ActRead); err != nil {
		return nil, err
	}
	return s.store.ListIntegrations(ctx, a.OrgID)
}

// GetIntegration returns one integration.
func (s *Service) GetIntegration(ctx context.Context, a Actor, id string) (slipway.Integration, error) {
	if err := a.can(slipway.ResIntegrations, slipway.ActRead); err != nil {
		return slipway.Integration{}, err
	}
	return s.store.GetIntegration(ctx, a.OrgID, id)
}

// Disconnect removes an integration's repository hooks, forgets its
// credentials and marks it disconnected. Services linked to it keep their
// configuration but cannot deploy until relinked.
func (s *Service) Disconnect(ctx context.Context, a Actor, id string) (slipway.Integration, error) {
	if err := a.can(slipway.ResIntegrations, slipway.ActDelete); err != nil {
		return slipway.Integration{}, err
	}
	integ, err := s.store.GetIntegration(ctx, a.OrgID, id)
	if err != nil {
		return slipway.Integration{}, err
	}
	hooks, err := s.store.ListRepoHooks(ctx, a.OrgID, id)
	if err != nil {
		return slipway.Integration{}, err
	}
	for _, h := range hooks {
		s.removeRepoHook(ctx, integ, h)
	}
	integ.Status, integ.StatusReason, integ.StatusFix = slipway.IntegrationDisconnected, "disconnected by "+a.UserID, "connect the provider again to deploy from it"
	integ.UpdatedAt = s.now().UTC()
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.UpdateIntegration(ctx, &integ); err != nil {
			return err
		}
		if err := tx.UpdateIntegrationSecret(ctx, a.OrgID, id, nil); err != nil {
			return err
		}
		s.audit(ctx, tx, a, "integration.disconnect", "integration", id, nil)
		return nil
	})
	s.tokens.forget(id)
	return integ, err
}

// conn builds the forge connection for an integration with its decrypted
// secret and, where tokens are short-lived, a refreshing token source.
func (s *Service) conn(ctx context.Context, integ slipway.Integration) (*forge.Conn, error) {
	if integ.Status == slipway.IntegrationDisconnected {
		return nil, slipway.Errorf(slipway.ECodeIntegrationNeedsAttention, "integration %s is disconnected", integ.Label).
			WithFix("connect the provider again")
	}
	sec, err := s.openSecret(ctx, integ.OrgID, integ.ID)
	if err != nil {
		return nil, err
	}
	c := s.newConn(integ, sec)
	// GitHub App installation tokens are minted and cached by the GitHub
	// provider itself from the App credentials; only OAuth needs a source.
	if integ.AuthMethod == slipway.AuthOAuth && sec.RefreshToken != "" {
		c.Tokens = s.tokens.oauth(integ)
	}
	return c, nil
}

// newConn is the one place a provider connection is made, so every
// provider call of a tenant dials through the installation's policy.
func (s *Service) newConn(integ slipway.Integration, sec forge.Secret) *forge.Conn {
	return &forge.Conn{Integration: integ, Secret: sec, HTTP: s.http, Network: s.cfg.Network}
}

// oauthContext makes golang.org/x/oauth2 send token requests through the
// policy's client.
func (s *Service) oauthContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, s.http)
}

// connFor loads an integration of the org and its connection.
func (s *Service) connFor(ctx context.Context, orgID, integrationID string) (slipway.Integration, *forge.Conn, error) {
	integ, err := s.store.GetIntegration(ctx, orgID, integrationID)
	if err != nil {
		return slipway.Integration{}, nil, err
	}
	c, err := s.conn(ctx, integ)
	return integ, c, err
}

// SyncRepos refreshes the picker's cache of repositories the integration
// can see, from the provider.
func (s *Service) SyncRepos(ctx context.Context, a Actor, id string) (int, error) {
	if err := a.can(slipway.ResIntegrations, slipway.ActRead); err != nil {
		return 0, err
	}
	integ, c, err := s.connFor(ctx, a.OrgID, id)
	if err != nil {
		return 0, err
	}
	l, ok := s.forges[integ.Provider].(forge.RepoLister)
	if !ok {
		return 0, slipway.Errorf(slipway.ECodeInvalid, "%s cannot list repositories", integ.Provider)
	}
	// With conditional requests, a re-sync where nothing changed costs no
	// rate limit (providers do not count a 304) and writes nothing.
	if cl, ok := l.(conditionalLister); ok {
		unchanged, n, err := s.resyncIfChanged(ctx, cl, c, integ)
		if err != nil {
			s.markNeedsAttention(ctx, integ, err)
			return 0, err
		}
		if unchanged {
			return n, nil
		}
	}
	var all []forge.Repo
	var etags []string
	for page := 1; page != 0; {
		res, err := l.ListRepos(ctx, c, forge.ListOptions{Page: page, PerPage: 100})
		if err != nil {
			s.markNeedsAttention(ctx, integ, err)
			return 0, err
		}
		all = append(all, res.Repos...)
		etags = append(etags, res.ETag)
		page = res.NextPage
	}
	if err := s.store.ReplaceIntegrationRepos(ctx, a.OrgID, id, all, strings.Join(etags, "\n")); err != nil {
		return 0, err
	}
	return len(all), nil
}

// conditionalLister is a RepoLister that can ask "changed since this
// ETag?" per page (GitHub).
type conditionalLister interface {
	ListReposIfChanged(ctx context.Context, c *forge.Conn, opt forge.ListOptions, etag string) (forge.RepoPage, bool, error)
}

// resyncIfChanged asks every page with its stored ETag. unchanged is true
// when every page answered "not modified" and the page count is the same:
// the cache is current. Any change means a full listing follows.
func (s *Service) resyncIfChanged(ctx context.Context, cl conditionalLister, c *forge.Conn, integ slipway.Integration) (unchanged bool, n int, err error) {
	stored, err := s.store.IntegrationReposETag(ctx, integ.OrgID, integ.ID)
	if err != nil || stored == "" {
		return false, 0, err
	}
	etags := strings.Split(stored, "\n")
	pages := 0
	for page := 1; page != 0; pages++ {
		if pages >= len(etags) || etags[pages] == "" {
			return false, 0, nil
		}
		res, notModified, err := cl.ListReposIfChanged(ctx, c, forge.ListOptions{Page: page, PerPage: 100}, etags[pages])
		if err != nil {
			return false, 0, err
		}
		if !notModified {
			return false, 0, nil
		}
		page = res.NextPage
	}
	if pages != len(etags) {
		return false, 0, nil
	}
	_, total, err := s.store.ListIntegrationRepos(ctx, integ.OrgID, integ.ID, "", store.Page{Limit: 1})
	return true, total, err
}

// ListRepos is the repository picker: the cached list of repositories the
// integration was granted, searched and paginated, synced from the
// provider when the cache is empty.
func (s *Service) ListRepos(ctx context.Context, a Actor, id, search string, p store.Page) ([]forge.Repo, int, error) {
	if err := a.can(slipway.ResIntegrations, slipway.ActRead); err != nil {
		return nil, 0, err
	}
	repos, total, err := s.store.ListIntegrationRepos(ctx, a.OrgID, id, search, p)
	if err != nil {
		return nil, 0, err
	}
	if total == 0 && search == "" {
		if _, err := s.SyncRepos(ctx, a, id); err != nil {
			return nil, 0, err
		}
		return s.store.ListIntegrationRepos(ctx, a.OrgID, id, search, p)
	}
	return repos, total, nil
}

// visibleRepo asks the provider for a repository by id (or, failing that,
// finds it by full name in the picker cache) and refuses it when the
// integration cannot see it.
func (s *Service) visibleRepo(ctx context.Context, orgID, integrationID, ref string) (forge.Repo, error) {
	integ, c, err := s.connFor(ctx, orgID, integrationID)
	if err != nil {
		return forge.Repo{}, err
	}
	l, ok := s.forges[integ.Provider].(forge.RepoLister)
	if !ok {
		return forge.Repo{}, slipway.Errorf(slipway.ECodeInvalid, "%s cannot list repositories", integ.Provider)
	}
	id := ref
	if strings.Contains(ref, "/") || strings.Contains(ref, "://") {
		repos, _, err := s.store.ListIntegrationRepos(ctx, orgID, integrationID, ref, store.Page{Limit: 200})
		if err != nil {
			return forge.Repo{}, err
		}
		id = ""
		for _, r := range repos {
			if strings.EqualFold(r.FullName, ref) || r.CloneURL == ref {
				id = r.ID
			}
		}
		if id == "" {
			return forge.Repo{}, slipway.Errorf(slipway.ECodeRepoNotVisible, "repository %q is not visible to integration %s", ref, integ.Label).
				WithFix("grant the integration access to the repository on " + string(integ.Provider) + ", then run `slipway integration repos " + integ.ID + "`")
		}
	}
	repo, err := l.GetRepo(ctx, c, id)
	if err != nil {
		s.markNeedsAttention(ctx, integ, err)
		return forge.Repo{}, err
	}
	return repo, nil
}

// resolveRef resolves a branch, tag or SHA to a commit through the provider.
func (s *Service) resolveRef(ctx context.Context, orgID, integrationID string, repo forge.Repo, ref string) (slipway.Commit, error) {
	integ, c, err := s.connFor(ctx, orgID, integrationID)
	if err != nil {
		return slipway.Commit{}, err
	}
	rl, ok := s.forges[integ.Provider].(forge.RefLister)
	if !ok {
		return slipway.Commit{}, slipway.Errorf(slipway.ECodeInvalid, "%s cannot resolve refs", integ.Provider)
	}
	commit, err := rl.ResolveRef(ctx, c, repo, ref)
	if err != nil {
		s.markNeedsAttention(ctx, integ, err)
		return slipway.Commit{}, err
	}
	return commit, nil
}

// ListRefs lists a repository's branches and tags.
func (s *Service) ListRefs(ctx context.Context, a Actor, integrationID, repoRef string) ([]forge.Ref, error) {
	if err := a.can(slipway.ResIntegrations, slipway.ActRead); err != nil {
		return nil, err
	}
	repo, err := s.visibleRepo(ctx, a.OrgID, integrationID, repoRef)
	if err != nil {
		return nil, err
	}
	integ, c, err := s.connFor(ctx, a.OrgID, integrationID)
	if err != nil {
		return nil, err
	}
	rl, ok := s.forges[integ.Provider].(forge.RefLister)
	if !ok {
		return nil, slipway.Errorf(slipway.ECodeInvalid, "%s cannot list refs", integ.Provider)
	}
	return rl.ListRefs(ctx, c, repo)
}

// hookURL is the receiver URL a provider delivers an integration's
// webhooks to.
func (s *Service) hookURL(integ slipway.Integration) string {
	return strings.TrimRight(s.cfg.PublicURL, "/") + "/hooks/" + string(integ.Provider) + "/" + integ.ID
}

// syncRepoHook makes the repository webhook match the Services: installed
// when at least one Service links (integration, repo), removed when none
// does. Failures are recorded on the hook row (its health), never fatal to
// the Service change, because the reconciler still catches pushes.
func (s *Service) syncRepoHook(ctx context.Context, orgID, integrationID, repoID string) {
	if integrationID == "" || repoID == "" {
		return
	}
	integ, err := s.store.GetIntegration(ctx, orgID, integrationID)
	if err != nil {
		return
	}
	installer, ok := s.forges[integ.Provider].(forge.HookInstaller)
	if !ok {
		return // GitHub Apps use the app-level hook; generic Git is polled
	}
	svcs, _, err := s.store.ListServices(ctx, orgID, store.ServiceFilter{IntegrationID: integrationID, RepoID: repoID}, store.Page{Limit: 1})
	if err != nil {
		s.log.Warn("list services for hook sync", "err", err)
		return
	}
	hook, herr := s.store.GetRepoHook(ctx, orgID, integrationID, repoID)
	exists := herr == nil
	switch {
	case len(svcs) > 0 && !exists:
		s.installRepoHook(ctx, integ, installer, repoID)
	case len(svcs) == 0 && exists:
		s.removeRepoHook(ctx, integ, hook)
	}
}

func (s *Service) installRepoHook(ctx context.Context, integ slipway.Integration, installer forge.HookInstaller, repoID string) {
	c, err := s.conn(ctx, integ)
	if err != nil {
		return
	}
	secret, _ := newSecretToken("")
	sealed, err := s.keys.Seal([]byte(secret), []byte("hook:"+integ.ID+":"+repoID))
	if err != nil {
		return
	}
	h := store.RepoHook{ID: slipway.NewID(slipway.PrefixHook), OrgID: integ.OrgID, IntegrationID: integ.ID, RepoID: repoID,
		SecretCiphertext: sealed, Status: "active", CreatedAt: s.now().UTC()}
	l := s.forges[integ.Provider].(forge.RepoLister)
	repo, err := l.GetRepo(ctx, c, repoID)
	if err == nil {
		// The hook id in the URL tells the receiver which secret signs
		// the delivery, before anything in the body is trusted.
		h.ProviderHookID, err = installer.InstallHook(ctx, c, repo, forge.HookConfig{URL: s.hookURL(integ) + "?hook=" + h.ID, Secret: secret})
	}
	if err != nil {
		h.Status, h.LastError = "failing", slipway.ErrorMessageOf(err)
		s.log.Warn("install repository webhook", "integration", integ.ID, "repo", repoID, "err", err)
	}
	if err := s.store.CreateRepoHook(ctx, &h); err != nil {
		s.log.Warn("record repository webhook", "err", err)
	}
}

func (s *Service) removeRepoHook(ctx context.Context, integ slipway.Integration, h store.RepoHook) {
	if installer, ok := s.forges[integ.Provider].(forge.HookInstaller); ok && h.ProviderHookID != "" {
		if c, err := s.conn(ctx, integ); err == nil {
			if repo, err := s.forges[integ.Provider].(forge.RepoLister).GetRepo(ctx, c, h.RepoID); err == nil {
				if err := installer.RemoveHook(ctx, c, repo, h.ProviderHookID); err != nil {
					s.log.Warn("remove repository webhook", "integration", integ.ID, "repo", h.RepoID, "err", err)
				}
			}
		}
	}
	if err := s.store.DeleteRepoHook(ctx, integ.OrgID, h.ID); err != nil {
		s.log.Warn("delete repository webhook record", "err", err)
	}
}

// ListRepoHooks shows each repository webhook and its health.
func (s *Service) ListRepoHooks(ctx context.Context, a Actor, integrationID string) ([]store.RepoHook, error) {
	if err := a.can(slipway.ResIntegrations, slipway.ActRead); err != nil {
		return nil, err
	}
	if _, err := s.store.GetIntegration(ctx, a.OrgID, integrationID); err != nil {
		return nil, err
	}
	hooks, err := s.store.ListRepoHooks(ctx, a.OrgID, integrationID)
	for i := range hooks {
		hooks[i].SecretCiphertext = nil
	}
	return hooks, err
}
