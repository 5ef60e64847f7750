package service

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/netpolicy"
)

// The HTTP proof of a custom domain: while it is pending, Slipway's own
// HTTP listener answers ChallengePath+<token> for that domain (and only
// with that domain's token), so pointing the domain at Slipway proves
// control without touching DNS TXT records. A name under a domain that
// another organisation has verified is proven by DNS only: pointing a
// subdomain at Slipway is something the parent's operator, not the
// subdomain's claimant, may have done (a wildcard record, say).

// ChallengePath is where the HTTP proof of a pending domain is served.
const ChallengePath = "/.well-known/slipway-challenge/"

// maxChallengeBody bounds what is read of a proof response.
const maxChallengeBody = 1024

// challengeURL is the URL the verifier fetches for domain.
func (s *Service) challengeURL(domain, token string) string {
	host := domain
	if port := s.cfg.DomainCheckHTTPPort; port != 0 && port != 80 {
		host = net.JoinHostPort(domain, strconv.Itoa(port))
	}
	return "http://" + host + ChallengePath + token
}

// ChallengeAnswer returns the body to serve for a request of
// ChallengePath+token with Host host: the token itself, when host is a
// pending domain with that token.
func (s *Service) ChallengeAnswer(ctx context.Context, host, token string) (string, bool) {
	if token == "" || strings.Contains(token, "/") {
		return "", false
	}
	pending, err := s.store.IsPendingDomainToken(ctx, slipway.NormalizeHost(host), token)
	if err != nil {
		s.log.Warn("domain challenge lookup", "err", err)
		return "", false
	}
	return token, pending
}

// underOtherOrganisation reports whether domain lies under a custom
// domain verified by another organisation.
func (s *Service) underOtherOrganisation(ctx context.Context, orgID, domain string) (bool, error) {
	for parent := domain; ; {
		i := strings.IndexByte(parent, '.')
		if i < 0 {
			return false, nil
		}
		parent = parent[i+1:]
		c, err := s.store.GetHostClaim(ctx, parent)
		switch {
		case slipway.ErrorCodeOf(err) == slipway.ECodeNotFound:
			continue
		case err != nil:
			return false, err
		case c.Kind == slipway.HostCustom && c.OrgID != orgID:
			return true, nil
		}
	}
}

// pointAtRecord is the DNS record that sends a custom domain here: a CNAME
// to the public URL's host, or A/AAAA when that host is an address.
func (s *Service) pointAtRecord() *DomainRecord {
	u, err := url.Parse(s.cfg.PublicURL)
	if err != nil || u.Hostname() == "" {
		return nil
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		kind := "A"
		if ip.Is6() {
			kind = "AAAA"
		}
		return &DomainRecord{Type: kind, Name: "<domain>", Value: ip.String()}
	}
	return &DomainRecord{Type: "CNAME", Name: "<domain>", Value: host}
}

// httpProofServed fetches the proof URL of domain, resolved through the
// installation's resolver and dialled under its network policy, never
// following a redirect, and says why not when it does not answer body.
func (s *Service) httpProofServed(ctx context.Context, domain, proofURL, body string) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	lookup := s.cfg.LookupIP
	if lookup == nil {
		lookup = net.DefaultResolver.LookupIPAddr
	}
	addrs, err := lookup(ctx, domain)
	if err != nil || len(addrs) == 0 {
		return false, "no A or AAAA record points " + domain + " at this server"
	}
	ip, ok := netip.AddrFromSlice(addrs[0].IP)
	if !ok {
		return false, "the address of " + domain + " is unreadable"
	}
	ip = ip.Unmap()
	if err := s.cfg.Network.CheckIP(ip); err != nil {
		return false, domain + " resolves to an address this server may not connect to"
	}
	port := s.cfg.DomainCheckHTTPPort
	if port == 0 {
		port = 80
	}
	target := net.JoinHostPort(ip.String(), strconv.Itoa(port))
	transport := s.cfg.Network.Transport()
	transport.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return s.cfg.Network.DialContext(ctx, network, target)
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, proofURL, nil)
	if err != nil {
		return false, "the proof URL is not valid"
	}
	resp, err := client.Do(req)
	if err != nil {
		if _, refused := netpolicy.Refusal(err); refused {
			return false, domain + " resolves to an address this server may not connect to"
		}
		return false, "fetching " + proofURL + " failed; check that " + domain + " points at this server"
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(io.LimitReader(resp.Body, maxChallengeBody))
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Sprintf("%s answered HTTP %d", proofURL, resp.StatusCode)
	}
	if strings.TrimSpace(string(got)) != body {
		return false, proofURL + " does not answer this domain's token"
	}
	return true, ""
}
