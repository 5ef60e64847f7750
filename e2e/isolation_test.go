package e2e

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/sandbox"
	"slipway.dev/slipway/internal/testenv/giteatest"
	"slipway.dev/slipway/internal/testenv/proctest"
)

// TestHostileTenantRealDeployments runs real deployments of a tenant whose
// live app races Slipway's root operations on its workspace (swapping every
// build directory for a symlink to a root-owned directory) and detaches a
// process; the root-owned directory must stay untouched, and deleting the
// Service must stop the detached process and remove the user and files.
func TestHostileTenantRealDeployments(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	if os.Geteuid() != 0 {
		t.Skip("isolation needs root")
	}
	g := giteatest.Shared(t)
	owner := giteatest.UniqueName("mallory")
	pass := g.CreateUser(t, owner)
	token := g.CreateToken(t, owner, pass, "slipway")
	g.CreateRepo(t, owner, "evil", true)
	g.PushCommit(t, owner, pass, owner+"/evil", "main", appSource, "the app")

	target := t.TempDir()
	os.Chmod(target, 0o755)
	os.WriteFile(filepath.Join(target, "sentinel"), []byte("root's"), 0o644)
	snapshot := func() string {
		var b strings.Builder
		filepath.Walk(target, func(p string, fi os.FileInfo, err error) error {
			if err == nil {
				st := fi.Sys().(*syscall.Stat_t)
				fmt.Fprintf(&b, "%s %o %d:%d %d\n", p, fi.Mode(), st.Uid, st.Gid, fi.Size())
			}
			return nil
		})
		return b.String()
	}
	before := snapshot()

	srv := startServer(t, filepath.Join(t.TempDir(), "data"), "", -1)
	c := api{t: t, base: srv.URL(), token: srv.Bootstrap.Token}
	var integ slipway.Integration
	c.must("POST", "/api/v1/integrations", map[string]any{"provider": "gitea", "base_url": g.URL(), "token": token}, &integ)
	var repos struct{ Items []forge.Repo }
	c.must("GET", "/api/v1/integrations/"+integ.ID+"/repos?search=evil", nil, &repos)
	c.must("POST", "/api/v1/applications", map[string]any{"name": "evil"}, nil)
	// The app's start command detaches a racer that keeps replacing every
	// build directory (and builds/ itself) with a symlink to the target.
	racer := `cd "$HOME/.." && while :; do for d in builds/*; do rm -rf "$d"; ln -sfn ` + target + ` "$d"; done; ` +
		`mv builds b2 2>/dev/null; ln -sfn ` + target + ` builds; rm -f builds; mv b2 builds 2>/dev/null; done`
	var svc slipway.Service
	c.must("POST", "/api/v1/environments/evil%2Fproduction/services", map[string]any{"name": "web",
		"source": map[string]any{"integration_id": integ.ID, "repo_id": repos.Items[0].ID, "branch": "main"},
		"build":  map[string]any{"start_command": "setsid sh -c '" + racer + "' >/dev/null 2>&1 & setsid sleep 913 & exec ./app"}}, &svc)

	var first slipway.Deployment
	c.must("POST", "/api/v1/services/"+svc.ID+"/deploy", map[string]any{}, &first)
	c.waitLive(first.ID, 5*time.Minute)
	if len(proctest.Running("sleep913")) == 0 {
		t.Fatal("the release's detached process is not running")
	}
	// Rebuilds while the live app races: each ends live or refused, and
	// the target never changes.
	for i := 0; i < 3; i++ {
		var d slipway.Deployment
		c.must("POST", "/api/v1/services/"+svc.ID+"/redeploy", map[string]any{"no_cache": true}, &d)
		waitFor(t, "rebuild "+d.ID+" to finish", 5*time.Minute, func() bool {
			var cur slipway.Deployment
			c.must("GET", "/api/v1/deployments/"+d.ID, nil, &cur)
			if cur.Status == slipway.DeployFailed {
				t.Logf("rebuild %d refused: %s", i, cur.Error)
			}
			return cur.Status == slipway.DeployLive || cur.Status == slipway.DeployFailed
		})
		if got := snapshot(); got != before {
			t.Fatalf("a deployment changed the root-owned target:\n%s", got)
		}
	}

	c.must("DELETE", "/api/v1/services/"+svc.ID, nil, nil)
	if pids := proctest.Running("sleep913"); len(pids) > 0 {
		t.Errorf("the release's detached process outlived its deleted Service: %v", pids)
	}
	if _, err := user.Lookup(sandbox.UserName(svc.ID)); err == nil {
		t.Errorf("the Service's user %s still exists", sandbox.UserName(svc.ID))
	}
	if got := snapshot(); got != before {
		t.Fatalf("delete changed the root-owned target:\n%s", got)
	}
}
