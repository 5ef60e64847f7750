package store_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/store"
	"slipway.dev/slipway/internal/testenv/pgtest"
)

// dialectURL returns how to open a fresh database of the dialect: SQLite in
// a temporary directory, PostgreSQL on a database of its own (skipped when
// no server is configured).
func dialectURL(t testing.TB, dialect string) (databaseURL, dataDir string) {
	t.Helper()
	if dialect == store.DialectPostgres {
		return pgtest.URL(t), ""
	}
	return "", t.TempDir()
}

// forEachDialect runs fn against a fresh store on SQLite and, when
// configured, on PostgreSQL: the one conformance suite both must pass.
func forEachDialect(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	t.Helper()
	for _, dialect := range []string{store.DialectSQLite, store.DialectPostgres} {
		t.Run(dialect, func(t *testing.T) {
			databaseURL, dataDir := dialectURL(t, dialect)
			s, err := store.Open(context.Background(), databaseURL, dataDir, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			if s.Dialect() != dialect {
				t.Fatalf("Dialect() = %q, want %q", s.Dialect(), dialect)
			}
			fn(t, s)
		})
	}
}

// fixture is one organisation with a user, an application, an
// environment, an integration and a service following a repository.
type fixture struct {
	org   slipway.Organisation
	user  slipway.User
	admin slipway.Role
	app   slipway.Application
	env   slipway.Environment
	integ slipway.Integration
	svc   slipway.Service
}

func seed(t *testing.T, s *store.Store, name string) fixture {
	t.Helper()
	ctx := context.Background()
	var f fixture
	f.org = slipway.Organisation{Name: name}
	must(t, s.CreateOrganisation(ctx, &f.org))
	f.user = slipway.User{Email: name + "@example.test", Name: name}
	must(t, s.CreateUser(ctx, &f.user, "hash-"+name))
	f.admin = slipway.Role{OrgID: f.org.ID, Name: slipway.RoleAdmin, BuiltIn: true, Permissions: slipway.AdminPermissions()}
	must(t, s.CreateRole(ctx, &f.admin))
	must(t, s.AddMember(ctx, &slipway.Membership{OrgID: f.org.ID, UserID: f.user.ID, RoleID: f.admin.ID}))
	f.app = slipway.Application{OrgID: f.org.ID, Name: "shop"}
	must(t, s.CreateApplication(ctx, &f.app))
	f.env = slipway.Environment{OrgID: f.org.ID, ApplicationID: f.app.ID, Name: "production", IsDefault: true}
	must(t, s.CreateEnvironment(ctx, &f.env))
	f.integ = slipway.Integration{OrgID: f.org.ID, Provider: slipway.ProviderGitea, Label: "forge", AuthMethod: slipway.AuthToken,
		BaseURL: "http://127.0.0.1:3000", Status: slipway.IntegrationConnected, Scopes: []string{"read:repository"},
		Settings: map[string]string{"k": "v"}, ExternalID: "ext-" + name}
	must(t, s.CreateIntegration(ctx, &f.integ, []byte("ciphertext-"+name)))
	f.svc = slipway.Service{OrgID: f.org.ID, ApplicationID: f.app.ID, EnvironmentID: f.env.ID, Name: "web", Type: slipway.ServiceApp,
		Source: slipway.ServiceSource{IntegrationID: f.integ.ID, RepoID: "42", RepoName: "acme/web", Branch: "main",
			WatchPaths: []string{"web/**"}, AutoDeploy: true},
		Build:   slipway.BuildSettings{StartCommand: "./web", Replicas: 2},
		Domains: []string{"Web-" + name + ".example.test"}}
	must(t, s.CreateService(ctx, &f.svc))
	return f
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantCode(t testing.TB, err error, code slipway.ErrorCode, what string) {
	t.Helper()
	if got := slipway.ErrorCodeOf(err); got != code {
		t.Errorf("%s: error code %q (%v), want %q", what, got, err, code)
	}
}

func TestMigrationsApplyOnceOnReopen(t *testing.T) {
	for _, dialect := range []string{store.DialectSQLite, store.DialectPostgres} {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			databaseURL, dataDir := dialectURL(t, dialect)
			for i := range 3 {
				s, err := store.Open(ctx, databaseURL, dataDir, slog.New(slog.DiscardHandler))
				if err != nil {
					t.Fatalf("open #%d: %v", i, err)
				}
				v, err := s.SchemaVersion(ctx)
				must(t, err)
				var rows int
				must(t, s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&rows))
				if latest, n := store.LatestSchemaVersion(dialect), store.MigrationCount(dialect); v != latest || rows != n {
					t.Errorf("open #%d: schema version %d with %d rows, want %d and %d", i, v, rows, latest, n)
				}
				if i == 0 {
					org := slipway.Organisation{Name: "kept"}
					must(t, s.CreateOrganisation(ctx, &org))
				}
				n, err := s.CountOrganisations(ctx)
				must(t, err)
				if n != 1 {
					t.Errorf("open #%d: %d organisations, want 1 (data must survive reopening)", i, n)
				}
				s.Close()
			}
		})
	}
}

func TestUpgradeFromPreviousSchema(t *testing.T) {
	for _, dialect := range []string{store.DialectSQLite, store.DialectPostgres} {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			databaseURL, dataDir := dialectURL(t, dialect)
			old, err := store.OpenAtVersion(ctx, databaseURL, dataDir, 1)
			must(t, err)
			v, err := old.SchemaVersion(ctx)
			must(t, err)
			if v != 1 {
				t.Fatalf("old schema version %d, want 1", v)
			}
			// Rows written by the old schema: an organisation without a host
			// label, a service without last_seen_head, and its custom domain.
			org := slipway.Organisation{ID: "org_old", Name: "Old Org"}
			_, err = old.DB().ExecContext(ctx, rebindFor(dialect, `INSERT INTO organisations (id, name, created_at) VALUES (?, ?, ?)`),
				org.ID, org.Name, timeFor(dialect))
			must(t, err)
			app := slipway.Application{OrgID: org.ID, Name: "legacy"}
			must(t, old.CreateApplication(ctx, &app))
			_, err = old.DB().ExecContext(ctx, rebindFor(dialect, `INSERT INTO services (id, org_id, application_id, name, type, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?)`), "svc_old", org.ID, app.ID, "api", "app", timeFor(dialect), timeFor(dialect))
			must(t, err)
			_, err = old.DB().ExecContext(ctx, rebindFor(dialect, `INSERT INTO service_domains (host, service_id, org_id) VALUES (?, ?, ?)`),
				"api.old.example.test", "svc_old", org.ID)
			must(t, err)
			old.Close()

			s, err := store.Open(ctx, databaseURL, dataDir, slog.New(slog.DiscardHandler))
			must(t, err)
			defer s.Close()
			v, err = s.SchemaVersion(ctx)
			must(t, err)
			if latest := store.LatestSchemaVersion(dialect); v != latest {
				t.Fatalf("upgraded schema version %d, want %d", v, latest)
			}
			svc, err := s.GetService(ctx, org.ID, "svc_old")
			must(t, err)
			if svc.Name != "api" || svc.LastSeenHead != "" {
				t.Errorf("old service after upgrade: %+v", svc)
			}
			must(t, s.SetServiceLastSeenHead(ctx, org.ID, "svc_old", "abc123"))
			svc, err = s.GetService(ctx, org.ID, "svc_old")
			must(t, err)
			if svc.LastSeenHead != "abc123" {
				t.Errorf("LastSeenHead = %q after upgrade, want abc123", svc.LastSeenHead)
			}
			// The custom domain became a claim of the same service.
			claim, err := s.GetHostClaim(ctx, "api.old.example.test")
			must(t, err)
			if claim.ServiceID != "svc_old" || claim.Kind != slipway.HostCustom || claim.State != slipway.HostActive {
				t.Errorf("custom domain after upgrade: %+v", claim)
			}
			// The organisation gets its host label at the first start.
			waiting, err := s.ListServicesWithoutHostClaims(ctx)
			must(t, err)
			if len(waiting) != 1 || waiting[0].ID != "svc_old" {
				t.Errorf("services waiting for host claims: %v", waiting)
			}
			must(t, s.BackfillHostLabels(ctx))
			got, err := s.GetOrganisation(ctx, org.ID)
			must(t, err)
			if got.HostLabel != "old-org" {
				t.Errorf("host label after backfill = %q, want old-org", got.HostLabel)
			}
		})
	}
}

func rebindFor(dialect, q string) string {
	if dialect != store.DialectPostgres {
		return q
	}
	out, n := []byte{}, 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			out = append(out, fmt.Sprintf("$%d", n)...)
			continue
		}
		out = append(out, q[i])
	}
	return string(out)
}

func timeFor(dialect string) any { return timeAt(dialect, time.Now()) }

