package service

// Consent flows: OAuth connect, GitHub App creation and GitHub App
// installation. Each is one-time state started by a user, and it completes
// only for that user, still allowed to connect integrations in that
// organisation, in the browser that began it:
//
//  1. The flow's link is a Slipway URL (FlowBeginPath). Opening it needs a
//     session of the starting user; BeginFlow then binds the state to the
//     browser's nonce cookie (a new random value unless the browser has
//     one) and only then is the browser sent to the provider.
//  2. The provider redirects back with the state. claimFlow checks the
//     session's user, the membership and the nonce cookie against the
//     state before spending it, so a callback opened by anyone else (no
//     session, another user, another browser) exchanges nothing and leaves
//     the state usable by the right user.
//  3. What the callback obtained (tokens, a verified installation) is held
//     sealed in a confirmation state bound the same way, and saved only
//     when the user confirms a page naming the provider account and the
//     organisation (ConfirmFlow).

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/store"
)

// Browser is who a consent step arrives from.
type Browser struct {
	UserID string // the user of the request's dashboard session; "" without one
	Nonce  string // the flow nonce cookie of the browser; "" without one
}

// Paths of the browser legs of every consent flow, below Config.PublicURL.
const (
	// FlowBeginPath?state=… is the link a flow starts from (the dashboard
	// sends the browser there, the CLI prints it).
	FlowBeginPath = "/integrations/flows/begin"
	// FlowConfirmPath receives the confirmation page's form.
	FlowConfirmPath = "/integrations/flows/confirm"
)

// Purposes of the states of a consent flow.
const (
	statePurposeConnect = "connect"
	statePurposeConfirm = "confirm"
)

// confirmTTL is how long a confirmation page may wait for its answer.
const confirmTTL = 15 * time.Minute

// FlowBeginURL is the link that starts a flow's browser leg.
func (s *Service) FlowBeginURL(state string) string {
	return strings.TrimRight(s.cfg.PublicURL, "/") + FlowBeginPath + "?state=" + url.QueryEscape(state)
}

// FlowStep is where a begun flow sends the browser: RedirectURL (the OAuth
// consent screen, the App's install page), or, to create a GitHub App, a
// form posting Manifest to ManifestPostURL.
type FlowStep struct {
	Nonce           string // the browser's nonce cookie value, to (re)set
	RedirectURL     string
	ManifestPostURL string
	Manifest        string
}

func flowExpired() *slipway.Error {
	return slipway.Errorf(slipway.ECodeInvalid, "this authorization link was already used or has expired").
		WithFix("start connecting again from Integrations")
}

func nonceHash(nonce string) string { return hex.EncodeToString(HashToken(nonce)) }

// BeginFlow binds a started flow to the browser its starting user opened
// its link in, and says where the browser goes next. b.Nonce is the
// browser's current nonce cookie (kept, so flows begun side by side in one
// browser all stay bound to it), or "" for a new one.
func (s *Service) BeginFlow(ctx context.Context, b Browser, state string) (FlowStep, error) {
	now := s.now().UTC()
	st, err := s.store.PeekOAuthState(ctx, state, now)
	if err != nil || st.Purpose == statePurposeConfirm {
		return FlowStep{}, flowExpired()
	}
	if err := s.flowUser(ctx, b.UserID, st); err != nil {
		return FlowStep{}, err
	}
	nonce := b.Nonce
	if len(nonce) < 40 {
		nonce, _ = newSecretToken("")
	}
	if err := s.store.BindOAuthState(ctx, state, b.UserID, nonceHash(nonce), now); err != nil {
		return FlowStep{}, flowExpired()
	}
	step := FlowStep{Nonce: nonce}
	integ, err := s.store.GetIntegration(ctx, st.OrgID, st.IntegrationID)
	if err != nil {
		return FlowStep{}, err
	}
	switch st.Purpose {
	case statePurposeConnect:
		sec, err := s.openSecret(ctx, st.OrgID, integ.ID)
		if err != nil {
			return FlowStep{}, err
		}
		cfg, err := s.oauthConfig(integ, sec)
		if err != nil {
			return FlowStep{}, err
		}
		step.RedirectURL = cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(st.Verifier))
	case statePurposeGitHubManifest:
		flow, err := s.gitHubFlow()
		if err != nil {
			return FlowStep{}, err
		}
		public := strings.TrimRight(s.cfg.PublicURL, "/")
		m, post, err := flow.AppManifest(public, integ.BaseURL, integ.Settings["github_org"], gitHubAppName(public), s.hookURL(integ), state)
		if err != nil {
			return FlowStep{}, err
		}
		step.Manifest, step.ManifestPostURL = string(m), post
	case statePurposeGitHubInstall:
		flow, err := s.gitHubFlow()
		if err != nil {
			return FlowStep{}, err
		}
		step.RedirectURL = flow.AppInstallURL(integ.BaseURL, integ.Settings[settingAppSlug], state)
	default:
		return FlowStep{}, flowExpired()
	}
	return step, nil
}

