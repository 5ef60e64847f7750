package service_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/netpolicy"
	"slipway.dev/slipway/internal/secrets"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
	"slipway.dev/slipway/internal/testenv/dnstest"
)

// twoTenants is an installation with two organisations of the same name,
// each with an application "shop" and a docker Service shop/production/web.
type twoTenants struct {
	svc *service.Service
	st  *store.Store
	dns *dnstest.Server
	// web is Slipway's HTTP listener as far as the HTTP proof goes: it
	// answers the challenge path from the Service's pending domains.
	web          *httptest.Server
	a, b         service.Actor
	webA, webB   slipway.Service
	hostA, hostB string
}

func newTwoTenants(t *testing.T, options ...func(*service.Config)) *twoTenants {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	st, err := store.Open(ctx, "", dir, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	keys, err := secrets.LoadOrCreate(filepath.Join(dir, "master.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	dns := dnstest.Start(t)
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, dns.Addr)
	}}
	var svc *service.Service
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, _ := strings.CutPrefix(r.URL.Path, service.ChallengePath)
		if body, ok := svc.ChallengeAnswer(r.Context(), r.Host, token); ok {
			_, _ = w.Write([]byte(body))
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(web.Close)
	port, _ := strconv.Atoi(web.URL[strings.LastIndexByte(web.URL, ':')+1:])
	cfg := service.Config{
		PublicURL: "https://slipway.example.com", BaseDomain: "apps.example.com", ControlHost: "slipway.example.com",
		ReservedHosts: []string{"slipway.example.com", "localhost", "127.0.0.1", "::1", "10.0.0.5"},
		LookupTXT:     resolver.LookupTXT, LookupIP: resolver.LookupIPAddr, DomainCheckHTTPPort: port,
		Network: netpolicy.Policy{AllowPrivate: true}, // the proof is served on loopback
	}
	for _, o := range options {
		o(&cfg)
	}
	svc = service.New(st, keys, map[slipway.Provider]forge.Provider{}, nopJobs{}, cfg, logger)
	boot, err := svc.Bootstrap(ctx, "admin@example.com")
	if err != nil {
		t.Fatal(err)
	}
	e := &twoTenants{svc: svc, st: st, dns: dns, web: web}
	if e.a, err = svc.ActorFor(ctx, boot.OrgID, boot.UserID); err != nil {
		t.Fatal(err)
	}
	mallory := slipway.User{Email: "mallory@example.com", Name: "Mallory"}
	if err := st.CreateUser(ctx, &mallory, "x"); err != nil {
		t.Fatal(err)
	}
	orgB, err := svc.CreateOrganisation(ctx, service.Actor{UserID: mallory.ID}, "default")
	if err != nil {
		t.Fatal(err)
	}
	if e.b, err = svc.ActorFor(ctx, orgB.ID, mallory.ID); err != nil {
		t.Fatal(err)
	}
	image := "example/web"
	for _, side := range []struct {
		a    service.Actor
		web  *slipway.Service
		host *string
	}{{e.a, &e.webA, &e.hostA}, {e.b, &e.webB, &e.hostB}} {
		if _, err := svc.CreateApplication(ctx, side.a, service.ApplicationInput{Name: "shop"}); err != nil {
			t.Fatal(err)
		}
		web, err := svc.CreateService(ctx, side.a, "shop/production", service.ServiceInput{Name: "web", Type: slipway.ServiceDocker, Image: &image})
		if err != nil {
			t.Fatal(err)
		}
		*side.web = web
		if len(web.Hosts) != 1 || web.Hosts[0].Kind != slipway.HostGenerated || web.Hosts[0].State != slipway.HostActive {
			t.Fatalf("hosts of a new service: %+v", web.Hosts)
		}
		*side.host = web.Hosts[0].Host
	}
	return e
}

// TestGeneratedHostsDifferAcrossOrganisations: identical organisation,
// application, environment and service names still give two hosts.
func TestGeneratedHostsDifferAcrossOrganisations(t *testing.T) {
	e := newTwoTenants(t)
	if e.hostA != "web.production.shop.default.apps.example.com" {
		t.Errorf("A's host = %q", e.hostA)
	}
	if e.hostA == e.hostB || !strings.HasPrefix(e.hostB, "web.production.shop.default-") || !strings.HasSuffix(e.hostB, ".apps.example.com") {
		t.Errorf("B's host = %q next to A's %q", e.hostB, e.hostA)
	}
	for _, h := range []string{e.hostA, e.hostB} {
		for _, label := range strings.Split(h, ".") {
			if len(label) > 63 {
				t.Errorf("%s: label %q longer than 63", h, label)
			}
		}
	}
}

// TestCustomDomainAttacks is organisation B adding, as its custom domain,
// every spelling of A's generated host, A's custom domain, the control
// plane's host and its aliases: each is refused with a 409 code naming the
// conflict, and B's Service keeps what it had.
func TestCustomDomainAttacks(t *testing.T) {
	ctx := context.Background()
	e := newTwoTenants(t)
	e.addVerified(t, e.a, e.webA.ID, "Shop.Example.org.")
	for _, c := range []struct {
		domain string
		code   slipway.ErrorCode
	}{
		{e.hostA, slipway.ECodeHostReserved},
		{strings.ToUpper(e.hostA) + ".", slipway.ECodeHostReserved},
		{e.hostA + ":443", slipway.ECodeHostReserved},
		{"apps.example.com", slipway.ECodeHostReserved},
		{"anything.apps.example.com", slipway.ECodeHostReserved},
		{"slipway.example.com", slipway.ECodeHostReserved},
		{"SLIPWAY.example.com.:8443", slipway.ECodeHostReserved},
		{"example.com", slipway.ECodeHostReserved},              // above the control plane: its cookies
		{"evil.slipway.example.com", slipway.ECodeHostReserved}, // under it: could set its cookies
		{"localhost", slipway.ECodeHostReserved},
		{"LocalHost.", slipway.ECodeHostReserved},
		{"127.0.0.1", slipway.ECodeHostReserved},
		{"127.0.0.1:8080", slipway.ECodeHostReserved},
		{"[::1]", slipway.ECodeHostReserved},
		{"::1", slipway.ECodeHostReserved},
		{"10.0.0.5", slipway.ECodeHostReserved},
		{"shop.example.org", slipway.ECodeHostTaken},
		{"SHOP.example.org.", slipway.ECodeHostTaken},
		{"192.168.1.1", slipway.ECodeInvalid},
		{"2130706433", slipway.ECodeInvalid},
		{"0x7f.1", slipway.ECodeInvalid},
		{"intranet", slipway.ECodeInvalid},
		{"shop.example.org:8080", slipway.ECodeInvalid}, // a port is never part of a domain
		{"https://b.example.net/", slipway.ECodeInvalid},
		{"b_under.example.net", slipway.ECodeInvalid},
	} {
		_, err := e.svc.UpdateService(ctx, e.b, e.webB.ID, service.ServiceInput{Domains: []string{"mine.example.net", c.domain}})
		if got := slipway.ErrorCodeOf(err); got != c.code {
			t.Errorf("B adds %q: %v (code %q), want %q", c.domain, err, got, c.code)
		}
	}
	got, err := e.svc.ResolveService(ctx, e.b, e.webB.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Domains) != 0 || len(got.Hosts) != 1 || got.Hosts[0].Host != e.hostB {
		t.Errorf("B's service after refused updates: domains %v hosts %+v", got.Domains, got.Hosts)
	}
	a, err := e.svc.ResolveService(ctx, e.a, e.webA.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Hosts) != 2 || a.Hosts[0].Host != e.hostA || a.Hosts[1].Host != "shop.example.org" || a.Hosts[1].Kind != slipway.HostCustom {
		t.Errorf("A's hosts: %+v", a.Hosts)
	}
	// A legitimate domain of B's own is accepted, normalized.
	if _, err := e.svc.UpdateService(ctx, e.b, e.webB.ID, service.ServiceInput{Domains: []string{"Mine.Example.NET."}}); err != nil {
		t.Fatalf("B's own domain: %v", err)
	}
}

// TestRenameMovesGeneratedHost: renaming an application moves the
// generated hosts of its Services; the old name stops being held.
func TestRenameMovesGeneratedHost(t *testing.T) {
	ctx := context.Background()
	e := newTwoTenants(t)
	if _, err := e.svc.UpdateApplication(ctx, e.a, "shop", service.ApplicationInput{Name: "store"}); err != nil {
		t.Fatal(err)
	}
	got, err := e.svc.ResolveService(ctx, e.a, e.webA.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Hosts) != 1 || got.Hosts[0].Host != "web.production.store.default.apps.example.com" {
		t.Errorf("hosts after the rename: %+v", got.Hosts)
	}
}

// TestUpgradeKeepsPreviousHosts: Services that existed before host claims
// keep the host they answered at; where two organisations had the same
// names, the older Service keeps it and the other answers at its
// generated host only. Running the start-up pass again changes nothing.
func TestUpgradeKeepsPreviousHosts(t *testing.T) {
	ctx := context.Background()
	e := newTwoTenants(t)
	var olds []slipway.Service
	for _, side := range []struct {
		a   service.Actor
		web slipway.Service
	}{{e.a, e.webA}, {e.b, e.webB}} {
		old := slipway.Service{OrgID: side.a.OrgID, ApplicationID: side.web.ApplicationID, EnvironmentID: side.web.EnvironmentID,
			Name: "api", Type: slipway.ServiceDocker, Image: "example/api"}
		if err := e.st.CreateService(ctx, &old); err != nil { // as an older version wrote it: no claims
			t.Fatal(err)
		}
		olds = append(olds, old)
	}
	for range 2 {
		if err := e.svc.EnsureHostClaims(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i, a := range []service.Actor{e.a, e.b} {
		got, err := e.svc.ResolveService(ctx, a, olds[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, h := range got.Hosts {
			kinds = append(kinds, string(h.Kind)+" "+h.Host)
		}
		want := []string{"generated api.production.shop." + map[int]string{0: "default", 1: strings.Split(e.hostB, ".")[3]}[i] + ".apps.example.com"}
		if i == 0 {
			want = append(want, "previous api.production.shop.apps.example.com")
		}
		if strings.Join(kinds, ", ") != strings.Join(want, ", ") {
			t.Errorf("organisation %d: hosts %v, want %v", i, kinds, want)
		}
	}
}

// addVerified adds a domain and proves it the way its owner would: the
// TXT record the domain view names, served by the test DNS server.
func (e *twoTenants) addVerified(t *testing.T, a service.Actor, serviceID, domain string) {
	t.Helper()
	ctx := context.Background()
	d, err := e.svc.AddDomain(ctx, a, serviceID, domain)
	if err != nil {
		t.Fatal(err)
	}
	if d.State != service.DomainPending || d.Record == nil {
		t.Fatalf("a new domain: %+v, want pending with its record", d)
	}
	e.dns.SetTXT(d.Record.Name, "unrelated", d.Record.Value)
	if v, err := e.svc.VerifyDomain(ctx, a, serviceID, d.Domain); err != nil || v.State != service.DomainVerified {
		t.Fatalf("verify %s: %+v %v", d.Domain, v, err)
	}
}

// TestDomainOwnership: a domain is pending, unrouted and blocks nobody
// until the TXT record carrying its token exists; a second organisation
// asking for the same name cannot verify it with the owner's record, and
// once the owner verified, nobody else can even ask for it.
func TestDomainOwnership(t *testing.T) {
	ctx := context.Background()
	e := newTwoTenants(t)
	// B squats first: pending, not a claim.
	squat, err := e.svc.AddDomain(ctx, e.b, e.webB.ID, "shop.example.org")
	if err != nil || squat.State != service.DomainPending {
		t.Fatalf("B adds the domain: %+v %v", squat, err)
	}
	if got, _ := e.svc.ResolveService(ctx, e.b, e.webB.ID); len(got.Hosts) != 1 {
		t.Errorf("a pending domain is among B's hosts: %+v", got.Hosts)
	}
	_, err = e.svc.VerifyDomain(ctx, e.b, e.webB.ID, "shop.example.org")
	if slipway.ErrorCodeOf(err) != slipway.ECodeDomainUnverified || !strings.Contains(err.Error(), "no TXT record") {
		t.Errorf("verify without a record: %v", err)
	}
	if e2, ok := slipway.AsError(err); !ok || !strings.Contains(e2.Fix, squat.Record.Value) || !strings.Contains(e2.Fix, "_slipway-challenge.shop.example.org") {
		t.Errorf("the fix does not name the record to create: %+v", e2)
	}
	views, err := e.svc.ListDomains(ctx, e.b, e.webB.ID)
	if err != nil || len(views) != 1 || views[0].LastError == "" || views[0].CheckedAt == nil {
		t.Errorf("B's domains after a failed check: %+v %v", views, err)
	}
	// The real owner (A) adds it too — B's pending domain did not block it —
	// and publishes its own token.
	e.addVerified(t, e.a, e.webA.ID, "shop.example.org")
	// B's token is not in the record: still unverified; then taken.
	_, err = e.svc.VerifyDomain(ctx, e.b, e.webB.ID, "shop.example.org")
	if slipway.ErrorCodeOf(err) != slipway.ECodeDomainUnverified {
		t.Errorf("B verifies with A's record: %v", err)
	}
	e.dns.SetTXT("_slipway-challenge.shop.example.org", squat.Record.Value) // even with B's token published
	_, err = e.svc.VerifyDomain(ctx, e.b, e.webB.ID, "shop.example.org")
	if slipway.ErrorCodeOf(err) != slipway.ECodeHostTaken {
		t.Errorf("B verifies a domain A holds: %v, want host_taken", err)
	}
	// B's service still takes other edits with its stale pending domain.
	if _, err := e.svc.AddDomain(ctx, e.b, e.webB.ID, "mine.example.net"); err != nil {
		t.Errorf("B adds another domain: %v", err)
	}
	a, _ := e.svc.ResolveService(ctx, e.a, e.webA.ID)
	if len(a.Hosts) != 2 || a.Hosts[1].Host != "shop.example.org" {
		t.Errorf("A's hosts: %+v", a.Hosts)
	}
	// Removing releases it; B can now verify with its own record.
	if err := e.svc.RemoveDomain(ctx, e.a, e.webA.ID, "shop.example.org"); err != nil {
		t.Fatal(err)
	}
	if v, err := e.svc.VerifyDomain(ctx, e.b, e.webB.ID, "shop.example.org"); err != nil || v.State != service.DomainVerified {
		t.Errorf("B verifies a released domain it proves: %+v %v", v, err)
	}
}

// TestLegacyProjectHostsOfTwoOrganisations: two organisations with a
// legacy Project and Service of the same names (their hosts carry no
// organisation label) do not stop the start-up pass; the older Service
// keeps the host.
func TestLegacyProjectHostsOfTwoOrganisations(t *testing.T) {
	ctx := context.Background()
	e := newTwoTenants(t)
	var ids []string
	for _, a := range []service.Actor{e.a, e.b} {
		p := slipway.Project{OrgID: a.OrgID, Name: "Legacy Shop"}
		if err := e.st.CreateProject(ctx, &p); err != nil {
			t.Fatal(err)
		}
		old := slipway.Service{OrgID: a.OrgID, ProjectID: p.ID, Name: "web", Type: slipway.ServiceDocker, Image: "example/web"}
		if err := e.st.CreateService(ctx, &old); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, old.ID)
	}
	for range 2 {
		if err := e.svc.EnsureHostClaims(ctx); err != nil {
			t.Fatalf("start-up pass: %v", err)
		}
	}
	claim, err := e.st.GetHostClaim(ctx, "web.legacy-shop.apps.example.com")
	if err != nil || claim.ServiceID != ids[0] {
		t.Errorf("legacy host held by %+v (%v), want the older service %s", claim, err, ids[0])
	}
	younger, err := e.st.GetService(ctx, e.b.OrgID, ids[1])
	if err != nil {
		t.Fatal(err)
	}
	if hosts, err := e.svc.RoutableHosts(ctx, younger); err != nil || len(hosts) != 0 {
		t.Errorf("the younger legacy service routes %v (%v), want nothing and no error", hosts, err)
	}
}

// TestDomainVerifiedByHTTPProof: a pending domain pointed at Slipway (A
// record on the test DNS, loopback) is verified by its well-known URL;
// the challenge is answered only for that domain with its own token.
func TestDomainVerifiedByHTTPProof(t *testing.T) {
	ctx := context.Background()
	e := newTwoTenants(t)
	d, err := e.svc.AddDomain(ctx, e.a, e.webA.ID, "www.shop-a.org")
	if err != nil {
		t.Fatal(err)
	}
	if d.HTTP == nil || d.HTTP.Body != d.Record.Value || !strings.HasSuffix(d.HTTP.URL, service.ChallengePath+d.Record.Value) ||
		d.PointAt == nil || d.PointAt.Type != "CNAME" || d.PointAt.Value != "slipway.example.com" {
		t.Fatalf("pending view: %+v (http %+v, point at %+v)", d, d.HTTP, d.PointAt)
	}
	other, err := e.svc.AddDomain(ctx, e.b, e.webB.ID, "www.shop-b.org")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ host, token string }{
		{"www.shop-b.org", d.Record.Value},     // another domain's host with A's token
		{"www.shop-a.org", other.Record.Value}, // A's host with another domain's token
		{"www.shop-a.org", ""},
		{"www.shop-a.org", d.Record.Value + "/x"},
	} {
		if _, ok := e.svc.ChallengeAnswer(ctx, c.host, c.token); ok {
			t.Errorf("challenge answered for host %q token %q", c.host, c.token)
		}
	}
	// Not pointed here yet: the check fails and says what to do.
	if _, err := e.svc.VerifyDomain(ctx, e.a, e.webA.ID, "www.shop-a.org"); slipway.ErrorCodeOf(err) != slipway.ECodeDomainUnverified {
		t.Fatalf("verify before the A record: %v", err)
	}
	e.dns.SetIP("www.shop-a.org", netip.MustParseAddr("127.0.0.1"))
	v, err := e.svc.VerifyDomain(ctx, e.a, e.webA.ID, "www.shop-a.org")
	if err != nil || v.State != service.DomainVerified {
		t.Fatalf("verify by HTTP: %+v %v", v, err)
	}
	if _, ok := e.svc.ChallengeAnswer(ctx, "www.shop-a.org", d.Record.Value); ok {
		t.Error("the challenge is still answered once the domain is verified")
	}
}

// TestDomainUnderOtherOrganisationIsDNSOnly: organisation A holds
// shop.example.org verified; B asks for www.shop.example.org and points it
// at Slipway (as a wildcard record of A's would): the HTTP proof is not
// offered and does not verify; only the TXT record does.
func TestDomainUnderOtherOrganisationIsDNSOnly(t *testing.T) {
	ctx := context.Background()
	e := newTwoTenants(t)
	e.addVerified(t, e.a, e.webA.ID, "shop.example.org")
	d, err := e.svc.AddDomain(ctx, e.b, e.webB.ID, "www.shop.example.org")
	if err != nil {
		t.Fatal(err)
	}
	if d.HTTP != nil {
		t.Fatalf("HTTP proof offered under another organisation's domain: %+v", d.HTTP)
	}
	e.dns.SetIP("www.shop.example.org", netip.MustParseAddr("127.0.0.1"))
	if _, err := e.svc.VerifyDomain(ctx, e.b, e.webB.ID, "www.shop.example.org"); slipway.ErrorCodeOf(err) != slipway.ECodeDomainUnverified {
		t.Fatalf("verify by HTTP under A's domain: %v, want domain_unverified", err)
	}
	e.dns.SetTXT(d.Record.Name, d.Record.Value)
	if v, err := e.svc.VerifyDomain(ctx, e.b, e.webB.ID, "www.shop.example.org"); err != nil || v.State != service.DomainVerified {
		t.Fatalf("verify by TXT: %+v %v", v, err)
	}
}

// TestDomainHTTPProofRefusesPrivateAddresses: under the default network
// policy a domain pointed at loopback (or any private address) is not
// fetched, so a tenant cannot make the verifier probe the host's network.
func TestDomainHTTPProofRefusesPrivateAddresses(t *testing.T) {
	ctx := context.Background()
	e := newTwoTenants(t, func(c *service.Config) { c.Network = netpolicy.Policy{} })
	d, err := e.svc.AddDomain(ctx, e.a, e.webA.ID, "www.shop-a.org")
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"127.0.0.1", "10.0.0.5", "169.254.169.254", "::1"} {
		e.dns.SetIP("www.shop-a.org", netip.MustParseAddr(ip))
		_, err := e.svc.VerifyDomain(ctx, e.a, e.webA.ID, d.Domain)
		if slipway.ErrorCodeOf(err) != slipway.ECodeDomainUnverified || !strings.Contains(err.Error(), "may not connect") {
			t.Errorf("domain at %s: %v, want refused by the network policy", ip, err)
		}
	}
}
