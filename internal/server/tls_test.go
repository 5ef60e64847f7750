package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/certs"
	"slipway.dev/slipway/internal/server"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
	"slipway.dev/slipway/internal/testenv/pebbletest"
	"slipway.dev/slipway/internal/testenv/pgtest"
)

// acmeServer is a control plane with --tls acme against a Pebble that
// validates challenges on the server's own listeners.
type acmeServer struct {
	srv       *server.Server
	pebble    *pebbletest.Server
	httpPort  int
	httpsPort int
	client    *http.Client // resolves every name to loopback, trusts Pebble's CA, follows no redirect
	roots     *x509.CertPool
}

const tlsControlHost = "control.slipway.test"

func startACME(t *testing.T, databaseURL string, pebble *pebbletest.Server, httpPort, httpsPort int, configure func(*server.Config)) *acmeServer {
	t.Helper()
	srv := startServerWith(t, databaseURL, func(c *server.Config) {
		c.Addr = "127.0.0.1:" + strconv.Itoa(httpPort)
		c.HTTPSAddr = "127.0.0.1:" + strconv.Itoa(httpsPort)
		c.PublicURL = "https://" + tlsControlHost + ":" + strconv.Itoa(httpsPort)
		c.BaseDomain = "apps.slipway.test"
		c.TLS = certs.Options{Mode: certs.ACME, DirectoryURL: pebble.DirectoryURL, CARootFile: pebble.CARootFile, Email: "ops@slipway.test"}
		if configure != nil {
			configure(c)
		}
	})
	roots := pebble.Roots(t)
	return &acmeServer{srv: srv, pebble: pebble, httpPort: httpPort, httpsPort: httpsPort, roots: roots, client: pebbletest.Client(roots)}
}

func (a *acmeServer) httpsURL(host, path string) string {
	return fmt.Sprintf("https://%s:%d%s", host, a.httpsPort, path)
}

