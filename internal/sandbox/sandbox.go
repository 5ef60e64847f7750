// Package sandbox runs untrusted user code: a Service's install, build and
// start commands and the app itself. Each Service gets an operating-system
// user of its own ("slipway-<short id>"), a workspace only that user can
// enter (mode 0700), a clean environment (the Service's variables, PORT, a
// minimal PATH and HOME inside the workspace) and resource limits.
//
// As root a command starts as a fixed launcher that (1) writes its own pid
// into the command's control groups (internal/sandbox/cgroup), so every
// process the user code forks, setsid or not, is counted and killed with
// it; (2) enters a mount namespace of its own where /tmp and /dev/shm are
// the Service's private scratch directories; (3) drops to the Service's
// user with setpriv(1) (no capabilities, no_new_privs); and (4) applies
// rlimits with prlimit(1): open files, processes per user, file size, CPU
// seconds (builds) and optionally address space. Only then does the user's
// script run. The script is passed as an argument, never spliced into the
// launcher's text.
//
// Without usable cgroups only the rlimits apply (the Manager warns);
// without prlimit the shell's ulimit sets all but the process count.
// Address space is off by default because Go, Node.js and the JVM reserve
// far more virtual memory than they use; the cgroup memory limit is the
// real cap.
//
// When Slipway does not run as root (a developer laptop) it cannot switch
// users: commands then run as the current user, and the Manager says so
// loudly in its log.
package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"slipway.dev/slipway/internal/runtime"
	"slipway.dev/slipway/internal/sandbox/cgroup"
)

// DefaultPath is the PATH untrusted commands see.
const DefaultPath = "/usr/local/bin:/usr/bin:/bin"

// Limits are per-command resource limits; zero fields are not limited.
type Limits struct {
	OpenFiles      int // RLIMIT_NOFILE
	Processes      int // RLIMIT_NPROC, counted per user, so per Service
	FileSizeMB     int // RLIMIT_FSIZE
	CPUSeconds     int // RLIMIT_CPU, for builds
	AddressSpaceMB int // RLIMIT_AS, off by default (see the package doc)

	// Enforced by the command's control group, where the host has one.
	MemoryMB   int // memory, without swap
	Pids       int // processes and threads of this build or release
	CPUPercent int // 100 is one core
}

// GroupLimits are the limits the control group enforces.
func (l Limits) GroupLimits() cgroup.Limits {
	return cgroup.Limits{MemoryBytes: int64(l.MemoryMB) << 20, Pids: int64(l.Pids), CPUPercent: l.CPUPercent}
}

// BuildLimits returns the defaults for install and build commands.
func BuildLimits() Limits {
	return Limits{OpenFiles: 8192, Processes: 1024, FileSizeMB: 4096, CPUSeconds: 1800,
		MemoryMB: 2048, Pids: 512, CPUPercent: 200}
}

// RunLimits returns the defaults for a running app: no CPU-time cap, since
// it runs for weeks.
func RunLimits() Limits {
	return Limits{OpenFiles: 8192, Processes: 1024, FileSizeMB: 4096,
		MemoryMB: 1024, Pids: 512, CPUPercent: 100}
}

// Options configure a Manager.
type Options struct {
	// Root holds one workspace per Service. Created 0711 (traversable, not
	// listable) when missing.
	Root string
	// ExtraPath is appended to DefaultPath, for toolchains installed
	// elsewhere (for example /usr/local/go/bin).
	ExtraPath []string
	// Cgroups, when set, is used instead of probing the host (tests).
	Cgroups *cgroup.Manager
	// Network, when set, filters what tenant code may connect to (see
	// Network); nil leaves the network as the host has it.
	Network *Network
}

