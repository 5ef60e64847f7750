package service

import (
	"context"
	"fmt"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/store"
)

// OAuthStartInput begins an OAuth connection: the client credentials of the
// OAuth application the user registered on the provider.
type OAuthStartInput struct {
	Provider     slipway.Provider `json:"provider"`
	Label        string           `json:"label"`
	BaseURL      string           `json:"base_url"`
	InternalURL  string           `json:"internal_url"`
	ClientID     string           `json:"client_id"`
	ClientSecret string           `json:"client_secret"`
}

// OAuthStartResult says where to send the user's browser.
type OAuthStartResult struct {
	Integration  slipway.Integration `json:"integration"`
	AuthorizeURL string              `json:"authorize_url"`
}

// OAuthCallbackPath is where providers redirect after consent; the
// redirect URI registered on the provider is PublicURL + this path.
const OAuthCallbackPath = "/integrations/oauth/callback"

// OAuthRedirectURL is the redirect URI to register on the provider.
func (s *Service) OAuthRedirectURL() string {
	return strings.TrimRight(s.cfg.PublicURL, "/") + OAuthCallbackPath
}

func (s *Service) oauthConfig(integ slipway.Integration, sec forge.Secret) (*oauth2.Config, error) {
	op, ok := s.forges[integ.Provider].(forge.OAuthProvider)
	if !ok {
		return nil, slipway.Errorf(slipway.ECodeInvalid, "%s does not connect with OAuth", integ.Provider)
	}
	ep := op.OAuthEndpoint(integ.BaseURL)
	if integ.InternalURL != "" {
		// The browser goes to the public URL; server-to-server token calls
		// go to the internal one.
		internal := op.OAuthEndpoint(integ.InternalURL)
		ep.TokenURL = internal.TokenURL
	}
	return &oauth2.Config{ClientID: sec.ClientID, ClientSecret: sec.ClientSecret, Endpoint: ep,
		RedirectURL: s.OAuthRedirectURL(), Scopes: op.OAuthScopes()}, nil
}

// OAuthStart creates a pending integration holding the OAuth client
// credentials and returns the provider's consent URL, with a one-time
// state bound to the organisation and user, and a PKCE challenge.
func (s *Service) OAuthStart(ctx context.Context, a Actor, in OAuthStartInput) (OAuthStartResult, error) {
	if err := a.can(slipway.ResIntegrations, slipway.ActCreate); err != nil {
		return OAuthStartResult{}, err
	}
	if !in.Provider.Valid() {
		return OAuthStartResult{}, slipway.Errorf(slipway.ECodeInvalid, "unknown provider %q", in.Provider)
	}
	if in.ClientID == "" || in.ClientSecret == "" {
		return OAuthStartResult{}, slipway.Errorf(slipway.ECodeInvalid, "OAuth needs the client id and client secret of the OAuth application you registered on %s (redirect URI %s)", in.Provider, s.OAuthRedirectURL())
	}
	base, err := normalizeBaseURL(in.Provider, in.BaseURL)
	if err != nil {
		return OAuthStartResult{}, err
	}
	now := s.now().UTC()
	integ := slipway.Integration{ID: slipway.NewID(slipway.PrefixIntegration), OrgID: a.OrgID, Provider: in.Provider, Label: firstNonEmpty(in.Label, string(in.Provider)),
		AuthMethod: slipway.AuthOAuth, BaseURL: base, Status: slipway.IntegrationPending,
		StatusReason: "waiting for the provider's consent screen", StatusFix: "open the authorization URL and approve access",
		Settings: map[string]string{}, CreatedAt: now, UpdatedAt: now}
	if in.InternalURL != "" {
		if integ.InternalURL, err = normalizeBaseURL(in.Provider, in.InternalURL); err != nil {
			return OAuthStartResult{}, err
		}
	}
	sec := forge.Secret{ClientID: in.ClientID, ClientSecret: in.ClientSecret}
	cfg, err := s.oauthConfig(integ, sec)
	if err != nil {
		return OAuthStartResult{}, err
	}
	sealed, err := s.sealSecret(integ.ID, sec)
	if err != nil {
		return OAuthStartResult{}, err
	}
	state, _ := newSecretToken("")
	verifier := oauth2.GenerateVerifier()
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.CreateIntegration(ctx, &integ, sealed); err != nil {
			return err
		}
		return tx.CreateOAuthState(ctx, store.OAuthState{State: state, OrgID: a.OrgID, UserID: a.UserID, IntegrationID: integ.ID,
			Purpose: "connect", Verifier: verifier, ExpiresAt: now.Add(15 * time.Minute)})
	})
	if err != nil {
		return OAuthStartResult{}, err
	}
	return OAuthStartResult{Integration: integ, AuthorizeURL: cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))}, nil
}

