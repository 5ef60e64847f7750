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
	// has a .gitmodules file.
	Submodules bool
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

	g, err := newGitRunner(opts, u, log)
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
		if _, err := g.run(ctx, "submodule", "update", "--init", "--depth", "1", "--recursive"); err != nil {
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
	tmp    string // askpass script and SSH key; removed by cleanup
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

func newGitRunner(opts Options, u *url.URL, log io.Writer) (*gitRunner, error) {
	g := &gitRunner{git: opts.Git, dir: opts.Dir, log: log}
	if g.git == "" {
		g.git = "git"
	}
	tmp, err := os.MkdirTemp("", "slipway-git-")
	if err != nil {
		return nil, fmt.Errorf("clone: temp dir: %w", err)
	}
	g.tmp = tmp
	g.env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + tmp, // no user or system config steers the fetch
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_LFS_SKIP_SMUDGE=1", // LFS objects come from one "git lfs pull"
		"LC_ALL=C",
	}
	if opts.Username != "" || opts.Password != "" {
		askpass := filepath.Join(tmp, "askpass")
		if err := os.WriteFile(askpass, []byte(askpassScript), 0o700); err != nil {
			g.cleanup()
			return nil, fmt.Errorf("clone: write askpass helper: %w", err)
		}
		g.env = append(g.env,
			"GIT_ASKPASS="+askpass,
			"SLIPWAY_GIT_HOST="+u.Host,
			"SLIPWAY_GIT_USERNAME="+opts.Username,
			"SLIPWAY_GIT_PASSWORD="+opts.Password,
		)
		g.secret = append(g.secret, opts.Password)
	}
	if opts.SSHKey != "" {
		key := filepath.Join(tmp, "id")
		if err := os.WriteFile(key, []byte(strings.TrimSpace(opts.SSHKey)+"\n"), 0o600); err != nil {
			g.cleanup()
			return nil, fmt.Errorf("clone: write ssh key: %w", err)
		}
		ssh := "ssh -i " + key + " -o IdentitiesOnly=yes -o BatchMode=yes"
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
	}
	return g, nil
}

func (g *gitRunner) cleanup() { os.RemoveAll(g.tmp) }

// run runs one git command, streaming its stderr (progress, errors) to the
// log and returning its stdout.
func (g *gitRunner) run(ctx context.Context, args ...string) ([]byte, error) {
	// credential.helper= empties the helper list, so nothing is stored.
	full := append([]string{"-c", "credential.helper="}, args...)
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
