package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slipway.dev/slipway/internal/forge/providers"
	"slipway.dev/slipway/internal/netpolicy"
	"slipway.dev/slipway/internal/runtime"
	"slipway.dev/slipway/internal/runtime/process"
	"slipway.dev/slipway/internal/sandbox"
	"slipway.dev/slipway/internal/server"
)

// TestControlPlaneHostsAlwaysReachTheControlPlane plants routes for the
// control plane's own names straight into the router (as if a claim check
// had failed) and sends the administrator's token to every spelling of
// them: each request must be answered by the API, never by the planted
// release, which records everything it sees.
func TestControlPlaneHostsAlwaysReachTheControlPlane(t *testing.T) {
	srv := startServer(t, "")
	captured := make(chan string, 64)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		captured <- r.Host + " " + r.Header.Get("Authorization")
		fmt.Fprint(w, "evil")
	}))
	defer evil.Close()
	_, port, _ := net.SplitHostPort(srv.Addr())
	planted := []string{"127.0.0.1", "localhost", "::1", "127.0.0.1:" + port}
	srv.Router.Switch("svc_evil", planted, runtime.Instance{DeploymentID: "dep_evil", Addr: strings.TrimPrefix(evil.URL, "http://")})

	for _, host := range []string{
		"127.0.0.1:" + port, "127.0.0.1", "127.0.0.1.:" + port, "LOCALHOST:" + port, "localhost.", "[::1]:" + port, "[::1]",
	} {
		req, _ := http.NewRequest("GET", srv.URL()+"/api/v1/me", nil)
		req.Host = host
		req.Header.Set("Authorization", "Bearer "+srv.Bootstrap.Token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("Host %q: %v", host, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(body), `"org_id":"`+srv.Bootstrap.OrgID+`"`) {
			t.Errorf("Host %q: %d %q, want the API's answer", host, res.StatusCode, body)
		}
	}

	// An absolute-form request URI names the control plane while the Host
	// header names a Service: net/http takes the URI's authority, and so
	// does the dispatch.
	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET http://%s/api/v1/me HTTP/1.1\r\nHost: web.production.shop.default.localhost\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n",
		srv.Addr(), srv.Bootstrap.Token)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), `"org_id":"`+srv.Bootstrap.OrgID+`"`) {
		t.Errorf("absolute-form request: %d %q, want the API's answer", res.StatusCode, body)
	}

	select {
	case got := <-captured:
		t.Fatalf("the planted release saw a request meant for the control plane: %q", got)
	default:
	}
}

// TestBaseDomainAboveControlPlaneRefused: a base domain equal to or above
// the control plane's host would let a deployed app set cookies the
// dashboard reads, so the server does not start.
func TestBaseDomainAboveControlPlaneRefused(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	for _, c := range []struct{ publicURL, base string }{
		{"https://slipway.example.com", "example.com"},
		{"https://slipway.example.com", "slipway.example.com"},
		{"https://Slipway.Example.com.", "EXAMPLE.com"},
		{"http://localhost:8080", "localhost"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		srv, err := server.Start(ctx, server.Config{
			DataDir: filepath.Join(t.TempDir(), "data"), Addr: "127.0.0.1:0", PublicURL: c.publicURL, BaseDomain: c.base,
			ReconcileInterval: -1, Forges: providers.All(logger, netpolicy.Policy{AllowPrivate: true, AllowFiles: true}), Logger: logger,
			NewRuntime: func(sb *sandbox.Manager) (runtime.Runtime, error) {
				return process.New(logger, sb, process.Options{}), nil
			},
		})
		cancel()
		if err == nil {
			_ = srv.Shutdown(context.Background())
			t.Errorf("public URL %s with base domain %s: started, want refused", c.publicURL, c.base)
			continue
		}
		if !strings.Contains(err.Error(), "cookies") {
			t.Errorf("public URL %s with base domain %s: %v, want the cookie reason", c.publicURL, c.base, err)
		}
	}
}
