// Package pgtest gives tests their own PostgreSQL database. Set
// SLIPWAY_TEST_POSTGRES_URL to a server URL (any existing database, usually
// "postgres"); each call to URL creates a uniquely named database on that
// server and drops it when the test ends, so packages testing in parallel
// never see each other's rows. Without the variable, tests that need
// PostgreSQL are skipped.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// EnvVar names the variable holding the server URL.
const EnvVar = "SLIPWAY_TEST_POSTGRES_URL"

// URL returns the URL of a fresh, empty database, or skips the test when
// no server is configured.
func URL(t testing.TB) string {
	t.Helper()
	server := os.Getenv(EnvVar)
	if server == "" {
		t.Skip("PostgreSQL not configured: set " + EnvVar + " to run this test against PostgreSQL")
	}
	u, err := url.Parse(server)
	if err != nil {
		// Do not print the URL: it may carry a password.
		t.Fatalf("pgtest: %s is not a valid URL", EnvVar)
	}
	admin, err := sql.Open("pgx", server)
	if err != nil {
		t.Fatalf("pgtest: open server: %v", err)
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("pgtest: random name: %v", err)
	}
	name := "slipway_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The name is generated above from hex digits only, so it is safe to
	// splice into the statement (identifiers cannot be bound parameters).
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}
