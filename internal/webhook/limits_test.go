package webhook_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/testenv/pgtest"
	"slipway.dev/slipway/internal/webhook"
)

// countingBody counts what a handler reads of a request body.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// zeros is an endless body that counts what the client sent.
type zeros struct{ sent atomic.Int64 }

func (z *zeros) Read(p []byte) (int, error) {
	clear(p)
	z.sent.Add(int64(len(p)))
	return len(p), nil
}

// TestOversizeDeliveryRefusedUnread sends a 30 MB delivery with its
// Content-Length over real HTTP: the receiver answers 413 without reading
// any of it.
func TestOversizeDeliveryRefusedUnread(t *testing.T) {
	f := newFixture(t, "")
	var read atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = countingBody{r.Body, &read}
		f.receiver.ServeHTTP(w, r)
	}))
	defer srv.Close()
	const size = 30 << 20
	// A raw connection: the headers announce 30 MB, then the sender
	// streams it while reading the answer, as a hostile sender would.
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nX-Gitea-Event: push\r\nContent-Length: %d\r\n\r\n", f.url, size)
	body := &zeros{}
	go io.Copy(conn, io.LimitReader(body, size))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
	t.Logf("30 MB delivery with Content-Length: %d bytes read by the receiver (the sender had pushed %d bytes into the socket when the answer came)", read.Load(), body.sent.Load())
	if read.Load() != 0 {
		t.Fatalf("the receiver read %d bytes of a delivery it refused by its Content-Length", read.Load())
	}
	// Unknown integrations are refused before reading as well.
	read.Store(0)
	req, _ := http.NewRequest("POST", srv.URL+"/hooks/gitea/int_nope?hook=x", strings.NewReader(strings.Repeat("x", 1<<20)))
	resp, err = srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || read.Load() != 0 {
		t.Fatalf("unknown integration: %d after reading %d bytes", resp.StatusCode, read.Load())
	}
}

func (f *fixture) signed(event, deliveryID string, body []byte) *http.Request {
	req := httptest.NewRequest("POST", f.url, bytes.NewReader(body))
	req.Header.Set("X-Gitea-Event", event)
	req.Header.Set("X-Gitea-Delivery", deliveryID)
	m := hmac.New(sha256.New, []byte(f.secret))
	m.Write(body)
	req.Header.Set("X-Gitea-Signature", hex.EncodeToString(m.Sum(nil)))
	return req
}

