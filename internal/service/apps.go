package service

import (
	"context"
	"fmt"
	"path"
	"strings"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/store"
)

// ApplicationInput creates or edits an Application.
type ApplicationInput struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// CreateApplication creates a draft Application with a default
// "production" Environment.
func (s *Service) CreateApplication(ctx context.Context, a Actor, in ApplicationInput) (slipway.Application, error) {
	if err := a.can(slipway.ResApplications, slipway.ActCreate); err != nil {
		return slipway.Application{}, err
	}
	if err := requireName("application", in.Name); err != nil {
		return slipway.Application{}, err
	}
	var app slipway.Application
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		var err error
		app, err = s.createApplicationTx(ctx, tx, a, in, "production")
		return err
	})
	return app, err
}

func (s *Service) createApplicationTx(ctx context.Context, tx *store.Tx, a Actor, in ApplicationInput, defaultEnv string) (slipway.Application, error) {
	now := s.now().UTC()
	app := slipway.Application{ID: slipway.NewID(slipway.PrefixApplication), OrgID: a.OrgID, Name: in.Name, Description: in.Description,
		Status: slipway.AppDraft, CreatedAt: now, UpdatedAt: now}
	if err := tx.CreateApplication(ctx, &app); err != nil {
		return slipway.Application{}, err
	}
	env := slipway.Environment{ID: slipway.NewID(slipway.PrefixEnvironment), OrgID: a.OrgID, ApplicationID: app.ID, Name: defaultEnv,
		Status: slipway.EnvDraft, CreatedAt: now, UpdatedAt: now}
	if err := tx.CreateEnvironment(ctx, &env); err != nil {
		return slipway.Application{}, err
	}
	if err := tx.SetDefaultEnvironment(ctx, a.OrgID, app.ID, env.ID); err != nil {
		return slipway.Application{}, err
	}
	app.DefaultEnvironmentID = env.ID
	s.audit(ctx, tx, a, "application.create", "application", app.ID, map[string]string{"name": app.Name})
	return app, nil
}

// ListApplications lists Applications, optionally by status.
func (s *Service) ListApplications(ctx context.Context, a Actor, status slipway.AppStatus, p store.Page) ([]slipway.Application, int, error) {
	if err := a.can(slipway.ResApplications, slipway.ActRead); err != nil {
		return nil, 0, err
	}
	return s.store.ListApplications(ctx, a.OrgID, store.ApplicationFilter{Status: status}, p)
}

// GetApplication returns an Application by id or name.
func (s *Service) GetApplication(ctx context.Context, a Actor, ref string) (slipway.Application, error) {
	if err := a.can(slipway.ResApplications, slipway.ActRead); err != nil {
		return slipway.Application{}, err
	}
	return s.resolveApp(ctx, a.OrgID, ref)
}

func (s *Service) resolveApp(ctx context.Context, orgID, ref string) (slipway.Application, error) {
	if strings.HasPrefix(ref, slipway.PrefixApplication+"_") {
		return s.store.GetApplication(ctx, orgID, ref)
	}
	apps, _, err := s.store.ListApplications(ctx, orgID, store.ApplicationFilter{}, store.Page{Limit: 200})
	if err != nil {
		return slipway.Application{}, err
	}
	for _, app := range apps {
		if app.Name == ref {
			return app, nil
		}
	}
	return slipway.Application{}, slipway.NotFound("application", ref)
}

// UpdateApplication edits name/description.
func (s *Service) UpdateApplication(ctx context.Context, a Actor, id string, in ApplicationInput) (slipway.Application, error) {
	if err := a.can(slipway.ResApplications, slipway.ActUpdate); err != nil {
		return slipway.Application{}, err
	}
	app, err := s.resolveApp(ctx, a.OrgID, id)
	if err != nil {
		return slipway.Application{}, err
	}
	if in.Name != "" {
		if err := requireName("application", in.Name); err != nil {
			return slipway.Application{}, err
		}
		app.Name = in.Name
	}
	if in.Description != "" {
		app.Description = in.Description
	}
	app.UpdatedAt = s.now().UTC()
	// A rename changes the generated host of every Service in the
	// Application: the claims move in the same transaction.
	var moved []string
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.UpdateApplication(ctx, &app); err != nil {
			return err
		}
		moved, err = s.reclaimGeneratedHosts(ctx, tx, a.OrgID, store.ServiceFilter{ApplicationID: app.ID})
		return err
	})
	if err != nil {
		return slipway.Application{}, err
	}
	s.syncRoutes(ctx, a.OrgID, moved...)
	return app, nil
}

