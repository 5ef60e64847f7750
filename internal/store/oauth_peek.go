package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// PeekOAuthState returns a live state without spending it: a page that
// only shows a form (the GitHub App manifest form) must not use up the
// state its callback needs.
func (q *queries) PeekOAuthState(ctx context.Context, state string, now time.Time) (OAuthState, error) {
	var s OAuthState
	err := q.queryRow(ctx, `SELECT state, org_id, user_id, integration_id, purpose, verifier, redirect_to, expires_at
FROM oauth_states WHERE state = ?`, state).
		Scan(&s.State, &s.OrgID, &s.UserID, &s.IntegrationID, &s.Purpose, &s.Verifier, &s.RedirectTo, timeCol{&s.ExpiresAt})
	if errors.Is(err, sql.ErrNoRows) || err == nil && !s.ExpiresAt.After(now) {
		return OAuthState{}, notFound("oauth state", "")
	}
	if err != nil {
		return OAuthState{}, fmt.Errorf("peek oauth state: %w", err)
	}
	return s, nil
}
