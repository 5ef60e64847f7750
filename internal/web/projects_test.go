package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/web"
)

// TestLegacyProjectURLsRedirectAfterMigration: a legacy Project is listed
// with its Services; once migrated, its old dashboard URLs (with and
// without the organisation) redirect permanently to the Application.
func TestLegacyProjectURLsRedirectAfterMigration(t *testing.T) {
	e := newEnv(t, web.Options{})
	ctx := context.Background()
	p := slipway.Project{OrgID: e.boot.OrgID, Name: "legacy-shop", Compute: "srv-1"}
	if err := e.store.CreateProject(ctx, &p); err != nil {
		t.Fatal(err)
	}
	svc := slipway.Service{OrgID: e.boot.OrgID, ProjectID: p.ID, Name: "api", Type: slipway.ServiceDocker, Image: "example/api"}
	if err := e.store.CreateService(ctx, &svc); err != nil {
		t.Fatal(err)
	}
	b := e.adminBrowser()
	if a := b.get(e.orgPath("projects")); a.status != 200 || !strings.Contains(a.body, "legacy-shop") || !strings.Contains(a.body, ">api<") {
		t.Fatalf("projects page: %d %s", a.status, a.body)
	}
	if a := b.get("/projects/" + p.ID); a.status != http.StatusPermanentRedirect || a.location != e.orgPath("projects", p.ID) {
		t.Fatalf("org-less project URL: %d %q", a.status, a.location)
	}
	if a := b.get(e.orgPath("projects", p.ID)); a.status != 200 {
		t.Fatalf("project page before migration: %d", a.status)
	}
	plan, err := e.svc.MigrateProjects(ctx, e.admin(), p.ID, service.MigrationOptions{})
	if err != nil {
		t.Fatal(err)
	}
	app, err := e.svc.GetApplication(ctx, e.admin(), "legacy-shop")
	if err != nil {
		t.Fatalf("application after migration: %v (plan %+v)", err, plan)
	}
	a := b.get(e.orgPath("projects", p.ID))
	if a.status != http.StatusPermanentRedirect || a.location != e.orgPath("apps", app.ID) {
		t.Fatalf("migrated project URL: %d %q, want 308 to %s", a.status, a.location, e.orgPath("apps", app.ID))
	}
	if a := e.browser().get(e.orgPath("projects", p.ID)); a.status != http.StatusSeeOther {
		t.Fatalf("signed-out visitor: %d, want a redirect to sign in", a.status)
	}
}
