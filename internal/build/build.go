// Package build turns one commit of a Service into a runnable workspace for
// the process runtime: it fetches the commit (internal/clone), then runs the
// Service's install and build commands, or defaults detected from the files
// (Go, Node.js, Python, a static site, a Procfile), as the Service's own
// unprivileged user inside its own workspace (internal/sandbox).
//
// Image runtimes build from a Dockerfile instead: for them a SourceOnly
// request only fetches the commit into a fresh directory, runs nothing and
// caches nothing (the image is the cache).
//
// Builds are cached by (Service, commit SHA): a redeploy of a SHA that
// already built reuses the finished workspace unless NoCache is set. The
// record of a finished build lives in a state directory only Slipway can
// write, so user code cannot forge a cache hit.
package build

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/clone"
	"slipway.dev/slipway/internal/runtime"
	"slipway.dev/slipway/internal/sandbox"
)

// Options configure a Builder.
type Options struct {
	// StateDir records finished builds; default: <sandbox root>/.builds,
	// created 0700.
	StateDir string
	// SelfPath is the slipway binary, used as the start command of static
	// sites ("slipway static-serve"). Default: os.Executable.
	SelfPath string
	// Limits for install and build commands; zero means
	// sandbox.BuildLimits().
	Limits sandbox.Limits
}

// Builder runs builds.
type Builder struct {
	logger   *slog.Logger
	sb       *sandbox.Manager
	stateDir string
	selfPath string
	limits   sandbox.Limits

	mu    sync.Mutex
	locks map[string]*sync.Mutex // one build at a time per (Service, SHA)
}

// New returns a Builder using sb for users and workspaces.
func New(logger *slog.Logger, sb *sandbox.Manager, opts Options) (*Builder, error) {
	b := &Builder{logger: logger, sb: sb, stateDir: opts.StateDir, selfPath: opts.SelfPath, limits: opts.Limits, locks: map[string]*sync.Mutex{}}
	if b.stateDir == "" {
		b.stateDir = filepath.Join(sb.Root(), ".builds")
	}
	if err := os.MkdirAll(b.stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("build: state directory: %w", err)
	}
	if err := os.Chmod(b.stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("build: state directory: %w", err)
	}
	if b.selfPath == "" {
		p, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("build: locate own binary: %w", err)
		}
		b.selfPath = p
	}
	if b.limits == (sandbox.Limits{}) {
		b.limits = sandbox.BuildLimits()
	}
	return b, nil
}

// Request is one build.
type Request struct {
	ServiceID    string
	DeploymentID string
	// Source says what to fetch. Its Dir is chosen by the Builder.
	Source   clone.Options
	Settings slipway.BuildSettings
	Env      map[string]string // the Service's variables, visible to the build
	NoCache  bool
	// SourceOnly fetches the commit (root directory applied) into a fresh
	// directory and stops there: no detection, no install or build
	// commands, no start command needed, no cache record. Image runtimes
	// use it and build the image from the Dockerfile in Result.Dir; the
	// caller removes Result.Checkout when done with it.
	SourceOnly bool
	// OnPhase, when set, is told when the build moves from cloning to
	// building, so the deployment status can follow.
	OnPhase func(slipway.DeploymentStatus)
}

// Result is a finished build.
type Result struct {
	// Dir is the built directory (root directory applied): the release's
	// working directory.
	Dir          string
	StartCommand string
	Kind         string // "go", "node", "python", "static", "procfile", "custom", or "image" (SourceOnly)
	SHA          string
	Message      string
	Author       string
	User         runtime.User // the account the build ran as and the app runs as
	Home         string       // HOME for the app
	Cached       bool         // reused a finished build of the same SHA
	// Checkout is the whole fetched tree (root directory not applied);
	// set for SourceOnly requests, whose checkout nobody else keeps.
	Checkout string
}