// Manager creates per-Service users and workspaces and builds sandboxed
// commands.
type Manager struct {
	logger    *slog.Logger
	root      string
	path      string
	isolating bool   // false when not root: commands run as the current user
	prlimit   string // path of prlimit(1), "" when absent
	cgroups   *cgroup.Manager
	fw        *firewall // nil: no network policy
	scratch   bool      // per-Service /tmp and /dev/shm (needs root, unshare and mount)

	mu    sync.Mutex // serialises useradd and workspace creation
	users map[string]runtime.User
}

// New returns a Manager. It creates Root when missing.
func New(logger *slog.Logger, opts Options) (*Manager, error) {
	if opts.Root == "" {
		return nil, errors.New("sandbox: workspace root is required")
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("sandbox: workspace root: %w", err)
	}
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, fmt.Errorf("sandbox: create workspace root: %w", err)
	}
	m := &Manager{
		logger:    logger,
		root:      root,
		path:      strings.Join(append([]string{DefaultPath}, opts.ExtraPath...), ":"),
		isolating: os.Geteuid() == 0,
		users:     map[string]runtime.User{},
	}
	if p, err := exec.LookPath("prlimit"); err == nil {
		m.prlimit = p
	} else {
		logger.Warn("prlimit not found: the per-Service process limit is not enforced")
	}
	if m.isolating {
		// Every Service user must reach its own workspace through the root.
		if err := os.Chmod(root, 0o711); err != nil {
			return nil, fmt.Errorf("sandbox: workspace root permissions: %w", err)
		}
		instance := instanceName(root)
		m.cgroups = opts.Cgroups
		if m.cgroups == nil {
			if m.cgroups, err = cgroup.ProbeHost("slipway-" + instance); err != nil {
				return nil, fmt.Errorf("sandbox: %w", err)
			}
		}
		if opts.Network != nil {
			if m.fw, err = newFirewall(context.Background(), "SLIPWAY-"+instance, *opts.Network); err != nil {
				return nil, err
			}
			logger.Info("tenant network filtered", "allow", opts.Network.Allow, "allow_private", opts.Network.AllowPrivate)
		}
		// A build belongs to its deployment: builds a previous run of
		// Slipway left behind (it was killed mid-build) die now.
		for _, n := range m.cgroups.KillStale(logger, "build-") {
			logger.Warn("killed a build left by a previous run", "cgroup", n)
		}
		if m.cgroups.Version() == cgroup.None {
			logger.Warn("no usable cgroup controller: builds and releases run without memory, CPU and per-build process limits; only rlimits (open files, processes per Service user, file size, build CPU seconds) apply")
		} else {
			logger.Info("untrusted code runs in cgroups", "hierarchy", m.cgroups.Version().String(), "controllers", m.cgroups.Controllers())
		}
		_, uerr := exec.LookPath("unshare")
		_, serr := exec.LookPath("setpriv")
		_, merr := exec.LookPath("mount")
		if serr != nil {
			return nil, errors.New("sandbox: setpriv(1) (util-linux) is required to run untrusted code as root")
		}
		m.scratch = uerr == nil && merr == nil
		if !m.scratch {
			logger.Warn("unshare or mount not found: Services share the host's /tmp and /dev/shm")
		} else if under(root, "/tmp") || under(root, "/dev/shm") {
			// Mounting over /tmp would hide the workspaces themselves.
			m.scratch = false
			logger.Warn("the workspace root lies under /tmp or /dev/shm: Services share the host's /tmp and /dev/shm", "root", root)
		}
		if err := mkdirOwned(root, scratchDir, 0o700); err != nil {
			return nil, err
		}
	} else {
		logger.Warn("NOT ISOLATING UNTRUSTED CODE: slipway is not running as root, so builds and apps run as the current user and can read everything it can; run as root in production")
	}
	return m, nil
}

