// Package forgetest is the contract suite every forge provider passes. A
// provider's tests call the Test* functions with its implementation and its
// recorded payloads; the suite checks the behaviour the rest of Slipway
// relies on (signatures verified, tampering refused, normalized output
// stable against golden files, pagination complete and duplicate-free).
package forgetest

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
)

// Update rewrites golden files instead of comparing against them:
// go test ./internal/forge/... -args -update
var update = flag.Bool("update", false, "rewrite golden files")

// HookCase is one recorded webhook delivery.
type HookCase struct {
	Name   string      // also the golden file name: testdata/<Name>.golden.json
	Header http.Header // provider headers (event type, delivery id), without the signature
	Body   []byte      // the raw payload
}

// Signer adds a valid signature (or token, or basic-auth secret) for secret
// to the header of a delivery of body.
type Signer func(h http.Header, body []byte, secret string)

// LoadHookCases reads every testdata/hooks/<name>.json payload with its
// testdata/hooks/<name>.headers file (one "Key: Value" per line).
func LoadHookCases(t testing.TB, dir string) []HookCase {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no hook payloads in %s (err=%v)", dir, err)
	}
	var cases []HookCase
	for _, p := range paths {
		body, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(p[:len(p)-len(".json")])
		h := http.Header{}
		if raw, err := os.ReadFile(p[:len(p)-len(".json")] + ".headers"); err == nil {
			for _, line := range strings.Split(string(raw), "\n") {
				if k, v, ok := strings.Cut(line, ":"); ok {
					h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
				}
			}
		}
		cases = append(cases, HookCase{Name: name, Header: h, Body: body})
	}
	return cases
}

// TestHookParser checks a HookParser against recorded deliveries:
//   - a correctly signed delivery parses, and its normalized event (or the
//     word "ignored") matches goldenDir/<name>.json;
//   - a missing signature, a wrong secret and a tampered body are refused
//     with forge.ErrBadSignature, before any parsing.
func TestHookParser(t *testing.T, p forge.HookParser, sign Signer, cases []HookCase, goldenDir string) {
	t.Helper()
	const secret = "contract-secret-0123456789"
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			h := c.Header.Clone()
			sign(h, c.Body, secret)
			ev, err := p.ParseHook(h, c.Body, secret)
			var got any
			switch {
			case errors.Is(err, forge.ErrIgnored):
				got = map[string]string{"verdict": "ignored"}
			case err != nil:
				t.Fatalf("ParseHook: %v", err)
			default:
				got = ev
			}
			CompareGolden(t, filepath.Join(goldenDir, c.Name+".json"), got)

			if _, err := p.ParseHook(c.Header.Clone(), c.Body, secret); !errors.Is(err, forge.ErrBadSignature) {
				t.Errorf("unsigned delivery: got %v, want ErrBadSignature", err)
			}
			h2 := c.Header.Clone()
			sign(h2, c.Body, "some-other-secret")
			if _, err := p.ParseHook(h2, c.Body, secret); !errors.Is(err, forge.ErrBadSignature) {
				t.Errorf("wrong secret: got %v, want ErrBadSignature", err)
			}
			if signsBody(sign) {
				tampered := append([]byte{}, c.Body...)
				tampered = append(tampered, ' ')
				h3 := c.Header.Clone()
				sign(h3, c.Body, secret)
				if _, err := p.ParseHook(h3, tampered, secret); !errors.Is(err, forge.ErrBadSignature) {
					t.Errorf("tampered body: got %v, want ErrBadSignature", err)
				}
			}
		})
	}
}

// signsBody reports whether a signer's output depends on the body (HMAC
// schemes) rather than only on the secret (GitLab's token, Azure DevOps'
// basic auth), for which tampering cannot be detected by design.
func signsBody(sign Signer) bool {
	a, b := http.Header{}, http.Header{}
	sign(a, []byte("a"), "s")
	sign(b, []byte("b"), "s")
	for k := range a {
		if a.Get(k) != b.Get(k) {
			return true
		}
	}
	return false
}

// FuzzHookParser is the body of a provider's fuzz target: whatever the
// bytes, ParseHook returns an event or an error and never panics, and an
// unsigned delivery is never accepted.
func FuzzHookParser(f *testing.F, p forge.HookParser, sign Signer, cases []HookCase) {
	for _, c := range cases {
		f.Add(c.Body)
	}
	header := http.Header{}
	if len(cases) > 0 {
		header = cases[0].Header
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		h := header.Clone()
		sign(h, body, "fuzz-secret")
		_, _ = p.ParseHook(h, body, "fuzz-secret")
		if _, err := p.ParseHook(header.Clone(), body, "fuzz-secret"); err == nil {
			t.Fatal("unsigned delivery accepted")
		}
	})
}

// TestRepoLister pages through every repository and checks the listing is
// complete (want ids all present), duplicate-free, and that every repo has
// an immutable id, a full name and a clone URL; then that GetRepo finds
// each by id and refuses an unknown id with ECodeRepoNotVisible.
func TestRepoLister(t *testing.T, l forge.RepoLister, c *forge.Conn, wantIDs []string, unknownID string) {
	t.Helper()
	ctx := context.Background()
	seen := map[string]forge.Repo{}
	page := 1
	for i := 0; page != 0; i++ {
		if i > 1000 {
			t.Fatal("pagination does not end")
		}
		res, err := l.ListRepos(ctx, c, forge.ListOptions{Page: page, PerPage: 2})
		if err != nil {
			t.Fatalf("ListRepos page %d: %v", page, err)
		}
		for _, r := range res.Repos {
			if r.ID == "" || r.FullName == "" || r.CloneURL == "" {
				t.Errorf("incomplete repo %+v", r)
			}
			if _, dup := seen[r.ID]; dup {
				t.Errorf("repo %s listed twice", r.ID)
			}
			seen[r.ID] = r
		}
		page = res.NextPage
	}
	for _, id := range wantIDs {
		r, ok := seen[id]
		if !ok {
			t.Errorf("repo %s missing from listing", id)
			continue
		}
		got, err := l.GetRepo(ctx, c, id)
		if err != nil || got.ID != id || got.FullName != r.FullName {
			t.Errorf("GetRepo(%s) = %+v, %v", id, got, err)
		}
	}
	if _, err := l.GetRepo(ctx, c, unknownID); slipway.ErrorCodeOf(err) != slipway.ECodeRepoNotVisible {
		t.Errorf("GetRepo(unknown) error = %v, want code %s", err, slipway.ECodeRepoNotVisible)
	}
}

// CompareGolden compares v, marshalled as indented JSON, with the golden
// file at path, or rewrites the file under -update.
func CompareGolden(t testing.TB, path string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden file %s: %v (run with -args -update to create it)", path, err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs from golden:\n--- got\n%s\n--- want\n%s", filepath.Base(path), got, want)
	}
}
