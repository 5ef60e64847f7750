package server

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/certs"
	"slipway.dev/slipway/internal/secrets"
	"slipway.dev/slipway/internal/store"
)

// startCerts starts the certificate manager when TLS is on. An ACME
// server's validation requests arrive on this server's own listeners, so
// their ports are the challenge ports.
func (s *Server) startCerts(ctx context.Context, st *store.Store, keys *secrets.Keyring) error {
	if s.tlsListener == nil {
		return nil
	}
	opts := s.cfg.TLS
	opts.HTTPPort = portOf(s.listener.Addr())
	opts.TLSPort = portOf(s.tlsListener.Addr())
	opts.Allowed = s.servesHost
	opts.Logger = s.log
	m, err := certs.New(ctx, st, keys, opts)
	if err != nil {
		return err
	}
	s.certs = m
	if m.ACMEEnabled() && s.servesHost(ctx, s.controlHost) == nil {
		// The control plane's own certificate is wanted before anyone
		// asks: webhooks and OAuth callbacks arrive at it.
		if err := m.Obtain(ctx, s.controlHost); err != nil {
			s.log.Warn("obtain the control plane's certificate", "host", s.controlHost, "err", err)
		}
	}
	return nil
}

// servesHost is the one rule for which names get a certificate: the
// control plane's public host and every active host claim (generated
// Service hosts and verified custom domains). Pending domains, names
// nobody holds and IP addresses get none.
func (s *Server) servesHost(ctx context.Context, host string) error {
	host = slipway.NormalizeHost(host)
	if net.ParseIP(host) != nil {
		return fmt.Errorf("%s is an IP address", host)
	}
	if host == s.controlHost {
		return nil
	}
	claim, err := s.Store.GetHostClaim(ctx, host)
	if err != nil {
		return fmt.Errorf("no Service holds %s: %w", host, err)
	}
	if claim.State != slipway.HostActive {
		return fmt.Errorf("%s is %s, not served", host, claim.State)
	}
	return nil
}

// plainHandler is what the HTTP listener serves: with TLS on, ACME
// HTTP-01 answers, and a redirect to HTTPS for every name HTTPS serves;
// names without a certificate (an IP address, localhost, a pending
// domain proving itself) stay on plain HTTP.
func (s *Server) plainHandler(next http.Handler) http.Handler {
	if s.certs == nil {
		return next
	}
	httpsPort := portOf(s.tlsListener.Addr())
	redirect := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := slipway.NormalizeHost(r.Host)
		if !s.httpsServes(r.Context(), host) {
			next.ServeHTTP(w, r)
			return
		}
		target := "https://" + host
		if httpsPort != 443 {
			target = "https://" + net.JoinHostPort(host, strconv.Itoa(httpsPort))
		}
		w.Header().Set("Connection", "close")
		http.Redirect(w, r, target+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
	return s.certs.HTTPChallenges(redirect)
}

// httpsServes says whether HTTPS has a certificate for host now.
func (s *Server) httpsServes(ctx context.Context, host string) bool {
	if s.certs.ACMEEnabled() {
		return s.certs.Serving(ctx, host)
	}
	cfg := s.certs.TLSConfig()
	for _, c := range cfg.Certificates {
		leaf := c.Leaf
		if leaf == nil && len(c.Certificate) > 0 {
			leaf, _ = x509.ParseCertificate(c.Certificate[0])
		}
		if leaf != nil && leaf.VerifyHostname(host) == nil {
			return true
		}
	}
	return false
}

// listenAddrs are the addresses tenant code may reach: the listeners.
func (s *Server) listenAddrs() []string {
	out := []string{s.listener.Addr().String()}
	if s.tlsListener != nil {
		out = append(out, s.tlsListener.Addr().String())
	}
	return out
}

func portOf(a net.Addr) int {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.Port
	}
	return 0
}

// HTTPSAddr is the HTTPS listener's address ("" when TLS is off).
func (s *Server) HTTPSAddr() string {
	if s.tlsListener == nil {
		return ""
	}
	return s.tlsListener.Addr().String()
}

// Certificates lists every name's certificate state (nil when ACME is off).
func (s *Server) Certificates(ctx context.Context) ([]store.CertificateState, error) {
	if !s.certs.ACMEEnabled() {
		return nil, nil
	}
	return s.certs.States(ctx)
}
