package httpapi

import (
	"net/http"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
)

// ProjectMigrationInput chooses what to migrate: one project (id or name)
// or, when empty, every legacy project; optionally into an existing
// application; dry_run only plans.
type ProjectMigrationInput struct {
	Project           string `json:"project,omitempty"`
	TargetApplication string `json:"target_application,omitempty"`
	DryRun            bool   `json:"dry_run,omitempty"`
}

// ProjectCreateInput is accepted only to answer it with projects_read_only.
type ProjectCreateInput struct {
	Name string `json:"name"`
}

// projectRoutes serves legacy projects while they exist, refuses new ones,
// and plans and runs their migration into applications.
func (api *API) projectRoutes() []route {
	s := api.svc
	migration := func(r *http.Request) (ProjectMigrationInput, service.MigrationOptions, error) {
		var in ProjectMigrationInput
		if err := decode(r, &in); err != nil {
			return in, service.MigrationOptions{}, err
		}
		return in, service.MigrationOptions{TargetApplication: in.TargetApplication, DryRun: in.DryRun}, nil
	}
	return []route{
		{method: "GET", pattern: "/api/v1/projects", summary: "List legacy projects (?migrated=true includes migrated ones)", tag: "projects",
			response: List[slipway.Project]{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				items, err := s.ListProjects(r.Context(), a, r.URL.Query().Get("migrated") == "true")
				if err != nil {
					return err
				}
				return writeJSON(w, 200, listOf(items, len(items), store.Page{Limit: len(items)}))
			}},
		{method: "POST", pattern: "/api/v1/projects", summary: "Refused: projects are read-only, create an application instead", tag: "projects",
			request: ProjectCreateInput{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				var in ProjectCreateInput
				if err := decode(r, &in); err != nil {
					return err
				}
				_, err := s.CreateProject(r.Context(), a, in.Name)
				return err
			}},
		{method: "GET", pattern: "/api/v1/projects/{project}", summary: "Get a legacy project; a migrated one redirects (308) to its application",
			tag: "projects", response: service.ProjectDetail{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				p, err := s.GetProject(r.Context(), a, r.PathValue("project"))
				if appID, moved := service.ProjectMovedTo(err); moved {
					// Old links keep working: permanent, and method-preserving.
					w.Header().Set("Location", "/api/v1/applications/"+appID)
					w.WriteHeader(http.StatusPermanentRedirect)
					return nil
				}
				return respond(w, 200, p, err)
			}},
		{method: "POST", pattern: "/api/v1/projects/migrate/plan", summary: "Plan the migration of legacy projects into applications (changes nothing)",
			tag: "projects", request: ProjectMigrationInput{}, response: service.Plan{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				in, opts, err := migration(r)
				if err != nil {
					return err
				}
				plan, err := s.PlanProjectMigration(r.Context(), a, in.Project, opts)
				return respond(w, 200, plan, err)
			}},
		{method: "POST", pattern: "/api/v1/projects/migrate", summary: "Migrate legacy projects into applications, each in one transaction",
			tag: "projects", request: ProjectMigrationInput{}, response: service.Plan{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				in, opts, err := migration(r)
				if err != nil {
					return err
				}
				res, err := s.MigrateProjects(r.Context(), a, in.Project, opts)
				return respond(w, 200, res, err)
			}},
		{method: "GET", pattern: "/api/v1/applications/{app}/audit", summary: "Audit trail of an application (who did what, when)",
			tag: "applications", response: List[slipway.AuditEntry]{},
			handle: func(w http.ResponseWriter, r *http.Request, a service.Actor) error {
				p, err := page(r)
				if err != nil {
					return err
				}
				items, total, err := s.ListApplicationAudit(r.Context(), a, r.PathValue("app"), p)
				if err != nil {
					return err
				}
				return writeJSON(w, 200, listOf(items, total, p))
			}},
	}
}
