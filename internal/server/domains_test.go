package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge/providers"
	"slipway.dev/slipway/internal/netpolicy"
	"slipway.dev/slipway/internal/runtime"
	"slipway.dev/slipway/internal/runtime/process"
	"slipway.dev/slipway/internal/sandbox"
	"slipway.dev/slipway/internal/server"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/testenv/dnstest"
)

// TestDomainHTTPProofThroughTheListener: the server's own HTTP listener
// answers a pending domain's well-known URL (for that Host and token only),
// and verification fetches it there, resolving the domain on the
// configured DNS server.
func TestDomainHTTPProofThroughTheListener(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	dns := dnstest.Start(t)
	// The proof is fetched on the listener's port, so it is chosen first.
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()
	policy := netpolicy.Policy{AllowPrivate: true, AllowFiles: true}
	srv, err := server.Start(ctx, server.Config{
		DataDir: filepath.Join(t.TempDir(), "data"), Addr: "127.0.0.1:" + strconv.Itoa(port), PublicURL: "http://127.0.0.1:" + strconv.Itoa(port),
		BaseDomain: "apps.example.test", DNSResolver: dns.Addr, DomainCheckHTTPPort: port, Network: policy,
		ReconcileInterval: -1, Forges: providers.All(logger, policy), Logger: logger,
		NewRuntime: func(sb *sandbox.Manager) (runtime.Runtime, error) {
			return process.New(logger, sb, process.Options{}), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	a, err := srv.Service.ActorFor(ctx, srv.Bootstrap.OrgID, srv.Bootstrap.UserID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Service.CreateApplication(ctx, a, service.ApplicationInput{Name: "shop"}); err != nil {
		t.Fatal(err)
	}
	image := "example/web"
	web, err := srv.Service.CreateService(ctx, a, "shop/production", service.ServiceInput{Name: "web", Type: slipway.ServiceDocker, Image: &image})
	if err != nil {
		t.Fatal(err)
	}
	d, err := srv.Service.AddDomain(ctx, a, web.ID, "www.shop.example.org")
	if err != nil || d.HTTP == nil {
		t.Fatalf("add domain: %+v %v", d, err)
	}
	get := func(host, token string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+srv.Addr()+service.ChallengePath+token, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("www.shop.example.org", d.HTTP.Body); code != http.StatusOK || body != d.HTTP.Body {
		t.Fatalf("challenge for the pending domain: %d %q", code, body)
	}
	for _, host := range []string{"other.example.org", "127.0.0.1"} {
		if _, body := get(host, d.HTTP.Body); body == d.HTTP.Body {
			t.Errorf("the token of www.shop.example.org is served for Host %s", host)
		}
	}
	dns.SetIP("www.shop.example.org", netip.MustParseAddr("127.0.0.1"))
	if v, err := srv.Service.VerifyDomain(ctx, a, web.ID, "www.shop.example.org"); err != nil || v.State != service.DomainVerified {
		t.Fatalf("verify through the listener: %+v %v", v, err)
	}
}
