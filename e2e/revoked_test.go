package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/testenv/giteatest"
)

// TestRevokedTokenNeedsAttention: a token revoked on the provider after
// connecting turns the integration "needs attention" on the next check,
// with the reason and the fix; a deploy that needs it fails with that
// reason; another integration keeps working.
func TestRevokedTokenNeedsAttention(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	g := giteatest.Shared(t)
	user := giteatest.UniqueName("rev")
	pass := g.CreateUser(t, user)
	token := g.CreateToken(t, user, pass, "slipway")
	other := g.CreateToken(t, user, pass, "slipway-other")
	repoID := g.CreateRepo(t, user, "app", true)
	g.PushCommit(t, user, pass, user+"/app", "main", appSource, "add the app")

	srv := startServer(t, filepath.Join(t.TempDir(), "data"), "", -1)
	defer srv.Shutdown(ctx2())
	c := api{t: t, base: srv.URL(), token: srv.Bootstrap.Token}
	var integ, second slipway.Integration
	c.must("POST", "/api/v1/integrations", map[string]any{"provider": "gitea", "base_url": g.URL(), "token": token, "label": "revoked"}, &integ)
	c.must("POST", "/api/v1/integrations", map[string]any{"provider": "gitea", "base_url": g.URL(), "token": other, "label": "healthy"}, &second)
	c.must("POST", "/api/v1/applications", map[string]any{"name": "rev"}, nil)
	var svc slipway.Service
	c.must("POST", "/api/v1/environments/rev%2Fproduction/services", map[string]any{"name": "web",
		"source": map[string]any{"integration_id": integ.ID, "repo_id": fmt.Sprint(repoID), "branch": "main"}}, &svc)

	var first slipway.Deployment
	c.must("POST", "/api/v1/services/"+svc.ID+"/deploy", map[string]any{}, &first)
	c.waitLive(first.ID, 5*time.Minute)

	g.DeleteToken(t, user, pass, "slipway")

	var diag struct {
		Integration slipway.Integration
		Problems    []struct{ Code, Message, Fix string }
	}
	c.must("POST", "/api/v1/integrations/"+integ.ID+"/check", nil, &diag)
	if diag.Integration.Status != slipway.IntegrationNeedsAttention || len(diag.Problems) == 0 ||
		diag.Problems[0].Code != string(slipway.ECodeCredentialsInvalid) || diag.Problems[0].Fix == "" {
		t.Fatalf("check after revocation: %+v", diag)
	}
	var got slipway.Integration
	c.must("GET", "/api/v1/integrations/"+integ.ID, nil, &got)
	if got.Status != slipway.IntegrationNeedsAttention || got.StatusReason == "" || got.StatusFix == "" {
		t.Fatalf("integration after revocation: %+v", got)
	}

	// A deploy that needs the credential is refused with that reason.
	code, body := c.do("POST", "/api/v1/services/"+svc.ID+"/deploy", map[string]any{}, nil)
	if code < 400 || !strings.Contains(string(body), "credentials_invalid") && !strings.Contains(string(body), "needs attention") {
		t.Fatalf("deploy with a revoked token: %d %s", code, body)
	}
	// A redeploy (pinned to the live SHA, so it needs no provider call to
	// be queued) fails in the pipeline with the reason and the fix, and the
	// live release keeps serving. The reason carries the fix after " — ".
	var d slipway.Deployment
	c.must("POST", "/api/v1/services/"+svc.ID+"/redeploy", map[string]any{"no_cache": true}, &d)
	waitFor(t, "the redeploy to fail", time.Minute, func() bool {
		c.must("GET", "/api/v1/deployments/"+d.ID, nil, &d)
		return d.Status == slipway.DeployFailed
	})
	if !strings.Contains(d.Error, "needs attention") || !strings.Contains(d.Error, "revoked") || !strings.Contains(d.Error, " — ") {
		t.Errorf("failed redeploy's reason: %q", d.Error)
	}
	if _, body, _ := get(srv.URL(), c.host(svc.ID, slipway.HostGenerated)); body != "hello from "+first.CommitSHA+"\n" {
		t.Errorf("the live release stopped serving: %q", body)
	}
	// Nothing else breaks: the other integration still lists its repositories.
	c.must("POST", "/api/v1/integrations/"+second.ID+"/check", nil, &diag)
	if diag.Integration.Status != slipway.IntegrationConnected || len(diag.Problems) != 0 {
		t.Fatalf("healthy integration after the other was revoked: %+v", diag)
	}
	var repos struct{ Items []struct{ ID string } }
	waitFor(t, "the healthy integration's picker", 10*time.Second, func() bool {
		c.must("GET", "/api/v1/integrations/"+second.ID+"/repos", nil, &repos)
		return len(repos.Items) > 0
	})
}
