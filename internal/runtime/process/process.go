// Package process is the embedded runtime: each release runs as a
// supervised process group of the Service's own user (internal/sandbox),
// listening on a 127.0.0.1 port Slipway picks and passes in PORT. A
// release counts as started once it answers its health check; after that
// it is restarted with capped exponential back-off whenever it exits, and
// its output is kept in a ring buffer for the runtime logs.
//
// Each release runs in a control group of its own ("release-<deployment>",
// see internal/sandbox/cgroup) with memory, pids and CPU limits, and with
// the Service's private /tmp and /dev/shm. Stop and every restart kill the
// whole group, so a process the app double-forked goes with it; a release
// is not tied to Slipway's own process. Traffic only moves once the
// health check passed on a listener owned by the release's own user, so
// another Service cannot take the port between allocation and switch.
//
// It runs one process per release: Release.Replicas is ignored here (use
// the swarm runtime for replicas).
package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"slipway.dev/slipway/internal/runtime"
	"slipway.dev/slipway/internal/sandbox"
	"slipway.dev/slipway/internal/sandbox/cgroup"
)

// Options tune the runtime; zero fields take the defaults in brackets.
type Options struct {
	HealthTimeout  time.Duration  // how long a release may take to become healthy [60s]
	GracePeriod    time.Duration  // between SIGTERM and SIGKILL on Stop [10s]
	MinBackoff     time.Duration  // first restart delay after a crash [250ms]
	MaxBackoff     time.Duration  // restart delay cap [30s]
	StableAfter    time.Duration  // a run this long resets the back-off [30s]
	LogBufferBytes int            // runtime log ring buffer per release [256 KiB]
	Limits         sandbox.Limits // [sandbox.RunLimits()]
	// PickPort chooses a release's port [a free 127.0.0.1 port]; tests set
	// it to race for the port.
	PickPort func() (int, error)
	// ProcNet is where the listener-owner check reads tcp and tcp6
	// [/proc/net].
	ProcNet string
}

// Runtime is the process runtime.
type Runtime struct {
	logger *slog.Logger
	sb     *sandbox.Manager
	opts   Options

	mu    sync.Mutex
	procs map[string]*supervised // by deployment id
}

var (
	_ runtime.Runtime      = (*Runtime)(nil)
	_ runtime.LogReader    = (*Runtime)(nil)
	_ runtime.StatusReader = (*Runtime)(nil)
)

// New returns a process runtime that runs releases through sb.
func New(logger *slog.Logger, sb *sandbox.Manager, opts Options) *Runtime {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.HealthTimeout, 60*time.Second)
	def(&opts.GracePeriod, 10*time.Second)
	def(&opts.MinBackoff, 250*time.Millisecond)
	def(&opts.MaxBackoff, 30*time.Second)
	def(&opts.StableAfter, 30*time.Second)
	if opts.LogBufferBytes <= 0 {
		opts.LogBufferBytes = 256 << 10
	}
	if opts.Limits == (sandbox.Limits{}) {
		opts.Limits = sandbox.RunLimits()
	}
	// Releases are owned by this runtime's table; ones a previous run left
	// behind cannot be adopted yet (their live deployments are restarted
	// from their builds by the pipeline), so they are stopped here rather
	// than left running unrouted.
	if cg := sb.Cgroups(); cg != nil {
		for _, n := range cg.KillStale(logger, "release-") {
			logger.Warn("stopped a release left by a previous run", "cgroup", n)
		}
	}
	return &Runtime{logger: logger, sb: sb, opts: opts, procs: map[string]*supervised{}}
}

// Name returns "process".
func (r *Runtime) Name() string { return "process" }

// Start runs rel and returns once it answers its health check. Output goes
// to logs until then, and to the runtime log buffer always.
func (r *Runtime) Start(ctx context.Context, rel runtime.Release, logs io.Writer) (runtime.Instance, error) {
	if rel.DeploymentID == "" || rel.Command == "" || rel.Dir == "" {
		return runtime.Instance{}, errors.New("process: release needs a deployment id, a directory and a command")
	}
	r.mu.Lock()
	if p, ok := r.procs[rel.DeploymentID]; ok {
		r.mu.Unlock()
		return runtime.Instance{DeploymentID: rel.DeploymentID, Addr: p.addr}, nil
	}
	r.mu.Unlock()

	port, err := r.pickPort()
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("process: pick a port: %w", err)
	}
	group, err := r.sb.NewGroup("release-"+rel.DeploymentID, r.opts.Limits)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("process: %w", err)
	}
	scratch, err := r.sb.Scratch(ctx, rel.ServiceID)
	if err != nil {
		group.Remove()
		return runtime.Instance{}, fmt.Errorf("process: %w", err)
	}
	p := &supervised{
		group:   group,
		scratch: scratch,
		rt:      r,
		rel:     rel,
		addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		port:    port,
		ring:    newRing(r.opts.LogBufferBytes),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if logs != nil {
		p.startLogs = logs
	}
	exited, err := p.launch()
	if err != nil {
		group.Remove()
		return runtime.Instance{}, fmt.Errorf("process: start %s: %w", rel.DeploymentID, err)
	}
	if err, gone := p.waitHealthy(ctx, exited); err != nil {
		if !gone {
			p.kill(exited)
		}
		p.killGroup()
		group.Remove()
		return runtime.Instance{}, err
	}
	p.detachStartLogs()

	r.mu.Lock()
	r.procs[rel.DeploymentID] = p
	r.mu.Unlock()
	go p.supervise(exited)
	r.logger.Info("release started", "deployment", rel.DeploymentID, "addr", p.addr)
	return runtime.Instance{DeploymentID: rel.DeploymentID, Addr: p.addr}, nil
}

