package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"slipway.dev/slipway"
)

const deploymentColumns = `id, org_id, service_id, status, commit_sha, ref, commit_message, commit_author, trigger_kind, triggered_by,
integration_id, no_cache, rollback_of, error, phases, created_at, started_at, finished_at`

func scanDeployment(sc rowScanner) (slipway.Deployment, error) {
	var d slipway.Deployment
	err := sc.Scan(&d.ID, &d.OrgID, &d.ServiceID, &d.Status, &d.CommitSHA, &d.Ref, &d.CommitMessage, &d.CommitAuthor, &d.Trigger,
		&d.TriggeredBy, &d.IntegrationID, &d.NoCache, &d.RollbackOf, &d.Error, jsonCol{&d.Phases}, timeCol{&d.CreatedAt},
		nullTimeCol{&d.StartedAt}, nullTimeCol{&d.FinishedAt})
	return d, err
}

// CreateDeployment inserts d (status queued unless set). When dedupeKey is
// not empty it is unique across all deployments: a second insert with the
// same key inserts nothing, returns created=false and fills *d with the
// existing deployment. That is how the database guarantees at most one
// deployment per (service, commit) from automatic triggers however many
// webhooks and reconciler passes race.
func (q *queries) CreateDeployment(ctx context.Context, d *slipway.Deployment, dedupeKey string) (bool, error) {
	if d.ID == "" {
		d.ID = slipway.NewID(slipway.PrefixDeployment)
	}
	if d.Status == "" {
		d.Status = slipway.DeployQueued
	}
	d.CreatedAt = orNow(d.CreatedAt)
	d.StartedAt, d.FinishedAt = normTimePtr(d.StartedAt), normTimePtr(d.FinishedAt)
	if len(d.Phases) == 0 && d.Status.InProgress() {
		d.Phases = []slipway.PhaseTiming{{Phase: d.Status, StartedAt: d.CreatedAt}}
	}
	res, err := q.exec(ctx, `INSERT INTO deployments (`+deploymentColumns+`, dedupe_key)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (dedupe_key) DO NOTHING`,
		d.ID, d.OrgID, d.ServiceID, d.Status, d.CommitSHA, d.Ref, d.CommitMessage, d.CommitAuthor, d.Trigger, d.TriggeredBy,
		d.IntegrationID, d.NoCache, d.RollbackOf, d.Error, jsonText(phasesOrEmpty(d.Phases)), q.tv(d.CreatedAt), q.tvp(d.StartedAt),
		q.tvp(d.FinishedAt), nullable(dedupeKey))
	if isForeignKeyViolation(err) {
		return false, notFound("service", d.ServiceID)
	}
	if err != nil {
		return false, conflictOr(err, "create deployment", "a deployment with id %q already exists", d.ID)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("create deployment: %w", err)
	}
	if n == 1 {
		return true, nil
	}
	existing, err := scanDeployment(q.queryRow(ctx, `SELECT `+deploymentColumns+` FROM deployments WHERE org_id = ? AND dedupe_key = ?`,
		d.OrgID, dedupeKey))
	if errors.Is(err, sql.ErrNoRows) {
		// The key is taken by another organisation's deployment: callers
		// build keys from service ids, so this is a caller bug, not a race.
		return false, slipway.Errorf(slipway.ECodeConflict, "deployment dedupe key already in use")
	}
	if err != nil {
		return false, fmt.Errorf("read deduplicated deployment: %w", err)
	}
	*d = existing
	return false, nil
}

func phasesOrEmpty(p []slipway.PhaseTiming) []slipway.PhaseTiming {
	if p == nil {
		return []slipway.PhaseTiming{}
	}
	return p
}

