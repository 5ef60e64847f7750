package swarm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/runtime"
	"slipway.dev/slipway/internal/runtime/docker"
	swarmrt "slipway.dev/slipway/internal/runtime/swarm"
	"slipway.dev/slipway/internal/testenv/dockertest"
)

func build(t *testing.T, cli *client.Client, dir, version string) string {
	t.Helper()
	tag := fmt.Sprintf("slipway-test/swarm-%s:%s-%d", strings.ToLower(t.Name()), version, time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var logs bytes.Buffer
	if _, err := docker.BuildImage(ctx, cli, dir, "", tag, false, &logs); err != nil {
		t.Fatalf("build %s: %v\n%s", tag, err, logs.String())
	}
	dockertest.RemoveImage(t, cli, tag)
	return tag
}

func answer(addr, path string) (string, error) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	return string(body), err
}

func mustAnswer(t *testing.T, addr, want string) {
	t.Helper()
	got, err := answer(addr, "/version")
	if err != nil || got != want {
		t.Fatalf("%s answers %q (%v), want %q", addr, got, err, want)
	}
}

// eventuallyDown waits for addr to stop answering: swarm stops a replaced
// task after its grace period.
func eventuallyDown(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := answer(addr, "/version"); err != nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s still answers after the release was replaced or stopped", addr)
}

type fixture struct {
	cli      *client.Client
	rt       *swarmrt.Runtime
	service  string
	name     string
	cleaning bool
}

// cleanUpOnce removes the fixture's swarm service at the end of the test.
// It is registered at the first Start, after the images were built, so it
// runs before their removal.
func (f *fixture) cleanUpOnce(t *testing.T) {
	if f.cleaning {
		return
	}
	f.cleaning = true
	t.Cleanup(func() {
		ctx := context.Background()
		list, err := f.cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("label", docker.LabelService+"="+f.service))})
		if err != nil {
			t.Errorf("cleanup: list services: %v", err)
			return
		}
		for _, s := range list {
			if err := f.rt.Stop(ctx, s.Spec.Labels[docker.LabelDeployment]); err != nil {
				t.Errorf("cleanup: stop %s: %v", s.Spec.Name, err)
			}
		}
	})
}

func newFixture(t *testing.T) *fixture {
	cli := dockertest.Client(t)
	dockertest.Swarm(t)
	dockertest.BaseImage(t)
	f := &fixture{
		cli:     cli,
		rt:      swarmrt.New(cli, swarmrt.Options{StopGrace: time.Second, UpdateMonitor: time.Second, HealthTimeout: 60 * time.Second}),
		service: slipway.NewID(slipway.PrefixService),
		name:    "web-" + strings.ToLower(t.Name()),
	}
	return f
}

func (f *fixture) release(image string) runtime.Release {
	return runtime.Release{
		ServiceID:    f.service,
		DeploymentID: slipway.NewID(slipway.PrefixDeployment),
		Name:         f.name,
		Image:        image,
		Env:          map[string]string{"GREETING": "hello"},
		HealthPath:   "/healthz",
	}
}

