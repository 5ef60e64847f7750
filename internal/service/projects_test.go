package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/httpapi"
	"slipway.dev/slipway/internal/secrets"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
	"slipway.dev/slipway/internal/testenv/pgtest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// recordingJobs records enqueues; the migration must not enqueue anything.
type recordingJobs struct {
	mu       sync.Mutex
	enqueued []string
}

func (j *recordingJobs) EnqueueDeploy(_ context.Context, _ *store.Tx, _, id string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.enqueued = append(j.enqueued, "deploy:"+id)
	return nil
}

func (j *recordingJobs) EnqueueDelivery(_ context.Context, _ *store.Tx, _, id string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.enqueued = append(j.enqueued, "delivery:"+id)
	return nil
}

// legacyFixture is an organisation with the legacy data set:
//
//	prj_shop     "shop"      compute srv-1: web (production, history, variables, domain, webhook),
//	                                        worker (docker, no stage), preview (staging)
//	prj_blog     "Blog Site" compute srv-1: api (its integration is disconnected)
//	prj_ops      "ops"       compute srv-2: cron (a deployment is building: blocked)
//	prj_payments "payments"  compute srv-3: web (collides with shop/production/web when merged into shop)
//
// and an existing Application "shop" (production: web), so the first
// Project's name collides.
type legacyFixture struct {
	svc   *service.Service
	st    *store.Store
	actor service.Actor
	token string
	jobs  *recordingJobs
}

func newLegacyFixture(t *testing.T, databaseURL string) *legacyFixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, databaseURL, dir, logger)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	keys, err := secrets.LoadOrCreate(filepath.Join(dir, "keys"), "")
	if err != nil {
		t.Fatalf("keys: %v", err)
	}
	jobs := &recordingJobs{}
	svc := service.New(st, keys, map[slipway.Provider]forge.Provider{}, jobs, service.Config{PublicURL: "http://127.0.0.1", BaseDomain: "localhost"}, logger)
	boot, err := svc.Bootstrap(ctx, "admin@example.test")
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	actor, err := svc.ActorFor(ctx, boot.OrgID, boot.UserID)
	if err != nil {
		t.Fatalf("actor: %v", err)
	}
	f := &legacyFixture{svc: svc, st: st, actor: actor, token: boot.Token, jobs: jobs}
	org := boot.OrgID
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("seed %s: %v", what, err)
		}
	}
	must("integration", st.CreateIntegration(ctx, &slipway.Integration{ID: "int_gitea", OrgID: org, Provider: slipway.ProviderGitea,
		Label: "team gitea", AuthMethod: slipway.AuthToken, BaseURL: "http://127.0.0.1:3000", Status: slipway.IntegrationConnected}, []byte("sealed")))
	must("integration", st.CreateIntegration(ctx, &slipway.Integration{ID: "int_old", OrgID: org, Provider: slipway.ProviderGitLab,
		Label: "old gitlab", AuthMethod: slipway.AuthToken, BaseURL: "http://127.0.0.1:3001", Status: slipway.IntegrationDisconnected}, []byte("sealed")))
	must("hook", st.CreateRepoHook(ctx, &store.RepoHook{ID: "hook_shopweb", OrgID: org, IntegrationID: "int_gitea", RepoID: "101",
		ProviderHookID: "7", SecretCiphertext: []byte("sealed"), Status: "active"}))

	must("app", st.CreateApplication(ctx, &slipway.Application{ID: "app_existingshop", OrgID: org, Name: "shop", Status: slipway.AppActive}))
	must("env", st.CreateEnvironment(ctx, &slipway.Environment{ID: "env_shopprod", OrgID: org, ApplicationID: "app_existingshop",
		Name: "production", IsDefault: true}))
	must("service", st.CreateService(ctx, &slipway.Service{ID: "svc_newweb", OrgID: org, ApplicationID: "app_existingshop",
		EnvironmentID: "env_shopprod", Name: "web", Type: slipway.ServiceDocker, Image: "nginx"}))

	gitSource := func(repoID, repo string) slipway.ServiceSource {
		return slipway.ServiceSource{IntegrationID: "int_gitea", RepoID: repoID, RepoName: repo, Branch: "main", AutoDeploy: true}
	}
	base := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, p := range []slipway.Project{
		{ID: "prj_shop", Name: "shop", Compute: "srv-1"},
		{ID: "prj_blog", Name: "Blog Site", Compute: "srv-1"},
		{ID: "prj_ops", Name: "ops", Compute: "srv-2"},
		{ID: "prj_payments", Name: "payments", Compute: "srv-3"},
	} {
		p.OrgID, p.CreatedAt = org, base.Add(time.Duration(i)*time.Hour)
		must("project", st.CreateProject(ctx, &p))
	}
	for _, s := range []slipway.Service{
		{ID: "svc_shopweb", ProjectID: "prj_shop", Name: "web", Type: slipway.ServiceApp, Source: gitSource("101", "team/shop"),
			Domains: []string{"shop.example.test"}},
		{ID: "svc_shopworker", ProjectID: "prj_shop", Name: "worker", Type: slipway.ServiceDocker, Image: "shop/worker:1"},
		{ID: "svc_shoppreview", ProjectID: "prj_shop", Name: "preview", Type: slipway.ServiceApp, Source: gitSource("101", "team/shop")},
		{ID: "svc_blogapi", ProjectID: "prj_blog", Name: "API_Server", Type: slipway.ServiceApp,
			Source: slipway.ServiceSource{IntegrationID: "int_old", RepoID: "55", RepoName: "team/blog", Branch: "main"}},
		{ID: "svc_opscron", ProjectID: "prj_ops", Name: "cron", Type: slipway.ServiceDocker, Image: "ops/cron:2"},
		{ID: "svc_payweb", ProjectID: "prj_payments", Name: "web", Type: slipway.ServiceDocker, Image: "pay/web:3"},
	} {
		s.OrgID = org
		must("service", st.CreateService(ctx, &s))
	}
	// The legacy domain was routed before domains needed proof (an upgrade
	// keeps such domains as claims).
	must("domain", st.VerifyDomain(ctx, org, "svc_shopweb", "shop.example.test"))
	must("stage", st.SetLegacyServiceStage(ctx, org, "svc_shopweb", "production"))
	must("stage", st.SetLegacyServiceStage(ctx, org, "svc_shoppreview", "Staging"))
	must("variable", st.SetVariable(ctx, org, "svc_shopweb", store.Variable{Key: "PORT", Value: []byte("8080")}))
	must("variable", st.SetVariable(ctx, org, "svc_shopweb", store.Variable{Key: "DATABASE_URL", Value: []byte("sealed"), Secret: true}))
	for i, status := range []slipway.DeploymentStatus{slipway.DeployFailed, slipway.DeployLive} {
		d := &slipway.Deployment{ID: "dep_shopweb" + string(rune('a'+i)), OrgID: org, ServiceID: "svc_shopweb", Status: status,
			CommitSHA: strings.Repeat(string(rune('a'+i)), 40), Ref: "refs/heads/main", Trigger: slipway.TriggerPush,
			IntegrationID: "int_gitea", CreatedAt: base.Add(time.Duration(i) * time.Minute)}
		_, err := st.CreateDeployment(ctx, d, "")
		must("deployment", err)
	}
	must("live", st.SetLiveDeployment(ctx, org, "svc_shopweb", "dep_shopwebb"))
	_, err = st.CreateDeployment(ctx, &slipway.Deployment{ID: "dep_cronbuilding", OrgID: org, ServiceID: "svc_opscron",
		Status: slipway.DeployBuilding, CommitSHA: strings.Repeat("c", 40), Trigger: slipway.TriggerManual}, "")
	must("deployment", err)
	return f
}

