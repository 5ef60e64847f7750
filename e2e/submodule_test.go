package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/testenv/giteatest"
)

// TestSubmoduleCredentialsOnlyWhenAllowed: a deployed repository whose
// .gitmodules points at a second private repository on the same Gitea.
// By default the build fetches the submodule without credentials, so it
// fails and the integration's token never reaches that repository; with
// the Service's allowance the submodule is fetched with the credential
// for that repository and the deployment goes live. The log says how.
func TestSubmoduleCredentialsOnlyWhenAllowed(t *testing.T) {
	g, user, pass, token := giteaUser(t, "subm")
	g.CreateRepo(t, user, "lib", true)
	libSHA := g.PushCommit(t, user, pass, user+"/lib", "main", map[string]string{"README.md": "private library\n"}, "lib")
	g.CreateRepo(t, user, "app", true)
	g.PushCommit(t, user, pass, user+"/app", "main", appSource, "add the app")
	g.PushSubmodule(t, user, pass, user+"/app", "main", "vendor/lib", "../lib.git", libSHA)

	srv := startServer(t, filepath.Join(t.TempDir(), "data"), "", -1)
	c := api{t: t, base: srv.URL(), token: srv.Bootstrap.Token}
	integ, repo := connectGitea(c, g, token, "app")
	c.must("POST", "/api/v1/applications", map[string]any{"name": "subs"}, nil)
	var plain, allowed slipway.Service
	c.must("POST", "/api/v1/environments/subs%2Fproduction/services", map[string]any{"name": "plain",
		"source": map[string]any{"integration_id": integ.ID, "repo_id": repo.ID, "branch": "main"}}, &plain)
	c.must("POST", "/api/v1/environments/subs%2Fproduction/services", map[string]any{"name": "allowed",
		"source": map[string]any{"integration_id": integ.ID, "repo_id": repo.ID, "branch": "main"},
		"build":  map[string]any{"submodule_credentials": true}}, &allowed)
	if !allowed.Build.SubmoduleCredentials || plain.Build.SubmoduleCredentials {
		t.Fatalf("allowance not saved as asked: plain %+v, allowed %+v", plain.Build, allowed.Build)
	}

	var d slipway.Deployment
	c.must("POST", "/api/v1/services/"+plain.ID+"/deploy", map[string]any{}, &d)
	waitFor(t, "the default deployment to fail", 3*time.Minute, func() bool {
		c.must("GET", "/api/v1/deployments/"+d.ID, nil, &d)
		return d.Status == slipway.DeployFailed || d.Status == slipway.DeployLive
	})
	log := deploymentLog(c, d.ID)
	if d.Status != slipway.DeployFailed || !strings.Contains(log, "submodule vendor/lib ("+g.URL()+"/"+user+"/lib.git): fetching without credentials") {
		t.Fatalf("default: %s (%s)\nlog:\n%s", d.Status, d.Error, log)
	}
	if strings.Contains(log, token) {
		t.Fatal("token in the log")
	}

	c.must("POST", "/api/v1/services/"+allowed.ID+"/deploy", map[string]any{}, &d)
	d = c.waitLive(d.ID, 5*time.Minute)
	log = deploymentLog(c, d.ID)
	if !strings.Contains(log, "submodule vendor/lib ("+g.URL()+"/"+user+"/lib.git): fetching with a credential narrowed to that repository") {
		t.Fatalf("allowed: the log does not say how the submodule was fetched:\n%s", log)
	}
	if strings.Contains(log, token) {
		t.Fatal("token in the log")
	}
}

// giteaUser skips in -short mode, then makes a fresh user on the shared
// test Gitea with a token for Slipway.
func giteaUser(t *testing.T, prefix string) (g *giteatest.Server, user, pass, token string) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end")
	}
	g = giteatest.Shared(t)
	user = giteatest.UniqueName(prefix)
	pass = g.CreateUser(t, user)
	return g, user, pass, g.CreateToken(t, user, pass, "slipway")
}

// connectGitea connects the test Gitea with token and returns the
// integration and the one repository the picker finds for search.
func connectGitea(c api, g *giteatest.Server, token, search string) (slipway.Integration, forge.Repo) {
	c.t.Helper()
	var integ slipway.Integration
	c.must("POST", "/api/v1/integrations", map[string]any{"provider": "gitea", "base_url": g.URL(), "token": token}, &integ)
	var repos struct{ Items []forge.Repo }
	c.must("GET", "/api/v1/integrations/"+integ.ID+"/repos?search="+search, nil, &repos)
	if len(repos.Items) != 1 {
		c.t.Fatalf("picker for %q: %+v", search, repos.Items)
	}
	return integ, repos.Items[0]
}
