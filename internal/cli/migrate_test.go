package cli_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/cli"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/httpapi"
	"slipway.dev/slipway/internal/secrets"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
)

type noJobs struct{}

func (noJobs) EnqueueDeploy(context.Context, *store.Tx, string, string) error   { return nil }
func (noJobs) EnqueueDelivery(context.Context, *store.Tx, string, string) error { return nil }

// TestMigrateProjectsCommand drives `slipway migrate projects` and
// `slipway project` against a real API server on loopback.
func TestMigrateProjectsCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	st, err := store.Open(ctx, "", dir, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	keys, err := secrets.LoadOrCreate(filepath.Join(dir, "keys"), "")
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(st, keys, map[slipway.Provider]forge.Provider{}, noJobs{}, service.Config{BaseDomain: "localhost"}, logger)
	boot, err := svc.Bootstrap(ctx, "admin@example.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateProject(ctx, &slipway.Project{ID: "prj_legacy", OrgID: boot.OrgID, Name: "Legacy Shop", Compute: "srv-1"}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateService(ctx, &slipway.Service{ID: "svc_legacyweb", OrgID: boot.OrgID, ProjectID: "prj_legacy", Name: "web",
		Type: slipway.ServiceDocker, Image: "shop/web:1"}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	httpapi.New(svc, logger).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	run := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		env := cli.Env{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string {
			return map[string]string{"SLIPWAY_SERVER": srv.URL, "SLIPWAY_TOKEN": boot.Token, "SLIPWAY_CONFIG": filepath.Join(dir, "none.json")}[k]
		}}
		if code := cli.Main(ctx, args, env); code != 0 {
			t.Fatalf("slipway %s: exit %d: %s", strings.Join(args, " "), code, errOut.String())
		}
		return out.String()
	}

	if out := run("project", "list"); !strings.Contains(out, "prj_legacy") || !strings.Contains(out, "srv-1") {
		t.Errorf("project list:\n%s", out)
	}
	if out := run("project", "show", "prj_legacy"); !strings.Contains(out, "svc_legacyweb") {
		t.Errorf("project show:\n%s", out)
	}
	dry := run("migrate", "projects", "--dry-run")
	for _, want := range []string{"Dry run", "legacy-shop", "will create", "production/web", "not a valid application name"} {
		if !strings.Contains(dry, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, dry)
		}
	}
	t.Logf("dry run:\n%s", dry)
	if p, _ := st.GetProject(ctx, boot.OrgID, "prj_legacy"); p.DeletedAt != nil {
		t.Fatal("dry run migrated the project")
	}
	done := run("migrate", "projects", "--project", "prj_legacy")
	if !strings.Contains(done, "migrated") || !strings.Contains(done, "moved") {
		t.Errorf("migrate output:\n%s", done)
	}
	if again := run("migrate", "projects"); !strings.Contains(again, "No legacy projects") {
		t.Errorf("second run output:\n%s", again)
	}
	if out := run("project", "show", "prj_legacy"); !strings.Contains(out, "migrated into application legacy-shop") {
		t.Errorf("project show after migration:\n%s", out)
	}
	if out := run("--output", "json", "migrate", "projects", "--project", "prj_legacy"); !strings.Contains(out, `"status": "already_migrated"`) {
		t.Errorf("json output:\n%s", out)
	}
}