// stores runs fn on SQLite, and on PostgreSQL when one is configured.
func stores(t *testing.T, fn func(t *testing.T, databaseURL string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, "") })
	t.Run("postgres", func(t *testing.T) { fn(t, pgtest.URL(t)) })
}

func TestProjectsReadOnly(t *testing.T) {
	ctx := context.Background()
	f := newLegacyFixture(t, "")
	list, err := f.svc.ListProjects(ctx, f.actor, false)
	if err != nil || len(list) != 4 {
		t.Fatalf("ListProjects = %d projects, %v; want 4", len(list), err)
	}
	d, err := f.svc.GetProject(ctx, f.actor, "prj_shop")
	if err != nil || len(d.Services) != 3 {
		t.Fatalf("GetProject = %d services, %v; want 3", len(d.Services), err)
	}
	if byName, err := f.svc.GetProject(ctx, f.actor, "Blog Site"); err != nil || byName.ID != "prj_blog" {
		t.Errorf("GetProject by name = %q, %v; want prj_blog", byName.ID, err)
	}
	_, err = f.svc.CreateProject(ctx, f.actor, "new")
	if code := slipway.ErrorCodeOf(err); code != slipway.ECodeProjectsReadOnly {
		t.Fatalf("CreateProject code = %q, want %q", code, slipway.ECodeProjectsReadOnly)
	}
	if !strings.Contains(err.Error(), "Applications") {
		t.Errorf("CreateProject message %q does not point to Applications", err)
	}
	dev := f.actor
	dev.RoleName, dev.Permissions = slipway.RoleDeveloper, slipway.DeveloperPermissions()
	if _, err := f.svc.MigrateProjects(ctx, dev, "", service.MigrationOptions{}); slipway.ErrorCodeOf(err) != slipway.ECodeForbidden {
		t.Errorf("developer MigrateProjects: %v, want forbidden", err)
	}
}

