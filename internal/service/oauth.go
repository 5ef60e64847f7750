package service

import (
	"context"
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

// OAuthStartResult says where to send the user's browser: OpenURL is a
// Slipway link that needs the starting user's sign-in, binds the flow to
// that browser and then redirects to the provider's consent screen.
type OAuthStartResult struct {
	Integration slipway.Integration `json:"integration"`
	OpenURL     string              `json:"open_url"`
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
// credentials and a one-time state (with a PKCE verifier) bound to the
// organisation and user, and returns the flow's Slipway link.
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
	if _, err := s.oauthConfig(integ, sec); err != nil {
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
			Purpose: statePurposeConnect, Verifier: verifier, ExpiresAt: now.Add(15 * time.Minute)})
	})
	if err != nil {
		return OAuthStartResult{}, err
	}
	return OAuthStartResult{Integration: integ, OpenURL: s.FlowBeginURL(state)}, nil
}

// OAuthCallback handles the provider's redirect after consent: the state
// is claimed for the browser b (its user and nonce checked before anything
// is spent or exchanged), the code exchanged with the PKCE verifier and
// the connection checked. Nothing is saved yet: the result waits for the
// user's confirmation (ConfirmFlow).
func (s *Service) OAuthCallback(ctx context.Context, b Browser, state, code string) (FlowConfirmation, error) {
	st, err := s.claimFlow(ctx, b, state, statePurposeConnect)
	if err != nil {
		return FlowConfirmation{}, err
	}
	integ, err := s.store.GetIntegration(ctx, st.OrgID, st.IntegrationID)
	if err != nil {
		return FlowConfirmation{}, err
	}
	sec, err := s.openSecret(ctx, st.OrgID, integ.ID)
	if err != nil {
		return FlowConfirmation{}, err
	}
	cfg, err := s.oauthConfig(integ, sec)
	if err != nil {
		return FlowConfirmation{}, err
	}
	tok, err := cfg.Exchange(s.oauthContext(ctx), code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		return FlowConfirmation{}, slipway.Errorf(slipway.ECodeCredentialsInvalid, "the provider refused the authorization code: %v", err).
			WithFix("start connecting again; check the OAuth application's client secret and redirect URI " + s.OAuthRedirectURL())
	}
	sec.Token, sec.RefreshToken, sec.Expiry = tok.AccessToken, tok.RefreshToken, tok.Expiry
	integ.Status, integ.StatusReason, integ.StatusFix = slipway.IntegrationConnected, "", ""
	if err := s.checkNew(ctx, s.forges[integ.Provider], s.newConn(integ, sec), &integ); err != nil {
		integ.Status = slipway.IntegrationNeedsAttention
		p := problemFor(integ, err)
		integ.StatusReason, integ.StatusFix = p.Message, p.Fix
	}
	return s.holdForConfirmation(ctx, st, pendingConnection{Kind: pendingOAuth, Integration: integ, Secret: sec})
}
