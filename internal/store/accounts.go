package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"slipway.dev/slipway"
)

// CreateOrganisation inserts o, filling ID and CreatedAt when empty.
func (q *queries) CreateOrganisation(ctx context.Context, o *slipway.Organisation) error {
	if o.ID == "" {
		o.ID = slipway.NewID(slipway.PrefixOrganisation)
	}
	o.CreatedAt = orNow(o.CreatedAt)
	if o.HostLabel == "" {
		label, err := q.freeHostLabel(ctx, o.Name)
		if err != nil {
			return err
		}
		o.HostLabel = label
	}
	_, err := q.exec(ctx, `INSERT INTO organisations (`+orgColumns+`) VALUES (?, ?, ?, ?)`,
		o.ID, o.Name, o.HostLabel, q.tv(o.CreatedAt))
	return conflictOr(err, "create organisation", "an organisation with id %q already exists", o.ID)
}

// GetOrganisation returns one organisation.
func (q *queries) GetOrganisation(ctx context.Context, id string) (slipway.Organisation, error) {
	o, err := scanOrganisation(q.queryRow(ctx, `SELECT `+orgColumns+` FROM organisations WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return o, notFound("organisation", id)
	}
	if err != nil {
		return o, fmt.Errorf("get organisation: %w", err)
	}
	return o, nil
}

// ListOrganisationsForUser returns the organisations userID is a member of,
// oldest first.
func (q *queries) ListOrganisationsForUser(ctx context.Context, userID string) ([]slipway.Organisation, error) {
	out, err := queryAll(ctx, q, scanOrganisation, `SELECT o.id, o.name, o.host_label, o.created_at FROM organisations o
JOIN memberships m ON m.org_id = o.id WHERE m.user_id = ? ORDER BY o.created_at, o.id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list organisations: %w", err)
	}
	return out, nil
}

const orgColumns = `id, name, host_label, created_at`

func scanOrganisation(sc rowScanner) (slipway.Organisation, error) {
	var o slipway.Organisation
	err := sc.Scan(&o.ID, &o.Name, &o.HostLabel, timeCol{&o.CreatedAt})
	return o, err
}

// CountOrganisations returns how many organisations exist (zero means the
// installation still needs its first-run setup).
func (q *queries) CountOrganisations(ctx context.Context) (int, error) {
	n, err := q.count(ctx, `SELECT COUNT(*) FROM organisations`)
	if err != nil {
		return 0, fmt.Errorf("count organisations: %w", err)
	}
	return n, nil
}

// DeleteOrganisation deletes an organisation and, by cascade, everything it
// owns.
func (q *queries) DeleteOrganisation(ctx context.Context, id string) error {
	err := q.atomic(ctx, func(q *queries) error {
		// Memberships reference roles; remove them first so the cascade
		// order of the two dialects does not matter.
		if _, err := q.exec(ctx, `DELETE FROM memberships WHERE org_id = ?`, id); err != nil {
			return err
		}
		return q.execOne(ctx, "organisation", id, `DELETE FROM organisations WHERE id = ?`, id)
	})
	if err != nil && slipway.ErrorCodeOf(err) != slipway.ECodeNotFound {
		return fmt.Errorf("delete organisation: %w", err)
	}
	return err
}

// CreateUser inserts u with its password hash (empty for users who sign in
// otherwise). Emails are unique case-insensitively.
func (q *queries) CreateUser(ctx context.Context, u *slipway.User, passwordHash string) error {
	if u.ID == "" {
		u.ID = slipway.NewID(slipway.PrefixUser)
	}
	u.CreatedAt = orNow(u.CreatedAt)
	_, err := q.exec(ctx, `INSERT INTO users (id, email, name, password_hash, created_at) VALUES (?, ?, ?, ?, ?)`,
		u.ID, u.Email, u.Name, passwordHash, q.tv(u.CreatedAt))
	return conflictOr(err, "create user", "a user with email %q already exists", u.Email)
}

// GetUser returns one user.
func (q *queries) GetUser(ctx context.Context, id string) (slipway.User, error) {
	u, _, err := q.getUser(ctx, `id = ?`, id)
	return u, err
}

// GetUserByEmail returns the user with that email (case-insensitive) and
// their password hash, for sign-in.
func (q *queries) GetUserByEmail(ctx context.Context, email string) (slipway.User, string, error) {
	return q.getUser(ctx, `lower(email) = ?`, strings.ToLower(email))
}

func (q *queries) getUser(ctx context.Context, where string, arg string) (slipway.User, string, error) {
	var (
		u    slipway.User
		hash string
	)
	err := q.queryRow(ctx, `SELECT id, email, name, password_hash, created_at FROM users WHERE `+where, arg).
		Scan(&u.ID, &u.Email, &u.Name, &hash, timeCol{&u.CreatedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return u, "", notFound("user", arg)
	}
	if err != nil {
		return u, "", fmt.Errorf("get user: %w", err)
	}
	return u, hash, nil
}

// SetUserPassword replaces a user's password hash.
func (q *queries) SetUserPassword(ctx context.Context, userID, hash string) error {
	return wrapErr("set user password", q.execOne(ctx, "user", userID,
		`UPDATE users SET password_hash = ? WHERE id = ?`, hash, userID))
}

// SetInstallationAdmin grants or takes away the installation
// administrator role, which sits above organisations.
func (q *queries) SetInstallationAdmin(ctx context.Context, userID string, admin bool) error {
	return wrapErr("set installation admin", q.execOne(ctx, "user", userID,
		`UPDATE users SET installation_admin = ? WHERE id = ?`, admin, userID))
}

// IsInstallationAdmin reports whether userID holds the installation
// administrator role. An unknown user holds nothing.
func (q *queries) IsInstallationAdmin(ctx context.Context, userID string) (bool, error) {
	var admin bool
	err := q.queryRow(ctx, `SELECT installation_admin FROM users WHERE id = ?`, userID).Scan(&admin)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read installation admin: %w", err)
	}
	return admin, nil
}

const roleColumns = `id, org_id, name, built_in, permissions, created_at`

func scanRole(sc rowScanner) (slipway.Role, error) {
	var r slipway.Role
	r.Permissions = slipway.Permissions{}
	err := sc.Scan(&r.ID, &r.OrgID, &r.Name, &r.BuiltIn, jsonCol{&r.Permissions}, timeCol{&r.CreatedAt})
	return r, err
}

// CreateRole inserts r. Role names are unique per organisation.
func (q *queries) CreateRole(ctx context.Context, r *slipway.Role) error {
	if r.ID == "" {
		r.ID = slipway.NewID(slipway.PrefixRole)
	}
	if r.Permissions == nil {
		r.Permissions = slipway.Permissions{}
	}
	r.CreatedAt = orNow(r.CreatedAt)
	_, err := q.exec(ctx, `INSERT INTO roles (`+roleColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
		r.ID, r.OrgID, r.Name, r.BuiltIn, jsonText(r.Permissions), q.tv(r.CreatedAt))
	if isForeignKeyViolation(err) {
		return notFound("organisation", r.OrgID)
	}
	return conflictOr(err, "create role", "a role named %q already exists", r.Name)
}

// GetRole returns one role of the organisation.
func (q *queries) GetRole(ctx context.Context, orgID, id string) (slipway.Role, error) {
	return q.getRole(ctx, id, `SELECT `+roleColumns+` FROM roles WHERE org_id = ? AND id = ?`, orgID, id)
}

// GetRoleByName returns the organisation's role with that name
// (case-insensitive).
func (q *queries) GetRoleByName(ctx context.Context, orgID, name string) (slipway.Role, error) {
	return q.getRole(ctx, name, `SELECT `+roleColumns+` FROM roles WHERE org_id = ? AND lower(name) = ?`, orgID, strings.ToLower(name))
}

func (q *queries) getRole(ctx context.Context, key, query string, args ...any) (slipway.Role, error) {
	r, err := scanRole(q.queryRow(ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return r, notFound("role", key)
	}
	if err != nil {
		return r, fmt.Errorf("get role: %w", err)
	}
	return r, nil
}

// ListRoles returns the organisation's roles, built-in ones first.
func (q *queries) ListRoles(ctx context.Context, orgID string) ([]slipway.Role, error) {
	out, err := queryAll(ctx, q, scanRole, `SELECT `+roleColumns+` FROM roles WHERE org_id = ? ORDER BY built_in DESC, lower(name)`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	return out, nil
}

// UpdateRole saves r's name and permissions. Built-in roles cannot be
// edited (ECodeForbidden).
func (q *queries) UpdateRole(ctx context.Context, r *slipway.Role) error {
	cur, err := q.GetRole(ctx, r.OrgID, r.ID)
	if err != nil {
		return err
	}
	if cur.BuiltIn {
		return slipway.Errorf(slipway.ECodeForbidden, "the built-in role %q cannot be edited", cur.Name)
	}
	if r.Permissions == nil {
		r.Permissions = slipway.Permissions{}
	}
	err = q.execOne(ctx, "role", r.ID, `UPDATE roles SET name = ?, permissions = ? WHERE org_id = ? AND id = ? AND NOT built_in`,
		r.Name, jsonText(r.Permissions), r.OrgID, r.ID)
	if err != nil && slipway.ErrorCodeOf(err) == slipway.ECodeNotFound {
		return err
	}
	if err := conflictOr(err, "update role", "a role named %q already exists", r.Name); err != nil {
		return err
	}
	r.BuiltIn, r.CreatedAt = false, cur.CreatedAt
	return nil
}

// DeleteRole deletes a custom role. Built-in roles and roles still held by
// a member are refused with ECodeConflict.
func (q *queries) DeleteRole(ctx context.Context, orgID, id string) error {
	return q.atomic(ctx, func(q *queries) error {
		cur, err := q.GetRole(ctx, orgID, id)
		if err != nil {
			return err
		}
		if cur.BuiltIn {
			return slipway.Errorf(slipway.ECodeConflict, "the built-in role %q cannot be deleted", cur.Name)
		}
		n, err := q.count(ctx, `SELECT COUNT(*) FROM memberships WHERE org_id = ? AND role_id = ?`, orgID, id)
		if err != nil {
			return fmt.Errorf("delete role: %w", err)
		}
		if n > 0 {
			return slipway.Errorf(slipway.ECodeConflict, "the role %q is held by %d member(s); give them another role first", cur.Name, n)
		}
		_, err = q.exec(ctx, `DELETE FROM roles WHERE org_id = ? AND id = ?`, orgID, id)
		if isForeignKeyViolation(err) {
			return slipway.Errorf(slipway.ECodeConflict, "the role %q is still in use", cur.Name)
		}
		return wrapErr("delete role", err)
	})
}

// AddMember adds a user to an organisation with a role of that
// organisation.
func (q *queries) AddMember(ctx context.Context, m *slipway.Membership) error {
	m.CreatedAt = orNow(m.CreatedAt)
	_, err := q.exec(ctx, `INSERT INTO memberships (org_id, user_id, role_id, created_at) VALUES (?, ?, ?, ?)`,
		m.OrgID, m.UserID, m.RoleID, q.tv(m.CreatedAt))
	if isForeignKeyViolation(err) {
		return slipway.Errorf(slipway.ECodeNotFound, "organisation, user or role not found")
	}
	return conflictOr(err, "add member", "user %q is already a member", m.UserID)
}

const memberColumns = `m.org_id, m.user_id, m.role_id, m.created_at, u.id, u.email, u.name, u.created_at`

func scanMember(sc rowScanner) (slipway.Membership, error) {
	var (
		m slipway.Membership
		u slipway.User
	)
	err := sc.Scan(&m.OrgID, &m.UserID, &m.RoleID, timeCol{&m.CreatedAt}, &u.ID, &u.Email, &u.Name, timeCol{&u.CreatedAt})
	m.User = &u
	return m, err
}

// GetMembership returns userID's membership of orgID, with the user filled.
func (q *queries) GetMembership(ctx context.Context, orgID, userID string) (slipway.Membership, error) {
	m, err := scanMember(q.queryRow(ctx, `SELECT `+memberColumns+` FROM memberships m JOIN users u ON u.id = m.user_id
WHERE m.org_id = ? AND m.user_id = ?`, orgID, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return m, notFound("member", userID)
	}
	if err != nil {
		return m, fmt.Errorf("get membership: %w", err)
	}
	return m, nil
}

// ListMembers returns one page of the organisation's members, with User
// filled, ordered by email.
func (q *queries) ListMembers(ctx context.Context, orgID string, p Page) ([]slipway.Membership, int, error) {
	total, err := q.count(ctx, `SELECT COUNT(*) FROM memberships WHERE org_id = ?`, orgID)
	if err != nil {
		return nil, 0, fmt.Errorf("list members: %w", err)
	}
	limit, offset := p.window()
	out, err := queryAll(ctx, q, scanMember, `SELECT `+memberColumns+` FROM memberships m JOIN users u ON u.id = m.user_id
WHERE m.org_id = ? ORDER BY lower(u.email), u.id LIMIT ? OFFSET ?`, orgID, limit, offset)
	if err != nil {
		return nil, 0, fmt.Errorf("list members: %w", err)
	}
	return out, total, nil
}

// UpdateMemberRole gives a member another role of the same organisation.
func (q *queries) UpdateMemberRole(ctx context.Context, orgID, userID, roleID string) error {
	err := q.execOne(ctx, "member", userID, `UPDATE memberships SET role_id = ? WHERE org_id = ? AND user_id = ?`, roleID, orgID, userID)
	if isForeignKeyViolation(err) {
		return notFound("role", roleID)
	}
	return wrapErr("update member role", err)
}

// RemoveMember removes a user from an organisation, with their tokens and
// sessions there.
func (q *queries) RemoveMember(ctx context.Context, orgID, userID string) error {
	return q.atomic(ctx, func(q *queries) error {
		if err := q.execOne(ctx, "member", userID, `DELETE FROM memberships WHERE org_id = ? AND user_id = ?`, orgID, userID); err != nil {
			return wrapErr("remove member", err)
		}
		if _, err := q.exec(ctx, `DELETE FROM api_tokens WHERE org_id = ? AND user_id = ?`, orgID, userID); err != nil {
			return fmt.Errorf("remove member tokens: %w", err)
		}
		if _, err := q.exec(ctx, `DELETE FROM sessions WHERE org_id = ? AND user_id = ?`, orgID, userID); err != nil {
			return fmt.Errorf("remove member sessions: %w", err)
		}
		return nil
	})
}

const tokenColumns = `id, org_id, user_id, name, created_at, last_used_at, expires_at`

func scanToken(sc rowScanner) (slipway.APIToken, error) {
	var t slipway.APIToken
	err := sc.Scan(&t.ID, &t.OrgID, &t.UserID, &t.Name, timeCol{&t.CreatedAt}, nullTimeCol{&t.LastUsedAt}, nullTimeCol{&t.ExpiresAt})
	return t, err
}

// CreateAPIToken stores a token by the hash of its secret; the secret
// itself is never stored.
func (q *queries) CreateAPIToken(ctx context.Context, t *slipway.APIToken, secretHash []byte) error {
	if t.ID == "" {
		t.ID = slipway.NewID(slipway.PrefixToken)
	}
	t.CreatedAt = orNow(t.CreatedAt)
	t.ExpiresAt = normTimePtr(t.ExpiresAt)
	t.LastUsedAt = normTimePtr(t.LastUsedAt)
	_, err := q.exec(ctx, `INSERT INTO api_tokens (id, org_id, user_id, name, secret_hash, created_at, last_used_at, expires_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, t.ID, t.OrgID, t.UserID, t.Name, secretHash, q.tv(t.CreatedAt), q.tvp(t.LastUsedAt), q.tvp(t.ExpiresAt))
	if isForeignKeyViolation(err) {
		return slipway.Errorf(slipway.ECodeNotFound, "organisation or user not found")
	}
	return conflictOr(err, "create api token", "an API token with that secret already exists")
}

// LookupAPIToken finds the token whose secret hashes to secretHash. It is
// not org-scoped: it is how a request learns its organisation. Expired
// tokens are not found.
func (q *queries) LookupAPIToken(ctx context.Context, secretHash []byte) (slipway.APIToken, error) {
	t, err := scanToken(q.queryRow(ctx, `SELECT `+tokenColumns+` FROM api_tokens
WHERE secret_hash = ? AND (expires_at IS NULL OR expires_at > ?)`, secretHash, q.tv(time.Now())))
	if errors.Is(err, sql.ErrNoRows) {
		return t, notFound("api token", "")
	}
	if err != nil {
		return t, fmt.Errorf("lookup api token: %w", err)
	}
	return t, nil
}

// ListAPITokens returns userID's tokens in orgID, newest first.
func (q *queries) ListAPITokens(ctx context.Context, orgID, userID string) ([]slipway.APIToken, error) {
	out, err := queryAll(ctx, q, scanToken, `SELECT `+tokenColumns+` FROM api_tokens WHERE org_id = ? AND user_id = ? ORDER BY created_at DESC, id`, orgID, userID)
	if err != nil {
		return nil, fmt.Errorf("list api tokens: %w", err)
	}
	return out, nil
}

// GetAPIToken returns one token of the organisation.
func (q *queries) GetAPIToken(ctx context.Context, orgID, id string) (slipway.APIToken, error) {
	t, err := scanToken(q.queryRow(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE org_id = ? AND id = ?`, orgID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, notFound("api token", id)
	}
	if err != nil {
		return t, fmt.Errorf("get api token: %w", err)
	}
	return t, nil
}

// DeleteAPIToken revokes a token.
func (q *queries) DeleteAPIToken(ctx context.Context, orgID, id string) error {
	return wrapErr("delete api token", q.execOne(ctx, "api token", id, `DELETE FROM api_tokens WHERE org_id = ? AND id = ?`, orgID, id))
}

// TouchAPIToken records when a token was last used. Not org-scoped: it
// follows LookupAPIToken on the request path.
func (q *queries) TouchAPIToken(ctx context.Context, id string, at time.Time) error {
	return wrapErr("touch api token", q.execOne(ctx, "api token", id, `UPDATE api_tokens SET last_used_at = ? WHERE id = ?`, q.tv(at), id))
}

// Session is a dashboard sign-in. Only a hash of the session id is stored.
// OrgID is the organisation currently selected, empty before one is.
type Session struct {
	IDHash    []byte
	UserID    string
	OrgID     string
	CSRFToken string
	ExpiresAt time.Time
	CreatedAt time.Time
}

// CreateSession stores a session.
func (q *queries) CreateSession(ctx context.Context, s Session) error {
	s.CreatedAt = orNow(s.CreatedAt)
	_, err := q.exec(ctx, `INSERT INTO sessions (id_hash, user_id, org_id, csrf_token, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		s.IDHash, s.UserID, s.OrgID, s.CSRFToken, q.tv(s.ExpiresAt), q.tv(s.CreatedAt))
	if isForeignKeyViolation(err) {
		return notFound("user", s.UserID)
	}
	return conflictOr(err, "create session", "session already exists")
}

// LookupSession returns the unexpired session with that id hash.
func (q *queries) LookupSession(ctx context.Context, idHash []byte) (Session, error) {
	var s Session
	err := q.queryRow(ctx, `SELECT id_hash, user_id, org_id, csrf_token, expires_at, created_at FROM sessions
WHERE id_hash = ? AND expires_at > ?`, idHash, q.tv(time.Now())).
		Scan(&s.IDHash, &s.UserID, &s.OrgID, &s.CSRFToken, timeCol{&s.ExpiresAt}, timeCol{&s.CreatedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return s, notFound("session", "")
	}
	if err != nil {
		return s, fmt.Errorf("lookup session: %w", err)
	}
	return s, nil
}

// DeleteSession signs a session out. Deleting a missing session is not an
// error.
func (q *queries) DeleteSession(ctx context.Context, idHash []byte) error {
	_, err := q.exec(ctx, `DELETE FROM sessions WHERE id_hash = ?`, idHash)
	return wrapErr("delete session", err)
}

// DeleteExpiredSessions removes sessions that expired before now and
// returns how many.
func (q *queries) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	res, err := q.exec(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, q.tv(now))
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), wrapErr("delete expired sessions", err)
}

// orNow returns t normalised, or the current time when t is zero.
func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return now()
	}
	return normTime(t)
}

// wrapErr adds context to unexpected errors and passes slipway errors
// (NotFound, Conflict, …) through unchanged so their message stays the
// user-facing one.
func wrapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := slipway.AsError(err); ok {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}
