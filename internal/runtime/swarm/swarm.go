// Package swarm runs releases as Docker Swarm services: one swarm service
// per Slipway Service (named "slipway-<name>"), updated in place for each
// new release with a start-first rolling update that swarm rolls back on
// failure.
//
// Tasks use the host network, like the docker runtime: each release gets
// its own free 127.0.0.1 port, passed as PORT, so during a start-first
// update the new tasks listen beside the old ones and the router switches
// between two addresses. The price of host networking is that one node
// can run only one copy of a release (every copy wants the same port).
// Replicas therefore scale across nodes: a release asks for Replicas, the
// runtime runs min(Replicas, ready nodes) tasks spread one per node, and
// says so in the deployment log when it had to run fewer. Images are
// not pushed anywhere: every node must already have the release's image
// (true on a one-node swarm, where the image was built).
//
// Swarm calls a task running as soon as its process starts (there is no
// container HEALTHCHECK: images need not ship a probe tool), so a release
// that crashes just after starting can replace the old task before it
// fails. Start then waits for swarm's rollback and for the previous
// release to answer its health check again before it reports the failure,
// so the router's old address is serving when Start returns.
//
// Stop removes the swarm service when the release it runs is stopped (the
// Service was stopped); stopping a release a later update already replaced
// is a no-op, because swarm stopped its tasks during the update.
package swarm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"slipway.dev/slipway/internal/runtime"
	"slipway.dev/slipway/internal/runtime/docker"
)

// Options tune the runtime; zero fields take the defaults noted.
type Options struct {
	Logger        *slog.Logger  // default: discard
	MemoryBytes   int64         // per task; default 512 MiB
	PidsLimit     int64         // per task; default 512
	NanoCPUs      int64         // per task; default 1 CPU
	MaxRestarts   uint64        // on-failure restarts per task; default 5
	StopGrace     time.Duration // SIGTERM to SIGKILL; default 10s
	UpdateMonitor time.Duration // how long swarm watches a new task for failure; default 3s
	HealthTimeout time.Duration // Start gives up (and rolls back) after this; default 90s
}

// withDefaults fills zero fields; the limits a task shares with a docker
// container take the docker runtime's defaults.
func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.MemoryBytes = cmp.Or(o.MemoryBytes, docker.DefaultMemoryBytes)
	o.PidsLimit = cmp.Or(o.PidsLimit, docker.DefaultPidsLimit)
	o.NanoCPUs = cmp.Or(o.NanoCPUs, 1e9)
	o.MaxRestarts = cmp.Or(o.MaxRestarts, docker.DefaultMaxRestarts)
	o.StopGrace = cmp.Or(o.StopGrace, docker.DefaultStopGrace)
	o.UpdateMonitor = cmp.Or(o.UpdateMonitor, 3*time.Second)
	o.HealthTimeout = cmp.Or(o.HealthTimeout, 90*time.Second)
	return o
}

// Runtime is the swarm runtime. Its state lives in swarm: services are
// found by their labels.
type Runtime struct {
	cli  client.APIClient
	opts Options
}

var (
	_ runtime.Runtime      = (*Runtime)(nil)
	_ runtime.LogReader    = (*Runtime)(nil)
	_ runtime.StatusReader = (*Runtime)(nil)
)

// New returns a swarm runtime; cli must talk to a swarm manager.
func New(cli client.APIClient, opts Options) *Runtime {
	return &Runtime{cli: cli, opts: opts.withDefaults()}
}

// Name implements runtime.Runtime.
func (r *Runtime) Name() string { return "swarm" }

