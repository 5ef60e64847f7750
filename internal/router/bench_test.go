package router

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"slipway.dev/slipway/internal/runtime"
)

// BenchmarkTLSVersusCaddy compares TLS requests/s and p99 latency through
// the router (with its per-Service metrics on) against the same app
// behind Caddy, in alternating rounds. Not run by default; see README
// "Router benchmark". Needs the caddy binary on PATH.
func BenchmarkTLSVersusCaddy(b *testing.B) {
	caddy, err := exec.LookPath("caddy")
	if err != nil {
		b.Skip("caddy is not installed")
	}
	const conns, rounds, roundLen = 32, 3, 5 * time.Second
	dir := b.TempDir()
	certFile, keyFile := selfSigned(b, dir)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }))
	defer app.Close()

	rt := New(quietLogger(), Options{Metrics: prometheus.NewRegistry()})
	rt.Switch("svc_bench", []string{"app.test"}, runtime.Instance{DeploymentID: "dep_bench", Addr: addr(app)})
	srv := Options{}.Server(rt)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.ServeTLS(ln, certFile, keyFile)
	defer srv.Close()

	caddyPort := freePort(b)
	caddyfile := filepath.Join(dir, "Caddyfile")
	os.WriteFile(caddyfile, []byte(fmt.Sprintf("{\n\tauto_https off\n\tadmin off\n\tlog {\n\t\tlevel ERROR\n\t}\n}\n:%d {\n\tbind 127.0.0.1\n\ttls %s %s\n\treverse_proxy %s\n}\n",
		caddyPort, certFile, keyFile, addr(app))), 0o644)
	cmd := exec.Command(caddy, "run", "--config", caddyfile, "--adapter", "caddyfile")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	targets := map[string]string{"slipway": "https://" + ln.Addr().String() + "/", "caddy": fmt.Sprintf("https://127.0.0.1:%d/", caddyPort)}
	for name, url := range targets {
		if err := waitUp(url); err != nil {
			b.Fatalf("%s: %v", name, err)
		}
	}
	b.ResetTimer()
	total := map[string]*result{"slipway": {}, "caddy": {}}
	for i := 0; i < rounds; i++ {
		for _, name := range []string{"slipway", "caddy"} {
			r := load(targets[name], conns, roundLen)
			total[name].add(r)
			b.Logf("round %d %-7s %8.0f req/s p99 %v errors %d", i+1, name, r.rate(), r.p99(), r.errors)
		}
	}
	s, c := total["slipway"], total["caddy"]
	b.ReportMetric(s.rate(), "slipway-req/s")
	b.ReportMetric(c.rate(), "caddy-req/s")
	b.ReportMetric(s.rate()/c.rate(), "ratio")
	b.ReportMetric(float64(s.p99().Microseconds()), "slipway-p99-µs")
	b.ReportMetric(float64(c.p99().Microseconds()), "caddy-p99-µs")
}

type result struct {
	latencies []time.Duration
	elapsed   time.Duration
	errors    int
}

func (r *result) add(o *result) {
	r.latencies = append(r.latencies, o.latencies...)
	r.elapsed += o.elapsed
	r.errors += o.errors
}

func (r *result) rate() float64 { return float64(len(r.latencies)) / r.elapsed.Seconds() }

func (r *result) p99() time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	l := slices.Clone(r.latencies)
	slices.Sort(l)
	return l[len(l)*99/100]
}

// benchClient keeps conns HTTP/1.1 keep-alive connections (HTTP/2 off,
// the same for both sides).
func benchClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true},
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
		MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
	}}
}

func load(url string, conns int, d time.Duration) *result {
	client := benchClient(conns)
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	out := &result{}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			errs := 0
			for ctx.Err() == nil {
				req, _ := http.NewRequest("GET", url, nil)
				req.Host = "app.test"
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil || resp.StatusCode != 200 {
					errs++
					if resp != nil {
						resp.Body.Close()
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			out.latencies = append(out.latencies, mine...)
			out.errors += errs
			mu.Unlock()
		}()
	}
	wg.Wait()
	out.elapsed = time.Since(start)
	return out
}

func waitUp(url string) error {
	c := benchClient(1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = "app.test"
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort(b *testing.B) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// selfSigned writes a certificate for 127.0.0.1 and localhost.
func selfSigned(b *testing.B, dir string) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "slipway bench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost", "app.test"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		b.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}
