// Package router is the HTTP front door of deployed Services: it maps the
// request's Host to the live release's address and reverse-proxies to it.
//
// The host table is immutable and swapped atomically, so a switch to a new
// release takes effect for the very next request while requests already
// sent to the old release finish there. Each backend counts its in-flight
// requests; Drain waits for the old backend's count to reach zero, after
// which the caller may stop the old release without failing a request.
package router

import (
	"context"
	"encoding/json"

	"fmt"
	"html"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"slipway.dev/slipway/internal/runtime"
)

// Router implements http.Handler.
type Router struct {
	logger    *slog.Logger
	transport http.RoundTripper

	table atomic.Pointer[map[string]*backend] // host → backend; replaced, never mutated

	mu       sync.Mutex // serialises writers of table and backends
	backends map[string]*backend
}

// backend is one release address and its proxy.
type backend struct {
	deploymentID string
	addr         string
	proxy        *httputil.ReverseProxy
	inflight     atomic.Int64
}

// New returns an empty Router.
func New(logger *slog.Logger) *Router {
	r := &Router{
		logger: logger,
		transport: &http.Transport{
			Proxy:               nil, // backends are local: never through an environment proxy
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		},
		backends: map[string]*backend{},
	}
	empty := map[string]*backend{}
	r.table.Store(&empty)
	return r
}

// NormalizeHost lower-cases host and strips a port and a trailing dot.
func NormalizeHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(host)), ".")
}

// Set routes host to addr (the release deploymentID).
func (r *Router) Set(host, deploymentID, addr string) {
	r.Switch([]string{host}, runtime.Instance{DeploymentID: deploymentID, Addr: addr})
}

// Remove stops routing host.
func (r *Router) Remove(host string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := r.copyTable()
	delete(next, NormalizeHost(host))
	r.table.Store(&next)
}

// Switch routes every host to inst at once and returns the addresses the
// hosts were routed to before (deduplicated, without inst's own), for the
// caller to Drain and then stop.
func (r *Router) Switch(hosts []string, inst runtime.Instance) (previous []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.backends[inst.Addr]
	if !ok || b.deploymentID != inst.DeploymentID {
		b = r.newBackend(inst)
		r.backends[inst.Addr] = b
	}
	next := r.copyTable()
	seen := map[string]bool{inst.Addr: true}
	for _, h := range hosts {
		h = NormalizeHost(h)
		if old, ok := next[h]; ok && !seen[old.addr] {
			seen[old.addr] = true
			previous = append(previous, old.addr)
		}
		next[h] = b
	}
	r.table.Store(&next)
	return previous
}

// Lookup returns the release and address host routes to.
func (r *Router) Lookup(host string) (deploymentID, addr string, ok bool) {
	b, ok := (*r.table.Load())[NormalizeHost(host)]
	if !ok {
		return "", "", false
	}
	return b.deploymentID, b.addr, true
}

// InFlight returns the number of requests being proxied to addr.
func (r *Router) InFlight(addr string) int64 {
	r.mu.Lock()
	b, ok := r.backends[addr]
	r.mu.Unlock()
	if !ok {
		return 0
	}
	return b.inflight.Load()
}

// Drain waits until no request is in flight to addr, then forgets addr if
// no host routes to it any more. An unknown addr is drained already.
func (r *Router) Drain(ctx context.Context, addr string) error {
	r.mu.Lock()
	b, ok := r.backends[addr]
	r.mu.Unlock()
	if !ok {
		return nil
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for b.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("router: draining %s: %d requests still in flight: %w", addr, b.inflight.Load(), ctx.Err())
		case <-tick.C:
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, hb := range *r.table.Load() {
		if hb == b {
			return nil // still live for some host
		}
	}
	if r.backends[addr] == b {
		delete(r.backends, addr)
	}
	return nil
}

func (r *Router) copyTable() map[string]*backend {
	cur := *r.table.Load()
	next := make(map[string]*backend, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	return next
}

func (r *Router) newBackend(inst runtime.Instance) *backend {
	target := &url.URL{Scheme: "http", Host: inst.Addr}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // the app sees the Host it was called with
			pr.SetXForwarded()
		},
		Transport: r.transport,
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			r.logger.Warn("backend request failed", "host", req.Host, "deployment", inst.DeploymentID, "err", err)
			writeProblem(w, req, http.StatusBadGateway, "Bad gateway", "The service did not answer. It may be restarting; try again in a moment.")
		},
	}
	return &backend{deploymentID: inst.DeploymentID, addr: inst.Addr, proxy: proxy}
}

// ServeHTTP proxies the request to the host's live release.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	host := NormalizeHost(req.Host)
	for {
		b, ok := (*r.table.Load())[host]
		if !ok {
			writeProblem(w, req, http.StatusNotFound, "No service at this address",
				"No Service is deployed for the host "+host+". Add the domain to a Service, or check the spelling.")
			return
		}
		b.inflight.Add(1)
		// Re-check after counting: if a switch landed in between, the
		// caller may already be draining b and would not see this request.
		if cur, ok := (*r.table.Load())[host]; !ok || cur != b {
			b.inflight.Add(-1)
			continue
		}
		defer b.inflight.Add(-1)
		b.proxy.ServeHTTP(w, req)
		return
	}
}

// writeProblem answers problem+json to API clients and a small page to
// browsers.
func writeProblem(w http.ResponseWriter, req *http.Request, status int, title, detail string) {
	if strings.Contains(req.Header.Get("Accept"), "text/html") {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<!doctype html><title>%s</title><h1>%s</h1><p>%s</p>\n",
			html.EscapeString(title), html.EscapeString(title), html.EscapeString(detail))
		return
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": title, "status": status, "detail": detail})
}
