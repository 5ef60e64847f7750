// Package docker runs releases as Docker containers on the local Engine and
// builds their images from a Dockerfile (BuildImage).
//
// Each release is one container, labelled with its Service and deployment,
// on the host network: the runtime picks a free 127.0.0.1 port, passes it
// as PORT, and the app is expected to listen on 127.0.0.1:$PORT. Host
// networking means no port is published and no Docker proxy sits in the
// path; it also means the app's own bind address decides where it is
// reachable, so apps must bind 127.0.0.1 (the router in front of them is
// the only public listener).
//
// Containers run as an unprivileged user (the image's own non-root USER,
// else the release's user, else 65534), with every capability dropped, no
// privilege escalation, memory, PID and CPU limits, and a capped
// on-failure restart policy. Release.Replicas is not honoured here: one
// container answers on one port; the swarm runtime runs replicas.
package docker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"slipway.dev/slipway/internal/runtime"
)

// Labels Slipway puts on the containers (and swarm services) it runs.
const (
	LabelService    = "slipway.service"
	LabelDeployment = "slipway.deployment"
	LabelPort       = "slipway.port"
	LabelName       = "slipway.name"
)

// NobodyUser is the identity a container runs as when neither the image
// nor the release names a non-root one.
const NobodyUser = "65534:65534"

// Limits a container (or swarm task) gets when its runtime's options leave
// them zero. The swarm runtime takes the same ones, so a release is held to
// the same limits whichever runtime runs it.
const (
	DefaultMemoryBytes = 512 << 20
	DefaultPidsLimit   = 512
	DefaultMaxRestarts = 5
	DefaultStopGrace   = 10 * time.Second
)

// Options tune the runtime; zero fields take the defaults noted.
type Options struct {
	Logger        *slog.Logger  // default: discard
	MemoryBytes   int64         // per container; default 512 MiB
	PidsLimit     int64         // default 512
	CPUShares     int64         // relative weight; default 512 (Docker's own default is 1024)
	MaxRestarts   int           // on-failure restarts before Docker gives up; default 5
	StopGrace     time.Duration // SIGTERM to SIGKILL; default 10s
	HealthTimeout time.Duration // Start gives up after this; default 60s
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.MemoryBytes = cmp.Or(o.MemoryBytes, DefaultMemoryBytes)
	o.PidsLimit = cmp.Or(o.PidsLimit, DefaultPidsLimit)
	o.CPUShares = cmp.Or(o.CPUShares, 512)
	o.MaxRestarts = cmp.Or(o.MaxRestarts, DefaultMaxRestarts)
	o.StopGrace = cmp.Or(o.StopGrace, DefaultStopGrace)
	o.HealthTimeout = cmp.Or(o.HealthTimeout, 60*time.Second)
	return o
}

// Runtime is the docker runtime. It keeps no state a restart of Slipway
// would lose: containers are found again by their labels.
type Runtime struct {
	cli  client.APIClient
	opts Options

	mu sync.Mutex
	// followers cancel the goroutines copying a running container's output
	// to the logs writer given to Start, by deployment ID.
	followers map[string]context.CancelFunc
}

var (
	_ runtime.Runtime      = (*Runtime)(nil)
	_ runtime.LogReader    = (*Runtime)(nil)
	_ runtime.StatusReader = (*Runtime)(nil)
)

// New returns a docker runtime talking to the Engine through cli.
func New(cli client.APIClient, opts Options) *Runtime {
	return &Runtime{cli: cli, opts: opts.withDefaults(), followers: map[string]context.CancelFunc{}}
}

// Name implements runtime.Runtime.
func (r *Runtime) Name() string { return "docker" }

