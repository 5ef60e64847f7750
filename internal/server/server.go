// Package server assembles a running Slipway control plane from its parts:
// the store, the master keyring, the use cases, the job queue, the deploy
// pipeline, the router and every HTTP edge (JSON API, webhook receivers,
// dashboard, health and metrics) on one listener. cmd/slipway chooses the
// concrete providers and runtime and hands them in; end-to-end tests start
// the same server on port 0 with a temporary data directory.
package server

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/build"
	"slipway.dev/slipway/internal/certs"
	"slipway.dev/slipway/internal/clientaddr"
	"slipway.dev/slipway/internal/deploy"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/httpapi"
	"slipway.dev/slipway/internal/jobs"
	"slipway.dev/slipway/internal/netpolicy"
	"slipway.dev/slipway/internal/router"
	"slipway.dev/slipway/internal/runtime"
	"slipway.dev/slipway/internal/sandbox"
	"slipway.dev/slipway/internal/secrets"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
	"slipway.dev/slipway/internal/webhook"
)

// Config is everything `slipway serve` is told.
type Config struct {
	DataDir string // default ./slipway-data
	// WorkspaceDir holds per-Service build workspaces, owned by each
	// Service's own user. Every directory above it must be traversable by
	// those users, so it cannot live inside the 0700 data directory.
	// Default: /var/lib/slipway/workspaces/<hash of DataDir> as root,
	// DataDir + "-workspaces" otherwise.
	WorkspaceDir string
	Addr         string // listen address, default 127.0.0.1:8080 (":0" in tests)
	PublicURL    string // how users and providers reach this server; default http://<addr>
	DatabaseURL  string // empty: SQLite in DataDir
	BaseDomain   string // services answer at <svc>.<env>.<app>.<org-label>.<BaseDomain>; default "localhost"
	// DNSResolver is the HOST:PORT of the DNS server that custom-domain
	// ownership records are looked up on; empty: the system resolver.
	DNSResolver string
	// DomainCheckHTTPPort is the port a custom domain's HTTP proof is
	// fetched on (0: 80; tests set their listener's).
	DomainCheckHTTPPort int
	ReconcileInterval   time.Duration // 0: default 5m; negative disables
	AdminEmail          string        // first-start administrator, default admin@slipway.local
	MasterKey           string        // SLIPWAY_MASTER_KEY, overrides DATA/master.key
	// Installation lists the installation settings as started, shown to
	// installation administrators.
	Installation  []service.InstallationSetting
	DeployWorkers int
	// FilterTenantNetwork, as root, filters what tenant code may connect
	// to (see sandbox.Network): nothing of this host but the listener.
	FilterTenantNetwork bool
	// Network is where Slipway may connect for tenants (--allow-private-
	// networks sets AllowPrivate); the zero value is the strict default.
	Network netpolicy.Policy
	// DeliveryRetention bounds the webhook delivery log (zero: defaults).
	DeliveryRetention service.DeliveryRetention
	// MinFreeDiskPercent: a deploy refuses to start when the workspaces'
	// or the data directory's filesystem has less free (0: the default
	// 5%; negative turns the check off).
	MinFreeDiskPercent float64
	// BuildsKept is how many finished builds and images of a Service are
	// kept besides the live one (0: deploy.DefaultKeep).
	BuildsKept int
	// WebhookLimits are the receiver's rate limits (zero: defaults).
	WebhookLimits webhook.Limits
	// TLS is how the HTTPS listener gets certificates (zero: no HTTPS).
	// The server fills in the ports and the decision of which names it
	// serves.
	TLS certs.Options
	// HTTPSAddr is the HTTPS listen address when TLS is on (default :443).
	HTTPSAddr string

	Forges map[slipway.Provider]forge.Provider
	// NewRuntime builds the runtime releases run on, given the sandbox that
	// owns per-Service users and workspaces.
	NewRuntime func(sb *sandbox.Manager) (runtime.Runtime, error)
	// Dashboard, when set, mounts the dashboard on the mux.
	Dashboard func(svc *service.Service, mux *http.ServeMux)
	// TrustedProxies (--trusted-proxies) are the peers whose
	// X-Forwarded-* headers the router keeps.
	TrustedProxies clientaddr.Resolver
	Logger         *slog.Logger
}

// Server is a running control plane.
type Server struct {
	cfg      Config
	Service  *service.Service
	Store    *store.Store
	Router   *router.Router
	Pipeline *deploy.Pipeline
	queue    *jobs.Queue
	runtime  runtime.Runtime
	listener net.Listener
	http     *http.Server
	// tlsListener and https serve HTTPS when TLS is on; certs hands out
	// its certificates.
	tlsListener net.Listener
	https       *http.Server
	certs       *certs.Manager
	registry    *prometheus.Registry
	log         *slog.Logger
	ready       bool
	// controlHost is the public URL's host; controlHosts every name the
	// control plane answers at (normalized), which no Service may hold.
	controlHost  string
	controlHosts map[string]bool
	// Bootstrap is what first start created (zero on later starts).
	Bootstrap service.BootstrapResult
}

