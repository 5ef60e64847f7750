package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"

	"slipway.dev/slipway"
)

// Host claims are the one table that says which Service holds a host name.
// The host column is the primary key, so a name is held at most once
// across every organisation; claims are written with ON CONFLICT DO
// NOTHING and then read back, so a conflict never aborts the caller's
// transaction (PostgreSQL would) and is reported as host_taken.

const hostClaimColumns = `host, org_id, service_id, kind, state, created_at`

func scanHostClaim(sc rowScanner) (slipway.HostClaim, error) {
	var c slipway.HostClaim
	err := sc.Scan(&c.Host, &c.OrgID, &c.ServiceID, &c.Kind, &c.State, timeCol{&c.CreatedAt})
	return c, err
}

// ClaimHost gives c.Host to c's Service. Claiming a host the Service
// already holds changes nothing; a host held by any other Service (of any
// organisation) is refused with host_taken, naming neither the holder nor
// its organisation.
func (q *queries) ClaimHost(ctx context.Context, c slipway.HostClaim) error {
	if c.State == "" {
		c.State = slipway.HostActive
	}
	c.CreatedAt = orNow(c.CreatedAt)
	if _, err := q.exec(ctx, `INSERT INTO host_claims (`+hostClaimColumns+`) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (host) DO NOTHING`,
		c.Host, c.OrgID, c.ServiceID, c.Kind, c.State, q.tv(c.CreatedAt)); err != nil {
		if isForeignKeyViolation(err) {
			return notFound("service", c.ServiceID)
		}
		return fmt.Errorf("claim host: %w", err)
	}
	held, err := q.GetHostClaim(ctx, c.Host)
	if err != nil {
		return fmt.Errorf("claim host: %w", err)
	}
	if held.ServiceID != c.ServiceID || held.OrgID != c.OrgID {
		return slipway.Errorf(slipway.ECodeHostTaken, "the host %q is already used by another service", c.Host).
			WithFix("choose another domain; a host name can belong to only one service")
	}
	return nil
}

// GetHostClaim returns the claim on host. Not organisation-scoped: the
// router and the uniqueness check need to know whether anyone holds it.
func (q *queries) GetHostClaim(ctx context.Context, host string) (slipway.HostClaim, error) {
	c, err := scanHostClaim(q.queryRow(ctx, `SELECT `+hostClaimColumns+` FROM host_claims WHERE host = ?`, host))
	if errors.Is(err, sql.ErrNoRows) {
		return c, notFound("host", host)
	}
	if err != nil {
		return c, fmt.Errorf("get host claim: %w", err)
	}
	return c, nil
}

// ListHostClaims returns the hosts a Service of the organisation holds,
// generated first, then by name.
func (q *queries) ListHostClaims(ctx context.Context, orgID, serviceID string) ([]slipway.HostClaim, error) {
	out, err := queryAll(ctx, q, scanHostClaim, `SELECT `+hostClaimColumns+` FROM host_claims WHERE org_id = ? AND service_id = ?
ORDER BY CASE kind WHEN 'generated' THEN 0 WHEN 'project' THEN 1 WHEN 'previous' THEN 2 ELSE 3 END, host`, orgID, serviceID)
	if err != nil {
		return nil, fmt.Errorf("list host claims: %w", err)
	}
	return out, nil
}

// SetGeneratedHost makes host the Service's one claim of kind (generated
// or project), releasing a previous one of that kind (after a rename), and
// records that the Service's hosts have been claimed.
func (q *queries) SetGeneratedHost(ctx context.Context, orgID, serviceID string, kind slipway.HostKind, host string) error {
	return q.atomic(ctx, func(q *queries) error {
		if _, err := q.exec(ctx, `DELETE FROM host_claims WHERE org_id = ? AND service_id = ? AND kind = ? AND host <> ?`,
			orgID, serviceID, kind, host); err != nil {
			return fmt.Errorf("release generated host: %w", err)
		}
		if err := q.ClaimHost(ctx, slipway.HostClaim{Host: host, OrgID: orgID, ServiceID: serviceID, Kind: kind}); err != nil {
			return err
		}
		return wrapErr("mark hosts claimed", q.execOne(ctx, "service", serviceID,
			`UPDATE services SET hosts_claimed = TRUE WHERE org_id = ? AND id = ?`, orgID, serviceID))
	})
}