func TestOpenFilesAndSQLitePragmas(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(ctx, "", dir, slog.New(slog.DiscardHandler))
	must(t, err)
	defer s.Close()
	var mode string
	var fk int
	must(t, s.DB().QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode))
	must(t, s.DB().QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk))
	if mode != "wal" || fk != 1 {
		t.Errorf("journal_mode=%q foreign_keys=%d, want wal and 1", mode, fk)
	}
	if _, err := os.Stat(filepath.Join(dir, "slipway.db")); err != nil {
		t.Errorf("the SQLite database is not at dataDir/slipway.db: %v", err)
	}
	s2, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "other.db"), "", nil)
	must(t, err)
	s2.Close()
	if _, err := store.Open(ctx, "mysql://user:secret@127.0.0.1/db", "", nil); err == nil {
		t.Error("an unsupported URL scheme was accepted")
	} else if strings.Contains(err.Error(), "secret") {
		t.Errorf("the error leaks the URL's password: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := seed(t, s, "acme")

		org, err := s.GetOrganisation(ctx, f.org.ID)
		must(t, err)
		if org != f.org {
			t.Errorf("organisation = %+v, want %+v", org, f.org)
		}
		u, hash, err := s.GetUserByEmail(ctx, "ACME@example.test")
		must(t, err)
		if u != f.user || hash != "hash-acme" {
			t.Errorf("user by email = %+v %q", u, hash)
		}
		must(t, s.SetUserPassword(ctx, f.user.ID, "new-hash"))
		if _, hash, _ = s.GetUserByEmail(ctx, f.user.Email); hash != "new-hash" {
			t.Errorf("password hash = %q after update", hash)
		}
		orgs, err := s.ListOrganisationsForUser(ctx, f.user.ID)
		must(t, err)
		if len(orgs) != 1 || orgs[0].ID != f.org.ID {
			t.Errorf("organisations for user = %+v", orgs)
		}

		app, err := s.GetApplication(ctx, f.org.ID, f.app.ID)
		must(t, err)
		if app.Name != "shop" || app.Status != slipway.AppActive || app.DefaultEnvironmentID != f.env.ID || !app.CreatedAt.Equal(f.app.CreatedAt) {
			t.Errorf("application = %+v", app)
		}
		svc, err := s.GetService(ctx, f.org.ID, f.svc.ID)
		must(t, err)
		if !sameSource(svc.Source, f.svc.Source) {
			t.Errorf("service source = %+v, want %+v", svc.Source, f.svc.Source)
		}
		if svc.Build != f.svc.Build || len(svc.Domains) != 1 || svc.Domains[0] != "web-acme.example.test" || svc.ProjectID != "" {
			t.Errorf("service = %+v", svc)
		}
		if !svc.CreatedAt.Equal(f.svc.CreatedAt) || svc.CreatedAt.Location() != time.UTC {
			t.Errorf("service created_at = %v, want %v in UTC", svc.CreatedAt, f.svc.CreatedAt)
		}
		in, err := s.GetIntegration(ctx, f.org.ID, f.integ.ID)
		must(t, err)
		if in.Settings["k"] != "v" || len(in.Scopes) != 1 || in.Status != slipway.IntegrationConnected {
			t.Errorf("integration = %+v", in)
		}
		sec, err := s.GetIntegrationSecret(ctx, f.org.ID, f.integ.ID)
		must(t, err)
		if string(sec) != "ciphertext-acme" {
			t.Errorf("secret = %q", sec)
		}
		must(t, s.UpdateIntegrationSecret(ctx, f.org.ID, f.integ.ID, []byte("rotated")))
		if sec, _ = s.GetIntegrationSecret(ctx, f.org.ID, f.integ.ID); string(sec) != "rotated" {
			t.Errorf("secret after rotation = %q", sec)
		}
		checked := time.Now()
		in.Status, in.StatusReason, in.CheckedAt = slipway.IntegrationNeedsAttention, "token expired", &checked
		must(t, s.UpdateIntegration(ctx, &in))
		in2, err := s.GetIntegrationAnyOrg(ctx, f.integ.ID)
		must(t, err)
		if in2.Status != slipway.IntegrationNeedsAttention || in2.StatusReason != "token expired" || in2.CheckedAt == nil ||
			!in2.CheckedAt.Equal(checked.UTC().Truncate(time.Microsecond)) {
			t.Errorf("integration after update = %+v", in2)
		}
		must(t, s.IncrementBadSignatures(ctx, f.integ.ID))
		must(t, s.IncrementBadSignatures(ctx, f.integ.ID))
		if n, err := s.BadSignatures(ctx, f.org.ID, f.integ.ID); err != nil || n != 2 {
			t.Errorf("bad signatures = %d, %v; want 2", n, err)
		}
	})
}

func sameSource(a, b slipway.ServiceSource) bool {
	if len(a.WatchPaths) != len(b.WatchPaths) {
		return false
	}
	for i := range a.WatchPaths {
		if a.WatchPaths[i] != b.WatchPaths[i] {
			return false
		}
	}
	return a.IntegrationID == b.IntegrationID && a.RepoID == b.RepoID && a.RepoName == b.RepoName && a.Branch == b.Branch &&
		a.Tag == b.Tag && a.TagPattern == b.TagPattern && a.RootDir == b.RootDir && a.AutoDeploy == b.AutoDeploy
}

