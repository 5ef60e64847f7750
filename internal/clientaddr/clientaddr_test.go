package clientaddr

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientAddress(t *testing.T) {
	proxies, err := Parse("10.0.0.0/8, 127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		resolver Resolver
		peer     string
		xff      []string
		want     string
	}{
		{"no proxy trusted: the peer, whatever the header says", Resolver{}, "198.51.100.7:5000", []string{"203.0.113.1"}, "198.51.100.7"},
		{"untrusted peer forging a header", proxies, "198.51.100.7:5000", []string{"127.0.0.1"}, "198.51.100.7"},
		{"trusted proxy: its appended entry", proxies, "127.0.0.1:5000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"client-written entries left of the proxy's are ignored", proxies, "127.0.0.1:5000", []string{"1.2.3.4, 203.0.113.9"}, "203.0.113.9"},
		{"a chain of trusted proxies is skipped from the right", proxies, "127.0.0.1:5000", []string{"203.0.113.9, 10.1.2.3", "10.9.9.9"}, "203.0.113.9"},
		{"a client claiming to be a trusted proxy gains nothing", proxies, "127.0.0.1:5000", []string{"10.0.0.1"}, "10.0.0.1"},
		{"garbage in the header stops at the last good hop", proxies, "127.0.0.1:5000", []string{"evil, 10.2.2.2"}, "10.2.2.2"},
		{"trusted peer without a header is the client", proxies, "127.0.0.1:5000", nil, "127.0.0.1"},
		{"IPv4-mapped IPv6 peer matches an IPv4 prefix", proxies, "[::ffff:127.0.0.1]:5000", []string{"2001:db8::1"}, "2001:db8::1"},
		{"IPv6 peer", Resolver{}, "[::1]:5000", nil, "::1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/login", nil)
			r.RemoteAddr = c.peer
			for _, h := range c.xff {
				r.Header.Add("X-Forwarded-For", h)
			}
			if got := c.resolver.Of(r); got != c.want {
				t.Errorf("Of = %q, want %q", got, c.want)
			}
		})
	}
}

func TestParseRefusesNonsense(t *testing.T) {
	for _, bad := range []string{"example.com", "10.0.0.0/33", "300.1.1.1"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	r, err := Parse("")
	if err != nil || len(r.trusted) != 0 {
		t.Errorf("empty list: %v %v", r, err)
	}
}

// FuzzForwardedFor: whatever a client sends, the answer is an address
// that is either the peer or an untrusted hop (or, when every hop is
// trusted, the leftmost good one), never something that is not an address.
func FuzzForwardedFor(f *testing.F) {
	for _, s := range []string{"203.0.113.9", "1.2.3.4, 10.0.0.1", "evil", ",,,", "::1%eth0", "[::1]", "10.0.0.1 , 127.0.0.1"} {
		f.Add(s)
	}
	proxies, _ := Parse("10.0.0.0/8,127.0.0.1")
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "127.0.0.1:1"
		r.Header.Set("X-Forwarded-For", header)
		got := proxies.Of(r)
		if _, err := netip.ParseAddr(got); err != nil {
			t.Fatalf("client address %q for header %q is not an address", got, header)
		}
		r.RemoteAddr = "192.0.2.1:1"
		if got := proxies.Of(r); got != "192.0.2.1" {
			t.Fatalf("untrusted peer: %q for header %q", got, header)
		}
	})
}
