package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// PeekOAuthState returns a live state without spending it: a callback
// checks who claims it before anything is spent, and a page that only
// binds the flow to a browser must not use up the state.
func (q *queries) PeekOAuthState(ctx context.Context, state string, now time.Time) (OAuthState, error) {
	s, err := scanOAuthState(q.queryRow(ctx, `SELECT `+oauthStateColumns+` FROM oauth_states WHERE state = ?`, state))
	if errors.Is(err, sql.ErrNoRows) || err == nil && !s.ExpiresAt.After(now) {
		return OAuthState{}, notFound("oauth state", "")
	}
	if err != nil {
		return OAuthState{}, fmt.Errorf("peek oauth state: %w", err)
	}
	return s, nil
}
