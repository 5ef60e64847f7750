// Package certs gives Slipway's HTTPS listener its certificates: from an
// ACME server (Let's Encrypt, or a private one such as step-ca or Pebble)
// through certmagic, or a certificate/key pair the operator supplies.
//
// ACME certificates are obtained when first asked for, by a TLS handshake
// or a plain-HTTP request for a name, and only for names the control plane
// says it serves (its own
// host and every host claim: generated Service hosts and verified custom
// domains), so nobody can make Slipway order certificates for names it
// does not route. Certificates, keys and ACME accounts are stored in the
// database, sealed with the master keyring, with ACME locks beside them:
// replicas on one PostgreSQL order each name once and all serve it.
// HTTP-01 challenges are answered by the HTTP listener (HTTPChallenges)
// and TLS-ALPN-01 by the HTTPS listener's TLS configuration.
package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/secrets"
	"slipway.dev/slipway/internal/store"
)

// Mode is how the HTTPS listener gets its certificates.
type Mode string

// Modes of --tls.
const (
	Off    Mode = "off"    // plain HTTP only (the embedded default)
	ACME   Mode = "acme"   // certificates from an ACME server
	Manual Mode = "manual" // one certificate/key pair from files
)

// ParseMode reads --tls.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case "", Off:
		return Off, nil
	case ACME, Manual:
		return m, nil
	}
	return "", fmt.Errorf("--tls %q: want off, acme or manual", s)
}

// Certificate states, as users and metrics see them.
const (
	StateIssuing  = "issuing"
	StateIssued   = "issued"
	StateRenewing = "renewing"
	StateFailed   = "failed"
)

// Options configure a Manager.
type Options struct {
	Mode Mode
	// DirectoryURL is the ACME directory (empty: Let's Encrypt
	// production); CARootFile a PEM bundle the ACME server's own TLS
	// certificate chains to (a private ACME server).
	DirectoryURL string
	CARootFile   string
	Email        string
	// HTTPPort and TLSPort are the ports of this server's HTTP and HTTPS
	// listeners: where an ACME server's validation requests arrive.
	HTTPPort, TLSPort int
	// CertFile and KeyFile are the pair served in Manual mode.
	CertFile, KeyFile string
	// Allowed says whether Slipway serves host (nil error) and may hold a
	// certificate for it.
	Allowed func(ctx context.Context, host string) error
	// RenewCheckInterval is how often certificates are checked for
	// renewal (0: certmagic's default, 10 minutes); tests shorten it.
	RenewCheckInterval time.Duration
	// RenewalWindowRatio is the share of a certificate's lifetime left
	// when it is renewed (0: certmagic's default, one third).
	RenewalWindowRatio float64
	// HandshakeWait is how long a TLS handshake for a name without a
	// certificate waits for it to be obtained (0: 20 seconds).
	HandshakeWait time.Duration
	Now           func() time.Time
	Logger        *slog.Logger
}

// Manager hands out certificates and records their state.
type Manager struct {
	opts   Options
	st     *store.Store
	log    *slog.Logger
	cache  *certmagic.Cache
	magic  *certmagic.Config
	issuer *certmagic.ACMEIssuer
	manual *tls.Certificate

	managing sync.Map // host → struct{}: asked to load or obtain once per process
}

