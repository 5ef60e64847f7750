package service

// Legacy Projects: reading them while they exist, refusing new ones, and
// migrating each into an Application with one Environment per implicit
// stage. A migration moves Service rows in place (same ids), so source,
// variables, domains, deployment history and repository webhooks stay
// attached and the next push deploys the same Service.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/store"
)

// ProjectDetail is a legacy Project with the Services it still holds.
type ProjectDetail struct {
	slipway.Project
	Services []slipway.Service `json:"services"`
}

// ListProjects lists the organisation's legacy Projects, oldest first;
// migrated (soft-deleted) ones only when includeMigrated is set.
func (s *Service) ListProjects(ctx context.Context, a Actor, includeMigrated bool) ([]slipway.Project, error) {
	if err := a.can(slipway.ResProjects, slipway.ActRead); err != nil {
		return nil, err
	}
	return s.store.ListProjects(ctx, a.OrgID, includeMigrated)
}

// GetProject returns a legacy Project, by id or name, with its Services.
// A migrated Project answers with its record (MigratedToApplication set)
// and an ECodeGone error whose Details carry "application_id" and
// "environment_id", so edges can redirect old links; see ProjectMovedTo.
func (s *Service) GetProject(ctx context.Context, a Actor, ref string) (ProjectDetail, error) {
	if err := a.can(slipway.ResProjects, slipway.ActRead); err != nil {
		return ProjectDetail{}, err
	}
	p, err := s.resolveProject(ctx, a.OrgID, ref)
	if err != nil {
		return ProjectDetail{}, err
	}
	if p.MigratedToApplication != "" {
		e := slipway.Errorf(slipway.ECodeGone, "project %q was migrated into application %s", p.Name, p.MigratedToApplication).
			WithFix("open the application instead: /applications/" + p.MigratedToApplication)
		e.Details = map[string]string{"application_id": p.MigratedToApplication, "environment_id": p.MigratedToEnvironment}
		return ProjectDetail{Project: p, Services: []slipway.Service{}}, e
	}
	svcs, err := allServices(ctx, s.store, a.OrgID, store.ServiceFilter{ProjectID: p.ID})
	if err != nil {
		return ProjectDetail{}, err
	}
	return ProjectDetail{Project: p, Services: svcs}, nil
}

// ProjectMovedTo reports the Application a migrated Project moved into,
// when err is GetProject's ECodeGone answer.
func ProjectMovedTo(err error) (applicationID string, ok bool) {
	e, isErr := slipway.AsError(err)
	if !isErr || e.Code != slipway.ECodeGone || e.Details["application_id"] == "" {
		return "", false
	}
	return e.Details["application_id"], true
}

func (s *Service) resolveProject(ctx context.Context, orgID, ref string) (slipway.Project, error) {
	if strings.HasPrefix(ref, slipway.PrefixProject+"_") {
		return s.store.GetProject(ctx, orgID, ref)
	}
	all, err := s.store.ListProjects(ctx, orgID, true)
	if err != nil {
		return slipway.Project{}, err
	}
	// A live project wins over a migrated one of the same name.
	var found *slipway.Project
	for i := range all {
		if all[i].Name == ref && (found == nil || found.DeletedAt != nil) {
			found = &all[i]
		}
	}
	if found == nil {
		return slipway.Project{}, slipway.NotFound("project", ref)
	}
	return *found, nil
}

// CreateProject is always refused: Projects are legacy, and new work
// belongs in Applications.
func (s *Service) CreateProject(ctx context.Context, a Actor, name string) (slipway.Project, error) {
	if a.OrgID == "" {
		return slipway.Project{}, slipway.Errorf(slipway.ECodeUnauthenticated, "authentication required")
	}
	return slipway.Project{}, slipway.Errorf(slipway.ECodeProjectsReadOnly,
		"projects are read-only: new work goes into Applications").
		WithFix("create an application instead (slipway app create NAME, or POST /api/v1/applications); " +
			"existing projects move with slipway migrate projects")
}