// flowUser checks that userID may complete st: the user who started it,
// still allowed to connect integrations in its organisation.
func (s *Service) flowUser(ctx context.Context, userID string, st store.OAuthState) error {
	if userID == "" {
		return slipway.Errorf(slipway.ECodeUnauthenticated, "sign in to Slipway to continue connecting").
			WithFix("sign in as the user who started connecting, then open the link again")
	}
	if userID != st.UserID {
		return slipway.Errorf(slipway.ECodeForbidden, "this connection was started by another Slipway user").
			WithFix("sign in as the user who started connecting, or start connecting again yourself")
	}
	a, err := s.actorFor(ctx, st.OrgID, userID)
	if err == nil {
		err = a.can(slipway.ResIntegrations, slipway.ActCreate)
	}
	if err != nil {
		return slipway.Errorf(slipway.ECodeForbidden, "you can no longer connect integrations in the organisation this link is for").
			WithFix("ask an administrator of the organisation for access, then start connecting again")
	}
	return nil
}

// claimFlow spends a state of the purpose for the browser b, after
// checking the user, the membership and the nonce cookie: a refused claim
// leaves the state for the right user and browser.
func (s *Service) claimFlow(ctx context.Context, b Browser, state, purpose string) (store.OAuthState, error) {
	now := s.now().UTC()
	if state == "" {
		return store.OAuthState{}, flowExpired()
	}
	st, err := s.store.PeekOAuthState(ctx, state, now)
	if err != nil {
		if slipway.ErrorCodeOf(err) == slipway.ECodeNotFound {
			return store.OAuthState{}, flowExpired()
		}
		return store.OAuthState{}, err
	}
	if st.Purpose != purpose {
		return store.OAuthState{}, flowExpired()
	}
	if err := s.flowUser(ctx, b.UserID, st); err != nil {
		return store.OAuthState{}, err
	}
	if b.Nonce == "" || st.NonceHash == "" || subtle.ConstantTimeCompare([]byte(nonceHash(b.Nonce)), []byte(st.NonceHash)) != 1 {
		return store.OAuthState{}, slipway.Errorf(slipway.ECodeForbidden, "this browser did not start this connection").
			WithFix("open the link Slipway gave you (on the Integrations page, or printed by `slipway integration connect`) in this browser, then approve again")
	}
	st, err = s.store.ConsumeOAuthState(ctx, store.OAuthStateClaim{State: state, UserID: b.UserID, NonceHash: nonceHash(b.Nonce)}, now)
	if err != nil {
		if slipway.ErrorCodeOf(err) == slipway.ECodeNotFound {
			return store.OAuthState{}, flowExpired()
		}
		return store.OAuthState{}, err
	}
	return st, nil
}

// Kinds of pending connection a confirmation saves.
const (
	pendingOAuth         = "oauth"
	pendingGitHubInstall = "github-install"
)

// pendingConnection is what a callback obtained, sealed in a confirmation
// state until the user confirms it.
type pendingConnection struct {
	Kind        string              `json:"kind"`
	Integration slipway.Integration `json:"integration"`
	Secret      forge.Secret        `json:"secret"`
	IsNew       bool                `json:"is_new"`   // a new integration (a further GitHub installation)
	OwnerID     string              `json:"owner_id"` // the GitHub App's integration
}

// FlowConfirmation is what the confirmation page shows: which provider
// account is about to be connected to which organisation.
type FlowConfirmation struct {
	State        string           `json:"state"` // the confirmation's own one-time state
	Provider     slipway.Provider `json:"provider"`
	BaseURL      string           `json:"base_url"`
	Account      string           `json:"account"`
	Label        string           `json:"label"`
	OrgID        string           `json:"org_id"`
	OrgName      string           `json:"org_name"`
	Status       string           `json:"status"` // what the integration will be: connected or needs attention
	StatusReason string           `json:"status_reason,omitempty"`
}

func pendingAAD(state string) []byte { return []byte("flow:" + state) }