// installationSettings is what an installation administrator sees of how
// this server runs. The database is named by its kind only: its URL may
// hold a password.
func (s *Server) installationSettings(dataDir string) []service.InstallationSetting {
	database := "sqlite (in the data directory)"
	if s.cfg.DatabaseURL != "" {
		database = "postgres"
	}
	out := []service.InstallationSetting{
		{Name: "data", Value: dataDir},
		{Name: "addr", Value: s.listener.Addr().String()},
		{Name: "public-url", Value: s.cfg.PublicURL},
		{Name: "database", Value: database},
		{Name: "workspaces", Value: workspaceDir(s.cfg.WorkspaceDir, dataDir)},
		{Name: "base-domain", Value: s.cfg.BaseDomain},
	}
	return append(out, s.cfg.Installation...)
}

// queueProxy lets the service enqueue before the queue exists (the queue
// needs the service's handlers, the service needs the queue).
type queueProxy struct{ q *jobs.Queue }

func (p *queueProxy) EnqueueDeploy(ctx context.Context, tx *store.Tx, orgID, id string) error {
	return p.q.EnqueueDeploy(ctx, tx, orgID, id)
}

func (p *queueProxy) EnqueueServiceAction(ctx context.Context, tx *store.Tx, orgID, serviceID, action string) error {
	return p.q.EnqueueServiceAction(ctx, tx, orgID, serviceID, action)
}

func (p *queueProxy) EnqueueDelivery(ctx context.Context, tx *store.Tx, orgID, id string) error {
	return p.q.EnqueueDelivery(ctx, tx, orgID, id)
}

// Start opens everything, runs first-start bootstrap, recovers interrupted
// work and starts listening. It returns once the server accepts requests.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "slipway-data"
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8080"
	}
	if cfg.BaseDomain == "" {
		cfg.BaseDomain = "localhost"
	}
	if cfg.AdminEmail == "" {
		cfg.AdminEmail = "admin@slipway.local"
	}
	if cfg.ReconcileInterval == 0 {
		cfg.ReconcileInterval = 5 * time.Minute
	}
	log := cfg.Logger
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	// The data directory holds the database and the master key: nobody but
	// Slipway's own user may read it (builds run as other users).
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if err := os.Chmod(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory permissions: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + ln.Addr().String()
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	s := &Server{cfg: cfg, listener: ln, log: log}
	if cfg.TLS.Mode != certs.Off && cfg.TLS.Mode != "" {
		addr := cmp.Or(cfg.HTTPSAddr, ":443")
		if s.tlsListener, err = net.Listen("tcp", addr); err != nil {
			ln.Close()
			return nil, fmt.Errorf("listen for HTTPS on %s: %w", addr, err)
		}
	}
	closeListeners := func() {
		ln.Close()
		if s.tlsListener != nil {
			s.tlsListener.Close()
		}
	}
	if err := s.reserveControlHosts(); err != nil {
		closeListeners()
		return nil, err
	}
	if err := s.open(ctx, dataDir); err != nil {
		closeListeners()
		s.closeStore()
		return nil, err
	}
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "err", err)
		}
	}()
	if s.https != nil {
		go func() {
			if err := s.https.ServeTLS(s.tlsListener, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("https server", "err", err)
			}
		}()
	}
	s.ready = true
	return s, nil
}

