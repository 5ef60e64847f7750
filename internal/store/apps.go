package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"slipway.dev/slipway"
)

const appColumns = `id, org_id, name, description, status, default_environment_id, migrated_from_project, created_at, updated_at`

func scanApp(sc rowScanner) (slipway.Application, error) {
	var a slipway.Application
	err := sc.Scan(&a.ID, &a.OrgID, &a.Name, &a.Description, &a.Status, &a.DefaultEnvironmentID, &a.MigratedFromProject,
		timeCol{&a.CreatedAt}, timeCol{&a.UpdatedAt})
	return a, err
}

// CreateApplication inserts a. Names are unique per organisation,
// case-insensitively.
func (q *queries) CreateApplication(ctx context.Context, a *slipway.Application) error {
	if a.ID == "" {
		a.ID = slipway.NewID(slipway.PrefixApplication)
	}
	if a.Status == "" {
		a.Status = slipway.AppActive
	}
	a.CreatedAt = orNow(a.CreatedAt)
	a.UpdatedAt = a.CreatedAt
	_, err := q.exec(ctx, `INSERT INTO applications (`+appColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.OrgID, a.Name, a.Description, a.Status, a.DefaultEnvironmentID, a.MigratedFromProject, q.tv(a.CreatedAt), q.tv(a.UpdatedAt))
	if isForeignKeyViolation(err) {
		return notFound("organisation", a.OrgID)
	}
	return conflictOr(err, "create application", "an application named %q already exists", a.Name)
}