// TestTenantIsolation checks that every org-scoped read, update and delete
// treats another organisation's row exactly like a missing one.
func TestTenantIsolation(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		a := seed(t, s, "alpha")
		b := seed(t, s, "beta")
		dep := slipway.Deployment{OrgID: a.org.ID, ServiceID: a.svc.ID, CommitSHA: "abc", Trigger: slipway.TriggerManual}
		_, err := s.CreateDeployment(ctx, &dep, "")
		must(t, err)
		must(t, s.AppendDeploymentLog(ctx, dep.ID, []store.LogLine{{Text: "hello"}}))
		dlv := store.Delivery{OrgID: a.org.ID, IntegrationID: a.integ.ID, ProviderDeliveryID: "d1", Event: "push", Body: []byte("{}")}
		_, err = s.InsertDelivery(ctx, &dlv)
		must(t, err)
		hook := store.RepoHook{OrgID: a.org.ID, IntegrationID: a.integ.ID, RepoID: "42", SecretCiphertext: []byte("x"), Status: "active"}
		must(t, s.CreateRepoHook(ctx, &hook))
		prj := slipway.Project{OrgID: a.org.ID, Name: "old"}
		must(t, s.CreateProject(ctx, &prj))
		tok := slipway.APIToken{OrgID: a.org.ID, UserID: a.user.ID, Name: "ci"}
		must(t, s.CreateAPIToken(ctx, &tok, []byte("alpha-token-hash")))
		custom := slipway.Role{OrgID: a.org.ID, Name: "Viewer", Permissions: slipway.Permissions{slipway.ResServices: {slipway.ActRead}}}
		must(t, s.CreateRole(ctx, &custom))
		must(t, s.SetVariable(ctx, a.org.ID, a.svc.ID, store.Variable{Key: "PORT", Value: []byte("8080")}))
		must(t, s.ReplaceIntegrationRepos(ctx, a.org.ID, a.integ.ID, []forge.Repo{{ID: "42", FullName: "acme/web"}}, "etag-1"))

		foreign := b.org.ID
		checks := map[string]error{}
		_, checks["GetApplication"] = s.GetApplication(ctx, foreign, a.app.ID)
		_, checks["GetEnvironment"] = s.GetEnvironment(ctx, foreign, a.env.ID)
		_, checks["GetService"] = s.GetService(ctx, foreign, a.svc.ID)
		_, checks["GetDeployment"] = s.GetDeployment(ctx, foreign, dep.ID)
		_, checks["LatestDeployment"] = s.LatestDeployment(ctx, foreign, a.svc.ID)
		_, checks["ReadDeploymentLogs"] = s.ReadDeploymentLogs(ctx, foreign, dep.ID, 0, 10)
		_, checks["TransitionDeployment"] = s.TransitionDeployment(ctx, foreign, dep.ID, slipway.DeployCloning, "")
		_, checks["GetIntegration"] = s.GetIntegration(ctx, foreign, a.integ.ID)
		_, checks["GetIntegrationSecret"] = s.GetIntegrationSecret(ctx, foreign, a.integ.ID)
		_, checks["GetDelivery"] = s.GetDelivery(ctx, foreign, dlv.ID)
		_, checks["GetRepoHook"] = s.GetRepoHook(ctx, foreign, a.integ.ID, "42")
		_, checks["GetProject"] = s.GetProject(ctx, foreign, prj.ID)
		_, checks["GetRole"] = s.GetRole(ctx, foreign, custom.ID)
		_, checks["GetRoleByName"] = s.GetRoleByName(ctx, foreign, "Viewer")
		_, checks["GetMembership"] = s.GetMembership(ctx, foreign, a.user.ID)
		_, checks["ListVariables"] = s.ListVariables(ctx, foreign, a.svc.ID)
		_, _, checks["ListIntegrationRepos"] = s.ListIntegrationRepos(ctx, foreign, a.integ.ID, "", store.Page{})
		_, checks["IntegrationReposETag"] = s.IntegrationReposETag(ctx, foreign, a.integ.ID)
		_, checks["BadSignatures"] = s.BadSignatures(ctx, foreign, a.integ.ID)

		app := a.app
		app.OrgID = foreign
		checks["UpdateApplication"] = s.UpdateApplication(ctx, &app)
		env := a.env
		env.OrgID = foreign
		checks["UpdateEnvironment"] = s.UpdateEnvironment(ctx, &env)
		checks["SetDefaultEnvironment"] = s.SetDefaultEnvironment(ctx, foreign, a.app.ID, a.env.ID)
		svc := a.svc
		svc.OrgID = foreign
		checks["UpdateService"] = s.UpdateService(ctx, &svc)
		checks["SetServiceLastSeenHead"] = s.SetServiceLastSeenHead(ctx, foreign, a.svc.ID, "x")
		checks["SetLiveDeployment"] = s.SetLiveDeployment(ctx, foreign, a.svc.ID, dep.ID)
		checks["SetDeployHookToken"] = s.SetDeployHookToken(ctx, foreign, a.svc.ID, []byte("h"))
		checks["SetVariable"] = s.SetVariable(ctx, foreign, a.svc.ID, store.Variable{Key: "X", Value: []byte("1")})
		checks["DeleteVariable"] = s.DeleteVariable(ctx, foreign, a.svc.ID, "PORT")
		checks["MoveServiceToEnvironment"] = s.MoveServiceToEnvironment(ctx, foreign, a.svc.ID, a.app.ID, a.env.ID, "n")
		in := a.integ
		in.OrgID = foreign
		checks["UpdateIntegration"] = s.UpdateIntegration(ctx, &in)
		checks["UpdateIntegrationSecret"] = s.UpdateIntegrationSecret(ctx, foreign, a.integ.ID, []byte("stolen"))
		checks["ReplaceIntegrationRepos"] = s.ReplaceIntegrationRepos(ctx, foreign, a.integ.ID, nil, "")
		checks["AddIntegrationRepos"] = s.AddIntegrationRepos(ctx, foreign, a.integ.ID, []forge.Repo{{ID: "9", FullName: "x/y"}})
		checks["RemoveIntegrationRepos"] = s.RemoveIntegrationRepos(ctx, foreign, a.integ.ID, []string{"42"})
		checks["UpdateRepoName"] = s.UpdateRepoName(ctx, foreign, a.integ.ID, "42", "evil/web")
		h := hook
		h.OrgID = foreign
		checks["UpdateRepoHook"] = s.UpdateRepoHook(ctx, &h)
		checks["UpdateDeliveryVerdict"] = s.UpdateDeliveryVerdict(ctx, foreign, dlv.ID, store.VerdictProcessed, "", nil)
		checks["MarkProjectMigrated"] = s.MarkProjectMigrated(ctx, foreign, prj.ID, a.app.ID, a.env.ID, time.Now())
		r := custom
		r.OrgID = foreign
		checks["UpdateRole"] = s.UpdateRole(ctx, &r)
		checks["UpdateMemberRole"] = s.UpdateMemberRole(ctx, foreign, a.user.ID, b.admin.ID)
		checks["DeleteAPIToken"] = s.DeleteAPIToken(ctx, foreign, tok.ID)
		checks["DeleteRepoHook"] = s.DeleteRepoHook(ctx, foreign, hook.ID)
		checks["DeleteRole"] = s.DeleteRole(ctx, foreign, custom.ID)
		checks["RemoveMember"] = s.RemoveMember(ctx, foreign, a.user.ID)
		checks["DeleteService"] = s.DeleteService(ctx, foreign, a.svc.ID)
		checks["DeleteIntegration"] = s.DeleteIntegration(ctx, foreign, a.integ.ID)
		for name, err := range checks {
			wantCode(t, err, slipway.ECodeNotFound, name)
		}

		// Nothing of alpha's changed, and alpha still sees everything.
		got, err := s.GetService(ctx, a.org.ID, a.svc.ID)
		must(t, err)
		if got.Name != "web" || got.LastSeenHead != "" || got.LiveDeploymentID != "" {
			t.Errorf("alpha's service was modified through beta: %+v", got)
		}
		sec, err := s.GetIntegrationSecret(ctx, a.org.ID, a.integ.ID)
		must(t, err)
		if string(sec) != "ciphertext-alpha" {
			t.Errorf("alpha's secret was modified through beta: %q", sec)
		}
		repos, total, err := s.ListIntegrationRepos(ctx, a.org.ID, a.integ.ID, "", store.Page{})
		must(t, err)
		if total != 1 || repos[0].FullName != "acme/web" {
			t.Errorf("alpha's repositories were modified through beta: %+v", repos)
		}
		vars, err := s.ListVariables(ctx, a.org.ID, a.svc.ID)
		must(t, err)
		if len(vars) != 1 {
			t.Errorf("alpha's variables = %+v", vars)
		}
		d, err := s.GetDeployment(ctx, a.org.ID, dep.ID)
		must(t, err)
		if d.Status != slipway.DeployQueued {
			t.Errorf("alpha's deployment moved to %s through beta", d.Status)
		}

		// Lists of beta hold none of alpha's rows.
		apps, n, err := s.ListApplications(ctx, foreign, store.ApplicationFilter{}, store.Page{})
		must(t, err)
		if n != 1 || apps[0].ID != b.app.ID {
			t.Errorf("beta lists applications %+v", apps)
		}
		svcs, n, err := s.ListServices(ctx, foreign, store.ServiceFilter{IntegrationID: a.integ.ID, RepoID: "42"}, store.Page{})
		must(t, err)
		if n != 0 || len(svcs) != 0 {
			t.Errorf("beta finds alpha's services by repository: %+v", svcs)
		}
		deps, n, err := s.ListDeployments(ctx, foreign, a.svc.ID, store.Page{})
		must(t, err)
		if n != 0 || len(deps) != 0 {
			t.Errorf("beta lists alpha's deployments: %+v", deps)
		}
		dls, n, err := s.ListDeliveries(ctx, foreign, a.integ.ID, store.Page{})
		must(t, err)
		if n != 0 || len(dls) != 0 {
			t.Errorf("beta lists alpha's deliveries: %+v", dls)
		}
		ints, err := s.ListIntegrations(ctx, foreign)
		must(t, err)
		if len(ints) != 1 || ints[0].ID != b.integ.ID {
			t.Errorf("beta lists integrations %+v", ints)
		}
		toks, err := s.ListAPITokens(ctx, foreign, a.user.ID)
		must(t, err)
		if len(toks) != 0 {
			t.Errorf("beta lists alpha's tokens: %+v", toks)
		}

		// A child cannot be attached to another organisation's parent.
		wantCode(t, s.CreateEnvironment(ctx, &slipway.Environment{OrgID: foreign, ApplicationID: a.app.ID, Name: "x"}),
			slipway.ECodeNotFound, "CreateEnvironment under a foreign application")
		wantCode(t, s.CreateService(ctx, &slipway.Service{OrgID: foreign, EnvironmentID: a.env.ID, Name: "x"}),
			slipway.ECodeNotFound, "CreateService under a foreign environment")
		_, err = s.CreateDeployment(ctx, &slipway.Deployment{OrgID: foreign, ServiceID: a.svc.ID, Trigger: slipway.TriggerManual}, "")
		wantCode(t, err, slipway.ECodeNotFound, "CreateDeployment for a foreign service")
		wantCode(t, s.AddMember(ctx, &slipway.Membership{OrgID: foreign, UserID: a.user.ID, RoleID: a.admin.ID}),
			slipway.ECodeNotFound, "AddMember with a foreign role")
	})
}

