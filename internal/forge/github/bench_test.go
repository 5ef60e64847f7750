package github

import (
	"context"
	"testing"

	"slipway.dev/slipway/internal/forge"
)

// BenchmarkRepoPicker syncs an installation of 5,000 repositories (100 per
// page, Link pagination, ETags) from the fake GitHub on loopback: a full
// first sync, then a re-sync with nothing changed, where every page
// answers 304 Not Modified and costs no rate limit.
func BenchmarkRepoPicker(b *testing.B) {
	const repos = 5000
	f := newFakeGitHub(b, repos)
	p := f.provider()
	c := f.conn()
	ctx := context.Background()
	listCalls := func() int { return f.count("GET /api/v3/installation/repositories") }

	// sync walks every page, sending the ETags of a previous sync when given,
	// and returns the ETags, the repositories fetched and the 304 count.
	sync := func(b *testing.B, etags map[int]string) (map[int]string, int, int) {
		next := map[int]string{}
		fetched, notModified := 0, 0
		for page := 1; page != 0; {
			res, nm, err := p.ListReposIfChanged(ctx, c, forge.ListOptions{Page: page, PerPage: 100}, etags[page])
			if err != nil {
				b.Fatal(err)
			}
			next[page] = res.ETag
			fetched += len(res.Repos)
			if nm {
				notModified++
			}
			page = res.NextPage
		}
		return next, fetched, notModified
	}

	b.Run("full", func(b *testing.B) {
		before := listCalls()
		for b.Loop() {
			if _, fetched, _ := sync(b, nil); fetched != repos {
				b.Fatalf("fetched %d repositories, want %d", fetched, repos)
			}
		}
		b.ReportMetric(float64(listCalls()-before)/float64(b.N), "calls/op")
	})

	b.Run("resync-unchanged", func(b *testing.B) {
		etags, _, _ := sync(b, nil)
		before := listCalls()
		for b.Loop() {
			_, fetched, notModified := sync(b, etags)
			if fetched != 0 || notModified != repos/100 {
				b.Fatalf("re-sync fetched %d, %d pages unchanged", fetched, notModified)
			}
		}
		b.ReportMetric(float64(listCalls()-before)/float64(b.N), "calls/op")
		b.ReportMetric(float64(repos/100), "304s/op")
	})
}
