package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/server"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/testenv/dnstest"
	"slipway.dev/slipway/internal/testenv/giteatest"
)

// echoSource is a hostile tenant's app: it prints what it was sent,
// credentials included.
var echoSource = map[string]string{
	"go.mod": "module example.com/echo\n\ngo 1.22\n",
	"main.go": `package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "mallory saw host=%s authorization=%s\n", r.Host, r.Header.Get("Authorization"))
	})
	http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil)
}
`,
}

// TestHostileTenantCannotTakeHosts is organisation B — same organisation,
// application, environment and service names as A — trying to take A's
// traffic and the control plane's: custom domains naming A's host or the
// control plane in every spelling, then deploying a header-echo app, then
// stop, domain removal and delete. A's host answers with A's app
// throughout, the API answers on the public host, and B's deleted release
// is stopped and its host answers "nothing here". Runs on SQLite, and on
// PostgreSQL with the e2e pass of scripts/test.sh.
func TestHostileTenantCannotTakeHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	ctx := context.Background()
	g := giteatest.Shared(t)
	dns := dnstest.Start(t)
	srv := startConfigured(t, filepath.Join(t.TempDir(), "data"), "", -1, func(c *server.Config) { c.DNSResolver = dns.Addr })
	_, port, _ := net.SplitHostPort(srv.Addr())
	a := api{t: t, base: srv.URL(), token: srv.Bootstrap.Token}

	// B: another user with an organisation of the same name, "default".
	mallory := slipway.User{Email: giteatest.UniqueName("mallory") + "@example.test", Name: "Mallory"}
	if err := srv.Store.CreateUser(ctx, &mallory, "unused"); err != nil {
		t.Fatal(err)
	}
	orgB, err := srv.Service.CreateOrganisation(ctx, service.Actor{UserID: mallory.ID}, "default")
	if err != nil {
		t.Fatal(err)
	}
	actorB, err := srv.Service.ActorFor(ctx, orgB.ID, mallory.ID)
	if err != nil {
		t.Fatal(err)
	}
	tokB, err := srv.Service.CreateToken(ctx, actorB, "cli", 0)
	if err != nil {
		t.Fatal(err)
	}
	b := api{t: t, base: srv.URL(), token: tokB.Secret}

	// Each side: its own Gitea account and repository, one integration, and
	// shop/production/web following main.
	setup := func(c api, name string, files map[string]string) (slipway.Service, string) {
		user := giteatest.UniqueName(name)
		pass := g.CreateUser(t, user)
		token := g.CreateToken(t, user, pass, "slipway")
		repoID := g.CreateRepo(t, user, "app", true)
		sha := g.PushCommit(t, user, pass, user+"/app", "main", files, "the app")
		var integ slipway.Integration
		c.must("POST", "/api/v1/integrations", map[string]any{"provider": "gitea", "base_url": g.URL(), "token": token}, &integ)
		c.must("POST", "/api/v1/applications", map[string]any{"name": "shop"}, nil)
		var svc slipway.Service
		c.must("POST", "/api/v1/environments/shop%2Fproduction/services", map[string]any{"name": "web",
			"source": map[string]any{"integration_id": integ.ID, "repo_id": fmt.Sprint(repoID), "branch": "main"}}, &svc)
		return svc, sha
	}
	webA, shaA := setup(a, "alice", appSource)
	webB, _ := setup(b, "mallory", echoSource)
	hostA, hostB := a.host(webA.ID, slipway.HostGenerated), b.host(webB.ID, slipway.HostGenerated)
	if hostA == hostB {
		t.Fatalf("both organisations got the host %s", hostA)
	}
	var depA slipway.Deployment
	a.must("POST", "/api/v1/services/"+webA.ID+"/deploy", map[string]any{}, &depA)
	a.waitLive(depA.ID, 5*time.Minute)
	// B asks for A's domain before A does: pending blocks nobody, and B
	// cannot prove it.
	var squat service.DomainView
	b.must("POST", "/api/v1/services/"+webB.ID+"/domains", map[string]string{"domain": "shop.alice.example.test"}, &squat)
	if code, body := b.do("POST", "/api/v1/services/"+webB.ID+"/domains/shop.alice.example.test/verify", nil, nil); code != 422 || !strings.Contains(string(body), "domain_unverified") {
		t.Errorf("B verifies a domain it does not control: %d %s", code, body)
	}
	verifyDomain(t, a, dns, webA.ID, "shop.alice.example.test")
	if code, body := b.do("POST", "/api/v1/services/"+webB.ID+"/domains/shop.alice.example.test/verify", nil, nil); code == 200 {
		t.Errorf("B verified A's domain with A's record: %s", body)
	}
	b.must("DELETE", "/api/v1/services/"+webB.ID+"/domains/shop.alice.example.test", nil, nil)

	// B claims A's hosts and the control plane's names in every spelling.
	for _, d := range []string{
		hostA, strings.ToUpper(hostA) + ".", hostA + ":" + port,
		"shop.alice.example.test", "SHOP.Alice.example.test.",
		"127.0.0.1", "127.0.0.1:" + port, "127.0.0.1.", "LOCALHOST", "localhost:" + port, "[::1]", "::1", "localhost",
	} {
		code, body := b.do("PATCH", "/api/v1/services/"+webB.ID, map[string]any{"domains": []string{d}}, nil)
		if code != 409 || !strings.Contains(string(body), `"host_reserved"`) && !strings.Contains(string(body), `"host_taken"`) {
			t.Errorf("B adds the domain %q: %d %s, want 409 host_reserved or host_taken", d, code, body)
		}
	}

	var depB slipway.Deployment
	b.must("POST", "/api/v1/services/"+webB.ID+"/deploy", map[string]any{}, &depB)
	b.waitLive(depB.ID, 5*time.Minute)

	wantA := "hello from " + shaA + "\n"
	checkA := func(when string) {
		t.Helper()
		for _, h := range []string{hostA, "shop.alice.example.test", strings.ToUpper(hostA) + "."} {
			if code, body, err := get(srv.URL(), h); err != nil || code != 200 || body != wantA {
				t.Errorf("%s: A's host %s answered %d %q %v, want A's app", when, h, code, body, err)
			}
		}
		// The administrator's token sent to the public host reaches the API.
		for _, h := range []string{"127.0.0.1:" + port, "localhost:" + port, "[::1]:" + port} {
			code, body := hostRequest(t, srv.URL()+"/api/v1/me", h, srv.Bootstrap.Token)
			if code != 200 || !strings.Contains(body, `"org_id":"`+srv.Bootstrap.OrgID+`"`) {
				t.Errorf("%s: /api/v1/me with Host %s answered %d %q, want the API", when, h, code, body)
			}
		}
	}
	checkA("after B deployed")
	if _, body, _ := get(srv.URL(), hostB); !strings.HasPrefix(body, "mallory saw") {
		t.Errorf("B's own host answered %q", body)
	}

	// A domain B adds and removes stops answering at once.
	verifyDomain(t, b, dns, webB.ID, "mallory.example.test")
	if _, body, _ := get(srv.URL(), "mallory.example.test"); !strings.HasPrefix(body, "mallory saw") {
		t.Errorf("B's new domain answered %q", body)
	}
	b.must("PATCH", "/api/v1/services/"+webB.ID, map[string]any{"domains": []string{}}, nil)
	if _, body, _ := get(srv.URL(), "mallory.example.test"); strings.HasPrefix(body, "mallory saw") {
		t.Error("B's removed domain still reaches B's app")
	}
	checkA("after B removed a domain")

	// B stops its service: only B's host goes quiet.
	b.must("POST", "/api/v1/services/"+webB.ID+"/stop", nil, nil)
	waitFor(t, "B's host to stop answering", time.Minute, func() bool {
		code, _, _ := get(srv.URL(), hostB)
		return code == 404
	})
	checkA("after B stopped")

	// B restarts, then deletes the live Service: its release is stopped and
	// its host answers "nothing here".
	b.must("POST", "/api/v1/services/"+webB.ID+"/restart", nil, nil)
	waitFor(t, "B's release to answer again", 2*time.Minute, func() bool {
		_, body, _ := get(srv.URL(), hostB)
		return strings.HasPrefix(body, "mallory saw")
	})
	_, _, addrB, ok := srv.Router.Lookup(hostB)
	if !ok {
		t.Fatal("B's host is not routed after the restart")
	}
	b.must("DELETE", "/api/v1/services/"+webB.ID, nil, nil)
	if code, body, _ := get(srv.URL(), hostB); code != 404 || !strings.Contains(body, "No service at this address") {
		t.Errorf("deleted service's host answered %d %q, want nothing here", code, body)
	}
	if conn, err := net.DialTimeout("tcp", addrB, time.Second); err == nil {
		conn.Close()
		t.Errorf("the deleted service's release still listens on %s", addrB)
	}
	checkA("after B deleted its service")
}

