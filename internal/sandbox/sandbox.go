// Package sandbox runs untrusted user code: a Service's install, build and
// start commands and the app itself. Each Service gets an operating-system
// user of its own ("slipway-<short id>"), a workspace only that user can
// enter (mode 0700), a clean environment (the Service's variables, PORT, a
// minimal PATH and HOME inside the workspace) and resource limits.
//
// Limits are applied by prlimit(1) in front of the command, after the
// switch to the unprivileged user, so they need no cgroups: open files,
// processes (per user, which is per Service), file size, CPU seconds
// (builds) and optionally address space. Without prlimit the shell's ulimit
// sets all but the process count, and the Manager logs that. Address
// space is off by default because Go, Node.js and the JVM reserve far more
// virtual memory than they use; set Limits.AddressSpaceMB where a hard
// memory cap matters more than those runtimes working out of the box.
//
// When Slipway does not run as root (a developer laptop) it cannot switch
// users: commands then run as the current user, and the Manager says so
// loudly in its log.
package sandbox

import (
	"context"
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

	"slipway.dev/slipway/internal/runtime"
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
}

// BuildLimits returns the defaults for install and build commands.
func BuildLimits() Limits {
	return Limits{OpenFiles: 8192, Processes: 1024, FileSizeMB: 4096, CPUSeconds: 1800}
}

// RunLimits returns the defaults for a running app: no CPU-time cap, since
// it runs for weeks.
func RunLimits() Limits {
	return Limits{OpenFiles: 8192, Processes: 1024, FileSizeMB: 4096}
}

// Options configure a Manager.
type Options struct {
	// Root holds one workspace per Service. Created 0711 (traversable, not
	// listable) when missing.
	Root string
	// ExtraPath is appended to DefaultPath, for toolchains installed
	// elsewhere (for example /usr/local/go/bin).
	ExtraPath []string
}

// Manager creates per-Service users and workspaces and builds sandboxed
// commands.
type Manager struct {
	logger    *slog.Logger
	root      string
	path      string
	isolating bool   // false when not root: commands run as the current user
	prlimit   string // path of prlimit(1), "" when absent

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
	} else {
		logger.Warn("NOT ISOLATING UNTRUSTED CODE: slipway is not running as root, so builds and apps run as the current user and can read everything it can; run as root in production")
	}
	return m, nil
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
	for _, d := range []string{dir, filepath.Join(dir, "home")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return "", runtime.User{}, fmt.Errorf("sandbox: create workspace: %w", err)
		}
		if err := m.own(d, u); err != nil {
			return "", runtime.User{}, err
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

// Chown gives a whole tree (for example a fresh checkout made by Slipway)
// to the Service's user.
func (m *Manager) Chown(dir string, u runtime.User) error {
	if !m.isolating || u.IsZero() {
		return nil
	}
	return filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return m.own(path, u)
	})
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
}

// Command returns the exec.Cmd for spec, not started. The environment is
// built from scratch: nothing of Slipway's own environment leaks in.
// The caller sets Stdout/Stderr and, for supervised processes, kills the
// process group (-pid) to stop it.
func (m *Manager) Command(spec Spec) *exec.Cmd {
	if !m.isolating {
		// The process count is per user: on a developer machine that is
		// the developer's whole session, not one Service.
		spec.Limits.Processes = 0
	}
	var cmd *exec.Cmd
	if m.prlimit != "" {
		args := append(prlimitArgs(spec.Limits), "--", "/bin/sh", "-c", spec.Script)
		cmd = exec.Command(m.prlimit, args...)
	} else {
		// The user's script runs in a fresh shell as $1, so its text never
		// needs quoting.
		wrapper := ulimits(spec.Limits) + `exec /bin/sh -c "$1"`
		cmd = exec.Command("/bin/sh", "-c", wrapper, "sh", spec.Script)
	}
	cmd.Dir = spec.Dir
	cmd.Env = m.Env(spec)
	// Pdeathsig: untrusted code never outlives a crashed Slipway; the
	// releases it ran are restarted from their builds at the next start.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: spec.Setpgid, Pdeathsig: syscall.SIGKILL}
	if m.isolating && !spec.User.IsZero() {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: spec.User.UID, Gid: spec.User.GID, Groups: []uint32{}}
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
