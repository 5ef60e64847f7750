package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

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
		return hostTaken(c.Host)
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
		return q.MarkHostsClaimed(ctx, orgID, serviceID)
	})
}

// MarkHostsClaimed records that the start-up pass has seen the Service.
func (q *queries) MarkHostsClaimed(ctx context.Context, orgID, serviceID string) error {
	return wrapErr("mark hosts claimed", q.execOne(ctx, "service", serviceID,
		`UPDATE services SET hosts_claimed = TRUE WHERE org_id = ? AND id = ?`, orgID, serviceID))
}

// replaceDomains makes domains the Service's requested custom domains.
// Claims and pending verifications of domains no longer listed are
// dropped. A listed domain the Service does not hold yet waits for proof
// of ownership in domain_verifications — unless another Service already
// holds it (host_taken). A pending domain blocks nobody: only verified
// domains are claims.
func (q *queries) replaceDomains(ctx context.Context, orgID, serviceID string, domains []string) error {
	keep := placeholders(len(domains))
	args := []any{orgID, serviceID, slipway.HostCustom}
	for _, d := range domains {
		args = append(args, d)
	}
	notListed := ``
	if len(domains) > 0 {
		notListed = ` AND host NOT IN (` + keep + `)`
	}
	if _, err := q.exec(ctx, `DELETE FROM host_claims WHERE org_id = ? AND service_id = ? AND kind = ?`+notListed, args...); err != nil {
		return fmt.Errorf("release removed domains: %w", err)
	}
	vargs := append([]any{orgID, serviceID}, args[3:]...)
	if _, err := q.exec(ctx, `DELETE FROM domain_verifications WHERE org_id = ? AND service_id = ?`+strings.ReplaceAll(notListed, "host", "domain"), vargs...); err != nil {
		return fmt.Errorf("drop removed pending domains: %w", err)
	}
	for _, d := range domains {
		held, err := q.GetHostClaim(ctx, d)
		switch {
		case err == nil && held.ServiceID == serviceID && held.OrgID == orgID:
			continue // verified already
		case err == nil:
			// Held by another Service: refused when newly asked for; a
			// domain already pending here stays pending (its verification
			// will say it is taken), so the Service's other edits work.
			n, cerr := q.count(ctx, `SELECT COUNT(*) FROM domain_verifications WHERE org_id = ? AND service_id = ? AND domain = ?`, orgID, serviceID, d)
			if cerr != nil {
				return fmt.Errorf("check pending domain: %w", cerr)
			}
			if n == 0 {
				return hostTaken(d)
			}
			continue
		case slipway.ErrorCodeOf(err) != slipway.ECodeNotFound:
			return err
		}
		if _, err := q.exec(ctx, `INSERT INTO domain_verifications (service_id, org_id, domain, token, created_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (service_id, domain) DO NOTHING`, serviceID, orgID, d, newVerificationToken(), q.tv(now())); err != nil {
			if isForeignKeyViolation(err) {
				return notFound("service", serviceID)
			}
			return fmt.Errorf("add pending domain: %w", err)
		}
	}
	return nil
}

func hostTaken(host string) error {
	return slipway.Errorf(slipway.ECodeHostTaken, "the host %q is already used by another service", host).
		WithFix("choose another domain; a host name can belong to only one service")
}

// newVerificationToken is the value a domain's TXT record must carry.
func newVerificationToken() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return "slipway-verify-" + base64.RawURLEncoding.EncodeToString(b)
}

const domainVerificationColumns = `service_id, org_id, domain, token, created_at, checked_at, last_error`

func scanDomainVerification(sc rowScanner) (slipway.DomainVerification, error) {
	var v slipway.DomainVerification
	err := sc.Scan(&v.ServiceID, &v.OrgID, &v.Domain, &v.Token, timeCol{&v.CreatedAt}, nullTimeCol{&v.CheckedAt}, &v.LastError)
	return v, err
}

// ListDomainVerifications returns a Service's pending domains by name.
func (q *queries) ListDomainVerifications(ctx context.Context, orgID, serviceID string) ([]slipway.DomainVerification, error) {
	out, err := queryAll(ctx, q, scanDomainVerification, `SELECT `+domainVerificationColumns+` FROM domain_verifications
WHERE org_id = ? AND service_id = ? ORDER BY domain`, orgID, serviceID)
	if err != nil {
		return nil, fmt.Errorf("list pending domains: %w", err)
	}
	return out, nil
}

// RecordDomainCheck stores the outcome of a failed ownership check.
func (q *queries) RecordDomainCheck(ctx context.Context, orgID, serviceID, domain, failure string, at time.Time) error {
	return wrapErr("record domain check", q.execOne(ctx, "pending domain", domain,
		`UPDATE domain_verifications SET checked_at = ?, last_error = ? WHERE org_id = ? AND service_id = ? AND domain = ?`,
		q.tv(at), failure, orgID, serviceID, domain))
}

// VerifyDomain turns a Service's pending domain into its claim, once its
// owner proved control of it. Another Service verified first: host_taken.
func (q *queries) VerifyDomain(ctx context.Context, orgID, serviceID, domain string) error {
	return q.atomic(ctx, func(q *queries) error {
		if err := q.execOne(ctx, "pending domain", domain, `DELETE FROM domain_verifications WHERE org_id = ? AND service_id = ? AND domain = ?`,
			orgID, serviceID, domain); err != nil {
			return wrapErr("verify domain", err)
		}
		return q.ClaimHost(ctx, slipway.HostClaim{Host: domain, OrgID: orgID, ServiceID: serviceID, Kind: slipway.HostCustom})
	})
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

// IsPendingDomainToken reports whether domain is pending, on any Service,
// with token (the HTTP proof's answer). Not organisation-scoped: the
// challenge is answered to whoever fetches it.
func (q *queries) IsPendingDomainToken(ctx context.Context, domain, token string) (bool, error) {
	n, err := q.count(ctx, `SELECT COUNT(*) FROM domain_verifications WHERE domain = ? AND token = ?`, domain, token)
	if err != nil {
		return false, fmt.Errorf("look up pending domain token: %w", err)
	}
	return n > 0, nil
}
