package github

import (
	"context"
	"time"

	"slipway.dev/slipway/internal/forge"
)

// CloneCredentials mints a token narrowed to repo with contents:read, used
// as the HTTPS password for the user x-access-token.
func (p *Provider) CloneCredentials(ctx context.Context, c *forge.Conn, repo forge.Repo) (forge.CloneCredentials, error) {
	repoID, err := parseRepoID(repo.ID)
	if err != nil {
		return forge.CloneCredentials{}, err
	}
	tc, installationID, err := p.tokenCache(c)
	if err != nil {
		return forge.CloneCredentials{}, err
	}
	tok, exp, err := tc.NarrowToken(ctx, installationID, repoID)
	if err != nil {
		return forge.CloneCredentials{}, err
	}
	return forge.CloneCredentials{URL: repo.CloneURL, Username: "x-access-token", Password: tok, ExpiresAt: exp}, nil
}

// NarrowToken mints a contents:read token for one repository of the
// Conn's installation.
func (p *Provider) NarrowToken(ctx context.Context, c *forge.Conn, repoID int64) (string, time.Time, error) {
	tc, installationID, err := p.tokenCache(c)
	if err != nil {
		return "", time.Time{}, err
	}
	return tc.NarrowToken(ctx, installationID, repoID)
}
