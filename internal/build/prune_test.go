package build

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/clone"
)

// TestPruneKeepsTheLiveBuildAndTheNewest deploys 20 commits of a Service
// the way the pipeline does (build, go live, prune) and checks that only
// the live build and the 3 newest others stay on disk; a rollback to a
// removed build builds it again and says so.
func TestPruneKeepsTheLiveBuildAndTheNewest(t *testing.T) {
	b, sb := newBuilder(t)
	ctx := context.Background()
	dir := t.TempDir()
	gitIn(t, dir, "init", "-q", "-b", "main")
	const deploys, keep = 20, 3
	var shas []string
	for i := range deploys {
		if err := os.WriteFile(filepath.Join(dir, "Procfile"), []byte(fmt.Sprintf("web: echo %d\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
		gitIn(t, dir, "add", ".")
		gitIn(t, dir, "commit", "-q", "-m", fmt.Sprintf("release %d", i))
		shas = append(shas, gitIn(t, dir, "rev-parse", "HEAD"))
	}
	build := func(sha string) (Result, string) {
		t.Helper()
		var logs bytes.Buffer
		res, err := b.Build(ctx, Request{ServiceID: "svc_prune", DeploymentID: "dep_" + sha[:8],
			Source:   clone.Options{Network: localSources, URL: "file://" + dir, SHA: sha},
			Settings: slipway.BuildSettings{BuildCommand: "head -c 262144 /dev/zero > payload.bin"}}, &logs)
		if err != nil {
			t.Fatalf("build %s: %v\n%s", sha, err, logs.String())
		}
		return res, logs.String()
	}
	var total, freed int64
	var live Result
	for _, sha := range shas {
		live, _ = build(sha)
		total += dirSize(live.Dir)
		pruned, err := b.Prune(ctx, "svc_prune", []string{live.Dir}, keep)
		if err != nil {
			t.Fatal(err)
		}
		freed += pruned.Bytes
	}
	left, err := sb.SealedBuilds("svc_prune")
	if err != nil {
		t.Fatal(err)
	}
	var onDisk int64
	for _, s := range left {
		onDisk += dirSize(s.Path)
	}
	t.Logf("%d deploys: %d KiB built in all, %d KiB removed, %d KiB (%d builds) left on disk", deploys, total>>10, freed>>10, onDisk>>10, len(left))
	if len(left) != keep+1 {
		t.Fatalf("%d builds left after %d deploys, want the live one and %d more", len(left), deploys, keep)
	}
	if _, err := os.Stat(filepath.Join(live.Dir, "payload.bin")); err != nil {
		t.Fatalf("the live build was removed: %v", err)
	}
	for _, s := range left {
		if !strings.HasPrefix(s.Name, slipway.ShortSHA(shas[deploys-1])) && !strings.HasPrefix(s.Name, slipway.ShortSHA(shas[deploys-2])) &&
			!strings.HasPrefix(s.Name, slipway.ShortSHA(shas[deploys-3])) && !strings.HasPrefix(s.Name, slipway.ShortSHA(shas[deploys-4])) {
			t.Errorf("an old build survived: %s", s.Name)
		}
	}
	// Rolling back to the first commit: its build is gone, so it is built
	// again, and the log says why; the live build stays.
	again, logs := build(shas[0])
	if again.Cached || !strings.Contains(logs, "was removed to free disk space") {
		t.Errorf("rollback to a removed build: cached %v, log:\n%s", again.Cached, logs)
	}
	if _, err := os.Stat(filepath.Join(live.Dir, "payload.bin")); err != nil {
		t.Errorf("the live build went during the rebuild: %v", err)
	}
}
