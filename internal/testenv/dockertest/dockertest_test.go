package dockertest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
)

func TestBaseImageRunsBusyboxAsNobody(t *testing.T) {
	ref := BaseImage(t)
	cli := Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	img, err := cli.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatalf("inspect %s: %v", ref, err)
	}
	if img.ID == "" {
		t.Fatalf("image %s has no ID", ref)
	}
	created, err := cli.ContainerCreate(ctx, &container.Config{Image: ref, User: "65534:65534", Cmd: []string{"id", "-u"}},
		&container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	defer cli.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start: %v", err)
	}
	waitC, errC := cli.ContainerWait(ctx, created.ID, container.WaitConditionNotRunning)
	select {
	case res := <-waitC:
		if res.StatusCode != 0 {
			t.Fatalf("id -u exited %d", res.StatusCode)
		}
	case err := <-errC:
		t.Fatalf("wait: %v", err)
	}
	out, err := cli.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true})
	if err != nil {
		t.Fatalf("logs: %v", err)
	}
	defer out.Close()
	var b strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := out.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if !strings.Contains(b.String(), "65534") {
		t.Fatalf("id -u printed %q, want 65534", b.String())
	}
}
