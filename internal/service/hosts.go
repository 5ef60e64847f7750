package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/store"
)

// Host ownership. Every host name the router answers for is a row of the
// store's host claims, held by one Service across the installation:
//   - generated hosts, <service>.<environment>.<application>.<org-label>.<base-domain>,
//     where the organisation's host label is unique and never changes, so
//     two organisations with the same names cannot meet;
//   - legacy Project hosts, <service>.<project>.<base-domain>;
//   - custom domains, which may never be the control plane's own host or an
//     alias of it, a name the control plane's cookies are scoped to, or a
//     name under the base domain (those are generated, never chosen);
//   - the host a Service answered at before claims existed, kept after the
//     upgrade for the oldest Service that had it.
// The router is keyed by the Service holding a host (see internal/deploy),
// so stopping, deleting or removing a domain of one Service never touches
// another's routes.

// Releases is what the use cases ask of the deploy side when a Service's
// hosts change or it is deleted (implemented by the deploy pipeline).
type Releases interface {
	// SyncRoutes makes the router's entries for the Service exactly the
	// hosts it holds, routed to its live release if it has one.
	SyncRoutes(ctx context.Context, orgID, serviceID string) error
	// Retire removes every route of the Service and stops its release,
	// before the Service is deleted.
	Retire(ctx context.Context, svc slipway.Service) error
}

// SetReleases connects the deploy side (the server does, once both exist).
func (s *Service) SetReleases(r Releases) { s.releases = r }

// ServiceHost is the generated host name of a Service: what it answers at
// without any custom domain.
func (s *Service) ServiceHost(ctx context.Context, svc slipway.Service) (string, error) {
	host, _, err := s.generatedHost(ctx, s.store, svc)
	return host, err
}

// hostReader is the part of the store the host derivation reads, so it
// runs on the store and inside a transaction alike.
type hostReader interface {
	GetOrganisation(ctx context.Context, id string) (slipway.Organisation, error)
	GetProject(ctx context.Context, orgID, id string) (slipway.Project, error)
	GetEnvironment(ctx context.Context, orgID, id string) (slipway.Environment, error)
	GetApplication(ctx context.Context, orgID, id string) (slipway.Application, error)
}

// generatedHost derives the host a Service holds by its placement, and
// the kind of that claim.
func (s *Service) generatedHost(ctx context.Context, q hostReader, svc slipway.Service) (string, slipway.HostKind, error) {
	base := slipway.NormalizeHost(s.cfg.BaseDomain)
	if svc.EnvironmentID == "" && svc.ProjectID != "" {
		p, err := q.GetProject(ctx, svc.OrgID, svc.ProjectID)
		if err != nil {
			return "", "", err
		}
		return fmt.Sprintf("%s.%s.%s", svc.Name, hostLabel(p.Name), base), slipway.HostProject, nil
	}
	org, err := q.GetOrganisation(ctx, svc.OrgID)
	if err != nil {
		return "", "", err
	}
	if org.HostLabel == "" {
		return "", "", fmt.Errorf("organisation %s has no host label yet", org.ID)
	}
	env, err := q.GetEnvironment(ctx, svc.OrgID, svc.EnvironmentID)
	if err != nil {
		return "", "", err
	}
	app, err := q.GetApplication(ctx, svc.OrgID, svc.ApplicationID)
	if err != nil {
		return "", "", err
	}
	return fmt.Sprintf("%s.%s.%s.%s.%s", svc.Name, env.Name, app.Name, org.HostLabel, base), slipway.HostGenerated, nil
}

// previousHost is the generated host before organisation labels.
func (s *Service) previousHost(ctx context.Context, q hostReader, svc slipway.Service) (string, error) {
	env, err := q.GetEnvironment(ctx, svc.OrgID, svc.EnvironmentID)
	if err != nil {
		return "", err
	}
	app, err := q.GetApplication(ctx, svc.OrgID, svc.ApplicationID)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s.%s.%s.%s", svc.Name, env.Name, app.Name, slipway.NormalizeHost(s.cfg.BaseDomain)), nil
}