// Start implements runtime.Runtime: it creates the Slipway Service's swarm
// service or rolls it to rel, then waits until every task of rel runs,
// the release answers its health check and swarm has finished the update.
// A failure rolls the service back to the release it ran before (or
// removes it, if rel was its first). Swarm keeps the task output; logs
// receives the runtime's own notes (Logs reads the tasks' output).
func (r *Runtime) Start(ctx context.Context, rel runtime.Release, logs io.Writer) (runtime.Instance, error) {
	if rel.DeploymentID == "" || rel.ServiceID == "" || rel.Image == "" {
		return runtime.Instance{}, fmt.Errorf("swarm: start: release needs a service ID, a deployment ID and an image")
	}
	if logs == nil {
		logs = io.Discard
	}
	existing, err := r.serviceOf(ctx, docker.LabelService, rel.ServiceID)
	if err != nil {
		return runtime.Instance{}, err
	}
	if existing != nil && existing.Spec.Labels[docker.LabelDeployment] == rel.DeploymentID {
		if port, err := strconv.Atoi(existing.Spec.Labels[docker.LabelPort]); err == nil {
			return runtime.Instance{DeploymentID: rel.DeploymentID, Addr: docker.LoopbackAddr(port)}, nil
		}
	}

	user, err := docker.RunAsUser(ctx, r.cli, rel)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("swarm: %w", err)
	}
	port, err := docker.FreeLoopbackPort()
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("swarm: start %s: %w", rel.DeploymentID, err)
	}
	replicas, err := r.replicas(ctx, rel, logs)
	if err != nil {
		return runtime.Instance{}, err
	}
	spec, err := r.spec(ctx, rel, user, port, replicas)
	if err != nil {
		return runtime.Instance{}, err
	}

	var serviceID string
	// Swarm keeps the status of the previous update until its updater picks
	// up the new one; anything that started before this moment is stale.
	issued := time.Now().Add(-time.Second)
	if existing == nil {
		created, err := r.cli.ServiceCreate(ctx, spec, swarm.ServiceCreateOptions{})
		if err != nil {
			return runtime.Instance{}, fmt.Errorf("swarm: create service %s: %w", spec.Name, err)
		}
		serviceID = created.ID
		fmt.Fprintf(logs, "swarm: created service %s (%d replica(s)) on 127.0.0.1:%d\n", spec.Name, replicas, port)
	} else {
		serviceID = existing.ID
		// Keep the name the service was created with, even if the Service
		// was renamed since: swarm cannot rename a service.
		spec.Name = existing.Spec.Name
		if _, err := r.cli.ServiceUpdate(ctx, serviceID, existing.Version, spec, swarm.ServiceUpdateOptions{}); err != nil {
			return runtime.Instance{}, fmt.Errorf("swarm: update service %s: %w", spec.Name, err)
		}
		fmt.Fprintf(logs, "swarm: rolling service %s to %s on 127.0.0.1:%d\n", spec.Name, rel.DeploymentID, port)
	}
	r.opts.Logger.InfoContext(ctx, "swarm service rolling", "service", spec.Name, "deployment", rel.DeploymentID, "port", port, "replicas", replicas)

	addr := docker.LoopbackAddr(port)
	if err := r.waitReady(ctx, serviceID, rel, addr, replicas, issued); err != nil {
		cleanup := context.WithoutCancel(ctx)
		reason := err.Error()
		if tail := r.failedTaskOutput(cleanup, serviceID, rel.DeploymentID, 20); tail != "" {
			reason += "; last output:\n" + tail
		}
		if existing == nil {
			r.removeService(cleanup, serviceID)
			if err := r.waitGone(cleanup, serviceID); err != nil {
				r.opts.Logger.WarnContext(ctx, "remove swarm service", "service", spec.Name, "err", err)
			}
			fmt.Fprintf(logs, "swarm: removed service %s after the failed first release\n", spec.Name)
		} else if rbErr := r.rollBack(cleanup, serviceID, rel.DeploymentID, issued); rbErr != nil {
			reason += "; rollback failed: " + rbErr.Error()
		} else {
			fmt.Fprintf(logs, "swarm: rolled service %s back to %s\n", spec.Name, existing.Spec.Labels[docker.LabelDeployment])
		}
		return runtime.Instance{}, fmt.Errorf("swarm: %w", &runtime.HealthCheckError{DeploymentID: rel.DeploymentID, Reason: reason})
	}
	return runtime.Instance{DeploymentID: rel.DeploymentID, Addr: addr}, nil
}

