package store

import (
	"context"
	"log/slog"
)

// OpenAtVersion opens a store with its schema migrated only up to version,
// to build the "old database" an upgrade test starts from.
func OpenAtVersion(ctx context.Context, databaseURL, dataDir string, version int) (*Store, error) {
	return open(ctx, databaseURL, dataDir, slog.New(slog.DiscardHandler), version)
}

// LatestSchemaVersion is the highest migration version of the dialect.
func LatestSchemaVersion(dialect string) int {
	ms, err := migrationsFor(dialect, 0)
	if err != nil || len(ms) == 0 {
		return -1
	}
	return ms[len(ms)-1].version
}

// MigrationCount is how many migrations the dialect has. Versions are
// given out per change, so they may have gaps until every change is merged.
func MigrationCount(dialect string) int {
	ms, _ := migrationsFor(dialect, 0)
	return len(ms)
}