func TestUniqueConflicts(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := seed(t, s, "acme")
		other := seed(t, s, "other")

		err := s.CreateApplication(ctx, &slipway.Application{OrgID: f.org.ID, Name: "SHOP"})
		wantCode(t, err, slipway.ECodeConflict, "application name, other case")
		if e, ok := slipway.AsError(err); ok && e.Message != `an application named "SHOP" already exists` {
			t.Errorf("conflict message = %q", e.Message)
		}
		// The same name in another organisation is fine.
		must(t, s.CreateApplication(ctx, &slipway.Application{OrgID: other.org.ID, Name: "Shop2"}))
		app2 := slipway.Application{OrgID: f.org.ID, Name: "blog"}
		must(t, s.CreateApplication(ctx, &app2))
		app2.Name = "shop"
		wantCode(t, s.UpdateApplication(ctx, &app2), slipway.ECodeConflict, "rename application onto a taken name")

		wantCode(t, s.CreateEnvironment(ctx, &slipway.Environment{OrgID: f.org.ID, ApplicationID: f.app.ID, Name: "Production"}),
			slipway.ECodeConflict, "environment name")
		must(t, s.CreateEnvironment(ctx, &slipway.Environment{OrgID: f.org.ID, ApplicationID: app2.ID, Name: "production"}))

		wantCode(t, s.CreateService(ctx, &slipway.Service{OrgID: f.org.ID, ApplicationID: f.app.ID, EnvironmentID: f.env.ID, Name: "WEB"}),
			slipway.ECodeConflict, "service name in environment")
		// Once the other organisation proved its domain, nobody else may ask for it.
		must(t, s.VerifyDomain(ctx, other.org.ID, other.svc.ID, "web-other.example.test"))
		wantCode(t, s.CreateService(ctx, &slipway.Service{OrgID: f.org.ID, ApplicationID: f.app.ID, EnvironmentID: f.env.ID, Name: "api",
			Domains: []string{"web-other.example.test"}}), slipway.ECodeHostTaken, "domain used by another organisation's service")
		// The failed insert left no half-created service behind.
		if _, n, _ := s.ListServices(ctx, f.org.ID, store.ServiceFilter{}, store.Page{}); n != 1 {
			t.Errorf("%d services after failed creates, want 1", n)
		}

		wantCode(t, s.CreateRole(ctx, &slipway.Role{OrgID: f.org.ID, Name: "admin"}), slipway.ECodeConflict, "role name")
		wantCode(t, s.CreateUser(ctx, &slipway.User{Email: "Acme@Example.test"}, ""), slipway.ECodeConflict, "user email")
		wantCode(t, s.AddMember(ctx, &slipway.Membership{OrgID: f.org.ID, UserID: f.user.ID, RoleID: f.admin.ID}),
			slipway.ECodeConflict, "membership")
		must(t, s.CreateRepoHook(ctx, &store.RepoHook{OrgID: f.org.ID, IntegrationID: f.integ.ID, RepoID: "1"}))
		wantCode(t, s.CreateRepoHook(ctx, &store.RepoHook{OrgID: f.org.ID, IntegrationID: f.integ.ID, RepoID: "1"}),
			slipway.ECodeConflict, "second hook on the same repository")
	})
}

func TestRoles(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := seed(t, s, "acme")
		admin := f.admin
		admin.Name = "Boss"
		wantCode(t, s.UpdateRole(ctx, &admin), slipway.ECodeForbidden, "edit built-in role")
		wantCode(t, s.DeleteRole(ctx, f.org.ID, f.admin.ID), slipway.ECodeConflict, "delete built-in role")

		dev := slipway.Role{OrgID: f.org.ID, Name: slipway.RoleDeveloper, Permissions: slipway.DeveloperPermissions()}
		must(t, s.CreateRole(ctx, &dev))
		dev.Permissions = slipway.Permissions{slipway.ResServices: {slipway.ActRead, slipway.ActUpdate}}
		must(t, s.UpdateRole(ctx, &dev))
		got, err := s.GetRoleByName(ctx, f.org.ID, "developer")
		must(t, err)
		if !got.Permissions.Allows(slipway.ResServices, slipway.ActUpdate) || got.Permissions.Allows(slipway.ResApplications, slipway.ActRead) {
			t.Errorf("permissions after update = %v", got.Permissions)
		}
		u := slipway.User{Email: "dev@example.test"}
		must(t, s.CreateUser(ctx, &u, ""))
		must(t, s.AddMember(ctx, &slipway.Membership{OrgID: f.org.ID, UserID: u.ID, RoleID: dev.ID}))
		wantCode(t, s.DeleteRole(ctx, f.org.ID, dev.ID), slipway.ECodeConflict, "delete role in use")
		must(t, s.UpdateMemberRole(ctx, f.org.ID, u.ID, f.admin.ID))
		m, err := s.GetMembership(ctx, f.org.ID, u.ID)
		must(t, err)
		if m.RoleID != f.admin.ID || m.User == nil || m.User.Email != "dev@example.test" {
			t.Errorf("membership = %+v", m)
		}
		must(t, s.DeleteRole(ctx, f.org.ID, dev.ID))
		roles, err := s.ListRoles(ctx, f.org.ID)
		must(t, err)
		if len(roles) != 1 || !roles[0].BuiltIn {
			t.Errorf("roles = %+v", roles)
		}
		members, total, err := s.ListMembers(ctx, f.org.ID, store.Page{Limit: 1})
		must(t, err)
		if total != 2 || len(members) != 1 || members[0].User.Email != "acme@example.test" {
			t.Errorf("members page = %+v (total %d)", members, total)
		}
		must(t, s.RemoveMember(ctx, f.org.ID, u.ID))
		_, err = s.GetMembership(ctx, f.org.ID, u.ID)
		wantCode(t, err, slipway.ECodeNotFound, "removed member")
	})
}

func TestTokensAndSessions(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := seed(t, s, "acme")
		past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
		live := slipway.APIToken{OrgID: f.org.ID, UserID: f.user.ID, Name: "ci", ExpiresAt: &future}
		must(t, s.CreateAPIToken(ctx, &live, []byte("live")))
		expired := slipway.APIToken{OrgID: f.org.ID, UserID: f.user.ID, Name: "old", ExpiresAt: &past}
		must(t, s.CreateAPIToken(ctx, &expired, []byte("expired")))
		forever := slipway.APIToken{OrgID: f.org.ID, UserID: f.user.ID, Name: "forever"}
		must(t, s.CreateAPIToken(ctx, &forever, []byte("forever")))

		got, err := s.LookupAPIToken(ctx, []byte("live"))
		must(t, err)
		if got.ID != live.ID || got.OrgID != f.org.ID || got.LastUsedAt != nil {
			t.Errorf("lookup = %+v", got)
		}
		_, err = s.LookupAPIToken(ctx, []byte("expired"))
		wantCode(t, err, slipway.ECodeNotFound, "expired token")
		_, err = s.LookupAPIToken(ctx, []byte("nope"))
		wantCode(t, err, slipway.ECodeNotFound, "unknown token")
		if _, err := s.LookupAPIToken(ctx, []byte("forever")); err != nil {
			t.Errorf("token without expiry: %v", err)
		}
		used := time.Now()
		must(t, s.TouchAPIToken(ctx, live.ID, used))
		got, _ = s.LookupAPIToken(ctx, []byte("live"))
		if got.LastUsedAt == nil || !got.LastUsedAt.Equal(used.UTC().Truncate(time.Microsecond)) {
			t.Errorf("last used = %v, want %v", got.LastUsedAt, used)
		}
		toks, err := s.ListAPITokens(ctx, f.org.ID, f.user.ID)
		must(t, err)
		if len(toks) != 3 {
			t.Errorf("%d tokens listed, want 3", len(toks))
		}
		must(t, s.DeleteAPIToken(ctx, f.org.ID, live.ID))
		_, err = s.LookupAPIToken(ctx, []byte("live"))
		wantCode(t, err, slipway.ECodeNotFound, "deleted token")

		must(t, s.CreateSession(ctx, store.Session{IDHash: []byte("s1"), UserID: f.user.ID, OrgID: f.org.ID, CSRFToken: "c", ExpiresAt: future}))
		must(t, s.CreateSession(ctx, store.Session{IDHash: []byte("s2"), UserID: f.user.ID, CSRFToken: "c", ExpiresAt: past}))
		sess, err := s.LookupSession(ctx, []byte("s1"))
		must(t, err)
		if sess.UserID != f.user.ID || sess.OrgID != f.org.ID || sess.CSRFToken != "c" {
			t.Errorf("session = %+v", sess)
		}
		_, err = s.LookupSession(ctx, []byte("s2"))
		wantCode(t, err, slipway.ECodeNotFound, "expired session")
		n, err := s.DeleteExpiredSessions(ctx, time.Now())
		must(t, err)
		if n != 1 {
			t.Errorf("deleted %d expired sessions, want 1", n)
		}
		must(t, s.DeleteSession(ctx, []byte("s1")))
		_, err = s.LookupSession(ctx, []byte("s1"))
		wantCode(t, err, slipway.ECodeNotFound, "deleted session")
	})
}