// Build fetches and builds req.Source.SHA, or returns the cached build.
// Output streams to logs line by line.
func (b *Builder) Build(ctx context.Context, req Request, logs io.Writer) (Result, error) {
	if logs == nil {
		logs = io.Discard
	}
	lw := newLineWriter(logs)
	defer lw.Flush()
	if req.ServiceID == "" || req.Source.SHA == "" {
		return Result{}, errors.New("build: service id and commit SHA are required")
	}
	key := sandbox.UserName(req.ServiceID) + "-" + strings.ToLower(req.Source.SHA)
	lock := b.lockFor(key)
	lock.Lock()
	defer lock.Unlock()

	workspace, user, err := b.sb.Workspace(ctx, req.ServiceID)
	if err != nil {
		return Result{}, fmt.Errorf("build: %w", err)
	}
	home := filepath.Join(workspace, "home")
	record := filepath.Join(b.stateDir, key+".json")
	if !req.NoCache && !req.SourceOnly {
		if res, ok := b.cached(record); ok {
			fmt.Fprintf(lw, "Reusing the build of %s from %s\n", slipway.ShortSHA(res.SHA), filepath.Base(filepath.Dir(res.Dir)))
			res.Cached = true
			res.User, res.Home = user, home
			return res, nil
		}
		if _, err := os.Stat(record); err == nil {
			fmt.Fprintf(lw, "The finished build of %s was removed to free disk space (only the newest builds are kept); building it again\n",
				slipway.ShortSHA(req.Source.SHA))
		}
	}

	// The fetch runs as Slipway, not as the Service's user: the credentials
	// sit in git's environment, which any process of the same user (the
	// Service's running app) could read from /proc. It writes into a
	// staging directory only Slipway can enter, never into the workspace
	// (see internal/sandbox, tree.go).
	stage, err := b.sb.Stage()
	if err != nil {
		return Result{}, fmt.Errorf("build: %w", err)
	}
	src := req.Source
	src.Dir = filepath.Join(stage, "src")
	if req.OnPhase != nil {
		req.OnPhase(slipway.DeployCloning)
	}
	fmt.Fprintf(lw, "Fetching %s\n", src.SHA)
	cres, err := clone.Fetch(ctx, src, lw)
	if err != nil {
		os.RemoveAll(stage)
		return Result{}, fmt.Errorf("build: %w", err)
	}
	if req.SourceOnly {
		// Nothing of the Service runs on this host, so the checkout stays
		// Slipway's; the image build reads it from here.
		if req.OnPhase != nil {
			req.OnPhase(slipway.DeployBuilding)
		}
		return Result{Dir: cres.Dir, Kind: "image", SHA: cres.SHA, Message: cres.Message, Author: cres.Author,
			User: user, Home: home, Checkout: stage}, nil
	}
	rootRel, err := filepath.Rel(src.Dir, cres.Dir)
	if err != nil {
		os.RemoveAll(stage)
		return Result{}, fmt.Errorf("build: %w", err)
	}
	// Detection reads the checkout as root, so it happens while the tree
	// is still Slipway's alone.
	plan, err := Detect(cres.Dir, req.Settings, b.selfPath)
	if err != nil {
		os.RemoveAll(stage)
		return Result{}, err
	}
	// Each build gets a fresh directory: a no-cache rebuild of the SHA that
	// is live must not pull files from under the running release.
	suffix := make([]byte, 4)
	rand.Read(suffix)
	name := slipway.ShortSHA(strings.ToLower(src.SHA)) + "-" + hex.EncodeToString(suffix)
	placed, err := b.sb.Place(ctx, req.ServiceID, stage, name)
	if err != nil {
		return Result{}, fmt.Errorf("build: give checkout to service user: %w", err)
	}
	if req.OnPhase != nil {
		req.OnPhase(slipway.DeployBuilding)
	}
	if err := b.runSteps(ctx, req, plan, user, home, filepath.Join(placed, rootRel), name, lw); err != nil {
		if derr := b.sb.Discard(context.WithoutCancel(ctx), req.ServiceID, name); derr != nil {
			b.logger.Warn("remove failed build", "build", name, "err", derr)
		}
		return Result{}, err
	}
	// The finished build leaves the workspace: root-owned and read-only to
	// the Service, so the live app cannot alter what a rollback would run.
	sealed, err := b.sb.Seal(ctx, req.ServiceID, name)
	if err != nil {
		b.sb.Discard(context.WithoutCancel(ctx), req.ServiceID, name)
		return Result{}, fmt.Errorf("build: %w", err)
	}
	res := Result{
		Dir: filepath.Join(sealed, rootRel), StartCommand: plan.Start, Kind: plan.Kind,
		SHA: cres.SHA, Message: cres.Message, Author: cres.Author,
		User: user, Home: home,
	}
	if err := b.save(record, res); err != nil {
		return Result{}, err
	}
	return res, nil
}

