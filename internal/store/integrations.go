package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
)

const integrationColumns = `id, org_id, provider, label, auth_method, base_url, internal_url, account_name, external_id, repo_selection,
scopes, status, status_reason, status_fix, settings, created_at, updated_at, checked_at`

func scanIntegration(sc rowScanner) (slipway.Integration, error) {
	var i slipway.Integration
	err := sc.Scan(&i.ID, &i.OrgID, &i.Provider, &i.Label, &i.AuthMethod, &i.BaseURL, &i.InternalURL, &i.AccountName, &i.ExternalID,
		&i.RepoSelection, jsonCol{&i.Scopes}, &i.Status, &i.StatusReason, &i.StatusFix, jsonCol{&i.Settings}, timeCol{&i.CreatedAt},
		timeCol{&i.UpdatedAt}, nullTimeCol{&i.CheckedAt})
	return i, err
}

// CreateIntegration inserts an integration with its encrypted credential.
func (q *queries) CreateIntegration(ctx context.Context, in *slipway.Integration, secretCiphertext []byte) error {
	if in.ID == "" {
		in.ID = slipway.NewID(slipway.PrefixIntegration)
	}
	if in.Status == "" {
		in.Status = slipway.IntegrationPending
	}
	in.CreatedAt = orNow(in.CreatedAt)
	in.UpdatedAt = in.CreatedAt
	in.CheckedAt = normTimePtr(in.CheckedAt)
	_, err := q.exec(ctx, `INSERT INTO integrations (`+integrationColumns+`, secret_ciphertext)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		in.ID, in.OrgID, in.Provider, in.Label, in.AuthMethod, in.BaseURL, in.InternalURL, in.AccountName, in.ExternalID, in.RepoSelection,
		jsonText(orEmpty(in.Scopes)), in.Status, in.StatusReason, in.StatusFix, jsonText(orEmptyMap(in.Settings)), q.tv(in.CreatedAt),
		q.tv(in.UpdatedAt), q.tvp(in.CheckedAt), bytesOrEmpty(secretCiphertext))
	if isForeignKeyViolation(err) {
		return notFound("organisation", in.OrgID)
	}
	return conflictOr(err, "create integration", "an integration with id %q already exists", in.ID)
}

// GetIntegration returns one integration of the organisation.
func (q *queries) GetIntegration(ctx context.Context, orgID, id string) (slipway.Integration, error) {
	return q.getIntegration(ctx, id, `org_id = ? AND id = ?`, orgID, id)
}

// GetIntegrationAnyOrg returns an integration by id alone. Not org-scoped:
// the webhook receiver's URL carries only the integration id.
func (q *queries) GetIntegrationAnyOrg(ctx context.Context, id string) (slipway.Integration, error) {
	return q.getIntegration(ctx, id, `id = ?`, id)
}

func (q *queries) getIntegration(ctx context.Context, key, where string, args ...any) (slipway.Integration, error) {
	i, err := scanIntegration(q.queryRow(ctx, `SELECT `+integrationColumns+` FROM integrations WHERE `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return i, notFound("integration", key)
	}
	if err != nil {
		return i, fmt.Errorf("get integration: %w", err)
	}
	return i, nil
}

// ListIntegrations returns the organisation's integrations, oldest first.
func (q *queries) ListIntegrations(ctx context.Context, orgID string) ([]slipway.Integration, error) {
	out, err := queryAll(ctx, q, scanIntegration, `SELECT `+integrationColumns+` FROM integrations WHERE org_id = ? ORDER BY created_at, id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list integrations: %w", err)
	}
	return out, nil
}