// holdForConfirmation seals p into a new state bound to the same user and
// browser as st, and describes it for the confirmation page.
func (s *Service) holdForConfirmation(ctx context.Context, st store.OAuthState, p pendingConnection) (FlowConfirmation, error) {
	raw, err := json.Marshal(p)
	if err != nil {
		return FlowConfirmation{}, err
	}
	state, _ := newSecretToken("")
	sealed, err := s.keys.Seal(raw, pendingAAD(state))
	if err != nil {
		return FlowConfirmation{}, err
	}
	org, err := s.store.GetOrganisation(ctx, st.OrgID)
	if err != nil {
		return FlowConfirmation{}, err
	}
	// A further GitHub installation's integration does not exist before
	// the confirmation: the state names the App's integration instead.
	if err := s.store.CreateOAuthState(ctx, store.OAuthState{State: state, OrgID: st.OrgID, UserID: st.UserID, IntegrationID: firstNonEmpty(p.OwnerID, p.Integration.ID),
		Purpose: statePurposeConfirm, NonceHash: st.NonceHash, Pending: sealed, ExpiresAt: s.now().UTC().Add(confirmTTL)}); err != nil {
		return FlowConfirmation{}, fmt.Errorf("hold the connection for confirmation: %w", err)
	}
	in := p.Integration
	return FlowConfirmation{State: state, Provider: in.Provider, BaseURL: in.BaseURL, Account: in.AccountName, Label: in.Label,
		OrgID: org.ID, OrgName: org.Name, Status: string(in.Status), StatusReason: in.StatusReason}, nil
}

// ConfirmFlow saves the connection a confirmation page showed, for the
// user and browser it was shown to.
func (s *Service) ConfirmFlow(ctx context.Context, b Browser, state string) (slipway.Integration, error) {
	st, err := s.claimFlow(ctx, b, state, statePurposeConfirm)
	if err != nil {
		return slipway.Integration{}, err
	}
	raw, err := s.keys.Open(st.Pending, pendingAAD(state))
	if err != nil {
		return slipway.Integration{}, fmt.Errorf("open the pending connection: %w", err)
	}
	var p pendingConnection
	if err := json.Unmarshal(raw, &p); err != nil {
		return slipway.Integration{}, fmt.Errorf("decode the pending connection: %w", err)
	}
	integ := p.Integration
	if integ.OrgID != st.OrgID {
		return slipway.Integration{}, flowExpired()
	}
	if !p.IsNew {
		// The integration may have been deleted meanwhile.
		if _, err := s.store.GetIntegration(ctx, st.OrgID, integ.ID); err != nil {
			return slipway.Integration{}, err
		}
	}
	sealed, err := s.sealSecret(integ.ID, p.Secret)
	if err != nil {
		return slipway.Integration{}, err
	}
	integ.UpdatedAt = s.now().UTC()
	a := Actor{UserID: st.UserID, OrgID: st.OrgID}
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		if p.IsNew {
			if err := tx.CreateIntegration(ctx, &integ, sealed); err != nil {
				return err
			}
		} else {
			if err := tx.UpdateIntegrationSecret(ctx, st.OrgID, integ.ID, sealed); err != nil {
				return err
			}
			if err := tx.UpdateIntegration(ctx, &integ); err != nil {
				return err
			}
		}
		switch p.Kind {
		case pendingGitHubInstall:
			s.audit(ctx, tx, a, "integration.github_installed", "integration", integ.ID,
				map[string]string{"installation_id": integ.ExternalID, "account": integ.AccountName, "app_integration": p.OwnerID})
		default:
			s.audit(ctx, tx, a, "integration.connect", "integration", integ.ID, map[string]string{"provider": string(integ.Provider), "method": "oauth"})
		}
		return nil
	})
	if err != nil {
		return slipway.Integration{}, fmt.Errorf("save the connection: %w", err)
	}
	if integ.Status == slipway.IntegrationConnected {
		if _, err := s.SyncRepos(ctx, System(st.OrgID, st.UserID), integ.ID); err != nil {
			s.log.Warn("first repository sync failed", "integration", integ.ID, "err", err)
		}
	}
	return s.store.GetIntegration(ctx, st.OrgID, integ.ID)
}

// CancelFlow drops a confirmation without saving anything; the pending
// integration stays pending, to be connected again or deleted.
func (s *Service) CancelFlow(ctx context.Context, b Browser, state string) (slipway.Integration, error) {
	st, err := s.claimFlow(ctx, b, state, statePurposeConfirm)
	if err != nil {
		return slipway.Integration{}, err
	}
	return s.store.GetIntegration(ctx, st.OrgID, st.IntegrationID)
}

// SweepExpiredFlows deletes the states of abandoned flows, with the sealed
// tokens of confirmations nobody answered.
func (s *Service) SweepExpiredFlows(ctx context.Context) error {
	return s.store.DeleteExpiredOAuthStates(ctx, s.now().UTC())
}