// runSteps runs the install and build commands in dir inside one control
// group, which is killed when they end: nothing the build started, setsid
// or not, outlives it. A step killed at the memory limit fails with
// ECodeOutOfMemory.
func (b *Builder) runSteps(ctx context.Context, req Request, plan Plan, user runtime.User, home, dir, name string, lw io.Writer) error {
	fmt.Fprintf(lw, "Detected %s\n", plan.Kind)
	if plan.Install == "" && plan.Build == "" {
		return nil
	}
	group, err := b.sb.NewGroup("build-"+name, b.limits)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	defer func() {
		if err := group.Kill(); err != nil {
			b.logger.Warn("kill build processes", "build", name, "err", err)
		}
		group.Remove()
	}()
	scratch, err := b.sb.Scratch(ctx, req.ServiceID)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	for _, step := range []struct{ name, script string }{{"install", plan.Install}, {"build", plan.Build}} {
		if step.script == "" {
			continue
		}
		fmt.Fprintf(lw, "$ %s\n", step.script)
		start := time.Now()
		spec := sandbox.Spec{User: user, Home: home, Dir: dir, Script: step.script, Env: req.Env, Limits: b.limits,
			Setpgid: true, Group: group, Scratch: scratch}
		err := b.run(ctx, spec, lw)
		if hits := group.PidsLimitHits(); hits > 0 {
			fmt.Fprintf(lw, "the build reached its limit of %d processes (%d forks refused)\n", b.limits.Pids, hits)
		}
		if err != nil {
			if group.OOMKills() > 0 {
				return slipway.Errorf(slipway.ECodeOutOfMemory, "out of memory: the %s command was killed at the build's %d MiB memory limit", step.name, b.limits.MemoryMB).
					WithFix("reduce the build's memory use (for example fewer parallel jobs)")
			}
			return fmt.Errorf("build: %s command failed: %w", step.name, err)
		}
		fmt.Fprintf(lw, "%s finished in %s\n", step.name, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

func (b *Builder) lockFor(key string) *sync.Mutex {
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.locks[key]
	if !ok {
		l = &sync.Mutex{}
		b.locks[key] = l
	}
	return l
}

// cachedRecord is what a finished build leaves in the state directory.
type cachedRecord struct {
	Dir          string `json:"dir"`
	StartCommand string `json:"start_command"`
	Kind         string `json:"kind"`
	SHA          string `json:"sha"`
	Message      string `json:"message"`
	Author       string `json:"author"`
}

func (b *Builder) cached(record string) (Result, bool) {
	raw, err := os.ReadFile(record)
	if err != nil {
		return Result{}, false
	}
	var r cachedRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return Result{}, false
	}
	// A record points at a sealed build: a root-owned directory the
	// Service cannot change. Anything else is not trusted as a cache hit.
	if fi, err := os.Lstat(r.Dir); err != nil || !fi.IsDir() || !ownedByUs(fi) {
		return Result{}, false
	}
	return Result{Dir: r.Dir, StartCommand: r.StartCommand, Kind: r.Kind, SHA: r.SHA, Message: r.Message, Author: r.Author}, true
}

func (b *Builder) save(record string, res Result) error {
	raw, err := json.Marshal(cachedRecord{Dir: res.Dir, StartCommand: res.StartCommand, Kind: res.Kind, SHA: res.SHA, Message: res.Message, Author: res.Author})
	if err != nil {
		return fmt.Errorf("build: record: %w", err)
	}
	tmp := record + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return fmt.Errorf("build: record: %w", err)
	}
	if err := os.Rename(tmp, record); err != nil {
		return fmt.Errorf("build: record: %w", err)
	}
	return nil
}

func ownedByUs(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

// run runs one sandboxed command to completion, killing its whole process
// group when ctx ends.
func (b *Builder) run(ctx context.Context, spec sandbox.Spec, logs io.Writer) error {
	cmd := b.sb.Command(spec)
	cmd.Stdout = logs
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		case <-done:
		}
	}()
	err := cmd.Wait()
	close(done)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		// The command succeeded; something it detached still held its
		// output. The build's control group is killed next.
		return nil
	}
	return err
}

