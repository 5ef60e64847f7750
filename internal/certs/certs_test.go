package certs_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"slipway.dev/slipway/internal/certs"
	"slipway.dev/slipway/internal/store"
	"slipway.dev/slipway/internal/testenv/storetest"
)

// fakeACME is an ACME server that answers every new account with a
// rateLimited problem (RFC 8555 §6.7), as Let's Encrypt does once an
// installation ordered too often; Pebble has no rate limits.
type fakeACME struct {
	srv      *httptest.Server
	accounts atomic.Int64
	rootFile string
}

func startFakeACME(t *testing.T) *fakeACME {
	f := &fakeACME{}
	mux := http.NewServeMux()
	mux.HandleFunc("/dir", func(w http.ResponseWriter, r *http.Request) {
		base := "https://" + r.Host
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"newNonce": base + "/nonce", "newAccount": base + "/account", "newOrder": base + "/order"})
	})
	mux.HandleFunc("/nonce", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Replay-Nonce", fmt.Sprintf("n%d", time.Now().UnixNano()))
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("/account", func(w http.ResponseWriter, r *http.Request) {
		f.accounts.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Replay-Nonce", fmt.Sprintf("n%d", time.Now().UnixNano()))
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusTooManyRequests)
		json.NewEncoder(w).Encode(map[string]any{"type": "urn:ietf:params:acme:error:rateLimited", "detail": "too many new registrations from this address", "status": 429})
	})
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	f.rootFile = filepath.Join(t.TempDir(), "root.pem")
	os.WriteFile(f.rootFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw}), 0o600)
	return f
}

func newManager(t *testing.T, opts certs.Options) (*certs.Manager, *store.Store) {
	t.Helper()
	st, keys := storetest.Open(t)
	opts.Logger = slog.New(slog.DiscardHandler)
	m, err := certs.New(context.Background(), st, keys, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	return m, st
}

// TestRateLimitedACMEBacksOff is a burst of handshakes for a name while
// the ACME server rate-limits: one attempt reaches it, the others wait
// out the back-off instead of deepening the limit, and the name's state
// says what happened and when Slipway tries again.
func TestRateLimitedACMEBacksOff(t *testing.T) {
	acme := startFakeACME(t)
	m, _ := newManager(t, certs.Options{Mode: certs.ACME, DirectoryURL: acme.srv.URL + "/dir", CARootFile: acme.rootFile,
		Allowed: func(context.Context, string) error { return nil }, HandshakeWait: 500 * time.Millisecond})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", m.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	for i := 0; i < 10; i++ {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", ln.Addr().String(), &tls.Config{ServerName: "shop.example.test", InsecureSkipVerify: true})
		if err == nil {
			c.Close()
			t.Fatal("a handshake succeeded without a certificate")
		}
	}
	if n := acme.accounts.Load(); n < 1 || n > 2 {
		t.Fatalf("%d attempts reached the rate-limiting ACME server for 10 handshakes, want 1 (2 with a client retry)", n)
	}
	states, err := m.States(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 1 || states[0].State != certs.StateFailed || !strings.Contains(states[0].LastError, "rateLimited") ||
		!strings.Contains(states[0].LastError, "Fix:") {
		t.Fatalf("states: %+v", states)
	}
}

// TestManualCertificateMustLoad is bad input for --tls manual: a missing
// pair is refused at start with what to give.
func TestManualCertificateMustLoad(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, _ := storetest.Open(t)
	if _, err := certs.New(ctx, st, nil, certs.Options{Mode: certs.Manual}); err == nil || !strings.Contains(err.Error(), "--tls-cert") {
		t.Fatalf("no pair: %v", err)
	}
	if _, err := certs.New(ctx, st, nil, certs.Options{Mode: certs.Manual, CertFile: filepath.Join(dir, "none.pem"), KeyFile: filepath.Join(dir, "none.key")}); err == nil || !strings.Contains(err.Error(), "none.pem") {
		t.Fatalf("missing files: %v", err)
	}
	if _, err := certs.ParseMode("https"); err == nil {
		t.Fatal("--tls https accepted")
	}
}
