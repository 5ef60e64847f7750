package netpolicy_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/netpolicy"
	"slipway.dev/slipway/internal/testenv/netnstest"
)

func TestCheckURLRefusesWhatTheDefaultForbids(t *testing.T) {
	strict := netpolicy.Policy{}
	private := netpolicy.Policy{AllowPrivate: true}
	for _, u := range []string{
		"file:///etc/passwd",
		"/var/lib/slipway/repo.git",
		"./relative/repo",
		"http://127.0.0.1:3000/a/b.git",
		"https://127.0.0.1:3000/a/b.git",
		"https://[::ffff:127.0.0.1]/a.git",
		"http://[::ffff:127.0.0.1]/",
		"https://2130706433/a.git",
		"http://2130706433/",
		"https://0177.0.0.1/a.git",
		"https://0x7f.1/a.git",
		"https://127.1/a.git",
		"https://169.254.169.254/latest/meta-data/",
		"http://169.254.169.254/latest/meta-data/",
		"https://[fe80::1%25eth0]/a.git",
		"https://10.0.0.5/a.git",
		"https://[fd00::1]/a.git",
		"https://[64:ff9b::a9fe:a9fe]/a.git", // NAT64 of 169.254.169.254
		"https://[2002:7f00:1::]/a.git",      // 6to4 of 127.0.0.1
		"https://0.0.0.0/a.git",
		"https://[::]/a.git",
		"ssh://git@127.0.0.1/a.git",
		"git@[::1]:a.git",
		"git@10.1.2.3:owner/repo.git",
		"ftp://example.com/a.git",
		"ext::sh -c touch% /tmp/pwned",
		"git://example.com/a.git",
	} {
		err := strict.CheckURL(u)
		e, ok := netpolicy.Refusal(err)
		if !ok {
			t.Errorf("%s: want address_not_allowed, got %v", u, err)
			continue
		}
		if e.Fix == "" {
			t.Errorf("%s: refusal without a fix", u)
		}
	}
	for _, u := range []string{"https://example.com/a.git", "ssh://git@example.com/a.git", "git@example.com:a/b.git", "https://93.184.215.14/a.git"} {
		if err := strict.CheckURL(u); err != nil {
			t.Errorf("%s: refused by default: %v", u, err)
		}
	}
	for _, u := range []string{"http://127.0.0.1:3000/a/b.git", "http://[::ffff:127.0.0.1]/", "https://169.254.169.254/", "http://2130706433/"} {
		if err := private.CheckURL(u); err != nil {
			t.Errorf("%s: refused with --allow-private-networks: %v", u, err)
		}
	}
	for _, u := range []string{"file:///etc/passwd", "/srv/repo.git", "ftp://example.com/a"} {
		if _, ok := netpolicy.Refusal(private.CheckURL(u)); !ok {
			t.Errorf("%s: allowed by --allow-private-networks; local files and other schemes must stay refused", u)
		}
	}
}

func TestParseHostIPReadsEverySpelling(t *testing.T) {
	for host, want := range map[string]string{
		"2130706433": "127.0.0.1", "0177.0.0.1": "127.0.0.1", "0x7f.1": "127.0.0.1", "127.1": "127.0.0.1",
		"0x7f000001": "127.0.0.1", "::ffff:127.0.0.1": "127.0.0.1", "[::1]": "::1", "169.254.43518": "169.254.169.254",
	} {
		got, ok := netpolicy.ParseHostIP(host)
		if !ok || got != netip.MustParseAddr(want) {
			t.Errorf("ParseHostIP(%q) = %v, %v; want %s", host, got, ok, want)
		}
	}
	for _, host := range []string{"example.com", "1.2.3.4.5", "256.1.1.1", "0x", "1..2", "08.1.1.1"} {
		if got, ok := netpolicy.ParseHostIP(host); ok {
			t.Errorf("ParseHostIP(%q) = %v; want not an address", host, got)
		}
	}
}

// countingListener counts connections that reached it: a refused dial
// must leave it at zero.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

func listen(t *testing.T, addr string) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return &countingListener{Listener: ln}
}