func TestEnvironmentsOneDefault(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := seed(t, s, "acme")
		staging := slipway.Environment{OrgID: f.org.ID, ApplicationID: f.app.ID, Name: "staging"}
		must(t, s.CreateEnvironment(ctx, &staging))
		must(t, s.SetDefaultEnvironment(ctx, f.org.ID, f.app.ID, staging.ID))
		envs, err := s.ListEnvironments(ctx, f.org.ID, f.app.ID)
		must(t, err)
		defaults := 0
		for _, e := range envs {
			if e.IsDefault {
				defaults++
				if e.ID != staging.ID {
					t.Errorf("default is %s, want staging", e.Name)
				}
			}
		}
		if defaults != 1 || envs[0].ID != staging.ID {
			t.Errorf("%d defaults, first %s; want exactly staging first", defaults, envs[0].Name)
		}
		app, err := s.GetApplication(ctx, f.org.ID, f.app.ID)
		must(t, err)
		if app.DefaultEnvironmentID != staging.ID {
			t.Errorf("application default = %s, want %s", app.DefaultEnvironmentID, staging.ID)
		}
		// Creating another default environment moves the default, too.
		qa := slipway.Environment{OrgID: f.org.ID, ApplicationID: f.app.ID, Name: "qa", IsDefault: true}
		must(t, s.CreateEnvironment(ctx, &qa))
		old, err := s.GetEnvironment(ctx, f.org.ID, staging.ID)
		must(t, err)
		if old.IsDefault {
			t.Error("staging is still default after qa was created as default")
		}
		qa.Name = "QA"
		qa.Status = slipway.EnvDraft
		must(t, s.UpdateEnvironment(ctx, &qa))
		got, _ := s.GetEnvironment(ctx, f.org.ID, qa.ID)
		if got.Name != "QA" || got.Status != slipway.EnvDraft || !got.IsDefault {
			t.Errorf("qa after update = %+v", got)
		}
		wantCode(t, s.SetDefaultEnvironment(ctx, f.org.ID, f.app.ID, "env_missing"), slipway.ECodeNotFound, "missing environment")
	})
}

func TestServices(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := seed(t, s, "acme")
		must(t, s.VerifyDomain(ctx, f.org.ID, f.svc.ID, "web-acme.example.test"))
		svc, err := s.GetServiceByDomain(ctx, "WEB-ACME.example.test")
		must(t, err)
		if svc.ID != f.svc.ID {
			t.Errorf("by domain = %s", svc.ID)
		}
		svc.Domains = []string{"shop.example.test", "www.shop.example.test"}
		svc.Source.Branch = "release"
		svc.AutoDeployPaused = true
		if svc.MaxBodyMB != slipway.DefaultMaxBodyMB || svc.HSTS {
			t.Errorf("routing settings of a new service: max_body_mb %d hsts %v", svc.MaxBodyMB, svc.HSTS)
		}
		svc.MaxBodyMB, svc.HSTS = 7, true
		must(t, s.UpdateService(ctx, &svc))
		if got, err := s.GetService(ctx, f.org.ID, svc.ID); err != nil || got.MaxBodyMB != 7 || !got.HSTS {
			t.Errorf("routing settings after update: %+v, %v", got, err)
		}
		_, err = s.GetServiceByDomain(ctx, "web-acme.example.test")
		wantCode(t, err, slipway.ECodeNotFound, "removed domain")
		must(t, s.VerifyDomain(ctx, f.org.ID, f.svc.ID, "www.shop.example.test"))
		if got, err := s.GetServiceByDomain(ctx, "www.shop.example.test"); err != nil || got.Source.Branch != "release" {
			t.Errorf("by new domain = %+v, %v", got, err)
		}
		auto, err := s.ListServicesWithAutoDeploy(ctx)
		must(t, err)
		if len(auto) != 0 {
			t.Errorf("paused service listed for auto-deploy: %+v", auto)
		}
		svc.AutoDeployPaused = false
		must(t, s.UpdateService(ctx, &svc))
		docker := slipway.Service{OrgID: f.org.ID, ApplicationID: f.app.ID, EnvironmentID: f.env.ID, Name: "cache",
			Type: slipway.ServiceDocker, Image: "redis:7"}
		must(t, s.CreateService(ctx, &docker))
		auto, err = s.ListServicesWithAutoDeploy(ctx)
		must(t, err)
		if len(auto) != 1 || auto[0].ID != f.svc.ID {
			t.Errorf("auto-deploy services = %+v", auto)
		}
		// Services following a tag or a tag pattern are reconciled too.
		tagged := slipway.Service{OrgID: f.org.ID, ApplicationID: f.app.ID, EnvironmentID: f.env.ID, Name: "release", Type: slipway.ServiceApp,
			Source: slipway.ServiceSource{IntegrationID: f.integ.ID, RepoID: "42", RepoName: svc.Source.RepoName, TagPattern: "v*", AutoDeploy: true}}
		must(t, s.CreateService(ctx, &tagged))
		auto, err = s.ListServicesWithAutoDeploy(ctx)
		must(t, err)
		if len(auto) != 2 {
			t.Errorf("auto-deploy services with a tag pattern = %+v", auto)
		}
		must(t, s.DeleteService(ctx, f.org.ID, tagged.ID))
		list, total, err := s.ListServices(ctx, f.org.ID, store.ServiceFilter{IntegrationID: f.integ.ID, RepoID: "42"}, store.Page{})
		must(t, err)
		if total != 1 || list[0].ID != f.svc.ID {
			t.Errorf("services by repository = %+v", list)
		}
		list, total, err = s.ListServices(ctx, f.org.ID, store.ServiceFilter{EnvironmentID: f.env.ID}, store.Page{Limit: 1, Offset: 1})
		must(t, err)
		if total != 2 || len(list) != 1 || list[0].Name != "web" {
			t.Errorf("second page of services = %+v (total %d)", list, total)
		}

		must(t, s.SetDeployHookToken(ctx, f.org.ID, f.svc.ID, []byte("hook-hash")))
		byHook, err := s.GetServiceByDeployHook(ctx, []byte("hook-hash"))
		must(t, err)
		if byHook.ID != f.svc.ID {
			t.Errorf("by deploy hook = %s", byHook.ID)
		}
		_, err = s.GetServiceByDeployHook(ctx, []byte("other"))
		wantCode(t, err, slipway.ECodeNotFound, "unknown deploy hook")

		must(t, s.SetVariable(ctx, f.org.ID, f.svc.ID, store.Variable{Key: "PORT", Value: []byte("8080")}))
		must(t, s.SetVariable(ctx, f.org.ID, f.svc.ID, store.Variable{Key: "DB_PASSWORD", Value: []byte{0, 1, 2}, Secret: true}))
		must(t, s.SetVariable(ctx, f.org.ID, f.svc.ID, store.Variable{Key: "PORT", Value: []byte("9090")}))
		vars, err := s.ListVariables(ctx, f.org.ID, f.svc.ID)
		must(t, err)
		if len(vars) != 2 || vars[0].Key != "DB_PASSWORD" || !vars[0].Secret || string(vars[1].Value) != "9090" {
			t.Errorf("variables = %+v", vars)
		}
		must(t, s.DeleteVariable(ctx, f.org.ID, f.svc.ID, "PORT"))
		wantCode(t, s.DeleteVariable(ctx, f.org.ID, f.svc.ID, "PORT"), slipway.ECodeNotFound, "deleted variable")

		must(t, s.ReplaceIntegrationRepos(ctx, f.org.ID, f.integ.ID, []forge.Repo{{ID: "42", FullName: "acme/web"}}, ""))
		must(t, s.UpdateRepoName(ctx, f.org.ID, f.integ.ID, "42", "acme-corp/web"))
		got, _ := s.GetService(ctx, f.org.ID, f.svc.ID)
		if got.Source.RepoName != "acme-corp/web" {
			t.Errorf("repo name after rename = %q", got.Source.RepoName)
		}

		must(t, s.DeleteService(ctx, f.org.ID, docker.ID))
		_, err = s.GetService(ctx, f.org.ID, docker.ID)
		wantCode(t, err, slipway.ECodeNotFound, "deleted service")
	})
}

