package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge/providers"
	"slipway.dev/slipway/internal/netpolicy"
	"slipway.dev/slipway/internal/runtime"
	"slipway.dev/slipway/internal/runtime/process"
	"slipway.dev/slipway/internal/sandbox"
	"slipway.dev/slipway/internal/server"
	"slipway.dev/slipway/internal/testenv/pgtest"
)

// TestReplicasShareOnePostgres runs two control planes on one PostgreSQL
// database, as replicas behind a load balancer would: deployments queued
// through one replica are carried out by both, and each exactly once —
// the queued → cloning compare-and-set lets only one replica claim a
// deployment.
//
// Known limit: with the process runtime a release runs on the replica
// that built it, and only that replica's router serves it. The docker and
// swarm runtimes are the ones for more than one machine.
func TestReplicasShareOnePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	dbURL := pgtest.URL(t) // skips unless SLIPWAY_TEST_POSTGRES_URL is set
	masterKey := newMasterKey(t)
	root := t.TempDir()
	a := startReplica(t, "a", filepath.Join(root, "a"), dbURL, masterKey)
	b := startReplica(t, "b", filepath.Join(root, "b"), dbURL, masterKey)
	if !a.srv.Bootstrap.Created || b.srv.Bootstrap.Created {
		t.Fatalf("bootstrap: replica a created=%v, replica b created=%v; want only the first to bootstrap",
			a.srv.Bootstrap.Created, b.srv.Bootstrap.Created)
	}
	// One database, one organisation: replica a's token works on b.
	ca := api{t: t, base: a.srv.URL(), token: a.srv.Bootstrap.Token}
	cb := api{t: t, base: b.srv.URL(), token: a.srv.Bootstrap.Token}

	// The release writes its deployment id as its only page, so the
	// router's answer names the release serving it. The build sleeps so
	// that work piles up and both replicas have to take some.
	settings := map[string]any{
		"build_command": "sleep 1",
		"start_command": `d="$(mktemp -d)" && mkdir -p "$d" && echo "$SLIPWAY_DEPLOYMENT_ID" > "$d/index.html" && exec busybox httpd -f -p "127.0.0.1:$PORT" -h "$d"`,
	}
	_, _, _, _, repoID, integ, first, _ := linkedService(t, ca, settings)
	services := []slipway.Service{first}
	for i := 2; i <= 4; i++ {
		var svc slipway.Service
		ca.must("POST", "/api/v1/environments/"+first.EnvironmentID+"/services", map[string]any{"name": fmt.Sprintf("web%d", i), "build": settings,
			"source": map[string]any{"integration_id": integ.ID, "repo_id": fmt.Sprint(repoID), "branch": "main"}}, &svc)
		services = append(services, svc)
	}
	var app slipway.Application
	ca.must("GET", "/api/v1/applications/"+first.ApplicationID, nil, &app)

	// Eight deployments through replica a, in quick succession: one per
	// Service, then a rebuild of each (a deploy of the commit already
	// being deployed returns that deployment unless it asks for no cache).
	var queued []slipway.Deployment
	for round := 0; round < 2; round++ {
		for _, svc := range services {
			var d slipway.Deployment
			ca.must("POST", "/api/v1/services/"+svc.ID+"/deploy", map[string]any{"no_cache": round == 1}, &d)
			queued = append(queued, d)
		}
	}

	// Every deployment of the four Services (the ones queued above, and
	// any the Services' creation queued) runs to its end; read through
	// replica b, which sees the same database.
	var all []slipway.Deployment
	waitFor(t, "every deployment to finish", 2*time.Minute, func() bool {
		all = all[:0]
		for _, svc := range services {
			for _, d := range cb.deployments(svc.ID) {
				if !d.Status.Terminal() && d.Status != slipway.DeployLive {
					return false
				}
				all = append(all, d)
			}
		}
		return true
	})
	if len(all) < len(queued) {
		t.Fatalf("%d deployments listed, want at least the %d queued", len(all), len(queued))
	}

	// Each deployment ended once, and was claimed by one replica only.
	ranOn := map[string]string{} // deployment id → replica whose runtime started it
	for _, r := range []*replica{a, b} {
		for _, id := range r.rt.startedIDs() {
			if other, dup := ranOn[id]; dup {
				t.Errorf("deployment %s was started by replica %s and replica %s", id, other, r.name)
			}
			ranOn[id] = r.name
		}
	}
	ended := map[slipway.DeploymentStatus]int{}
	for _, d := range all {
		ended[d.Status]++
		switch d.Status {
		case slipway.DeployLive, slipway.DeployReplaced, slipway.DeploySuperseded, slipway.DeployFailed:
		default:
			t.Errorf("deployment %s ended %s", d.ID, d.Status)
		}
		logText := deploymentLog(ca, d.ID)
		cloning := strings.Count(logText, "==> "+string(slipway.DeployCloning)+"\n")
		wentLive := strings.Count(logText, "==> live at ")
		switch {
		case cloning > 1:
			t.Errorf("deployment %s was claimed %d times:\n%s", d.ID, cloning, logText)
		case cloning == 0 && d.Status != slipway.DeploySuperseded:
			t.Errorf("deployment %s ended %s without being claimed:\n%s", d.ID, d.Status, logText)
		}
		if wentLive > 1 {
			t.Errorf("deployment %s went live %d times:\n%s", d.ID, wentLive, logText)
		}
		if d.Status == slipway.DeployFailed {
			t.Errorf("deployment %s failed: %s\n%s", d.ID, d.Error, logText)
		}
		if (d.Status == slipway.DeployLive || d.Status == slipway.DeployReplaced) && ranOn[d.ID] == "" {
			t.Errorf("deployment %s is %s but no replica's runtime started it", d.ID, d.Status)
		}
	}
	t.Logf("outcomes %v; started by a: %d, by b: %d", ended, len(a.rt.startedIDs()), len(b.rt.startedIDs()))

	// Every Service has a live release, served by the router of the
	// replica that started it (see the known limit above).
	for _, svc := range services {
		var cur slipway.Service
		ca.must("GET", "/api/v1/services/"+svc.ID, nil, &cur)
		if cur.LiveDeploymentID == "" {
			t.Errorf("service %s has no live release", svc.Name)
			continue
		}
		// Two pipelines of one Service may run at once on two replicas:
		// whichever goes live last retires the other, so exactly one
		// deployment is live and it is the Service's live release.
		var live, all []string
		for _, d := range ca.deployments(svc.ID) {
			all = append(all, fmt.Sprintf("%s %s on %q", d.ID, d.Status, ranOn[d.ID]))
			if d.Status == slipway.DeployLive {
				live = append(live, d.ID)
			}
		}
		if len(live) != 1 || live[0] != cur.LiveDeploymentID {
			t.Errorf("service %s: live deployments %v, want exactly its live release %s; all: %v", svc.Name, live, cur.LiveDeploymentID, all)
		}
		owner := a
		if ranOn[cur.LiveDeploymentID] == b.name {
			owner = b
		}
		host := ca.host(svc.ID, slipway.HostGenerated)
		code, body, err := get(owner.srv.URL(), host)
		if err != nil || code != 200 || strings.TrimSpace(body) != cur.LiveDeploymentID {
			t.Errorf("replica %s serving %s: %d %q %v; want the live release %s", owner.name, host, code, body, err, cur.LiveDeploymentID)
		}
	}

	// The work was shared: A's two deploy workers cannot hold eight
	// deployments that each take more than a second, so B takes some.
	for _, r := range []*replica{a, b} {
		if len(r.rt.startedIDs()) == 0 {
			t.Errorf("replica %s started no release: the work was not shared", r.name)
		}
	}
}