func (s *Server) open(ctx context.Context, dataDir string) error {
	cfg, log := s.cfg, s.log
	keys, err := secrets.LoadOrCreate(filepath.Join(dataDir, "master.key"), cfg.MasterKey)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.DatabaseURL, dataDir, log)
	if err != nil {
		return err
	}
	s.Store = st
	if err := jobs.Migrate(ctx, st); err != nil {
		return err
	}
	proxy := &queueProxy{}
	svc := service.New(st, keys, cfg.Forges, proxy, service.Config{PublicURL: cfg.PublicURL, BaseDomain: cfg.BaseDomain,
		ControlHost: s.controlHost, ReservedHosts: s.reservedHosts(), Installation: s.installationSettings(dataDir),
		LookupTXT: lookupTXT(cfg.DNSResolver), LookupIP: lookupIP(cfg.DNSResolver), DomainCheckHTTPPort: cfg.DomainCheckHTTPPort, Network: cfg.Network, DeliveryRetention: cfg.DeliveryRetention}, log)
	s.Service = svc

	sbOpts := sandbox.Options{Root: workspaceDir(cfg.WorkspaceDir, dataDir), ExtraPath: []string{"/usr/local/go/bin"}}
	if cfg.FilterTenantNetwork && os.Geteuid() == 0 {
		// Tenant code reaches Slipway only the way the public does: the
		// router's listener.
		sbOpts.Network = &sandbox.Network{Allow: s.listenAddrs()}
	}
	sb, err := sandbox.New(log, sbOpts)
	if err != nil {
		return err
	}
	builder, err := build.New(log, sb, build.Options{})
	if err != nil {
		return err
	}
	if cfg.NewRuntime == nil {
		return errors.New("server: no runtime configured")
	}
	rt, err := cfg.NewRuntime(sb)
	if err != nil {
		return fmt.Errorf("runtime: %w", err)
	}
	s.runtime = rt
	s.registry = prometheus.NewRegistry()
	s.Router = router.New(log, router.Options{TrustedProxies: cfg.TrustedProxies, Metrics: s.registry})
	s.Pipeline = deploy.New(svc, builder, rt, s.Router, log)
	minFree := cfg.MinFreeDiskPercent
	if minFree == 0 {
		minFree = deploy.DefaultMinFreePercent
	}
	s.Pipeline.SetKeep(cmp.Or(cfg.BuildsKept, deploy.DefaultKeep))
	s.Pipeline.SetDiskGuard(deploy.DiskGuard{Dirs: []string{workspaceDir(cfg.WorkspaceDir, dataDir), dataDir}, MinFreePercent: minFree})
	svc.SetReleases(s.Pipeline)

	interval := cfg.ReconcileInterval
	if interval < 0 {
		interval = 0
	}
	q, err := jobs.New(st, jobs.Handlers{
		Deploy:          s.Pipeline.Run,
		ProcessDelivery: svc.ProcessDelivery,
		Sweep: func(ctx context.Context) error {
			return errors.Join(svc.SweepDeliveries(ctx), s.Pipeline.FailAbandoned(ctx), svc.SweepExpiredFlows(ctx), svc.ForgetSignInFailures(ctx))
		},
		Action: s.Pipeline.Act,
		Reconcile: func(ctx context.Context) error {
			_, err := svc.Reconcile(ctx)
			return err
		},
	}, jobs.Config{DeployWorkers: cfg.DeployWorkers, ReconcileInterval: interval, Work: true}, log)
	if err != nil {
		return err
	}
	proxy.q, s.queue = q, q

	if s.Bootstrap, err = svc.Bootstrap(ctx, cfg.AdminEmail); err != nil {
		return err
	}
	if s.Bootstrap.Created {
		if err := writeSecretFile(filepath.Join(dataDir, "admin-token"), s.Bootstrap.Token); err != nil {
			return err
		}
		if err := writeSecretFile(filepath.Join(dataDir, "admin-password"), s.Bootstrap.Password); err != nil {
			return err
		}
	}
	if err := svc.EnsureHostClaims(ctx); err != nil {
		return fmt.Errorf("host claims: %w", err)
	}
	if err := s.Pipeline.Recover(ctx); err != nil {
		log.Warn("recover deployments", "err", err)
	}
	if err := q.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start job queue: %w", err)
	}
	if err := s.startCerts(ctx, st, keys); err != nil {
		return err
	}
	handler := s.handler()
	// Header-read and idle timeouts, no write timeout (router.Options).
	timeouts := router.Options{}
	if s.certs != nil {
		s.https = timeouts.Server(handler)
		s.https.TLSConfig = s.certs.TLSConfig()
	}
	s.http = timeouts.Server(s.plainHandler(handler))
	return nil
}

func workspaceDir(configured, dataDir string) string {
	if configured != "" {
		return configured
	}
	if os.Geteuid() == 0 {
		sum := sha256.Sum256([]byte(dataDir))
		return filepath.Join("/var/lib/slipway/workspaces", hex.EncodeToString(sum[:6]))
	}
	return dataDir + "-workspaces"
}

func writeSecretFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content+"\n"), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return os.Chmod(path, 0o600)
}

