package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/testenv/giteatest"
)

// BenchmarkPushToLive measures, on a real Gitea and a real control plane:
//   - ack-to-clone: from the push webhook's arrival to the deployment's
//     clone starting (stored timestamps), and
//   - push-to-serving: from `git push` to the router answering with the
//     new commit,
//
// next to the same steps done by hand in a shell script on the same
// machine in the same run (clone the commit, go build, start the binary,
// poll until it answers): BenchmarkPushToLive/by-hand.
func BenchmarkPushToLive(b *testing.B) {
	g := giteatest.Shared(b)
	user := giteatest.UniqueName("bench")
	pass := g.CreateUser(b, user)
	token := g.CreateToken(b, user, pass, "slipway")
	repoID := g.CreateRepo(b, user, "hello", false)
	repo := user + "/hello"
	g.PushCommit(b, user, pass, repo, "main", appSource, "add the app")

	b.Run("slipway", func(b *testing.B) {
		srv := startServer(b, filepath.Join(b.TempDir(), "data"), "", -1)
		c := api{t: b, base: srv.URL(), token: srv.Bootstrap.Token}
		var integ slipway.Integration
		c.must("POST", "/api/v1/integrations", map[string]any{"provider": "gitea", "base_url": g.URL(), "token": token}, &integ)
		c.must("POST", "/api/v1/applications", map[string]any{"name": "bench"}, nil)
		var svc slipway.Service
		c.must("POST", "/api/v1/environments/bench%2Fproduction/services", map[string]any{"name": "web",
			"source": map[string]any{"integration_id": integ.ID, "repo_id": fmt.Sprint(repoID), "branch": "main", "auto_deploy": true}}, &svc)
		var first slipway.Deployment
		c.must("POST", "/api/v1/services/"+svc.ID+"/deploy", map[string]any{}, &first)
		c.waitLive(first.ID, 5*time.Minute) // warm the build cache of the service user
		host := c.host(svc.ID, slipway.HostGenerated)
		var ackToClone, pushToServe []time.Duration
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			sha := g.PushCommit(b, user, pass, repo, "main", map[string]string{"n.txt": fmt.Sprint(time.Now().UnixNano())}, fmt.Sprintf("bench %d", i))
			deadline := time.Now().Add(3 * time.Minute)
			for {
				if _, body, _ := get(srv.URL(), host); body == "hello from "+sha+"\n" {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("commit %s never served", sha)
				}
				time.Sleep(20 * time.Millisecond)
			}
			pushToServe = append(pushToServe, time.Since(start))
			ackToClone = append(ackToClone, c.ackToClone(integ.ID, svc.ID, sha))
		}
		b.StopTimer()
		b.ReportMetric(ms(median(pushToServe)), "push-to-serving-ms")
		b.ReportMetric(ms(median(ackToClone)), "ack-to-clone-ms")
		srv.Shutdown(ctx2())
	})

	b.Run("by-hand", func(b *testing.B) {
		script := `set -e
dir=$(mktemp -d)
cd "$dir"
git init -q && git remote add origin "$REPO_URL"
git -c protocol.version=2 fetch -q --depth 1 origin "$SHA"
git checkout -q --detach FETCH_HEAD
go build -o ./app .
PORT=$PORT SLIPWAY_COMMIT_SHA=$SHA ./app & pid=$!
until curl -fs "http://127.0.0.1:$PORT/" | grep -q "$SHA"; do sleep 0.02; done
kill $pid
cd / && rm -rf "$dir"
`
		var total []time.Duration
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			sha := g.PushCommit(b, user, pass, repo, "main", map[string]string{"n.txt": fmt.Sprint(time.Now().UnixNano())}, fmt.Sprintf("by hand %d", i))
			cmd := exec.Command("bash", "-c", script)
			cmd.Env = append(os.Environ(), "REPO_URL="+g.URL()+"/"+repo+".git", "SHA="+sha, "PORT="+freePortTB(b))
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("by-hand script: %v\n%s", err, out)
			}
			total = append(total, time.Since(start))
		}
		b.StopTimer()
		b.ReportMetric(ms(median(total)), "push-to-serving-ms")
	})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func freePortTB(tb testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

// ackToClone is the time from the delivery that caused the deployment of
// sha being received to that deployment's clone phase starting.
func (c api) ackToClone(integrationID, serviceID, sha string) time.Duration {
	var deps struct{ Items []slipway.Deployment }
	c.must("GET", "/api/v1/services/"+serviceID+"/deployments", nil, &deps)
	var dep slipway.Deployment
	for _, d := range deps.Items {
		if d.CommitSHA == sha {
			dep = d
		}
	}
	var dl struct {
		Items []struct {
			ReceivedAt time.Time `json:"received_at"`
			Caused     []string  `json:"caused"`
		}
	}
	c.must("GET", "/api/v1/integrations/"+integrationID+"/deliveries", nil, &dl)
	for _, d := range dl.Items {
		for _, id := range d.Caused {
			if id == dep.ID {
				for _, ph := range dep.Phases {
					if ph.Phase == slipway.DeployCloning {
						return ph.StartedAt.Sub(d.ReceivedAt)
					}
				}
			}
		}
	}
	c.t.Fatalf("no delivery/cloning phase found for %s (trigger %s)", sha, dep.Trigger)
	return 0
}