func TestMigrationPlanGolden(t *testing.T) {
	f := newLegacyFixture(t, "")
	plan, err := f.svc.PlanProjectMigration(context.Background(), f.actor, "", service.MigrationOptions{})
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	got, err := json.MarshalIndent(plan, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "migrate_plan.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden (run with -update to create it): %v", err)
	}
	if !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
		t.Errorf("plan differs from %s (run with -update after checking):\n%s", golden, got)
	}
	// The plan changes nothing.
	if p, _ := f.st.GetProject(context.Background(), f.actor.OrgID, "prj_shop"); p.DeletedAt != nil {
		t.Error("a dry run soft-deleted a project")
	}
}

func TestMigrateProjects(t *testing.T) {
	stores(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		f := newLegacyFixture(t, databaseURL)
		org := f.actor.OrgID
		hooksBefore, err := f.st.ListRepoHooks(ctx, org, "int_gitea")
		if err != nil {
			t.Fatal(err)
		}

		res, err := f.svc.MigrateProjects(ctx, f.actor, "", service.MigrationOptions{})
		if err != nil {
			t.Fatalf("migrate: %v", err)
		}
		status := map[string]service.ProjectPlan{}
		for _, p := range res.Projects {
			status[p.ProjectID] = p
		}
		for id, want := range map[string]string{"prj_shop": service.PlanMigrated, "prj_blog": service.PlanMigrated,
			"prj_ops": service.PlanBlocked, "prj_payments": service.PlanMigrated} {
			if got := status[id].Status; got != want {
				t.Errorf("%s: status %q, want %q (%s)", id, got, want, status[id].Reason)
			}
		}

		// Every moved Service is reachable at its new place, same id.
		shop := status["prj_shop"].Application
		if shop.Name != "shop-2" || shop.ID == "" {
			t.Fatalf("shop became %+v, want a new application shop-2", shop)
		}
		for ref, id := range map[string]string{"shop-2/production/web": "svc_shopweb", "shop-2/production/worker": "svc_shopworker",
			"shop-2/staging/preview": "svc_shoppreview", "blog-site/production/api-server": "svc_blogapi", "payments/production/web": "svc_payweb"} {
			got, err := f.svc.ResolveService(ctx, f.actor, ref)
			if err != nil || got.ID != id {
				t.Errorf("ResolveService(%s) = %q, %v; want %s", ref, got.ID, err, id)
				continue
			}
			if got.ProjectID != "" {
				t.Errorf("%s still has project %s", ref, got.ProjectID)
			}
		}

		// History, variables, domains, source and webhooks are intact.
		web, _ := f.st.GetService(ctx, org, "svc_shopweb")
		if web.LiveDeploymentID != "dep_shopwebb" || web.Source.IntegrationID != "int_gitea" || web.Source.RepoID != "101" || !web.Source.AutoDeploy {
			t.Errorf("web after migration: live %q source %+v", web.LiveDeploymentID, web.Source)
		}
		if deps, total, _ := f.st.ListDeployments(ctx, org, "svc_shopweb", store.Page{}); total != 2 || deps[0].ID != "dep_shopwebb" {
			t.Errorf("web deployments after migration: %d", total)
		}
		if vars, _ := f.st.ListVariables(ctx, org, "svc_shopweb"); len(vars) != 2 {
			t.Errorf("web variables after migration: %d, want 2", len(vars))
		}
		if byDomain, err := f.st.GetServiceByDomain(ctx, "shop.example.test"); err != nil || byDomain.ID != "svc_shopweb" {
			t.Errorf("domain routes to %q, %v", byDomain.ID, err)
		}
		hooksAfter, _ := f.st.ListRepoHooks(ctx, org, "int_gitea")
		if len(hooksAfter) != len(hooksBefore) || len(hooksAfter) != 1 || hooksAfter[0].ID != hooksBefore[0].ID || hooksAfter[0].Status != "active" {
			t.Errorf("repo hooks changed: %+v → %+v", hooksBefore, hooksAfter)
		}
		// A push to the repository still finds the same Services.
		byRepo, _, _ := f.st.ListServices(ctx, org, store.ServiceFilter{IntegrationID: "int_gitea", RepoID: "101"}, store.Page{})
		if len(byRepo) != 2 {
			t.Errorf("services of repo 101: %d, want 2", len(byRepo))
		}
		if len(f.jobs.enqueued) != 0 {
			t.Errorf("migration enqueued jobs: %v", f.jobs.enqueued)
		}

		// The Application and the Project record each other.
		app, err := f.svc.GetApplication(ctx, f.actor, shop.ID)
		if err != nil || app.MigratedFromProject != "prj_shop" || app.DefaultEnvironmentID == "" {
			t.Errorf("application: %+v, %v", app, err)
		}
		_, err = f.svc.GetProject(ctx, f.actor, "prj_shop")
		if to, ok := service.ProjectMovedTo(err); !ok || to != shop.ID {
			t.Errorf("GetProject after migration: %v (moved to %q)", err, to)
		}
		if live, _ := f.svc.ListProjects(ctx, f.actor, false); len(live) != 1 || live[0].ID != "prj_ops" {
			t.Errorf("live projects after migration: %+v", live)
		}

		// Audit on the Application.
		entries, _, err := f.svc.ListApplicationAudit(ctx, f.actor, shop.ID, store.Page{})
		if err != nil || len(entries) != 1 || entries[0].Action != "project.migrate" || entries[0].Actor != f.actor.UserID ||
			entries[0].Details["project_id"] != "prj_shop" || entries[0].Details["environments"] != "production,staging" {
			t.Errorf("audit: %+v, %v", entries, err)
		}

		// A second run changes nothing.
		before := snapshot(t, f)
		again, err := f.svc.MigrateProjects(ctx, f.actor, "", service.MigrationOptions{})
		if err != nil {
			t.Fatalf("second run: %v", err)
		}
		for _, p := range again.Projects {
			if p.Status == service.PlanMigrated {
				t.Errorf("second run migrated %s again", p.ProjectID)
			}
		}
		one, err := f.svc.MigrateProjects(ctx, f.actor, "prj_shop", service.MigrationOptions{})
		if err != nil || len(one.Projects) != 1 || one.Projects[0].Status != service.PlanAlreadyMigrated {
			t.Errorf("re-migrating prj_shop: %+v, %v", one, err)
		}
		if after := snapshot(t, f); after != before {
			t.Errorf("second run changed the data:\nbefore %s\nafter  %s", before, after)
		}
	})
}