// New starts a Manager for opts.Mode (Off returns nil, nil).
func New(ctx context.Context, st *store.Store, keys *secrets.Keyring, opts Options) (*Manager, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.HandshakeWait == 0 {
		opts.HandshakeWait = 20 * time.Second
	}
	m := &Manager{opts: opts, st: st, log: opts.Logger}
	switch opts.Mode {
	case Off, "":
		return nil, nil
	case Manual:
		if opts.CertFile == "" || opts.KeyFile == "" {
			return nil, errors.New("--tls manual needs --tls-cert and --tls-key (PEM files)")
		}
		pair, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--tls manual: load %s and %s: %w", opts.CertFile, opts.KeyFile, err)
		}
		m.manual = &pair
		return m, nil
	case ACME:
	default:
		return nil, fmt.Errorf("unknown TLS mode %q", opts.Mode)
	}
	if opts.Allowed == nil {
		return nil, errors.New("certs: ACME mode needs an Allowed decision")
	}
	var roots *x509.CertPool
	if opts.CARootFile != "" {
		pemBytes, err := os.ReadFile(opts.CARootFile)
		if err != nil {
			return nil, fmt.Errorf("--acme-ca-root: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("--acme-ca-root %s holds no PEM certificate", opts.CARootFile)
		}
	}
	storage := newDBStorage(st, keys, opts.Now)
	quiet := zap.NewNop() // what matters is reported through events, in slog
	var magic *certmagic.Config
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		RenewCheckInterval: opts.RenewCheckInterval,
		OCSPCheckInterval:  opts.RenewCheckInterval,
		Logger:             quiet,
	})
	magic = certmagic.New(m.cache, certmagic.Config{
		Storage:            storage,
		RenewalWindowRatio: opts.RenewalWindowRatio,
		OnEvent:            m.onEvent,
		Logger:             quiet,
	})
	directory := opts.DirectoryURL
	if directory == "" {
		directory = certmagic.LetsEncryptProductionCA
	}
	m.issuer = certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{
		CA:           directory,
		TestCA:       directory, // never fall back to another CA than the one named
		Email:        opts.Email,
		Agreed:       true,
		TrustedRoots: roots,
		// Slipway's own listeners answer the challenges: certmagic finds
		// these ports taken and serves the answers through
		// HTTPChallenges and the TLS configuration, from shared storage,
		// so the replica the ACME server reaches need not be the one
		// that ordered.
		AltHTTPPort:    opts.HTTPPort,
		AltTLSALPNPort: opts.TLSPort,
		Logger:         quiet,
	})
	magic.Issuers = []certmagic.Issuer{m.issuer}
	m.magic = magic
	return m, nil
}

// decide is the on-demand gate: only names Slipway serves get a
// certificate, and never an IP address or a single-label name, which no
// public ACME server issues for.
func (m *Manager) decide(ctx context.Context, name string) error {
	host := slipway.NormalizeHost(name)
	if net.ParseIP(host) != nil || !strings.Contains(host, ".") {
		return fmt.Errorf("no certificate for %q: not a DNS name", name)
	}
	return m.opts.Allowed(ctx, host)
}

// Serving says whether HTTPS has a certificate for host right now. When
// it has none yet and host may have one, getting it (from the shared
// storage, or an ACME order) starts in the background, so plain HTTP
// keeps serving meanwhile and redirects once the certificate is there.
func (m *Manager) Serving(ctx context.Context, host string) bool {
	if m.magic == nil {
		return false
	}
	if m.cached(host) {
		return true
	}
	m.manage(ctx, host)
	return false
}

func (m *Manager) cached(host string) bool { return len(m.cache.AllMatchingCertificates(host)) > 0 }

// manage starts getting host's certificate, once per process, when host
// may have one: certmagic loads it from the shared storage, or orders it
// and keeps it renewed. A failed order is retried on certmagic's own
// schedule (one minute, then longer, up to six hours apart), however many
// handshakes ask meanwhile, so a failing name never hammers the ACME
// server into rate-limiting the whole installation.
func (m *Manager) manage(ctx context.Context, host string) bool {
	if m.decide(ctx, host) != nil {
		return false
	}
	if _, started := m.managing.LoadOrStore(host, struct{}{}); !started {
		if err := m.magic.ManageAsync(context.WithoutCancel(ctx), []string{host}); err != nil {
			m.managing.Delete(host)
			m.log.Warn("manage certificate", "host", host, "err", err)
			return false
		}
	}
	return true
}

// getCertificate serves the cached certificate (and TLS-ALPN-01
// answers); for a served name without one yet, it starts getting it and
// waits up to HandshakeWait, so a first visitor usually sees the new
// certificate rather than an error.
func (m *Manager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	cert, err := m.magic.GetCertificate(hello)
	if err == nil {
		return cert, nil
	}
	host := slipway.NormalizeHost(hello.ServerName)
	ctx := hello.Context()
	if host == "" || !m.manage(ctx, host) {
		return nil, err
	}
	deadline := time.NewTimer(m.opts.HandshakeWait)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !m.cached(host) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, fmt.Errorf("no certificate for %s yet: it is being obtained", host)
		case <-tick.C:
		}
	}
	return m.magic.GetCertificate(hello)
}

