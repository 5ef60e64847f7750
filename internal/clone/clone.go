// Package clone fetches exactly one commit of a repository into an empty
// directory with the git CLI: a shallow, single-commit, tag-less fetch,
// optionally narrowed to the Service's root directory by a cone-mode sparse
// checkout, then submodules and Git LFS objects when the commit uses them.
//
// Credentials reach git through GIT_ASKPASS: a tiny script, holding no
// secret, echoes environment variables that only the git child inherits.
// The token is never in the URL, on a command line, in .git/config, or in a
// file that outlives the call, and every line written to the log has it
// masked. The askpass script only answers prompts for the repository's own
// host, so a submodule on another host never sees the credentials.
//
// The CLI was chosen over a Go implementation by measurement: see
// BenchmarkClone, which runs this fetch next to "git clone --depth 1".
package clone

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"slipway.dev/slipway/internal/netpolicy"
)

// Options say what to fetch and where.
type Options struct {
	URL      string // clone URL without credentials (https, ssh or file)
	Username string // HTTPS basic-auth user; "x-access-token" style users are fine
	Password string // HTTPS password or token
	SSHKey   string // OpenSSH private key, for SSH URLs
	// KnownHosts pins the SSH host keys; with an SSH key and no pins the
	// host key is accepted on first use for this one call.
	KnownHosts string
	SHA        string // the full commit SHA to check out
	Dir        string // an empty (or missing) directory
	RootDir    string // when set, only this directory is checked out
	// Submodules fetches submodules (depth 1, recursive) when the commit
	// has a .gitmodules file. They are fetched without credentials unless
	// SubmoduleCredentials hands one out for a submodule's repository.
	Submodules bool
	// SubmoduleCredentials, when set, is asked once per submodule URL
	// (already checked by Network) for a credential narrowed to that
	// repository; ok=false means "fetch it without credentials". nil is the
	// default: no submodule borrows the parent's credential.
	SubmoduleCredentials func(ctx context.Context, url string) (username, password string, ok bool, err error)
	// Network is where git may connect (the tenant chose the URL, and
	// .gitmodules); the zero value is the strict default.
	Network netpolicy.Policy
	// LFS pulls Git LFS objects when .gitattributes uses filter=lfs.
	LFS bool
	// Git is the git binary; "" means "git" from PATH.
	Git string
}

// Result describes the checked out commit.
type Result struct {
	SHA     string // verified equal to Options.SHA
	Message string // full commit message
	Author  string // "Name <email>"
	Dir     string // Options.Dir joined with the root directory
}

// ErrSHAMismatch is returned (wrapped) when what got checked out is not
// the requested commit.
var ErrSHAMismatch = errors.New("clone: checked out commit differs from the requested one")

