package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"slipway.dev/slipway/internal/clientaddr"
	"slipway.dev/slipway/internal/runtime"
)

// routed starts app, routes host "app.test" to it for owner svc_a and
// returns the router.
func routed(t *testing.T, opts Options, app http.Handler) *Router {
	t.Helper()
	backend := httptest.NewServer(app)
	t.Cleanup(backend.Close)
	rt := New(quietLogger(), opts)
	rt.Switch("svc_a", []string{"app.test"}, runtime.Instance{DeploymentID: "dep_a", Addr: addr(backend)})
	return rt
}

func get(t *testing.T, c *http.Client, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Host = "app.test"
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestWebSocketEchoThroughRouter(t *testing.T) {
	rt := routed(t, Options{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo:"), msg...)); err != nil {
				return
			}
		}
	}))
	front := httptest.NewServer(rt)
	defer front.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(front.URL, "http"), &websocket.DialOptions{Host: "app.test"})
	if err != nil {
		t.Fatalf("dial through router: %v", err)
	}
	defer c.CloseNow()
	for _, m := range []string{"one", "two", strings.Repeat("x", 30000)} {
		if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil || string(got) != "echo:"+m {
			t.Fatalf("echo of %.10q: %.20q %v", m, got, err)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
}

func TestHTTP2ClientIsProxied(t *testing.T) {
	rt := routed(t, Options{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "proto-to-app=%s xfp=%s", r.Proto, r.Header.Get("X-Forwarded-Proto"))
	}))
	front := httptest.NewUnstartedServer(rt)
	front.EnableHTTP2 = true
	front.StartTLS()
	defer front.Close()
	resp, body := get(t, front.Client(), front.URL+"/", nil)
	if resp.ProtoMajor != 2 {
		t.Fatalf("client reached the router over %s, want HTTP/2", resp.Proto)
	}
	if resp.StatusCode != 200 || body != "proto-to-app=HTTP/1.1 xfp=https" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}

func TestSlowLorisHeadersAreCutOff(t *testing.T) {
	rt := routed(t, Options{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv := Options{ReadHeaderTimeout: 300 * time.Millisecond}.Server(rt)
	if srv.WriteTimeout != 0 || srv.IdleTimeout != DefaultIdleTimeout {
		t.Fatalf("server timeouts: write %v idle %v", srv.WriteTimeout, srv.IdleTimeout)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	// One header line every 100ms, never finishing: each byte is in time,
	// the whole header block is not.
	go func() {
		fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: app.test\r\n")
		for i := 0; i < 50; i++ {
			time.Sleep(100 * time.Millisecond)
			if _, err := fmt.Fprintf(conn, "X-Slow-%d: 1\r\n", i); err != nil {
				return
			}
		}
	}()
	conn.SetReadDeadline(time.Now().Add(4 * time.Second))
	_, err = io.ReadAll(conn)
	// The server closes the connection: an end of file, or a reset when
	// the client's next header line arrives after the close. Only our own
	// read deadline means it was kept open.
	var ne net.Error
	if elapsed := time.Since(start); errors.As(err, &ne) && ne.Timeout() || elapsed > 2*time.Second {
		t.Fatalf("slow client kept the connection %v (err %v); want it closed after the 300ms header timeout", elapsed, err)
	}
}

func problemOf(t *testing.T, body string) map[string]any {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("not a problem body: %q", body)
	}
	return p
}

func TestUpstreamThatNeverAnswersGets504(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accepts and reads, never answers
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, c)
		}
	}()
	rt := New(quietLogger(), Options{ResponseHeaderTimeout: 300 * time.Millisecond})
	rt.Switch("svc_a", []string{"app.test"}, runtime.Instance{DeploymentID: "dep_a", Addr: ln.Addr().String()})
	front := httptest.NewServer(rt)
	defer front.Close()
	start := time.Now()
	resp, body := get(t, front.Client(), front.URL+"/", nil)
	if resp.StatusCode != http.StatusGatewayTimeout || problemOf(t, body)["status"] != float64(504) {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("took %v", time.Since(start))
	}

	// Nothing listening at all: 502 with the problem page, at once.
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	gone := ln2.Addr().String()
	ln2.Close()
	rt.Switch("svc_a", []string{"app.test"}, runtime.Instance{DeploymentID: "dep_b", Addr: gone})
	resp, body = get(t, front.Client(), front.URL+"/", http.Header{"Accept": {"text/html"}})
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "<h1>Bad gateway</h1>") {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}