// UpdateIntegration saves everything about in except its provider, its
// auth method and its credential.
func (q *queries) UpdateIntegration(ctx context.Context, in *slipway.Integration) error {
	in.UpdatedAt = now()
	in.CheckedAt = normTimePtr(in.CheckedAt)
	return wrapErr("update integration", q.execOne(ctx, "integration", in.ID, `UPDATE integrations SET label = ?, base_url = ?,
internal_url = ?, account_name = ?, external_id = ?, repo_selection = ?, scopes = ?, status = ?, status_reason = ?, status_fix = ?,
settings = ?, updated_at = ?, checked_at = ? WHERE org_id = ? AND id = ?`,
		in.Label, in.BaseURL, in.InternalURL, in.AccountName, in.ExternalID, in.RepoSelection, jsonText(orEmpty(in.Scopes)), in.Status,
		in.StatusReason, in.StatusFix, jsonText(orEmptyMap(in.Settings)), q.tv(in.UpdatedAt), q.tvp(in.CheckedAt), in.OrgID, in.ID))
}

// GetIntegrationSecret returns the integration's encrypted credential.
func (q *queries) GetIntegrationSecret(ctx context.Context, orgID, id string) ([]byte, error) {
	var b []byte
	err := q.queryRow(ctx, `SELECT secret_ciphertext FROM integrations WHERE org_id = ? AND id = ?`, orgID, id).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("integration", id)
	}
	if err != nil {
		return nil, fmt.Errorf("get integration secret: %w", err)
	}
	return b, nil
}

// UpdateIntegrationSecret replaces the encrypted credential (rotated OAuth
// refresh token, re-entered access token).
func (q *queries) UpdateIntegrationSecret(ctx context.Context, orgID, id string, ciphertext []byte) error {
	return wrapErr("update integration secret", q.execOne(ctx, "integration", id,
		`UPDATE integrations SET secret_ciphertext = ?, updated_at = ? WHERE org_id = ? AND id = ?`, bytesOrEmpty(ciphertext), q.tv(now()), orgID, id))
}

// ClaimIntegrationRefresh takes the right to refresh the integration's
// OAuth token until until, when no other claim is live at now. It is a
// compare-and-set on the row, so of replicas racing for one expiring
// token exactly one gets true and calls the provider; the others wait for
// its result.
func (q *queries) ClaimIntegrationRefresh(ctx context.Context, orgID, id, claim string, now, until time.Time) (bool, error) {
	res, err := q.exec(ctx, `UPDATE integrations SET refresh_claim = ?, refresh_claim_until = ?
WHERE org_id = ? AND id = ? AND (refresh_claim = '' OR refresh_claim_until IS NULL OR refresh_claim_until < ?)`,
		claim, q.tv(until), orgID, id, q.tv(now))
	if err != nil {
		return false, fmt.Errorf("claim integration refresh: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("claim integration refresh: %w", err)
	}
	return n == 1, nil
}

// FinishIntegrationRefresh stores the refreshed credential and releases the
// claim, only while claim is still the integration's claim; a holder whose
// claim expired and was taken over gets ECodeConflict and writes nothing.
// A nil ciphertext releases the claim and keeps the credential.
func (q *queries) FinishIntegrationRefresh(ctx context.Context, orgID, id, claim string, ciphertext []byte) error {
	set, args := `refresh_claim = '', refresh_claim_until = NULL`, []any{}
	if ciphertext != nil {
		set += `, secret_ciphertext = ?, updated_at = ?`
		args = append(args, ciphertext, q.tv(now()))
	}
	err := q.execOne(ctx, "integration refresh claim", id, `UPDATE integrations SET `+set+` WHERE org_id = ? AND id = ? AND refresh_claim = ?`,
		append(args, orgID, id, claim)...)
	if slipway.ErrorCodeOf(err) == slipway.ECodeNotFound {
		return slipway.Errorf(slipway.ECodeConflict, "the refresh claim on integration %q was taken over", id)
	}
	return wrapErr("finish integration refresh", err)
}

// DeleteIntegration deletes an integration with its repository cache,
// hooks and deliveries. Services keep their integration id and show as
// needing a new connection.
func (q *queries) DeleteIntegration(ctx context.Context, orgID, id string) error {
	return wrapErr("delete integration", q.execOne(ctx, "integration", id, `DELETE FROM integrations WHERE org_id = ? AND id = ?`, orgID, id))
}

// IncrementBadSignatures counts a webhook whose signature did not verify:
// the only trace a bad delivery leaves.
func (q *queries) IncrementBadSignatures(ctx context.Context, integrationID string) error {
	return wrapErr("count bad signature", q.execOne(ctx, "integration", integrationID,
		`UPDATE integrations SET bad_signatures = bad_signatures + 1 WHERE id = ?`, integrationID))
}

// BadSignatures returns the integration's bad-signature counter.
func (q *queries) BadSignatures(ctx context.Context, orgID, id string) (int64, error) {
	var n int64
	err := q.queryRow(ctx, `SELECT bad_signatures FROM integrations WHERE org_id = ? AND id = ?`, orgID, id).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, notFound("integration", id)
	}
	return n, wrapErr("read bad signatures", err)
}

