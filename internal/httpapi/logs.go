package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
)

// logPollInterval is how often a live log stream looks for new lines.
// Lines are durable rows, so a stream survives a server restart and works
// across replicas: any replica can serve any deployment's stream.
const logPollInterval = 250 * time.Millisecond

// deploymentLogs answers with the stored lines after ?after=SEQ, or, when
// the client accepts text/event-stream, streams lines and status changes
// as Server-Sent Events until the deployment settles.
func (api *API) deploymentLogs(w http.ResponseWriter, r *http.Request, a service.Actor) error {
	after, err := queryInt64(r, "after")
	if err != nil {
		return err
	}
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		fmt.Sscan(id, &after)
	}
	id := r.PathValue("dep")
	d, err := api.svc.GetDeployment(r.Context(), a, id)
	if err != nil {
		return err
	}
	if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		lines, err := api.svc.DeploymentLogs(r.Context(), a, id, after, 1000)
		return respond(w, 200, listOf(lines, len(lines), store.Page{Limit: 1000}), err)
	}
	return StreamLogs(w, r, api.svc, a, d)
}

// StreamLogs writes a deployment's log as Server-Sent Events: "log" events
// (id = sequence number, data = the line as JSON), "status" events when the
// status changes, and a final "end" event when the deployment has settled
// and every line was sent. The dashboard uses it too.
func StreamLogs(w http.ResponseWriter, r *http.Request, svc *service.Service, a service.Actor, d slipway.Deployment) error {
	flusher, ok := w.(http.Flusher)
	if !ok {
		return slipway.Errorf(slipway.ECodeInternal, "streaming unsupported")
	}
	var after int64
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		fmt.Sscan(id, &after)
	}
	if v := r.URL.Query().Get("after"); v != "" {
		fmt.Sscan(v, &after)
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ctx := r.Context()
	lastStatus := slipway.DeploymentStatus("")
	send := func(event, id string, v any) {
		b, _ := json.Marshal(v)
		if id != "" {
			fmt.Fprintf(w, "id: %s\n", id)
		}
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
	}
	ticker := time.NewTicker(logPollInterval)
	defer ticker.Stop()
	for {
		lines, err := svc.DeploymentLogs(ctx, a, d.ID, after, 500)
		if err != nil {
			return nil // the client is gone or the deployment vanished; the stream just ends
		}
		for _, l := range lines {
			send("log", fmt.Sprint(l.Seq), l)
			after = l.Seq
		}
		cur, err := svc.GetDeployment(ctx, a, d.ID)
		if err != nil {
			return nil
		}
		if cur.Status != lastStatus {
			send("status", "", cur)
			lastStatus = cur.Status
		}
		flusher.Flush()
		if len(lines) == 0 && (cur.Status.Terminal() || cur.Status == slipway.DeployLive) {
			send("end", "", map[string]string{"status": string(cur.Status)})
			flusher.Flush()
			return nil
		}
		if len(lines) < 500 {
			select {
			case <-ctx.Done():
				return nil
			case <-ticker.C:
			}
		}
	}
}
