package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"slipway.dev/slipway"
)

const projectColumns = `id, org_id, name, compute, migrated_to_environment, migrated_to_application, deleted_at, created_at`

func scanProject(sc rowScanner) (slipway.Project, error) {
	var p slipway.Project
	err := sc.Scan(&p.ID, &p.OrgID, &p.Name, &p.Compute, &p.MigratedToEnvironment, &p.MigratedToApplication,
		nullTimeCol{&p.DeletedAt}, timeCol{&p.CreatedAt})
	return p, err
}

// CreateProject inserts a legacy project. Only seeds, imports and tests
// create projects; the service layer refuses new ones for users.
func (q *queries) CreateProject(ctx context.Context, p *slipway.Project) error {
	if p.ID == "" {
		p.ID = slipway.NewID(slipway.PrefixProject)
	}
	p.CreatedAt = orNow(p.CreatedAt)
	p.DeletedAt = normTimePtr(p.DeletedAt)
	_, err := q.exec(ctx, `INSERT INTO projects (`+projectColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, p.OrgID, p.Name, p.Compute, p.MigratedToEnvironment, p.MigratedToApplication, q.tvp(p.DeletedAt), q.tv(p.CreatedAt))
	if isForeignKeyViolation(err) {
		return notFound("organisation", p.OrgID)
	}
	return conflictOr(err, "create project", "a project with id %q already exists", p.ID)
}

// GetProject returns one project, soft-deleted ones included (DeletedAt
// set), so migrated links keep resolving.
func (q *queries) GetProject(ctx context.Context, orgID, id string) (slipway.Project, error) {
	p, err := scanProject(q.queryRow(ctx, `SELECT `+projectColumns+` FROM projects WHERE org_id = ? AND id = ?`, orgID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return p, notFound("project", id)
	}
	return p, wrapErr("get project", err)
}

// ListProjects returns the organisation's projects, oldest first.
func (q *queries) ListProjects(ctx context.Context, orgID string, includeDeleted bool) ([]slipway.Project, error) {
	query := `SELECT ` + projectColumns + ` FROM projects WHERE org_id = ?`
	if !includeDeleted {
		query += ` AND deleted_at IS NULL`
	}
	out, err := queryAll(ctx, q, scanProject, query+` ORDER BY created_at, id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	return out, nil
}

// MarkProjectMigrated records where a project went and soft-deletes it.
func (q *queries) MarkProjectMigrated(ctx context.Context, orgID, projectID, appID, envID string, at time.Time) error {
	t := q.tv(at)
	return wrapErr("mark project migrated", q.execOne(ctx, "project", projectID, `UPDATE projects SET migrated_to_application = ?,
migrated_to_environment = ?, migrated_at = ?, deleted_at = COALESCE(deleted_at, ?) WHERE org_id = ? AND id = ?`,
		appID, envID, t, t, orgID, projectID))
}

// InsertAudit records an audit entry.
func (q *queries) InsertAudit(ctx context.Context, e *slipway.AuditEntry) error {
	if e.ID == "" {
		e.ID = slipway.NewID(slipway.PrefixAudit)
	}
	e.CreatedAt = orNow(e.CreatedAt)
	_, err := q.exec(ctx, `INSERT INTO audit_entries (id, org_id, actor, action, resource_type, resource_id, details, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, e.ID, e.OrgID, e.Actor, e.Action, e.ResourceType, e.ResourceID, jsonText(orEmptyMap(e.Details)), q.tv(e.CreatedAt))
	if isForeignKeyViolation(err) {
		return notFound("organisation", e.OrgID)
	}
	return conflictOr(err, "insert audit entry", "an audit entry with id %q already exists", e.ID)
}

// ListAudit returns one page of the organisation's audit entries, newest
// first, narrowed to a resource type and id when those are not empty.
func (q *queries) ListAudit(ctx context.Context, orgID, resourceType, resourceID string, p Page) ([]slipway.AuditEntry, int, error) {
	where, args := `org_id = ?`, []any{orgID}
	if resourceType != "" {
		where += ` AND resource_type = ?`
		args = append(args, resourceType)
	}
	if resourceID != "" {
		where += ` AND resource_id = ?`
		args = append(args, resourceID)
	}
	total, err := q.count(ctx, `SELECT COUNT(*) FROM audit_entries WHERE `+where, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("list audit: %w", err)
	}
	limit, offset := p.window()
	out, err := queryAll(ctx, q, scanAuditEntry, `SELECT id, org_id, actor, action, resource_type, resource_id, details, created_at FROM audit_entries
WHERE `+where+` ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`, append(args, limit, offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list audit: %w", err)
	}
	return out, total, nil
}

func scanAuditEntry(sc rowScanner) (slipway.AuditEntry, error) {
	var e slipway.AuditEntry
	err := sc.Scan(&e.ID, &e.OrgID, &e.Actor, &e.Action, &e.ResourceType, &e.ResourceID, jsonCol{&e.Details}, timeCol{&e.CreatedAt})
	return e, err
}
