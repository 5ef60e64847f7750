// Package webhook receives provider webhooks and deploy-hook calls. A
// delivery goes through: size cap → signature verified on the raw bytes →
// persisted (deduplicated on the provider's delivery id) with its job in
// the same transaction → 2xx. No work happens in the request, so the
// provider gets a fast answer and an acknowledged delivery is never lost.
package webhook

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"

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
}

// New builds a receiver and registers its metrics on reg.
func New(svc *service.Service, logger *slog.Logger, reg prometheus.Registerer) *Receiver {
	r := &Receiver{svc: svc, log: logger,
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
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		rc.deliveries.WithLabelValues(string(provider), "too_large").Inc()
		httpapi.WriteError(w, rc.log, slipway.Errorf(slipway.ECodeTooLarge, "delivery larger than %d bytes", MaxBody))
		return
	}
	res, err := rc.svc.ReceiveDelivery(r.Context(), provider, r.PathValue("integration"), r.URL.Query().Get("hook"), r.Header, body)
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