// replicas is how many tasks rel runs: what it asks for, at most one per
// ready node (see the package comment).
func (r *Runtime) replicas(ctx context.Context, rel runtime.Release, logs io.Writer) (uint64, error) {
	want := max(rel.Replicas, 1)
	nodes, err := r.cli.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return 0, fmt.Errorf("swarm: list nodes: %w", err)
	}
	ready := 0
	for _, n := range nodes {
		if n.Status.State == swarm.NodeStateReady && n.Spec.Availability == swarm.NodeAvailabilityActive {
			ready++
		}
	}
	if ready == 0 {
		return 0, fmt.Errorf("swarm: no ready node to run %s on", rel.DeploymentID)
	}
	if want > ready {
		fmt.Fprintf(logs, "swarm: running %d replica(s), not %d: on host networking each node runs one copy on the release's port, and %d node(s) are ready\n", ready, want, ready)
		want = ready
	}
	return uint64(want), nil
}

// labelHealthPath keeps a release's health path on its service spec.
const labelHealthPath = "slipway.health_path"

var unsafeNameChars = regexp.MustCompile(`[^a-z0-9-]+`)

// ServiceName is the swarm service of a Slipway Service: "slipway-<name>",
// lower-case, DNS-safe and at most 63 characters.
func ServiceName(rel runtime.Release) string {
	base := rel.Name
	if base == "" {
		base = rel.ServiceID
	}
	name := strings.Trim(unsafeNameChars.ReplaceAllString(strings.ToLower(base), "-"), "-")
	name = "slipway-" + name
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	return name
}

func (r *Runtime) spec(ctx context.Context, rel runtime.Release, user string, port int, replicas uint64) (swarm.ServiceSpec, error) {
	hostNet, err := r.hostNetwork(ctx)
	if err != nil {
		return swarm.ServiceSpec{}, err
	}
	labels := docker.ReleaseLabels(rel, port)
	labels[labelHealthPath] = rel.HealthPath // a rollback checks the previous release with it
	initProcess := true
	grace := r.opts.StopGrace
	update := &swarm.UpdateConfig{
		Parallelism:   1,
		Order:         swarm.UpdateOrderStartFirst,
		FailureAction: swarm.UpdateFailureActionRollback,
		Monitor:       r.opts.UpdateMonitor,
	}
	rollback := &swarm.UpdateConfig{
		Parallelism: 1,
		Order:       swarm.UpdateOrderStartFirst,
		// The rollback's first task can die on the port of the previous
		// release's old task while that one is still shutting down; the
		// restart policy retries it, so the rollback must not pause there.
		FailureAction: swarm.UpdateFailureActionContinue,
		Monitor:       r.opts.UpdateMonitor,
	}
	return swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: ServiceName(rel), Labels: labels},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{
				Image:           rel.Image,
				Labels:          labels,
				Env:             docker.Environ(rel.Env, port),
				User:            user,
				Init:            &initProcess,
				StopGracePeriod: &grace,
				CapabilityDrop:  []string{"ALL"},
			},
			Resources: &swarm.ResourceRequirements{
				Limits: &swarm.Limit{NanoCPUs: r.opts.NanoCPUs, MemoryBytes: r.opts.MemoryBytes, Pids: r.opts.PidsLimit},
			},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionOnFailure, MaxAttempts: &r.opts.MaxRestarts},
			Placement: &swarm.Placement{
				Preferences: []swarm.PlacementPreference{{Spread: &swarm.SpreadOver{SpreadDescriptor: "node.id"}}},
			},
			Networks: []swarm.NetworkAttachmentConfig{{Target: hostNet}},
		},
		Mode:           swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
		UpdateConfig:   update,
		RollbackConfig: rollback,
		// No ports are published: the router reaches each node's copy on
		// the node's loopback port.
		EndpointSpec: &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR},
	}, nil
}

