package e2e

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	dockerswarm "github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge/providers"
	"slipway.dev/slipway/internal/netpolicy"
	"slipway.dev/slipway/internal/runtime"
	"slipway.dev/slipway/internal/runtime/docker"
	"slipway.dev/slipway/internal/runtime/images"
	"slipway.dev/slipway/internal/runtime/swarm"
	"slipway.dev/slipway/internal/sandbox"
	"slipway.dev/slipway/internal/server"
	"slipway.dev/slipway/internal/testenv/dockertest"
	"slipway.dev/slipway/internal/testenv/giteatest"
)

// runtimeFactory builds a server's runtime, as `slipway serve --runtime`
// does.
type runtimeFactory func(logger *slog.Logger) func(sb *sandbox.Manager) (runtime.Runtime, error)

// startServerWith is startServer with the runtime releases run on.
func startServerWith(t testing.TB, dataDir, addr string, reconcile time.Duration, newRuntime runtimeFactory) *server.Server {
	t.Helper()
	ws, err := os.MkdirTemp("", "slipway-e2e-ws-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(ws, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(ws) })
	logger := slog.New(slog.NewTextHandler(newLogWriter(t), &slog.HandlerOptions{Level: slog.LevelWarn}))
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	srv, err := server.Start(context.Background(), server.Config{
		DataDir: dataDir, WorkspaceDir: ws, Addr: addr, BaseDomain: "localhost",
		DatabaseURL:       os.Getenv("SLIPWAY_E2E_DATABASE_URL"),
		ReconcileInterval: reconcile,
		Forges:            providers.All(logger, netpolicy.Policy{AllowPrivate: true}),
		Network:           netpolicy.Policy{AllowPrivate: true}, // the test Gitea is on loopback
		NewRuntime:        newRuntime(logger),
		Logger:            logger,
	})
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	return srv
}

// The image runtimes as cmd/slipway wires them: the runtime plus image
// building and the image cache.
type dockerImageRuntime struct {
	*docker.Runtime
	images.Builder
}

type swarmImageRuntime struct {
	*swarm.Runtime
	images.Builder
}

func dockerRuntimeFactory(cli *client.Client) runtimeFactory {
	return func(logger *slog.Logger) func(*sandbox.Manager) (runtime.Runtime, error) {
		return func(*sandbox.Manager) (runtime.Runtime, error) {
			return dockerImageRuntime{Runtime: docker.New(cli, docker.Options{Logger: logger, StopGrace: 2 * time.Second}), Builder: images.Builder{Client: cli}}, nil
		}
	}
}

func swarmRuntimeFactory(cli *client.Client) runtimeFactory {
	return func(logger *slog.Logger) func(*sandbox.Manager) (runtime.Runtime, error) {
		return func(*sandbox.Manager) (runtime.Runtime, error) {
			return swarmImageRuntime{Runtime: swarm.New(cli, swarm.Options{Logger: logger, StopGrace: 2 * time.Second}), Builder: images.Builder{Client: cli}}, nil
		}
	}
}

// dockerfileApp is a repository whose Dockerfile serves version with
// busybox httpd on 127.0.0.1:$PORT. It has nothing the process runtime's
// build plan could detect, so a deploy only works if the pipeline builds
// the image instead.
func dockerfileApp(version string) map[string]string {
	return map[string]string{
		"Dockerfile": "FROM " + dockertest.BaseImageRef + "\n" +
			"COPY www /www\n" +
			`CMD ["sh", "-c", "exec httpd -f -p 127.0.0.1:$PORT -h /www"]` + "\n",
		"www/index.html": version + "\n",
	}
}

// TestDockerRuntimePushToLive deploys a Dockerfile app from a real Gitea
// through Slipway's API on a real Docker daemon, first with the docker
// runtime and then with swarm: deploy, a push deploys the new commit, a
// rollback brings the first image back from the cache and pauses
// auto-deploy; a docker-type Service runs a prebuilt image.
func TestDockerRuntimePushToLive(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	cli := dockertest.Client(t)
	dockertest.BaseImage(t)
	g := giteatest.Shared(t)

	t.Run("docker", func(t *testing.T) {
		testImageRuntimePushToLive(t, g, cli, dockerRuntimeFactory(cli))
	})
	t.Run("swarm", func(t *testing.T) {
		dockertest.Swarm(t)
		testImageRuntimePushToLive(t, g, cli, swarmRuntimeFactory(cli))
	})
}

func testImageRuntimePushToLive(t *testing.T, g *giteatest.Server, cli *client.Client, newRuntime runtimeFactory) {
	dockertest.RemoveDanglingImages(t)
	user := giteatest.UniqueName("dock")
	pass := g.CreateUser(t, user)
	token := g.CreateToken(t, user, pass, "slipway")
	g.CreateRepo(t, user, "site", true)
	repo := user + "/site"
	sha1 := g.PushCommit(t, user, pass, repo, "main", dockerfileApp("v1"), "first version")

	// A prebuilt image for the docker-type Service: no Git involved.
	prebuilt := "slipway-e2e/prebuilt:" + strings.ToLower(giteatest.UniqueName("t"))
	dockertest.RemoveImage(t, cli, prebuilt)
	ctx, cancel := contextWithTimeout(2 * time.Minute)
	defer cancel()
	if _, err := docker.BuildImage(ctx, cli, dockertest.HTTPApp(t, "prebuilt"), "", prebuilt, false, io.Discard); err != nil {
		t.Fatalf("build the prebuilt image: %v", err)
	}

	dataDir := filepath.Join(t.TempDir(), "data")
	srv := startServerWith(t, dataDir, "", -1, newRuntime)
	c := api{t: t, base: srv.URL(), token: srv.Bootstrap.Token}

	var integ slipway.Integration
	c.must("POST", "/api/v1/integrations", map[string]any{"provider": "gitea", "base_url": g.URL(), "token": token, "label": "local gitea"}, &integ)
	var repos struct {
		Items []struct{ ID string }
	}
	c.must("GET", "/api/v1/integrations/"+integ.ID+"/repos?search=site", nil, &repos)
	if len(repos.Items) != 1 {
		t.Fatalf("picker: %+v", repos.Items)
	}
	appName := giteatest.UniqueName("dk")
	c.must("POST", "/api/v1/applications", map[string]any{"name": appName}, nil)
	env := "/api/v1/environments/" + appName + "%2Fproduction/services"
	var svc slipway.Service
	c.must("POST", env, map[string]any{"name": "web",
		"source": map[string]any{"integration_id": integ.ID, "repo_id": repos.Items[0].ID, "branch": "main", "auto_deploy": true}}, &svc)
	var imgSvc slipway.Service
	c.must("POST", env, map[string]any{"name": "static", "type": "docker", "image": prebuilt}, &imgSvc)
	// Whatever the test leaves running or built is removed at the end,
	// after the server stopped.
	cleanupReleases(t, cli, func() *server.Server { return srv }, svc.ID, imgSvc.ID)

	host := c.host(svc.ID, slipway.HostGenerated)
	answers := func(want string) func() bool {
		return func() bool {
			code, body, err := get(srv.URL(), host)
			return err == nil && code == 200 && body == want+"\n"
		}
	}

	// Deploy by hand: the image is built from the Dockerfile; the process
	// runtime's build plan never runs.
	var first slipway.Deployment
	c.must("POST", "/api/v1/services/"+svc.ID+"/deploy", map[string]any{}, &first)
	first = c.waitLive(first.ID, 3*time.Minute)
	if first.CommitSHA != sha1 {
		t.Fatalf("deployed %s, want %s", first.CommitSHA, sha1)
	}
	waitFor(t, "the router to answer v1", 30*time.Second, answers("v1"))
	log1 := deploymentLog(c, first.ID)
	if strings.Contains(log1, "Detected") || !strings.Contains(log1, " : COPY www /www") {
		t.Errorf("first deployment did not build the Dockerfile (or ran the build plan):\n%s", log1)
	}
	if id, err := (images.Builder{Client: cli}).ImageID(ctx2(), "slipway/"+svc.ID+":"+sha1); err != nil || id == "" {
		t.Errorf("image of %s: %q %v", sha1, id, err)
	}

	// A push deploys the new commit.
	sha2 := g.PushCommit(t, user, pass, repo, "main", map[string]string{"www/index.html": "v2\n"}, "second version")
	var pushed slipway.Deployment
	waitFor(t, "a push deployment of "+sha2, time.Minute, func() bool {
		for _, d := range c.deployments(svc.ID) {
			if d.CommitSHA == sha2 {
				pushed = d
				return true
			}
		}
		return false
	})
	if pushed.Trigger != slipway.TriggerPush {
		t.Errorf("deployment of %s triggered by %s, want push", sha2, pushed.Trigger)
	}
	c.waitLive(pushed.ID, 3*time.Minute)
	waitFor(t, "the router to answer v2", 30*time.Second, answers("v2"))

	// Rollback: the first commit's image is reused, it answers again, and
	// auto-deploy is paused.
	var rb slipway.Deployment
	c.must("POST", "/api/v1/services/"+svc.ID+"/rollback", map[string]any{"to": first.ID}, &rb)
	c.waitLive(rb.ID, 3*time.Minute)
	waitFor(t, "the rolled-back v1 to answer", 30*time.Second, answers("v1"))
	if l := deploymentLog(c, rb.ID); !strings.Contains(l, "reusing the image") || strings.Contains(l, "fetching") {
		t.Errorf("rollback did not reuse the image of %s:\n%s", sha1, l)
	}
	var after slipway.Service
	c.must("GET", "/api/v1/services/"+svc.ID, nil, &after)
	if !after.AutoDeployPaused {
		t.Error("rollback did not pause auto-deploy")
	}

	// A restart of Slipway routes the live release again from its image:
	// nothing is fetched or built, and no deployment is created.
	before := len(c.deployments(svc.ID))
	addr := srv.Addr()
	sctx, scancel := contextWithTimeout(30 * time.Second)
	if err := srv.Shutdown(sctx); err != nil {
		t.Logf("shutdown: %v", err)
	}
	scancel()
	srv = startServerWith(t, dataDir, addr, -1, newRuntime)
	waitFor(t, "v1 to answer after a restart", time.Minute, answers("v1"))
	if n := len(c.deployments(svc.ID)); n != before {
		t.Errorf("the restart created %d deployments", n-before)
	}
	if l := deploymentLog(c, rb.ID); !strings.Contains(l, "restarting the live release") || strings.Contains(l, "fetching") {
		t.Errorf("the restart did not restore the release from its image:\n%s", l)
	}

	// A docker-type Service runs its image as it is.
	var imgDep slipway.Deployment
	c.must("POST", "/api/v1/services/"+imgSvc.ID+"/deploy", map[string]any{}, &imgDep)
	c.waitLive(imgDep.ID, 3*time.Minute)
	waitFor(t, "the prebuilt image to answer", 30*time.Second, func() bool {
		code, body, err := get(srv.URL(), c.host(imgSvc.ID, slipway.HostGenerated))
		return err == nil && code == 200 && body == "<p>prebuilt</p>\n"
	})
}

func deploymentLog(c api, id string) string {
	var logs struct {
		Items []struct{ Text string } `json:"items"`
	}
	c.must("GET", "/api/v1/deployments/"+id+"/logs", nil, &logs)
	var sb strings.Builder
	for _, l := range logs.Items {
		sb.WriteString(l.Text + "\n")
	}
	return sb.String()
}

// cleanupReleases stops srv at the end of the test, then removes the
// containers, swarm services and images Slipway made for the given
// Services.
func cleanupReleases(t *testing.T, cli *client.Client, srv func() *server.Server, serviceIDs ...string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv().Shutdown(ctx); err != nil {
			t.Logf("shutdown: %v", err)
		}
		for _, id := range serviceIDs {
			f := filters.NewArgs(filters.Arg("label", docker.LabelService+"="+id))
			if svcs, err := cli.ServiceList(ctx, dockerswarm.ServiceListOptions{Filters: f}); err == nil {
				for _, s := range svcs {
					if err := cli.ServiceRemove(ctx, s.ID); err != nil {
						t.Logf("remove swarm service %s: %v", s.Spec.Name, err)
					}
				}
			}
			// Swarm removes its tasks' containers itself, a moment later.
			waitFor(t, "the containers of "+id+" to go", 30*time.Second, func() bool {
				list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
				if err != nil {
					return true
				}
				for _, ct := range list {
					if ct.Labels["com.docker.swarm.service.id"] == "" {
						_ = cli.ContainerRemove(ctx, ct.ID, container.RemoveOptions{Force: true})
					}
				}
				return len(list) == 0
			})
			imgs, err := cli.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", "slipway/"+id))})
			if err != nil {
				t.Logf("list images of %s: %v", id, err)
				continue
			}
			for _, img := range imgs {
				for _, tag := range img.RepoTags {
					if _, err := cli.ImageRemove(ctx, tag, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil && !errdefs.IsNotFound(err) {
						t.Logf("remove image %s: %v", tag, err)
					}
				}
			}
		}
	})
}