// replaceDomains makes domains the Service's custom-domain claims.
func (q *queries) replaceDomains(ctx context.Context, orgID, serviceID string, domains []string) error {
	if _, err := q.exec(ctx, `DELETE FROM host_claims WHERE org_id = ? AND service_id = ? AND kind = ?`,
		orgID, serviceID, slipway.HostCustom); err != nil {
		return fmt.Errorf("replace service domains: %w", err)
	}
	for _, d := range domains {
		if err := q.ClaimHost(ctx, slipway.HostClaim{Host: d, OrgID: orgID, ServiceID: serviceID, Kind: slipway.HostCustom}); err != nil {
			return err
		}
	}
	return nil
}

// ListServicesWithoutHostClaims returns, across all organisations and
// oldest first, the Services whose hosts were never claimed: those that
// existed before host claims did.
func (q *queries) ListServicesWithoutHostClaims(ctx context.Context) ([]slipway.Service, error) {
	out, err := queryAll(ctx, q, scanService, `SELECT `+serviceColumns+` FROM services WHERE hosts_claimed = FALSE ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list services without host claims: %w", err)
	}
	return out, nil
}

// ListAllServices returns every Service of every organisation (start-up
// maintenance only).
func (q *queries) ListAllServices(ctx context.Context) ([]slipway.Service, error) {
	out, err := queryAll(ctx, q, scanService, `SELECT `+serviceColumns+` FROM services ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list all services: %w", err)
	}
	return out, nil
}

// ClaimPreviousHost gives an upgraded Service the host it answered at
// before host claims, if nobody holds it yet (the oldest Service wins);
// it reports whether the Service now holds it.
func (q *queries) ClaimPreviousHost(ctx context.Context, orgID, serviceID, host string) (bool, error) {
	err := q.ClaimHost(ctx, slipway.HostClaim{Host: host, OrgID: orgID, ServiceID: serviceID, Kind: slipway.HostPrevious})
	if slipway.ErrorCodeOf(err) == slipway.ECodeHostTaken {
		return false, nil
	}
	return err == nil, err
}

// BackfillHostLabels gives every organisation created before host labels
// one, oldest first.
func (q *queries) BackfillHostLabels(ctx context.Context) error {
	orgs, err := queryAll(ctx, q, scanOrganisation, `SELECT `+orgColumns+` FROM organisations WHERE host_label = '' ORDER BY created_at, id`)
	if err != nil {
		return fmt.Errorf("list organisations without host label: %w", err)
	}
	for _, o := range orgs {
		label, err := q.freeHostLabel(ctx, o.Name)
		if err != nil {
			return err
		}
		if _, err := q.exec(ctx, `UPDATE organisations SET host_label = ? WHERE id = ? AND host_label = ''`, label, o.ID); err != nil {
			return fmt.Errorf("set host label: %w", conflictOr(err, "set host label", "host label %q is taken", label))
		}
	}
	return nil
}

// freeHostLabel derives an unused host label from an organisation name:
// the name as a DNS label, or with a random suffix when that is taken.
// The unique index decides in the end; this only makes a clash unlikely.
func (q *queries) freeHostLabel(ctx context.Context, name string) (string, error) {
	base := slipway.HostLabelFor(name)
	label := base
	for attempt := 0; attempt < 8; attempt++ {
		n, err := q.count(ctx, `SELECT COUNT(*) FROM organisations WHERE host_label = ?`, label)
		if err != nil {
			return "", fmt.Errorf("check host label: %w", err)
		}
		if n == 0 {
			return label, nil
		}
		label = base + "-" + randomLabelSuffix()
	}
	return "", fmt.Errorf("no free host label for %q", name)
}

// randomLabelSuffix is five characters of [a-z0-9].
func randomLabelSuffix() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
