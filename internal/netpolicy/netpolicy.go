// Package netpolicy decides where Slipway may connect when it acts for a
// tenant: generic Git URLs, provider base and internal URLs, OAuth token
// URLs, outgoing notifications. A tenant chooses those URLs, so without a
// check they would make Slipway fetch loopback services, the cloud
// metadata address or a file on its own disk.
//
// The policy is a value handed to the code that dials, never a global. It
// is enforced where the address is final: a net.Dialer Control function
// sees the IP actually being connected to, after DNS and for every
// redirect, so an answer that changes between a check and the connection
// cannot slip through. URL checks up front only give an early, clear error
// for literal addresses and schemes. git is pointed at a loopback CONNECT
// proxy that dials through the same check (see Git).
package netpolicy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"slipway.dev/slipway"
)

// Policy says which destinations are allowed. The zero value is the
// default of an installation: https and ssh to public addresses only.
type Policy struct {
	// AllowPrivate also allows plain http and loopback, link-local,
	// private and other non-public ranges: the installation setting
	// --allow-private-networks, for a forge on the operator's own network.
	AllowPrivate bool
	// AllowFiles allows file:// URLs and local paths as Git sources. No
	// installation setting turns it on: git would read the host's disk as
	// root. Only tests that serve repositories from a directory set it.
	AllowFiles bool
}

// fix is the advice attached to every refusal.
const fix = "use a public https:// or ssh:// address; an installation whose forge is on its own network " +
	"can start `slipway serve` with --allow-private-networks (or SLIPWAY_ALLOW_PRIVATE_NETWORKS=1)"

func refuse(format string, args ...any) *slipway.Error {
	return slipway.Errorf(slipway.ECodeAddressNotAllowed, format, args...).WithFix(fix)
}

// CheckURL refuses a URL (or scp-like git address, user@host:path) whose
// scheme the policy does not allow, or whose host is a literal address it
// does not allow (any spelling: IPv4-mapped IPv6, decimal, octal, hex).
// Host names pass here; their addresses are checked when dialled.
func (p Policy) CheckURL(raw string) error {
	raw = strings.TrimSpace(raw)
	scheme, host, err := splitURL(raw)
	if err != nil {
		return err
	}
	switch scheme {
	case "https", "ssh", "git+ssh", "ssh+git":
	case "http":
		if !p.AllowPrivate {
			return refuse("plain http (%s) is not allowed: credentials and code would travel unencrypted", redact(raw))
		}
	case "file":
		if !p.AllowFiles {
			return refuse("%s is a local file path; Slipway fetches only from a Git server", redact(raw))
		}
		return nil
	default:
		return refuse("the scheme %q is not allowed (https or ssh)", scheme)
	}
	if host == "" {
		return refuse("%s has no host", redact(raw))
	}
	if ip, ok := ParseHostIP(host); ok {
		return p.CheckIP(ip)
	}
	return nil
}

// splitURL returns the lowercased scheme and the host (without port or
// brackets) of a URL or of an scp-like git address. A local path is
// reported as scheme "file".
func splitURL(raw string) (scheme, host string, err error) {
	if raw == "" {
		return "", "", refuse("the URL is empty")
	}
	if strings.Contains(raw, "://") {
		u, perr := url.Parse(raw)
		if perr != nil {
			return "", "", slipway.Errorf(slipway.ECodeInvalid, "the URL is not valid").WithFix("use https://host/owner/repo.git or ssh://git@host/owner/repo.git")
		}
		return strings.ToLower(u.Scheme), u.Hostname(), nil
	}
	// git treats "host:path" as ssh only when no slash comes before the
	// colon; anything else is a local path.
	colon := strings.IndexByte(raw, ':')
	if colon <= 0 || strings.ContainsRune(raw[:colon], '/') {
		return "file", "", nil
	}
	if strings.HasPrefix(raw[colon:], "::") { // git's <transport>::<address> form (ext::, fd::)
		return strings.ToLower(raw[:colon]), "", nil
	}
	host = raw[:colon]
	if at := strings.LastIndexByte(host, '@'); at >= 0 {
		host = host[at+1:]
	}
	return "ssh", strings.Trim(host, "[]"), nil
}

// redact drops userinfo so a refusal never repeats a credential.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		u.User = nil
		return u.String()
	}
	return raw
}

// ParseHostIP reads host as an IP address the way C resolvers (and so git
// and curl) do: standard forms, IPv6 with a zone, and the legacy IPv4
// forms inet_aton accepts ("2130706433", "0177.0.0.1", "0x7f.1").
func ParseHostIP(host string) (netip.Addr, bool) {
	host = strings.Trim(host, "[]")
	if a, err := netip.ParseAddr(host); err == nil {
		return a.WithZone("").Unmap(), true
	}
	return parseLegacyIPv4(host)
}

