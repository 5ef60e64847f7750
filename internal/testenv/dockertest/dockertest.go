// Package dockertest gives tests a real Docker Engine: a client that skips
// the test when no daemon answers, a small local base image built without
// any image registry, and a one-node swarm on 127.0.0.1.
//
// CI starts dockerd and sets SLIPWAY_TEST_DOCKER=1; there a missing daemon
// fails the test instead of skipping it, so the suite cannot silently
// stop exercising containers.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
)

// BaseImageRef is the local image BaseImage provides: busybox on an
// otherwise empty root filesystem, with a "nobody" account (65534).
const BaseImageRef = "slipway/busybox:test"

// RequireEnv names the variable that turns a missing daemon from a skip
// into a failure.
const RequireEnv = "SLIPWAY_TEST_DOCKER"

// Client returns a client for the local daemon, or skips the test when none
// answers (fails it when SLIPWAY_TEST_DOCKER=1).
func Client(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = cli.Ping(ctx)
		if err != nil {
			cli.Close()
		}
	}
	if err != nil {
		msg := fmt.Sprintf("no Docker daemon answers (%v): start one with `dockerd --host unix:///var/run/docker.sock &`", err)
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%s=1 but %s", RequireEnv, msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// busyboxApplets are the commands the base image links to busybox: enough
// for a shell, an HTTP server and a few diagnostics.
var busyboxApplets = []string{
	"sh", "ash", "cat", "echo", "env", "false", "grep", "httpd", "id", "ls",
	"mkdir", "nc", "netstat", "printf", "ps", "rm", "sleep", "test", "true", "wget",
}

// BaseImage makes sure BaseImageRef exists, importing it from the host's
// statically linked busybox when it does not, and returns its reference.
// The image is left in place for later runs: it is a test fixture, not
// something a test creates.
func BaseImage(t testing.TB) string {
	t.Helper()
	cli := Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := cli.ImageInspect(ctx, BaseImageRef); err == nil {
		return BaseImageRef
	} else if !errdefs.IsNotFound(err) {
		t.Fatalf("inspect %s: %v", BaseImageRef, err)
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Skipf("busybox not found (install busybox-static) to build %s: %v", BaseImageRef, err)
	}
	rootfs, err := busyboxRootFS(busybox)
	if err != nil {
		t.Fatalf("build root filesystem for %s: %v", BaseImageRef, err)
	}
	out, err := cli.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(rootfs), SourceName: "-"}, BaseImageRef, image.ImportOptions{})
	if err != nil {
		t.Fatalf("import %s: %v", BaseImageRef, err)
	}
	defer out.Close()
	if _, err := io.Copy(io.Discard, out); err != nil {
		t.Fatalf("import %s: %v", BaseImageRef, err)
	}
	return BaseImageRef
}

// busyboxRootFS returns a tar of a minimal root filesystem around the
// busybox binary at path. The binary must be statically linked: the image
// carries no libc.
func busyboxRootFS(path string) ([]byte, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: now})
	}
	file := func(name string, mode int64, body []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: now}); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	steps := []func() error{
		func() error { return dir("bin", 0o755) },
		func() error { return dir("etc", 0o755) },
		func() error { return dir("tmp", 0o1777) },
		func() error { return dir("www", 0o755) },
		func() error { return file("bin/busybox", 0o755, bin) },
		func() error {
			return file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
		},
		func() error { return file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")) },
	}
	for _, applet := range busyboxApplets {
		steps = append(steps, func() error {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777, ModTime: now})
		})
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Swarm makes sure the local daemon is a swarm manager, initialising a
// one-node swarm advertised on 127.0.0.1 when it is not part of any swarm.
// The swarm is left in place: leaving it would tear down services other
// tests may be running.
func Swarm(t testing.TB) {
	t.Helper()
	cli := Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	info, err := cli.Info(ctx)
	if err != nil {
		t.Fatalf("docker info: %v", err)
	}
	switch info.Swarm.LocalNodeState {
	case swarm.LocalNodeStateActive:
		if !info.Swarm.ControlAvailable {
			t.Skip("this Docker daemon is a swarm worker, not a manager")
		}
		return
	case swarm.LocalNodeStateInactive:
	default:
		t.Skipf("swarm is %s on this daemon", info.Swarm.LocalNodeState)
	}
	_, err = cli.SwarmInit(ctx, swarm.InitRequest{ListenAddr: "127.0.0.1:2377", AdvertiseAddr: "127.0.0.1"})
	if err != nil && !strings.Contains(err.Error(), "already part of a swarm") {
		t.Fatalf("swarm init on 127.0.0.1: %v", err)
	}
}

// RemoveImage deletes an image a test built, at the end of the test.
func RemoveImage(t testing.TB, cli *client.Client, ref string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := cli.ImageRemove(ctx, ref, image.RemoveOptions{Force: true, PruneChildren: true})
		if err != nil && !errdefs.IsNotFound(err) && !errors.Is(err, context.Canceled) {
			t.Logf("remove image %s: %v", ref, err)
		}
	})
}

// RemoveDanglingImages removes, at the end of the test, the untagged
// images that appeared during it: the intermediate layers a failed build
// leaves behind.
func RemoveDanglingImages(t testing.TB) {
	t.Helper()
	cli := Client(t)
	dangling := func() map[string]bool {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		list, err := cli.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("dangling", "true"))})
		if err != nil {
			t.Fatalf("list dangling images: %v", err)
		}
		ids := map[string]bool{}
		for _, img := range list {
			ids[img.ID] = true
		}
		return ids
	}
	before := dangling()
	t.Cleanup(func() {
		for id := range dangling() {
			if before[id] {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err := cli.ImageRemove(ctx, id, image.RemoveOptions{Force: true, PruneChildren: true})
			cancel()
			if err != nil && !errdefs.IsNotFound(err) {
				t.Logf("remove dangling image %s: %v", id, err)
			}
		}
	})
}