func TestDeploymentStatusMachine(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := seed(t, s, "acme")
		d := slipway.Deployment{OrgID: f.org.ID, ServiceID: f.svc.ID, CommitSHA: "abc", Trigger: slipway.TriggerPush}
		created, err := s.CreateDeployment(ctx, &d, "")
		must(t, err)
		if !created || d.Status != slipway.DeployQueued {
			t.Fatalf("created=%v status=%s", created, d.Status)
		}
		_, err = s.TransitionDeployment(ctx, f.org.ID, d.ID, slipway.DeployLive, "")
		wantCode(t, err, slipway.ECodeInvalidTransition, "queued → live")
		for _, to := range []slipway.DeploymentStatus{slipway.DeployCloning, slipway.DeployBuilding, slipway.DeployDeploying, slipway.DeployLive} {
			if _, err := s.TransitionDeployment(ctx, f.org.ID, d.ID, to, ""); err != nil {
				t.Fatalf("→ %s: %v", to, err)
			}
		}
		got, err := s.GetDeployment(ctx, f.org.ID, d.ID)
		must(t, err)
		if got.Status != slipway.DeployLive || got.StartedAt == nil || got.FinishedAt == nil {
			t.Errorf("live deployment = %+v", got)
		}
		wantPhases := []slipway.DeploymentStatus{slipway.DeployQueued, slipway.DeployCloning, slipway.DeployBuilding, slipway.DeployDeploying, slipway.DeployLive}
		if len(got.Phases) != len(wantPhases) {
			t.Fatalf("phases = %+v", got.Phases)
		}
		for i, p := range got.Phases {
			if p.Phase != wantPhases[i] {
				t.Errorf("phase %d = %s, want %s", i, p.Phase, wantPhases[i])
			}
			if open := p.FinishedAt == nil; open != (i == len(got.Phases)-1) {
				t.Errorf("phase %s open=%v", p.Phase, open)
			}
		}
		must(t, s.SetLiveDeployment(ctx, f.org.ID, f.svc.ID, d.ID))
		svc, _ := s.GetService(ctx, f.org.ID, f.svc.ID)
		if svc.LiveDeploymentID != d.ID {
			t.Errorf("live deployment id = %q", svc.LiveDeploymentID)
		}
		_, err = s.TransitionDeployment(ctx, f.org.ID, d.ID, slipway.DeployFailed, "boom")
		wantCode(t, err, slipway.ECodeInvalidTransition, "live → failed")
		rep, err := s.TransitionDeployment(ctx, f.org.ID, d.ID, slipway.DeployReplaced, "")
		must(t, err)
		if rep.Phases[len(rep.Phases)-1].FinishedAt == nil {
			t.Error("the live phase stayed open after replacement")
		}

		d2 := slipway.Deployment{OrgID: f.org.ID, ServiceID: f.svc.ID, CommitSHA: "def", Trigger: slipway.TriggerManual}
		_, err = s.CreateDeployment(ctx, &d2, "")
		must(t, err)
		f2, err := s.TransitionDeployment(ctx, f.org.ID, d2.ID, slipway.DeployFailed, "clone failed: repository not visible")
		must(t, err)
		if f2.Error != "clone failed: repository not visible" || f2.FinishedAt == nil {
			t.Errorf("failed deployment = %+v", f2)
		}
		latest, err := s.LatestDeployment(ctx, f.org.ID, f.svc.ID)
		must(t, err)
		if latest.ID != d2.ID {
			t.Errorf("latest = %s, want %s", latest.ID, d2.ID)
		}
		list, total, err := s.ListDeployments(ctx, f.org.ID, f.svc.ID, store.Page{})
		must(t, err)
		if total != 2 || list[0].ID != d2.ID {
			t.Errorf("deployments newest first = %v (total %d)", ids(list), total)
		}
		byStatus, err := s.ListDeploymentsByStatus(ctx, slipway.DeployFailed, slipway.DeployQueued)
		must(t, err)
		if len(byStatus) != 1 || byStatus[0].ID != d2.ID {
			t.Errorf("by status = %v", ids(byStatus))
		}
	})
}

func ids(ds []slipway.Deployment) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

// TestTransitionRace has many workers race the same transition: the
// compare-and-set lets exactly one win.
func TestTransitionRace(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := seed(t, s, "acme")
		for round := range 5 {
			d := slipway.Deployment{OrgID: f.org.ID, ServiceID: f.svc.ID, CommitSHA: fmt.Sprint(round), Trigger: slipway.TriggerPush}
			_, err := s.CreateDeployment(ctx, &d, "")
			must(t, err)
			const workers = 8
			var (
				wg        sync.WaitGroup
				mu        sync.Mutex
				wins      int
				otherErrs []error
			)
			start := make(chan struct{})
			for range workers {
				wg.Go(func() {
					<-start
					_, err := s.TransitionDeployment(ctx, f.org.ID, d.ID, slipway.DeployCloning, "")
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						wins++
					case slipway.ErrorCodeOf(err) != slipway.ECodeInvalidTransition:
						otherErrs = append(otherErrs, err)
					}
				})
			}
			close(start)
			wg.Wait()
			if wins != 1 || len(otherErrs) > 0 {
				t.Fatalf("round %d: %d winners, unexpected errors %v; want exactly one winner", round, wins, otherErrs)
			}
			got, _ := s.GetDeployment(ctx, f.org.ID, d.ID)
			if len(got.Phases) != 2 {
				t.Errorf("round %d: phases %+v, want queued and cloning once", round, got.Phases)
			}
		}
	})
}

func TestDeploymentDedupe(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := seed(t, s, "acme")
		key := f.svc.ID + ":abc"
		first := slipway.Deployment{OrgID: f.org.ID, ServiceID: f.svc.ID, CommitSHA: "abc", Trigger: slipway.TriggerPush}
		created, err := s.CreateDeployment(ctx, &first, key)
		must(t, err)
		if !created {
			t.Fatal("first insert not created")
		}
		// Racing duplicates: none creates a second row.
		var wg sync.WaitGroup
		results := make(chan string, 6)
		for range 6 {
			wg.Go(func() {
				d := slipway.Deployment{OrgID: f.org.ID, ServiceID: f.svc.ID, CommitSHA: "abc", Trigger: slipway.TriggerReconcile}
				created, err := s.CreateDeployment(ctx, &d, key)
				if err != nil || created {
					results <- fmt.Sprintf("created=%v err=%v", created, err)
					return
				}
				results <- d.ID
			})
		}
		wg.Wait()
		close(results)
		for r := range results {
			if r != first.ID {
				t.Errorf("duplicate insert answered %s, want the existing %s", r, first.ID)
			}
		}
		// Without a key, manual deployments of the same commit are separate.
		for range 2 {
			d := slipway.Deployment{OrgID: f.org.ID, ServiceID: f.svc.ID, CommitSHA: "abc", Trigger: slipway.TriggerManual}
			created, err := s.CreateDeployment(ctx, &d, "")
			must(t, err)
			if !created {
				t.Error("keyless deployment was deduplicated")
			}
		}
		if _, total, _ := s.ListDeployments(ctx, f.org.ID, f.svc.ID, store.Page{}); total != 3 {
			t.Errorf("%d deployments, want 3", total)
		}
	})
}

func TestDeploymentLogs(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := seed(t, s, "acme")
		d := slipway.Deployment{OrgID: f.org.ID, ServiceID: f.svc.ID, CommitSHA: "abc", Trigger: slipway.TriggerManual}
		_, err := s.CreateDeployment(ctx, &d, "")
		must(t, err)
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := range 5 {
					lines := []store.LogLine{{Stream: "stdout", Text: fmt.Sprintf("w%d line %d a", w, i)}, {Stream: "stderr", Text: "b"}}
					if err := s.AppendDeploymentLog(ctx, d.ID, lines); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		all, err := s.ReadDeploymentLogs(ctx, f.org.ID, d.ID, 0, 0)
		must(t, err)
		if len(all) != 40 {
			t.Fatalf("%d lines, want 40", len(all))
		}
		for i, l := range all {
			if l.Seq != int64(i+1) {
				t.Fatalf("line %d has seq %d: sequence must be gapless and increasing", i, l.Seq)
			}
		}
		tail, err := s.ReadDeploymentLogs(ctx, f.org.ID, d.ID, 35, 3)
		must(t, err)
		if len(tail) != 3 || tail[0].Seq != 36 {
			t.Errorf("tail = %+v", tail)
		}
		wantCode(t, s.AppendDeploymentLog(ctx, "dep_missing", []store.LogLine{{Text: "x"}}), slipway.ECodeNotFound, "log for a missing deployment")
	})
}

func TestDeliveries(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := seed(t, s, "acme")
		d := store.Delivery{OrgID: f.org.ID, IntegrationID: f.integ.ID, ProviderDeliveryID: "gh-1", Event: "push",
			Headers: map[string]string{"X-GitHub-Event": "push"}, Body: []byte(`{"ref":"refs/heads/main"}`)}
		created, err := s.InsertDelivery(ctx, &d)
		must(t, err)
		if !created || d.Verdict != store.VerdictReceived {
			t.Fatalf("created=%v verdict=%s", created, d.Verdict)
		}
		dup := store.Delivery{OrgID: f.org.ID, IntegrationID: f.integ.ID, ProviderDeliveryID: "gh-1", Event: "push", Body: []byte("{}")}
		created, err = s.InsertDelivery(ctx, &dup)
		must(t, err)
		if created || dup.ID != d.ID || string(dup.Body) != `{"ref":"refs/heads/main"}` || dup.Headers["X-GitHub-Event"] != "push" {
			t.Errorf("redelivery: created=%v row=%+v", created, dup)
		}
		// Providers without delivery ids are never deduplicated.
		for range 2 {
			anon := store.Delivery{OrgID: f.org.ID, IntegrationID: f.integ.ID, Event: "push", Body: []byte("{}")}
			created, err := s.InsertDelivery(ctx, &anon)
			must(t, err)
			if !created {
				t.Error("delivery without provider id was deduplicated")
			}
		}
		must(t, s.UpdateDeliveryVerdict(ctx, f.org.ID, d.ID, store.VerdictProcessed, "1 deployment", []string{"dep_1"}))
		got, err := s.GetDelivery(ctx, f.org.ID, d.ID)
		must(t, err)
		if got.Verdict != store.VerdictProcessed || got.ProcessedAt == nil || len(got.Caused) != 1 || got.Caused[0] != "dep_1" {
			t.Errorf("delivery after verdict = %+v", got)
		}
		list, total, err := s.ListDeliveries(ctx, f.org.ID, f.integ.ID, store.Page{Limit: 2})
		must(t, err)
		if total != 3 || len(list) != 2 {
			t.Errorf("deliveries page: %d of %d", len(list), total)
		}
	})
}