// ListApplicationAudit returns one page of the audit entries recorded on
// an Application (its creation, status changes, projects migrated into it).
func (s *Service) ListApplicationAudit(ctx context.Context, a Actor, appRef string, p store.Page) ([]slipway.AuditEntry, int, error) {
	if err := a.can(slipway.ResApplications, slipway.ActRead); err != nil {
		return nil, 0, err
	}
	app, err := s.resolveApp(ctx, a.OrgID, appRef)
	if err != nil {
		return nil, 0, err
	}
	return s.store.ListAudit(ctx, a.OrgID, "application", app.ID, p)
}

// MigrationOptions steer a Project migration.
type MigrationOptions struct {
	// TargetApplication is the id or name of an existing Application to
	// migrate into; empty makes one new Application per Project, named
	// after it.
	TargetApplication string `json:"target_application,omitempty"`
	// DryRun makes MigrateProjects plan without changing anything.
	DryRun bool `json:"dry_run,omitempty"`

	// failAfterFirstMove makes the migration fail right after it moved
	// the first Service, to prove the transaction leaves nothing behind.
	// Tests set it; nothing else can.
	failAfterFirstMove bool
}

// Plan statuses of a Project.
const (
	PlanReady           = "ready"            // will migrate
	PlanBlocked         = "blocked"          // a Service cannot move now; nothing happens to the Project
	PlanAlreadyMigrated = "already_migrated" // nothing to do
	PlanMigrated        = "migrated"         // done (MigrateProjects only)
)

// Plan actions on Applications, Environments and Services.
const (
	ActionCreate = "create"
	ActionReuse  = "reuse"
	ActionMove   = "move"
	ActionStay   = "stay" // a Service of a blocked Project
)

// Plan is what a migration will do (or, from MigrateProjects, did).
type Plan struct {
	DryRun   bool          `json:"dry_run"`
	Projects []ProjectPlan `json:"projects"`
}

// ProjectPlan is the fate of one Project.
type ProjectPlan struct {
	ProjectID    string            `json:"project_id"`
	ProjectName  string            `json:"project_name"`
	Compute      string            `json:"compute,omitempty"`
	Status       string            `json:"status"`
	Reason       string            `json:"reason,omitempty"`
	Application  PlannedApp        `json:"application"`
	Environments []PlannedEnv      `json:"environments"`
	Services     []PlannedService  `json:"services"`
	Collisions   []NameCollision   `json:"collisions"`
	Notes        []string          `json:"notes,omitempty"`
	stages       map[string]string // service id → recorded stage
}

// PlannedApp is the Application a Project becomes. ID is empty in a plan
// when the Application is yet to be created.
type PlannedApp struct {
	ID     string `json:"id,omitempty"`
	Name   string `json:"name"`
	Action string `json:"action,omitempty"`
}

// PlannedEnv is one Environment receiving Services: one per implicit
// stage of the Project.
type PlannedEnv struct {
	ID       string   `json:"id,omitempty"`
	Name     string   `json:"name"`
	Stage    string   `json:"stage"`
	Action   string   `json:"action"`
	Default  bool     `json:"default,omitempty"`
	Services []string `json:"services"` // service ids
}

// PlannedService is one Service's move. Its id never changes.
type PlannedService struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	NewName     string   `json:"new_name"`
	Environment string   `json:"environment"`
	Action      string   `json:"action"`
	Reason      string   `json:"reason,omitempty"`   // why it cannot move
	Warnings    []string `json:"warnings,omitempty"` // moves, but needs attention
	Repo        string   `json:"repo,omitempty"`
	Deployments int      `json:"deployments"`
	Variables   int      `json:"variables"`
	Domains     []string `json:"domains,omitempty"`
}

// NameCollision is a name already taken and how the plan resolves it.
type NameCollision struct {
	Kind       string `json:"kind"` // application, environment or service
	Name       string `json:"name"`
	Resolution string `json:"resolution"` // "suffix" or "reuse"
	ResolvedAs string `json:"resolved_as"`
}

// defaultStage is the Environment of Services whose Project recorded no
// stage: they all ran on the Project's one compute target.
const defaultStage = "production"