// under reports whether path is dir or below it, symlinks resolved.
func under(path, dir string) bool {
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// PrivateScratch reports whether commands get a private /tmp and /dev/shm.
func (m *Manager) PrivateScratch() bool { return m.scratch }

// instanceName names an instance's cgroups and firewall chain after its
// workspace root, so a restart finds what the previous run left and two
// instances never share.
func instanceName(root string) string {
	sum := sha256.Sum256([]byte(root))
	return hex.EncodeToString(sum[:4])
}

// RemoveLeftovers kills every build and release an instance with workspace
// root left running and removes its firewall chain: for an instance that
// will not start again (a test that killed its server).
func RemoveLeftovers(logger *slog.Logger, root string) error {
	root, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	name := instanceName(root)
	cg, err := cgroup.ProbeHost("slipway-" + name)
	if err != nil {
		return err
	}
	cg.KillStale(logger, "")
	cg.Close()
	(&firewall{chain: "SLIPWAY-" + name, run: runTool}).close(context.Background())
	return nil
}

// Close removes the instance's firewall chain and empty cgroup bases.
// Running releases keep running (but unfiltered): call it on shutdown
// after they stopped.
func (m *Manager) Close() {
	m.fw.close(context.Background())
	m.cgroups.Close()
}

// Cgroups is the control-group manager (nil when not isolating).
func (m *Manager) Cgroups() *cgroup.Manager { return m.cgroups }

// NewGroup creates the control group of one build or release with the
// cgroup part of l. It returns nil (a valid no-op group) where the host
// has no usable controller or Slipway is not root.
func (m *Manager) NewGroup(name string, l Limits) (*cgroup.Group, error) {
	if m.cgroups == nil {
		return nil, nil
	}
	g, err := m.cgroups.Create(name, l.GroupLimits())
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	return g, nil
}

// Isolating reports whether commands run as per-Service users.
func (m *Manager) Isolating() bool { return m.isolating }

// Root returns the directory holding every workspace.
func (m *Manager) Root() string { return m.root }

// UserName is the system account name of a Service:
// "slipway-" and up to 16 characters of the id after its type prefix.
func UserName(serviceID string) string {
	short := serviceID
	if i := strings.IndexByte(short, '_'); i >= 0 {
		short = short[i+1:]
	}
	short = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return -1
	}, short)
	if len(short) > 16 {
		short = short[:16]
	}
	return "slipway-" + short
}

// Workspace returns the Service's workspace directory, creating the
// Service's user and the directory (owned by that user, mode 0700) when
// missing. HOME for the Service's commands is Workspace/home.
func (m *Manager) Workspace(ctx context.Context, serviceID string) (string, runtime.User, error) {
	u, err := m.User(ctx, serviceID)
	if err != nil {
		return "", runtime.User{}, err
	}
	dir := filepath.Join(m.root, UserName(serviceID))
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", runtime.User{}, fmt.Errorf("sandbox: create workspace: %w", err)
	}
	// The workspace's parent is root's, so the directory itself cannot be
	// swapped; what is inside it can, so home is made relative to it and
	// never followed.
	if err := m.own(dir, u); err != nil {
		return "", runtime.User{}, err
	}
	wsfd, err := openRootDir(dir)
	if err != nil {
		return "", runtime.User{}, fmt.Errorf("sandbox: %w", err)
	}
	defer unix.Close(wsfd)
	if err := unix.Mkdirat(wsfd, "home", 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return "", runtime.User{}, fmt.Errorf("sandbox: create home: %w", err)
	}
	if m.isolating && !u.IsZero() {
		if err := unix.Fchownat(wsfd, "home", int(u.UID), int(u.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return "", runtime.User{}, fmt.Errorf("sandbox: own home: %w", err)
		}
	}
	return dir, u, nil
}