// SetApplicationStatus moves an Application through draft → active →
// archived (and archived → active on restore).
func (s *Service) SetApplicationStatus(ctx context.Context, a Actor, id string, to slipway.AppStatus) (slipway.Application, error) {
	if err := a.can(slipway.ResApplications, slipway.ActUpdate); err != nil {
		return slipway.Application{}, err
	}
	app, err := s.resolveApp(ctx, a.OrgID, id)
	if err != nil {
		return slipway.Application{}, err
	}
	allowed := map[slipway.AppStatus][]slipway.AppStatus{
		slipway.AppDraft:    {slipway.AppActive, slipway.AppArchived},
		slipway.AppActive:   {slipway.AppArchived},
		slipway.AppArchived: {slipway.AppActive},
	}
	ok := false
	for _, t := range allowed[app.Status] {
		ok = ok || t == to
	}
	if !ok {
		return slipway.Application{}, slipway.Errorf(slipway.ECodeInvalidTransition, "application %q is %s and cannot become %s", app.Name, app.Status, to)
	}
	app.Status = to
	app.UpdatedAt = s.now().UTC()
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.UpdateApplication(ctx, &app); err != nil {
			return err
		}
		s.audit(ctx, tx, a, "application."+string(to), "application", app.ID, nil)
		return nil
	})
	return app, err
}

// EnvironmentInput creates an Environment.
type EnvironmentInput struct {
	Name string `json:"name"`
}

// CreateEnvironment adds a draft Environment to an Application.
func (s *Service) CreateEnvironment(ctx context.Context, a Actor, appRef string, in EnvironmentInput) (slipway.Environment, error) {
	if err := a.can(slipway.ResEnvironments, slipway.ActCreate); err != nil {
		return slipway.Environment{}, err
	}
	if err := requireName("environment", in.Name); err != nil {
		return slipway.Environment{}, err
	}
	app, err := s.resolveApp(ctx, a.OrgID, appRef)
	if err != nil {
		return slipway.Environment{}, err
	}
	if app.Status == slipway.AppArchived {
		return slipway.Environment{}, slipway.Errorf(slipway.ECodeConflict, "application %q is archived; restore it first", app.Name)
	}
	now := s.now().UTC()
	env := slipway.Environment{ID: slipway.NewID(slipway.PrefixEnvironment), OrgID: a.OrgID, ApplicationID: app.ID, Name: in.Name,
		Status: slipway.EnvDraft, CreatedAt: now, UpdatedAt: now}
	return env, s.store.CreateEnvironment(ctx, &env)
}

// ListEnvironments lists an Application's Environments.
func (s *Service) ListEnvironments(ctx context.Context, a Actor, appRef string) ([]slipway.Environment, error) {
	if err := a.can(slipway.ResEnvironments, slipway.ActRead); err != nil {
		return nil, err
	}
	app, err := s.resolveApp(ctx, a.OrgID, appRef)
	if err != nil {
		return nil, err
	}
	return s.store.ListEnvironments(ctx, a.OrgID, app.ID)
}

// GetEnvironment returns one Environment by id.
func (s *Service) GetEnvironment(ctx context.Context, a Actor, id string) (slipway.Environment, error) {
	if err := a.can(slipway.ResEnvironments, slipway.ActRead); err != nil {
		return slipway.Environment{}, err
	}
	return s.store.GetEnvironment(ctx, a.OrgID, id)
}

// resolveEnv finds an Environment by id, or by "app/env" names.
func (s *Service) resolveEnv(ctx context.Context, orgID, ref string) (slipway.Environment, error) {
	if strings.HasPrefix(ref, slipway.PrefixEnvironment+"_") {
		return s.store.GetEnvironment(ctx, orgID, ref)
	}
	appRef, envName, ok := strings.Cut(ref, "/")
	if !ok {
		return slipway.Environment{}, slipway.Errorf(slipway.ECodeInvalid, "environment %q: use an id or APP/ENV", ref)
	}
	app, err := s.resolveApp(ctx, orgID, appRef)
	if err != nil {
		return slipway.Environment{}, err
	}
	envs, err := s.store.ListEnvironments(ctx, orgID, app.ID)
	if err != nil {
		return slipway.Environment{}, err
	}
	for _, e := range envs {
		if e.Name == envName {
			return e, nil
		}
	}
	return slipway.Environment{}, slipway.NotFound("environment", ref)
}