// claimGeneratedHost (re)claims the Service's generated host in tx, after
// it was created, renamed or moved.
func (s *Service) claimGeneratedHost(ctx context.Context, tx *store.Tx, svc slipway.Service) error {
	host, kind, err := s.generatedHost(ctx, tx, svc)
	if err != nil {
		return fmt.Errorf("generated host: %w", err)
	}
	err = tx.SetGeneratedHost(ctx, svc.OrgID, svc.ID, kind, host)
	if kind == slipway.HostProject && slipway.ErrorCodeOf(err) == slipway.ECodeHostTaken {
		// Legacy Project hosts carry no organisation label: where two
		// organisations had a Project and Service of the same names, the
		// older Service keeps the host and this one answers at its
		// generated host once its Project is migrated.
		s.log.Warn("legacy project host held by an older service of another organisation; migrate the project to give this service a host",
			"service", svc.ID, "host", host)
		return tx.MarkHostsClaimed(ctx, svc.OrgID, svc.ID)
	}
	return err
}

// reclaimGeneratedHosts re-derives the generated hosts of every Service
// matching f (after an application or environment was renamed).
func (s *Service) reclaimGeneratedHosts(ctx context.Context, tx *store.Tx, orgID string, f store.ServiceFilter) ([]string, error) {
	var ids []string
	for offset := 0; ; offset += 200 {
		svcs, total, err := tx.ListServices(ctx, orgID, f, store.Page{Limit: 200, Offset: offset})
		if err != nil {
			return nil, err
		}
		for _, svc := range svcs {
			if err := s.claimGeneratedHost(ctx, tx, svc); err != nil {
				return nil, err
			}
			ids = append(ids, svc.ID)
		}
		if offset+len(svcs) >= total || len(svcs) == 0 {
			return ids, nil
		}
	}
}

// syncRoutes tells the deploy side that the hosts of these Services changed.
func (s *Service) syncRoutes(ctx context.Context, orgID string, serviceIDs ...string) {
	if s.releases == nil {
		return
	}
	for _, id := range serviceIDs {
		if err := s.releases.SyncRoutes(ctx, orgID, id); err != nil {
			s.log.Warn("sync routes", "service", id, "err", err)
		}
	}
}

// RoutableHosts returns the hosts a Service holds that may be routed
// (active claims), claiming its generated host first when it never was
// (a Service written before its claims, e.g. by an older version).
func (s *Service) RoutableHosts(ctx context.Context, svc slipway.Service) ([]string, error) {
	claims, err := s.store.ListHostClaims(ctx, svc.OrgID, svc.ID)
	if err != nil {
		return nil, err
	}
	generated := false
	for _, c := range claims {
		generated = generated || c.Kind == slipway.HostGenerated && svc.EnvironmentID != "" || c.Kind == slipway.HostProject && svc.EnvironmentID == ""
	}
	if !generated {
		if err := s.store.InTx(ctx, func(tx *store.Tx) error { return s.claimGeneratedHost(ctx, tx, svc) }); err != nil {
			return nil, err
		}
		if claims, err = s.store.ListHostClaims(ctx, svc.OrgID, svc.ID); err != nil {
			return nil, err
		}
	}
	var hosts []string
	for _, c := range claims {
		if c.State == slipway.HostActive {
			hosts = append(hosts, c.Host)
		}
	}
	return hosts, nil
}

// withHosts fills svc.Hosts from its claims.
func (s *Service) withHosts(ctx context.Context, svc slipway.Service) (slipway.Service, error) {
	hosts, err := s.store.ListHostClaims(ctx, svc.OrgID, svc.ID)
	if err != nil {
		return svc, err
	}
	svc.Hosts = hosts
	return svc, nil
}