// snapshot is a comparable digest of applications, environments,
// services, projects and audit entries.
func snapshot(t *testing.T, f *legacyFixture) string {
	t.Helper()
	ctx, org := context.Background(), f.actor.OrgID
	var b strings.Builder
	apps, _, _ := f.st.ListApplications(ctx, org, store.ApplicationFilter{}, store.Page{Limit: 200})
	for _, a := range apps {
		b.WriteString(a.ID + ":" + a.Name + ":" + a.UpdatedAt.String() + ";")
		envs, _ := f.st.ListEnvironments(ctx, org, a.ID)
		for _, e := range envs {
			b.WriteString(e.ID + ":" + e.Name + ";")
		}
	}
	svcs, _, _ := f.st.ListServices(ctx, org, store.ServiceFilter{}, store.Page{Limit: 200})
	for _, s := range svcs {
		b.WriteString(s.ID + ":" + s.EnvironmentID + ":" + s.ProjectID + ":" + s.Name + ":" + s.UpdatedAt.String() + ";")
	}
	projects, _ := f.st.ListProjects(ctx, org, true)
	for _, p := range projects {
		b.WriteString(p.ID + ":" + p.MigratedToApplication + ";")
	}
	_, n, _ := f.st.ListAudit(ctx, org, "", "", store.Page{})
	b.WriteString("audit:" + string(rune('0'+n)))
	return b.String()
}

func TestMigrateIntoExistingApplication(t *testing.T) {
	ctx := context.Background()
	f := newLegacyFixture(t, "")
	res, err := f.svc.MigrateProjects(ctx, f.actor, "prj_payments", service.MigrationOptions{TargetApplication: "shop"})
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	p := res.Projects[0]
	if p.Status != service.PlanMigrated || p.Application.ID != "app_existingshop" || p.Application.Action != service.ActionReuse {
		t.Fatalf("result: %+v", p)
	}
	if len(p.Environments) != 1 || p.Environments[0].ID != "env_shopprod" || p.Environments[0].Action != service.ActionReuse {
		t.Errorf("environments: %+v", p.Environments)
	}
	moved, err := f.svc.ResolveService(ctx, f.actor, "shop/production/web-2")
	if err != nil || moved.ID != "svc_payweb" {
		t.Errorf("payments web landed as %q, %v; want shop/production/web-2", moved.ID, err)
	}
	app, _ := f.st.GetApplication(ctx, f.actor.OrgID, "app_existingshop")
	if app.MigratedFromProject != "prj_payments" {
		t.Errorf("migrated_from_project = %q", app.MigratedFromProject)
	}
	if _, err := f.svc.MigrateProjects(ctx, f.actor, "prj_shop", service.MigrationOptions{TargetApplication: "nope"}); slipway.ErrorCodeOf(err) != slipway.ECodeNotFound {
		t.Errorf("unknown target: %v, want not found", err)
	}
}