// integrationExists reports NotFound unless the integration belongs to
// the organisation.
func (q *queries) integrationExists(ctx context.Context, orgID, id string) error {
	n, err := q.count(ctx, `SELECT COUNT(*) FROM integrations WHERE org_id = ? AND id = ?`, orgID, id)
	if err != nil {
		return fmt.Errorf("read integration: %w", err)
	}
	if n == 0 {
		return notFound("integration", id)
	}
	return nil
}

const repoColumns = `repo_id, full_name, default_branch, clone_url, html_url, private, archived, updated_at`

func (q *queries) insertRepo(ctx context.Context, orgID, integrationID string, r forge.Repo, upsert bool) error {
	query := `INSERT INTO integration_repos (integration_id, org_id, ` + repoColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	if upsert {
		query += ` ON CONFLICT (integration_id, repo_id) DO UPDATE SET full_name = excluded.full_name,
default_branch = excluded.default_branch, clone_url = excluded.clone_url, html_url = excluded.html_url,
private = excluded.private, archived = excluded.archived, updated_at = excluded.updated_at`
	}
	var updated *time.Time
	if !r.UpdatedAt.IsZero() {
		updated = &r.UpdatedAt
	}
	_, err := q.exec(ctx, query, integrationID, orgID, r.ID, r.FullName, r.DefaultBranch, r.CloneURL, r.HTMLURL, r.Private, r.Archived, q.tvp(updated))
	return conflictOr(err, "store repository", "repository %q listed twice", r.ID)
}

// ReplaceIntegrationRepos replaces the integration's cached repository
// list and its ETag in one transaction.
func (q *queries) ReplaceIntegrationRepos(ctx context.Context, orgID, integrationID string, repos []forge.Repo, etag string) error {
	return q.atomic(ctx, func(q *queries) error {
		if err := q.integrationExists(ctx, orgID, integrationID); err != nil {
			return err
		}
		if _, err := q.exec(ctx, `DELETE FROM integration_repos WHERE org_id = ? AND integration_id = ?`, orgID, integrationID); err != nil {
			return fmt.Errorf("replace repositories: %w", err)
		}
		for _, r := range repos {
			if err := q.insertRepo(ctx, orgID, integrationID, r, false); err != nil {
				return err
			}
		}
		_, err := q.exec(ctx, `UPDATE integrations SET repos_etag = ?, repos_synced_at = ? WHERE org_id = ? AND id = ?`,
			etag, q.tv(now()), orgID, integrationID)
		return wrapErr("replace repositories", err)
	})
}

// AddIntegrationRepos adds (or refreshes) repositories in the cache, for
// "repositories added" installation events.
func (q *queries) AddIntegrationRepos(ctx context.Context, orgID, integrationID string, repos []forge.Repo) error {
	return q.atomic(ctx, func(q *queries) error {
		if err := q.integrationExists(ctx, orgID, integrationID); err != nil {
			return err
		}
		for _, r := range repos {
			if err := q.insertRepo(ctx, orgID, integrationID, r, true); err != nil {
				return err
			}
		}
		return nil
	})
}

