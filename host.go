package slipway

import (
	"net"
	"strings"
)

// NormalizeHost is the one spelling of a host name that every host
// comparison uses (the router, the control plane's dispatch, host
// claims): lower case, without a port, a trailing dot or the brackets of
// an IPv6 literal. Anything that compares host names compares these, so
// "Example.COM.:443" and "example.com" cannot be told apart anywhere.
func NormalizeHost(host string) string {
	// Strip until nothing changes, so odd input ("[x].", " [::1] ", "[:")
	// has one spelling too and normalizing twice is normalizing once.
	for {
		next := strings.TrimSpace(host)
		if h, _, err := net.SplitHostPort(next); err == nil {
			next = h
		}
		next = strings.ToLower(strings.TrimRight(strings.TrimSpace(strings.Trim(next, "[]")), "."))
		if next == host {
			return host
		}
		host = next
	}
}

// DomainWithin reports whether host is domain itself or a name under it
// (both normalized).
func DomainWithin(host, domain string) bool {
	return host == domain || strings.HasSuffix(host, "."+domain)
}

// ValidateDomainName checks that a normalized name is a DNS host name a
// Service may claim: labels of letters, digits and inner dashes, at most
// 63 characters each and 253 in all, at least two labels, and not an IP
// address in any spelling (no numeric last label, which also refuses
// "2130706433" and "0x7f.1").
func ValidateDomainName(name string) error {
	if name == "" {
		return Errorf(ECodeInvalid, "the domain is empty")
	}
	if net.ParseIP(name) != nil {
		return Errorf(ECodeInvalid, "%q is an IP address; a domain must be a DNS name", name).
			WithFix("point a DNS name at this server and add that name")
	}
	if len(name) > 253 {
		return Errorf(ECodeInvalid, "the domain %q is longer than 253 characters", name)
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return Errorf(ECodeInvalid, "the domain %q needs at least two labels (like app.example.com)", name)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return Errorf(ECodeInvalid, "the domain %q has an empty label or one longer than 63 characters", name)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(l)-1
			if !ok {
				return Errorf(ECodeInvalid, "the domain %q may contain only letters, digits, dots and inner dashes", name)
			}
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" || strings.HasPrefix(last, "0x") {
		return Errorf(ECodeInvalid, "the domain %q ends in a number, so it would be read as an IP address", name)
	}
	return nil
}

// DashedLabel lower-cases name and turns every character that is not a
// letter or digit into a dash.
func DashedLabel(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

// HostLabelFor derives an organisation's host label from its name: the
// dashed name with runs of dashes collapsed, at most 40 characters; "org"
// when nothing is left.
func HostLabelFor(name string) string {
	label := DashedLabel(name)
	for strings.Contains(label, "--") {
		label = strings.ReplaceAll(label, "--", "-")
	}
	label = strings.Trim(label, "-")
	if len(label) > 40 {
		label = strings.TrimRight(label[:40], "-")
	}
	if label == "" {
		return "org"
	}
	return label
}