// OAuthCallback completes the flow: the state is consumed (it works once
// and only for the user who started it when userID is non-empty), the code
// is exchanged with the PKCE verifier, the connection checked, and the
// integration becomes connected.
func (s *Service) OAuthCallback(ctx context.Context, userID, state, code string) (slipway.Integration, error) {
	st, err := s.store.ConsumeOAuthState(ctx, state, s.now().UTC())
	if err != nil {
		return slipway.Integration{}, slipway.Errorf(slipway.ECodeInvalid, "this authorization link was already used or has expired").
			WithFix("start connecting again from Integrations")
	}
	if userID != "" && st.UserID != userID {
		return slipway.Integration{}, slipway.Errorf(slipway.ECodeForbidden, "this authorization was started by another user")
	}
	integ, err := s.store.GetIntegration(ctx, st.OrgID, st.IntegrationID)
	if err != nil {
		return slipway.Integration{}, err
	}
	sec, err := s.openSecret(ctx, st.OrgID, integ.ID)
	if err != nil {
		return slipway.Integration{}, err
	}
	cfg, err := s.oauthConfig(integ, sec)
	if err != nil {
		return slipway.Integration{}, err
	}
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		return slipway.Integration{}, slipway.Errorf(slipway.ECodeCredentialsInvalid, "the provider refused the authorization code: %v", err).
			WithFix("start connecting again; check the OAuth application's client secret and redirect URI " + s.OAuthRedirectURL())
	}
	sec.Token, sec.RefreshToken, sec.Expiry = tok.AccessToken, tok.RefreshToken, tok.Expiry
	integ.Status, integ.StatusReason, integ.StatusFix = slipway.IntegrationConnected, "", ""
	if err := s.checkNew(ctx, s.forges[integ.Provider], &forge.Conn{Integration: integ, Secret: sec}, &integ); err != nil {
		integ.Status = slipway.IntegrationNeedsAttention
		p := problemFor(integ, err)
		integ.StatusReason, integ.StatusFix = p.Message, p.Fix
	}
	sealed, err := s.sealSecret(integ.ID, sec)
	if err != nil {
		return slipway.Integration{}, err
	}
	integ.UpdatedAt = s.now().UTC()
	a := Actor{UserID: st.UserID, OrgID: st.OrgID}
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.UpdateIntegrationSecret(ctx, st.OrgID, integ.ID, sealed); err != nil {
			return err
		}
		if err := tx.UpdateIntegration(ctx, &integ); err != nil {
			return err
		}
		s.audit(ctx, tx, a, "integration.connect", "integration", integ.ID, map[string]string{"provider": string(integ.Provider), "method": "oauth"})
		return nil
	})
	if err != nil {
		return slipway.Integration{}, fmt.Errorf("save OAuth tokens: %w", err)
	}
	if integ.Status == slipway.IntegrationConnected {
		if _, err := s.SyncRepos(ctx, System(st.OrgID, st.UserID), integ.ID); err != nil {
			s.log.Warn("first repository sync failed", "integration", integ.ID, "err", err)
		}
	}
	return integ, nil
}
