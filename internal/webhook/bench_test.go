package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/gitea"
	"slipway.dev/slipway/internal/jobs"
	"slipway.dev/slipway/internal/secrets"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
	"slipway.dev/slipway/internal/testenv/pgtest"
	"slipway.dev/slipway/internal/webhook"
)

// fixture is a receiver on a real store and a real River queue, with one
// Gitea integration and one repository hook.
type fixture struct {
	svc      *service.Service
	st       *store.Store
	url      string // the hook URL
	secret   string
	body     []byte
	orgID    string
	integID  string
	receiver http.Handler
}

func newFixture(tb testing.TB, databaseURL string) *fixture {
	return newProviderFixture(tb, databaseURL, slipway.ProviderGitea, gitea.New(), "8", "../forge/gitea/testdata/hooks/push.json")
}

func newProviderFixture(tb testing.TB, databaseURL string, provider slipway.Provider, p forge.Provider, repoID, payload string) *fixture {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	logger := slog.New(slog.DiscardHandler)
	st, err := store.Open(ctx, databaseURL, dir, logger)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	if err := jobs.Migrate(ctx, st); err != nil {
		tb.Fatal(err)
	}
	q, err := jobs.New(st, jobs.Handlers{}, jobs.Config{}, logger)
	if err != nil {
		tb.Fatal(err)
	}
	keys, err := secrets.LoadOrCreate(filepath.Join(dir, "master.key"), "")
	if err != nil {
		tb.Fatal(err)
	}
	svc := service.New(st, keys, map[slipway.Provider]forge.Provider{provider: p}, q, service.Config{PublicURL: "http://127.0.0.1"}, logger)
	boot, err := svc.Bootstrap(ctx, "admin@example.com")
	if err != nil {
		tb.Fatal(err)
	}
	body, err := os.ReadFile(payload)
	if err != nil {
		tb.Fatal(err)
	}
	integ := slipway.Integration{ID: slipway.NewID(slipway.PrefixIntegration), OrgID: boot.OrgID, Provider: provider,
		AuthMethod: slipway.AuthToken, BaseURL: "http://127.0.0.1:1", Status: slipway.IntegrationConnected}
	if err := st.CreateIntegration(ctx, &integ, nil); err != nil {
		tb.Fatal(err)
	}
	const secret = "bench-hook-secret"
	sealed, err := keys.Seal([]byte(secret), []byte("hook:"+integ.ID+":"+repoID))
	if err != nil {
		tb.Fatal(err)
	}
	h := store.RepoHook{ID: slipway.NewID(slipway.PrefixHook), OrgID: boot.OrgID, IntegrationID: integ.ID, RepoID: repoID, SecretCiphertext: sealed, Status: "active"}
	if err := st.CreateRepoHook(ctx, &h); err != nil {
		tb.Fatal(err)
	}
	mux := http.NewServeMux()
	webhook.New(svc, logger, nil).Register(mux)
	return &fixture{svc: svc, st: st, url: "/hooks/" + string(provider) + "/" + integ.ID + "?hook=" + h.ID, secret: secret, body: body, orgID: boot.OrgID, integID: integ.ID, receiver: mux}
}

func (f *fixture) request(deliveryID string) *http.Request {
	return f.signed("push", deliveryID, f.body)
}