// User returns the Service's system user, creating it when missing. When
// not isolating it returns the zero User (the current user).
func (m *Manager) User(ctx context.Context, serviceID string) (runtime.User, error) {
	if !m.isolating {
		return runtime.User{}, nil
	}
	name := UserName(serviceID)
	m.mu.Lock()
	defer m.mu.Unlock()
	if u, ok := m.users[name]; ok {
		return u, nil
	}
	u, err := lookup(name)
	if err != nil {
		out, aerr := exec.CommandContext(ctx, "useradd", "--system", "--no-create-home",
			"--user-group", "--shell", "/usr/sbin/nologin", "--home-dir", "/nonexistent", name).CombinedOutput()
		if aerr != nil {
			return runtime.User{}, fmt.Errorf("sandbox: create user %s: %w: %s", name, aerr, strings.TrimSpace(string(out)))
		}
		if u, err = lookup(name); err != nil {
			return runtime.User{}, fmt.Errorf("sandbox: user %s after creating it: %w", name, err)
		}
		m.logger.Info("created service user", "user", name, "uid", u.UID)
	}
	// The user's sockets are filtered before any of its code runs.
	if err := m.fw.cover(ctx, u.UID); err != nil {
		return runtime.User{}, err
	}
	m.users[name] = u
	return u, nil
}

func lookup(name string) (runtime.User, error) {
	pu, err := user.Lookup(name)
	if err != nil {
		return runtime.User{}, err
	}
	uid, err := strconv.ParseUint(pu.Uid, 10, 32)
	if err != nil {
		return runtime.User{}, fmt.Errorf("uid of %s: %w", name, err)
	}
	gid, err := strconv.ParseUint(pu.Gid, 10, 32)
	if err != nil {
		return runtime.User{}, fmt.Errorf("gid of %s: %w", name, err)
	}
	return runtime.User{Name: name, UID: uint32(uid), GID: uint32(gid)}, nil
}

func (m *Manager) own(path string, u runtime.User) error {
	if !m.isolating || u.IsZero() {
		return nil
	}
	if err := os.Lchown(path, int(u.UID), int(u.GID)); err != nil {
		return fmt.Errorf("sandbox: chown %s: %w", path, err)
	}
	return nil
}

// Spec describes one sandboxed command.
type Spec struct {
	User    runtime.User
	Home    string            // HOME; usually Workspace/home
	Dir     string            // working directory
	Script  string            // run with sh -c
	Env     map[string]string // the Service's variables (and PORT for apps)
	Limits  Limits
	Setpgid bool // own process group, so the whole tree can be signalled
	// Group is the control group the command joins before the user's
	// script runs (nil: none).
	Group *cgroup.Group
	// Scratch holds the Service's private /tmp and /dev/shm (from
	// Manager.Scratch); empty means the host's.
	Scratch Scratch
}