func TestMigrationFailureLeavesProjectUntouched(t *testing.T) {
	stores(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		f := newLegacyFixture(t, databaseURL)
		before := snapshot(t, f)
		opts := service.MigrationOptions{}
		service.FailAfterFirstMove(&opts)
		if _, err := f.svc.MigrateProjects(ctx, f.actor, "prj_shop", opts); err == nil || !strings.Contains(err.Error(), "injected") {
			t.Fatalf("migrate with injected failure: %v", err)
		}
		if after := snapshot(t, f); after != before {
			t.Errorf("failed migration changed data:\nbefore %s\nafter  %s", before, after)
		}
		d, err := f.svc.GetProject(ctx, f.actor, "prj_shop")
		if err != nil || len(d.Services) != 3 || d.DeletedAt != nil {
			t.Errorf("project after failure: %d services, deleted %v, %v", len(d.Services), d.DeletedAt, err)
		}
		// And it still migrates afterwards.
		if res, err := f.svc.MigrateProjects(ctx, f.actor, "prj_shop", service.MigrationOptions{}); err != nil || res.Projects[0].Status != service.PlanMigrated {
			t.Errorf("migrate after failure: %+v, %v", res, err)
		}
	})
}

func TestProjectRoutes(t *testing.T) {
	ctx := context.Background()
	f := newLegacyFixture(t, "")
	mux := http.NewServeMux()
	httpapi.New(f.svc, slog.New(slog.DiscardHandler)).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path, body string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+f.token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	if resp, body := do("GET", "/api/v1/projects", ""); resp.StatusCode != 200 || !strings.Contains(string(body), "prj_shop") {
		t.Errorf("list projects: %d %s", resp.StatusCode, body)
	}
	if resp, body := do("POST", "/api/v1/projects", `{"name":"x"}`); resp.StatusCode != 409 || !strings.Contains(string(body), "projects_read_only") {
		t.Errorf("create project: %d %s", resp.StatusCode, body)
	}
	resp, body := do("POST", "/api/v1/projects/migrate/plan", `{"project":"prj_shop"}`)
	var plan service.Plan
	if resp.StatusCode != 200 || json.Unmarshal(body, &plan) != nil || len(plan.Projects) != 1 || plan.Projects[0].Application.Name != "shop-2" {
		t.Fatalf("plan: %d %s", resp.StatusCode, body)
	}
	resp, body = do("POST", "/api/v1/projects/migrate", `{"project":"prj_shop","dry_run":true}`)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"dry_run":true`) {
		t.Errorf("dry run: %d %s", resp.StatusCode, body)
	}
	if p, _ := f.st.GetProject(ctx, f.actor.OrgID, "prj_shop"); p.DeletedAt != nil {
		t.Fatal("dry run migrated the project")
	}
	resp, body = do("POST", "/api/v1/projects/migrate", `{"project":"prj_shop"}`)
	var res service.Plan
	if resp.StatusCode != 200 || json.Unmarshal(body, &res) != nil || res.Projects[0].Status != service.PlanMigrated {
		t.Fatalf("migrate: %d %s", resp.StatusCode, body)
	}
	appID := res.Projects[0].Application.ID

	resp, _ = do("GET", "/api/v1/projects/prj_shop", "")
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "/api/v1/applications/"+appID {
		t.Errorf("old project URL: %d Location %q, want 308 to %s", resp.StatusCode, resp.Header.Get("Location"), appID)
	}
	if resp, body := do("GET", "/api/v1/projects/prj_blog", ""); resp.StatusCode != 200 || !strings.Contains(string(body), "svc_blogapi") {
		t.Errorf("live project: %d %s", resp.StatusCode, body)
	}
	resp, body = do("GET", "/api/v1/applications/"+appID+"/audit", "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "project.migrate") || !strings.Contains(string(body), "prj_shop") {
		t.Errorf("audit: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do("GET", "/api/v1/projects/prj_missing", ""); resp.StatusCode != 404 {
		t.Errorf("missing project: %d", resp.StatusCode)
	}
}
