package e2e

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/testenv/memtest"
)

// TestBuildPrinting100MBGetsACappedLog deploys a Service whose build
// command prints 100 MB: the deployment still goes live, its log stops at
// 10 MiB with the truncation marker, and the server's memory (this test
// process runs it) stays flat while the build prints.
func TestBuildPrinting100MBGetsACappedLog(t *testing.T) {
	g, user, pass, token := giteaUser(t, "chatty")
	g.CreateRepo(t, user, "chatty", true)
	g.PushCommit(t, user, pass, user+"/chatty", "main", appSource, "add the app")

	srv := startServer(t, filepath.Join(t.TempDir(), "data"), "", -1)
	c := api{t: t, base: srv.URL(), token: srv.Bootstrap.Token}
	integ, repo := connectGitea(c, g, token, "chatty")
	c.must("POST", "/api/v1/applications", map[string]any{"name": "chatty"}, nil)
	var svc slipway.Service
	c.must("POST", "/api/v1/environments/chatty%2Fproduction/services", map[string]any{"name": "web",
		"source": map[string]any{"integration_id": integ.ID, "repo_id": repo.ID, "branch": "main"},
		"build":  map[string]any{"build_command": "yes 'compiling module 42 of a chatty build, one line of build output' | head -c 104857600; go build -o app ."}}, &svc)

	runtime.GC()
	mem := memtest.Start(t)
	var d slipway.Deployment
	c.must("POST", "/api/v1/services/"+svc.ID+"/deploy", map[string]any{}, &d)
	start := time.Now()
	d = c.waitLive(d.ID, 8*time.Minute)
	base, peak := mem.Base, mem.Stop()

	var total, lines int
	var last string
	eachLogLine(c.must, d.ID, func(text string) {
		total += len(text)
		lines++
		if strings.Contains(text, "log truncated") {
			last = text
		}
	})
	t.Logf("deploy with 100 MB of build output: live after %s; log %d bytes in %d lines; server RSS %d KiB before, peak %d KiB (+%d KiB)",
		time.Since(start).Round(time.Second), total, lines, base, peak, peak-base)
	if last == "" || total > 10<<20+4096 {
		t.Fatalf("log of %d bytes without the truncation marker (%q)", total, last)
	}
	if grew := peak - base; grew > 96<<10 {
		t.Errorf("server RSS grew by %d KiB during a build printing 100 MB", grew)
	}
}
