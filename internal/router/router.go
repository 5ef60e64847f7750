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
	"errors"
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

	"github.com/prometheus/client_golang/prometheus"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/clientaddr"
	"slipway.dev/slipway/internal/runtime"
)

// Defaults of Options. There is deliberately no write timeout anywhere:
// streamed responses, server-sent events and WebSockets last as long as
// the app keeps them open.
const (
	// DefaultDialTimeout bounds connecting to a release.
	DefaultDialTimeout = 5 * time.Second
	// DefaultResponseHeaderTimeout bounds the wait for a release's response
	// headers once the request is sent; past it the client gets 504.
	DefaultResponseHeaderTimeout = 60 * time.Second
	// DefaultReadHeaderTimeout bounds reading a client's request headers
	// (a slow-loris client is cut off after it).
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultIdleTimeout closes a keep-alive connection idle this long.
	DefaultIdleTimeout = 120 * time.Second
	// DefaultMaxBodyBytes is the request-body limit of a Service that has
	// not set one (slipway.DefaultMaxBodyMB).
	DefaultMaxBodyBytes = int64(slipway.DefaultMaxBodyMB) << 20
	// HSTSValue is the Strict-Transport-Security header a Service with
	// HSTS on sends over TLS.
	HSTSValue = "max-age=31536000"
)

// Options tune a Router; the zero value takes every default.
type Options struct {
	DialTimeout           time.Duration
	ResponseHeaderTimeout time.Duration
	ReadHeaderTimeout     time.Duration // for the listener's http.Server (see Server)
	IdleTimeout           time.Duration // for the listener's http.Server (see Server)
	// TrustedProxies are the peers whose X-Forwarded-* headers are kept
	// (--trusted-proxies); from anyone else they are replaced.
	TrustedProxies clientaddr.Resolver
	// Metrics, when set, receives the per-Service request counter and
	// duration histogram.
	Metrics prometheus.Registerer
}

