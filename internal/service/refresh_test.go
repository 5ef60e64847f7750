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

// TestRefreshTokenRotationAcrossReplicas: two Service instances (two
// replicas, each with its own store handle) on one database need the same
// expired token at once. Exactly one refresh reaches the provider, both
// get its access token, the rotated refresh token is the one stored, and
// the integration stays connected. Before the claim, both spent the same
// refresh token; the provider refused the second and the integration
// turned "needs attention".
func TestRefreshTokenRotationAcrossReplicas(t *testing.T) {
	stores(t, func(t *testing.T, databaseURL string) {
		ctx := context.Background()
		fake := &rotatingTokenServer{live: "refresh-0"}
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
			return service.New(st, keys, forges, &recordingJobs{}, service.Config{PublicURL: "http://127.0.0.1", BaseDomain: "localhost"}, logger)
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

		var wg sync.WaitGroup
		got := make([]string, 4)
		errs := make([]error, 4)
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := one
				if i%2 == 1 {
					s = two
				}
				got[i], errs[i] = s.OAuthToken(ctx, integ)
			}()
		}
		wg.Wait()
		for i := range got {
			if errs[i] != nil || got[i] != "access-1" {
				t.Errorf("caller %d: token %q, err %v; want access-1", i, got[i], errs[i])
			}
		}
		fake.mu.Lock()
		requests, refused, live := fake.requests, fake.refused, fake.live
		fake.mu.Unlock()
		if requests != 1 || refused != 0 {
			t.Errorf("the provider saw %d refresh requests (%d refused), want exactly 1", requests, refused)
		}
		after, err := one.Store().GetIntegration(ctx, boot.OrgID, integ.ID)
		if err != nil {
			t.Fatal(err)
		}
		if after.Status != slipway.IntegrationConnected {
			t.Errorf("integration is %q (%s), want connected", after.Status, after.StatusReason)
		}
		// The stored refresh token is the rotated one: a later refresh by
		// either replica is accepted.
		if live != "refresh-1" {
			t.Fatalf("provider's live refresh token %q", live)
		}
	})
}
