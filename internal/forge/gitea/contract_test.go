package gitea_test

import (
	"testing"

	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/forgetest"
	"slipway.dev/slipway/internal/forge/gitea"
)

func forgetestRepoLister(t *testing.T, p *gitea.Provider, c *forge.Conn, ids []string, unknown string) {
	t.Helper()
	forgetest.TestRepoLister(t, p, c, ids, unknown)
}

func TestHookParserContract(t *testing.T) {
	cases := forgetest.LoadHookCases(t, "testdata/hooks")
	forgetest.TestHookParser(t, gitea.New(), gitea.Sign, cases, "testdata/golden")
}

func FuzzParseHook(f *testing.F) {
	cases := forgetest.LoadHookCases(f, "testdata/hooks")
	forgetest.FuzzHookParser(f, gitea.New(), gitea.Sign, cases)
}

func TestForgejoSignatureHeader(t *testing.T) {
	cases := forgetest.LoadHookCases(t, "testdata/hooks")
	for _, c := range cases {
		if c.Name != "push_forgejo" {
			continue
		}
		h := c.Header.Clone()
		gitea.Sign(h, c.Body, "s3cret")
		h.Set("X-Forgejo-Signature", h.Get("X-Gitea-Signature"))
		h.Del("X-Gitea-Signature")
		ev, err := gitea.New().ParseHook(h, c.Body, "s3cret")
		if err != nil || ev.Kind != "push" || ev.DeliveryID != c.Header.Get("X-Forgejo-Delivery") {
			t.Fatalf("Forgejo delivery: %+v, %v", ev, err)
		}
		return
	}
	t.Fatal("no push_forgejo case")
}
