package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
)

// OAuth token refresh across replicas. Providers that rotate refresh
// tokens (Gitea, GitLab) accept each one once: a second replica spending
// the same refresh token is refused, and the integration would turn
// "needs attention" although nothing is wrong. So a refresh is claimed in
// the database first (a compare-and-set on the integration row, with an
// expiry so a crashed holder does not block forever); exactly one replica
// calls the provider and stores the result under its claim, and the others
// wait for that result and reuse it. Within one process, singleflight
// collapses concurrent callers into one claimant.

// tokenSources hands out refreshing token sources.
type tokenSources struct {
	s     *Service
	group singleflight.Group
}

func newTokenSources(s *Service) *tokenSources { return &tokenSources{s: s} }

func (t *tokenSources) forget(integrationID string) { t.group.Forget(integrationID) }

type oauthTokenSource struct {
	t     *tokenSources
	integ slipway.Integration
}

func (t *tokenSources) oauth(integ slipway.Integration) forge.TokenSource {
	return &oauthTokenSource{t: t, integ: integ}
}

const (
	// refreshMargin is how long before expiry a token is refreshed, so a
	// token handed out is still valid for the call (or clone) that uses it.
	refreshMargin = 2 * time.Minute
	// refreshClaimFor bounds how long one replica holds the right to
	// refresh; a holder that dies is taken over after it.
	refreshClaimFor = 30 * time.Second
	// refreshPoll is how often a waiting replica looks for the result.
	refreshPoll = 100 * time.Millisecond
)

func (s *Service) tokenFresh(sec forge.Secret) bool {
	return sec.Expiry.IsZero() || s.now().Add(refreshMargin).Before(sec.Expiry)
}

func (o *oauthTokenSource) Token(ctx context.Context) (string, error) {
	s := o.t.s
	sec, err := s.openSecret(ctx, o.integ.OrgID, o.integ.ID)
	if err != nil {
		return "", err
	}
	if s.tokenFresh(sec) {
		return sec.Token, nil
	}
	v, err, _ := o.t.group.Do(o.integ.ID, func() (any, error) { return s.refreshShared(ctx, o.integ) })
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// refreshShared returns a fresh access token: the one another replica
// stored meanwhile, or one this replica refreshes under its claim.
func (s *Service) refreshShared(ctx context.Context, integ slipway.Integration) (string, error) {
	claim := slipway.NewID("refresh")
	waited := false
	give := time.NewTimer(refreshClaimFor + 5*time.Second)
	defer give.Stop()
	for {
		sec, err := s.openSecret(ctx, integ.OrgID, integ.ID)
		if err != nil {
			return "", err
		}
		if s.tokenFresh(sec) {
			return sec.Token, nil
		}
		now := s.now().UTC()
		won, err := s.store.ClaimIntegrationRefresh(ctx, integ.OrgID, integ.ID, claim, now, now.Add(refreshClaimFor))
		if err != nil {
			return "", err
		}
		if won {
			// A refresh already refused (by any replica, or by this one a
			// moment ago for another caller) spent this refresh token:
			// asking again would only be refused again. Reconnecting
			// replaces the token and the status.
			cur, err := s.store.GetIntegration(ctx, integ.OrgID, integ.ID)
			if err == nil && cur.Status == slipway.IntegrationNeedsAttention && (waited || strings.Contains(cur.StatusReason, refreshRefused)) {
				s.releaseRefresh(ctx, integ, claim)
				return "", slipway.Errorf(slipway.ECodeCredentialsInvalid, "%s", cur.StatusReason).WithFix(cur.StatusFix)
			}
			return s.refreshClaimed(ctx, integ, claim)
		}
		waited = true
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-give.C:
			return "", slipway.Errorf(slipway.ECodeUnavailable, "another Slipway replica is refreshing the OAuth token of %s and has not finished", integ.Label).
				WithFix("try again in a minute")
		case <-time.After(refreshPoll):
		}
	}
}

// refreshRefused is the reason an integration carries once the provider
// refused its refresh token.
const refreshRefused = "refreshing the OAuth token failed: the grant was revoked or expired"

// refreshClaimed spends the refresh token while holding claim, stores the
// result under the claim and releases it.
func (s *Service) refreshClaimed(ctx context.Context, integ slipway.Integration, claim string) (string, error) {
	release := func() { s.releaseRefresh(ctx, integ, claim) }
	// Read again under the claim: the previous holder may have stored its
	// result between our check and our claim.
	sec, err := s.openSecret(ctx, integ.OrgID, integ.ID)
	if err != nil {
		release()
		return "", err
	}
	if s.tokenFresh(sec) {
		release()
		return sec.Token, nil
	}
	cfg, err := s.oauthConfig(integ, sec)
	if err != nil {
		release()
		return "", err
	}
	tok, err := cfg.TokenSource(s.oauthContext(ctx), &oauth2.Token{RefreshToken: sec.RefreshToken, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			cerr := slipway.Errorf(slipway.ECodeCredentialsInvalid, "%s", refreshRefused).
				WithFix("reconnect the integration through the provider's consent screen")
			// Marked before the claim is released, so whoever claims
			// next sees the refusal instead of spending the token again.
			s.markNeedsAttention(ctx, integ, cerr)
			release()
			return "", cerr
		}
		release()
		return "", slipway.Errorf(slipway.ECodeProviderUnreachable, "refreshing the OAuth token: %v", err)
	}
	sec.Token, sec.Expiry = tok.AccessToken, tok.Expiry
	if tok.RefreshToken != "" {
		sec.RefreshToken = tok.RefreshToken
	}
	sealed, err := s.sealSecret(integ.ID, sec)
	if err != nil {
		release()
		return "", err
	}
	if err := s.store.FinishIntegrationRefresh(ctx, integ.OrgID, integ.ID, claim, sealed); err != nil {
		// The claim outlived refreshClaimFor and was taken over: the new
		// holder's result stands. Ours is still a valid access token.
		if slipway.ErrorCodeOf(err) == slipway.ECodeConflict {
			s.log.Warn("oauth refresh finished after its claim expired", "integration", integ.ID)
			return tok.AccessToken, nil
		}
		return "", fmt.Errorf("persist refreshed token: %w", err)
	}
	return tok.AccessToken, nil
}

// releaseRefresh gives up claim without storing anything.
func (s *Service) releaseRefresh(ctx context.Context, integ slipway.Integration, claim string) {
	if err := s.store.FinishIntegrationRefresh(context.WithoutCancel(ctx), integ.OrgID, integ.ID, claim, nil); err != nil {
		s.log.Warn("release oauth refresh claim", "integration", integ.ID, "err", err)
	}
}