// Stop sends SIGTERM to the release's process group, then SIGKILL after
// the grace period. The caller drains the router before calling Stop.
func (r *Runtime) Stop(ctx context.Context, deploymentID string) error {
	r.mu.Lock()
	p, ok := r.procs[deploymentID]
	delete(r.procs, deploymentID)
	r.mu.Unlock()
	if !ok {
		return nil
	}
	close(p.stop)
	p.signal(syscall.SIGTERM)
	grace := time.NewTimer(r.opts.GracePeriod)
	defer grace.Stop()
	select {
	case <-p.done:
	case <-grace.C:
		p.signal(syscall.SIGKILL)
		<-p.done
	case <-ctx.Done():
		p.signal(syscall.SIGKILL)
		<-p.done
	}
	// Whatever the app detached from its process group goes too.
	p.killGroup()
	p.group.Remove()
	r.logger.Info("release stopped", "deployment", deploymentID)
	return nil
}

// StopAll stops every release, for a graceful shutdown of Slipway: the
// next start restores live releases from their builds.
func (r *Runtime) StopAll(ctx context.Context) error {
	r.mu.Lock()
	ids := make([]string, 0, len(r.procs))
	for id := range r.procs {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	for _, id := range ids {
		if err := r.Stop(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// Logs writes the retained output of a running release.
func (r *Runtime) Logs(ctx context.Context, deploymentID string, w io.Writer) error {
	p, err := r.get(deploymentID)
	if err != nil {
		return err
	}
	_, err = w.Write(p.ring.Bytes())
	return err
}

// Status reports on a running release.
func (r *Runtime) Status(ctx context.Context, deploymentID string) (runtime.Status, error) {
	p, err := r.get(deploymentID)
	if err != nil {
		return runtime.Status{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return runtime.Status{DeploymentID: deploymentID, Addr: p.addr, Running: p.running,
		Restarts: p.restarts, StartedAt: p.startedAt, LastExit: p.lastExit}, nil
}

func (r *Runtime) get(id string) (*supervised, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.procs[id]
	if !ok {
		return nil, fmt.Errorf("process: %s: %w", id, runtime.ErrUnknownRelease)
	}
	return p, nil
}

// supervised is one release's process and its restart state.
type supervised struct {
	group   *cgroup.Group // nil where the host has no cgroups
	scratch sandbox.Scratch
	rt      *Runtime
	rel     runtime.Release
	addr    string
	port    int
	ring    *ring
	stop    chan struct{} // closed by Stop
	done    chan struct{} // closed when the supervisor has nothing left running

	mu        sync.Mutex
	cmd       *exec.Cmd
	running   bool
	restarts  int
	startedAt time.Time
	lastExit  string

	logMu     sync.Mutex // held while writing to startLogs, so detaching waits for a write in progress
	startLogs io.Writer  // the deployment log, until the release is healthy
}

// Write fans output to the ring buffer and, while starting, the deployment log.
func (p *supervised) Write(b []byte) (int, error) {
	p.ring.Write(b)
	p.logMu.Lock()
	defer p.logMu.Unlock()
	if p.startLogs != nil {
		p.startLogs.Write(b)
	}
	return len(b), nil
}

func (p *supervised) detachStartLogs() {
	p.logMu.Lock()
	p.startLogs = nil
	p.logMu.Unlock()
}

// launch starts the process and returns a channel that receives its exit.
func (p *supervised) launch() (<-chan error, error) {
	env := make(map[string]string, len(p.rel.Env)+1)
	for k, v := range p.rel.Env {
		env[k] = v
	}
	env["PORT"] = strconv.Itoa(p.port)
	cmd := p.rt.sb.Command(sandbox.Spec{User: p.rel.User, Home: p.rel.Dir, Dir: p.rel.Dir,
		Script: p.rel.Command, Env: env, Limits: p.rt.opts.Limits, Setpgid: true, Group: p.group, Scratch: p.scratch})
	cmd.Stdout = p
	cmd.Stderr = p
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.cmd, p.running, p.startedAt = cmd, true, time.Now()
	p.mu.Unlock()
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.running = false
		p.mu.Unlock()
		exited <- err
	}()
	return exited, nil
}

func (p *supervised) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		// The negative pid addresses the whole process group, so children
		// the start command spawned go too.
		syscall.Kill(-cmd.Process.Pid, sig)
	}
}

// killGroup kills every process left in the release's control group.
func (p *supervised) killGroup() {
	if err := p.group.Kill(); err != nil {
		p.rt.logger.Warn("kill release processes", "deployment", p.rel.DeploymentID, "err", err)
	}
}

// exitReason explains an exit, naming an out-of-memory kill the control
// group counted since the last look.
func (p *supervised) exitReason(err error, oomBefore int) string {
	if p.group.OOMKills() > oomBefore {
		return fmt.Sprintf("out of memory: killed at the release's %d MiB memory limit", p.rt.opts.Limits.MemoryMB)
	}
	return exitReason(err)
}

func (p *supervised) kill(exited <-chan error) {
	p.signal(syscall.SIGKILL)
	<-exited
}

// waitHealthy polls the health check until it passes, the process exits,
// the health timeout passes or ctx ends. gone reports that the process
// already exited.
func (p *supervised) waitHealthy(ctx context.Context, exited <-chan error) (err error, gone bool) {
	fail := func(reason string) error {
		return &runtime.HealthCheckError{DeploymentID: p.rel.DeploymentID, Reason: reason}
	}
	deadline := time.NewTimer(p.rt.opts.HealthTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	client := &http.Client{
		Timeout:       2 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	path := p.rel.HealthPath
	if path == "" {
		path = "/"
	} else if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	last := "no answer yet"
	for {
		select {
		case err := <-exited:
			// Hand the exit back so kill() does not wait forever.
			reason := "the process exited before it became healthy: " + p.exitReason(err, 0)
			if tail := lastLines(p.ring.Bytes(), 5); tail != "" {
				reason += "; last output: " + tail
			}
			return fail(reason), true
		case <-deadline.C:
			return fail(fmt.Sprintf("no healthy answer on port %d within %s (last: %s)", p.port, p.rt.opts.HealthTimeout, last)), false
		case <-ctx.Done():
			return fmt.Errorf("process: waiting for %s to become healthy: %w", p.rel.DeploymentID, ctx.Err()), false
		case <-tick.C:
		}
		resp, err := client.Get("http://" + p.addr + path)
		if err != nil {
			last = "connection failed"
			continue
		}
		resp.Body.Close()
		healthy := resp.StatusCode < 400
		if p.rel.HealthPath == "" {
			healthy = resp.StatusCode < 500
		}
		if healthy {
			// The answer must come from the release itself: a listener of
			// another user on the port (another Service that grabbed it
			// after allocation) never gets the traffic.
			if err := p.checkListenerOwner(); err != nil {
				return fail(err.Error()), false
			}
			return nil, false
		}
		last = fmt.Sprintf("GET %s answered %d", path, resp.StatusCode)
	}
}

// supervise restarts the process whenever it exits, until Stop.
func (p *supervised) supervise(exited <-chan error) {
	defer close(p.done)
	backoff := p.rt.opts.MinBackoff
	oomSeen := p.group.OOMKills()
	for {
		var err error
		select {
		case err = <-exited:
		case <-p.stop:
			<-exited // Stop signals the group; wait for it to go
			return
		}
		select {
		case <-p.stop:
			return
		default:
		}
		// A restart starts from an empty group: nothing the previous run
		// detached survives into the next.
		reason := p.exitReason(err, oomSeen)
		oomSeen = p.group.OOMKills()
		p.killGroup()
		p.mu.Lock()
		ran := time.Since(p.startedAt)
		p.lastExit = reason
		p.restarts++
		restarts := p.restarts
		p.mu.Unlock()
		if ran >= p.rt.opts.StableAfter {
			backoff = p.rt.opts.MinBackoff
		}
		p.rt.logger.Warn("release exited; restarting", "deployment", p.rel.DeploymentID,
			"reason", reason, "restarts", restarts, "backoff", backoff)
		fmt.Fprintf(p.ring, "slipway: process exited (%s); restarting in %s\n", reason, backoff)
		select {
		case <-time.After(backoff):
		case <-p.stop:
			return
		}
		backoff = min(backoff*2, p.rt.opts.MaxBackoff)
		next, lerr := p.launch()
		if lerr != nil {
			p.rt.logger.Error("restart failed", "deployment", p.rel.DeploymentID, "err", lerr)
			fail := make(chan error, 1)
			fail <- lerr
			exited = fail
			continue
		}
		exited = next
	}
}

func exitReason(err error) string {
	if err == nil || errors.Is(err, exec.ErrWaitDelay) {
		return "exited with status 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by signal " + ws.Signal().String()
		}
		return "exited with status " + strconv.Itoa(ee.ExitCode())
	}
	return err.Error()
}

func (r *Runtime) pickPort() (int, error) {
	if r.opts.PickPort != nil {
		return r.opts.PickPort()
	}
	return freePort()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, " | "))
}

// ring keeps the last size bytes written.
type ring struct {
	mu   sync.Mutex
	buf  []byte
	size int
}

func newRing(size int) *ring { return &ring{size: size} }

func (r *ring) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, b...)
	if over := len(r.buf) - r.size; over > 0 {
		r.buf = append(r.buf[:0], r.buf[over:]...)
	}
	return len(b), nil
}

// Bytes returns a copy of the retained output.
func (r *ring) Bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.buf...)
}