// Fetch fetches opts.SHA into opts.Dir. Progress and git's errors go to log,
// with credentials masked.
func Fetch(ctx context.Context, opts Options, log io.Writer) (Result, error) {
	if !isFullSHA(opts.SHA) {
		return Result{}, fmt.Errorf("clone: %q is not a full commit SHA", opts.SHA)
	}
	u, err := url.Parse(opts.URL)
	if err != nil || opts.URL == "" {
		return Result{}, fmt.Errorf("clone: invalid repository URL")
	}
	if u.User != nil {
		// Credentials in the URL would land in .git/config and in ps output.
		return Result{}, errors.New("clone: the repository URL must not carry credentials")
	}
	root, err := cleanRootDir(opts.RootDir)
	if err != nil {
		return Result{}, err
	}
	if log == nil {
		log = io.Discard
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return Result{}, fmt.Errorf("clone: create %s: %w", opts.Dir, err)
	}
	if entries, err := os.ReadDir(opts.Dir); err != nil {
		return Result{}, fmt.Errorf("clone: read %s: %w", opts.Dir, err)
	} else if len(entries) > 0 {
		return Result{}, fmt.Errorf("clone: %s is not empty", opts.Dir)
	}

	g, err := newGitRunner(ctx, opts, u, log)
	if err != nil {
		return Result{}, err
	}
	defer g.cleanup()

	steps := [][]string{
		{"init", "--quiet"},
		{"remote", "add", "origin", opts.URL},
		{"-c", "protocol.version=2", "fetch", "--depth", "1", "--no-tags", "--progress", "origin", opts.SHA},
	}
	if root != "" {
		steps = append(steps, []string{"sparse-checkout", "set", "--cone", root})
	}
	steps = append(steps, []string{"checkout", "--quiet", "--detach", "FETCH_HEAD"})
	for _, args := range steps {
		if _, err := g.run(ctx, args...); err != nil {
			return Result{}, err
		}
	}

	res := Result{Dir: opts.Dir}
	out, err := g.run(ctx, "log", "-1", "--format=%H%x00%an <%ae>%x00%B")
	if err != nil {
		return Result{}, err
	}
	parts := strings.SplitN(string(out), "\x00", 3)
	if len(parts) != 3 {
		return Result{}, fmt.Errorf("clone: unexpected git log output")
	}
	res.SHA, res.Author, res.Message = strings.TrimSpace(parts[0]), parts[1], strings.TrimSpace(parts[2])
	if !strings.EqualFold(res.SHA, opts.SHA) {
		return Result{}, fmt.Errorf("%w: wanted %s, got %s", ErrSHAMismatch, opts.SHA, res.SHA)
	}

	if opts.Submodules && exists(filepath.Join(opts.Dir, ".gitmodules")) {
		if err := fetchSubmodules(ctx, g, opts, log); err != nil {
			return Result{}, err
		}
	}
	if opts.LFS && usesLFS(filepath.Join(opts.Dir, ".gitattributes")) {
		if _, err := g.run(ctx, "lfs", "version"); err != nil {
			fmt.Fprintln(log, "git-lfs is not installed: skipping LFS objects")
		} else if _, err := g.run(ctx, append(lfsFilterConfig(), "lfs", "pull")...); err != nil {
			return Result{}, err
		}
	}
	if root != "" {
		res.Dir = filepath.Join(opts.Dir, filepath.FromSlash(root))
		if !exists(res.Dir) {
			return Result{}, fmt.Errorf("clone: root directory %q does not exist in commit %s", root, opts.SHA)
		}
	}
	return res, nil
}

// fetchSubmodules fetches each submodule with a runner of its own: checked
// against the network policy on its own URL, and with a credential only
// when opts.SubmoduleCredentials hands one out for that repository. The log
// says which submodules were fetched and how.
func fetchSubmodules(ctx context.Context, g *gitRunner, opts Options, log io.Writer) error {
	// init resolves relative URLs against the parent's remote into
	// .git/config; nothing is fetched yet.
	if _, err := g.run(ctx, "submodule", "init"); err != nil {
		return err
	}
	out, err := g.run(ctx, "config", "--get-regexp", `^submodule\..*\.url$`)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		key, subURL, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		name := strings.TrimSuffix(strings.TrimPrefix(key, "submodule."), ".url")
		pathOut, err := g.run(ctx, "config", "-f", ".gitmodules", "--get", "submodule."+name+".path")
		if err != nil {
			return err
		}
		subPath := strings.TrimSpace(string(pathOut))
		sub, how, err := g.forSubmodule(ctx, opts, subURL)
		if err != nil {
			return fmt.Errorf("clone: submodule %s: %w", subPath, err)
		}
		fmt.Fprintf(log, "submodule %s (%s): fetching %s\n", subPath, redactURL(subURL), how)
		_, err = sub.run(ctx, "submodule", "update", "--init", "--depth", "1", "--recursive", "--", subPath)
		sub.net.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// forSubmodule returns a runner for one submodule URL and says how it will
// be fetched.
func (g *gitRunner) forSubmodule(ctx context.Context, opts Options, subURL string) (*gitRunner, string, error) {
	net, err := opts.Network.Git(ctx, subURL)
	if err != nil {
		return nil, "", err
	}
	sub := &gitRunner{git: g.git, dir: g.dir, log: g.log, tmp: g.tmp, net: net, env: append(net.Env(g.tmp), baseEnv...)}
	sub.env = append(sub.env, "GIT_SSH_COMMAND="+net.SSH)
	how := "without credentials"
	if opts.SubmoduleCredentials != nil {
		user, pass, ok, err := opts.SubmoduleCredentials(ctx, subURL)
		if err != nil {
			net.Close()
			return nil, "", err
		}
		if ok {
			u, _ := url.Parse(subURL)
			host := ""
			if u != nil {
				host = u.Host
			}
			sub.env = append(sub.env, askpassEnv(g.tmp, host, user, pass)...)
			sub.secret = append(append(sub.secret, g.secret...), pass)
			how = "with a credential narrowed to that repository"
		}
	}
	return sub, how, nil
}

func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		u.User = nil
		return u.String()
	}
	return raw
}

