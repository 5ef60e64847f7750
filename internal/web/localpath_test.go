package web

import (
	"net/url"
	"strings"
	"testing"
)

// redirectAttacks are next= values seen used to leave a site after
// sign-in: protocol-relative, backslash, whitespace a browser strips,
// absolute URLs, and each of them percent-encoded (once and twice).
var redirectAttacks = []string{
	"//evil.example", "//evil.example/", "///evil.example", "/\\evil.example", "/\\/evil.example",
	"/\t/evil.example", "/%09/evil.example", "/%0a/evil.example", "/%0d/evil.example", "/\n/evil.example",
	"/%2F/evil.example", "/%2f%2fevil.example", "/%5Cevil.example", "/%5cevil.example", "/%252F%252Fevil.example",
	"/%25252F%25252Fevil.example", "https://evil.example/", "http:evil.example", "javascript:alert(1)",
	"evil.example", "", " /orgs", "/\x00/evil.example", "/%00/evil.example", "/\u3000/evil.example",
	"https:/evil.example", "/%", "/%zz",
}

func TestLocalPathRefusesEveryWayOffSite(t *testing.T) {
	for _, next := range redirectAttacks {
		if got := localPath(next); got != "" {
			t.Errorf("localPath(%q) = %q, want refused", next, got)
		}
	}
	for _, next := range []string{"/", "/orgs/org_1/apps", "/orgs/org_1/services/svc_1?tab=logs#x", "/orgs/org_1/apps?search=a%20b", "/a/%2F/b"} {
		if got := localPath(next); got != next {
			t.Errorf("localPath(%q) = %q, want it kept", next, got)
		}
	}
}

// FuzzLocalPath: whatever is accepted, a browser following it as a
// Location (after dropping the whitespace browsers drop and reading
// backslashes as slashes, in any decoded form) stays on this site.
func FuzzLocalPath(f *testing.F) {
	for _, s := range redirectAttacks {
		f.Add(s)
	}
	f.Add("/orgs/org_1/apps")
	base, _ := url.Parse("https://slipway.example/login")
	f.Fuzz(func(t *testing.T, next string) {
		got := localPath(next)
		if got == "" {
			return
		}
		if got != next {
			t.Fatalf("localPath(%q) changed it to %q", next, got)
		}
		for s, i := next, 0; i < 4; i++ {
			browser := strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(s)
			u, err := base.Parse(browser)
			if err != nil || u.Host != "slipway.example" || u.Scheme != "https" {
				t.Fatalf("accepted %q leads to %v (%v)", next, u, err)
			}
			dec, err := url.PathUnescape(s)
			if err != nil || dec == s {
				break
			}
			s = dec
		}
	})
}