// handler routes by Host first: a request for a deployed Service's host
// goes to the router; everything else is the control plane's own mux.
func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	reg := s.registry
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if s.certs != nil && s.certs.ACMEEnabled() {
		reg.MustRegister(s.certs.Collector())
	}
	api := httpapi.New(s.Service, s.log)
	api.Register(mux)
	webhook.NewWithLimits(s.Service, s.log, reg, s.cfg.WebhookLimits).Register(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.Store.DB().PingContext(ctx); err != nil || !s.ready {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if s.cfg.Dashboard != nil {
		s.cfg.Dashboard(s.Service, mux)
	} else {
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte(`<!doctype html><title>Slipway</title><h1>Slipway</h1><p>The control plane is running. Use the API at <a href="/api/v1/openapi.json">/api/v1</a>.</p>`))
		})
	}
	base := slipway.NormalizeHost(s.cfg.BaseDomain)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// r.Host is the Host header, or the authority of an absolute-form
		// request URI (net/http prefers it), normalized the same way as
		// the router's keys and the host claims.
		host := slipway.NormalizeHost(r.Host)
		if s.serveDomainChallenge(w, r, host) {
			return
		}
		// The control plane's own names always reach the control plane,
		// whatever the router holds: no tenant can answer for them.
		if s.controlHosts[host] {
			mux.ServeHTTP(w, r)
			return
		}
		// A routed host goes to its release; any other name under the base
		// domain is a Service host with no live release (stopped, never
		// deployed, deleted), answered by the router's "nothing here" page
		// rather than the control plane's own pages.
		if _, _, _, ok := s.Router.Lookup(host); ok || slipway.DomainWithin(host, base) {
			s.Router.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// reserveControlHosts records the names the control plane answers at —
// its public URL's host, the listen address, localhost, 127.0.0.1 and ::1
// — and refuses a base domain equal to or above the public host, where a
// deployed app could set cookies the dashboard reads.
func (s *Server) reserveControlHosts() error {
	u, err := url.Parse(s.cfg.PublicURL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("public URL %q is not an absolute URL", s.cfg.PublicURL)
	}
	s.controlHost = slipway.NormalizeHost(u.Host)
	s.controlHosts = map[string]bool{s.controlHost: true, "localhost": true, "127.0.0.1": true, "::1": true}
	if h := slipway.NormalizeHost(s.listener.Addr().String()); h != "" && !net.ParseIP(h).IsUnspecified() {
		s.controlHosts[h] = true
	}
	base := slipway.NormalizeHost(s.cfg.BaseDomain)
	if base == "" || net.ParseIP(base) != nil {
		return fmt.Errorf("base domain %q must be a DNS name", s.cfg.BaseDomain)
	}
	if net.ParseIP(s.controlHost) == nil && slipway.DomainWithin(s.controlHost, base) {
		return fmt.Errorf("base domain %q is the control plane's host %q or above it: deployed apps could set cookies the dashboard reads; "+
			"use a base domain of its own (for example apps.%s) or serve the control plane from another name", base, s.controlHost, base)
	}
	return nil
}

// serveDomainChallenge answers the HTTP ownership proof of a pending
// custom domain (see service.ChallengePath) and reports whether it did.
func (s *Server) serveDomainChallenge(w http.ResponseWriter, r *http.Request, host string) bool {
	token, ok := strings.CutPrefix(r.URL.Path, service.ChallengePath)
	if !ok || r.Method != http.MethodGet {
		return false
	}
	body, ok := s.Service.ChallengeAnswer(r.Context(), host, token)
	if !ok {
		return false
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(body))
	return true
}

// resolver is the configured DNS server's resolver (nil: the system's).
func resolver(server string) *net.Resolver {
	if server == "" {
		return nil
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
}

// lookupTXT resolves TXT records on the configured DNS server (nil: the
// system resolver).
func lookupTXT(server string) func(ctx context.Context, name string) ([]string, error) {
	if r := resolver(server); r != nil {
		return r.LookupTXT
	}
	return nil
}

// lookupIP resolves A/AAAA records on the configured DNS server (nil: the
// system resolver).
func lookupIP(server string) func(ctx context.Context, host string) ([]net.IPAddr, error) {
	if r := resolver(server); r != nil {
		return r.LookupIPAddr
	}
	return nil
}

func (s *Server) reservedHosts() []string {
	out := make([]string, 0, len(s.controlHosts))
	for h := range s.controlHosts {
		out = append(out, h)
	}
	return out
}

// URL is the server's base URL.
func (s *Server) URL() string { return s.cfg.PublicURL }

// Addr is the listener's address.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// Reconcile runs one reconciliation pass now (tests, and the CLI's doctor).
func (s *Server) Reconcile(ctx context.Context) ([]string, error) { return s.Service.Reconcile(ctx) }

// Shutdown stops accepting requests, lets running jobs finish until ctx
// ends, and closes the store.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready = false
	var errs []error
	if s.http != nil {
		errs = append(errs, s.http.Shutdown(ctx))
	}
	if s.https != nil {
		errs = append(errs, s.https.Shutdown(ctx))
	}
	s.certs.Stop()
	if s.queue != nil {
		errs = append(errs, s.queue.Stop(ctx))
	}
	if sa, ok := s.runtime.(interface{ StopAll(context.Context) error }); ok {
		errs = append(errs, sa.StopAll(ctx))
	}
	s.closeStore()
	return errors.Join(errs...)
}

func (s *Server) closeStore() {
	if s.Store != nil {
		_ = s.Store.Close()
	}
}
