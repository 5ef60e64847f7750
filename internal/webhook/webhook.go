// Package webhook receives provider webhooks and deploy-hook calls. A
// delivery goes through: integration and hook resolved from the URL →
// per-source limit on unverified traffic → size cap (a Content-Length over
// it is refused unread) → signature verified on the raw bytes → persisted
// (deduplicated on the provider's delivery id) with its job in the same
// transaction → 2xx. No work happens in the request, so the provider gets a
// fast answer and an acknowledged delivery is never lost.
package webhook

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/httpapi"
	"slipway.dev/slipway/internal/service"
)

// MaxBody is the largest delivery accepted. GitHub caps payloads at 25 MB;
// push payloads that large are truncated lists of commits Slipway does not
// need, and anything bigger is refused with 413 before it is read whole.
const MaxBody = 25 << 20

// Receiver handles /hooks/... routes.
type Receiver struct {
	svc        *service.Service
	log        *slog.Logger
	deliveries *prometheus.CounterVec
	limits     *limits
}

// New builds a receiver with the default Limits and registers its metrics
// on reg.
func New(svc *service.Service, logger *slog.Logger, reg prometheus.Registerer) *Receiver {
	return NewWithLimits(svc, logger, reg, Limits{})
}

// NewWithLimits builds a receiver with the given rate limits.
func NewWithLimits(svc *service.Service, logger *slog.Logger, reg prometheus.Registerer, l Limits) *Receiver {
	r := &Receiver{svc: svc, log: logger, limits: newLimits(l),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_webhook_deliveries_total",
			Help: "Webhook deliveries received, by provider and outcome.",
		}, []string{"provider", "outcome"})}
	if reg != nil {
		reg.MustRegister(r.deliveries)
	}
	return r
}

// Register mounts the receiver routes.
func (rc *Receiver) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /hooks/deploy/{token}", rc.deployHook)
	mux.HandleFunc("POST /hooks/{provider}/{integration}", rc.delivery)
}

func (rc *Receiver) delivery(w http.ResponseWriter, r *http.Request) {
	provider := slipway.Provider(r.PathValue("provider"))
	source := rc.limits.sources.Of(r)
	// A source that keeps sending unverifiable requests waits, before
	// anything is looked up or read.
	if wait, ok := rc.limits.unverifiedSource(source); !ok {
		rc.refuse(w, provider, "rate_limited", wait, slipway.Errorf(slipway.ECodeRateLimited, "too many unverified webhook requests from this address"))
		return
	}
	target, err := rc.svc.ResolveHook(r.Context(), provider, r.PathValue("integration"), r.URL.Query().Get("hook"), source)
	if err != nil {
		if slipway.ErrorCodeOf(err) == slipway.ECodeBadSignature {
			rc.limits.spendUnverified(source, "")
		}
		rc.fail(w, provider, err)
		return
	}
	if r.ContentLength > MaxBody {
		// Refused unread: the declared size is enough to say no.
		rc.deliveries.WithLabelValues(string(provider), "too_large").Inc()
		w.Header().Set("Connection", "close")
		httpapi.WriteError(w, rc.log, slipway.Errorf(slipway.ECodeTooLarge, "delivery larger than %d bytes", MaxBody))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		rc.deliveries.WithLabelValues(string(provider), "too_large").Inc()
		httpapi.WriteError(w, rc.log, slipway.Errorf(slipway.ECodeTooLarge, "delivery larger than %d bytes", MaxBody))
		return
	}
	// Verified traffic only meets a high ceiling per integration: checked
	// before anything is stored, so a refused delivery leaves no row.
	if wait, ok := rc.limits.verifiedLeft(target.IntegrationID()); !ok {
		rc.refuse(w, provider, "rate_limited", wait, slipway.Errorf(slipway.ECodeRateLimited, "this integration receives more deliveries than the installation's ceiling"))
		return
	}
	hookLeft := rc.limits.unverifiedHookLeft(target.Key())
	res, err := rc.svc.AcceptDelivery(r.Context(), target, source, r.Header, body, hookLeft)
	if slipway.ErrorCodeOf(err) == slipway.ECodeBadSignature {
		rc.limits.spendUnverified(source, target.Key())
		if !hookLeft {
			rc.refuse(w, provider, "rate_limited", rc.limits.hookWait(target.Key()), slipway.Errorf(slipway.ECodeRateLimited, "too many unverified webhook requests for this hook"))
			return
		}
	}
	if err == nil {
		rc.limits.spendVerified(target.IntegrationID())
	}
	if err != nil {
		outcome := string(slipway.ErrorCodeOf(err))
		if provider.Valid() {
			rc.deliveries.WithLabelValues(string(provider), outcome).Inc()
		}
		httpapi.WriteError(w, rc.log, err)
		return
	}
	outcome := res.Verdict
	if res.Duplicate {
		outcome = "duplicate"
	}
	rc.deliveries.WithLabelValues(string(provider), outcome).Inc()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(res)
}

func (rc *Receiver) fail(w http.ResponseWriter, provider slipway.Provider, err error) {
	if provider.Valid() {
		rc.deliveries.WithLabelValues(string(provider), string(slipway.ErrorCodeOf(err))).Inc()
	}
	httpapi.WriteError(w, rc.log, err)
}

func (rc *Receiver) refuse(w http.ResponseWriter, provider slipway.Provider, outcome string, wait time.Duration, err error) {
	secs := int(wait.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	if provider.Valid() {
		rc.deliveries.WithLabelValues(string(provider), outcome).Inc()
	}
	httpapi.WriteError(w, rc.log, err)
}

func (rc *Receiver) deployHook(w http.ResponseWriter, r *http.Request) {
	d, err := rc.svc.TriggerDeployHook(r.Context(), r.PathValue("token"))
	if err != nil {
		httpapi.WriteError(w, rc.log, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]string{"deployment_id": d.ID, "commit_sha": d.CommitSHA, "status": string(d.Status)})
}
