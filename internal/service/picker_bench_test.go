package service_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/secrets"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
)

// manyRepos is a provider granting n repositories, 100 per page, with a
// stable ETag per page and a version that changes the listing. It counts
// full page fetches and conditional ones answered "not modified" (which
// GitHub does not count against the rate limit). The HTTP side of the same
// exchange is benchmarked in internal/forge/github (BenchmarkRepoPicker).
type manyRepos struct {
	n                   int
	version             atomic.Int64
	fullCalls, notMod   atomic.Int64
	conditionalRequests atomic.Int64
}

func (m *manyRepos) Kind() slipway.Provider { return slipway.ProviderGitHub }

func (m *manyRepos) page(page int) forge.RepoPage {
	var out forge.RepoPage
	for i := (page - 1) * 100; i < page*100 && i < m.n; i++ {
		out.Repos = append(out.Repos, forge.Repo{ID: fmt.Sprint(i + 1), FullName: fmt.Sprintf("acme/repo-%04d", i), CloneURL: "https://example.invalid/x.git", DefaultBranch: "main"})
	}
	if page*100 < m.n {
		out.NextPage = page + 1
	}
	out.ETag = fmt.Sprintf(`"v%d-p%d"`, m.version.Load(), page)
	return out
}

func (m *manyRepos) ListRepos(_ context.Context, _ *forge.Conn, opt forge.ListOptions) (forge.RepoPage, error) {
	m.fullCalls.Add(1)
	return m.page(max(opt.Page, 1)), nil
}

func (m *manyRepos) ListReposIfChanged(_ context.Context, _ *forge.Conn, opt forge.ListOptions, etag string) (forge.RepoPage, bool, error) {
	m.conditionalRequests.Add(1)
	p := m.page(max(opt.Page, 1))
	if etag == p.ETag {
		m.notMod.Add(1)
		return forge.RepoPage{NextPage: p.NextPage, ETag: p.ETag}, true, nil
	}
	m.fullCalls.Add(1)
	return p, false, nil
}

func (m *manyRepos) GetRepo(context.Context, *forge.Conn, string) (forge.Repo, error) {
	return forge.Repo{}, slipway.Errorf(slipway.ECodeRepoNotVisible, "unused")
}

type nopJobs struct{}

func (nopJobs) EnqueueDeploy(context.Context, *store.Tx, string, string) error   { return nil }
func (nopJobs) EnqueueDelivery(context.Context, *store.Tx, string, string) error { return nil }

func pickerEnv(tb testing.TB, n int) (*service.Service, service.Actor, string, *manyRepos) {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	logger := slog.New(slog.DiscardHandler)
	st, err := store.Open(ctx, "", dir, logger)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	keys, err := secrets.LoadOrCreate(filepath.Join(dir, "master.key"), "")
	if err != nil {
		tb.Fatal(err)
	}
	fake := &manyRepos{n: n}
	svc := service.New(st, keys, map[slipway.Provider]forge.Provider{slipway.ProviderGitHub: fake}, nopJobs{}, service.Config{PublicURL: "http://127.0.0.1"}, logger)
	boot, err := svc.Bootstrap(ctx, "admin@example.com")
	if err != nil {
		tb.Fatal(err)
	}
	a, err := svc.ActorFor(ctx, boot.OrgID, boot.UserID)
	if err != nil {
		tb.Fatal(err)
	}
	integ := slipway.Integration{ID: slipway.NewID(slipway.PrefixIntegration), OrgID: boot.OrgID, Provider: slipway.ProviderGitHub,
		AuthMethod: slipway.AuthGitHubApp, BaseURL: "https://github.com", Status: slipway.IntegrationConnected}
	if err := st.CreateIntegration(ctx, &integ, nil); err != nil {
		tb.Fatal(err)
	}
	return svc, a, integ.ID, fake
}

// TestRepoPickerResyncCostsNothingWhenUnchanged: a re-sync where nothing
// changed is answered "not modified" page by page and writes nothing; a
// change is picked up.
func TestRepoPickerResyncCostsNothingWhenUnchanged(t *testing.T) {
	ctx := context.Background()
	svc, a, id, fake := pickerEnv(t, 250)
	if n, err := svc.SyncRepos(ctx, a, id); err != nil || n != 250 || fake.fullCalls.Load() != 3 {
		t.Fatalf("first sync: %d repos, %d full calls, %v", n, fake.fullCalls.Load(), err)
	}
	fake.fullCalls.Store(0)
	if n, err := svc.SyncRepos(ctx, a, id); err != nil || n != 250 || fake.fullCalls.Load() != 0 || fake.notMod.Load() != 3 {
		t.Fatalf("unchanged re-sync: %d repos, %d full calls, %d not-modified, %v", n, fake.fullCalls.Load(), fake.notMod.Load(), err)
	}
	fake.n = 260
	fake.version.Add(1)
	if n, err := svc.SyncRepos(ctx, a, id); err != nil || n != 260 {
		t.Fatalf("changed re-sync: %d repos, %v", n, err)
	}
	repos, total, err := svc.ListRepos(ctx, a, id, "repo-0259", store.Page{})
	if err != nil || total != 1 || repos[0].FullName != "acme/repo-0259" {
		t.Fatalf("picker search after change: %v %d %v", repos, total, err)
	}
}

// BenchmarkRepoPicker5000: the picker of an installation with 5,000
// repositories — the first page served from the cache, a full first sync,
// and a re-sync with nothing changed (provider calls per op reported).
func BenchmarkRepoPicker5000(b *testing.B) {
	ctx := context.Background()
	b.Run("first-page-from-cache", func(b *testing.B) {
		svc, a, id, _ := pickerEnv(b, 5000)
		if _, err := svc.SyncRepos(ctx, a, id); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			repos, total, err := svc.ListRepos(ctx, a, id, "", store.Page{Limit: 50})
			if err != nil || total != 5000 || len(repos) != 50 {
				b.Fatalf("%d %d %v", len(repos), total, err)
			}
		}
	})
	b.Run("search-from-cache", func(b *testing.B) {
		svc, a, id, _ := pickerEnv(b, 5000)
		if _, err := svc.SyncRepos(ctx, a, id); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, total, err := svc.ListRepos(ctx, a, id, "repo-42", store.Page{Limit: 50}); err != nil || total == 0 {
				b.Fatal(total, err)
			}
		}
	})
	b.Run("full-sync", func(b *testing.B) {
		svc, a, id, fake := pickerEnv(b, 5000)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			fake.version.Add(1) // every iteration sees a changed listing
			if _, err := svc.SyncRepos(ctx, a, id); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(fake.fullCalls.Load()+fake.conditionalRequests.Load()-fake.notMod.Load())/float64(b.N), "full-calls/op")
	})
	b.Run("resync-unchanged", func(b *testing.B) {
		svc, a, id, fake := pickerEnv(b, 5000)
		if _, err := svc.SyncRepos(ctx, a, id); err != nil {
			b.Fatal(err)
		}
		fake.fullCalls.Store(0)
		fake.notMod.Store(0)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := svc.SyncRepos(ctx, a, id); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(fake.fullCalls.Load())/float64(b.N), "full-calls/op")
		b.ReportMetric(float64(fake.notMod.Load())/float64(b.N), "not-modified/op")
	})
}