func TestBodyLimitPerService(t *testing.T) {
	reached := 0
	rt := routed(t, Options{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached++
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			return
		}
		fmt.Fprintf(w, "read %d", n)
	}))
	rt.SetSettings("svc_a", Settings{MaxBodyBytes: 1 << 20})
	front := httptest.NewServer(rt)
	defer front.Close()
	post := func(body io.Reader, length int64) (int, string) {
		req, _ := http.NewRequest("POST", front.URL+"/", body)
		req.Host = "app.test"
		req.ContentLength = length
		resp, err := front.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post(strings.NewReader(strings.Repeat("a", 1<<20)), 1<<20); code != 200 || body != "read 1048576" {
		t.Fatalf("body at the limit: %d %q", code, body)
	}
	// Declared too large: refused up front, the app never sees it.
	before := reached
	code, body := post(strings.NewReader(strings.Repeat("a", 1<<20+1)), 1<<20+1)
	if code != http.StatusRequestEntityTooLarge || problemOf(t, body)["status"] != float64(413) || reached != before {
		t.Fatalf("declared over the limit: %d %q (app reached %d times)", code, body, reached-before)
	}
	// Streamed without a length: cut at the limit.
	pr, pw := io.Pipe()
	go func() {
		chunk := []byte(strings.Repeat("b", 64<<10))
		for i := 0; i < 64; i++ { // 4 MiB
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	code, body = post(pr, -1)
	pr.Close()
	if code != http.StatusRequestEntityTooLarge {
		t.Fatalf("streamed over the limit: %d %q", code, body)
	}
}

func TestHSTSOnlyOverTLS(t *testing.T) {
	trusted, _ := clientaddr.Parse("127.0.0.1")
	for _, tc := range []struct {
		name    string
		hsts    bool
		opts    Options
		tls     bool
		header  http.Header
		wantSTS bool
	}{
		{name: "on over TLS", hsts: true, tls: true, wantSTS: true},
		{name: "off over TLS", hsts: false, tls: true},
		{name: "on over plain HTTP", hsts: true},
		{name: "untrusted peer claims https", hsts: true, header: http.Header{"X-Forwarded-Proto": {"https"}}},
		{name: "trusted proxy says https", hsts: true, opts: Options{TrustedProxies: trusted}, header: http.Header{"X-Forwarded-Proto": {"https"}}, wantSTS: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := routed(t, tc.opts, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
			rt.SetSettings("svc_a", Settings{HSTS: tc.hsts})
			front := httptest.NewUnstartedServer(rt)
			if tc.tls {
				front.StartTLS()
			} else {
				front.Start()
			}
			defer front.Close()
			resp, _ := get(t, front.Client(), front.URL+"/", tc.header)
			if got := resp.Header.Get("Strict-Transport-Security"); (got == HSTSValue) != tc.wantSTS || (got != "" && got != HSTSValue) {
				t.Fatalf("Strict-Transport-Security = %q, want it: %v", got, tc.wantSTS)
			}
		})
	}
}

// forwardedEcho answers the X-Forwarded-* headers the app received.
var forwardedEcho = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "for=%q host=%q proto=%q forwarded=%q", r.Header.Values("X-Forwarded-For"),
		r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Proto"), r.Header.Get("Forwarded"))
})

var forged = http.Header{
	"X-Forwarded-For":   {"203.0.113.9, 10.0.0.1"},
	"X-Forwarded-Host":  {"admin.internal"},
	"X-Forwarded-Proto": {"https"},
	"Forwarded":         {"for=203.0.113.9;proto=https"},
}

func TestForgedForwardedHeadersFromUntrustedPeerAreReplaced(t *testing.T) {
	// Trusting some other network does not make this peer trusted.
	other, _ := clientaddr.Parse("10.0.0.0/8")
	front := httptest.NewServer(routed(t, Options{TrustedProxies: other}, forwardedEcho))
	defer front.Close()
	_, body := get(t, front.Client(), front.URL+"/", forged)
	if want := `for=["127.0.0.1"] host="app.test" proto="http" forwarded=""`; body != want {
		t.Fatalf("app saw %s\nwant     %s", body, want)
	}
}

func TestTrustedProxyForwardedHeadersAreKept(t *testing.T) {
	trusted, _ := clientaddr.Parse("127.0.0.0/8")
	front := httptest.NewServer(routed(t, Options{TrustedProxies: trusted}, forwardedEcho))
	defer front.Close()
	_, body := get(t, front.Client(), front.URL+"/", forged)
	if want := `for=["203.0.113.9, 10.0.0.1, 127.0.0.1"] host="admin.internal" proto="https" forwarded=""`; body != want {
		t.Fatalf("app saw %s\nwant     %s", body, want)
	}
}

func TestRequestMetricsPerService(t *testing.T) {
	reg := prometheus.NewRegistry()
	front := httptest.NewServer(routed(t, Options{Metrics: reg}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	})))
	defer front.Close()
	for i := 0; i < 3; i++ {
		get(t, front.Client(), front.URL+"/", nil)
	}
	if n := testutil.ToFloat64(mustCounter(t, reg, "svc_a", "418")); n != 3 {
		t.Fatalf("requests counted: %v, want 3", n)
	}
}

func mustCounter(t *testing.T, reg *prometheus.Registry, service, code string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "slipway_router_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["service"] == service && labels["code"] == code {
				c := prometheus.NewCounter(prometheus.CounterOpts{Name: "copy"})
				c.Add(m.GetCounter().GetValue())
				return c
			}
		}
	}
	t.Fatalf("no slipway_router_requests_total{service=%q,code=%q}", service, code)
	return nil
}
