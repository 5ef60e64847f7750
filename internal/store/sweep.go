package store

import (
	"context"
	"fmt"
	"time"
)

// StaleDelivery names a delivery still waiting to be processed.
type StaleDelivery struct {
	OrgID, ID string
}

// ListStaleDeliveries returns deliveries of every organisation still in
// the received state that arrived before `before`, oldest first. Their job
// was lost with a killed process (River rescues such jobs only after its
// long stuck-job threshold); the sweeper processes them again, which is
// safe because processing is idempotent.
func (q *queries) ListStaleDeliveries(ctx context.Context, before time.Time, limit int) ([]StaleDelivery, error) {
	if limit <= 0 {
		limit = 100
	}
	out, err := queryAll(ctx, q, scanStaleDelivery, `SELECT org_id, id FROM deliveries WHERE verdict = ? AND received_at < ? ORDER BY received_at LIMIT ?`,
		VerdictReceived, q.tv(before), limit)
	if err != nil {
		return nil, fmt.Errorf("list stale deliveries: %w", err)
	}
	return out, nil
}

func scanStaleDelivery(sc rowScanner) (StaleDelivery, error) {
	var d StaleDelivery
	err := sc.Scan(&d.OrgID, &d.ID)
	return d, err
}

// PruneDeliveries deletes finished deliveries received before olderThan,
// and beyond the newest keepPerIntegration of each integration (0 keeps
// any number). Deliveries still waiting to be processed are never pruned.
// It returns how many rows went.
func (q *queries) PruneDeliveries(ctx context.Context, olderThan time.Time, keepPerIntegration int) (int64, error) {
	var total int64
	res, err := q.exec(ctx, `DELETE FROM deliveries WHERE verdict <> ? AND received_at < ?`, VerdictReceived, q.tv(olderThan))
	if err != nil {
		return 0, fmt.Errorf("prune old deliveries: %w", err)
	}
	n, _ := res.RowsAffected()
	total += n
	if keepPerIntegration > 0 {
		res, err = q.exec(ctx, `DELETE FROM deliveries WHERE id IN (
  SELECT id FROM (
    SELECT id, ROW_NUMBER() OVER (PARTITION BY integration_id ORDER BY received_at DESC, id DESC) AS rn
    FROM deliveries WHERE verdict <> ?
  ) ranked WHERE rn > ?)`, VerdictReceived, keepPerIntegration)
		if err != nil {
			return total, fmt.Errorf("prune deliveries beyond the kept count: %w", err)
		}
		n, _ = res.RowsAffected()
		total += n
	}
	return total, nil
}