// hostRequest GETs url with the given Host header and bearer token.
func hostRequest(t *testing.T, url, host, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Host = host
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", url, host, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// verifyDomain adds a domain to a Service and proves it as its owner
// would: the TXT record the API names, served by the test DNS server.
func verifyDomain(t *testing.T, c api, dns *dnstest.Server, serviceID, domain string) {
	t.Helper()
	var d service.DomainView
	c.must("POST", "/api/v1/services/"+serviceID+"/domains", map[string]string{"domain": domain}, &d)
	if d.State != service.DomainPending || d.Record == nil || d.Record.Type != "TXT" {
		t.Fatalf("a new domain: %+v, want pending with its TXT record", d)
	}
	// Unrouted, it falls through to the control plane's own pages.
	if _, body, _ := get(c.base, domain); strings.HasPrefix(body, "hello from") || strings.HasPrefix(body, "mallory saw") {
		t.Errorf("the pending domain %s reached an app: %q", domain, body)
	}
	dns.SetTXT(d.Record.Name, d.Record.Value)
	c.must("POST", "/api/v1/services/"+serviceID+"/domains/"+domain+"/verify", nil, &d)
	if d.State != service.DomainVerified {
		t.Fatalf("after its record appeared, %s is %s", domain, d.State)
	}
}
