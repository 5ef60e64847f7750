package docker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/runtime"
	"slipway.dev/slipway/internal/runtime/docker"
	"slipway.dev/slipway/internal/testenv/dockertest"
)

// syncBuffer is a logs writer the runtime's background copy and the test
// can share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func build(t *testing.T, cli *client.Client, dir, tag string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var logs bytes.Buffer
	id, err := docker.BuildImage(ctx, cli, dir, "", tag, false, &logs)
	if err != nil {
		t.Fatalf("build %s: %v\n%s", tag, err, logs.String())
	}
	dockertest.RemoveImage(t, cli, tag)
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("build %s returned image ID %q", tag, id)
	}
	return tag
}

func get(t *testing.T, addr, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", addr, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s%s: %d %s", addr, path, resp.StatusCode, body)
	}
	return string(body)
}

func release(service, name, image string) runtime.Release {
	return runtime.Release{
		ServiceID:    service,
		DeploymentID: slipway.NewID(slipway.PrefixDeployment),
		Name:         name,
		Image:        image,
		Env:          map[string]string{"GREETING": "hello"},
		HealthPath:   "/healthz",
	}
}

func start(t *testing.T, rt *docker.Runtime, rel runtime.Release, logs io.Writer) runtime.Instance {
	t.Helper()
	t.Cleanup(func() {
		if err := rt.Stop(context.Background(), rel.DeploymentID); err != nil {
			t.Errorf("cleanup: stop %s: %v", rel.DeploymentID, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	inst, err := rt.Start(ctx, rel, logs)
	if err != nil {
		t.Fatalf("start %s: %v", rel.Image, err)
	}
	return inst
}

func uniqueTag(t *testing.T, version string) string {
	return fmt.Sprintf("slipway-test/%s:%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), version, time.Now().UnixNano())
}

func TestDeployUpdateRollback(t *testing.T) {
	cli := dockertest.Client(t)
	dockertest.BaseImage(t)
	v1 := build(t, cli, dockertest.HTTPApp(t, "v1"), uniqueTag(t, "v1"))
	v2 := build(t, cli, dockertest.HTTPApp(t, "v2"), uniqueTag(t, "v2"))
	rt := docker.New(cli, docker.Options{HealthTimeout: 30 * time.Second, StopGrace: 2 * time.Second})
	ctx := context.Background()
	service := slipway.NewID(slipway.PrefixService)

	logs := &syncBuffer{}
	rel1 := release(service, "web", v1)
	inst1 := start(t, rt, rel1, logs)
	if got := get(t, inst1.Addr, "/version"); got != "v1" {
		t.Fatalf("first release answers %q, want v1", got)
	}
	again, err := rt.Start(ctx, rel1, io.Discard)
	if err != nil || again != inst1 {
		t.Fatalf("starting a running release again = %v, %v; want %v", again, err, inst1)
	}

	rel2 := release(service, "web", v2)
	inst2 := start(t, rt, rel2, io.Discard)
	if inst2.Addr == inst1.Addr {
		t.Fatalf("v2 got the same address as v1: %s", inst2.Addr)
	}
	if got := get(t, inst2.Addr, "/version"); got != "v2" {
		t.Fatalf("update answers %q, want v2", got)
	}
	// Both run side by side until the router has moved; then v1 stops.
	if got := get(t, inst1.Addr, "/version"); got != "v1" {
		t.Fatalf("v1 stopped answering before it was stopped: %q", got)
	}
	if err := rt.Stop(ctx, rel1.DeploymentID); err != nil {
		t.Fatalf("stop v1: %v", err)
	}
	if _, err := http.Get("http://" + inst1.Addr + "/version"); err == nil {
		t.Fatalf("v1 still answers on %s after Stop", inst1.Addr)
	}
	if _, err := rt.Status(ctx, rel1.DeploymentID); !errors.Is(err, runtime.ErrUnknownRelease) {
		t.Fatalf("status of a stopped release: err = %v, want ErrUnknownRelease", err)
	}

	// A rollback is a new deployment of the old image.
	rel3 := release(service, "web", v1)
	inst3 := start(t, rt, rel3, io.Discard)
	if got := get(t, inst3.Addr, "/version"); got != "v1" {
		t.Fatalf("rollback answers %q, want v1", got)
	}
	if err := rt.Stop(ctx, rel2.DeploymentID); err != nil {
		t.Fatalf("stop v2: %v", err)
	}
	st, err := rt.Status(ctx, rel3.DeploymentID)
	if err != nil || !st.Running || st.Addr != inst3.Addr || st.Restarts != 0 {
		t.Fatalf("status of the rollback = %+v, %v", st, err)
	}

	// httpd -v logs each response to stderr; the follower copied it.
	if !strings.Contains(logs.String(), "response:200") {
		t.Errorf("start's logs writer got no request log: %q", logs.String())
	}
	var retained bytes.Buffer
	if err := rt.Logs(ctx, rel3.DeploymentID, &retained); err != nil {
		t.Fatalf("logs: %v", err)
	}
	if !strings.Contains(retained.String(), "response:200") {
		t.Errorf("retained logs lack the request: %q", retained.String())
	}
	if err := rt.Stop(ctx, "dep_unknown"); err != nil {
		t.Fatalf("stopping an unknown release: %v", err)
	}
}

func TestContainerIsConfinedAndLoopbackOnly(t *testing.T) {
	cli := dockertest.Client(t)
	dockertest.BaseImage(t)
	img := build(t, cli, dockertest.HTTPApp(t, "v1"), uniqueTag(t, "v1"))
	rt := docker.New(cli, docker.Options{MemoryBytes: 64 << 20, PidsLimit: 32})
	rel := release(slipway.NewID(slipway.PrefixService), "confined", img)
	inst := start(t, rt, rel, io.Discard)
	ctx := context.Background()

	found, err := cli.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", docker.LabelDeployment+"="+rel.DeploymentID))})
	if err != nil || len(found) != 1 {
		t.Fatalf("list containers: %d, %v", len(found), err)
	}
	c, err := cli.ContainerInspect(ctx, found[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.HostConfig.NetworkMode != "host" || len(c.HostConfig.PortBindings) != 0 {
		t.Errorf("network = %s with bindings %v, want host networking and nothing published", c.HostConfig.NetworkMode, c.HostConfig.PortBindings)
	}
	if c.Config.User != docker.NobodyUser {
		t.Errorf("user = %q, want %s", c.Config.User, docker.NobodyUser)
	}
	if c.HostConfig.Memory != 64<<20 || c.HostConfig.PidsLimit == nil || *c.HostConfig.PidsLimit != 32 || c.HostConfig.CPUShares == 0 {
		t.Errorf("limits: memory %d, pids %v, cpu shares %d", c.HostConfig.Memory, c.HostConfig.PidsLimit, c.HostConfig.CPUShares)
	}
	if c.HostConfig.RestartPolicy.Name != container.RestartPolicyOnFailure || c.HostConfig.RestartPolicy.MaximumRetryCount == 0 {
		t.Errorf("restart policy = %+v", c.HostConfig.RestartPolicy)
	}
	if c.Config.Labels[docker.LabelService] != rel.ServiceID || c.Config.Labels[docker.LabelDeployment] != rel.DeploymentID {
		t.Errorf("labels = %v", c.Config.Labels)
	}
	// The kernel's socket table (shared with the host network namespace)
	// shows the listener on 127.0.0.1 and nowhere else.
	if listeners := dockertest.TCPListeners(t, inst.Addr); len(listeners) != 1 || listeners[0] != "127.0.0.1" {
		t.Fatalf("%s: listeners on %v, want only 127.0.0.1", inst.Addr, listeners)
	}
}

func TestHealthFailureReportsLastOutput(t *testing.T) {
	cli := dockertest.Client(t)
	dockertest.BaseImage(t)
	img := build(t, cli, dockertest.CrashingApp(t, "fatal: DATABASE_URL is not set"), uniqueTag(t, "crash"))
	rt := docker.New(cli, docker.Options{HealthTimeout: 30 * time.Second})
	rel := release(slipway.NewID(slipway.PrefixService), "crash", img)
	ctx := context.Background()

	began := time.Now()
	_, err := rt.Start(ctx, rel, io.Discard)
	var hc *runtime.HealthCheckError
	if !errors.As(err, &hc) {
		t.Fatalf("Start = %v, want a HealthCheckError", err)
	}
	if hc.DeploymentID != rel.DeploymentID || !strings.Contains(hc.Reason, "fatal: DATABASE_URL is not set") || !strings.Contains(hc.Reason, "status 3") {
		t.Fatalf("reason = %q", hc.Reason)
	}
	if elapsed := time.Since(began); elapsed > 20*time.Second {
		t.Errorf("a crashing release took %s to fail; it should fail fast", elapsed)
	}
	found, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelDeployment+"="+rel.DeploymentID))})
	if err != nil || len(found) != 0 {
		t.Fatalf("failed release left %d containers (%v)", len(found), err)
	}
}

func TestHealthTimeoutReportsLastCheck(t *testing.T) {
	cli := dockertest.Client(t)
	dockertest.BaseImage(t)
	img := build(t, cli, dockertest.HTTPAppWithoutHealth(t, "v1"), uniqueTag(t, "nohealth"))
	rt := docker.New(cli, docker.Options{HealthTimeout: 2 * time.Second})
	rel := release(slipway.NewID(slipway.PrefixService), "nohealth", img)

	_, err := rt.Start(context.Background(), rel, io.Discard)
	var hc *runtime.HealthCheckError
	if !errors.As(err, &hc) {
		t.Fatalf("Start = %v, want a HealthCheckError", err)
	}
	if !strings.Contains(hc.Reason, "GET /healthz answered 404") {
		t.Fatalf("reason = %q", hc.Reason)
	}
}

func TestBuildFailureNamesStep(t *testing.T) {
	cli := dockertest.Client(t)
	dockertest.BaseImage(t)
	dir := t.TempDir()
	dockerfile := "FROM " + dockertest.BaseImageRef + "\nRUN echo compiling\nRUN sh -c 'echo cc: error >&2; exit 7'\n"
	if err := os.WriteFile(dir+"/Dockerfile.web", []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	tag := uniqueTag(t, "broken")
	dockertest.RemoveDanglingImages(t)
	var logs bytes.Buffer
	_, err := docker.BuildImage(context.Background(), cli, dir, "Dockerfile.web", tag, true, &logs)
	var be *docker.BuildError
	if !errors.As(err, &be) {
		t.Fatalf("BuildImage = %v, want a BuildError", err)
	}
	if !strings.Contains(be.Step, "RUN sh -c 'echo cc: error") || !strings.Contains(be.Message, "7") {
		t.Fatalf("BuildError = %+v", be)
	}
	if !strings.Contains(logs.String(), "compiling") || !strings.Contains(logs.String(), "cc: error") {
		t.Fatalf("build log lacks the steps' output: %q", logs.String())
	}
}