// GetApplication returns one application of the organisation.
func (q *queries) GetApplication(ctx context.Context, orgID, id string) (slipway.Application, error) {
	a, err := scanApp(q.queryRow(ctx, `SELECT `+appColumns+` FROM applications WHERE org_id = ? AND id = ?`, orgID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, notFound("application", id)
	}
	if err != nil {
		return a, fmt.Errorf("get application: %w", err)
	}
	return a, nil
}

// ApplicationFilter narrows ListApplications; zero fields match all.
type ApplicationFilter struct {
	Status slipway.AppStatus
}

// ListApplications returns one page of applications ordered by name.
func (q *queries) ListApplications(ctx context.Context, orgID string, f ApplicationFilter, p Page) ([]slipway.Application, int, error) {
	where, args := `org_id = ?`, []any{orgID}
	if f.Status != "" {
		where += ` AND status = ?`
		args = append(args, f.Status)
	}
	total, err := q.count(ctx, `SELECT COUNT(*) FROM applications WHERE `+where, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("list applications: %w", err)
	}
	limit, offset := p.window()
	out, err := queryAll(ctx, q, scanApp, `SELECT `+appColumns+` FROM applications WHERE `+where+` ORDER BY lower(name), id LIMIT ? OFFSET ?`,
		append(args, limit, offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list applications: %w", err)
	}
	return out, total, nil
}

// UpdateApplication saves a's name, description and status. The default
// environment changes only through SetDefaultEnvironment.
func (q *queries) UpdateApplication(ctx context.Context, a *slipway.Application) error {
	a.UpdatedAt = now()
	err := q.execOne(ctx, "application", a.ID, `UPDATE applications SET name = ?, description = ?, status = ?, updated_at = ?
WHERE org_id = ? AND id = ?`, a.Name, a.Description, a.Status, q.tv(a.UpdatedAt), a.OrgID, a.ID)
	if slipway.ErrorCodeOf(err) == slipway.ECodeNotFound {
		return err
	}
	return conflictOr(err, "update application", "an application named %q already exists", a.Name)
}

const envColumns = `id, org_id, application_id, name, status, is_default, created_at, updated_at`

func scanEnv(sc rowScanner) (slipway.Environment, error) {
	var e slipway.Environment
	err := sc.Scan(&e.ID, &e.OrgID, &e.ApplicationID, &e.Name, &e.Status, &e.IsDefault, timeCol{&e.CreatedAt}, timeCol{&e.UpdatedAt})
	return e, err
}

// CreateEnvironment inserts e into its application. Names are unique per
// application. When e.IsDefault is set, e becomes the application's only
// default.
func (q *queries) CreateEnvironment(ctx context.Context, e *slipway.Environment) error {
	if e.ID == "" {
		e.ID = slipway.NewID(slipway.PrefixEnvironment)
	}
	if e.Status == "" {
		e.Status = slipway.EnvActive
	}
	e.CreatedAt = orNow(e.CreatedAt)
	e.UpdatedAt = e.CreatedAt
	return q.atomic(ctx, func(q *queries) error {
		_, err := q.exec(ctx, `INSERT INTO environments (`+envColumns+`) VALUES (?, ?, ?, ?, ?, FALSE, ?, ?)`,
			e.ID, e.OrgID, e.ApplicationID, e.Name, e.Status, q.tv(e.CreatedAt), q.tv(e.UpdatedAt))
		if isForeignKeyViolation(err) {
			return notFound("application", e.ApplicationID)
		}
		if err := conflictOr(err, "create environment", "an environment named %q already exists in this application", e.Name); err != nil {
			return err
		}
		if e.IsDefault {
			return q.SetDefaultEnvironment(ctx, e.OrgID, e.ApplicationID, e.ID)
		}
		return nil
	})
}

// GetEnvironment returns one environment of the organisation.
func (q *queries) GetEnvironment(ctx context.Context, orgID, id string) (slipway.Environment, error) {
	e, err := scanEnv(q.queryRow(ctx, `SELECT `+envColumns+` FROM environments WHERE org_id = ? AND id = ?`, orgID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return e, notFound("environment", id)
	}
	if err != nil {
		return e, fmt.Errorf("get environment: %w", err)
	}
	return e, nil
}

// ListEnvironments returns an application's environments, the default
// first, then oldest first.
func (q *queries) ListEnvironments(ctx context.Context, orgID, appID string) ([]slipway.Environment, error) {
	out, err := queryAll(ctx, q, scanEnv, `SELECT `+envColumns+` FROM environments WHERE org_id = ? AND application_id = ?
ORDER BY is_default DESC, created_at, id`, orgID, appID)
	if err != nil {
		return nil, fmt.Errorf("list environments: %w", err)
	}
	return out, nil
}

// UpdateEnvironment saves e's name and status. The default flag changes
// only through SetDefaultEnvironment.
func (q *queries) UpdateEnvironment(ctx context.Context, e *slipway.Environment) error {
	e.UpdatedAt = now()
	err := q.execOne(ctx, "environment", e.ID, `UPDATE environments SET name = ?, status = ?, updated_at = ? WHERE org_id = ? AND id = ?`,
		e.Name, e.Status, q.tv(e.UpdatedAt), e.OrgID, e.ID)
	if slipway.ErrorCodeOf(err) == slipway.ECodeNotFound {
		return err
	}
	return conflictOr(err, "update environment", "an environment named %q already exists in this application", e.Name)
}

// SetDefaultEnvironment makes envID the application's one default
// environment and records it on the application, atomically.
func (q *queries) SetDefaultEnvironment(ctx context.Context, orgID, appID, envID string) error {
	return q.atomic(ctx, func(q *queries) error {
		n, err := q.count(ctx, `SELECT COUNT(*) FROM environments WHERE org_id = ? AND application_id = ? AND id = ?`, orgID, appID, envID)
		if err != nil {
			return fmt.Errorf("set default environment: %w", err)
		}
		if n == 0 {
			return notFound("environment", envID)
		}
		t := q.tv(now())
		// Clear first, then set: unique indexes are checked row by row, so a
		// single "is_default = (id = ?)" could transiently see two defaults.
		if _, err := q.exec(ctx, `UPDATE environments SET is_default = FALSE, updated_at = ?
WHERE org_id = ? AND application_id = ? AND is_default AND id <> ?`, t, orgID, appID, envID); err != nil {
			return fmt.Errorf("set default environment: %w", err)
		}
		if _, err := q.exec(ctx, `UPDATE environments SET is_default = TRUE, updated_at = ? WHERE org_id = ? AND id = ?`, t, orgID, envID); err != nil {
			return fmt.Errorf("set default environment: %w", err)
		}
		return wrapErr("set default environment", q.execOne(ctx, "application", appID,
			`UPDATE applications SET default_environment_id = ?, updated_at = ? WHERE org_id = ? AND id = ?`, envID, t, orgID, appID))
	})
}

const serviceColumns = `id, org_id, application_id, environment_id, project_id, name, type, integration_id, repo_id, repo_name,
branch, tag, tag_pattern, root_dir, watch_paths, auto_deploy, build, image, domains, auto_deploy_paused, live_deployment_id,
last_seen_head, created_at, updated_at, max_body_mb, hsts`

func scanService(sc rowScanner) (slipway.Service, error) {
	var s slipway.Service
	err := sc.Scan(&s.ID, &s.OrgID, strCol{&s.ApplicationID}, strCol{&s.EnvironmentID}, strCol{&s.ProjectID}, &s.Name, &s.Type,
		strCol{&s.Source.IntegrationID}, &s.Source.RepoID, &s.Source.RepoName, &s.Source.Branch, &s.Source.Tag, &s.Source.TagPattern,
		&s.Source.RootDir, jsonCol{&s.Source.WatchPaths}, &s.Source.AutoDeploy, jsonCol{&s.Build}, &s.Image, jsonCol{&s.Domains},
		&s.AutoDeployPaused, &s.LiveDeploymentID, &s.LastSeenHead, timeCol{&s.CreatedAt}, timeCol{&s.UpdatedAt}, &s.MaxBodyMB, &s.HSTS)
	return s, err
}

// normDomains lowercases hosts and drops duplicates and empties, so the
// router's lookup and the uniqueness check see one spelling.
func normDomains(in []string) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, d := range in {
		d = strings.ToLower(strings.TrimSpace(d))
		if d == "" || seen[d] {
			continue
		}
		seen[d] = true
		out = append(out, d)
	}
	return out
}

// CreateService inserts s. Names are unique per environment (and per
// project for legacy services); a domain belongs to one service across all
// organisations.
func (q *queries) CreateService(ctx context.Context, s *slipway.Service) error {
	if s.ID == "" {
		s.ID = slipway.NewID(slipway.PrefixService)
	}
	if s.Type == "" {
		s.Type = slipway.ServiceApp
	}
	s.Domains = normDomains(s.Domains)
	s.CreatedAt = orNow(s.CreatedAt)
	s.UpdatedAt = s.CreatedAt
	return q.atomic(ctx, func(q *queries) error {
		_, err := q.exec(ctx, `INSERT INTO services (`+serviceColumns+`)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			s.ID, s.OrgID, nullable(s.ApplicationID), nullable(s.EnvironmentID), nullable(s.ProjectID), s.Name, s.Type,
			nullable(s.Source.IntegrationID), s.Source.RepoID, s.Source.RepoName, s.Source.Branch, s.Source.Tag, s.Source.TagPattern,
			s.Source.RootDir, jsonText(orEmpty(s.Source.WatchPaths)), s.Source.AutoDeploy, jsonText(s.Build), s.Image, jsonText(s.Domains),
			s.AutoDeployPaused, s.LiveDeploymentID, s.LastSeenHead, q.tv(s.CreatedAt), q.tv(s.UpdatedAt), s.EffectiveMaxBodyMB(), s.HSTS)
		if isForeignKeyViolation(err) {
			return slipway.Errorf(slipway.ECodeNotFound, "application, environment or project not found")
		}
		if err := conflictOr(err, "create service", "a service named %q already exists here", s.Name); err != nil {
			return err
		}
		return q.replaceDomains(ctx, s.OrgID, s.ID, s.Domains)
	})
}

// GetService returns one service of the organisation.
func (q *queries) GetService(ctx context.Context, orgID, id string) (slipway.Service, error) {
	return q.getService(ctx, id, `org_id = ? AND id = ?`, orgID, id)
}

func (q *queries) getService(ctx context.Context, key, where string, args ...any) (slipway.Service, error) {
	s, err := scanService(q.queryRow(ctx, `SELECT `+serviceColumns+` FROM services WHERE `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return s, notFound("service", key)
	}
	if err != nil {
		return s, fmt.Errorf("get service: %w", err)
	}
	return s, nil
}

// ServiceFilter narrows ListServices; zero fields match all.
type ServiceFilter struct {
	ApplicationID string
	EnvironmentID string
	ProjectID     string
	IntegrationID string
	RepoID        string
}

// ListServices returns one page of the organisation's services ordered by
// name.
func (q *queries) ListServices(ctx context.Context, orgID string, f ServiceFilter, p Page) ([]slipway.Service, int, error) {
	where, args := `org_id = ?`, []any{orgID}
	for _, c := range []struct{ col, val string }{
		{"application_id", f.ApplicationID}, {"environment_id", f.EnvironmentID}, {"project_id", f.ProjectID},
		{"integration_id", f.IntegrationID}, {"repo_id", f.RepoID},
	} {
		if c.val != "" {
			where += ` AND ` + c.col + ` = ?`
			args = append(args, c.val)
		}
	}
	total, err := q.count(ctx, `SELECT COUNT(*) FROM services WHERE `+where, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("list services: %w", err)
	}
	limit, offset := p.window()
	out, err := queryAll(ctx, q, scanService, `SELECT `+serviceColumns+` FROM services WHERE `+where+` ORDER BY lower(name), id LIMIT ? OFFSET ?`,
		append(args, limit, offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list services: %w", err)
	}
	return out, total, nil
}

// UpdateService saves s's name, source, build settings, image, domains,
// routing settings and auto-deploy pause. Placement (application, environment, project), the
// live deployment and the reconciler's head change through their own
// methods.
func (q *queries) UpdateService(ctx context.Context, s *slipway.Service) error {
	s.Domains = normDomains(s.Domains)
	s.UpdatedAt = now()
	return q.atomic(ctx, func(q *queries) error {
		err := q.execOne(ctx, "service", s.ID, `UPDATE services SET name = ?, type = ?, integration_id = ?, repo_id = ?, repo_name = ?,
branch = ?, tag = ?, tag_pattern = ?, root_dir = ?, watch_paths = ?, auto_deploy = ?, build = ?, image = ?, domains = ?,
auto_deploy_paused = ?, updated_at = ?, max_body_mb = ?, hsts = ? WHERE org_id = ? AND id = ?`,
			s.Name, s.Type, nullable(s.Source.IntegrationID), s.Source.RepoID, s.Source.RepoName, s.Source.Branch, s.Source.Tag,
			s.Source.TagPattern, s.Source.RootDir, jsonText(orEmpty(s.Source.WatchPaths)), s.Source.AutoDeploy, jsonText(s.Build), s.Image,
			jsonText(s.Domains), s.AutoDeployPaused, q.tv(s.UpdatedAt), s.EffectiveMaxBodyMB(), s.HSTS, s.OrgID, s.ID)
		if slipway.ErrorCodeOf(err) == slipway.ECodeNotFound {
			return err
		}
		if err := conflictOr(err, "update service", "a service named %q already exists here", s.Name); err != nil {
			return err
		}
		return q.replaceDomains(ctx, s.OrgID, s.ID, s.Domains)
	})
}

// DeleteService deletes a service with its deployments, logs, variables
// and domains.
func (q *queries) DeleteService(ctx context.Context, orgID, id string) error {
	return q.atomic(ctx, func(q *queries) error {
		// Logs reference deployments by id only; remove them explicitly so
		// the cascade does not depend on its depth.
		if _, err := q.exec(ctx, `DELETE FROM deployment_logs WHERE deployment_id IN
(SELECT id FROM deployments WHERE org_id = ? AND service_id = ?)`, orgID, id); err != nil {
			return fmt.Errorf("delete service logs: %w", err)
		}
		return wrapErr("delete service", q.execOne(ctx, "service", id, `DELETE FROM services WHERE org_id = ? AND id = ?`, orgID, id))
	})
}

// GetServiceByDomain returns the service routed at host. Not org-scoped:
// the router uses it to find the tenant.
func (q *queries) GetServiceByDomain(ctx context.Context, host string) (slipway.Service, error) {
	host = strings.ToLower(strings.TrimSpace(host))
	return q.getService(ctx, host, `id = (SELECT service_id FROM host_claims WHERE host = ?)`, host)
}

// ListServicesWithAutoDeploy returns, across all organisations, the
// services the reconciler watches: auto-deploy on, not paused, following a
// branch.
func (q *queries) ListServicesWithAutoDeploy(ctx context.Context) ([]slipway.Service, error) {
	out, err := queryAll(ctx, q, scanService, `SELECT `+serviceColumns+` FROM services
WHERE auto_deploy AND NOT auto_deploy_paused AND (branch <> '' OR tag <> '' OR tag_pattern <> '') ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list auto-deploy services: %w", err)
	}
	return out, nil
}

// SetServiceLastSeenHead records the head commit the reconciler last saw.
func (q *queries) SetServiceLastSeenHead(ctx context.Context, orgID, serviceID, sha string) error {
	return wrapErr("set last seen head", q.execOne(ctx, "service", serviceID,
		`UPDATE services SET last_seen_head = ? WHERE org_id = ? AND id = ?`, sha, orgID, serviceID))
}

// MoveServiceToEnvironment moves a legacy service out of its project into
// an environment of an application, under a new name, clearing
// project_id.
func (q *queries) MoveServiceToEnvironment(ctx context.Context, orgID, serviceID, appID, envID, newName string) error {
	return q.atomic(ctx, func(q *queries) error {
		n, err := q.count(ctx, `SELECT COUNT(*) FROM environments WHERE org_id = ? AND application_id = ? AND id = ?`, orgID, appID, envID)
		if err != nil {
			return fmt.Errorf("move service: %w", err)
		}
		if n == 0 {
			return notFound("environment", envID)
		}
		err = q.execOne(ctx, "service", serviceID, `UPDATE services SET application_id = ?, environment_id = ?, project_id = NULL, name = ?, updated_at = ?
WHERE org_id = ? AND id = ?`, appID, envID, newName, q.tv(now()), orgID, serviceID)
		if slipway.ErrorCodeOf(err) == slipway.ECodeNotFound {
			return err
		}
		return conflictOr(err, "move service", "a service named %q already exists in the environment", newName)
	})
}

// Variable is one service environment variable. Value is ciphertext when
// Secret is set (the store never sees secret values in the clear) and plain
// text otherwise.
type Variable struct {
	Key       string
	Value     []byte
	Secret    bool
	UpdatedAt time.Time
}

// SetVariable creates or replaces a service variable.
func (q *queries) SetVariable(ctx context.Context, orgID, serviceID string, v Variable) error {
	v.UpdatedAt = orNow(v.UpdatedAt)
	_, err := q.exec(ctx, `INSERT INTO service_variables (service_id, org_id, key, value, secret, updated_at)
SELECT id, org_id, ?, ?, ?, ? FROM services WHERE org_id = ? AND id = ?
ON CONFLICT (service_id, key) DO UPDATE SET value = excluded.value, secret = excluded.secret, updated_at = excluded.updated_at`,
		v.Key, bytesOrEmpty(v.Value), v.Secret, q.tv(v.UpdatedAt), orgID, serviceID)
	if err != nil {
		return fmt.Errorf("set variable: %w", err)
	}
	// The INSERT … SELECT inserts nothing for a missing or foreign service;
	// tell that apart from success.
	if _, err := q.GetService(ctx, orgID, serviceID); err != nil {
		return err
	}
	return nil
}

// ListVariables returns a service's variables ordered by key.
func (q *queries) ListVariables(ctx context.Context, orgID, serviceID string) ([]Variable, error) {
	if _, err := q.GetService(ctx, orgID, serviceID); err != nil {
		return nil, err
	}
	out, err := queryAll(ctx, q, scanVariable, `SELECT key, value, secret, updated_at FROM service_variables WHERE org_id = ? AND service_id = ? ORDER BY key`,
		orgID, serviceID)
	if err != nil {
		return nil, fmt.Errorf("list variables: %w", err)
	}
	return out, nil
}

func scanVariable(sc rowScanner) (Variable, error) {
	var v Variable
	err := sc.Scan(&v.Key, &v.Value, &v.Secret, timeCol{&v.UpdatedAt})
	return v, err
}

// DeleteVariable removes one variable.
func (q *queries) DeleteVariable(ctx context.Context, orgID, serviceID, key string) error {
	return wrapErr("delete variable", q.execOne(ctx, "variable", key,
		`DELETE FROM service_variables WHERE org_id = ? AND service_id = ? AND key = ?`, orgID, serviceID, key))
}

// SetDeployHookToken stores the hash of a service's deploy-hook token
// (nil removes the hook).
func (q *queries) SetDeployHookToken(ctx context.Context, orgID, serviceID string, tokenHash []byte) error {
	var v any
	if len(tokenHash) > 0 {
		v = tokenHash
	}
	err := q.execOne(ctx, "service", serviceID, `UPDATE services SET deploy_hook_hash = ? WHERE org_id = ? AND id = ?`, v, orgID, serviceID)
	if slipway.ErrorCodeOf(err) == slipway.ECodeNotFound {
		return err
	}
	return conflictOr(err, "set deploy hook", "deploy hook token already in use")
}

// GetServiceByDeployHook finds the service whose deploy-hook token hashes
// to tokenHash. Not org-scoped: the hook URL carries only the token.
func (q *queries) GetServiceByDeployHook(ctx context.Context, tokenHash []byte) (slipway.Service, error) {
	if len(tokenHash) == 0 {
		return slipway.Service{}, notFound("deploy hook", "")
	}
	return q.getService(ctx, "", `deploy_hook_hash = ?`, tokenHash)
}

// SetLiveDeployment records which deployment of the service is live.
func (q *queries) SetLiveDeployment(ctx context.Context, orgID, serviceID, deploymentID string) error {
	return q.atomic(ctx, func(q *queries) error {
		n, err := q.count(ctx, `SELECT COUNT(*) FROM deployments WHERE org_id = ? AND service_id = ? AND id = ?`, orgID, serviceID, deploymentID)
		if err != nil {
			return fmt.Errorf("set live deployment: %w", err)
		}
		if n == 0 {
			return notFound("deployment", deploymentID)
		}
		return wrapErr("set live deployment", q.execOne(ctx, "service", serviceID,
			`UPDATE services SET live_deployment_id = ?, updated_at = ? WHERE org_id = ? AND id = ?`, deploymentID, q.tv(now()), orgID, serviceID))
	})
}

// orEmpty keeps nil slices from being stored as JSON null.
func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