func (f *fixture) start(t *testing.T, rel runtime.Release, logs io.Writer) runtime.Instance {
	t.Helper()
	f.cleanUpOnce(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	inst, err := f.rt.Start(ctx, rel, logs)
	if err != nil {
		t.Fatalf("start %s: %v", rel.Image, err)
	}
	if inst.DeploymentID != rel.DeploymentID || !strings.HasPrefix(inst.Addr, "127.0.0.1:") {
		t.Fatalf("instance = %+v", inst)
	}
	return inst
}

func TestRollingUpdateAndRollback(t *testing.T) {
	f := newFixture(t)
	v1 := build(t, f.cli, dockertest.HTTPApp(t, "v1"), "v1")
	v2 := build(t, f.cli, dockertest.HTTPApp(t, "v2"), "v2")
	broken := build(t, f.cli, dockertest.CrashingApp(t, "fatal: cannot open config"), "broken")
	ctx := context.Background()

	rel1 := f.release(v1)
	var notes bytes.Buffer
	rel1.Replicas = 3
	inst1 := f.start(t, rel1, &notes)
	mustAnswer(t, inst1.Addr, "v1")
	if listeners := dockertest.TCPListeners(t, inst1.Addr); len(listeners) != 1 || listeners[0] != "127.0.0.1" {
		t.Errorf("%s: listeners on %v, want only 127.0.0.1", inst1.Addr, listeners)
	}
	if !strings.Contains(notes.String(), "running 1 replica(s), not 3") {
		t.Errorf("the log does not explain the replica limit: %q", notes.String())
	}
	again, err := f.rt.Start(ctx, rel1, io.Discard)
	if err != nil || again != inst1 {
		t.Fatalf("starting the running release again = %+v, %v", again, err)
	}

	svc := f.swarmService(t)
	if svc.Spec.Name != swarmrt.ServiceName(rel1) || *svc.Spec.Mode.Replicated.Replicas != 1 {
		t.Errorf("service %s with %d replicas", svc.Spec.Name, *svc.Spec.Mode.Replicated.Replicas)
	}
	if u := svc.Spec.UpdateConfig; u == nil || u.Order != swarm.UpdateOrderStartFirst || u.FailureAction != swarm.UpdateFailureActionRollback || u.Parallelism != 1 {
		t.Errorf("update config = %+v", svc.Spec.UpdateConfig)
	}
	if cs := svc.Spec.TaskTemplate.ContainerSpec; cs.User != docker.NobodyUser || len(svc.Endpoint.Ports) != 0 {
		t.Errorf("task user %q, published ports %v", cs.User, svc.Endpoint.Ports)
	}

	// Update: v2 comes up on its own port before v1 goes.
	rel2 := f.release(v2)
	inst2 := f.start(t, rel2, io.Discard)
	mustAnswer(t, inst2.Addr, "v2")
	eventuallyDown(t, inst1.Addr)
	if err := f.rt.Stop(ctx, rel1.DeploymentID); err != nil {
		t.Fatalf("stopping the replaced release: %v", err)
	}
	mustAnswer(t, inst2.Addr, "v2")

	// A release that crashes is reported with its output, and the service
	// goes back to v2.
	rel3 := f.release(broken)
	_, err = f.rt.Start(ctx, rel3, io.Discard)
	var hc *runtime.HealthCheckError
	if !errors.As(err, &hc) || !strings.Contains(hc.Reason, "fatal: cannot open config") {
		t.Fatalf("start of a crashing release = %v, want a HealthCheckError with its output", err)
	}
	mustAnswer(t, inst2.Addr, "v2")
	if got := f.swarmService(t).Spec.Labels[docker.LabelDeployment]; got != rel2.DeploymentID {
		t.Fatalf("after the failed release the service runs %s, want %s", got, rel2.DeploymentID)
	}
	st, err := f.rt.Status(ctx, rel2.DeploymentID)
	if err != nil || !st.Running || st.Addr != inst2.Addr {
		t.Fatalf("status of v2 after the rollback = %+v, %v", st, err)
	}

	// Rolling back to v1 is a release of the v1 image.
	rel4 := f.release(v1)
	inst4 := f.start(t, rel4, io.Discard)
	mustAnswer(t, inst4.Addr, "v1")
	eventuallyDown(t, inst2.Addr)

	var out bytes.Buffer
	if err := f.rt.Logs(ctx, rel4.DeploymentID, &out); err != nil || !strings.Contains(out.String(), "response:200") {
		t.Errorf("logs of v1 = %q, %v", out.String(), err)
	}

	// Stopping the running release stops the Service.
	if err := f.rt.Stop(ctx, rel4.DeploymentID); err != nil {
		t.Fatalf("stop: %v", err)
	}
	eventuallyDown(t, inst4.Addr)
	if _, err := f.rt.Status(ctx, rel4.DeploymentID); !errors.Is(err, runtime.ErrUnknownRelease) {
		t.Fatalf("status after stop: %v, want ErrUnknownRelease", err)
	}
}

func TestFailedFirstReleaseLeavesNoService(t *testing.T) {
	f := newFixture(t)
	img := build(t, f.cli, dockertest.HTTPAppWithoutHealth(t, "v1"), "nohealth")
	f.rt = swarmrt.New(f.cli, swarmrt.Options{StopGrace: time.Second, UpdateMonitor: time.Second, HealthTimeout: 5 * time.Second})
	rel := f.release(img)
	f.cleanUpOnce(t)
	_, err := f.rt.Start(context.Background(), rel, io.Discard)
	var hc *runtime.HealthCheckError
	if !errors.As(err, &hc) || !strings.Contains(hc.Reason, "GET /healthz answered 404") {
		t.Fatalf("start = %v, want a HealthCheckError about /healthz", err)
	}
	list, err := f.cli.ServiceList(context.Background(), swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("label", docker.LabelService+"="+f.service))})
	if err != nil || len(list) != 0 {
		t.Fatalf("a failed first release left %d service(s) (%v)", len(list), err)
	}
}

func (f *fixture) swarmService(t *testing.T) swarm.Service {
	t.Helper()
	list, err := f.cli.ServiceList(context.Background(), swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("label", docker.LabelService+"="+f.service))})
	if err != nil || len(list) != 1 {
		t.Fatalf("services of %s: %d (%v)", f.service, len(list), err)
	}
	return list[0]
}

func TestServiceNameIsDNSSafe(t *testing.T) {
	got := swarmrt.ServiceName(runtime.Release{Name: "Web Production/Shop_1", ServiceID: "svc_x"})
	if got != "slipway-web-production-shop-1" {
		t.Fatalf("ServiceName = %q", got)
	}
	long := swarmrt.ServiceName(runtime.Release{Name: strings.Repeat("a", 80)})
	if len(long) > 63 {
		t.Fatalf("ServiceName is %d characters long", len(long))
	}
}