func serve(t *testing.T, ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// TestDialerRefusesInItsOwnNamespace proves the refusal happens at the
// dialer, on the resolved address, for every redirect, inside a network
// namespace that holds only loopback and a dummy interface carrying the
// metadata address and one "public" documentation address.
func TestDialerRefusesInItsOwnNamespace(t *testing.T) {
	if !netnstest.Run(t, "169.254.169.254/32", "203.0.113.10/32") {
		return
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("reached")) })
	loop := listen(t, "127.0.0.1:0")
	serve(t, loop, ok)
	meta := listen(t, "169.254.169.254:80")
	serve(t, meta, ok)
	port := loop.Addr().(*net.TCPAddr).Port

	strict := netpolicy.Policy{}
	targets := []string{
		"http://" + loop.Addr().String() + "/",
		"http://localhost:" + itoa(port) + "/", // a name: only the dialer can tell
		"http://[::ffff:127.0.0.1]:" + itoa(port) + "/",
		"http://2130706433:" + itoa(port) + "/",
		"http://169.254.169.254/latest/meta-data/",
	}
	for _, u := range targets {
		_, err := strict.HTTPClient(5 * time.Second).Get(u)
		if e, ok := netpolicy.Refusal(err); !ok || e.Fix == "" {
			t.Errorf("GET %s: want a refusal with a fix at the dialer, got %v", u, err)
		}
	}
	if n := loop.accepted.Load() + meta.accepted.Load(); n != 0 {
		t.Fatalf("%d connections reached a refused address", n)
	}

	// A public-looking server that redirects to loopback: the first hop
	// is allowed, the redirect is not.
	pub := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.1:"+itoa(port)+"/", http.StatusFound)
	}))
	pubLn, err := net.Listen("tcp", "203.0.113.10:0")
	if err != nil {
		t.Fatal(err)
	}
	pub.Listener = pubLn
	pub.StartTLS()
	defer pub.Close()
	hc := strict.HTTPClient(5 * time.Second)
	tr := hc.Transport.(*http.Transport)
	tr.TLSClientConfig = pub.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	tr.TLSClientConfig.ServerName = "example.com"
	resp, err := hc.Get(pub.URL + "/")
	if err == nil {
		resp.Body.Close()
	}
	if _, ok := netpolicy.Refusal(err); !ok {
		t.Errorf("redirect to loopback: want a refusal, got %v", err)
	}
	// Even a client that follows redirects without CheckRedirect is held
	// by the dialer.
	bare := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err = bare.Get(pub.URL + "/")
	if err == nil {
		resp.Body.Close()
	}
	if _, ok := netpolicy.Refusal(err); !ok {
		t.Errorf("redirect to loopback without CheckRedirect: want a dialer refusal, got %v", err)
	}
	if n := loop.accepted.Load(); n != 0 {
		t.Fatalf("the redirect reached loopback %d times", n)
	}

	// The same requests succeed with --allow-private-networks, so the
	// listeners are real and the refusals above are the policy's doing.
	private := netpolicy.Policy{AllowPrivate: true}
	for _, u := range targets {
		resp, err := private.HTTPClient(5 * time.Second).Get(u)
		if err != nil {
			t.Errorf("GET %s with --allow-private-networks: %v", u, err)
			continue
		}
		resp.Body.Close()
	}
	if loop.accepted.Load() == 0 || meta.accepted.Load() == 0 {
		t.Fatal("allowed requests did not arrive")
	}

	// Raw dials through the policy: the check is on the connected address.
	if _, err := strict.DialContext(context.Background(), "tcp", "localhost:"+itoa(port)); err == nil {
		t.Error("dial localhost: not refused")
	} else if slipway.ErrorCodeOf(err) != slipway.ECodeAddressNotAllowed {
		t.Errorf("dial localhost: code %s", slipway.ErrorCodeOf(err))
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://example.com/a.git", "http://2130706433/", "git@[::1]:a", "file:///x", "https://0x7f.1/", "https://[64:ff9b::7f00:1]/"} {
		f.Add(s)
	}
	strict := netpolicy.Policy{}
	f.Fuzz(func(t *testing.T, raw string) {
		err := strict.CheckURL(raw)
		if err == nil {
			// Whatever passes must not be a literal non-public address.
			if _, host, ok := hostOf(raw); ok {
				if ip, isIP := netpolicy.ParseHostIP(host); isIP {
					if strict.CheckIP(ip) != nil {
						t.Fatalf("%q passed with host %s", raw, ip)
					}
				}
			}
		}
	})
}

func hostOf(raw string) (string, string, bool) {
	req, err := http.NewRequest("GET", raw, nil)
	if err != nil {
		return "", "", false
	}
	return req.URL.Scheme, req.URL.Hostname(), true
}

// TestGitConfiguration: what git is started with under the default policy
// (no network used: the host is a literal public address).
func TestGitConfiguration(t *testing.T) {
	g, err := netpolicy.Policy{}.Git(context.Background(), "ssh://git@93.184.215.14:2222/a.git")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	cfg := strings.Join(g.Config, " ")
	for _, want := range []string{"protocol.allow=never", "protocol.https.allow=always", "protocol.ssh.allow=always", "credential.helper=", "http.proxy=http://127.0.0.1:"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("git config lacks %q: %s", want, cfg)
		}
	}
	for _, never := range []string{"protocol.file.allow", "protocol.http.allow"} {
		if strings.Contains(cfg, never) {
			t.Errorf("git config allows %s by default", never)
		}
	}
	if !strings.Contains(g.SSH, "-F /dev/null") || !strings.Contains(g.SSH, "HostName=93.184.215.14") || !strings.Contains(g.SSH, "HostKeyAlias=[93.184.215.14]:2222") {
		t.Errorf("ssh not pinned: %s", g.SSH)
	}
	env := strings.Join(g.Env(t.TempDir()), " ")
	if !strings.Contains(env, "GIT_CONFIG_GLOBAL=/dev/null") || !strings.Contains(env, "GIT_CONFIG_NOSYSTEM=1") {
		t.Errorf("git environment: %s", env)
	}
}