// normalizeDomains checks and normalizes a Service's custom domains: each
// must be a DNS name nobody may route but its owner. Reserved names are
// refused with host_reserved (409) before the syntax is judged, so every
// spelling of the control plane's address (case, trailing dot, port,
// brackets) gets the same answer.
func (s *Service) normalizeDomains(domains []string) ([]string, error) {
	out := make([]string, 0, len(domains))
	seen := map[string]bool{}
	for _, d := range domains {
		n := slipway.NormalizeHost(d)
		if err := s.checkNotReserved(n); err != nil {
			return nil, err
		}
		raw := strings.TrimRight(strings.ToLower(strings.TrimSpace(d)), ".")
		if strings.ContainsAny(raw, ":/[]@ ") {
			return nil, slipway.Errorf(slipway.ECodeInvalid, "domain %q is not a host name: give it without scheme, port or path", d)
		}
		if err := slipway.ValidateDomainName(n); err != nil {
			return nil, err
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

// checkNotReserved refuses the names that belong to the control plane or
// to Slipway's own naming.
func (s *Service) checkNotReserved(host string) error {
	for _, r := range s.cfg.ReservedHosts {
		if host == slipway.NormalizeHost(r) {
			return slipway.Errorf(slipway.ECodeHostReserved, "%q is the control plane's own address", host).
				WithFix("use a domain of your own that points at this server")
		}
	}
	if cp := slipway.NormalizeHost(s.cfg.ControlHost); cp != "" && !isIPLiteral(cp) &&
		(slipway.DomainWithin(host, cp) || slipway.DomainWithin(cp, host)) {
		return slipway.Errorf(slipway.ECodeHostReserved, "%q shares cookies with the control plane's host %q", host, cp).
			WithFix("use a domain that is neither the control plane's host, a name under it, nor a domain above it")
	}
	if base := slipway.NormalizeHost(s.cfg.BaseDomain); base != "" && slipway.DomainWithin(host, base) {
		return slipway.Errorf(slipway.ECodeHostReserved, "%q is under the base domain %q, whose names Slipway generates", host, base).
			WithFix("every Service already answers at its generated host (see its hosts); add a domain outside " + base)
	}
	return nil
}

func isIPLiteral(host string) bool { return net.ParseIP(host) != nil }

// EnsureHostClaims runs at start: organisations get a host label, and
// Services that existed before host claims claim their generated host and,
// oldest first, the host they answered at before (so links keep working
// after the upgrade). Every Service's generated host is re-derived, so a
// changed base domain takes effect.
func (s *Service) EnsureHostClaims(ctx context.Context) error {
	if err := s.store.BackfillHostLabels(ctx); err != nil {
		return err
	}
	upgraded, err := s.store.ListServicesWithoutHostClaims(ctx)
	if err != nil {
		return err
	}
	for _, svc := range upgraded {
		err := s.store.InTx(ctx, func(tx *store.Tx) error {
			if svc.EnvironmentID != "" {
				prev, err := s.previousHost(ctx, tx, svc)
				if err != nil {
					return err
				}
				if held, err := tx.ClaimPreviousHost(ctx, svc.OrgID, svc.ID, prev); err != nil {
					return err
				} else if !held {
					s.log.Warn("previous host already held by an older service; this one answers at its generated host only", "service", svc.ID, "host", prev)
				}
			}
			return s.claimGeneratedHost(ctx, tx, svc)
		})
		if err != nil {
			return fmt.Errorf("claim hosts of service %s: %w", svc.ID, err)
		}
	}
	return s.store.InTx(ctx, func(tx *store.Tx) error {
		svcs, err := tx.ListAllServices(ctx)
		if err != nil {
			return err
		}
		for _, svc := range svcs {
			if err := s.claimGeneratedHost(ctx, tx, svc); err != nil {
				return fmt.Errorf("claim generated host of service %s: %w", svc.ID, err)
			}
		}
		return nil
	})
}

// Custom domains are pending until their owner proves control: a TXT
// record _slipway-challenge.<domain> carrying the domain's token. Only a
// verified domain becomes a host claim, is routed and blocks anyone else;
// a pending one blocks nobody, so nobody can squat a name they do not
// control. Domains that existed before verification was introduced kept
// their claims (they were routed already).

// DomainView is one custom domain of a Service and what it waits for.
type DomainView struct {
	Domain string        `json:"domain"`
	State  string        `json:"state"`            // "pending" or "verified"
	Record *DomainRecord `json:"record,omitempty"` // what to create while pending
	// HTTP is the second proof while pending: a URL on the domain that
	// must answer the body. Absent when only DNS may prove the domain (a
	// name under a domain another organisation has verified).
	HTTP *DomainHTTPProof `json:"http,omitempty"`
	// PointAt is the DNS record that sends the domain's traffic here.
	PointAt *DomainRecord `json:"point_at,omitempty"`
	// CheckedAt and LastError describe the last failed ownership check.
	CheckedAt *time.Time `json:"checked_at,omitempty"`
	LastError string     `json:"last_error,omitempty"`
	// Certificate is the verified domain's HTTPS certificate, once Slipway
	// has been asked for one (HTTPS on, a first visit): issuing, issued,
	// renewing or failed with the reason and the fix.
	Certificate *CertificateView `json:"certificate,omitempty"`
}

// DomainRecord is the DNS record that proves control of a domain.
type DomainRecord struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	Value string `json:"value"`
}

// DomainHTTPProof is the well-known URL that proves control of a domain.
type DomainHTTPProof struct {
	URL  string `json:"url"`
	Body string `json:"body"`
}

// Domain states.
const (
	DomainPending  = "pending"
	DomainVerified = "verified"
)

// ListDomains lists a Service's custom domains, verified then pending.
func (s *Service) ListDomains(ctx context.Context, a Actor, svcRef string) ([]DomainView, error) {
	svc, err := s.ResolveService(ctx, a, svcRef)
	if err != nil {
		return nil, err
	}
	out := []DomainView{}
	pointAt := s.pointAtRecord()
	certificates, err := s.certificatesByHost(ctx, a.OrgID)
	if err != nil {
		return nil, err
	}
	for _, h := range svc.Hosts {
		if h.Kind == slipway.HostCustom {
			out = append(out, DomainView{Domain: h.Host, State: DomainVerified, PointAt: pointAt, Certificate: certificates[h.Host]})
		}
	}
	pending, err := s.store.ListDomainVerifications(ctx, a.OrgID, svc.ID)
	if err != nil {
		return nil, err
	}
	for _, v := range pending {
		view := DomainView{Domain: v.Domain, State: DomainPending, CheckedAt: v.CheckedAt, LastError: v.LastError, PointAt: pointAt,
			Record: &DomainRecord{Type: "TXT", Name: slipway.ChallengeRecordName(v.Domain), Value: v.Token}}
		dnsOnly, err := s.underOtherOrganisation(ctx, a.OrgID, v.Domain)
		if err != nil {
			return nil, err
		}
		if !dnsOnly {
			view.HTTP = &DomainHTTPProof{URL: s.challengeURL(v.Domain, v.Token), Body: v.Token}
		}
		out = append(out, view)
	}
	return out, nil
}

// AddDomain asks for a custom domain on a Service; it is pending until
// verified.
func (s *Service) AddDomain(ctx context.Context, a Actor, svcRef, domain string) (DomainView, error) {
	svc, err := s.resolveService(ctx, a.OrgID, svcRef)
	if err != nil {
		return DomainView{}, err
	}
	if _, err := s.UpdateService(ctx, a, svc.ID, ServiceInput{Domains: append(append([]string{}, svc.Domains...), domain)}); err != nil {
		return DomainView{}, err
	}
	return s.domainView(ctx, a, svc.ID, slipway.NormalizeHost(domain))
}

// RemoveDomain drops a custom domain (verified or pending) from a Service.
func (s *Service) RemoveDomain(ctx context.Context, a Actor, svcRef, domain string) error {
	svc, err := s.resolveService(ctx, a.OrgID, svcRef)
	if err != nil {
		return err
	}
	domain = slipway.NormalizeHost(domain)
	kept := []string{}
	for _, d := range svc.Domains {
		if d != domain {
			kept = append(kept, d)
		}
	}
	if len(kept) == len(svc.Domains) {
		return slipway.NotFound("domain", domain)
	}
	_, err = s.UpdateService(ctx, a, svc.ID, ServiceInput{Domains: kept})
	return err
}

// VerifyDomain checks the TXT record of a pending domain now; when it
// carries the domain's token, the domain becomes the Service's and is
// routed.
func (s *Service) VerifyDomain(ctx context.Context, a Actor, svcRef, domain string) (DomainView, error) {
	if err := a.can(slipway.ResServices, slipway.ActUpdate); err != nil {
		return DomainView{}, err
	}
	svc, err := s.resolveService(ctx, a.OrgID, svcRef)
	if err != nil {
		return DomainView{}, err
	}
	domain = slipway.NormalizeHost(domain)
	view, err := s.domainView(ctx, a, svc.ID, domain)
	if err != nil || view.State == DomainVerified {
		return view, err
	}
	record := view.Record
	found, why := s.txtCarries(ctx, record.Name, record.Value)
	fix := fmt.Sprintf("create a TXT record %s with the value %s at your DNS provider, wait for it to appear, and verify again", record.Name, record.Value)
	if !found && view.HTTP != nil {
		var httpWhy string
		if found, httpWhy = s.httpProofServed(ctx, domain, view.HTTP.URL, view.HTTP.Body); !found {
			why += "; " + httpWhy
			fix += fmt.Sprintf(", or point %s at this server so that %s answers %s", domain, view.HTTP.URL, view.HTTP.Body)
		}
	}
	if !found {
		if err := s.store.RecordDomainCheck(ctx, a.OrgID, svc.ID, domain, why, s.now().UTC()); err != nil {
			return DomainView{}, err
		}
		return DomainView{}, slipway.Errorf(slipway.ECodeDomainUnverified, "%s is not verified yet: %s", domain, why).WithFix(fix)
	}
	if err := s.store.VerifyDomain(ctx, a.OrgID, svc.ID, domain); err != nil {
		return DomainView{}, err
	}
	s.audit(ctx, s.store, a, "service.domain.verify", "service", svc.ID, map[string]string{"domain": domain})
	s.syncRoutes(ctx, a.OrgID, svc.ID)
	return DomainView{Domain: domain, State: DomainVerified}, nil
}

// domainView is the state of one domain of a Service.
func (s *Service) domainView(ctx context.Context, a Actor, serviceID, domain string) (DomainView, error) {
	views, err := s.ListDomains(ctx, a, serviceID)
	if err != nil {
		return DomainView{}, err
	}
	for _, v := range views {
		if v.Domain == domain {
			return v, nil
		}
	}
	return DomainView{}, slipway.NotFound("domain", domain)
}

// txtCarries looks the record up through the installation's resolver and
// says why not when it does not carry value. The resolver's own error text
// is not echoed: it names the resolver, not the tenant's problem.
func (s *Service) txtCarries(ctx context.Context, name, value string) (bool, string) {
	lookup := s.cfg.LookupTXT
	if lookup == nil {
		lookup = net.DefaultResolver.LookupTXT
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	records, err := lookup(ctx, name)
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return false, "no TXT record " + name + " was found"
	case err != nil:
		return false, "the DNS lookup of " + name + " failed; try again in a moment"
	}
	for _, r := range records {
		if strings.TrimSpace(r) == value {
			return true, ""
		}
	}
	return false, fmt.Sprintf("the TXT record %s does not carry this domain's token (%d other values)", name, len(records))
}