// PlanProjectMigration plans the migration of one Project (projectID) or
// of every Project still to migrate (""), without changing anything.
func (s *Service) PlanProjectMigration(ctx context.Context, a Actor, projectID string, opts MigrationOptions) (Plan, error) {
	if err := a.can(slipway.ResProjects, slipway.ActRead); err != nil {
		return Plan{}, err
	}
	if err := a.can(slipway.ResApplications, slipway.ActRead); err != nil {
		return Plan{}, err
	}
	projects, err := s.projectsToMigrate(ctx, a.OrgID, projectID)
	if err != nil {
		return Plan{}, err
	}
	w, err := s.loadWorld(ctx, s.store, a.OrgID)
	if err != nil {
		return Plan{}, err
	}
	plan := Plan{DryRun: true, Projects: []ProjectPlan{}}
	for _, p := range projects {
		pp, err := s.planProject(ctx, s.store, w, p, opts)
		if err != nil {
			return Plan{}, err
		}
		plan.Projects = append(plan.Projects, pp)
	}
	return plan, nil
}

// MigrateProjects migrates one Project or every Project still to migrate,
// each in its own transaction: its Application and Environments are
// created or reused, its Services moved (ids kept), the Application
// records where it came from, the Project where it went (and is
// soft-deleted), and an audit entry is written on the Application. A
// Project that fails midway is left exactly as it was. Migrated Projects
// are skipped, so running it again changes nothing. With opts.DryRun it
// only plans.
func (s *Service) MigrateProjects(ctx context.Context, a Actor, projectID string, opts MigrationOptions) (Plan, error) {
	if opts.DryRun {
		return s.PlanProjectMigration(ctx, a, projectID, opts)
	}
	for _, perm := range []struct {
		res slipway.Resource
		act slipway.Action
	}{{slipway.ResProjects, slipway.ActUpdate}, {slipway.ResApplications, slipway.ActCreate}, {slipway.ResEnvironments, slipway.ActCreate},
		{slipway.ResServices, slipway.ActUpdate}} {
		if err := a.can(perm.res, perm.act); err != nil {
			return Plan{}, err
		}
	}
	projects, err := s.projectsToMigrate(ctx, a.OrgID, projectID)
	if err != nil {
		return Plan{}, err
	}
	out := Plan{Projects: []ProjectPlan{}}
	for _, p := range projects {
		var done ProjectPlan
		err := s.store.InTx(ctx, func(tx *store.Tx) error {
			var err error
			done, err = s.migrateProjectTx(ctx, tx, a, p.ID, opts)
			return err
		})
		if err != nil {
			return out, fmt.Errorf("migrate project %s (%s): %w", p.ID, p.Name, err)
		}
		if done.Status == PlanMigrated {
			for _, svc := range done.Services {
				s.syncRoutes(ctx, a.OrgID, svc.ID)
			}
			s.log.Info("project migrated", "project", p.ID, "application", done.Application.ID, "services", len(done.Services),
				"actor", a.String())
		}
		out.Projects = append(out.Projects, done)
	}
	return out, nil
}

// projectsToMigrate is the one Project asked for (migrated or not, so a
// second run can say so) or every live Project.
func (s *Service) projectsToMigrate(ctx context.Context, orgID, projectID string) ([]slipway.Project, error) {
	if projectID != "" {
		p, err := s.resolveProject(ctx, orgID, projectID)
		if err != nil {
			return nil, err
		}
		return []slipway.Project{p}, nil
	}
	return s.store.ListProjects(ctx, orgID, false)
}

