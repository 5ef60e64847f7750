package store

import (
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"slipway.dev/slipway"
)

// Times are stored as TIMESTAMPTZ on PostgreSQL and as INTEGER unix
// nanoseconds on SQLite: integers sort and compare correctly, where
// RFC 3339 text of varying width would not.

// tv converts a time to the dialect's column value.
func (q *queries) tv(t time.Time) any {
	t = normTime(t)
	if q.dialect == DialectSQLite {
		return t.UnixNano()
	}
	return t
}

// tvp is tv for optional times: nil stays NULL.
func (q *queries) tvp(t *time.Time) any {
	if t == nil {
		return nil
	}
	return q.tv(*t)
}

// timeCol scans a time column of either dialect.
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(src any) error {
	t, ok, err := scanTime(src)
	if err != nil {
		return err
	}
	if !ok {
		*c.t = time.Time{}
		return nil
	}
	*c.t = t
	return nil
}

// nullTimeCol scans a nullable time column into a *time.Time.
type nullTimeCol struct{ t **time.Time }

func (c nullTimeCol) Scan(src any) error {
	t, ok, err := scanTime(src)
	if err != nil {
		return err
	}
	if !ok {
		*c.t = nil
		return nil
	}
	*c.t = &t
	return nil
}

func scanTime(src any) (time.Time, bool, error) {
	switch v := src.(type) {
	case nil:
		return time.Time{}, false, nil
	case int64:
		return time.Unix(0, v).UTC(), true, nil
	case time.Time:
		return v.UTC(), true, nil
	case string:
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("scan time %q: %w", v, err)
		}
		return t.UTC(), true, nil
	}
	return time.Time{}, false, fmt.Errorf("scan time: unsupported type %T", src)
}

// jsonCol scans a TEXT column holding JSON into v; empty text leaves v as is.
type jsonCol struct{ v any }

func (c jsonCol) Scan(src any) error {
	var b []byte
	switch s := src.(type) {
	case nil:
		return nil
	case string:
		b = []byte(s)
	case []byte:
		b = s
	default:
		return fmt.Errorf("scan json: unsupported type %T", src)
	}
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, c.v); err != nil {
		return fmt.Errorf("scan json: %w", err)
	}
	return nil
}

// jsonText encodes v for a JSON TEXT column. The values are plain Go data
// (maps, slices, structs of strings) that always marshal.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("store: marshal %T: %v", v, err))
	}
	return string(b)
}

// strCol scans a nullable TEXT column into a string ("" for NULL).
type strCol struct{ s *string }

func (c strCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.s = ""
	case string:
		*c.s = v
	case []byte:
		*c.s = string(v)
	default:
		return fmt.Errorf("scan string: unsupported type %T", src)
	}
	return nil
}

// nullable stores "" as NULL, for optional references and keys that must
// not collide in unique indexes.
func nullable(s string) driver.Value {
	if s == "" {
		return nil
	}
	return s
}

// bytesOrEmpty keeps a NOT NULL blob column from receiving NULL.
func bytesOrEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// isUniqueViolation reports a unique or primary-key constraint violation
// on either dialect.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// isForeignKeyViolation reports a foreign-key violation on either dialect.
func isForeignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23503"
	}
	return err != nil && strings.Contains(err.Error(), "FOREIGN KEY constraint failed")
}

// conflictOr maps a unique violation to a readable conflict error and wraps
// anything else with context.
func conflictOr(err error, what string, conflict string, args ...any) error {
	if err == nil {
		return nil
	}
	if isUniqueViolation(err) {
		return slipway.Errorf(slipway.ECodeConflict, conflict, args...)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// notFound is slipway.NotFound; kept as one function so every "missing or
// foreign" answer is built the same way.
func notFound(kind, id string) error { return slipway.NotFound(kind, id) }

// likePattern builds a case-insensitive substring LIKE pattern with the
// wildcards escaped (used with ESCAPE '\').
func likePattern(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(strings.ToLower(s)) + "%"
}

// placeholders returns "?, ?, …" for n arguments.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}