func TestOAuthStateWorksOnceForItsUserInItsBrowser(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := time.Now()
		st := store.OAuthState{State: "st-1", OrgID: "org_x", UserID: "usr_x", Purpose: "connect", Verifier: "v", RedirectTo: "/integrations",
			ExpiresAt: now.Add(10 * time.Minute)}
		must(t, s.CreateOAuthState(ctx, st))
		right := store.OAuthStateClaim{State: "st-1", UserID: "usr_x", NonceHash: "nonce-hash-x"}

		// Not bound to a browser yet: nobody can spend it.
		_, err := s.ConsumeOAuthState(ctx, right, now)
		wantCode(t, err, slipway.ECodeNotFound, "unbound state")
		// Only the starting user binds it.
		wantCode(t, s.BindOAuthState(ctx, "st-1", "usr_other", "nonce-hash-o", now), slipway.ECodeNotFound, "another user binds")
		must(t, s.BindOAuthState(ctx, "st-1", "usr_x", "nonce-hash-x", now))

		// Claims by another user, by another browser, or with no nonce
		// leave the state usable.
		for _, c := range []store.OAuthStateClaim{
			{State: "st-1", UserID: "usr_other", NonceHash: "nonce-hash-x"},
			{State: "st-1", UserID: "usr_x", NonceHash: "nonce-hash-o"},
			{State: "st-1", UserID: "usr_x"},
			{State: "st-1", NonceHash: "nonce-hash-x"},
		} {
			_, err := s.ConsumeOAuthState(ctx, c, now)
			wantCode(t, err, slipway.ECodeNotFound, fmt.Sprintf("claim %+v", c))
		}
		if peek, err := s.PeekOAuthState(ctx, "st-1", now); err != nil || peek.NonceHash != "nonce-hash-x" {
			t.Fatalf("after refused claims: %+v, %v; want the state still there, bound", peek, err)
		}

		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			wins int
		)
		for range 5 {
			wg.Go(func() {
				got, err := s.ConsumeOAuthState(ctx, right, now)
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					wins++
					if got.Verifier != "v" || got.RedirectTo != "/integrations" || got.UserID != "usr_x" || got.NonceHash != "nonce-hash-x" {
						t.Errorf("consumed state = %+v", got)
					}
				} else if slipway.ErrorCodeOf(err) != slipway.ECodeNotFound {
					t.Errorf("consume: %v", err)
				}
			})
		}
		wg.Wait()
		if wins != 1 {
			t.Errorf("state consumed %d times, want once", wins)
		}

		// A pending result travels with the state.
		must(t, s.CreateOAuthState(ctx, store.OAuthState{State: "st-2", UserID: "usr_x", NonceHash: "h", Pending: []byte{0, 1, 2},
			ExpiresAt: now.Add(time.Minute)}))
		got, err := s.ConsumeOAuthState(ctx, store.OAuthStateClaim{State: "st-2", UserID: "usr_x", NonceHash: "h"}, now)
		if err != nil || string(got.Pending) != "\x00\x01\x02" {
			t.Errorf("pending result = %v, %v", got.Pending, err)
		}

		must(t, s.CreateOAuthState(ctx, store.OAuthState{State: "st-old", UserID: "usr_x", NonceHash: "h", ExpiresAt: now.Add(-time.Minute)}))
		_, err = s.ConsumeOAuthState(ctx, store.OAuthStateClaim{State: "st-old", UserID: "usr_x", NonceHash: "h"}, now)
		wantCode(t, err, slipway.ECodeNotFound, "expired state")
		wantCode(t, s.BindOAuthState(ctx, "st-old", "usr_x", "h", now), slipway.ECodeNotFound, "bind an expired state")
		// The sweep deletes expired states (with their sealed results) and
		// keeps live ones.
		must(t, s.CreateOAuthState(ctx, store.OAuthState{State: "st-live", UserID: "usr_x", ExpiresAt: now.Add(time.Hour)}))
		must(t, s.DeleteExpiredOAuthStates(ctx, now))
		if _, err := s.PeekOAuthState(ctx, "st-old", now.Add(-time.Hour)); slipway.ErrorCodeOf(err) != slipway.ECodeNotFound {
			t.Errorf("an expired state survived the sweep: %v", err)
		}
		if _, err := s.PeekOAuthState(ctx, "st-live", now); err != nil {
			t.Errorf("the sweep deleted a live state: %v", err)
		}
	})
}

func TestInTxRollback(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := seed(t, s, "acme")
		var appID string
		boom := errors.New("boom")
		err := s.InTx(ctx, func(tx *store.Tx) error {
			if tx.SQLTx() == nil {
				t.Error("SQLTx() is nil")
			}
			a := slipway.Application{OrgID: f.org.ID, Name: "ephemeral"}
			if err := tx.CreateApplication(ctx, &a); err != nil {
				return err
			}
			appID = a.ID
			// Multi-statement methods join the outer transaction.
			e := slipway.Environment{OrgID: f.org.ID, ApplicationID: a.ID, Name: "prod", IsDefault: true}
			if err := tx.CreateEnvironment(ctx, &e); err != nil {
				return err
			}
			if _, err := tx.GetApplication(ctx, f.org.ID, a.ID); err != nil {
				return fmt.Errorf("the transaction cannot read its own write: %w", err)
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx error = %v, want boom", err)
		}
		_, err = s.GetApplication(ctx, f.org.ID, appID)
		wantCode(t, err, slipway.ECodeNotFound, "application after rollback")
		if _, n, _ := s.ListApplications(ctx, f.org.ID, store.ApplicationFilter{}, store.Page{}); n != 1 {
			t.Errorf("%d applications after rollback, want 1", n)
		}
		must(t, s.InTx(ctx, func(tx *store.Tx) error {
			return tx.CreateApplication(ctx, &slipway.Application{OrgID: f.org.ID, Name: "kept"})
		}))
		if _, n, _ := s.ListApplications(ctx, f.org.ID, store.ApplicationFilter{Status: slipway.AppActive}, store.Page{}); n != 2 {
			t.Errorf("%d applications after commit, want 2", n)
		}
	})
}

func TestIntegrationRepos(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := seed(t, s, "acme")
		var repos []forge.Repo
		for i := range 120 {
			repos = append(repos, forge.Repo{ID: fmt.Sprint(i), FullName: fmt.Sprintf("acme/repo-%03d", i), Private: i%2 == 0,
				UpdatedAt: time.Date(2025, 1, 1, 0, 0, i, 0, time.UTC)})
		}
		repos = append(repos, forge.Repo{ID: "pct", FullName: "acme/100%_real"})
		must(t, s.ReplaceIntegrationRepos(ctx, f.org.ID, f.integ.ID, repos, `W/"e1"`))
		etag, err := s.IntegrationReposETag(ctx, f.org.ID, f.integ.ID)
		must(t, err)
		if etag != `W/"e1"` {
			t.Errorf("etag = %q", etag)
		}
		page, total, err := s.ListIntegrationRepos(ctx, f.org.ID, f.integ.ID, "", store.Page{Limit: 500})
		must(t, err)
		if total != 121 || len(page) != store.MaxPageLimit && len(page) != 121 {
			t.Errorf("page of %d of %d", len(page), total)
		}
		found, total, err := s.ListIntegrationRepos(ctx, f.org.ID, f.integ.ID, "REPO-01", store.Page{})
		must(t, err)
		if total != 10 || len(found) != 10 || !found[0].Private || !found[0].UpdatedAt.Equal(repos[10].UpdatedAt) {
			t.Errorf("search: %d of %d, first %+v", len(found), total, found[0])
		}
		// LIKE wildcards in the search are literal.
		found, total, err = s.ListIntegrationRepos(ctx, f.org.ID, f.integ.ID, "%_", store.Page{})
		must(t, err)
		if total != 1 || found[0].ID != "pct" {
			t.Errorf("wildcard search found %d", total)
		}
		must(t, s.AddIntegrationRepos(ctx, f.org.ID, f.integ.ID, []forge.Repo{{ID: "0", FullName: "acme/renamed"}, {ID: "new", FullName: "acme/new"}}))
		must(t, s.RemoveIntegrationRepos(ctx, f.org.ID, f.integ.ID, []string{"1", "2"}))
		_, total, err = s.ListIntegrationRepos(ctx, f.org.ID, f.integ.ID, "", store.Page{})
		must(t, err)
		if total != 120 {
			t.Errorf("%d repositories after add/remove, want 120", total)
		}
		must(t, s.ReplaceIntegrationRepos(ctx, f.org.ID, f.integ.ID, repos[:3], `W/"e2"`))
		_, total, _ = s.ListIntegrationRepos(ctx, f.org.ID, f.integ.ID, "", store.Page{})
		if total != 3 {
			t.Errorf("%d repositories after replace, want 3", total)
		}

		hook := store.RepoHook{OrgID: f.org.ID, IntegrationID: f.integ.ID, RepoID: "0", SecretCiphertext: []byte("enc"), Status: "pending"}
		must(t, s.CreateRepoHook(ctx, &hook))
		at := time.Now()
		hook.ProviderHookID, hook.Status, hook.LastDeliveryAt = "77", "active", &at
		must(t, s.UpdateRepoHook(ctx, &hook))
		got, err := s.GetRepoHook(ctx, f.org.ID, f.integ.ID, "0")
		must(t, err)
		if got.ProviderHookID != "77" || got.Status != "active" || got.LastDeliveryAt == nil || string(got.SecretCiphertext) != "enc" {
			t.Errorf("hook = %+v", got)
		}
		hooks, err := s.ListRepoHooks(ctx, f.org.ID, f.integ.ID)
		must(t, err)
		if len(hooks) != 1 {
			t.Errorf("%d hooks", len(hooks))
		}
		must(t, s.DeleteRepoHook(ctx, f.org.ID, hook.ID))
		must(t, s.DeleteIntegration(ctx, f.org.ID, f.integ.ID))
		_, err = s.GetIntegration(ctx, f.org.ID, f.integ.ID)
		wantCode(t, err, slipway.ECodeNotFound, "deleted integration")
	})
}