// ActivateEnvironment moves a draft Environment to active; its
// Application becomes active too.
func (s *Service) ActivateEnvironment(ctx context.Context, a Actor, ref string) (slipway.Environment, error) {
	if err := a.can(slipway.ResEnvironments, slipway.ActUpdate); err != nil {
		return slipway.Environment{}, err
	}
	env, err := s.resolveEnv(ctx, a.OrgID, ref)
	if err != nil {
		return slipway.Environment{}, err
	}
	if env.Status == slipway.EnvActive {
		return env, nil
	}
	env.Status = slipway.EnvActive
	env.UpdatedAt = s.now().UTC()
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.UpdateEnvironment(ctx, &env); err != nil {
			return err
		}
		app, err := tx.GetApplication(ctx, a.OrgID, env.ApplicationID)
		if err != nil {
			return err
		}
		if app.Status == slipway.AppDraft {
			app.Status = slipway.AppActive
			app.UpdatedAt = env.UpdatedAt
			return tx.UpdateApplication(ctx, &app)
		}
		return nil
	})
	return env, err
}

// SetDefaultEnvironment makes an Environment its Application's default.
func (s *Service) SetDefaultEnvironment(ctx context.Context, a Actor, ref string) (slipway.Environment, error) {
	if err := a.can(slipway.ResEnvironments, slipway.ActUpdate); err != nil {
		return slipway.Environment{}, err
	}
	env, err := s.resolveEnv(ctx, a.OrgID, ref)
	if err != nil {
		return slipway.Environment{}, err
	}
	if err := s.store.SetDefaultEnvironment(ctx, a.OrgID, env.ApplicationID, env.ID); err != nil {
		return slipway.Environment{}, err
	}
	env.IsDefault = true
	return env, nil
}

// ServiceInput creates or edits a Service. On update, nil pointer fields
// are left unchanged.
type ServiceInput struct {
	Name    string                 `json:"name"`
	Type    slipway.ServiceType    `json:"type"`
	Source  *slipway.ServiceSource `json:"source,omitempty"`
	Build   *slipway.BuildSettings `json:"build,omitempty"`
	Image   *string                `json:"image,omitempty"`
	Domains []string               `json:"domains,omitempty"`
	// MaxBodyMB is the request-body limit in MiB (1..10240; unset keeps
	// the current value, 100 for a new Service).
	MaxBodyMB *int `json:"max_body_mb,omitempty"`
	// HSTS turns Strict-Transport-Security on HTTPS responses on or off.
	HSTS *bool `json:"hsts,omitempty"`
}

// applyRouting copies the routing settings of in onto svc, refusing a
// body limit out of range.
func applyRouting(svc *slipway.Service, in ServiceInput) error {
	if svc.MaxBodyMB == 0 {
		svc.MaxBodyMB = slipway.DefaultMaxBodyMB
	}
	if in.MaxBodyMB != nil {
		if mb := *in.MaxBodyMB; mb < slipway.MinMaxBodyMB || mb > slipway.MaxMaxBodyMB {
			return slipway.Errorf(slipway.ECodeInvalid, "max_body_mb %d is out of range: use %d to %d (MiB)", mb, slipway.MinMaxBodyMB, slipway.MaxMaxBodyMB)
		}
		svc.MaxBodyMB = *in.MaxBodyMB
	}
	if in.HSTS != nil {
		svc.HSTS = *in.HSTS
	}
	return nil
}