// lineWriter passes output on in whole lines, so concurrent stdout and
// stderr never interleave mid-line in the deployment log.
type lineWriter struct {
	mu      sync.Mutex
	w       io.Writer
	pending []byte
}

func newLineWriter(w io.Writer) *lineWriter { return &lineWriter{w: w} }

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending = append(l.pending, p...)
	for {
		i := strings.IndexAny(string(l.pending), "\n")
		if i < 0 {
			break
		}
		if _, err := l.w.Write(l.pending[:i+1]); err != nil {
			return len(p), err
		}
		l.pending = l.pending[i+1:]
	}
	return len(p), nil
}

// Flush writes a trailing partial line.
func (l *lineWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) > 0 {
		l.w.Write(append(l.pending, '\n'))
		l.pending = nil
	}
}

// Pruned is what Prune removed.
type Pruned struct {
	Builds int   // sealed builds removed
	Bytes  int64 // their size on disk
}

// Prune removes a Service's sealed builds beyond the ones in use (inUse
// holds release directories, a build's own path or one below it) and the
// keep newest others, so disk use stays bounded however often it deploys.
// Their cache records stay: a later deploy of such a commit (a rollback)
// finds the record without its build, builds again and says why.
func (b *Builder) Prune(ctx context.Context, serviceID string, inUse []string, keep int) (Pruned, error) {
	var out Pruned
	builds, err := b.sb.SealedBuilds(serviceID)
	if err != nil {
		return out, fmt.Errorf("build: %w", err)
	}
	kept := 0
	for _, sb := range builds {
		used := false
		for _, dir := range inUse {
			used = used || dir == sb.Path || strings.HasPrefix(dir, sb.Path+string(filepath.Separator))
		}
		if used {
			continue
		}
		if kept < keep {
			kept++
			continue
		}
		size := dirSize(sb.Path)
		if err := b.sb.RemoveSealed(serviceID, sb.Name); err != nil {
			return out, fmt.Errorf("build: %w", err)
		}
		out.Builds++
		out.Bytes += size
	}
	return out, nil
}

// dirSize is the size of the files below dir, not following symlinks.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// RemoveService deletes a deleted Service's build records, sealed builds,
// workspace, scratch space and system user. Its processes are stopped
// first by the caller.
func (b *Builder) RemoveService(ctx context.Context, serviceID string) error {
	prefix := sandbox.UserName(serviceID) + "-"
	entries, err := os.ReadDir(b.stateDir)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			if err := os.Remove(filepath.Join(b.stateDir, e.Name())); err != nil {
				return fmt.Errorf("build: remove record: %w", err)
			}
		}
	}
	return b.sb.RemoveService(ctx, serviceID)
}