func (s *Service) migrateProjectTx(ctx context.Context, tx *store.Tx, a Actor, projectID string, opts MigrationOptions) (ProjectPlan, error) {
	if err := tx.ClaimProjectForMigration(ctx, a.OrgID, projectID); err != nil && slipway.ErrorCodeOf(err) != slipway.ECodeNotFound {
		return ProjectPlan{}, err
	}
	// Plan again inside the transaction: the dry run may be stale, and
	// this is what makes a second run (or a concurrent one) a no-op.
	p, err := tx.GetProject(ctx, a.OrgID, projectID)
	if err != nil {
		return ProjectPlan{}, err
	}
	w, err := s.loadWorld(ctx, tx, a.OrgID)
	if err != nil {
		return ProjectPlan{}, err
	}
	pp, err := s.planProject(ctx, tx, w, p, opts)
	if err != nil || pp.Status != PlanReady {
		return pp, err
	}
	now := s.now().UTC()
	if pp.Application.Action == ActionCreate {
		app := slipway.Application{ID: slipway.NewID(slipway.PrefixApplication), OrgID: a.OrgID, Name: pp.Application.Name,
			Description: "Migrated from legacy project " + p.Name, Status: slipway.AppActive, MigratedFromProject: p.ID,
			CreatedAt: now, UpdatedAt: now}
		if err := tx.CreateApplication(ctx, &app); err != nil {
			return pp, err
		}
		pp.Application.ID = app.ID
	} else if err := tx.SetApplicationMigratedFrom(ctx, a.OrgID, pp.Application.ID, p.ID); err != nil {
		return pp, err
	}
	envOf := map[string]string{} // environment name → id
	for i := range pp.Environments {
		e := &pp.Environments[i]
		if e.Action == ActionCreate {
			env := slipway.Environment{ID: slipway.NewID(slipway.PrefixEnvironment), OrgID: a.OrgID, ApplicationID: pp.Application.ID,
				Name: e.Name, Status: slipway.EnvActive, IsDefault: e.Default, CreatedAt: now, UpdatedAt: now}
			if err := tx.CreateEnvironment(ctx, &env); err != nil {
				return pp, err
			}
			e.ID = env.ID
		}
		envOf[e.Name] = e.ID
	}
	for i, svc := range pp.Services {
		if err := tx.MoveServiceToEnvironment(ctx, a.OrgID, svc.ID, pp.Application.ID, envOf[svc.Environment], svc.NewName); err != nil {
			return pp, err
		}
		// The Service gains its generated host and keeps its Project host,
		// so links to the old name keep working.
		moved, err := tx.GetService(ctx, a.OrgID, svc.ID)
		if err != nil {
			return pp, err
		}
		if err := s.claimGeneratedHost(ctx, tx, moved); err != nil {
			return pp, err
		}
		if i == 0 && opts.failAfterFirstMove {
			return pp, errors.New("injected failure after the first service moved")
		}
	}
	primary := ""
	if len(pp.Environments) > 0 {
		primary = pp.Environments[0].ID
	}
	if err := tx.MarkProjectMigrated(ctx, a.OrgID, p.ID, pp.Application.ID, primary, now); err != nil {
		return pp, err
	}
	envNames := make([]string, 0, len(pp.Environments))
	for _, e := range pp.Environments {
		envNames = append(envNames, e.Name)
	}
	// Written directly, not through s.audit: a migration without its
	// audit entry must not commit.
	entry := &slipway.AuditEntry{ID: slipway.NewID(slipway.PrefixAudit), OrgID: a.OrgID, Actor: a.String(), Action: "project.migrate",
		ResourceType: "application", ResourceID: pp.Application.ID, CreatedAt: now, Details: map[string]string{
			"project_id": p.ID, "project_name": p.Name, "application": pp.Application.Name + " (" + pp.Application.Action + "d)",
			"environments": strings.Join(envNames, ","), "services": strconv.Itoa(len(pp.Services)),
		}}
	if err := tx.InsertAudit(ctx, entry); err != nil {
		return pp, fmt.Errorf("write migration audit entry: %w", err)
	}
	pp.Status = PlanMigrated
	return pp, nil
}

// migrationReader is what planning reads; both the Store and a Tx offer it.
type migrationReader interface {
	ListApplications(ctx context.Context, orgID string, f store.ApplicationFilter, p store.Page) ([]slipway.Application, int, error)
	ListEnvironments(ctx context.Context, orgID, appID string) ([]slipway.Environment, error)
	ListServices(ctx context.Context, orgID string, f store.ServiceFilter, p store.Page) ([]slipway.Service, int, error)
	LegacyServiceStages(ctx context.Context, orgID, projectID string) (map[string]string, error)
	GetIntegration(ctx context.Context, orgID, id string) (slipway.Integration, error)
	ListDeployments(ctx context.Context, orgID, serviceID string, p store.Page) ([]slipway.Deployment, int, error)
	ListVariables(ctx context.Context, orgID, serviceID string) ([]store.Variable, error)
}