// CreateService adds a Service to an Environment. An app Service's source
// is validated against the provider before anything is saved: the
// repository must be visible to the integration and the branch or tag
// must exist. The repository webhook is installed when this is the first
// Service to link the repository.
func (s *Service) CreateService(ctx context.Context, a Actor, envRef string, in ServiceInput) (slipway.Service, error) {
	if err := a.can(slipway.ResServices, slipway.ActCreate); err != nil {
		return slipway.Service{}, err
	}
	if err := requireName("service", in.Name); err != nil {
		return slipway.Service{}, err
	}
	env, err := s.resolveEnv(ctx, a.OrgID, envRef)
	if err != nil {
		return slipway.Service{}, err
	}
	if in.Type == "" {
		in.Type = slipway.ServiceApp
	}
	now := s.now().UTC()
	svc := slipway.Service{ID: slipway.NewID(slipway.PrefixService), OrgID: a.OrgID, ApplicationID: env.ApplicationID, EnvironmentID: env.ID,
		Name: in.Name, Type: in.Type, Domains: in.Domains, CreatedAt: now, UpdatedAt: now}
	if in.Build != nil {
		svc.Build = *in.Build
	}
	if in.Image != nil {
		svc.Image = *in.Image
	}
	if in.Source != nil {
		svc.Source = *in.Source
	}
	if err := applyRouting(&svc, in); err != nil {
		return slipway.Service{}, err
	}
	if err := s.validateService(ctx, a, &svc); err != nil {
		return slipway.Service{}, err
	}
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.CreateService(ctx, &svc); err != nil {
			return err
		}
		if err := s.claimGeneratedHost(ctx, tx, svc); err != nil {
			return err
		}
		s.audit(ctx, tx, a, "service.create", "service", svc.ID, map[string]string{"name": svc.Name, "repo": svc.Source.RepoName})
		return nil
	})
	if err != nil {
		return slipway.Service{}, err
	}
	s.syncRepoHook(ctx, a.OrgID, svc.Source.IntegrationID, svc.Source.RepoID)
	return s.withHosts(ctx, svc)
}

// validateService checks the fields of a Service and, for app Services,
// its Git source against the provider.
func (s *Service) validateService(ctx context.Context, a Actor, svc *slipway.Service) error {
	switch svc.Type {
	case slipway.ServiceApp:
		src := &svc.Source
		if src.IntegrationID == "" || src.RepoID == "" && src.RepoName == "" {
			return slipway.Errorf(slipway.ECodeInvalid, "an app service needs an integration and a repository")
		}
		n := 0
		for _, v := range []string{src.Branch, src.Tag, src.TagPattern} {
			if v != "" {
				n++
			}
		}
		if n != 1 {
			return slipway.Errorf(slipway.ECodeInvalid, "set exactly one of branch, tag or tag pattern")
		}
		if src.TagPattern != "" {
			if _, err := path.Match(src.TagPattern, "x"); err != nil {
				return slipway.Errorf(slipway.ECodeInvalid, "tag pattern %q is not a valid glob: %v", src.TagPattern, err)
			}
		}
		for _, w := range src.WatchPaths {
			if _, err := path.Match(w, "x"); err != nil {
				return slipway.Errorf(slipway.ECodeInvalid, "watch path %q is not a valid glob: %v", w, err)
			}
		}
		if strings.Contains(src.RootDir, "..") || strings.HasPrefix(src.RootDir, "/") {
			return slipway.Errorf(slipway.ECodeInvalid, "root directory %q must be a relative path inside the repository", src.RootDir)
		}
		repo, err := s.visibleRepo(ctx, a.OrgID, src.IntegrationID, firstNonEmpty(src.RepoID, src.RepoName))
		if err != nil {
			return err
		}
		src.RepoID, src.RepoName = repo.ID, repo.FullName
		if src.Branch != "" || src.Tag != "" {
			if _, err := s.resolveRef(ctx, a.OrgID, src.IntegrationID, repo, firstNonEmpty(src.Branch, src.Tag)); err != nil {
				return err
			}
		}
	case slipway.ServiceDocker:
		if svc.Image == "" {
			return slipway.Errorf(slipway.ECodeInvalid, "a docker service needs an image")
		}
	default:
		return slipway.Errorf(slipway.ECodeInvalid, "service type %q is not app or docker", svc.Type)
	}
	domains, err := s.normalizeDomains(svc.Domains)
	if err != nil {
		return err
	}
	svc.Domains = domains
	return nil
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// ResolveService finds a Service by id or "app/env/name".
func (s *Service) ResolveService(ctx context.Context, a Actor, ref string) (slipway.Service, error) {
	if err := a.can(slipway.ResServices, slipway.ActRead); err != nil {
		return slipway.Service{}, err
	}
	svc, err := s.resolveService(ctx, a.OrgID, ref)
	if err != nil {
		return slipway.Service{}, err
	}
	return s.withHosts(ctx, svc)
}

func (s *Service) resolveService(ctx context.Context, orgID, ref string) (slipway.Service, error) {
	if strings.HasPrefix(ref, slipway.PrefixService+"_") {
		return s.store.GetService(ctx, orgID, ref)
	}
	i := strings.LastIndex(ref, "/")
	if i < 0 {
		return slipway.Service{}, slipway.Errorf(slipway.ECodeInvalid, "service %q: use an id or APP/ENV/NAME", ref)
	}
	env, err := s.resolveEnv(ctx, orgID, ref[:i])
	if err != nil {
		return slipway.Service{}, err
	}
	svcs, _, err := s.store.ListServices(ctx, orgID, store.ServiceFilter{EnvironmentID: env.ID}, store.Page{Limit: 200})
	if err != nil {
		return slipway.Service{}, err
	}
	for _, svc := range svcs {
		if svc.Name == ref[i+1:] {
			return svc, nil
		}
	}
	return slipway.Service{}, slipway.NotFound("service", ref)
}

// ListServices lists Services of an Environment (envRef may be empty for all).
func (s *Service) ListServices(ctx context.Context, a Actor, envRef string, p store.Page) ([]slipway.Service, int, error) {
	if err := a.can(slipway.ResServices, slipway.ActRead); err != nil {
		return nil, 0, err
	}
	f := store.ServiceFilter{}
	if envRef != "" {
		env, err := s.resolveEnv(ctx, a.OrgID, envRef)
		if err != nil {
			return nil, 0, err
		}
		f.EnvironmentID = env.ID
	}
	return s.store.ListServices(ctx, a.OrgID, f, p)
}

// UpdateService edits a Service; a changed source is validated like a new one.
func (s *Service) UpdateService(ctx context.Context, a Actor, ref string, in ServiceInput) (slipway.Service, error) {
	if err := a.can(slipway.ResServices, slipway.ActUpdate); err != nil {
		return slipway.Service{}, err
	}
	svc, err := s.resolveService(ctx, a.OrgID, ref)
	if err != nil {
		return slipway.Service{}, err
	}
	old := svc.Source
	if in.Name != "" {
		if err := requireName("service", in.Name); err != nil {
			return slipway.Service{}, err
		}
		svc.Name = in.Name
	}
	if in.Source != nil {
		svc.Source = *in.Source
	}
	if in.Build != nil {
		svc.Build = *in.Build
	}
	if in.Image != nil {
		svc.Image = *in.Image
	}
	if in.Domains != nil {
		svc.Domains = in.Domains
	}
	if err := applyRouting(&svc, in); err != nil {
		return slipway.Service{}, err
	}
	if err := s.validateService(ctx, a, &svc); err != nil {
		return slipway.Service{}, err
	}
	svc.UpdatedAt = s.now().UTC()
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.UpdateService(ctx, &svc); err != nil {
			return err
		}
		if err := s.claimGeneratedHost(ctx, tx, svc); err != nil {
			return err
		}
		s.audit(ctx, tx, a, "service.update", "service", svc.ID, nil)
		return nil
	})
	if err != nil {
		return slipway.Service{}, err
	}
	s.syncRoutes(ctx, a.OrgID, svc.ID)
	if old.IntegrationID != svc.Source.IntegrationID || old.RepoID != svc.Source.RepoID {
		s.syncRepoHook(ctx, a.OrgID, old.IntegrationID, old.RepoID)
	}
	s.syncRepoHook(ctx, a.OrgID, svc.Source.IntegrationID, svc.Source.RepoID)
	return s.withHosts(ctx, svc)
}

