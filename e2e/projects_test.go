package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/testenv/giteatest"
)

// TestLegacyProjectMigrationKeepsDeploying migrates a legacy Project whose
// Service is linked to a real Gitea repository and deploys on push: before
// the migration a push deploys it at its legacy host; the dry run changes
// nothing; after the migration the same Service (same id, same history,
// same repository webhook) deploys the next push at its new host, the old
// Project URL redirects to the Application, and a second migration is a
// no-op.
func TestLegacyProjectMigrationKeepsDeploying(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	g := giteatest.Shared(t)
	user := giteatest.UniqueName("lee")
	pass := g.CreateUser(t, user)
	token := g.CreateToken(t, user, pass, "slipway")
	repoID := g.CreateRepo(t, user, "legacy", true)
	repo := user + "/legacy"
	g.PushCommit(t, user, pass, repo, "main", appSource, "add the app")

	srv := startServer(t, filepath.Join(t.TempDir(), "data"), "", -1)
	defer func() {
		ctx, cancel := contextWithTimeout(30 * time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	c := api{t: t, base: srv.URL(), token: srv.Bootstrap.Token}
	var integ slipway.Integration
	c.must("POST", "/api/v1/integrations", map[string]any{"provider": "gitea", "base_url": g.URL(), "token": token}, &integ)

	// The legacy data set: a Project tied to its compute, holding one
	// Service linked to the repository. Only seeds and imports create
	// Projects, so it goes straight into the store.
	orgID := srv.Bootstrap.OrgID
	project := slipway.Project{OrgID: orgID, Name: giteatest.UniqueName("legacy"), Compute: "srv-1"}
	if err := srv.Store.CreateProject(ctx2(), &project); err != nil {
		t.Fatal(err)
	}
	source := slipway.ServiceSource{IntegrationID: integ.ID, RepoID: fmt.Sprint(repoID), RepoName: repo, Branch: "main", AutoDeploy: true}
	svc := slipway.Service{OrgID: orgID, ProjectID: project.ID, Name: "web", Type: slipway.ServiceApp, Source: source}
	if err := srv.Store.CreateService(ctx2(), &svc); err != nil {
		t.Fatal(err)
	}
	// Saving the Service's source through the API installs the
	// repository webhook, as it did when the Project was in use.
	c.must("PATCH", "/api/v1/services/"+svc.ID, map[string]any{"source": source}, nil)
	hooks := g.ListHooks(t, user, "legacy")
	if len(hooks) != 1 {
		t.Fatalf("repository webhooks after saving the legacy service: %d, want 1", len(hooks))
	}
	hookID := hooks[0].ID

	// A push deploys the legacy Service at its legacy host.
	legacyHost := "web." + project.Name + ".localhost"
	sha1 := g.PushCommit(t, user, pass, repo, "main", map[string]string{"README.md": "v1\n"}, "first push")
	first := c.waitPushDeployment(svc.ID, sha1)
	c.waitLive(first.ID, 5*time.Minute)
	waitFor(t, "the legacy host to serve "+sha1, 30*time.Second, func() bool {
		_, body, _ := get(srv.URL(), legacyHost)
		return body == "hello from "+sha1+"\n"
	})

	// The dry run plans the move and changes nothing.
	var plan service.Plan
	c.must("POST", "/api/v1/projects/migrate", map[string]any{"project": project.ID, "dry_run": true}, &plan)
	if !plan.DryRun || len(plan.Projects) != 1 || plan.Projects[0].Status != service.PlanReady ||
		plan.Projects[0].Application.Action != service.ActionCreate || len(plan.Projects[0].Services) != 1 ||
		plan.Projects[0].Services[0].ID != svc.ID || plan.Projects[0].Services[0].Environment != "production" {
		t.Fatalf("dry-run plan: %+v", plan)
	}
	appName := plan.Projects[0].Application.Name
	var still service.ProjectDetail
	c.must("GET", "/api/v1/projects/"+project.ID, nil, &still)
	if still.MigratedToApplication != "" || len(still.Services) != 1 || still.Services[0].ID != svc.ID {
		t.Fatalf("project after the dry run: %+v", still)
	}
	var afterDry slipway.Service
	c.must("GET", "/api/v1/services/"+svc.ID, nil, &afterDry)
	if afterDry.ProjectID != project.ID || afterDry.EnvironmentID != "" {
		t.Fatalf("service after the dry run: project %q environment %q", afterDry.ProjectID, afterDry.EnvironmentID)
	}

	// The migration.
	var done service.Plan
	c.must("POST", "/api/v1/projects/migrate", map[string]any{"project": project.ID}, &done)
	if done.DryRun || len(done.Projects) != 1 || done.Projects[0].Status != service.PlanMigrated || done.Projects[0].Application.ID == "" {
		t.Fatalf("migration result: %+v", done)
	}
	appID := done.Projects[0].Application.ID
	var moved slipway.Service
	c.must("GET", "/api/v1/services/"+svc.ID, nil, &moved)
	if moved.ID != svc.ID || moved.ApplicationID != appID || moved.EnvironmentID == "" || moved.Source.RepoID != source.RepoID {
		t.Fatalf("service after the migration: %+v", moved)
	}
	if ds := c.deployments(svc.ID); len(ds) != 1 || ds[0].ID != first.ID {
		t.Fatalf("deployment history after the migration: %+v", ds)
	}
	if hooks := g.ListHooks(t, user, "legacy"); len(hooks) != 1 || hooks[0].ID != hookID {
		t.Fatalf("repository webhooks after the migration: %+v, want only hook %d", hooks, hookID)
	}
	code, location := c.noRedirect("GET", "/api/v1/projects/"+project.ID)
	if code != http.StatusPermanentRedirect || location != "/api/v1/applications/"+appID {
		t.Fatalf("old project URL: %d Location %q, want 308 to the application", code, location)
	}

	// The next push deploys the same Service, now at its new host.
	newHost := c.host(svc.ID, slipway.HostGenerated)
	if !strings.HasPrefix(newHost, "web.production."+appName+".") {
		t.Errorf("generated host after the migration: %q, want web.production.%s.<org>.localhost", newHost, appName)
	}
	sha2 := g.PushCommit(t, user, pass, repo, "main", map[string]string{"README.md": "v2\n"}, "push after the migration")
	second := c.waitPushDeployment(svc.ID, sha2)
	if second.ServiceID != svc.ID {
		t.Fatalf("push after the migration deployed service %s, want %s", second.ServiceID, svc.ID)
	}
	c.waitLive(second.ID, 5*time.Minute)
	waitFor(t, "the new host to serve "+sha2, 30*time.Second, func() bool {
		_, body, _ := get(srv.URL(), newHost)
		return body == "hello from "+sha2+"\n"
	})
	// The Project host it had is still its own: old links keep working.
	if _, body, _ := get(srv.URL(), legacyHost); body != "hello from "+sha2+"\n" {
		t.Errorf("the legacy host after the migration answered %q", body)
	}

	// Migrating again changes nothing.
	var again service.Plan
	c.must("POST", "/api/v1/projects/migrate", map[string]any{"project": project.ID}, &again)
	if len(again.Projects) != 1 || again.Projects[0].Status != service.PlanAlreadyMigrated || again.Projects[0].Application.ID != appID {
		t.Fatalf("second migration: %+v", again)
	}
	var apps struct {
		Items []slipway.Application `json:"items"`
	}
	c.must("GET", "/api/v1/applications", nil, &apps)
	n := 0
	for _, a := range apps.Items {
		if a.MigratedFromProject == project.ID {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d applications migrated from the project after a second run, want 1", n)
	}
	var unchanged slipway.Service
	c.must("GET", "/api/v1/services/"+svc.ID, nil, &unchanged)
	if unchanged.EnvironmentID != moved.EnvironmentID || unchanged.ApplicationID != appID || unchanged.Name != "web" {
		t.Errorf("service after a second migration: %+v", unchanged)
	}
	if ds := c.deployments(svc.ID); len(ds) != 2 {
		t.Errorf("deployments after a second migration: %d, want 2", len(ds))
	}
	if hooks := g.ListHooks(t, user, "legacy"); len(hooks) != 1 || hooks[0].ID != hookID {
		t.Errorf("repository webhooks after a second migration: %+v", hooks)
	}
}

// waitPushDeployment waits for the push deployment of sha on a Service.
func (a api) waitPushDeployment(serviceID, sha string) slipway.Deployment {
	a.t.Helper()
	var found slipway.Deployment
	waitFor(a.t, "a push deployment of "+sha, time.Minute, func() bool {
		for _, d := range a.deployments(serviceID) {
			if d.CommitSHA == sha {
				found = d
				return true
			}
		}
		return false
	})
	if found.Trigger != slipway.TriggerPush {
		a.t.Errorf("deployment of %s triggered by %s, want push", sha, found.Trigger)
	}
	return found
}

// noRedirect sends an authenticated request without following redirects
// and returns the status and the Location header.
func (a api) noRedirect(method, path string) (int, string) {
	a.t.Helper()
	req, _ := http.NewRequest(method, a.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+a.token)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}