// serviceLister lists Services; the Store and a Tx both offer it.
type serviceLister interface {
	ListServices(ctx context.Context, orgID string, f store.ServiceFilter, p store.Page) ([]slipway.Service, int, error)
}

// allServices reads every page of a Service list.
func allServices(ctx context.Context, r serviceLister, orgID string, f store.ServiceFilter) ([]slipway.Service, error) {
	out := []slipway.Service{}
	for {
		page, total, err := r.ListServices(ctx, orgID, f, store.Page{Limit: store.MaxPageLimit, Offset: len(out)})
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) == 0 || len(out) >= total {
			return out, nil
		}
	}
}

// world is the organisation's names as planning sees them, updated as each
// planned Project claims names, so a plan of several Projects resolves
// collisions between them exactly as the sequential migration will.
type world struct {
	orgID    string
	apps     []*worldApp
	svcNames map[string]map[string]bool // environment key → service names taken
}

type worldApp struct {
	app  slipway.Application // ID empty for an application the plan creates
	envs []*worldEnv
	read bool // environments loaded
}

type worldEnv struct {
	env slipway.Environment
	key string // id, or "new:<app>/<env>" for planned ones
}

func (s *Service) loadWorld(ctx context.Context, r migrationReader, orgID string) (*world, error) {
	w := &world{orgID: orgID, svcNames: map[string]map[string]bool{}}
	for {
		page, total, err := r.ListApplications(ctx, orgID, store.ApplicationFilter{}, store.Page{Limit: store.MaxPageLimit, Offset: len(w.apps)})
		if err != nil {
			return nil, err
		}
		for _, app := range page {
			w.apps = append(w.apps, &worldApp{app: app})
		}
		if len(page) == 0 || len(w.apps) >= total {
			return w, nil
		}
	}
}

func (w *world) appNamed(name string) *worldApp {
	for _, a := range w.apps {
		if strings.EqualFold(a.app.Name, name) {
			return a
		}
	}
	return nil
}

func (w *world) findApp(ref string) *worldApp {
	for _, a := range w.apps {
		if a.app.ID != "" && a.app.ID == ref {
			return a
		}
	}
	return w.appNamed(ref)
}

func (w *world) environments(ctx context.Context, r migrationReader, a *worldApp) ([]*worldEnv, error) {
	if !a.read && a.app.ID != "" {
		envs, err := r.ListEnvironments(ctx, w.orgID, a.app.ID)
		if err != nil {
			return nil, err
		}
		for _, e := range envs {
			a.envs = append(a.envs, &worldEnv{env: e, key: e.ID})
		}
	}
	a.read = true
	return a.envs, nil
}

func (w *world) serviceNames(ctx context.Context, r migrationReader, e *worldEnv) (map[string]bool, error) {
	if names, ok := w.svcNames[e.key]; ok {
		return names, nil
	}
	names := map[string]bool{}
	if e.env.ID != "" {
		svcs, err := allServices(ctx, r, w.orgID, store.ServiceFilter{EnvironmentID: e.env.ID})
		if err != nil {
			return nil, err
		}
		for _, svc := range svcs {
			names[strings.ToLower(svc.Name)] = true
		}
	}
	w.svcNames[e.key] = names
	return names, nil
}