// DeleteService removes a Service (its deployments' history goes with it).
// Its release is stopped and its builds, images, workspace and user are
// removed first (Releases.Retire), so a failure there keeps the Service
// to delete again.
func (s *Service) DeleteService(ctx context.Context, a Actor, ref string) error {
	if err := a.can(slipway.ResServices, slipway.ActDelete); err != nil {
		return err
	}
	svc, err := s.resolveService(ctx, a.OrgID, ref)
	if err != nil {
		return err
	}
	// The release stops and its routes go before the row does: nothing
	// keeps answering for a Service that no longer exists.
	if s.releases != nil {
		if err := s.releases.Retire(ctx, svc); err != nil {
			return fmt.Errorf("retire service %s (its release, builds and files): %w", svc.Name, err)
		}
	}
	if err := s.store.DeleteService(ctx, a.OrgID, svc.ID); err != nil {
		return fmt.Errorf("delete service: %w", err)
	}
	s.syncRepoHook(ctx, a.OrgID, svc.Source.IntegrationID, svc.Source.RepoID)
	return nil
}

// hostLabel turns a free-form legacy name into a DNS label, as legacy
// Project hosts always did (so their hosts keep their spelling).
func hostLabel(name string) string { return strings.Trim(slipway.DashedLabel(name), "-") }
