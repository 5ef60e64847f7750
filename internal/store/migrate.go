package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// migrationFiles holds the numbered schema migrations, one directory per
// dialect. A migration is never edited once released: changes are new files.
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// migration is one numbered SQL file.
type migration struct {
	version int
	name    string
	sql     string
}

// migrationsFor lists the dialect's migrations in version order. upTo, when
// positive, stops after that version (tests use it to build old schemas).
func migrationsFor(dialect string, upTo int) ([]migration, error) {
	dir := path.Join("migrations", dialect)
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return nil, fmt.Errorf("read %s migrations: %w", dialect, err)
	}
	var out []migration
	for _, e := range entries {
		prefix, _, ok := strings.Cut(e.Name(), "_")
		if !ok {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql", e.Name())
		}
		v, err := strconv.Atoi(prefix)
		if err != nil {
			return nil, fmt.Errorf("migration %s: bad version: %w", e.Name(), err)
		}
		if upTo > 0 && v > upTo {
			continue
		}
		b, err := fs.ReadFile(migrationFiles, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share a version", out[i-1].name, out[i].name)
		}
	}
	return out, nil
}

// migrateTo applies pending migrations up to version upTo (0: all), each in
// its own transaction together with its schema_migrations row, so a crash
// leaves either the whole migration or none of it. On PostgreSQL an advisory
// lock serialises replicas starting at the same time.
func (s *Store) migrateTo(ctx context.Context, upTo int) error {
	err := s.InTx(ctx, func(tx *Tx) error {
		if err := tx.lockMigrations(ctx); err != nil {
			return err
		}
		_, err := tx.exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
    version     BIGINT PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  TEXT NOT NULL
)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	ms, err := migrationsFor(s.dialect, upTo)
	if err != nil {
		return err
	}
	for _, m := range ms {
		applied := false
		err := s.InTx(ctx, func(tx *Tx) error {
			if err := tx.lockMigrations(ctx); err != nil {
				return err
			}
			n, err := tx.count(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.version)
			if err != nil {
				return fmt.Errorf("read schema_migrations: %w", err)
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.name, err)
			}
			if _, err := tx.exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, now().Format("2006-01-02T15:04:05.000000Z")); err != nil {
				return fmt.Errorf("record migration %s: %w", m.name, err)
			}
			applied = true
			return nil
		})
		if err != nil {
			return err
		}
		if applied {
			s.logger.InfoContext(ctx, "applied schema migration", "dialect", s.dialect, "migration", m.name)
		}
	}
	return nil
}

// SchemaVersion returns the highest applied migration version.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// lockMigrations serialises schema changes across PostgreSQL replicas
// starting together, until the transaction ends. SQLite needs nothing: its
// write transactions are already exclusive.
func (t *Tx) lockMigrations(ctx context.Context) error {
	if t.dialect != DialectPostgres {
		return nil
	}
	// An arbitrary constant naming "Slipway schema migrations".
	if _, err := t.exec(ctx, `SELECT pg_advisory_xact_lock(7301163904)`); err != nil {
		return fmt.Errorf("lock migrations: %w", err)
	}
	return nil
}
