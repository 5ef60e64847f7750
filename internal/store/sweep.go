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
