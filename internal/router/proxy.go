package router

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// serve applies the owner's settings and proxies req to b.
func (r *Router) serve(w http.ResponseWriter, req *http.Request, b *backend) {
	start := time.Now()
	settings := r.settingsOf(b.owner)
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	defer func() { r.metrics.observe(b.owner, rec.status, time.Since(start)) }()
	if settings.HSTS && r.servedOverTLS(req) {
		rec.Header().Set("Strict-Transport-Security", HSTSValue)
	}
	if req.ContentLength > settings.MaxBodyBytes {
		writeTooLarge(rec, req, settings.MaxBodyBytes)
		return
	}
	if req.Body != nil && req.Body != http.NoBody {
		// A body without a Content-Length (or lying about it) is cut at
		// the limit; the transport then fails with *http.MaxBytesError.
		req.Body = http.MaxBytesReader(rec, req.Body, settings.MaxBodyBytes)
	}
	b.proxy.ServeHTTP(rec, req)
}

// servedOverTLS: the request reached this process over TLS, or a trusted
// proxy in front says the client used https.
func (r *Router) servedOverTLS(req *http.Request) bool {
	if req.TLS != nil {
		return true
	}
	return r.opts.TrustedProxies.TrustsPeer(req) && req.Header.Get("X-Forwarded-Proto") == "https"
}

// setForwarded writes X-Forwarded-For/-Host/-Proto on the outbound
// request. The reverse proxy has already dropped the inbound ones; they
// are carried over only from a trusted proxy (its For list is appended
// to, its Host and Proto kept). From anyone else the app sees Slipway's
// values alone.
func (r *Router) setForwarded(pr *httputil.ProxyRequest) {
	trusted := r.opts.TrustedProxies.TrustsPeer(pr.In)
	if trusted {
		if xff, ok := pr.In.Header["X-Forwarded-For"]; ok {
			pr.Out.Header["X-Forwarded-For"] = append([]string(nil), xff...)
		}
	}
	pr.SetXForwarded()
	if !trusted {
		return
	}
	if h := pr.In.Header.Get("X-Forwarded-Host"); h != "" {
		pr.Out.Header.Set("X-Forwarded-Host", h)
	}
	if p := pr.In.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
		pr.Out.Header.Set("X-Forwarded-Proto", p)
	}
}

func writeTooLarge(w http.ResponseWriter, req *http.Request, limit int64) {
	writeProblem(w, req, http.StatusRequestEntityTooLarge, "Request body too large",
		fmt.Sprintf("This service accepts request bodies up to %d MB (the Service's max_body_mb setting).", limit>>20))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// statusRecorder remembers the status for the metrics. Unwrap lets the
// reverse proxy reach the connection for upgrades (WebSockets) and
// flushes through http.ResponseController.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// metrics are the router's per-Service request counter and latency
// histogram; nil records nothing.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_router_requests_total", Help: "Requests proxied to Services, by Service id and status code.",
		}, []string{"service", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "slipway_router_request_duration_seconds", Help: "Time to serve a proxied request, by Service id.",
			Buckets: prometheus.DefBuckets,
		}, []string{"service"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

func (m *metrics) observe(service string, status int, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(service, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(service).Observe(d.Seconds())
}