func (o Options) withDefaults() Options {
	o.DialTimeout = orDefault(o.DialTimeout, DefaultDialTimeout)
	o.ResponseHeaderTimeout = orDefault(o.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	o.ReadHeaderTimeout = orDefault(o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	o.IdleTimeout = orDefault(o.IdleTimeout, DefaultIdleTimeout)
	return o
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Server returns an http.Server for h with the header-read and idle
// timeouts of o and no write timeout (streams and WebSockets).
func (o Options) Server(h http.Handler) *http.Server {
	o = o.withDefaults()
	return &http.Server{Handler: h, ReadHeaderTimeout: o.ReadHeaderTimeout, IdleTimeout: o.IdleTimeout}
}

// Settings are a Service's own routing settings.
type Settings struct {
	MaxBodyBytes int64 // 0: DefaultMaxBodyBytes
	HSTS         bool  // send HSTSValue on responses served over TLS
}

// SettingsOf reads a Service's routing settings.
func SettingsOf(svc slipway.Service) Settings {
	return Settings{MaxBodyBytes: int64(svc.EffectiveMaxBodyMB()) << 20, HSTS: svc.HSTS}
}

// Router implements http.Handler.
//
// Every route belongs to an owner (the Service holding the host): a switch
// never takes a host routed for another owner, and removing routes names
// the owner, so one Service's stop, delete or domain removal cannot touch
// another's routes, whatever the host names look like. Which hosts an
// owner may hold is decided by the host claims (internal/service); the
// router only keeps owners apart.
type Router struct {
	logger    *slog.Logger
	transport http.RoundTripper
	opts      Options
	metrics   *metrics

	settings atomic.Pointer[map[string]Settings] // owner → settings; replaced, never mutated

	table atomic.Pointer[map[string]*backend] // host → backend; replaced, never mutated

	mu       sync.Mutex // serialises writers of table and backends
	backends map[string]*backend
}

// backend is one release address and its proxy.
type backend struct {
	owner        string
	deploymentID string
	addr         string
	proxy        *httputil.ReverseProxy
	inflight     atomic.Int64
}

// New returns an empty Router.
func New(logger *slog.Logger, opts Options) *Router {
	opts = opts.withDefaults()
	r := &Router{
		logger: logger,
		opts:   opts,
		transport: &http.Transport{
			Proxy:                 nil, // backends are local: never through an environment proxy
			DialContext:           (&net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			ResponseHeaderTimeout: opts.ResponseHeaderTimeout,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
		},
		backends: map[string]*backend{},
		metrics:  newMetrics(opts.Metrics),
	}
	empty := map[string]*backend{}
	r.table.Store(&empty)
	noSettings := map[string]Settings{}
	r.settings.Store(&noSettings)
	return r
}

// SetSettings makes s the routing settings of owner's routes, from the
// next request on.
func (r *Router) SetSettings(owner string, s Settings) {
	r.editSettings(func(next map[string]Settings) { next[owner] = s })
}

func (r *Router) editSettings(change func(next map[string]Settings)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := *r.settings.Load()
	next := make(map[string]Settings, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	change(next)
	r.settings.Store(&next)
}

func (r *Router) settingsOf(owner string) Settings {
	s := (*r.settings.Load())[owner]
	if s.MaxBodyBytes <= 0 {
		s.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return s
}

// NormalizeHost is slipway.NormalizeHost: the router compares hosts in the
// same spelling as the claims and the control plane's dispatch.
func NormalizeHost(host string) string { return slipway.NormalizeHost(host) }

// Switch routes every host to inst for owner at once and returns the
// addresses the hosts were routed to before (deduplicated, without inst's
// own), for the caller to Drain and then stop. A host routed for another
// owner is left alone and returned in refused.
func (r *Router) Switch(owner string, hosts []string, inst runtime.Instance) (previous, refused []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.backends[inst.Addr]
	if !ok || b.deploymentID != inst.DeploymentID || b.owner != owner {
		b = r.newBackend(owner, inst)
		r.backends[inst.Addr] = b
	}
	next := r.copyTable()
	seen := map[string]bool{inst.Addr: true}
	for _, h := range hosts {
		h = NormalizeHost(h)
		old, ok := next[h]
		if ok && old.owner != owner {
			refused = append(refused, h)
			continue
		}
		if ok && !seen[old.addr] {
			seen[old.addr] = true
			previous = append(previous, old.addr)
		}
		next[h] = b
	}
	r.table.Store(&next)
	return previous, refused
}

// Remove stops routing host, if owner's route it is.
func (r *Router) Remove(owner, host string) {
	r.edit(func(next map[string]*backend) {
		h := NormalizeHost(host)
		if b, ok := next[h]; ok && b.owner == owner {
			delete(next, h)
		}
	})
}

// Retain keeps only the given hosts among owner's routes.
func (r *Router) Retain(owner string, hosts []string) {
	keep := map[string]bool{}
	for _, h := range hosts {
		keep[NormalizeHost(h)] = true
	}
	r.edit(func(next map[string]*backend) {
		for h, b := range next {
			if b.owner == owner && !keep[h] {
				delete(next, h)
			}
		}
	})
}

// RemoveOwner stops routing every host of owner.
func (r *Router) RemoveOwner(owner string) {
	r.Retain(owner, nil)
	r.editSettings(func(next map[string]Settings) { delete(next, owner) })
}

// Routed returns the release owner's hosts are routed to, if any.
func (r *Router) Routed(owner string) (runtime.Instance, bool) {
	for _, b := range *r.table.Load() {
		if b.owner == owner {
			return runtime.Instance{DeploymentID: b.deploymentID, Addr: b.addr}, true
		}
	}
	return runtime.Instance{}, false
}

func (r *Router) edit(change func(next map[string]*backend)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := r.copyTable()
	change(next)
	r.table.Store(&next)
}

// Lookup returns the owner, release and address host routes to.
func (r *Router) Lookup(host string) (owner, deploymentID, addr string, ok bool) {
	b, ok := (*r.table.Load())[NormalizeHost(host)]
	if !ok {
		return "", "", "", false
	}
	return b.owner, b.deploymentID, b.addr, true
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

func (r *Router) newBackend(owner string, inst runtime.Instance) *backend {
	target := &url.URL{Scheme: "http", Host: inst.Addr}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // the app sees the Host it was called with
			r.setForwarded(pr)
		},
		Transport:     r.transport,
		FlushInterval: -1, // streams and server-sent events reach the client at once
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			var tooLarge *http.MaxBytesError
			switch {
			case errors.As(err, &tooLarge):
				writeTooLarge(w, req, tooLarge.Limit)
			case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
				r.logger.Warn("backend timed out", "host", req.Host, "deployment", inst.DeploymentID, "err", err)
				writeProblem(w, req, http.StatusGatewayTimeout, "Gateway timeout", "The service did not answer in time. Try again in a moment.")
			default:
				r.logger.Warn("backend request failed", "host", req.Host, "deployment", inst.DeploymentID, "err", err)
				writeProblem(w, req, http.StatusBadGateway, "Bad gateway", "The service did not answer. It may be restarting; try again in a moment.")
			}
		},
	}
	return &backend{owner: owner, deploymentID: inst.DeploymentID, addr: inst.Addr, proxy: proxy}
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
		r.serve(w, req, b)
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
