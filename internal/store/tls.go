package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// TLS storage is a small key/value space for the ACME client (certificates,
// keys, account data; values arrive sealed), named locks that keep
// replicas from ordering one certificate twice, and the per-name
// certificate state that users and metrics see. Nothing here is
// organisation-scoped: certificates belong to the installation, and the
// names they cover are decided by the host claims.

// TLSEntry is one stored key.
type TLSEntry struct {
	Key      string
	Size     int64
	Modified time.Time
}

// PutTLS writes value at key, replacing what was there.
func (q *queries) PutTLS(ctx context.Context, key string, value []byte, modified time.Time) error {
	if _, err := q.exec(ctx, `INSERT INTO tls_storage (key, value, modified_at) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, modified_at = excluded.modified_at`,
		key, value, q.tv(modified)); err != nil {
		return fmt.Errorf("store tls %s: %w", key, err)
	}
	return nil
}

// GetTLS reads the value at key; not_found when there is none.
func (q *queries) GetTLS(ctx context.Context, key string) ([]byte, time.Time, error) {
	var value []byte
	var modified time.Time
	err := q.queryRow(ctx, `SELECT value, modified_at FROM tls_storage WHERE key = ?`, key).Scan(&value, timeCol{&modified})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, time.Time{}, notFound("tls key", key)
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("load tls %s: %w", key, err)
	}
	return value, modified, nil
}

// DeleteTLS removes key and every key below it (key + "/…").
func (q *queries) DeleteTLS(ctx context.Context, key string) error {
	prefix := key + "/"
	if _, err := q.exec(ctx, `DELETE FROM tls_storage WHERE key = ? OR substr(key, 1, ?) = ?`, key, len(prefix), prefix); err != nil {
		return fmt.Errorf("delete tls %s: %w", key, err)
	}
	return nil
}

// ListTLS lists the keys below prefix ("" lists all), in key order.
func (q *queries) ListTLS(ctx context.Context, prefix string) ([]TLSEntry, error) {
	if prefix != "" {
		prefix += "/"
	}
	rows, err := q.query(ctx, `SELECT key, length(value), modified_at FROM tls_storage WHERE substr(key, 1, ?) = ? ORDER BY key`, len(prefix), prefix)
	if err != nil {
		return nil, fmt.Errorf("list tls %s: %w", prefix, err)
	}
	defer rows.Close()
	var out []TLSEntry
	for rows.Next() {
		var e TLSEntry
		if err := rows.Scan(&e.Key, &e.Size, timeCol{&e.Modified}); err != nil {
			return nil, fmt.Errorf("list tls %s: %w", prefix, err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// TryTLSLock takes the lock name for holder until expires, if nobody holds
// it or its holder let it expire (now is past its expiry). It reports
// whether holder has the lock; taking a lock one already holds extends it.
func (q *queries) TryTLSLock(ctx context.Context, name, holder string, now, expires time.Time) (bool, error) {
	if _, err := q.exec(ctx, `INSERT INTO tls_locks (name, holder, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE tls_locks.holder = excluded.holder OR tls_locks.expires_at < ?`,
		name, holder, q.tv(expires), q.tv(now)); err != nil {
		return false, fmt.Errorf("lock %s: %w", name, err)
	}
	var held string
	if err := q.queryRow(ctx, `SELECT holder FROM tls_locks WHERE name = ?`, name).Scan(&held); err != nil {
		return false, fmt.Errorf("lock %s: %w", name, err)
	}
	return held == holder, nil
}

// ReleaseTLSLock drops holder's lock name (another holder's stays).
func (q *queries) ReleaseTLSLock(ctx context.Context, name, holder string) error {
	if _, err := q.exec(ctx, `DELETE FROM tls_locks WHERE name = ? AND holder = ?`, name, holder); err != nil {
		return fmt.Errorf("unlock %s: %w", name, err)
	}
	return nil
}

// CertificateState is what is known of one name's certificate.
type CertificateState struct {
	Host      string     `json:"host"`
	State     string     `json:"state"` // issuing, issued, renewing, failed
	NotAfter  *time.Time `json:"not_after,omitempty"`
	LastError string     `json:"last_error,omitempty"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// PutCertificateState records c (replacing the name's earlier state). A
// zero NotAfter keeps the one recorded: a failed renewal does not forget
// until when the current certificate still serves.
func (q *queries) PutCertificateState(ctx context.Context, c CertificateState) error {
	if _, err := q.exec(ctx, `INSERT INTO tls_certificates (host, state, not_after, last_error, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (host) DO UPDATE SET state = excluded.state, last_error = excluded.last_error, updated_at = excluded.updated_at,
		not_after = COALESCE(excluded.not_after, tls_certificates.not_after)`,
		c.Host, c.State, q.tvp(c.NotAfter), c.LastError, q.tv(c.UpdatedAt)); err != nil {
		return fmt.Errorf("record certificate state of %s: %w", c.Host, err)
	}
	return nil
}

// ListCertificateStates lists every name's certificate state, by name.
func (q *queries) ListCertificateStates(ctx context.Context) ([]CertificateState, error) {
	return q.listCertificateStates(ctx, `SELECT host, state, not_after, last_error, updated_at FROM tls_certificates ORDER BY host`)
}

func (q *queries) listCertificateStates(ctx context.Context, query string, args ...any) ([]CertificateState, error) {
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list certificate states: %w", err)
	}
	defer rows.Close()
	var out []CertificateState
	for rows.Next() {
		var c CertificateState
		if err := rows.Scan(&c.Host, &c.State, nullTimeCol{&c.NotAfter}, &c.LastError, timeCol{&c.UpdatedAt}); err != nil {
			return nil, fmt.Errorf("list certificate states: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ListOrgCertificateStates lists the certificate states of the names the
// organisation's Services hold.
func (q *queries) ListOrgCertificateStates(ctx context.Context, orgID string) ([]CertificateState, error) {
	return q.listCertificateStates(ctx, `SELECT c.host, c.state, c.not_after, c.last_error, c.updated_at FROM tls_certificates c
		JOIN host_claims h ON h.host = c.host WHERE h.org_id = ? ORDER BY c.host`, orgID)
}