// GetDeployment returns one deployment of the organisation.
func (q *queries) GetDeployment(ctx context.Context, orgID, id string) (slipway.Deployment, error) {
	d, err := scanDeployment(q.queryRow(ctx, `SELECT `+deploymentColumns+` FROM deployments WHERE org_id = ? AND id = ?`, orgID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, notFound("deployment", id)
	}
	if err != nil {
		return d, fmt.Errorf("get deployment: %w", err)
	}
	return d, nil
}

// ListDeployments returns one page of a service's deployments, newest
// first.
func (q *queries) ListDeployments(ctx context.Context, orgID, serviceID string, p Page) ([]slipway.Deployment, int, error) {
	total, err := q.count(ctx, `SELECT COUNT(*) FROM deployments WHERE org_id = ? AND service_id = ?`, orgID, serviceID)
	if err != nil {
		return nil, 0, fmt.Errorf("list deployments: %w", err)
	}
	limit, offset := p.window()
	out, err := queryAll(ctx, q, scanDeployment, `SELECT `+deploymentColumns+` FROM deployments WHERE org_id = ? AND service_id = ?
ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`, orgID, serviceID, limit, offset)
	if err != nil {
		return nil, 0, fmt.Errorf("list deployments: %w", err)
	}
	return out, total, nil
}

// LatestDeployment returns the service's newest deployment.
func (q *queries) LatestDeployment(ctx context.Context, orgID, serviceID string) (slipway.Deployment, error) {
	d, err := scanDeployment(q.queryRow(ctx, `SELECT `+deploymentColumns+` FROM deployments WHERE org_id = ? AND service_id = ?
ORDER BY created_at DESC, id DESC LIMIT 1`, orgID, serviceID))
	if errors.Is(err, sql.ErrNoRows) {
		return d, notFound("deployment", "latest of "+serviceID)
	}
	if err != nil {
		return d, fmt.Errorf("latest deployment: %w", err)
	}
	return d, nil
}

// ListDeploymentsByStatus returns, across all organisations, the
// deployments in any of the statuses, oldest first. Recovery at start uses
// it to find work a crash interrupted.
func (q *queries) ListDeploymentsByStatus(ctx context.Context, statuses ...slipway.DeploymentStatus) ([]slipway.Deployment, error) {
	if len(statuses) == 0 {
		return nil, nil
	}
	args := make([]any, len(statuses))
	for i, s := range statuses {
		args[i] = s
	}
	out, err := queryAll(ctx, q, scanDeployment, `SELECT `+deploymentColumns+` FROM deployments WHERE status IN (`+placeholders(len(args))+`)
ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list deployments by status: %w", err)
	}
	return out, nil
}

// TransitionDeployment moves a deployment to status to. It refuses with
// ECodeInvalidTransition unless the status machine allows the move from the
// current status, and updates with a compare-and-set on that status, so of
// two workers racing the same move exactly one wins and the other gets
// ECodeInvalidTransition. It closes the open phase timing and opens one for
// the new status (unless terminal), sets started_at when leaving queued and
// finished_at when reaching live or a terminal status. errMsg, when not
// empty, is recorded as the deployment's error.
func (q *queries) TransitionDeployment(ctx context.Context, orgID, id string, to slipway.DeploymentStatus, errMsg string) (slipway.Deployment, error) {
	d, err := q.GetDeployment(ctx, orgID, id)
	if err != nil {
		return d, err
	}
	from := d.Status
	if !from.CanTransition(to) {
		return d, slipway.Errorf(slipway.ECodeInvalidTransition, "deployment %s cannot go from %s to %s", id, from, to)
	}
	at := now()
	for i := range d.Phases {
		if d.Phases[i].FinishedAt == nil {
			d.Phases[i].FinishedAt = &at
		}
	}
	if !to.Terminal() {
		d.Phases = append(d.Phases, slipway.PhaseTiming{Phase: to, StartedAt: at})
	}
	if from == slipway.DeployQueued && d.StartedAt == nil {
		d.StartedAt = &at
	}
	if (to == slipway.DeployLive || to.Terminal()) && d.FinishedAt == nil {
		d.FinishedAt = &at
	}
	if errMsg != "" {
		d.Error = errMsg
	}
	res, err := q.exec(ctx, `UPDATE deployments SET status = ?, phases = ?, started_at = ?, finished_at = ?, error = ?
WHERE org_id = ? AND id = ? AND status = ?`,
		to, jsonText(d.Phases), q.tvp(d.StartedAt), q.tvp(d.FinishedAt), d.Error, orgID, id, from)
	if err != nil {
		return d, fmt.Errorf("transition deployment: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return d, fmt.Errorf("transition deployment: %w", err)
	}
	if n == 0 {
		return d, slipway.Errorf(slipway.ECodeInvalidTransition, "deployment %s left %s before it could move to %s", id, from, to)
	}
	d.Status = to
	return d, nil
}

// LogLine is one line of deployment output. Seq is assigned by
// AppendDeploymentLog and increases per deployment.
type LogLine struct {
	Seq    int64
	At     time.Time
	Stream string
	Text   string
}

// AppendDeploymentLog appends lines to a deployment's log, assigning each a
// sequence number (written back into lines). Not org-scoped: only workers
// that already hold the deployment call it.
func (q *queries) AppendDeploymentLog(ctx context.Context, deploymentID string, lines []LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	return q.atomic(ctx, func(q *queries) error {
		// Reserving the range with one UPDATE … RETURNING takes the row lock
		// on PostgreSQL, so concurrent appenders get disjoint ranges.
		var last int64
		err := q.queryRow(ctx, `UPDATE deployments SET log_seq = log_seq + ? WHERE id = ? RETURNING log_seq`, len(lines), deploymentID).Scan(&last)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("deployment", deploymentID)
		}
		if err != nil {
			return fmt.Errorf("append deployment log: %w", err)
		}
		first := last - int64(len(lines)) + 1
		for i := range lines {
			lines[i].Seq = first + int64(i)
			lines[i].At = orNow(lines[i].At)
			if _, err := q.exec(ctx, `INSERT INTO deployment_logs (deployment_id, seq, at, stream, line) VALUES (?, ?, ?, ?, ?)`,
				deploymentID, lines[i].Seq, q.tv(lines[i].At), lines[i].Stream, lines[i].Text); err != nil {
				return fmt.Errorf("append deployment log: %w", err)
			}
		}
		return nil
	})
}

// ReadDeploymentLogs returns up to limit lines after afterSeq, in order
// (limit ≤ 0 means 1000; at most 10000).
func (q *queries) ReadDeploymentLogs(ctx context.Context, orgID, deploymentID string, afterSeq int64, limit int) ([]LogLine, error) {
	if _, err := q.GetDeployment(ctx, orgID, deploymentID); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 1000
	}
	limit = min(limit, 10000)
	out, err := queryAll(ctx, q, scanLogLine, `SELECT seq, at, stream, line FROM deployment_logs WHERE deployment_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
		deploymentID, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("read deployment logs: %w", err)
	}
	return out, nil
}

func scanLogLine(sc rowScanner) (LogLine, error) {
	var l LogLine
	err := sc.Scan(&l.Seq, timeCol{&l.At}, &l.Stream, &l.Text)
	return l, err
}
