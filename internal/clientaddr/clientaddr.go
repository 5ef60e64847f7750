// Package clientaddr decides which address a request came from, for limits
// kept per client (sign-in throttling). The TCP peer is the answer unless
// the operator named that peer as a trusted reverse proxy
// (`--trusted-proxies`); then X-Forwarded-For is read from the right,
// skipping trusted proxies, and the first address not trusted is the
// client. Entries further left were written by the client itself and are
// never believed.
package clientaddr

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver finds a request's client address. The zero Resolver trusts no
// proxy.
type Resolver struct {
	trusted []netip.Prefix
}

// Parse reads a comma-separated list of trusted proxies, each a CIDR
// prefix or a single address. An empty list trusts none.
func Parse(list string) (Resolver, error) {
	var r Resolver
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			a, aerr := netip.ParseAddr(item)
			if aerr != nil {
				return Resolver{}, fmt.Errorf("trusted proxy %q is neither an address nor a CIDR prefix (for example 10.0.0.0/8 or 127.0.0.1)", item)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		r.trusted = append(r.trusted, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked())
	}
	return r, nil
}

// String lists the trusted proxies as Parse reads them.
func (r Resolver) String() string {
	parts := make([]string, len(r.trusted))
	for i, p := range r.trusted {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

// TrustsPeer says whether req's TCP peer is a trusted proxy, whose
// forwarded headers may be believed.
func (r Resolver) TrustsPeer(req *http.Request) bool {
	peer, ok := parseHostPort(req.RemoteAddr)
	return ok && r.isTrusted(peer)
}

func (r Resolver) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Of returns req's client address, or "" when the peer address cannot be
// read (a request not from a network connection).
func (r Resolver) Of(req *http.Request) string {
	peer, ok := parseHostPort(req.RemoteAddr)
	if !ok {
		return ""
	}
	if !r.isTrusted(peer) {
		return peer.String()
	}
	return r.fromForwarded(peer, req.Header.Values("X-Forwarded-For")).String()
}

// fromForwarded walks the X-Forwarded-For entries (all header lines, in
// order) from the right. The peer is trusted; each trusted hop may have
// appended the address it saw. The first untrusted address is the client;
// an unparsable entry stops the walk at the last address known good, since
// anything left of it cannot be attributed.
func (r Resolver) fromForwarded(peer netip.Addr, headers []string) netip.Addr {
	var hops []string
	for _, h := range headers {
		hops = append(hops, strings.Split(h, ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return client
		}
		client = a.Unmap().WithZone("")
		if !r.isTrusted(client) {
			return client
		}
	}
	return client
}

func parseHostPort(s string) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		host = s
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}