// floor is the least any receiver must do: verify the signature on the
// raw bytes and make the delivery durable with one insert.
func (f *fixture) floor(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	m := hmac.New(sha256.New, []byte(f.secret))
	m.Write(body)
	got, _ := hex.DecodeString(r.Header.Get("X-Gitea-Signature"))
	if !hmac.Equal(got, m.Sum(nil)) {
		http.Error(w, "bad signature", 401)
		return
	}
	d := store.Delivery{OrgID: f.orgID, IntegrationID: f.integID, ProviderDeliveryID: r.Header.Get("X-Gitea-Delivery"), Event: "push", Body: body}
	if _, err := f.st.InsertDelivery(r.Context(), &d); err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// BenchmarkWebhookIngest measures deliveries per second and acknowledge
// latency (p50/p99) of the real receiver (verify, parse, persist the
// delivery and its job in one transaction), next to the floor measured in
// the same run, on SQLite and on PostgreSQL when SLIPWAY_TEST_POSTGRES_URL
// is set. Four concurrent senders, as a provider's delivery workers would.
func BenchmarkWebhookIngest(b *testing.B) {
	dbs := map[string]func(testing.TB) string{"sqlite": func(testing.TB) string { return "" }}
	if os.Getenv("SLIPWAY_TEST_POSTGRES_URL") != "" {
		dbs["postgres"] = func(tb testing.TB) string { return pgtest.URL(tb) }
	}
	for _, name := range []string{"sqlite", "postgres"} {
		url, ok := dbs[name]
		if !ok {
			continue
		}
		for _, kind := range []string{"floor", "receiver"} {
			b.Run(name+"/"+kind, func(b *testing.B) {
				f := newFixture(b, url(b))
				var handler http.Handler = f.receiver
				if kind == "floor" {
					handler = http.HandlerFunc(f.floor)
				}
				srv := httptest.NewServer(handler)
				defer srv.Close()
				client := srv.Client()
				lat := make([]time.Duration, b.N)
				var next int64
				var mu sync.Mutex
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for w := 0; w < 4; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							mu.Lock()
							i := next
							next++
							mu.Unlock()
							if i >= int64(b.N) {
								return
							}
							req := f.request(fmt.Sprintf("bench-%s-%d-%d", kind, b.N, i))
							req.RequestURI = ""
							u := srv.URL + f.url
							if kind == "floor" {
								u = srv.URL + "/"
							}
							req.URL, _ = req.URL.Parse(u)
							t0 := time.Now()
							resp, err := client.Do(req)
							if err != nil {
								b.Error(err)
								return
							}
							io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							if resp.StatusCode != http.StatusAccepted {
								b.Errorf("status %d", resp.StatusCode)
								return
							}
							lat[i] = time.Since(t0)
						}
					}()
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			})
		}
	}
}

// TestReceiverPersistsBeforeAck checks the receiver's contract at the
// HTTP level: an acknowledged delivery is stored with its job, a re-sent
// one is a duplicate, a bad signature is 401 and stores nothing.
func TestReceiverPersistsBeforeAck(t *testing.T) {
	f := newFixture(t, "")
	ctx := context.Background()
	rec := httptest.NewRecorder()
	f.receiver.ServeHTTP(rec, f.request("d-1"))
	if rec.Code != http.StatusAccepted || !strings.Contains(rec.Body.String(), `"verdict":"received"`) {
		t.Fatalf("first delivery: %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	f.receiver.ServeHTTP(rec, f.request("d-1"))
	if rec.Code != http.StatusAccepted || !strings.Contains(rec.Body.String(), `"duplicate":true`) {
		t.Fatalf("same delivery again: %d %s", rec.Code, rec.Body)
	}
	bad := f.request("d-2")
	bad.Header.Set("X-Gitea-Signature", strings.Repeat("0", 64))
	rec = httptest.NewRecorder()
	f.receiver.ServeHTTP(rec, bad)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d %s", rec.Code, rec.Body)
	}
	ds, total, err := f.st.ListDeliveries(ctx, f.orgID, f.integID, store.Page{})
	if err != nil || total != 1 || len(ds[0].Normalized) == 0 {
		t.Fatalf("stored deliveries: %d (%v); want exactly the one good delivery with its event", total, err)
	}
	n, err := f.st.BadSignatures(ctx, f.orgID, f.integID)
	if err != nil || n != 1 {
		t.Fatalf("bad signature counter = %d, %v", n, err)
	}
	var jobs int
	if err := f.st.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM river_job WHERE kind = 'process_delivery'`).Scan(&jobs); err != nil || jobs != 1 {
		t.Fatalf("process_delivery jobs = %d, %v; want 1", jobs, err)
	}
	big := httptest.NewRequest("POST", f.url, strings.NewReader(strings.Repeat("x", webhook.MaxBody+1)))
	rec = httptest.NewRecorder()
	f.receiver.ServeHTTP(rec, big)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversize delivery: %d", rec.Code)
	}
}
