// Package storetest opens what most in-process tests start from: an
// embedded (SQLite) store in a temporary directory and a master keyring
// beside it, both closed when the test ends.
package storetest

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"slipway.dev/slipway/internal/secrets"
	"slipway.dev/slipway/internal/store"
)

// Open returns a fresh SQLite store and keyring in a temporary directory.
func Open(t testing.TB) (*store.Store, *secrets.Keyring) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), "", dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	keys, err := secrets.LoadOrCreate(filepath.Join(dir, "master.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	return st, keys
}
