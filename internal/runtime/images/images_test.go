package images

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"slipway.dev/slipway/internal/testenv/dockertest"
)

// TestPruneImagesKeepsTheLiveAndTheNewest builds six images of one
// Service, the live one among the older ones, and prunes to two: the live
// image and the two newest others remain, the rest are gone.
func TestPruneImagesKeepsTheLiveAndTheNewest(t *testing.T) {
	cli := dockertest.Client(t)
	base := dockertest.BaseImage(t)
	b := Builder{Client: cli}
	ctx := context.Background()
	repo := fmt.Sprintf("slipway/svc_prunetest%d", time.Now().UnixNano())
	var tags []string
	for i := range 6 {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(fmt.Sprintf("FROM %s\nLABEL release=%d\n", base, i)), 0o644); err != nil {
			t.Fatal(err)
		}
		tag := fmt.Sprintf("%s:sha%d", repo, i)
		if _, err := b.BuildImage(ctx, dir, "", tag, false, io.Discard); err != nil {
			t.Fatal(err)
		}
		tags = append(tags, tag)
		t.Cleanup(func() { dockertest.RemoveImage(t, cli, tag) })
		time.Sleep(1100 * time.Millisecond) // image creation times have a one-second grain
	}
	live := tags[1]
	n, err := b.PruneImages(ctx, repo, []string{live}, 2)
	if err != nil || n != 3 {
		t.Fatalf("pruned %d images (%v), want 3", n, err)
	}
	for i, tag := range tags {
		id, err := b.ImageID(ctx, tag)
		if err != nil {
			t.Fatal(err)
		}
		want := tag == live || i >= 4
		if (id != "") != want {
			t.Errorf("%s present %v, want %v", tag, id != "", want)
		}
	}
}