// hostNetwork returns the ID of the swarm-scoped "host" network.
func (r *Runtime) hostNetwork(ctx context.Context) (string, error) {
	n, err := r.cli.NetworkInspect(ctx, network.NetworkHost, network.InspectOptions{Scope: "swarm"})
	if err != nil {
		return "", fmt.Errorf("swarm: find the host network: %w", err)
	}
	return n.ID, nil
}

// waitReady waits for rel's tasks to run, its health check to pass and
// swarm to call the update complete, failing fast when a task of rel
// fails or swarm starts rolling back by itself.
func (r *Runtime) waitReady(ctx context.Context, serviceID string, rel runtime.Release, addr string, replicas uint64, issued time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.HealthTimeout)
	defer cancel()
	alive := func(ctx context.Context) error {
		_, err := r.progress(ctx, serviceID, rel.DeploymentID, issued)
		return err
	}
	if err := docker.WaitHealthy(ctx, addr, rel.HealthPath, alive); err != nil {
		return err
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		p, err := r.progress(ctx, serviceID, rel.DeploymentID, issued)
		if err != nil {
			return err
		}
		if p.running >= replicas && p.updateDone {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up waiting (%w): %d of %d task(s) running, update state %q", ctx.Err(), p.running, replicas, p.updateState)
		case <-tick.C:
		}
	}
}

type rollout struct {
	running     uint64
	updateState swarm.UpdateState
	updateDone  bool
}

// progress reports how far rel's rollout is, or why it failed. An update
// status older than issued belongs to an earlier release and is ignored.
func (r *Runtime) progress(ctx context.Context, serviceID, deploymentID string, issued time.Time) (rollout, error) {
	svc, _, err := r.cli.ServiceInspectWithRaw(ctx, serviceID, swarm.ServiceInspectOptions{})
	if err != nil {
		return rollout{}, fmt.Errorf("inspect service: %w", err)
	}
	var p rollout
	if us := svc.UpdateStatus; us != nil && !current(us, issued) {
		p.updateState = "pending"
	} else if us != nil {
		p.updateState = us.State
		switch us.State {
		case swarm.UpdateStateRollbackStarted, swarm.UpdateStateRollbackCompleted, swarm.UpdateStateRollbackPaused, swarm.UpdateStatePaused:
			return p, fmt.Errorf("swarm stopped the update (%s): %s", us.State, us.Message)
		}
		p.updateDone = us.State == swarm.UpdateStateCompleted
	} else {
		p.updateDone = true // a fresh service has no update to finish
	}
	tasks, err := r.tasks(ctx, serviceID, deploymentID)
	if err != nil {
		return p, err
	}
	for _, t := range tasks {
		switch t.Status.State {
		case swarm.TaskStateRunning:
			if t.DesiredState == swarm.TaskStateRunning {
				p.running++
			}
		case swarm.TaskStateFailed, swarm.TaskStateRejected:
			msg := t.Status.Err
			if msg == "" {
				msg = t.Status.Message
			}
			if cs := t.Status.ContainerStatus; cs != nil && cs.ExitCode != 0 {
				msg = fmt.Sprintf("%s (exit status %d)", msg, cs.ExitCode)
			}
			return p, fmt.Errorf("task %s %s: %s", shortID(t.ID), t.Status.State, msg)
		}
	}
	return p, nil
}

// tasks lists the service's tasks that belong to deploymentID.
func (r *Runtime) tasks(ctx context.Context, serviceID, deploymentID string) ([]swarm.Task, error) {
	all, err := r.cli.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", serviceID))})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	var mine []swarm.Task
	for _, t := range all {
		if t.Spec.ContainerSpec != nil && t.Spec.ContainerSpec.Labels[docker.LabelDeployment] == deploymentID {
			mine = append(mine, t)
		}
	}
	return mine, nil
}