// TestIgnoredDeliveriesKeepNoBodyAndRetentionPrunes: 10,000 ignored
// deliveries (2 KB each) leave headers and verdicts but no body; the
// retention policy then keeps the newest N per integration and drops
// everything older than its age.
func TestIgnoredDeliveriesKeepNoBodyAndRetentionPrunes(t *testing.T) {
	f := newFixture(t, "")
	ctx := context.Background()
	body := []byte(`{"zen":"` + strings.Repeat("z", 2048) + `"}`)
	const n = 10000
	start := time.Now()
	for i := 0; i < n; i++ {
		req := f.signed("ping", fmt.Sprintf("ping-%d", i), body)
		res, err := f.svc.ReceiveDelivery(ctx, slipway.ProviderGitea, f.integID, req.URL.Query().Get("hook"), req.Header, body)
		if err != nil || res.Verdict != service.VerdictIgnored {
			t.Fatalf("ping %d: %+v, %v", i, res, err)
		}
	}
	t.Logf("%d ignored deliveries in %s", n, time.Since(start).Round(time.Millisecond))
	var rows, withBody int
	var bodyBytes int64
	db := f.st.DB()
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN length(body) > 0 THEN 1 ELSE 0 END), 0), COALESCE(SUM(length(body)), 0) FROM deliveries`).Scan(&rows, &withBody, &bodyBytes); err != nil {
		t.Fatal(err)
	}
	if rows != n || withBody != 0 || bodyBytes != 0 {
		t.Fatalf("%d rows, %d with a body (%d bytes); want %d rows and no bodies", rows, withBody, bodyBytes, n)
	}
	d, err := f.st.GetDelivery(ctx, f.orgID, mustFirstID(t, f))
	if err != nil || d.Headers["X-Gitea-Event"] != "ping" || d.Verdict != service.VerdictIgnored {
		t.Fatalf("ignored delivery lost its headers or verdict: %+v, %v", d, err)
	}

	// Count: keep the newest 100.
	if _, err := f.st.PruneDeliveries(ctx, time.Now().Add(-time.Hour), 100); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM deliveries`).Scan(&rows); err != nil || rows != 100 {
		t.Fatalf("after pruning to 100: %d rows, %v", rows, err)
	}
	// A delivery still waiting to be processed is never pruned.
	if _, err := f.svc.ReceiveDelivery(ctx, slipway.ProviderGitea, f.integID, hookOf(f), f.request("push-1").Header, f.body); err != nil {
		t.Fatal(err)
	}
	// Age: through the service, with the clock moved past the default age.
	f.svc.SetClock(func() time.Time { return time.Now().Add(service.DefaultDeliveryMaxAge + time.Hour) })
	if err := f.svc.PruneDeliveries(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM deliveries`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("after the age limit: %d rows, %v; want only the unprocessed push", rows, err)
	}
}

func hookOf(f *fixture) string { return f.url[strings.Index(f.url, "hook=")+len("hook="):] }

func mustFirstID(t *testing.T, f *fixture) string {
	t.Helper()
	var id string
	if err := f.st.DB().QueryRow(`SELECT id FROM deliveries LIMIT 1`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

func (f *fixture) withLimits(l webhook.Limits) http.Handler {
	mux := http.NewServeMux()
	webhook.NewWithLimits(f.svc, slog.New(slog.DiscardHandler), nil, l).Register(mux)
	return mux
}

func serve(h http.Handler, req *http.Request, source string) *httptest.ResponseRecorder {
	req.RemoteAddr = source + ":40000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestUnverifiedTrafficIsRateLimited: forged requests from one source get
// 429 with Retry-After once its budget is spent; forged requests for one
// hook from many sources stop costing database writes; a verified
// delivery from another source still goes through; the refusal log keeps
// time, source and reason only.
func TestUnverifiedTrafficIsRateLimited(t *testing.T) {
	f := newFixture(t, "")
	ctx := context.Background()
	h := f.withLimits(webhook.Limits{UnverifiedPerSource: 0.001, UnverifiedPerHook: 0.001, UnverifiedBurst: 3})
	forged := func(id string) *http.Request {
		r := f.request(id)
		r.Header.Set("X-Gitea-Signature", strings.Repeat("0", 64))
		return r
	}
	for i := 0; i < 3; i++ {
		if rec := serve(h, forged(fmt.Sprint("f", i)), "203.0.113.7"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("forged %d: %d", i, rec.Code)
		}
	}
	rec := serve(h, forged("f3"), "203.0.113.7")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("forged request past the source's budget: %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	// The hook's budget was spent by the same three: forged requests from
	// fresh sources are 429 and no longer counted durably.
	before, _ := f.st.BadSignatures(ctx, f.orgID, f.integID)
	for i := 0; i < 5; i++ {
		if rec := serve(h, forged(fmt.Sprint("g", i)), fmt.Sprintf("198.51.100.%d", i+1)); rec.Code != http.StatusTooManyRequests {
			t.Fatalf("forged request past the hook's budget: %d", rec.Code)
		}
	}
	after, _ := f.st.BadSignatures(ctx, f.orgID, f.integID)
	if before != 3 || after != before {
		t.Fatalf("bad-signature counter %d then %d; want 3 and no more writes while the hook is limited", before, after)
	}
	// The real provider, from its own address, is not affected.
	if rec := serve(h, f.request("good-1"), "192.0.2.10"); rec.Code != http.StatusAccepted {
		t.Fatalf("verified delivery during a flood: %d %s", rec.Code, rec.Body)
	}
	rep, err := f.svc.WebhookRefusals(ctx, service.System(f.orgID, "test"), f.integID)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total != 8 || len(rep.Recent) != 8 || rep.Recent[0].Source != "198.51.100.5" || rep.Recent[0].Reason == "" || rep.PerHook[hookOf(f)] != 8 {
		t.Fatalf("refusal report: %+v", rep)
	}
	// Another organisation cannot read it.
	if _, err := f.svc.WebhookRefusals(ctx, service.System("org_other", "test"), f.integID); slipway.ErrorCodeOf(err) != slipway.ECodeNotFound {
		t.Fatalf("refusals across organisations: %v", err)
	}
}

// TestVerifiedCeiling: verified deliveries meet only the integration's
// ceiling, refused before anything is stored.
func TestVerifiedCeiling(t *testing.T) {
	f := newFixture(t, "")
	h := f.withLimits(webhook.Limits{VerifiedPerIntegration: 0.001, VerifiedBurst: 2})
	for i := 0; i < 2; i++ {
		if rec := serve(h, f.request(fmt.Sprint("v", i)), "192.0.2.10"); rec.Code != http.StatusAccepted {
			t.Fatalf("verified %d: %d", i, rec.Code)
		}
	}
	rec := serve(h, f.request("v2"), "192.0.2.10")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("past the ceiling: %d", rec.Code)
	}
	var rows int
	if err := f.st.DB().QueryRow(`SELECT COUNT(*) FROM deliveries`).Scan(&rows); err != nil || rows != 2 {
		t.Fatalf("%d deliveries stored; want 2 (nothing for the refused one)", rows)
	}
}

// TestRetentionOnPostgres runs the pruning queries on PostgreSQL too.
func TestRetentionOnPostgres(t *testing.T) {
	if os.Getenv("SLIPWAY_TEST_POSTGRES_URL") == "" {
		t.Skip("SLIPWAY_TEST_POSTGRES_URL not set")
	}
	f := newFixture(t, pgtest.URL(t))
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		req := f.signed("ping", fmt.Sprintf("pg-ping-%d", i), []byte(`{}`))
		if _, err := f.svc.ReceiveDelivery(ctx, slipway.ProviderGitea, f.integID, hookOf(f), req.Header, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := f.st.PruneDeliveries(ctx, time.Now().Add(-time.Hour), 2); err != nil || n != 3 {
		t.Fatalf("pruned %d, %v; want 3", n, err)
	}
	if n, err := f.st.PruneDeliveries(ctx, time.Now().Add(time.Hour), 0); err != nil || n != 2 {
		t.Fatalf("pruned by age %d, %v; want 2", n, err)
	}
}