// Start implements runtime.Runtime. The container's output is copied to
// logs until the release is stopped, so logs must stay writable until
// then.
func (r *Runtime) Start(ctx context.Context, rel runtime.Release, logs io.Writer) (runtime.Instance, error) {
	if rel.DeploymentID == "" || rel.Image == "" {
		return runtime.Instance{}, fmt.Errorf("docker: start: release needs a deployment ID and an image")
	}
	if inst, ok, err := r.running(ctx, rel.DeploymentID); err != nil || ok {
		return inst, err
	}
	user, err := RunAsUser(ctx, r.cli, rel)
	if err != nil {
		return runtime.Instance{}, err
	}
	port, err := FreeLoopbackPort()
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("docker: start %s: %w", rel.DeploymentID, err)
	}
	addr := LoopbackAddr(port)

	id, err := r.create(ctx, rel, user, port)
	if err != nil {
		return runtime.Instance{}, err
	}
	if err := r.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		r.remove(context.WithoutCancel(ctx), id)
		return runtime.Instance{}, fmt.Errorf("docker: start container for %s: %w", rel.DeploymentID, err)
	}
	r.opts.Logger.InfoContext(ctx, "container started", "deployment", rel.DeploymentID, "container", shortID(id), "addr", addr, "user", user)
	if logs != nil {
		r.follow(rel.DeploymentID, id, logs)
	}

	hctx, cancel := context.WithTimeout(ctx, r.opts.HealthTimeout)
	defer cancel()
	err = WaitHealthy(hctx, addr, rel.HealthPath, func(ctx context.Context) error { return r.alive(ctx, id) })
	if err != nil {
		// The container's last words are the most useful part of the error;
		// read them before the container goes.
		cleanup := context.WithoutCancel(ctx)
		reason := err.Error()
		if tail := r.tail(cleanup, id, 20); tail != "" {
			reason += "; last output:\n" + tail
		}
		r.stopFollowing(rel.DeploymentID)
		r.remove(cleanup, id)
		return runtime.Instance{}, fmt.Errorf("docker: %w", &runtime.HealthCheckError{DeploymentID: rel.DeploymentID, Reason: reason})
	}
	return runtime.Instance{DeploymentID: rel.DeploymentID, Addr: addr}, nil
}

// running returns the instance of a release whose container already runs.
// A container of the release that is not running is removed, so Start
// begins afresh.
func (r *Runtime) running(ctx context.Context, deploymentID string) (runtime.Instance, bool, error) {
	found, err := r.containers(ctx, deploymentID)
	if err != nil {
		return runtime.Instance{}, false, err
	}
	for _, c := range found {
		port, perr := strconv.Atoi(c.Labels[LabelPort])
		if c.State == container.StateRunning && perr == nil {
			return runtime.Instance{DeploymentID: deploymentID, Addr: LoopbackAddr(port)}, true, nil
		}
		r.remove(ctx, c.ID)
	}
	return runtime.Instance{}, false, nil
}

// RunAsUser picks who a release's container runs as: the image's USER
// when it is not root, else the release's account, else nobody (65534).
func RunAsUser(ctx context.Context, cli client.ImageAPIClient, rel runtime.Release) (string, error) {
	img, err := cli.ImageInspect(ctx, rel.Image)
	if err != nil {
		return "", fmt.Errorf("docker: inspect image %s: %w", rel.Image, err)
	}
	if img.Config != nil && !isRoot(img.Config.User) {
		return img.Config.User, nil
	}
	if !rel.User.IsZero() && rel.User.UID != 0 {
		return fmt.Sprintf("%d:%d", rel.User.UID, rel.User.GID), nil
	}
	return NobodyUser, nil
}

// isRoot reports whether an image USER value means root (empty does).
func isRoot(user string) bool {
	name, _, _ := strings.Cut(user, ":")
	return name == "" || name == "root" || name == "0"
}

func (r *Runtime) create(ctx context.Context, rel runtime.Release, user string, port int) (string, error) {
	initProcess := true // reaps zombies and forwards SIGTERM for apps that run as PID 1 badly
	pids := r.opts.PidsLimit
	cfg := &container.Config{
		Image:  rel.Image,
		User:   user,
		Env:    Environ(rel.Env, port),
		Labels: ReleaseLabels(rel, port),
	}
	host := &container.HostConfig{
		NetworkMode:   network.NetworkHost,
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: r.opts.MaxRestarts},
		Init:          &initProcess,
		CapDrop:       []string{"ALL"},
		SecurityOpt:   []string{"no-new-privileges"},
		LogConfig:     container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m", "max-file": "3"}},
		Resources: container.Resources{
			Memory:     r.opts.MemoryBytes,
			MemorySwap: r.opts.MemoryBytes, // no swap beyond the memory limit
			PidsLimit:  &pids,
			CPUShares:  r.opts.CPUShares,
		},
	}
	name := ContainerName(rel)
	created, err := r.cli.ContainerCreate(ctx, cfg, host, nil, nil, name)
	if err != nil {
		return "", fmt.Errorf("docker: create container %s: %w", name, err)
	}
	return created.ID, nil
}