// TLSConfig is the HTTPS listener's configuration (HTTP/2 and HTTP/1.1,
// and the TLS-ALPN-01 challenge in ACME mode).
func (m *Manager) TLSConfig() *tls.Config {
	if m.manual != nil {
		return &tls.Config{Certificates: []tls.Certificate{*m.manual}, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}
	}
	cfg := m.magic.TLSConfig()
	cfg.GetCertificate = m.getCertificate
	cfg.NextProtos = append([]string{"h2", "http/1.1"}, cfg.NextProtos...)
	cfg.MinVersion = tls.VersionTLS12
	return cfg
}

// HTTPChallenges answers ACME HTTP-01 challenges and passes every other
// request to next.
func (m *Manager) HTTPChallenges(next http.Handler) http.Handler {
	if m == nil || m.issuer == nil {
		return next
	}
	return m.issuer.HTTPChallengeHandler(next)
}

// Obtain gets (or loads) certificates for names now and keeps them
// renewed, instead of at their first handshake.
func (m *Manager) Obtain(ctx context.Context, names ...string) error {
	if m == nil || m.magic == nil {
		return nil
	}
	return m.magic.ManageAsync(ctx, names)
}

// ACMEEnabled says whether certificates come from an ACME server.
func (m *Manager) ACMEEnabled() bool { return m != nil && m.magic != nil }

// States lists every name's certificate state.
func (m *Manager) States(ctx context.Context) ([]store.CertificateState, error) {
	return m.st.ListCertificateStates(ctx)
}

// Stop ends certificate maintenance.
func (m *Manager) Stop() {
	if m != nil && m.cache != nil {
		m.cache.Stop()
	}
}

// onEvent records what certmagic reports per name, in the database (so
// every replica, the dashboard and the metrics agree) and in the log.
func (m *Manager) onEvent(ctx context.Context, event string, data map[string]any) error {
	name, _ := data["identifier"].(string)
	if name == "" {
		return nil
	}
	renewal, _ := data["renewal"].(bool)
	st := store.CertificateState{Host: name, UpdatedAt: m.opts.Now().UTC()}
	switch event {
	case "cert_obtaining":
		st.State = StateIssuing
		if renewal {
			st.State = StateRenewing
		}
	case "cert_obtained":
		st.State = StateIssued
		if path, ok := data["certificate_path"].(string); ok {
			if notAfter, err := m.notAfter(ctx, path); err == nil {
				st.NotAfter = &notAfter
			} else {
				m.log.Warn("read obtained certificate", "host", name, "err", err)
			}
		}
		m.log.Info("certificate obtained", "host", name, "renewal", renewal, "not_after", st.NotAfter)
	case "cert_failed":
		st.State = StateFailed
		err, _ := data["error"].(error)
		st.LastError = failureText(name, err)
		m.log.Warn("certificate failed", "host", name, "renewal", renewal, "err", err)
	default:
		return nil
	}
	if err := m.st.PutCertificateState(context.WithoutCancel(ctx), st); err != nil {
		m.log.Warn("record certificate state", "host", name, "err", err)
	}
	return nil
}

func (m *Manager) notAfter(ctx context.Context, key string) (time.Time, error) {
	chain, err := m.magic.Storage.Load(ctx, key)
	if err != nil {
		return time.Time{}, err
	}
	block, _ := pem.Decode(chain)
	if block == nil {
		return time.Time{}, errors.New("no PEM certificate")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return time.Time{}, err
	}
	return leaf.NotAfter.UTC(), nil
}

// failureText says what failed and how to fix it, for the domain's page.
func failureText(host string, err error) string {
	why := "unknown error"
	if err != nil {
		why = err.Error()
	}
	if len(why) > 500 {
		why = why[:500] + "…"
	}
	return fmt.Sprintf("the ACME server did not issue a certificate for %s: %s. Fix: make sure %s resolves to this server and that ports 80 and 443 reach Slipway from the internet; "+
		"Slipway retries with back-off (one minute, then longer, up to six hours apart) and keeps serving the current certificate (or plain HTTP) meanwhile", host, why, host)
}