// failedTaskOutput returns the last lines of output of rel's most recent
// task that printed anything: usually the one whose failure the deployment
// should show (a task swarm just created in its place has no output yet).
func (r *Runtime) failedTaskOutput(ctx context.Context, serviceID, deploymentID string, n int) string {
	tasks, err := r.tasks(ctx, serviceID, deploymentID)
	if err != nil {
		return ""
	}
	slices.SortFunc(tasks, func(a, b swarm.Task) int { return b.CreatedAt.Compare(a.CreatedAt) })
	for _, t := range tasks {
		rc, err := r.cli.TaskLogs(ctx, t.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(n)})
		if err != nil {
			continue
		}
		var b strings.Builder
		stdcopy.StdCopy(&b, &b, io.LimitReader(rc, 64<<10))
		rc.Close()
		if out := strings.TrimRight(b.String(), "\n"); out != "" {
			return out
		}
	}
	return ""
}

// rollBack returns the service to its previous spec, unless swarm began
// doing so itself after the failed update was issued, and waits for the
// rollback to finish.
func (r *Runtime) rollBack(ctx context.Context, serviceID, failedDeployment string, issued time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.HealthTimeout)
	defer cancel()
	svc, _, err := r.cli.ServiceInspectWithRaw(ctx, serviceID, swarm.ServiceInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect service: %w", err)
	}
	if svc.Spec.Labels[docker.LabelDeployment] == failedDeployment && !rollingBack(svc, issued) {
		issued = time.Now().Add(-time.Second)
		_, err := r.cli.ServiceUpdate(ctx, serviceID, svc.Version, svc.Spec, swarm.ServiceUpdateOptions{Rollback: "previous"})
		if err != nil {
			return fmt.Errorf("roll back: %w", err)
		}
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		svc, _, err := r.cli.ServiceInspectWithRaw(ctx, serviceID, swarm.ServiceInspectOptions{})
		if err != nil {
			return fmt.Errorf("inspect service: %w", err)
		}
		if us := svc.UpdateStatus; us != nil && current(us, issued) {
			switch us.State {
			case swarm.UpdateStateRollbackCompleted:
				return r.waitServing(ctx, svc)
			case swarm.UpdateStateRollbackPaused:
				return fmt.Errorf("rollback paused: %s", us.Message)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("rollback did not finish: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// waitServing waits until the release a rolled-back service runs again
// has a running task and answers its health check. Under start-first,
// swarm may already have stopped that release's old task when the failed
// one briefly ran, so the previous release is only back once it answers.
func (r *Runtime) waitServing(ctx context.Context, svc swarm.Service) error {
	deploymentID := svc.Spec.Labels[docker.LabelDeployment]
	port, err := strconv.Atoi(svc.Spec.Labels[docker.LabelPort])
	if err != nil {
		return fmt.Errorf("service %s has no port label", svc.Spec.Name)
	}
	alive := func(ctx context.Context) error {
		tasks, err := r.tasks(ctx, svc.ID, deploymentID)
		if err != nil {
			return err
		}
		// A task counts once it has run for the monitor period: the first
		// task of the rollback can die on a port the old task still holds.
		for _, t := range tasks {
			if t.Status.State == swarm.TaskStateRunning && t.DesiredState == swarm.TaskStateRunning &&
				time.Since(t.Status.Timestamp) >= r.opts.UpdateMonitor {
				return nil
			}
		}
		return errNoRunningTask
	}
	for {
		err := docker.WaitHealthy(ctx, docker.LoopbackAddr(port), svc.Spec.Labels[labelHealthPath], alive)
		if !errors.Is(err, errNoRunningTask) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s has no running task after the rollback: %w", deploymentID, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

var errNoRunningTask = errors.New("no running task")

// current reports whether an update status describes an update started at
// or after issued.
func current(us *swarm.UpdateStatus, issued time.Time) bool {
	return us.StartedAt != nil && !us.StartedAt.Before(issued)
}

func rollingBack(svc swarm.Service, issued time.Time) bool {
	us := svc.UpdateStatus
	return us != nil && current(us, issued) && (us.State == swarm.UpdateStateRollbackStarted || us.State == swarm.UpdateStateRollbackCompleted)
}

// Stop implements runtime.Runtime. Only the release a service currently
// runs is stopped, by removing the service; the tasks of an older release
// were already replaced by the update that superseded it.
func (r *Runtime) Stop(ctx context.Context, deploymentID string) error {
	svc, err := r.serviceOf(ctx, docker.LabelDeployment, deploymentID)
	if err != nil || svc == nil {
		return err
	}
	r.removeService(ctx, svc.ID)
	return r.waitGone(ctx, svc.ID)
}

func (r *Runtime) removeService(ctx context.Context, serviceID string) {
	if err := r.cli.ServiceRemove(ctx, serviceID); err != nil && !errdefs.IsNotFound(err) {
		r.opts.Logger.WarnContext(ctx, "remove swarm service", "service", serviceID, "err", err)
	}
}

// waitGone waits until the removed service's containers have exited, so a
// stopped release no longer answers when Stop returns.
func (r *Runtime) waitGone(ctx context.Context, serviceID string) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.StopGrace+30*time.Second)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		left, err := r.cli.ContainerList(ctx, container.ListOptions{
			Filters: filters.NewArgs(filters.Arg("label", "com.docker.swarm.service.id="+serviceID)),
		})
		if err != nil {
			return fmt.Errorf("swarm: list containers of removed service: %w", err)
		}
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("swarm: %d container(s) of the removed service still run: %w", len(left), ctx.Err())
		case <-tick.C:
		}
	}
}

// serviceOf finds the Slipway-managed swarm service whose label key has
// value; nil when there is none.
func (r *Runtime) serviceOf(ctx context.Context, key, value string) (*swarm.Service, error) {
	list, err := r.cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("label", key+"="+value))})
	if err != nil {
		return nil, fmt.Errorf("swarm: list services with %s=%s: %w", key, value, err)
	}
	if len(list) == 0 {
		return nil, nil
	}
	return &list[0], nil
}

