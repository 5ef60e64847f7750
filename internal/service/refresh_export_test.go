package service

import (
	"context"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
)

// SeedIntegration stores integ with sec sealed as the service stores it.
func (s *Service) SeedIntegration(ctx context.Context, integ *slipway.Integration, sec forge.Secret) error {
	sealed, err := s.sealSecret(integ.ID, sec)
	if err != nil {
		return err
	}
	return s.store.CreateIntegration(ctx, integ, sealed)
}

// OAuthToken is what a provider call gets from the integration's
// refreshing token source.
func (s *Service) OAuthToken(ctx context.Context, integ slipway.Integration) (string, error) {
	return s.tokens.oauth(integ).Token(ctx)
}
