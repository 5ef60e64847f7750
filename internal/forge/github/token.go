package github

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	gh "github.com/google/go-github/v88/github"

	"slipway.dev/slipway"
)

// tokenRefreshMargin is how long before expiry a cached installation token
// is replaced, so a token handed out still outlives a slow clone or build.
const tokenRefreshMargin = 5 * time.Minute

// mintTimeout bounds one mint. A mint runs detached from the caller that
// started it, so one impatient caller does not fail every waiter.
const mintTimeout = 30 * time.Second

// TokenCache mints and caches installation tokens for one App. Each
// installation has at most one mint in flight; concurrent callers wait for
// it and share its result.
type TokenCache struct {
	app  *App
	http *http.Client
	now  func() time.Time

	mu      sync.Mutex
	entries map[int64]*tokenEntry
}

type tokenEntry struct {
	token     string
	expiresAt time.Time
	inflight  *mint
}

// mint is one in-flight token request; done closes when it has an answer.
type mint struct {
	done      chan struct{}
	token     string
	expiresAt time.Time
	err       error
}

// NewTokenCache returns a cache for app's installations. now may be nil.
func NewTokenCache(app *App, httpClient *http.Client, now func() time.Time) *TokenCache {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	if now == nil {
		now = time.Now
	}
	return &TokenCache{app: app, http: httpClient, now: now, entries: map[int64]*tokenEntry{}}
}

// Token returns a valid installation token, minting one when the cached
// token is missing or expires within five minutes.
func (tc *TokenCache) Token(ctx context.Context, installationID int64) (string, error) {
	tc.mu.Lock()
	e := tc.entries[installationID]
	if e == nil {
		e = &tokenEntry{}
		tc.entries[installationID] = e
	}
	if e.token != "" && tc.now().Before(e.expiresAt.Add(-tokenRefreshMargin)) {
		tok := e.token
		tc.mu.Unlock()
		return tok, nil
	}
	m := e.inflight
	if m == nil {
		m = &mint{done: make(chan struct{})}
		e.inflight = m
		go tc.runMint(context.WithoutCancel(ctx), installationID, e, m)
	}
	tc.mu.Unlock()

	select {
	case <-m.done:
		return m.token, m.err
	case <-ctx.Done():
		return "", fmt.Errorf("github: waiting for installation token: %w", ctx.Err())
	}
}

func (tc *TokenCache) runMint(ctx context.Context, installationID int64, e *tokenEntry, m *mint) {
	ctx, cancel := context.WithTimeout(ctx, mintTimeout)
	defer cancel()
	m.token, m.expiresAt, m.err = tc.create(ctx, installationID, nil)
	tc.mu.Lock()
	if m.err == nil {
		e.token, e.expiresAt = m.token, m.expiresAt
	}
	e.inflight = nil
	tc.mu.Unlock()
	close(m.done)
}

// NarrowToken mints a fresh token that can only read the contents of one
// repository, for a clone. It is not cached: each clone gets its own
// short-lived, least-privilege token.
func (tc *TokenCache) NarrowToken(ctx context.Context, installationID, repoID int64) (token string, expiresAt time.Time, err error) {
	return tc.create(ctx, installationID, &gh.InstallationTokenOptions{
		RepositoryIDs: []int64{repoID},
		Permissions:   &gh.InstallationPermissions{Contents: gh.Ptr("read")},
	})
}

// create calls POST /app/installations/{id}/access_tokens with the App JWT.
func (tc *TokenCache) create(ctx context.Context, installationID int64, opts *gh.InstallationTokenOptions) (string, time.Time, error) {
	client, err := tc.app.client(tc.http, tc.now)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("github: installation token: %w", err)
	}
	if opts == nil {
		// An empty object, not a JSON null: the description types the
		// body as an object (a whole-installation token asks for nothing).
		opts = &gh.InstallationTokenOptions{}
	}
	tok, resp, err := client.Apps.CreateInstallationToken(ctx, installationID, opts)
	if err != nil {
		switch statusOf(resp) {
		case http.StatusNotFound:
			return "", time.Time{}, fmt.Errorf("github: installation token: %w", installationGone(installationID))
		case http.StatusUnprocessableEntity:
			if opts != nil && len(opts.RepositoryIDs) > 0 {
				return "", time.Time{}, fmt.Errorf("github: installation token: %w", slipway.Errorf(slipway.ECodeRepoNotVisible,
					"repository %d is not part of GitHub App installation %d", opts.RepositoryIDs[0], installationID).
					WithFix("grant the App access to the repository (installation settings → Repository access)"))
			}
		}
		return "", time.Time{}, apiError("mint an installation token", resp, err, tc.now())
	}
	if tok.GetToken() == "" {
		return "", time.Time{}, slipway.Errorf(slipway.ECodeProviderError, "GitHub returned an empty installation token")
	}
	return tok.GetToken(), tok.GetExpiresAt().Time, nil
}

// installationGone is the error for an installation GitHub does not know
// (uninstalled, or installed for a different App).
func installationGone(installationID int64) *slipway.Error {
	e := slipway.Errorf(slipway.ECodeCredentialsInvalid,
		"GitHub App installation %d does not exist for this App (it was uninstalled, or belongs to another App)", installationID).
		WithFix("install the GitHub App again on the account (Integrations → GitHub → Install), or check the App id")
	e.Details = map[string]string{"reason": "installation_not_found"}
	return e
}
