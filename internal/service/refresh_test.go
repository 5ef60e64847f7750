package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/netpolicy"
	"slipway.dev/slipway/internal/secrets"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
)

// rotatingTokenServer is an OAuth token endpoint that rotates refresh
// tokens and refuses a spent one with invalid_grant, as Gitea and GitLab
// do. It counts refresh requests.
type rotatingTokenServer struct {
	mu       sync.Mutex
	live     string // the one refresh token it accepts
	n        int    // refresh tokens issued
	requests int
	refused  int
}

func (ts *rotatingTokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	// Answer slowly, so the replicas' calls overlap.
	time.Sleep(200 * time.Millisecond)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.requests++
	if r.PostForm.Get("grant_type") != "refresh_token" || r.PostForm.Get("refresh_token") != ts.live {
		ts.refused++
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"invalid_grant","error_description":"refresh token already used"}`)
		return
	}
	ts.n++
	ts.live = fmt.Sprintf("refresh-%d", ts.n)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("access-%d", ts.n), "token_type": "bearer",
		"refresh_token": ts.live, "expires_in": 3600})
}

// oauthOnly is a provider whose OAuth endpoint is the fake's.
type oauthOnly struct{ tokenURL string }

func (oauthOnly) Kind() slipway.Provider { return slipway.ProviderGitea }
func (p oauthOnly) OAuthEndpoint(string) oauth2.Endpoint {
	return oauth2.Endpoint{TokenURL: p.tokenURL, AuthStyle: oauth2.AuthStyleInParams}
}
func (oauthOnly) OAuthScopes() []string { return nil }

// refreshRace sets up two Service instances (two replicas, each with its
// own store handle) on one database, an OAuth integration whose access
// token expired and whose refresh token is "refresh-0", and a token
// endpoint whose one live refresh token is live; four callers, two per
// replica, then need a token at once.
type refreshRace struct {
	tokens   []string
	errs     []error
	requests int
	refused  int
	live     string
	status   slipway.IntegrationStatus
}

func runRefreshRace(t *testing.T, databaseURL, live string) refreshRace {
	t.Helper()
	ctx := context.Background()
	fake := &rotatingTokenServer{live: live}
	provider := httptest.NewServer(fake)
	defer provider.Close()
	forges := map[slipway.Provider]forge.Provider{slipway.ProviderGitea: oauthOnly{tokenURL: provider.URL + "/login/oauth/access_token"}}

	dir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	replica := func() *service.Service {
		st, err := store.Open(ctx, databaseURL, dir, logger)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		keys, err := secrets.LoadOrCreate(filepath.Join(dir, "master.key"), "")
		if err != nil {
			t.Fatal(err)
		}
		return service.New(st, keys, forges, &recordingJobs{}, service.Config{PublicURL: "http://127.0.0.1", BaseDomain: "localhost", Network: netpolicy.Policy{AllowPrivate: true}}, logger)
	}
	one, two := replica(), replica()
	boot, err := one.Bootstrap(ctx, "admin@example.test")
	if err != nil {
		t.Fatal(err)
	}
	integ := slipway.Integration{ID: slipway.NewID(slipway.PrefixIntegration), OrgID: boot.OrgID, Provider: slipway.ProviderGitea, Label: "gitea",
		AuthMethod: slipway.AuthOAuth, BaseURL: provider.URL, Status: slipway.IntegrationConnected}
	if err := one.SeedIntegration(ctx, &integ, forge.Secret{Token: "access-0", RefreshToken: "refresh-0", Expiry: time.Now().Add(-time.Minute),
		ClientID: "client", ClientSecret: "client-secret"}); err != nil {
		t.Fatal(err)
	}
	r := refreshRace{tokens: make([]string, 4), errs: make([]error, 4)}
	var wg sync.WaitGroup
	for i := range r.tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := one
			if i%2 == 1 {
				s = two
			}
			r.tokens[i], r.errs[i] = s.OAuthToken(ctx, integ)
		}()
	}
	wg.Wait()
	fake.mu.Lock()
	r.requests, r.refused, r.live = fake.requests, fake.refused, fake.live
	fake.mu.Unlock()
	after, err := one.Store().GetIntegration(ctx, boot.OrgID, integ.ID)
	if err != nil {
		t.Fatal(err)
	}
	r.status = after.Status
	return r
}

// TestRefreshTokenRotationAcrossReplicas: exactly one refresh reaches the
// provider, every caller gets its access token, the rotated refresh token
// is the one kept, and the integration stays connected. Before the claim,
// both replicas spent the same refresh token; the provider refused the
// second and the integration turned "needs attention".
func TestRefreshTokenRotationAcrossReplicas(t *testing.T) {
	stores(t, func(t *testing.T, databaseURL string) {
		r := runRefreshRace(t, databaseURL, "refresh-0")
		for i := range r.tokens {
			if r.errs[i] != nil || r.tokens[i] != "access-1" {
				t.Errorf("caller %d: token %q, err %v; want access-1", i, r.tokens[i], r.errs[i])
			}
		}
		if r.requests != 1 || r.refused != 0 {
			t.Errorf("the provider saw %d refresh requests (%d refused), want exactly 1", r.requests, r.refused)
		}
		if r.status != slipway.IntegrationConnected {
			t.Errorf("integration is %q, want connected", r.status)
		}
		if r.live != "refresh-1" {
			t.Errorf("provider's live refresh token %q, want the rotated one", r.live)
		}
	})
}

// TestRevokedGrantIsAskedOnce: when the provider refuses the refresh token
// (the grant was revoked), the replica that waited for the refresh learns
// it from the database instead of spending the token again.
func TestRevokedGrantIsAskedOnce(t *testing.T) {
	stores(t, func(t *testing.T, databaseURL string) {
		r := runRefreshRace(t, databaseURL, "revoked")
		for i := range r.tokens {
			if slipway.ErrorCodeOf(r.errs[i]) != slipway.ECodeCredentialsInvalid {
				t.Errorf("caller %d: token %q, err %v; want credentials_invalid", i, r.tokens[i], r.errs[i])
			}
		}
		if r.requests != 1 {
			t.Errorf("the provider saw %d refresh requests, want 1", r.requests)
		}
		if r.status != slipway.IntegrationNeedsAttention {
			t.Errorf("integration is %q, want needs_attention", r.status)
		}
	})
}
