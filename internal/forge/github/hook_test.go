package github

import (
	"encoding/base64"
	"errors"
	"net/http"
	"path/filepath"
	"testing"

	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/forgetest"
)

func base64URL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func signHook(h http.Header, body []byte, secret string) {
	h.Set("X-Hub-Signature-256", Sign(body, secret))
}

func TestHookParser(t *testing.T) {
	cases := forgetest.LoadHookCases(t, filepath.Join("testdata", "hooks"))
	forgetest.TestHookParser(t, New(Options{}), signHook, cases, filepath.Join("testdata", "golden", "hooks"))
}

func TestHookSignatureEdgeCases(t *testing.T) {
	p := New(Options{})
	body := []byte(`{"zen":"Keep it logically awesome."}`)
	h := http.Header{"X-Github-Event": {"ping"}}
	for name, sig := range map[string]string{
		"sha1 only":   "sha1=0123",
		"not hex":     "sha256=zz",
		"truncated":   Sign(body, "s")[:20],
		"upper bound": Sign(body, "s") + "00",
	} {
		h.Set("X-Hub-Signature-256", sig)
		if _, err := p.ParseHook(h, body, "s"); !errors.Is(err, forge.ErrBadSignature) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// An App without a webhook secret accepts nothing, even "signed" with "".
	h.Set("X-Hub-Signature-256", Sign(body, ""))
	if _, err := p.ParseHook(h, body, ""); !errors.Is(err, forge.ErrBadSignature) {
		t.Errorf("empty secret: %v", err)
	}
	h.Set("X-Hub-Signature-256", Sign(body, "s"))
	if _, err := p.ParseHook(h, body, "s"); !errors.Is(err, forge.ErrIgnored) {
		t.Errorf("ping: %v", err)
	}
	// A signed but malformed push is an error, neither ignored nor accepted.
	bad := []byte(`{"ref": 7}`)
	h = http.Header{"X-Github-Event": {"push"}, "X-Hub-Signature-256": {Sign(bad, "s")}}
	if _, err := p.ParseHook(h, bad, "s"); err == nil || errors.Is(err, forge.ErrIgnored) {
		t.Errorf("malformed push: %v", err)
	}
}

func TestPushChangedFilesCompleteness(t *testing.T) {
	p := New(Options{})
	for name, want := range map[string]bool{
		"push_branch": true, "push_branch_20_commits": false, "push_forced": false,
		"push_branch_created": false, "push_tag": false,
	} {
		cases := forgetest.LoadHookCases(t, filepath.Join("testdata", "hooks"))
		for _, c := range cases {
			if c.Name != name {
				continue
			}
			signHook(c.Header, c.Body, "s")
			ev, err := p.ParseHook(c.Header, c.Body, "s")
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if ev.Push.ChangedFilesComplete != want {
				t.Errorf("%s: complete = %v, want %v", name, ev.Push.ChangedFilesComplete, want)
			}
			if ev.Repo.ID != "186853002" {
				t.Errorf("%s: repo id %q", name, ev.Repo.ID)
			}
		}
	}
}

func FuzzParseHook(f *testing.F) {
	cases := forgetest.LoadHookCases(f, filepath.Join("testdata", "hooks"))
	forgetest.FuzzHookParser(f, New(Options{}), signHook, cases)
}
