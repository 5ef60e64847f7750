// Package pebbletest runs Pebble, Let's Encrypt's ACME test server, on
// loopback for tests, with pebble-challtestsrv as the DNS server Pebble
// resolves names through (every name answers 127.0.0.1), so certificates
// are ordered and validated for real: Pebble connects to the HTTP-01 and
// TLS-ALPN-01 ports the test names, where Slipway's own listeners answer.
//
// Tests are skipped with a clear message when SLIPWAY_PEBBLE_DIR does not
// name a directory holding the pebble and pebble-challtestsrv binaries
// (scripts/test.sh installs them and sets it).
package pebbletest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// EnvDir names the directory of the pebble binaries.
const EnvDir = "SLIPWAY_PEBBLE_DIR"

// Options configure one Pebble.
type Options struct {
	// HTTPPort and TLSPort are where Pebble sends HTTP-01 and TLS-ALPN-01
	// validation requests (the ports of the server under test).
	HTTPPort, TLSPort int
	// Validity is the lifetime of issued certificates (0: 90 days). A
	// short one makes a test see a renewal.
	Validity time.Duration
}

// Server is a running Pebble.
type Server struct {
	// DirectoryURL is the ACME directory; CARootFile the PEM of the CA
	// Pebble's own HTTPS certificate chains to.
	DirectoryURL string
	CARootFile   string
	mgmt         string
	client       *http.Client
	log          string
}

// Issued counts the certificates Pebble has issued so far.
func (s *Server) Issued(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile(s.log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "Issued certificate serial")
}

// FreePort returns a loopback port that was free a moment ago, for a
// listener that must be named before it starts (Pebble's config needs the
// ports of the server under test).
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start runs Pebble and its DNS server until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	dir := os.Getenv(EnvDir)
	if dir == "" {
		t.Skipf("%s is not set: no Pebble ACME server (scripts/test.sh installs one)", EnvDir)
	}
	for _, bin := range []string{"pebble", "pebble-challtestsrv"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			t.Skipf("%s: %v", EnvDir, err)
		}
	}
	work := t.TempDir()
	caFile, certFile, keyFile := writeListenerCert(t, work)

	dnsPort, dnsMgmt := FreePort(t), FreePort(t)
	dns := exec.Command(filepath.Join(dir, "pebble-challtestsrv"),
		"-dnsserver", "127.0.0.1:"+strconv.Itoa(dnsPort), "-management", "127.0.0.1:"+strconv.Itoa(dnsMgmt),
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
	startProcess(t, dns, filepath.Join(work, "challtestsrv.log"))

	validity := opts.Validity
	if validity == 0 {
		validity = 90 * 24 * time.Hour
	}
	acmePort, mgmtPort := FreePort(t), FreePort(t)
	config := map[string]any{"pebble": map[string]any{
		"listenAddress":                  "127.0.0.1:" + strconv.Itoa(acmePort),
		"managementListenAddress":        "127.0.0.1:" + strconv.Itoa(mgmtPort),
		"certificate":                    certFile,
		"privateKey":                     keyFile,
		"httpPort":                       opts.HTTPPort,
		"tlsPort":                        opts.TLSPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":                   "ecdsa",
		"profiles": map[string]any{"default": map[string]any{
			"description": "test", "validityPeriod": int(validity / time.Second)}},
	}}
	cfgFile := filepath.Join(work, "pebble.json")
	b, _ := json.Marshal(config)
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	pebble := exec.Command(filepath.Join(dir, "pebble"), "-config", cfgFile, "-strict=false",
		"-dnsserver", "127.0.0.1:"+strconv.Itoa(dnsPort))
	// No artificial validation delay, no random nonce rejection: fast and
	// deterministic.
	pebble.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	startProcess(t, pebble, filepath.Join(work, "pebble.log"))

	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(caFile)
	pool.AppendCertsFromPEM(caPEM)
	s := &Server{
		DirectoryURL: fmt.Sprintf("https://127.0.0.1:%d/dir", acmePort),
		CARootFile:   caFile,
		mgmt:         fmt.Sprintf("https://127.0.0.1:%d", mgmtPort),
		log:          filepath.Join(work, "pebble.log"),
		client:       &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := s.client.Get(s.DirectoryURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(work, "pebble.log"))
			t.Fatalf("pebble did not start: %v\n%s", err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

// RootPEM returns the PEM of the CA that signs issued certificates.
func (s *Server) RootPEM(t testing.TB) []byte {
	t.Helper()
	resp, err := s.client.Get(s.mgmt + "/roots/0")
	if err != nil {
		t.Fatalf("pebble root: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// Roots returns a pool of that CA, for a client that checks the chain
// Slipway serves.
func (s *Server) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if b := s.RootPEM(t); !pool.AppendCertsFromPEM(b) {
		t.Fatalf("pebble root: no PEM certificate in %q", b)
	}
	return pool
}

// Client is curl --resolve for every name: it dials 127.0.0.1 at the
// URL's port, verifies the certificate against roots for the URL's name,
// and follows no redirect.
func Client(roots *x509.CertPool) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: time.Minute,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: roots},
			ForceAttemptHTTP2: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				_, port, _ := net.SplitHostPort(addr)
				return dialer.DialContext(ctx, network, "127.0.0.1:"+port)
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func startProcess(t testing.TB, cmd *exec.Cmd, logFile string) {
	t.Helper()
	f, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("%s log:\n%s", filepath.Base(cmd.Path), tail(b, 4000))
		}
	})
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// writeListenerCert makes a CA and a certificate for 127.0.0.1 and
// localhost signed by it, for Pebble's own HTTPS listeners.
func writeListenerCert(t testing.TB, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebbletest listener CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	write := func(path, typ string, b []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(caFile, "CERTIFICATE", caDER)
	write(certFile, "CERTIFICATE", der)
	write(keyFile, "EC PRIVATE KEY", keyDER)
	return caFile, certFile, keyFile
}