// Environ is the release's environment for a container: the Service's
// variables, sorted for stable specs, with PORT set by the runtime.
func Environ(vars map[string]string, port int) []string {
	env := make([]string, 0, len(vars)+1)
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		if k != "PORT" {
			env = append(env, k+"="+vars[k])
		}
	}
	return append(env, "PORT="+strconv.Itoa(port))
}

// ReleaseLabels are the labels that let a runtime find a release again.
func ReleaseLabels(rel runtime.Release, port int) map[string]string {
	return map[string]string{
		LabelService:    rel.ServiceID,
		LabelDeployment: rel.DeploymentID,
		LabelName:       rel.Name,
		LabelPort:       strconv.Itoa(port),
	}
}

var unsafeNameChars = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// ContainerName is "slipway-<name>-<deployment>", made safe for Docker.
func ContainerName(rel runtime.Release) string {
	name := "slipway-" + rel.DeploymentID
	if rel.Name != "" {
		name = "slipway-" + rel.Name + "-" + rel.DeploymentID
	}
	return unsafeNameChars.ReplaceAllString(name, "-")
}

// alive fails once the container has exited or restarted: a release that
// crashes while starting will not become healthy by waiting.
func (r *Runtime) alive(ctx context.Context, id string) error {
	c, err := r.cli.ContainerInspect(ctx, id)
	if err != nil {
		return fmt.Errorf("inspect container: %w", err)
	}
	s := c.State
	if s == nil {
		return nil
	}
	switch {
	case s.OOMKilled:
		return fmt.Errorf("container was killed for exceeding its memory limit")
	case s.Running && !s.Restarting && c.RestartCount == 0:
		return nil
	case s.Status == container.StateCreated:
		return nil
	}
	code := s.ExitCode
	if c.RestartCount > 0 {
		// A restarted container's state describes the new run; the exit
		// status worth reporting is the first crash's, kept in the events.
		if first, ok := r.firstExitCode(ctx, c); ok {
			code = first
		}
	}
	reason := fmt.Sprintf("container exited with status %d", code)
	if s.Error != "" {
		reason += " (" + s.Error + ")"
	}
	if c.RestartCount > 0 {
		reason += fmt.Sprintf(", restarted %d times", c.RestartCount)
	}
	return errors.New(reason)
}

// firstExitCode finds the exit status of the container's first run in the
// daemon's event log.
func (r *Runtime) firstExitCode(ctx context.Context, c container.InspectResponse) (int, bool) {
	created, err := time.Parse(time.RFC3339Nano, c.Created)
	if err != nil {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msgs, errs := r.cli.Events(ctx, events.ListOptions{
		Since:   strconv.FormatInt(created.Unix()-1, 10),
		Until:   strconv.FormatInt(time.Now().Unix()+1, 10),
		Filters: filters.NewArgs(filters.Arg("container", c.ID), filters.Arg("event", string(events.ActionDie))),
	})
	select {
	case m := <-msgs:
		code, err := strconv.Atoi(m.Actor.Attributes["exitCode"])
		return code, err == nil
	case <-errs:
		return 0, false
	}
}

// follow copies the container's output to logs in the background until
// the container stops or the release is stopped.
func (r *Runtime) follow(deploymentID, id string, logs io.Writer) {
	ctx, cancel := context.WithCancel(context.Background())
	r.mu.Lock()
	if old, ok := r.followers[deploymentID]; ok {
		old()
	}
	r.followers[deploymentID] = cancel
	r.mu.Unlock()
	go func() {
		defer cancel()
		rc, err := r.cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
		if err != nil {
			r.opts.Logger.Warn("follow container output", "deployment", deploymentID, "err", err)
			return
		}
		defer rc.Close()
		if _, err := stdcopy.StdCopy(logs, logs, rc); err != nil && ctx.Err() == nil {
			r.opts.Logger.Warn("follow container output", "deployment", deploymentID, "err", err)
		}
	}()
}

func (r *Runtime) stopFollowing(deploymentID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cancel, ok := r.followers[deploymentID]; ok {
		cancel()
		delete(r.followers, deploymentID)
	}
}

// tail returns the container's last n lines of output, stdout and stderr
// interleaved.
func (r *Runtime) tail(ctx context.Context, id string, n int) string {
	rc, err := r.cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(n)})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var b strings.Builder
	stdcopy.StdCopy(&b, &b, io.LimitReader(rc, 64<<10))
	return strings.TrimRight(b.String(), "\n")
}

