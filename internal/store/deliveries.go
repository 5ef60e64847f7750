package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"slipway.dev/slipway"
)

// Delivery verdicts.
const (
	VerdictReceived  = "received"
	VerdictProcessed = "processed"
	VerdictIgnored   = "ignored"
	VerdictSkipped   = "skipped"
	VerdictFailed    = "failed"
)

// Delivery is one webhook delivery as received. Headers hold no secrets:
// the receiver strips authorisation and signature headers before storing.
// Caused lists the deployments it created.
type Delivery struct {
	ID                 string
	OrgID              string
	IntegrationID      string
	ProviderDeliveryID string
	Event              string
	Headers            map[string]string
	Body               []byte
	Normalized         []byte // the verified event as JSON (slipway.Event); empty for ignored or malformed deliveries
	Verdict            string
	Detail             string
	Caused             []string
	ReceivedAt         time.Time
	ProcessedAt        *time.Time
}

const deliveryColumns = `id, org_id, integration_id, provider_delivery_id, event, headers, body, normalized, verdict, detail, caused, received_at, processed_at`

func scanDelivery(sc rowScanner) (Delivery, error) {
	var d Delivery
	err := sc.Scan(&d.ID, &d.OrgID, &d.IntegrationID, strCol{&d.ProviderDeliveryID}, &d.Event, jsonCol{&d.Headers}, &d.Body, &d.Normalized,
		&d.Verdict, &d.Detail, jsonCol{&d.Caused}, timeCol{&d.ReceivedAt}, nullTimeCol{&d.ProcessedAt})
	return d, err
}

// InsertDelivery stores a delivery durably. When ProviderDeliveryID is set
// it deduplicates on (integration, provider delivery id): a redelivery
// inserts nothing, returns created=false and fills *d with the stored row.
func (q *queries) InsertDelivery(ctx context.Context, d *Delivery) (bool, error) {
	if d.ID == "" {
		d.ID = slipway.NewID(slipway.PrefixDelivery)
	}
	if d.Verdict == "" {
		d.Verdict = VerdictReceived
	}
	d.ReceivedAt = orNow(d.ReceivedAt)
	d.ProcessedAt = normTimePtr(d.ProcessedAt)
	res, err := q.exec(ctx, `INSERT INTO deliveries (`+deliveryColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (integration_id, provider_delivery_id) DO NOTHING`,
		d.ID, d.OrgID, d.IntegrationID, nullable(d.ProviderDeliveryID), d.Event, jsonText(orEmptyMap(d.Headers)), bytesOrEmpty(d.Body), bytesOrEmpty(d.Normalized),
		d.Verdict, d.Detail, jsonText(orEmpty(d.Caused)), q.tv(d.ReceivedAt), q.tvp(d.ProcessedAt))
	if isForeignKeyViolation(err) {
		return false, notFound("integration", d.IntegrationID)
	}
	if err != nil {
		return false, conflictOr(err, "insert delivery", "a delivery with id %q already exists", d.ID)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("insert delivery: %w", err)
	}
	if n == 1 {
		return true, nil
	}
	existing, err := scanDelivery(q.queryRow(ctx, `SELECT `+deliveryColumns+` FROM deliveries
WHERE org_id = ? AND integration_id = ? AND provider_delivery_id = ?`, d.OrgID, d.IntegrationID, d.ProviderDeliveryID))
	if err != nil {
		return false, fmt.Errorf("read deduplicated delivery: %w", err)
	}
	*d = existing
	return false, nil
}

// GetDelivery returns one delivery of the organisation.
func (q *queries) GetDelivery(ctx context.Context, orgID, id string) (Delivery, error) {
	d, err := scanDelivery(q.queryRow(ctx, `SELECT `+deliveryColumns+` FROM deliveries WHERE org_id = ? AND id = ?`, orgID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, notFound("delivery", id)
	}
	return d, wrapErr("get delivery", err)
}

// ListDeliveries returns one page of an integration's deliveries, newest
// first.
func (q *queries) ListDeliveries(ctx context.Context, orgID, integrationID string, p Page) ([]Delivery, int, error) {
	total, err := q.count(ctx, `SELECT COUNT(*) FROM deliveries WHERE org_id = ? AND integration_id = ?`, orgID, integrationID)
	if err != nil {
		return nil, 0, fmt.Errorf("list deliveries: %w", err)
	}
	limit, offset := p.window()
	out, err := queryAll(ctx, q, scanDelivery, `SELECT `+deliveryColumns+` FROM deliveries WHERE org_id = ? AND integration_id = ?
ORDER BY received_at DESC, id DESC LIMIT ? OFFSET ?`, orgID, integrationID, limit, offset)
	if err != nil {
		return nil, 0, fmt.Errorf("list deliveries: %w", err)
	}
	return out, total, nil
}

// UpdateDeliveryVerdict records what processing a delivery decided and
// which deployments it caused, stamping processed_at.
func (q *queries) UpdateDeliveryVerdict(ctx context.Context, orgID, id, verdict, detail string, caused []string) error {
	return wrapErr("update delivery verdict", q.execOne(ctx, "delivery", id,
		`UPDATE deliveries SET verdict = ?, detail = ?, caused = ?, processed_at = ? WHERE org_id = ? AND id = ?`,
		verdict, detail, jsonText(orEmpty(caused)), q.tv(now()), orgID, id))
}