// planProject decides one Project's fate against w, and claims the names
// it uses in w when the Project is ready to migrate.
func (s *Service) planProject(ctx context.Context, r migrationReader, w *world, p slipway.Project, opts MigrationOptions) (ProjectPlan, error) {
	pp := ProjectPlan{ProjectID: p.ID, ProjectName: p.Name, Compute: p.Compute, Environments: []PlannedEnv{}, Services: []PlannedService{},
		Collisions: []NameCollision{}}
	if p.DeletedAt != nil || p.MigratedToApplication != "" {
		pp.Status = PlanAlreadyMigrated
		pp.Reason = "migrated earlier into application " + p.MigratedToApplication
		pp.Application = PlannedApp{ID: p.MigratedToApplication}
		for _, a := range w.apps {
			if a.app.ID == p.MigratedToApplication {
				pp.Application.Name = a.app.Name
			}
		}
		return pp, nil
	}
	svcs, err := allServices(ctx, r, w.orgID, store.ServiceFilter{ProjectID: p.ID})
	if err != nil {
		return pp, err
	}
	if pp.stages, err = r.LegacyServiceStages(ctx, w.orgID, p.ID); err != nil {
		return pp, err
	}

	// The Application.
	var target *worldApp
	switch {
	case opts.TargetApplication != "":
		target = w.findApp(opts.TargetApplication)
		if target == nil {
			return pp, slipway.NotFound("application", opts.TargetApplication)
		}
		if target.app.Status == slipway.AppArchived {
			return pp, slipway.Errorf(slipway.ECodeConflict, "application %q is archived; restore it before migrating into it", target.app.Name)
		}
		pp.Application = PlannedApp{ID: target.app.ID, Name: target.app.Name, Action: ActionReuse}
		pp.Notes = append(pp.Notes, "migrating into the existing application "+target.app.Name+", as asked")
	default:
		want := dnsLabel(p.Name, "app")
		if want != p.Name {
			pp.Notes = append(pp.Notes, fmt.Sprintf("project name %q is not a valid application name; using %q", p.Name, want))
		}
		name := want
		for n := 2; w.appNamed(name) != nil; n++ {
			name = withSuffix(want, n)
		}
		if name != want {
			pp.Collisions = append(pp.Collisions, NameCollision{Kind: "application", Name: want, Resolution: "suffix", ResolvedAs: name})
		}
		target = &worldApp{app: slipway.Application{Name: name, Status: slipway.AppActive}, read: true}
		pp.Application = PlannedApp{Name: name, Action: ActionCreate}
	}

	// One Environment per implicit stage; Services of the same stage ran
	// on the same compute and land together.
	groups := map[string][]slipway.Service{}
	for _, svc := range svcs {
		stage := dnsLabel(pp.stages[svc.ID], defaultStage)
		groups[stage] = append(groups[stage], svc)
	}
	if len(groups) == 0 {
		groups[defaultStage] = nil // an empty Project still becomes a usable Application
	}
	stages := make([]string, 0, len(groups))
	for st := range groups {
		stages = append(stages, st)
	}
	sort.Slice(stages, func(i, j int) bool {
		if (stages[i] == defaultStage) != (stages[j] == defaultStage) {
			return stages[i] == defaultStage
		}
		return stages[i] < stages[j]
	})
	envs, err := w.environments(ctx, r, target)
	if err != nil {
		return pp, err
	}
	var claimedEnvs []*worldEnv
	type placement struct {
		svc slipway.Service
		env *worldEnv
	}
	var placements []placement
	for i, st := range stages {
		var we *worldEnv
		for _, e := range envs {
			if strings.EqualFold(e.env.Name, st) {
				we = e
			}
		}
		pe := PlannedEnv{Name: st, Stage: st, Services: []string{}}
		if we != nil {
			pe.ID, pe.Action = we.env.ID, ActionReuse
			pp.Collisions = append(pp.Collisions, NameCollision{Kind: "environment", Name: st, Resolution: "reuse", ResolvedAs: st})
		} else {
			pe.Action = ActionCreate
			pe.Default = pp.Application.Action == ActionCreate && i == 0
			we = &worldEnv{env: slipway.Environment{Name: st}, key: "new:" + target.app.Name + "/" + st}
			claimedEnvs = append(claimedEnvs, we)
		}
		for _, svc := range groups[st] {
			pe.Services = append(pe.Services, svc.ID)
			placements = append(placements, placement{svc, we})
		}
		pp.Environments = append(pp.Environments, pe)
	}

	// The Services, in a stable order.
	sort.Slice(placements, func(i, j int) bool {
		if placements[i].env.env.Name != placements[j].env.env.Name {
			return placements[i].env.env.Name < placements[j].env.env.Name
		}
		return placements[i].svc.Name < placements[j].svc.Name
	})
	blocked := 0
	claims := map[string][]string{} // env key → names this plan takes
	for _, pl := range placements {
		taken, err := w.serviceNames(ctx, r, pl.env)
		if err != nil {
			return pp, err
		}
		want := dnsLabel(pl.svc.Name, "service")
		name := want
		for n := 2; taken[name] || contains(claims[pl.env.key], name); n++ {
			name = withSuffix(want, n)
		}
		claims[pl.env.key] = append(claims[pl.env.key], name)
		if name != want {
			pp.Collisions = append(pp.Collisions, NameCollision{Kind: "service", Name: pl.env.env.Name + "/" + want, Resolution: "suffix",
				ResolvedAs: pl.env.env.Name + "/" + name})
		}
		ps, err := s.planService(ctx, r, w.orgID, pl.svc)
		if err != nil {
			return pp, err
		}
		ps.NewName, ps.Environment = name, pl.env.env.Name
		if want != pl.svc.Name {
			ps.Warnings = append(ps.Warnings, fmt.Sprintf("name %q is not a valid service name; renamed", pl.svc.Name))
		}
		if ps.Action == ActionStay {
			blocked++
		}
		pp.Services = append(pp.Services, ps)
	}
	if blocked > 0 {
		pp.Status = PlanBlocked
		pp.Reason = fmt.Sprintf("%d service(s) cannot move yet; the project is left as it is until they can", blocked)
		return pp, nil
	}
	pp.Status = PlanReady

	// Claim the names for the Projects planned after this one.
	if pp.Application.Action == ActionCreate {
		w.apps = append(w.apps, target)
	}
	target.envs = append(target.envs, claimedEnvs...)
	for key, names := range claims {
		for _, n := range names {
			w.svcNames[key][n] = true
		}
	}
	return pp, nil
}