// TestACMECertificates is HTTPS end to end against a real ACME server: the
// control plane's host and a Service's generated host get certificates
// Pebble validated on Slipway's own listeners; plain HTTP redirects to
// HTTPS; a name nobody holds gets no certificate and costs no ACME order;
// keys are sealed in the database; /metrics counts certificates by state.
func TestACMECertificates(t *testing.T) {
	httpPort, httpsPort := pebbletest.FreePort(t), pebbletest.FreePort(t)
	pebble := pebbletest.Start(t, pebbletest.Options{HTTPPort: httpPort, TLSPort: httpsPort})
	a := startACME(t, "", pebble, httpPort, httpsPort, nil)

	res := a.get(t, a.httpsURL(tlsControlHost, "/healthz"))
	if res.StatusCode != 200 {
		t.Fatalf("control plane over HTTPS: %d", res.StatusCode)
	}
	leaf := res.TLS.PeerCertificates[0]
	if leaf.VerifyHostname(tlsControlHost) != nil || !strings.Contains(leaf.Issuer.CommonName, "Pebble") {
		t.Fatalf("certificate for %v issued by %q: want Pebble's, for %s", leaf.DNSNames, leaf.Issuer.CommonName, tlsControlHost)
	}

	// Plain HTTP for a served name redirects to the same URL over HTTPS.
	res = a.get(t, fmt.Sprintf("http://%s:%d/api/v1/openapi.json?x=1", tlsControlHost, httpPort))
	if want := a.httpsURL(tlsControlHost, "/api/v1/openapi.json?x=1"); res.StatusCode != http.StatusPermanentRedirect || res.Header.Get("Location") != want {
		t.Fatalf("HTTP redirect: %d to %q, want 308 to %q", res.StatusCode, res.Header.Get("Location"), want)
	}
	// The loopback address is no certificate name: it stays plain HTTP.
	res = a.get(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", httpPort))
	if res.StatusCode != 200 {
		t.Fatalf("plain HTTP by address: %d", res.StatusCode)
	}

	api := apiClient{t: t, base: a.httpsURL(tlsControlHost, ""), token: a.srv.Bootstrap.Token, http: a.client}
	host := generatedHostOfNewService(t, api)
	res = a.get(t, a.httpsURL(host, "/"))
	if res.TLS.PeerCertificates[0].VerifyHostname(host) != nil {
		t.Fatalf("the Service host %s was served a certificate for %v", host, res.TLS.PeerCertificates[0].DNSNames)
	}

	issued := pebble.Issued(t)
	if issued != 2 {
		t.Fatalf("Pebble issued %d certificates, want 2 (control plane and the Service host)", issued)
	}
	// Nobody holds this name: the handshake fails and no order is placed.
	if _, err := a.client.Get(a.httpsURL("nobody.apps.slipway.test", "/")); err == nil {
		t.Fatal("a name nobody holds was served over HTTPS")
	}
	if _, err := a.client.Get(a.httpsURL("attacker.example", "/")); err == nil {
		t.Fatal("a foreign name was served over HTTPS")
	}
	if got := pebble.Issued(t); got != issued {
		t.Fatalf("names nobody holds caused %d more certificates", got-issued)
	}

	// Keys and certificates are sealed at rest.
	rows, err := a.srv.Store.DB().Query(`SELECT key, value FROM tls_storage`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var key string
		var value []byte
		if err := rows.Scan(&key, &value); err != nil {
			t.Fatal(err)
		}
		n++
		if bytes.Contains(value, []byte("PRIVATE KEY")) || bytes.Contains(value, []byte("BEGIN CERTIFICATE")) {
			t.Errorf("tls storage %s holds plaintext PEM", key)
		}
	}
	rows.Close()
	if n == 0 {
		t.Fatal("nothing in tls storage")
	}

	states, err := a.srv.Certificates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 2 {
		t.Fatalf("certificate states: %+v", states)
	}
	for _, s := range states {
		if s.State != certs.StateIssued || s.NotAfter == nil || time.Until(*s.NotAfter) < 80*24*time.Hour {
			t.Errorf("state of %s: %+v", s.Host, s)
		}
	}
	// The certificates API: the installation administrator sees every
	// name; another organisation sees none of these; a certificate close
	// to expiry is a warning (what `slipway doctor` prints).
	soon := time.Now().Add(5 * 24 * time.Hour)
	if err := a.srv.Store.PutCertificateState(context.Background(), store.CertificateState{Host: host, State: certs.StateIssued, NotAfter: &soon, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var list struct {
		Items []service.CertificateView `json:"items"`
	}
	api.must(200, "GET", "/api/v1/certificates", nil, &list)
	if len(list.Items) != 2 || list.Items[1].Host != host || !strings.Contains(list.Items[1].Warning, "14 days") || list.Items[0].Warning != "" {
		t.Fatalf("certificates seen by the administrator: %+v", list.Items)
	}
	orgB := apiClient{t: t, base: api.base, http: api.http, token: setUpOrgB(t, a.srv, api)}
	orgB.must(200, "GET", "/api/v1/certificates", nil, &list)
	if len(list.Items) != 0 {
		t.Fatalf("another organisation sees certificates: %+v", list.Items)
	}

	metrics := string(a.body(t, a.httpsURL(tlsControlHost, "/metrics")))
	if !strings.Contains(metrics, `slipway_tls_certificates{state="issued"} 2`) || !strings.Contains(metrics, `slipway_tls_certificate_expiry_days{host="`+host+`"}`) {
		t.Fatalf("metrics lack the certificate gauges:\n%s", grepLines(metrics, "slipway_tls"))
	}
}

// TestACMEReplicasOrderOnce is two replicas on one PostgreSQL asked for
// the same new name at once: one ACME order, both serve the certificate.
func TestACMEReplicasOrderOnce(t *testing.T) {
	dbURL := pgtest.URL(t)
	httpPort, httpsPort := pebbletest.FreePort(t), pebbletest.FreePort(t)
	pebble := pebbletest.Start(t, pebbletest.Options{HTTPPort: httpPort, TLSPort: httpsPort})
	key := make([]byte, 32)
	rand.Read(key)
	sameKey := func(c *server.Config) { c.MasterKey = "kreplicas:" + base64.StdEncoding.EncodeToString(key) }
	first := startACME(t, dbURL, pebble, httpPort, httpsPort, sameKey)
	// The second replica's listeners are not where Pebble validates: its
	// orders are answered by the first replica, from shared storage.
	second := startACME(t, dbURL, pebble, pebbletest.FreePort(t), pebbletest.FreePort(t), sameKey)
	// The control plane's host is ordered at start, in the background:
	// once both serve it, only the Service host is left to order.
	for _, r := range []*acmeServer{first, second} {
		r.get(t, r.httpsURL(tlsControlHost, "/healthz"))
	}
	baseline := pebble.Issued(t)
	if baseline != 1 {
		t.Errorf("two replicas starting caused %d orders for the control plane's host, want 1", baseline)
	}

	api := apiClient{t: t, base: first.httpsURL(tlsControlHost, ""), token: first.srv.Bootstrap.Token, http: first.client}
	host := generatedHostOfNewService(t, api)

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, r := range []*acmeServer{first, second} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := r.client.Get(r.httpsURL(host, "/"))
			if err == nil {
				res.Body.Close()
				err = res.TLS.PeerCertificates[0].VerifyHostname(host)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d over HTTPS for %s: %v", i+1, host, err)
		}
	}
	if got := pebble.Issued(t) - baseline; got != 1 {
		t.Fatalf("two replicas caused %d orders for one name, want 1", got)
	}
}

// generatedHostOfNewService creates a Service (an image: nothing to
// clone) and returns the host generated for it.
func generatedHostOfNewService(t *testing.T, api apiClient) string {
	t.Helper()
	var app slipway.Application
	api.must(201, "POST", "/api/v1/applications", service.ApplicationInput{Name: "shop"}, &app)
	image := "x"
	var svc slipway.Service
	api.must(201, "POST", "/api/v1/environments/"+app.DefaultEnvironmentID+"/services",
		service.ServiceInput{Name: "web", Type: slipway.ServiceDocker, Image: &image}, &svc)
	for _, h := range svc.Hosts {
		if h.Kind == slipway.HostGenerated {
			return h.Host
		}
	}
	t.Fatalf("service has no generated host: %+v", svc.Hosts)
	return ""
}

func (a *acmeServer) get(t *testing.T, url string) *http.Response {
	t.Helper()
	res, err := a.client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

func (a *acmeServer) body(t *testing.T, url string) []byte {
	t.Helper()
	res, err := a.client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return b
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestACMERenewalUnderLoad is a certificate renewed while clients keep
// connecting: Pebble issues short-lived certificates, Slipway renews
// before expiry, the new certificate is served, and no request fails.
func TestACMERenewalUnderLoad(t *testing.T) {
	httpPort, httpsPort := pebbletest.FreePort(t), pebbletest.FreePort(t)
	pebble := pebbletest.Start(t, pebbletest.Options{HTTPPort: httpPort, TLSPort: httpsPort, Validity: 30 * time.Second})
	a := startACME(t, "", pebble, httpPort, httpsPort, func(c *server.Config) {
		c.TLS.RenewCheckInterval = 500 * time.Millisecond
		c.TLS.RenewalWindowRatio = 0.5 // renew with 15 s left
	})
	first := a.get(t, a.httpsURL(tlsControlHost, "/healthz")).TLS.PeerCertificates[0]

	// Every request on a new connection: each handshake picks the
	// certificate being served at that moment.
	client := pebbletest.Client(a.roots)
	client.Transport.(*http.Transport).DisableKeepAlives = true
	var (
		mu               sync.Mutex
		requests, failed int
		renewed          *x509.Certificate
	)
	deadline := time.Now().Add(40 * time.Second)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				res, err := client.Get(a.httpsURL(tlsControlHost, "/healthz"))
				mu.Lock()
				requests++
				if err != nil || res.StatusCode != 200 {
					failed++
					t.Logf("request failed: %v", err)
				} else if leaf := res.TLS.PeerCertificates[0]; leaf.SerialNumber.Cmp(first.SerialNumber) != 0 && renewed == nil {
					renewed = leaf
				}
				done := renewed != nil && requests > 200
				mu.Unlock()
				if res != nil {
					res.Body.Close()
				}
				if done {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d requests during renewal, %d failed", requests, failed)
	if renewed == nil {
		t.Fatalf("the certificate (valid until %s) was not renewed within 40 s", first.NotAfter)
	}
	if !renewed.NotAfter.After(first.NotAfter) {
		t.Fatalf("renewed certificate expires %s, not after the first's %s", renewed.NotAfter, first.NotAfter)
	}
	if failed != 0 {
		t.Fatalf("%d of %d requests failed during renewal", failed, requests)
	}
}