// Logs implements runtime.LogReader with the output swarm keeps for the
// tasks of the release.
func (r *Runtime) Logs(ctx context.Context, deploymentID string, w io.Writer) error {
	svc, err := r.serviceOf(ctx, docker.LabelDeployment, deploymentID)
	if err != nil {
		return err
	}
	if svc == nil {
		return fmt.Errorf("swarm: logs of %s: %w", deploymentID, runtime.ErrUnknownRelease)
	}
	tasks, err := r.tasks(ctx, svc.ID, deploymentID)
	if err != nil {
		return fmt.Errorf("swarm: logs of %s: %w", deploymentID, err)
	}
	var errs []error
	for _, t := range tasks {
		rc, err := r.cli.TaskLogs(ctx, t.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		_, err = stdcopy.StdCopy(w, w, rc)
		rc.Close()
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("swarm: logs of %s: %w", deploymentID, err)
	}
	return nil
}

// Status implements runtime.StatusReader. Restarts counts the release's
// tasks swarm had to replace.
func (r *Runtime) Status(ctx context.Context, deploymentID string) (runtime.Status, error) {
	svc, err := r.serviceOf(ctx, docker.LabelDeployment, deploymentID)
	if err != nil {
		return runtime.Status{}, err
	}
	if svc == nil {
		return runtime.Status{}, fmt.Errorf("swarm: status of %s: %w", deploymentID, runtime.ErrUnknownRelease)
	}
	st := runtime.Status{DeploymentID: deploymentID}
	if port, err := strconv.Atoi(svc.Spec.Labels[docker.LabelPort]); err == nil {
		st.Addr = docker.LoopbackAddr(port)
	}
	tasks, err := r.tasks(ctx, svc.ID, deploymentID)
	if err != nil {
		return runtime.Status{}, fmt.Errorf("swarm: status of %s: %w", deploymentID, err)
	}
	for _, t := range tasks {
		switch {
		case t.Status.State == swarm.TaskStateRunning && t.DesiredState == swarm.TaskStateRunning:
			st.Running = true
			if st.StartedAt.IsZero() || t.Status.Timestamp.Before(st.StartedAt) {
				st.StartedAt = t.Status.Timestamp
			}
		case t.Status.State == swarm.TaskStateFailed || t.Status.State == swarm.TaskStateRejected:
			st.Restarts++
			st.LastExit = t.Status.Err
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