// lfsFilterConfig configures the LFS filter for one command. git-lfs only
// writes pulled content into the work tree when filter.lfs.clean is set,
// and HOME is empty here, so without this "git lfs pull" downloads the
// objects and leaves the pointers in place. Passing it with -c keeps the
// filter out of .git/config.
func lfsFilterConfig() []string {
	return []string{
		"-c", "filter.lfs.clean=git-lfs clean -- %f",
		"-c", "filter.lfs.smudge=git-lfs smudge -- %f",
		"-c", "filter.lfs.process=git-lfs filter-process",
		"-c", "filter.lfs.required=true",
	}
}

func isFullSHA(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}

func cleanRootDir(dir string) (string, error) {
	dir = strings.Trim(filepath.ToSlash(dir), "/")
	if dir == "" || dir == "." {
		return "", nil
	}
	clean := path.Clean(dir)
	if clean == ".." || strings.HasPrefix(clean, "../") || strings.HasPrefix(clean, "-") {
		return "", fmt.Errorf("clone: root directory %q leaves the repository", dir)
	}
	return clean, nil
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func usesLFS(gitattributes string) bool {
	b, err := os.ReadFile(gitattributes)
	return err == nil && bytes.Contains(b, []byte("filter=lfs"))
}

// gitRunner runs git in one directory with a fixed, credential-carrying
// environment and a masking log writer.
type gitRunner struct {
	git    string
	dir    string
	env    []string
	log    io.Writer
	secret []string
	tmp    string         // askpass script and SSH key; removed by cleanup
	net    *netpolicy.Git // -c settings and proxy that keep git within the policy
}

// baseEnv is added to the policy's clean environment for every git call.
var baseEnv = []string{"GIT_LFS_SKIP_SMUDGE=1"} // LFS objects come from one "git lfs pull"

// askpassEnv points git at the askpass script (written by newGitRunner)
// answering for host only.
func askpassEnv(tmp, host, user, pass string) []string {
	return []string{
		"GIT_ASKPASS=" + filepath.Join(tmp, "askpass"),
		"SLIPWAY_GIT_HOST=" + host,
		"SLIPWAY_GIT_USERNAME=" + user,
		"SLIPWAY_GIT_PASSWORD=" + pass,
	}
}

const askpassScript = `#!/bin/sh
# Answers git's credential prompts from the environment, for one host only.
case "$1" in
*"://$SLIPWAY_GIT_HOST'"*|*"@$SLIPWAY_GIT_HOST'"*) ;;
*) exit 1 ;;
esac
case "$1" in
Username*) printf '%s\n' "$SLIPWAY_GIT_USERNAME" ;;
*) printf '%s\n' "$SLIPWAY_GIT_PASSWORD" ;;
esac
`

func newGitRunner(ctx context.Context, opts Options, u *url.URL, log io.Writer) (*gitRunner, error) {
	g := &gitRunner{git: opts.Git, dir: opts.Dir, log: log}
	if g.git == "" {
		g.git = "git"
	}
	net, err := opts.Network.Git(ctx, opts.URL)
	if err != nil {
		return nil, err
	}
	g.net = net
	tmp, err := os.MkdirTemp("", "slipway-git-")
	if err != nil {
		net.Close()
		return nil, fmt.Errorf("clone: temp dir: %w", err)
	}
	g.tmp = tmp
	// HOME is the private temporary directory: no user or system config
	// steers the fetch.
	g.env = append(net.Env(tmp), baseEnv...)
	// Written always: a submodule may be handed a credential of its own.
	if err := os.WriteFile(filepath.Join(tmp, "askpass"), []byte(askpassScript), 0o700); err != nil {
		g.cleanup()
		return nil, fmt.Errorf("clone: write askpass helper: %w", err)
	}
	if opts.Username != "" || opts.Password != "" {
		g.env = append(g.env, askpassEnv(tmp, u.Host, opts.Username, opts.Password)...)
		g.secret = append(g.secret, opts.Password)
	}
	if opts.SSHKey != "" {
		key := filepath.Join(tmp, "id")
		if err := os.WriteFile(key, []byte(strings.TrimSpace(opts.SSHKey)+"\n"), 0o600); err != nil {
			g.cleanup()
			return nil, fmt.Errorf("clone: write ssh key: %w", err)
		}
		ssh := net.SSH + " -i " + key + " -o IdentitiesOnly=yes"
		if opts.KnownHosts != "" {
			kh := filepath.Join(tmp, "known_hosts")
			if err := os.WriteFile(kh, []byte(opts.KnownHosts+"\n"), 0o600); err != nil {
				g.cleanup()
				return nil, fmt.Errorf("clone: write known_hosts: %w", err)
			}
			ssh += " -o StrictHostKeyChecking=yes -o UserKnownHostsFile=" + kh
		} else {
			ssh += " -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=" + filepath.Join(tmp, "known_hosts")
		}
		g.env = append(g.env, "GIT_SSH_COMMAND="+ssh)
		g.secret = append(g.secret, opts.SSHKey)
	} else {
		g.env = append(g.env, "GIT_SSH_COMMAND="+net.SSH)
	}
	return g, nil
}

func (g *gitRunner) cleanup() {
	g.net.Close()
	os.RemoveAll(g.tmp)
}

// run runs one git command, streaming its stderr (progress, errors) to the
// log and returning its stdout.
func (g *gitRunner) run(ctx context.Context, args ...string) ([]byte, error) {
	// The policy's settings (protocol.allow, the checking proxy, an empty
	// credential.helper list so nothing is stored) come first.
	full := append(append([]string{}, g.net.Config...), args...)
	cmd := exec.CommandContext(ctx, g.git, full...)
	cmd.Dir = g.dir
	cmd.Env = g.env
	cmd.WaitDelay = 5 * time.Second
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	logw := newMaskingWriter(g.log, g.secret)
	var tail bytes.Buffer
	cmd.Stderr = io.MultiWriter(logw, &limitedBuffer{buf: &tail, max: 4096})
	fmt.Fprintf(logw, "$ git %s\n", strings.Join(args, " "))
	err := cmd.Run()
	logw.Flush()
	if err != nil {
		if refused := g.net.Refused(); refused != nil {
			return nil, fmt.Errorf("clone: git %s: %w", gitVerb(args), refused)
		}
		msg := strings.TrimSpace(mask(lastLine(tail.String()), g.secret))
		if ctx.Err() != nil {
			return nil, fmt.Errorf("clone: git %s: %w", args[0], ctx.Err())
		}
		return nil, fmt.Errorf("clone: git %s: %w: %s", gitVerb(args), err, msg)
	}
	return stdout.Bytes(), nil
}

func gitVerb(args []string) string {
	for i := 0; i < len(args); i++ {
		if args[i] == "-c" {
			i++
			continue
		}
		return args[i]
	}
	return ""
}

func lastLine(s string) string {
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}

func mask(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "***")
		}
	}
	return s
}