func parseLegacyIPv4(host string) (netip.Addr, bool) {
	parts := strings.Split(strings.TrimSuffix(host, "."), ".")
	if len(parts) == 0 || len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, part := range parts {
		if part == "" {
			return netip.Addr{}, false
		}
		v, err := strconv.ParseUint(part, 0, 32) // base 0: 0x hex, 0 octal, else decimal
		if err != nil {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	// The last part fills every byte the earlier ones left.
	var n uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 0xff {
			return netip.Addr{}, false
		}
		n |= v << (8 * (3 - uint(i)))
	}
	last := vals[len(vals)-1]
	if last >= 1<<(8*(5-uint(len(vals)))) && len(vals) > 1 || last > 0xffffffff {
		return netip.Addr{}, false
	}
	n |= last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

// nonPublic lists ranges that are not the public internet beyond what
// netip's predicates cover.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("fec0::/10"),       // deprecated site-local
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2001::/23"),       // IETF protocol assignments (Teredo etc.)
	netip.MustParsePrefix("ff00::/8"),        // multicast
	netip.MustParsePrefix("::/128"),          // unspecified
	netip.MustParsePrefix("::ffff:0:0:0/96"), // IPv4-translated
}

// CheckIP refuses an address the policy does not allow.
func (p Policy) CheckIP(ip netip.Addr) error {
	ip = ip.WithZone("").Unmap()
	if p.AllowPrivate {
		return nil
	}
	if !ip.IsValid() {
		return refuse("the address is not valid")
	}
	// NAT64 and 6to4 addresses carry an IPv4 address that decides where
	// the packet ends up.
	if inner, ok := embeddedIPv4(ip); ok {
		if err := p.CheckIP(inner); err != nil {
			return refuse("%s embeds %s, which is not allowed", ip, inner)
		}
	}
	kind := ""
	switch {
	case ip.IsLoopback():
		kind = "loopback"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		kind = "link-local (cloud metadata lives here)"
	case ip.IsPrivate():
		kind = "private-network"
	case ip.IsUnspecified():
		kind = "unspecified"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		kind = "multicast"
	}
	if kind == "" {
		for _, pfx := range nonPublic {
			if pfx.Contains(ip) {
				kind = "reserved"
				break
			}
		}
	}
	if kind != "" {
		return refuse("%s is a %s address; Slipway does not connect there for a tenant", ip, kind)
	}
	return nil
}

var (
	nat64   = netip.MustParsePrefix("64:ff9b::/96")
	sixTo4  = netip.MustParsePrefix("2002::/16")
	compat4 = netip.MustParsePrefix("::/96") // deprecated IPv4-compatible
)

func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	if !ip.Is6() {
		return netip.Addr{}, false
	}
	b := ip.As16()
	switch {
	case nat64.Contains(ip), compat4.Contains(ip) && ip != netip.IPv6Unspecified() && ip != netip.IPv6Loopback():
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	case sixTo4.Contains(ip):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	}
	return netip.Addr{}, false
}

// Control is a net.Dialer Control function: it runs after DNS, on the
// address the socket is about to connect to.
func (p Policy) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return refuse("cannot read the address %q being dialled", address)
	}
	return p.CheckIP(ap.Addr())
}

// Dialer returns a dialer that connects only where p allows.
func (p Policy) Dialer() *net.Dialer {
	return &net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second, Control: p.Control}
}

// HTTPClient returns a client for tenant-chosen URLs: no proxy from the
// environment, every connection through Dialer, every redirect through
// CheckURL (and then through Dialer again).
func (p Policy) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: p.Transport(),
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			return p.CheckURL(req.URL.String())
		},
	}
}

// Transport returns an http.Transport dialling through Dialer.
func (p Policy) Transport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil, // HTTPS_PROXY would decide where we connect, not the policy
		DialContext:           p.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          50,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// Refusal returns the policy's refusal inside err (from a dial, a
// redirect or a URL check), if there is one.
func Refusal(err error) (*slipway.Error, bool) {
	e, ok := slipway.AsError(err)
	if ok && e.Code == slipway.ECodeAddressNotAllowed {
		return e, true
	}
	return nil, false
}

// DialContext dials address through p's dialer. A host written in a legacy
// IPv4 form ("2130706433") is dialled as the address C resolvers read it
// as, so Go and git agree on where it points and the check sees it.
func (p Policy) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if host, port, err := net.SplitHostPort(address); err == nil {
		if ip, ok := ParseHostIP(host); ok {
			address = net.JoinHostPort(ip.String(), port)
		}
	}
	c, err := p.Dialer().DialContext(ctx, network, address)
	if err != nil {
		if e, ok := Refusal(err); ok {
			return nil, e
		}
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	return c, nil
}
