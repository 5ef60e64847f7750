package store

import (
	"context"
	"fmt"
)

// SetLegacyServiceStage records the implicit stage a legacy Service ran as
// ("" clears it). Only imports, seeds and tests call it: new Services live
// in Environments and have no legacy stage.
func (q *queries) SetLegacyServiceStage(ctx context.Context, orgID, serviceID, stage string) error {
	return wrapErr("set legacy service stage", q.execOne(ctx, "service", serviceID,
		`UPDATE services SET legacy_stage = ? WHERE org_id = ? AND id = ?`, nullable(stage), orgID, serviceID))
}

// LegacyServiceStages returns the recorded stage of each Service still in
// the project, by service id. Services without a recorded stage are absent.
func (q *queries) LegacyServiceStages(ctx context.Context, orgID, projectID string) (map[string]string, error) {
	rows, err := q.query(ctx, `SELECT id, legacy_stage FROM services
WHERE org_id = ? AND project_id = ? AND legacy_stage IS NOT NULL AND legacy_stage <> ''`, orgID, projectID)
	if err != nil {
		return nil, fmt.Errorf("list legacy service stages: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, stage string
		if err := rows.Scan(&id, &stage); err != nil {
			return nil, fmt.Errorf("list legacy service stages: %w", err)
		}
		out[id] = stage
	}
	return out, rows.Err()
}

// SetApplicationMigratedFrom records the legacy project an application was
// made from. An application that already records one keeps it: when
// several projects merge into one application the first is kept here, and
// every project records its own destination (MarkProjectMigrated) and its
// audit entry.
func (q *queries) SetApplicationMigratedFrom(ctx context.Context, orgID, appID, projectID string) error {
	return wrapErr("set application migrated from", q.execOne(ctx, "application", appID,
		`UPDATE applications SET migrated_from_project = CASE WHEN migrated_from_project = '' THEN ? ELSE migrated_from_project END,
updated_at = ? WHERE org_id = ? AND id = ?`, projectID, q.tv(now()), orgID, appID))
}

// ClaimProjectForMigration locks a not-yet-migrated project's row for the
// rest of the transaction, so two migrations of the same project started
// together run one after the other and the second sees the first's result.
// It reports NotFound when the project is missing or already migrated.
func (q *queries) ClaimProjectForMigration(ctx context.Context, orgID, projectID string) error {
	return wrapErr("claim project", q.execOne(ctx, "project", projectID,
		`UPDATE projects SET migrated_to_application = migrated_to_application WHERE org_id = ? AND id = ? AND deleted_at IS NULL`,
		orgID, projectID))
}