func TestProjectsAndAudit(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := seed(t, s, "acme")
		prj := slipway.Project{OrgID: f.org.ID, Name: "legacy", Compute: "server-1"}
		must(t, s.CreateProject(ctx, &prj))
		old := slipway.Service{OrgID: f.org.ID, ProjectID: prj.ID, Name: "worker", Type: slipway.ServiceApp}
		must(t, s.CreateService(ctx, &old))
		wantCode(t, s.CreateService(ctx, &slipway.Service{OrgID: f.org.ID, ProjectID: prj.ID, Name: "Worker"}),
			slipway.ECodeConflict, "service name in project")

		must(t, s.MoveServiceToEnvironment(ctx, f.org.ID, old.ID, f.app.ID, f.env.ID, "legacy-worker"))
		moved, err := s.GetService(ctx, f.org.ID, old.ID)
		must(t, err)
		if moved.ProjectID != "" || moved.EnvironmentID != f.env.ID || moved.Name != "legacy-worker" {
			t.Errorf("moved service = %+v", moved)
		}
		wantCode(t, s.MoveServiceToEnvironment(ctx, f.org.ID, old.ID, f.app.ID, f.env.ID, "web"), slipway.ECodeConflict, "move onto a taken name")

		at := time.Now()
		must(t, s.MarkProjectMigrated(ctx, f.org.ID, prj.ID, f.app.ID, f.env.ID, at))
		got, err := s.GetProject(ctx, f.org.ID, prj.ID)
		must(t, err)
		if got.DeletedAt == nil || got.MigratedToApplication != f.app.ID || got.MigratedToEnvironment != f.env.ID || got.Compute != "server-1" {
			t.Errorf("migrated project = %+v", got)
		}
		live, err := s.ListProjects(ctx, f.org.ID, false)
		must(t, err)
		all, err := s.ListProjects(ctx, f.org.ID, true)
		must(t, err)
		if len(live) != 0 || len(all) != 1 {
			t.Errorf("projects: %d live, %d total; want 0 and 1", len(live), len(all))
		}

		for i := range 3 {
			must(t, s.InsertAudit(ctx, &slipway.AuditEntry{OrgID: f.org.ID, Actor: f.user.ID, Action: "service.update",
				ResourceType: "service", ResourceID: f.svc.ID, Details: map[string]string{"n": fmt.Sprint(i)},
				CreatedAt: at.Add(time.Duration(i) * time.Second)}))
		}
		must(t, s.InsertAudit(ctx, &slipway.AuditEntry{OrgID: f.org.ID, Actor: f.user.ID, Action: "app.create", ResourceType: "application", ResourceID: f.app.ID}))
		entries, total, err := s.ListAudit(ctx, f.org.ID, "service", f.svc.ID, store.Page{Limit: 2})
		must(t, err)
		if total != 3 || len(entries) != 2 || entries[0].Details["n"] != "2" {
			t.Errorf("audit: %d of %d, first %+v", len(entries), total, entries)
		}
		_, total, err = s.ListAudit(ctx, f.org.ID, "", "", store.Page{})
		must(t, err)
		if total != 4 {
			t.Errorf("%d audit entries in all, want 4", total)
		}
	})
}

func TestDeleteOrganisation(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := seed(t, s, "acme")
		keep := seed(t, s, "keep")
		d := slipway.Deployment{OrgID: f.org.ID, ServiceID: f.svc.ID, Trigger: slipway.TriggerManual}
		_, err := s.CreateDeployment(ctx, &d, "k")
		must(t, err)
		must(t, s.AppendDeploymentLog(ctx, d.ID, []store.LogLine{{Text: "x"}}))
		must(t, s.VerifyDomain(ctx, f.org.ID, f.svc.ID, "web-acme.example.test"))
		must(t, s.DeleteOrganisation(ctx, f.org.ID))
		_, err = s.GetOrganisation(ctx, f.org.ID)
		wantCode(t, err, slipway.ECodeNotFound, "deleted organisation")
		_, err = s.GetServiceByDomain(ctx, "web-acme.example.test")
		wantCode(t, err, slipway.ECodeNotFound, "deleted organisation's domain")
		if _, err := s.GetService(ctx, keep.org.ID, keep.svc.ID); err != nil {
			t.Errorf("the other organisation lost its service: %v", err)
		}
		wantCode(t, s.DeleteOrganisation(ctx, f.org.ID), slipway.ECodeNotFound, "delete twice")
	})
}

func TestPageWindow(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := seed(t, s, "acme")
		for i := range 60 {
			must(t, s.CreateApplication(ctx, &slipway.Application{OrgID: f.org.ID, Name: fmt.Sprintf("app-%02d", i)}))
		}
		apps, total, err := s.ListApplications(ctx, f.org.ID, store.ApplicationFilter{}, store.Page{})
		must(t, err)
		if total != 61 || len(apps) != store.DefaultPageLimit {
			t.Errorf("default page: %d of %d", len(apps), total)
		}
		apps, _, err = s.ListApplications(ctx, f.org.ID, store.ApplicationFilter{}, store.Page{Limit: 10, Offset: 55})
		must(t, err)
		if len(apps) != 6 || apps[0].Name != "app-55" {
			t.Errorf("last page: %d, first %s", len(apps), apps[0].Name)
		}
	})
}

// BenchmarkInsertDelivery measures a durable (committed, fsynced) webhook
// delivery insert: the floor of webhook ingest throughput.
func BenchmarkInsertDelivery(b *testing.B) {
	for _, dialect := range []string{store.DialectSQLite, store.DialectPostgres} {
		b.Run(dialect, func(b *testing.B) {
			ctx := context.Background()
			databaseURL, dataDir := dialectURL(b, dialect)
			s, err := store.Open(ctx, databaseURL, dataDir, slog.New(slog.DiscardHandler))
			must(b, err)
			defer s.Close()
			org := slipway.Organisation{Name: "bench"}
			must(b, s.CreateOrganisation(ctx, &org))
			in := slipway.Integration{OrgID: org.ID, Provider: slipway.ProviderGitHub, AuthMethod: slipway.AuthGitHubApp}
			must(b, s.CreateIntegration(ctx, &in, nil))
			body := make([]byte, 8<<10) // a typical push payload is a few KiB
			for i := range body {
				body[i] = 'a' + byte(i%26)
			}
			headers := map[string]string{"X-GitHub-Event": "push", "Content-Type": "application/json"}
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				i++
				d := store.Delivery{OrgID: org.ID, IntegrationID: in.ID, ProviderDeliveryID: fmt.Sprint(i), Event: "push", Headers: headers, Body: body}
				if _, err := s.InsertDelivery(ctx, &d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestConcurrentOpen starts several instances on one fresh database at
// once, as replicas do: migrations apply exactly once and every Open
// succeeds.
func TestConcurrentOpen(t *testing.T) {
	for _, dialect := range []string{store.DialectSQLite, store.DialectPostgres} {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			databaseURL, dataDir := dialectURL(t, dialect)
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for range 4 {
				wg.Go(func() {
					s, err := store.Open(ctx, databaseURL, dataDir, nil)
					if err == nil {
						s.Close()
					}
					errs <- err
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("concurrent open: %v", err)
				}
			}
			s, err := store.Open(ctx, databaseURL, dataDir, nil)
			must(t, err)
			defer s.Close()
			var rows int
			must(t, s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&rows))
			if latest := store.LatestSchemaVersion(dialect); rows != latest {
				t.Errorf("%d schema_migrations rows, want %d", rows, latest)
			}
		})
	}
}