// Stop implements runtime.Runtime: SIGTERM, the grace period, then the
// container is removed.
func (r *Runtime) Stop(ctx context.Context, deploymentID string) error {
	r.stopFollowing(deploymentID)
	found, err := r.containers(ctx, deploymentID)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range found {
		grace := int(r.opts.StopGrace / time.Second)
		if err := r.cli.ContainerStop(ctx, c.ID, container.StopOptions{Timeout: &grace}); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("docker: stop %s: %w", deploymentID, err))
			continue
		}
		if err := r.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{}); err != nil && !errdefs.IsNotFound(err) && !errdefs.IsConflict(err) {
			errs = append(errs, fmt.Errorf("docker: remove %s: %w", deploymentID, err))
		}
	}
	return errors.Join(errs...)
}

// remove force-removes a container, logging rather than returning a
// failure: callers use it to clean up after another error.
func (r *Runtime) remove(ctx context.Context, id string) {
	err := r.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
	if err != nil && !errdefs.IsNotFound(err) {
		r.opts.Logger.WarnContext(ctx, "remove container", "container", shortID(id), "err", err)
	}
}

// containers lists every container (running or not) of a deployment.
func (r *Runtime) containers(ctx context.Context, deploymentID string) ([]container.Summary, error) {
	found, err := r.cli.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelDeployment+"="+deploymentID)),
	})
	if err != nil {
		return nil, fmt.Errorf("docker: list containers of %s: %w", deploymentID, err)
	}
	return found, nil
}

// Logs implements runtime.LogReader with the output Docker retains.
func (r *Runtime) Logs(ctx context.Context, deploymentID string, w io.Writer) error {
	found, err := r.containers(ctx, deploymentID)
	if err != nil {
		return err
	}
	if len(found) == 0 {
		return fmt.Errorf("docker: logs of %s: %w", deploymentID, runtime.ErrUnknownRelease)
	}
	rc, err := r.cli.ContainerLogs(ctx, found[0].ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return fmt.Errorf("docker: logs of %s: %w", deploymentID, err)
	}
	defer rc.Close()
	if _, err := stdcopy.StdCopy(w, w, rc); err != nil {
		return fmt.Errorf("docker: logs of %s: %w", deploymentID, err)
	}
	return nil
}

// Status implements runtime.StatusReader.
func (r *Runtime) Status(ctx context.Context, deploymentID string) (runtime.Status, error) {
	found, err := r.containers(ctx, deploymentID)
	if err != nil {
		return runtime.Status{}, err
	}
	if len(found) == 0 {
		return runtime.Status{}, fmt.Errorf("docker: status of %s: %w", deploymentID, runtime.ErrUnknownRelease)
	}
	c, err := r.cli.ContainerInspect(ctx, found[0].ID)
	if err != nil {
		return runtime.Status{}, fmt.Errorf("docker: status of %s: %w", deploymentID, err)
	}
	st := runtime.Status{DeploymentID: deploymentID, Restarts: c.RestartCount}
	if port, err := strconv.Atoi(found[0].Labels[LabelPort]); err == nil {
		st.Addr = LoopbackAddr(port)
	}
	if s := c.State; s != nil {
		st.Running = s.Running && !s.Restarting
		st.StartedAt, _ = time.Parse(time.RFC3339Nano, s.StartedAt)
		if c.RestartCount > 0 || !s.Running {
			st.LastExit = fmt.Sprintf("exited with status %d", s.ExitCode)
			if s.OOMKilled {
				st.LastExit = "killed for exceeding its memory limit"
			}
		}
	}
	return st, nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