// RemoveIntegrationRepos drops repositories from the cache.
func (q *queries) RemoveIntegrationRepos(ctx context.Context, orgID, integrationID string, repoIDs []string) error {
	if err := q.integrationExists(ctx, orgID, integrationID); err != nil {
		return err
	}
	if len(repoIDs) == 0 {
		return nil
	}
	args := []any{orgID, integrationID}
	for _, id := range repoIDs {
		args = append(args, id)
	}
	_, err := q.exec(ctx, `DELETE FROM integration_repos WHERE org_id = ? AND integration_id = ? AND repo_id IN (`+placeholders(len(repoIDs))+`)`, args...)
	return wrapErr("remove repositories", err)
}

// ListIntegrationRepos returns one page of cached repositories whose full
// name contains search (case-insensitive), ordered by full name.
func (q *queries) ListIntegrationRepos(ctx context.Context, orgID, integrationID, search string, p Page) ([]forge.Repo, int, error) {
	if err := q.integrationExists(ctx, orgID, integrationID); err != nil {
		return nil, 0, err
	}
	where, args := `org_id = ? AND integration_id = ?`, []any{orgID, integrationID}
	if search != "" {
		where += ` AND lower(full_name) LIKE ? ESCAPE '\'`
		args = append(args, likePattern(search))
	}
	total, err := q.count(ctx, `SELECT COUNT(*) FROM integration_repos WHERE `+where, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("list repositories: %w", err)
	}
	limit, offset := p.window()
	out, err := queryAll(ctx, q, scanRepo, `SELECT `+repoColumns+` FROM integration_repos WHERE `+where+` ORDER BY lower(full_name), repo_id LIMIT ? OFFSET ?`,
		append(args, limit, offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list repositories: %w", err)
	}
	return out, total, nil
}

func scanRepo(sc rowScanner) (forge.Repo, error) {
	var (
		r       forge.Repo
		updated *time.Time
	)
	if err := sc.Scan(&r.ID, &r.FullName, &r.DefaultBranch, &r.CloneURL, &r.HTMLURL, &r.Private, &r.Archived, nullTimeCol{&updated}); err != nil {
		return r, err
	}
	if updated != nil {
		r.UpdatedAt = *updated
	}
	return r, nil
}

// IntegrationReposETag returns the ETag of the last full repository sync
// ("" when none).
func (q *queries) IntegrationReposETag(ctx context.Context, orgID, integrationID string) (string, error) {
	var etag string
	err := q.queryRow(ctx, `SELECT repos_etag FROM integrations WHERE org_id = ? AND id = ?`, orgID, integrationID).Scan(&etag)
	if errors.Is(err, sql.ErrNoRows) {
		return "", notFound("integration", integrationID)
	}
	return etag, wrapErr("read repositories etag", err)
}

// UpdateRepoName records a repository rename or transfer in the cache and
// in every service that follows the repository.
func (q *queries) UpdateRepoName(ctx context.Context, orgID, integrationID, repoID, fullName string) error {
	return q.atomic(ctx, func(q *queries) error {
		if err := q.integrationExists(ctx, orgID, integrationID); err != nil {
			return err
		}
		if _, err := q.exec(ctx, `UPDATE integration_repos SET full_name = ? WHERE org_id = ? AND integration_id = ? AND repo_id = ?`,
			fullName, orgID, integrationID, repoID); err != nil {
			return fmt.Errorf("rename repository: %w", err)
		}
		_, err := q.exec(ctx, `UPDATE services SET repo_name = ?, updated_at = ? WHERE org_id = ? AND integration_id = ? AND repo_id = ?`,
			fullName, q.tv(now()), orgID, integrationID, repoID)
		return wrapErr("rename repository in services", err)
	})
}

// RepoHook is a webhook Slipway installed on one repository, for providers
// without an app-level hook. SecretCiphertext is the encrypted per-hook
// secret.
type RepoHook struct {
	ID               string
	OrgID            string
	IntegrationID    string
	RepoID           string
	ProviderHookID   string
	SecretCiphertext []byte
	Status           string
	LastDeliveryAt   *time.Time
	LastError        string
	CreatedAt        time.Time
}

const repoHookColumns = `id, org_id, integration_id, repo_id, provider_hook_id, secret_ciphertext, status, last_delivery_at, last_error, created_at`

func scanRepoHook(sc rowScanner) (RepoHook, error) {
	var h RepoHook
	err := sc.Scan(&h.ID, &h.OrgID, &h.IntegrationID, &h.RepoID, &h.ProviderHookID, &h.SecretCiphertext, &h.Status,
		nullTimeCol{&h.LastDeliveryAt}, &h.LastError, timeCol{&h.CreatedAt})
	return h, err
}

// CreateRepoHook records an installed hook. One hook per (integration,
// repository).
func (q *queries) CreateRepoHook(ctx context.Context, h *RepoHook) error {
	if h.ID == "" {
		h.ID = slipway.NewID(slipway.PrefixHook)
	}
	h.CreatedAt = orNow(h.CreatedAt)
	h.LastDeliveryAt = normTimePtr(h.LastDeliveryAt)
	_, err := q.exec(ctx, `INSERT INTO repo_hooks (`+repoHookColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		h.ID, h.OrgID, h.IntegrationID, h.RepoID, h.ProviderHookID, bytesOrEmpty(h.SecretCiphertext), h.Status, q.tvp(h.LastDeliveryAt),
		h.LastError, q.tv(h.CreatedAt))
	if isForeignKeyViolation(err) {
		return notFound("integration", h.IntegrationID)
	}
	return conflictOr(err, "create repository hook", "a hook for repository %q already exists", h.RepoID)
}

// GetRepoHook returns the hook of one repository.
func (q *queries) GetRepoHook(ctx context.Context, orgID, integrationID, repoID string) (RepoHook, error) {
	h, err := scanRepoHook(q.queryRow(ctx, `SELECT `+repoHookColumns+` FROM repo_hooks WHERE org_id = ? AND integration_id = ? AND repo_id = ?`,
		orgID, integrationID, repoID))
	if errors.Is(err, sql.ErrNoRows) {
		return h, notFound("repository hook", repoID)
	}
	return h, wrapErr("get repository hook", err)
}

// ListRepoHooks returns an integration's hooks ordered by repository.
func (q *queries) ListRepoHooks(ctx context.Context, orgID, integrationID string) ([]RepoHook, error) {
	out, err := queryAll(ctx, q, scanRepoHook, `SELECT `+repoHookColumns+` FROM repo_hooks WHERE org_id = ? AND integration_id = ? ORDER BY repo_id`, orgID, integrationID)
	if err != nil {
		return nil, fmt.Errorf("list repository hooks: %w", err)
	}
	return out, nil
}

// UpdateRepoHook saves a hook's provider id, secret, status and last
// delivery.
func (q *queries) UpdateRepoHook(ctx context.Context, h *RepoHook) error {
	h.LastDeliveryAt = normTimePtr(h.LastDeliveryAt)
	return wrapErr("update repository hook", q.execOne(ctx, "repository hook", h.ID, `UPDATE repo_hooks SET provider_hook_id = ?,
secret_ciphertext = ?, status = ?, last_delivery_at = ?, last_error = ? WHERE org_id = ? AND id = ?`,
		h.ProviderHookID, bytesOrEmpty(h.SecretCiphertext), h.Status, q.tvp(h.LastDeliveryAt), h.LastError, h.OrgID, h.ID))
}

// DeleteRepoHook forgets a hook.
func (q *queries) DeleteRepoHook(ctx context.Context, orgID, id string) error {
	return wrapErr("delete repository hook", q.execOne(ctx, "repository hook", id, `DELETE FROM repo_hooks WHERE org_id = ? AND id = ?`, orgID, id))
}

// OAuthState is the one-time state of a consent flow in flight (OAuth,
// GitHub App creation or installation), with the PKCE verifier, the user
// who started it and, once that user opened it in a browser, the hash of
// that browser's nonce cookie.
type OAuthState struct {
	State         string
	OrgID         string
	UserID        string
	IntegrationID string
	Purpose       string
	Verifier      string
	RedirectTo    string
	NonceHash     string // hash of the nonce cookie of the browser the flow is bound to; "" until bound
	Pending       []byte // sealed result of a callback, waiting for the user's confirmation
	ExpiresAt     time.Time
}

const oauthStateColumns = `state, org_id, user_id, integration_id, purpose, verifier, redirect_to, nonce_hash, pending_ciphertext, expires_at`

func scanOAuthState(sc rowScanner) (OAuthState, error) {
	var s OAuthState
	err := sc.Scan(&s.State, &s.OrgID, &s.UserID, &s.IntegrationID, &s.Purpose, &s.Verifier, &s.RedirectTo, &s.NonceHash, &s.Pending,
		timeCol{&s.ExpiresAt})
	return s, err
}

// CreateOAuthState stores a state.
func (q *queries) CreateOAuthState(ctx context.Context, s OAuthState) error {
	_, err := q.exec(ctx, `INSERT INTO oauth_states (`+oauthStateColumns+`)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, s.State, s.OrgID, s.UserID, s.IntegrationID, s.Purpose, s.Verifier, s.RedirectTo, s.NonceHash,
		s.Pending, q.tv(s.ExpiresAt))
	return conflictOr(err, "create oauth state", "oauth state already exists")
}

// BindOAuthState binds a live state to a browser: it records the hash of
// the browser's nonce cookie, only for the user who started the flow.
func (q *queries) BindOAuthState(ctx context.Context, state, userID, nonceHash string, now time.Time) error {
	if nonceHash == "" {
		return notFound("oauth state", "")
	}
	return wrapErr("bind oauth state", q.execOne(ctx, "oauth state", "", `UPDATE oauth_states SET nonce_hash = ?
WHERE state = ? AND user_id = ? AND expires_at > ?`, nonceHash, state, userID, q.tv(now)))
}

// OAuthStateClaim is who claims a state: it is spent only when its user
// and the nonce hash of the browser it was bound to both match.
type OAuthStateClaim struct {
	State     string
	UserID    string
	NonceHash string
}

// ConsumeOAuthState deletes and returns a state in one statement, so a
// state works once however many callbacks race, and only for the claim's
// user in the browser it was bound to: a claim that does not match leaves
// the state as it was. An expired state is reported not found.
func (q *queries) ConsumeOAuthState(ctx context.Context, c OAuthStateClaim, now time.Time) (OAuthState, error) {
	if c.UserID == "" || c.NonceHash == "" {
		return OAuthState{}, notFound("oauth state", "")
	}
	s, err := scanOAuthState(q.queryRow(ctx, `DELETE FROM oauth_states WHERE state = ? AND user_id = ? AND nonce_hash = ? AND expires_at > ?
RETURNING `+oauthStateColumns, c.State, c.UserID, c.NonceHash, q.tv(now)))
	if errors.Is(err, sql.ErrNoRows) {
		return OAuthState{}, notFound("oauth state", "")
	}
	if err != nil {
		return OAuthState{}, fmt.Errorf("consume oauth state: %w", err)
	}
	return s, nil
}

// DeleteExpiredOAuthStates removes abandoned states.
func (q *queries) DeleteExpiredOAuthStates(ctx context.Context, now time.Time) error {
	_, err := q.exec(ctx, `DELETE FROM oauth_states WHERE expires_at <= ?`, q.tv(now))
	return wrapErr("delete expired oauth states", err)
}

func orEmptyMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
