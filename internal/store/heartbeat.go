package store

import (
	"context"
	"fmt"
	"time"

	"slipway.dev/slipway"
)

// HeartbeatDeployment records that the worker running a deployment is
// alive.
func (q *queries) HeartbeatDeployment(ctx context.Context, id string, at time.Time) error {
	_, err := q.exec(ctx, `UPDATE deployments SET heartbeat_at = ? WHERE id = ?`, q.tv(at), id)
	return wrapErr("deployment heartbeat", err)
}

// ListAbandonedDeployments returns deployments of every organisation that
// are cloning, building or deploying but whose worker has given no sign of
// life (heartbeat, or start when it never beat) since before: the process
// running them died.
func (q *queries) ListAbandonedDeployments(ctx context.Context, before time.Time) ([]slipway.Deployment, error) {
	ds, err := queryAll(ctx, q, scanDeployment, `SELECT `+deploymentColumns+` FROM deployments
WHERE status IN (?, ?, ?) AND COALESCE(heartbeat_at, started_at, created_at) < ? ORDER BY created_at`,
		slipway.DeployCloning, slipway.DeployBuilding, slipway.DeployDeploying, q.tv(before))
	if err != nil {
		return nil, fmt.Errorf("list abandoned deployments: %w", err)
	}
	return ds, nil
}
