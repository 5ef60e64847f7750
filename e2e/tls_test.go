package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/certs"
	"slipway.dev/slipway/internal/server"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/testenv/dnstest"
	"slipway.dev/slipway/internal/testenv/pebbletest"
)

// TestHTTPSFromGitea is HTTPS end to end with a real ACME server: a
// Service deployed from the test Gitea gets a certificate for its host
// from Pebble, validated on Slipway's own listeners; curl over TLS
// reaches it with the chain from Pebble; plain HTTP redirects to HTTPS; a
// custom domain stays pending, unrouted and without a certificate until
// its TXT record is served, then is issued and served.
func TestHTTPSFromGitea(t *testing.T) {
	httpPort, httpsPort := pebbletest.FreePort(t), pebbletest.FreePort(t)
	pebble := pebbletest.Start(t, pebbletest.Options{HTTPPort: httpPort, TLSPort: httpsPort})
	g, user, pass, token := giteaUser(t, "tls")
	repoID := g.CreateRepo(t, user, "site", true)
	g.PushCommit(t, user, pass, user+"/site", "main", appSource, "add the app")
	dns := dnstest.Start(t)

	srv := startConfigured(t, filepath.Join(t.TempDir(), "data"), "127.0.0.1:"+strconv.Itoa(httpPort), -1, func(c *server.Config) {
		c.HTTPSAddr = "127.0.0.1:" + strconv.Itoa(httpsPort)
		c.BaseDomain = "apps.slipway.test"
		c.DNSResolver = dns.Addr
		c.TLS = certs.Options{Mode: certs.ACME, DirectoryURL: pebble.DirectoryURL, CARootFile: pebble.CARootFile}
	})
	c := api{t: t, base: srv.URL(), token: srv.Bootstrap.Token}
	var integ slipway.Integration
	c.must("POST", "/api/v1/integrations", map[string]any{"provider": "gitea", "base_url": g.URL(), "token": token}, &integ)
	c.must("POST", "/api/v1/applications", map[string]any{"name": "shop"}, nil)
	var svc slipway.Service
	c.must("POST", "/api/v1/environments/shop%2Fproduction/services", map[string]any{"name": "web",
		"source": map[string]any{"integration_id": integ.ID, "repo_id": fmt.Sprint(repoID), "branch": "main"}}, &svc)
	var d slipway.Deployment
	c.must("POST", "/api/v1/services/"+svc.ID+"/deploy", map[string]any{}, &d)
	d = c.waitLive(d.ID, 5*time.Minute)
	host := c.host(svc.ID, slipway.HostGenerated)
	want := "hello from " + d.CommitSHA + "\n"

	roots := pebble.Roots(t)
	client := pebbletest.Client(roots)
	httpsURL := func(h string) string { return fmt.Sprintf("https://%s:%d/", h, httpsPort) }
	res, body := fetch(t, client, httpsURL(host))
	if res.StatusCode != 200 || body != want {
		t.Fatalf("the Service over HTTPS: %d %q, want %q", res.StatusCode, body, want)
	}
	if issuer := res.TLS.PeerCertificates[0].Issuer.CommonName; !strings.Contains(issuer, "Pebble") {
		t.Fatalf("certificate issued by %q, want Pebble's intermediate", issuer)
	}
	curlThroughTLS(t, pebble.RootPEM(t), host, httpsPort, want)

	res, _ = fetch(t, client, fmt.Sprintf("http://%s:%d/path?q=1", host, httpPort))
	if res.StatusCode != http.StatusPermanentRedirect || res.Header.Get("Location") != fmt.Sprintf("https://%s:%d/path?q=1", host, httpsPort) {
		t.Fatalf("plain HTTP: %d to %q, want a redirect to HTTPS", res.StatusCode, res.Header.Get("Location"))
	}

	// A custom domain: pending, unrouted, no certificate, no ACME order.
	const domain = "www.shop-example.test"
	var view service.DomainView
	c.must("POST", "/api/v1/services/"+svc.ID+"/domains", map[string]string{"domain": domain}, &view)
	issued := pebble.Issued(t)
	if _, err := client.Get(httpsURL(domain)); err == nil {
		t.Fatal("a pending domain was served over HTTPS")
	}
	if _, body, _ := get(srv.URL(), domain); body == want {
		t.Fatal("a pending domain is routed")
	}
	if got := pebble.Issued(t); got != issued {
		t.Fatalf("a pending domain caused %d certificate orders", got-issued)
	}
	dns.SetTXT(view.Record.Name, view.Record.Value)
	c.must("POST", "/api/v1/services/"+svc.ID+"/domains/"+domain+"/verify", nil, &view)
	if view.State != service.DomainVerified {
		t.Fatalf("after its record appeared, %s is %s", domain, view.State)
	}
	res, body = fetch(t, client, httpsURL(domain))
	if res.StatusCode != 200 || body != want || res.TLS.PeerCertificates[0].VerifyHostname(domain) != nil {
		t.Fatalf("the verified domain over HTTPS: %d %q", res.StatusCode, body)
	}
	var domains struct {
		Items []service.DomainView `json:"items"`
	}
	c.must("GET", "/api/v1/services/"+svc.ID+"/domains", nil, &domains)
	if len(domains.Items) != 1 || domains.Items[0].Certificate == nil || domains.Items[0].Certificate.State != certs.StateIssued {
		t.Fatalf("the domain's view lacks its issued certificate: %+v", domains.Items)
	}
	var certsList struct {
		Items []service.CertificateView `json:"items"`
	}
	c.must("GET", "/api/v1/certificates", nil, &certsList)
	states := map[string]string{}
	for _, cv := range certsList.Items {
		states[cv.Host] = cv.State
	}
	if states[host] != certs.StateIssued || states[domain] != certs.StateIssued {
		t.Fatalf("certificate states: %v", states)
	}
}

func fetch(t *testing.T, client *http.Client, url string) (*http.Response, string) {
	t.Helper()
	res, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// curlThroughTLS runs the real curl against host with only Pebble's root
// trusted, as an operator would check a new installation.
func curlThroughTLS(t *testing.T, rootPEM []byte, host string, port int, want string) {
	t.Helper()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Log("curl not installed: the Go client's check stands alone")
		return
	}
	rootFile := filepath.Join(t.TempDir(), "pebble-root.pem")
	if err := os.WriteFile(rootFile, rootPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(curl, "-sS", "--max-time", "30", "--cacert", rootFile,
		"--resolve", fmt.Sprintf("%s:%d:127.0.0.1", host, port), fmt.Sprintf("https://%s:%d/", host, port)).CombinedOutput()
	if err != nil || string(out) != want {
		t.Fatalf("curl over TLS: %v: %q, want %q", err, out, want)
	}
}