// Command returns the exec.Cmd for spec, not started. The environment is
// built from scratch: nothing of Slipway's own environment leaks in.
// The caller sets Stdout/Stderr and, for supervised processes, kills the
// process group (-pid) or, better, the control group to stop it.
func (m *Manager) Command(spec Spec) *exec.Cmd {
	if !m.isolating {
		// The process count is per user: on a developer machine that is
		// the developer's whole session, not one Service.
		spec.Limits.Processes = 0
	}
	var argv []string
	if m.prlimit != "" {
		argv = append(append([]string{m.prlimit}, prlimitArgs(spec.Limits)...), "--", "/bin/sh", "-c", spec.Script)
	} else {
		// The user's script runs in a fresh shell as $1, so its text never
		// needs quoting.
		argv = []string{"/bin/sh", "-c", ulimits(spec.Limits) + `exec /bin/sh -c "$1"`, "sh", spec.Script}
	}
	isolate := m.isolating && !spec.User.IsZero()
	env := m.Env(spec)
	if isolate {
		// The launcher runs as root, so it must not see the Service's
		// variables (LD_PRELOAD would run tenant code as root). They travel
		// under an inert prefix and are restored after the user switch.
		var names []string
		names, env = launcherEnv(env)
		restore := append([]string{"/bin/sh", "-c", `for n; do [ "$n" = -- ] && break; eval "export $n=\"\${` + envPrefix + `$n}\"; unset ` + envPrefix + `$n"; shift; done; shift; exec "$@"`, "sh"}, names...)
		argv = append(append(restore, "--"), argv...)
		argv = append([]string{"setpriv", "--reuid=" + strconv.FormatUint(uint64(spec.User.UID), 10),
			"--regid=" + strconv.FormatUint(uint64(spec.User.GID), 10), "--clear-groups",
			"--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"}, argv...)
		if m.scratch && spec.Scratch.Tmp != "" {
			// /dev/shm first: the /tmp source may itself lie under /tmp.
			argv = append([]string{"unshare", "--mount", "--propagation", "private", "--",
				"/bin/sh", "-c", `mount --bind "$2" /dev/shm && mount --bind "$1" /tmp || exit 125; shift 3; exec "$@"`,
				"sh", spec.Scratch.Tmp, spec.Scratch.Shm, "--"}, argv...)
		}
	}
	if procs := spec.Group.ProcsFiles(); len(procs) > 0 {
		// Joining before exec: everything the script forks is born inside.
		join := []string{"/bin/sh", "-c", `while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"`, "sh"}
		argv = append(append(append(join, procs...), "--"), argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = spec.Dir
	cmd.Env = env
	// A detached child keeps the output pipes open after the command
	// itself ended; Wait stops waiting for them after this (the control
	// group's kill then takes the child).
	cmd.WaitDelay = 2 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: spec.Setpgid}
	if !isolate {
		// Without a user switch nothing else bounds the code's lifetime:
		// it never outlives a crashed Slipway. (As root the control group
		// does that job, and a release is not tied to Slipway's process.)
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	return cmd
}

// Env returns the clean environment of spec, sorted.
func (m *Manager) Env(spec Spec) []string {
	env := map[string]string{}
	for k, v := range spec.Env {
		env[k] = v
	}
	// The platform's own entries win over user variables of the same name:
	// a Service cannot point HOME or PATH into another workspace by accident.
	env["PATH"] = m.path
	if spec.Home != "" {
		env["HOME"] = spec.Home
	}
	if spec.User.Name != "" {
		env["USER"] = spec.User.Name
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// envPrefix carries the Service's variables through the root launcher.
const envPrefix = "SLIPWAY_ENV_"

// launcherEnv turns the command's environment into the launcher's: a fixed
// PATH, and every variable renamed under envPrefix. Names that are not
// shell identifiers cannot be restored and are dropped.
func launcherEnv(env []string) (names, out []string) {
	out = []string{"PATH=" + DefaultPath}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if !isShellName(k) {
			continue
		}
		names = append(names, k)
		out = append(out, envPrefix+k+"="+v)
	}
	return names, out
}

func isShellName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func prlimitArgs(l Limits) []string {
	var args []string
	add := func(name string, v int64) {
		if v > 0 {
			args = append(args, fmt.Sprintf("--%s=%d:%d", name, v, v))
		}
	}
	add("nofile", int64(l.OpenFiles))
	add("nproc", int64(l.Processes))
	add("fsize", int64(l.FileSizeMB)<<20)
	add("cpu", int64(l.CPUSeconds))
	add("as", int64(l.AddressSpaceMB)<<20)
	return args
}

// ulimits is the fallback without prlimit. dash has no "ulimit -u", so the
// process count stays unlimited there.
func ulimits(l Limits) string {
	var b strings.Builder
	add := func(flag string, v int) {
		if v > 0 {
			fmt.Fprintf(&b, "ulimit -%s %d || exit 126; ", flag, v)
		}
	}
	add("n", l.OpenFiles)
	add("f", l.FileSizeMB*2048) // ulimit -f counts 512-byte blocks
	add("t", l.CPUSeconds)
	add("v", l.AddressSpaceMB*1024) // ulimit -v counts KiB
	return b.String()
}