// planService checks whether one Service can move now, and what to say
// about it.
func (s *Service) planService(ctx context.Context, r migrationReader, orgID string, svc slipway.Service) (PlannedService, error) {
	ps := PlannedService{ID: svc.ID, Name: svc.Name, Action: ActionMove, Repo: svc.Source.RepoName, Domains: svc.Domains}
	recent, total, err := r.ListDeployments(ctx, orgID, svc.ID, store.Page{Limit: 20})
	if err != nil {
		return ps, err
	}
	ps.Deployments = total
	for _, d := range recent {
		if d.Status.InProgress() {
			// Its host name and runtime release name change with the
			// move; a pipeline half-way through would route the old ones.
			ps.Action = ActionStay
			ps.Reason = fmt.Sprintf("deployment %s is %s; migrate once it has finished, or cancel it", d.ID, d.Status)
			break
		}
	}
	vars, err := r.ListVariables(ctx, orgID, svc.ID)
	if err != nil {
		return ps, err
	}
	ps.Variables = len(vars)
	if svc.Type == slipway.ServiceApp {
		if svc.Source.IntegrationID == "" {
			ps.Warnings = append(ps.Warnings, "no Git integration linked: it moves, but pushes cannot deploy it until a source is set")
		} else {
			integ, err := r.GetIntegration(ctx, orgID, svc.Source.IntegrationID)
			switch {
			case slipway.ErrorCodeOf(err) == slipway.ECodeNotFound:
				ps.Warnings = append(ps.Warnings, "its integration "+svc.Source.IntegrationID+" no longer exists: it moves, but cannot deploy until relinked")
			case err != nil:
				return ps, err
			case integ.Status != slipway.IntegrationConnected:
				ps.Warnings = append(ps.Warnings, fmt.Sprintf("integration %s (%s) is %s: it moves, but pushes will not deploy it until the integration is fixed",
					integ.Label, integ.ID, integ.Status))
			}
		}
	}
	return ps, nil
}

// dnsLabel turns a legacy name into a valid Slipway name (lower-case
// letters, digits and dashes, starting with a letter, at most 63
// characters), falling back to fallback when nothing usable is left.
func dnsLabel(name, fallback string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(strings.TrimSpace(name)) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	out := b.String()
	if out == "" {
		return fallback
	}
	if out[0] < 'a' || out[0] > 'z' {
		out = fallback + "-" + out
	}
	if len(out) > 63 {
		out = strings.TrimRight(out[:63], "-")
	}
	return out
}

// withSuffix is name-n, shortened so the result stays a valid name.
func withSuffix(name string, n int) string {
	suffix := "-" + strconv.Itoa(n)
	if len(name)+len(suffix) > 63 {
		name = strings.TrimRight(name[:63-len(suffix)], "-")
	}
	return name + suffix
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
