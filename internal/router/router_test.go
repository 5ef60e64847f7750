package router

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"slipway.dev/slipway/internal/runtime"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// release is a backend that answers its name after a short pause, so
// requests are in flight when the router switches away from it.
func release(t *testing.T, name string) *httptest.Server {
	t.Helper()
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		fmt.Fprintf(w, "%s host=%s xfh=%s xff=%s", name, r.Host, r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-For"))
	}))
}

func addr(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

func TestRoutesByHostCaseInsensitiveWithoutPort(t *testing.T) {
	rt := New(quietLogger(), Options{})
	a := release(t, "a")
	defer a.Close()
	rt.Switch("svc_a", []string{"Shop.Example.test"}, runtime.Instance{DeploymentID: "dep_a", Addr: addr(a)})
	front := httptest.NewServer(rt)
	defer front.Close()

	req, _ := http.NewRequest("GET", front.URL+"/x", nil)
	req.Host = "SHOP.example.TEST:8080"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "a host=SHOP.example.TEST:8080 xfh=SHOP.example.TEST:8080 xff=127.0.0.1") {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if owner, id, got, ok := rt.Lookup("shop.example.test."); !ok || owner != "svc_a" || id != "dep_a" || got != addr(a) {
		t.Errorf("Lookup = %s %s %s %v", owner, id, got, ok)
	}
	rt.Remove("svc_a", "shop.example.test")
	if _, _, _, ok := rt.Lookup("shop.example.test"); ok {
		t.Error("route survived Remove")
	}
}

func TestUnknownHost(t *testing.T) {
	rt := New(quietLogger(), Options{})
	for _, c := range []struct{ accept, ctype, contains string }{
		{"application/json", "application/problem+json", `"status":404`},
		{"text/html,application/xhtml+xml", "text/html; charset=utf-8", "<h1>No service at this address</h1>"},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "http://nowhere.example.test/", nil)
		req.Header.Set("Accept", c.accept)
		rt.ServeHTTP(rec, req)
		if rec.Code != 404 || rec.Header().Get("Content-Type") != c.ctype || !strings.Contains(rec.Body.String(), c.contains) {
			t.Errorf("Accept %s: %d %s %q", c.accept, rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
		}
		if c.ctype == "application/problem+json" {
			var p map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || !strings.Contains(p["detail"].(string), "nowhere.example.test") {
				t.Errorf("problem = %v, %v", p, err)
			}
		}
	}
}

func TestBackendDownIs502(t *testing.T) {
	rt := New(quietLogger(), Options{})
	dead := release(t, "dead")
	a := addr(dead)
	dead.Close()
	rt.Switch("svc_dead", []string{"x.test"}, runtime.Instance{DeploymentID: "dep_dead", Addr: a})
	rec := httptest.NewRecorder()
	rt.ServeHTTP(rec, httptest.NewRequest("GET", "http://x.test/", nil))
	if rec.Code != http.StatusBadGateway || !strings.Contains(rec.Body.String(), `"status":502`) {
		t.Errorf("got %d %q", rec.Code, rec.Body.String())
	}
}

// TestSwitchUnderLoadLosesNoRequest keeps clients looping through the
// router for two seconds while the live release switches several times;
// each old release is drained and then shut down. Not one request may
// fail.
func TestSwitchUnderLoadLosesNoRequest(t *testing.T) {
	rt := New(quietLogger(), Options{})
	front := httptest.NewServer(rt)
	defer front.Close()
	hosts := []string{"shop.example.test", "www.shop.example.test"}

	live := release(t, "r0")
	rt.Switch("svc_shop", hosts, runtime.Instance{DeploymentID: "dep_0", Addr: addr(live)})

	const clients = 16
	stop := make(chan struct{})
	var ok, failed atomic.Int64
	var failures sync.Map
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", front.URL+"/", nil)
				req.Host = hosts[i%2]
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					failures.Store(err.Error(), true)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 != 2 || !strings.HasPrefix(string(body), "r") {
					failed.Add(1)
					failures.Store(fmt.Sprintf("%d %s", resp.StatusCode, body), true)
					continue
				}
				ok.Add(1)
			}
		}(i)
	}

	const switches = 8
	for n := 1; n <= switches; n++ {
		time.Sleep(2 * time.Second / switches)
		next := release(t, fmt.Sprintf("r%d", n))
		prev, _ := rt.Switch("svc_shop", hosts, runtime.Instance{DeploymentID: fmt.Sprintf("dep_%d", n), Addr: addr(next)})
		if len(prev) != 1 || prev[0] != addr(live) {
			t.Fatalf("switch %d: previous = %v, want [%s]", n, prev, addr(live))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := rt.Drain(ctx, prev[0]); err != nil {
			t.Fatal(err)
		}
		cancel()
		live.Close() // stop the old release: nothing may be in flight to it
		live = next
	}
	close(stop)
	wg.Wait()
	live.Close()

	t.Logf("%d requests succeeded across %d switches", ok.Load(), switches)
	if failed.Load() != 0 {
		failures.Range(func(k, _ any) bool { t.Logf("failure: %v", k); return true })
		t.Fatalf("%d requests failed during switches", failed.Load())
	}
	if ok.Load() < 100 {
		t.Fatalf("only %d requests ran: the load was not steady", ok.Load())
	}
}

// TestOwnersCannotTouchEachOthersRoutes is a second tenant's attempt on
// a first tenant's routes: switching onto its host, removing it, stopping
// everything of its own. A's host keeps answering with A's release.
func TestOwnersCannotTouchEachOthersRoutes(t *testing.T) {
	rt := New(quietLogger(), Options{})
	a, b := release(t, "a"), release(t, "b")
	defer a.Close()
	defer b.Close()
	rt.Switch("svc_a", []string{"web.example.test", "www.example.test"}, runtime.Instance{DeploymentID: "dep_a", Addr: addr(a)})

	_, refused := rt.Switch("svc_b", []string{"WEB.example.test.", "b.example.test"}, runtime.Instance{DeploymentID: "dep_b", Addr: addr(b)})
	if len(refused) != 1 || refused[0] != "web.example.test" {
		t.Errorf("refused = %v, want A's host", refused)
	}
	rt.Remove("svc_b", "web.example.test")
	rt.Retain("svc_b", nil)
	for _, h := range []string{"web.example.test", "www.example.test"} {
		if owner, id, _, ok := rt.Lookup(h); !ok || owner != "svc_a" || id != "dep_a" {
			t.Errorf("%s routed to %s/%s (%v) after B's changes", h, owner, id, ok)
		}
	}
	if _, _, _, ok := rt.Lookup("b.example.test"); ok {
		t.Error("B's own host survived RemoveOwner")
	}
	if inst, ok := rt.Routed("svc_a"); !ok || inst.DeploymentID != "dep_a" {
		t.Errorf("Routed(svc_a) = %v %v", inst, ok)
	}
	rt.Retain("svc_a", []string{"www.example.test"})
	if _, _, _, ok := rt.Lookup("web.example.test"); ok {
		t.Error("A's released host is still routed")
	}
	if _, _, _, ok := rt.Lookup("www.example.test"); !ok {
		t.Error("A's kept host was dropped")
	}
}