// replica is one control plane of a multi-replica test.
type replica struct {
	name string
	srv  *server.Server
	rt   *recordingRuntime
}

// startReplica starts a control plane on the shared database with its own
// data directory and workspace directory (as startServer does) and the
// shared master key.
func startReplica(t *testing.T, name, dataDir, dbURL, masterKey string) *replica {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(newLogWriter(t), &slog.HandlerOptions{Level: slog.LevelWarn})).With("replica", name)
	r := &replica{name: name}
	srv, err := server.Start(context.Background(), server.Config{
		DataDir: dataDir, WorkspaceDir: traversableTempDir(t), Addr: "127.0.0.1:0", BaseDomain: "localhost",
		DatabaseURL: dbURL, MasterKey: masterKey, ReconcileInterval: -1,
		Forges:  providers.All(logger, netpolicy.Policy{AllowPrivate: true}),
		Network: netpolicy.Policy{AllowPrivate: true}, // the test Gitea is on loopback
		NewRuntime: func(sb *sandbox.Manager) (runtime.Runtime, error) {
			r.rt = &recordingRuntime{Runtime: process.New(logger, sb, process.Options{})}
			return r.rt, nil
		},
		Logger: logger,
	})
	if err != nil {
		t.Fatalf("start replica %s: %v", name, err)
	}
	r.srv = srv
	t.Cleanup(func() {
		ctx, cancel := contextWithTimeout(30 * time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return r
}

// newMasterKey makes one keyring line ("id:base64key") for every replica:
// what one replica seals, the others must open.
func newMasterKey(t *testing.T) string {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return "kreplicas:" + base64.StdEncoding.EncodeToString(key)
}

// recordingRuntime is the process runtime, noting which releases this
// replica started.
type recordingRuntime struct {
	*process.Runtime
	mu      sync.Mutex
	started []string
}

func (r *recordingRuntime) Start(ctx context.Context, rel runtime.Release, logs io.Writer) (runtime.Instance, error) {
	r.mu.Lock()
	r.started = append(r.started, rel.DeploymentID)
	r.mu.Unlock()
	return r.Runtime.Start(ctx, rel, logs)
}

func (r *recordingRuntime) startedIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.started...)
}
