// Package store is Slipway's storage layer: every SQL statement of the
// product lives here. One code base serves SQLite (the embedded default,
// via modernc.org/sqlite) and PostgreSQL (via pgx's database/sql driver):
// queries are written with ? placeholders and rebound for PostgreSQL in one
// place, and schema differences are confined to the per-dialect embedded
// migrations.
//
// Every method that reads or writes tenant data takes the organisation id
// and filters on it, so a row of another organisation is indistinguishable
// from a missing one (slipway.NotFound). The few methods that are not
// org-scoped say so and exist for the request paths that must first find
// the organisation (API tokens, sessions, webhooks, deploy hooks, the
// router) or for background work that spans organisations.
//
// Paginated lists take a Page and return (items, total, error), total being
// the number of matching rows regardless of the page. Small bounded lists
// take no Page and return (items, error).
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver
)

// Dialect names.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// Store is an open database. Its query methods run outside any explicit
// transaction; use InTx to group several.
type Store struct {
	queries
	logger *slog.Logger
}

// Tx is a transaction. It exposes the same query methods as Store.
type Tx struct {
	queries
	tx *sql.Tx
}

// SQLTx returns the underlying transaction, so the job queue can insert
// jobs atomically with the change that causes them.
func (t *Tx) SQLTx() *sql.Tx { return t.tx }

// dbtx is what both *sql.DB and *sql.Tx offer.
type dbtx interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// queries holds every query method; Store and Tx embed it.
type queries struct {
	db      dbtx
	dialect string
	// root is the pool when db is not already a transaction; methods that
	// need several statements to be atomic open their own transaction on it.
	root *sql.DB
}

// Open opens (creating if needed) the database and applies pending
// migrations. An empty databaseURL, or "sqlite:" followed by a path, selects
// SQLite (at dataDir/slipway.db when no path is given); a postgres:// or
// postgresql:// URL selects PostgreSQL.
func Open(ctx context.Context, databaseURL, dataDir string, logger *slog.Logger) (*Store, error) {
	return open(ctx, databaseURL, dataDir, logger, 0)
}

// open is Open with the schema brought up to version upTo (0: latest).
func open(ctx context.Context, databaseURL, dataDir string, logger *slog.Logger, upTo int) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var (
		db      *sql.DB
		dialect string
		err     error
	)
	switch {
	case databaseURL == "" || strings.HasPrefix(databaseURL, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(databaseURL, "sqlite:"), "//")
		if path == "" {
			if dataDir == "" {
				return nil, errors.New("open store: no database URL and no data directory")
			}
			if err := os.MkdirAll(dataDir, 0o700); err != nil {
				return nil, fmt.Errorf("open store: create data directory: %w", err)
			}
			path = filepath.Join(dataDir, "slipway.db")
		}
		dialect = DialectSQLite
		db, err = sql.Open("sqlite", sqliteDSN(path))
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		dialect = DialectPostgres
		db, err = sql.Open("pgx", databaseURL)
	default:
		// Never echo the URL: it may carry a password.
		return nil, errors.New("open store: unsupported database URL scheme (want sqlite: or postgres://)")
	}
	if err != nil {
		return nil, fmt.Errorf("open %s store: %w", dialect, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s store: %w", dialect, err)
	}
	s := &Store{queries: queries{db: db, dialect: dialect, root: db}, logger: logger}
	if err := s.migrateTo(ctx, upTo); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// sqliteDSN passes pragmas through the DSN so every pooled connection gets
// them. synchronous=FULL makes a commit durable before it returns: an
// acknowledged webhook must survive a power cut, not just a crash. Write
// transactions begin IMMEDIATE so a reader never has to upgrade to a writer
// mid-transaction (which fails at once with SQLITE_BUSY instead of waiting).
func sqliteDSN(path string) string {
	v := url.Values{}
	v.Add("_pragma", "foreign_keys(1)")
	v.Add("_pragma", "journal_mode(WAL)")
	v.Add("_pragma", "synchronous(FULL)")
	v.Add("_pragma", "busy_timeout(10000)")
	v.Set("_txlock", "immediate")
	return "file:" + path + "?" + v.Encode()
}

// Dialect returns "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect }

// DB returns the connection pool (for the job queue's driver).
func (s *Store) DB() *sql.DB { return s.root }

// Close closes the pool.
func (s *Store) Close() error { return s.root.Close() }

// InTx runs fn in a transaction, committing when it returns nil and rolling
// back otherwise (including on panic).
func (s *Store) InTx(ctx context.Context, fn func(tx *Tx) error) (err error) {
	sqlTx, err := s.root.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = sqlTx.Rollback()
			panic(p)
		}
		if err != nil {
			_ = sqlTx.Rollback()
		}
	}()
	if err = fn(&Tx{queries: queries{db: sqlTx, dialect: s.dialect}, tx: sqlTx}); err != nil {
		return err
	}
	if err = sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// atomic runs fn in a transaction: the current one when q is already
// inside a transaction, a new one otherwise.
func (q *queries) atomic(ctx context.Context, fn func(q *queries) error) (err error) {
	if q.root == nil {
		return fn(q)
	}
	sqlTx, err := q.root.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = sqlTx.Rollback()
			panic(p)
		}
		if err != nil {
			_ = sqlTx.Rollback()
		}
	}()
	if err = fn(&queries{db: sqlTx, dialect: q.dialect}); err != nil {
		return err
	}
	if err = sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// rebind turns ? placeholders into $1, $2, … for PostgreSQL. Queries in
// this package never contain a literal question mark.
func (q *queries) rebind(query string) string {
	if q.dialect != DialectPostgres || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

func (q *queries) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return q.db.ExecContext(ctx, q.rebind(query), args...)
}

func (q *queries) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return q.db.QueryContext(ctx, q.rebind(query), args...)
}

// rowScanner is what the scan functions read a row from: *sql.Row or
// *sql.Rows.
type rowScanner = interface{ Scan(...any) error }

// queryAll runs query and reads every row with scan. Errors come back
// unwrapped, for the caller to name the call.
func queryAll[T any](ctx context.Context, q *queries, scan func(rowScanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func (q *queries) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return q.db.QueryRowContext(ctx, q.rebind(query), args...)
}

// count runs a SELECT COUNT(*) query.
func (q *queries) count(ctx context.Context, query string, args ...any) (int, error) {
	var n int
	if err := q.queryRow(ctx, query, args...).Scan(&n); err != nil {
		return 0, err
	}
	return n, nil
}

// execOne runs an UPDATE or DELETE that must touch exactly one row and
// reports NotFound when it touched none.
func (q *queries) execOne(ctx context.Context, kind, id, query string, args ...any) error {
	res, err := q.exec(ctx, query, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound(kind, id)
	}
	return nil
}

// Page selects a window of a list. Limit defaults to 50 and is capped at 200.
type Page struct {
	Limit  int
	Offset int
}

// Page size bounds.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 200
)

func (p Page) window() (limit, offset int) {
	limit, offset = p.Limit, p.Offset
	if limit <= 0 {
		limit = DefaultPageLimit
	}
	if limit > MaxPageLimit {
		limit = MaxPageLimit
	}
	if offset < 0 {
		offset = 0
	}
	return limit, offset
}

// now is the store's clock reading: UTC, at microsecond precision, which is
// what PostgreSQL keeps, so both dialects return exactly what was written.
func now() time.Time { return normTime(time.Now()) }

func normTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func normTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	n := normTime(*t)
	return &n
}