type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.buf.Write(p)
	if l.buf.Len() > l.max {
		b := l.buf.Bytes()[l.buf.Len()-l.max:]
		nb := append([]byte(nil), b...)
		l.buf.Reset()
		l.buf.Write(nb)
	}
	return len(p), nil
}

// maskingWriter writes whole lines (git's \r progress counts as a line end)
// with every secret replaced, so a secret split across two writes is still
// caught.
type maskingWriter struct {
	mu      sync.Mutex
	w       io.Writer
	secrets []string
	pending []byte
}

func newMaskingWriter(w io.Writer, secrets []string) *maskingWriter {
	return &maskingWriter{w: w, secrets: secrets}
}

// NewMaskingWriter returns a writer that replaces every secret with "***"
// line by line before writing to w. Call Flush at the end.
func NewMaskingWriter(w io.Writer, secrets ...string) interface {
	io.Writer
	Flush()
} {
	return newMaskingWriter(w, secrets)
}

func (m *maskingWriter) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pending = append(m.pending, p...)
	for {
		i := bytes.IndexAny(m.pending, "\r\n")
		if i < 0 {
			break
		}
		line := mask(string(m.pending[:i+1]), m.secrets)
		m.pending = m.pending[i+1:]
		if _, err := io.WriteString(m.w, line); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

// Flush writes what is left after the last line end.
func (m *maskingWriter) Flush() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.pending) > 0 {
		io.WriteString(m.w, mask(string(m.pending), m.secrets))
		m.pending = nil
	}
}
