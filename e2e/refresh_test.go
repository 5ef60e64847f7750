package e2e

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/gitea"
	"slipway.dev/slipway/internal/netpolicy"
	"slipway.dev/slipway/internal/secrets"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
	"slipway.dev/slipway/internal/testenv/giteatest"
	"slipway.dev/slipway/internal/testenv/pgtest"
)

// TestGiteaRefreshTokenRotationAcrossReplicas: the real Gitea rotates
// refresh tokens and refuses a spent one (INVALIDATE_REFRESH_TOKENS). Two
// replicas on one database check the integration at once while its access
// token is expired: exactly one token request reaches Gitea, every check
// passes, and the integration stays connected. Then the original refresh
// token is shown to be refused by Gitea, so a second refresh would have
// failed the check.
func TestGiteaRefreshTokenRotationAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	g := giteatest.Shared(t)
	user := giteatest.UniqueName("rita")
	pass := g.CreateUser(t, user)
	redirect := "http://127.0.0.1:1/integrations/oauth/callback"
	clientID, clientSecret := g.CreateOAuthApp(t, user, pass, giteatest.UniqueName("refresh"), redirect)
	cfg := oauth2.Config{ClientID: clientID, ClientSecret: clientSecret, RedirectURL: redirect, Endpoint: gitea.New().OAuthEndpoint(g.URL())}

	for _, dialect := range []string{store.DialectSQLite, store.DialectPostgres} {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			databaseURL := ""
			if dialect == store.DialectPostgres {
				databaseURL = pgtest.URL(t)
			}
			back := g.Consent(t, user, pass, cfg.AuthCodeURL("state-"+dialect))
			first, err := cfg.Exchange(ctx, back.Query().Get("code"))
			if err != nil || first.RefreshToken == "" {
				t.Fatalf("exchange the consent's code: %v", err)
			}

			// Server-to-server calls go through a counting proxy (the
			// integration's internal URL), so token requests are counted.
			var tokenRequests atomic.Int32
			target, _ := url.Parse(g.URL())
			rp := httputil.NewSingleHostReverseProxy(target)
			proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/login/oauth/access_token" {
					tokenRequests.Add(1)
				}
				rp.ServeHTTP(w, r)
			}))
			defer proxy.Close()

			dataDir := t.TempDir()
			logger := slog.New(slog.NewTextHandler(newLogWriter(t), &slog.HandlerOptions{Level: slog.LevelWarn}))
			forges := map[slipway.Provider]forge.Provider{slipway.ProviderGitea: gitea.New()}
			replica := func() (*service.Service, *secrets.Keyring) {
				keys, err := secrets.LoadOrCreate(filepath.Join(dataDir, "master.key"), "")
				if err != nil {
					t.Fatal(err)
				}
				st, err := store.Open(ctx, databaseURL, dataDir, logger)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				return service.New(st, keys, forges, nil, service.Config{PublicURL: "http://127.0.0.1:1", BaseDomain: "localhost",
					Network: netpolicy.Policy{AllowPrivate: true}}, logger), keys // the test Gitea is on loopback
			}
			one, keys := replica()
			two, _ := replica()
			boot, err := one.Bootstrap(ctx, "admin@example.test")
			if err != nil {
				t.Fatal(err)
			}

			// The integration as an OAuth connect leaves it, with its access
			// token already expired.
			integ := slipway.Integration{ID: slipway.NewID(slipway.PrefixIntegration), OrgID: boot.OrgID, Provider: slipway.ProviderGitea,
				Label: "gitea oauth", AuthMethod: slipway.AuthOAuth, BaseURL: g.URL(), InternalURL: proxy.URL, AccountName: user,
				Status: slipway.IntegrationConnected, Settings: map[string]string{}}
			raw, _ := json.Marshal(forge.Secret{Token: first.AccessToken, RefreshToken: first.RefreshToken, Expiry: time.Now().Add(-time.Minute),
				ClientID: clientID, ClientSecret: clientSecret})
			sealed, err := keys.Seal(raw, []byte("integration:"+integ.ID)) // the service's binding of a credential to its row
			if err != nil {
				t.Fatal(err)
			}
			if err := one.Store().CreateIntegration(ctx, &integ, sealed); err != nil {
				t.Fatal(err)
			}

			var wg sync.WaitGroup
			results := make([]service.Diagnosis, 4)
			errs := make([]error, 4)
			for i := range results {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s := one
					if i%2 == 1 {
						s = two
					}
					a, err := s.ActorFor(ctx, boot.OrgID, boot.UserID)
					if err != nil {
						errs[i] = err
						return
					}
					results[i], errs[i] = s.CheckIntegration(ctx, a, integ.ID)
				}()
			}
			wg.Wait()
			for i := range results {
				if errs[i] != nil || len(results[i].Problems) != 0 {
					t.Errorf("check %d: problems %+v, err %v", i, results[i].Problems, errs[i])
				}
			}
			if n := tokenRequests.Load(); n != 1 {
				t.Errorf("Gitea saw %d token requests, want exactly 1", n)
			}
			after, err := two.Store().GetIntegration(ctx, boot.OrgID, integ.ID)
			if err != nil {
				t.Fatal(err)
			}
			if after.Status != slipway.IntegrationConnected {
				t.Errorf("integration is %s (%s), want connected", after.Status, after.StatusReason)
			}
			// Gitea refuses the spent refresh token: a second refresh with it
			// would have failed.
			if _, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: first.RefreshToken, Expiry: time.Unix(1, 0)}).Token(); err == nil {
				t.Error("Gitea accepted a spent refresh token; this test cannot tell one refresh from two")
			}
		})
	}
}
