package slipway

import (
	"net"
	"strings"
	"testing"
)

func TestNormalizeHost(t *testing.T) {
	for in, want := range map[string]string{
		"Example.COM":        "example.com",
		"example.com.":       "example.com",
		"example.com.:8443":  "example.com",
		"[::1]:8080":         "::1",
		"[::1]":              "::1",
		" LOCALHOST. ":       "localhost",
		"127.0.0.1:80":       "127.0.0.1",
		"web.example.com..":  "web.example.com",
		"xn--bcher-kva.test": "xn--bcher-kva.test",
	} {
		if got := NormalizeHost(in); got != want {
			t.Errorf("NormalizeHost(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzDomainName: whatever a user types as a domain, normalizing and
// validating never panics, and an accepted name is a plain DNS name that
// is already normalized and is no IP address.
func FuzzDomainName(f *testing.F) {
	for _, s := range []string{"shop.example.com", "SHOP.example.com.:443", "[::1]", "127.0.0.1", "2130706433", "0x7f.1",
		"a..b", "-a.b", "a-.b", "xn--bcher-kva.example", strings.Repeat("a", 64) + ".com", "a.b/c", "a b.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		n := NormalizeHost(raw)
		if NormalizeHost(n) != n {
			t.Fatalf("NormalizeHost is not idempotent on %q: %q then %q", raw, n, NormalizeHost(n))
		}
		if ValidateDomainName(n) != nil {
			return
		}
		if n != strings.ToLower(n) || len(n) > 253 || net.ParseIP(n) != nil || strings.ContainsAny(n, ":/[] ") {
			t.Fatalf("accepted %q (from %q)", n, raw)
		}
	})
}
