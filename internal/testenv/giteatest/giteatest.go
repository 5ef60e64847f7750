// Package giteatest runs a real Gitea server on loopback for tests: real
// users, tokens, repositories, pushes over HTTP with the git CLI, webhook
// deliveries and the OAuth2 consent screen. Tests that need it are skipped
// with a clear message when SLIPWAY_GITEA_BIN does not name a Gitea binary
// (scripts/test.sh builds one and sets it).
//
// Starting Gitea takes a few seconds, so a test package usually shares one
// server: call giteatest.Main(m) from TestMain and giteatest.Shared(t) from
// the tests. Start(t) gives a test its own server.
package giteatest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment variables naming the Gitea binary and the directory holding
// its templates and static assets (the module's source in the module cache).
const (
	EnvBin    = "SLIPWAY_GITEA_BIN"
	EnvStatic = "SLIPWAY_GITEA_STATIC"
)

// Server is one running Gitea.
type Server struct {
	// AdminUser and AdminPassword are the site administrator's credentials.
	AdminUser     string
	AdminPassword string

	bin     string
	dir     string
	config  string
	baseURL string
	env     []string
	cmd     *exec.Cmd
	exited  chan struct{}
	http    *http.Client
}

// Start runs a Gitea server for t alone and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := binaryOrSkip(t)
	dir, err := os.MkdirTemp("", "giteatest-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := start(ctx, bin, os.Getenv(EnvStatic), dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		t.Fatalf("start gitea: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// shared is the one server a test binary's tests share. It is the only
// package-level state, and exists because a server outlives single tests;
// Main stops it when the test binary ends.
var shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Shared returns the server shared by every test of the test binary,
// starting it on first use. The package's TestMain must call Main so the
// server is stopped at the end.
func Shared(t testing.TB) *Server {
	t.Helper()
	bin := binaryOrSkip(t)
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "giteatest-")
		if err != nil {
			shared.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.srv, shared.err = start(ctx, bin, os.Getenv(EnvStatic), dir)
		if shared.err != nil {
			_ = os.RemoveAll(dir)
		}
	})
	if shared.err != nil {
		t.Fatalf("start shared gitea: %v", shared.err)
	}
	return shared.srv
}

// Main runs the tests and then stops the shared server, if one started.
// Call it from TestMain: func TestMain(m *testing.M) { giteatest.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.Stop()
	}
	os.Exit(code)
}

func binaryOrSkip(t testing.TB) string {
	t.Helper()
	bin := os.Getenv(EnvBin)
	if bin == "" {
		t.Skip("gitea binary not available: set " + EnvBin + " (scripts/test.sh builds it)")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("gitea binary not available: %s=%s: %v", EnvBin, bin, err)
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git CLI not available")
	}
	return bin
}

func start(ctx context.Context, bin, static, dir string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{
		AdminUser:     "slipway-admin",
		AdminPassword: randomHex(12),
		bin:           bin,
		dir:           dir,
		config:        filepath.Join(dir, "custom", "conf", "app.ini"),
		baseURL:       fmt.Sprintf("http://127.0.0.1:%d", port),
		exited:        make(chan struct{}),
		http:          &http.Client{Timeout: 30 * time.Second},
	}
	s.env = append(os.Environ(),
		"GITEA_I_AM_BEING_UNSAFE_RUNNING_AS_ROOT=true",
		"GITEA_WORK_DIR="+dir,
		"GITEA_CUSTOM="+filepath.Join(dir, "custom"),
		"HOME="+filepath.Join(dir, "home"),
	)
	if err := s.writeConfig(port, static); err != nil {
		return nil, err
	}
	if out, err := s.command(ctx, "migrate").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("gitea migrate: %w: %s", err, lastLines(out))
	}
	create := s.command(ctx, "admin", "user", "create", "--username", s.AdminUser,
		"--email", s.AdminUser+"@example.invalid", "--admin", "--must-change-password=false",
		"--password", s.AdminPassword)
	// The password travels on this one command line because the Gitea CLI
	// has no other way to take it; it is a throwaway test secret.
	if out, err := create.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("gitea admin user create: %w: %s", err, lastLines(out))
	}
	logFile, err := os.Create(filepath.Join(dir, "log", "web.stdout"))
	if err != nil {
		return nil, err
	}
	// The web server must outlive ctx, which only bounds startup.
	s.cmd = exec.Command(s.bin, "web", "--config", s.config, "--work-path", s.dir)
	s.cmd.Env = s.env
	s.cmd.Dir = dir
	s.cmd.Stdout = logFile
	s.cmd.Stderr = logFile
	if err := s.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("gitea web: %w", err)
	}
	go func() {
		_ = s.cmd.Wait()
		logFile.Close()
		close(s.exited)
	}()
	if err := s.waitHealthy(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) command(ctx context.Context, args ...string) *exec.Cmd {
	args = append(args, "--config", s.config, "--work-path", s.dir)
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Env = s.env
	cmd.Dir = s.dir
	return cmd
}

func (s *Server) writeConfig(port int, static string) error {
	for _, d := range []string{"custom/conf", "data", "repos", "log", "home"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o700); err != nil {
			return err
		}
	}
	runUser := "root"
	if u, err := user.Current(); err == nil {
		runUser = u.Username
	}
	jwtSecret := make([]byte, 32)
	_, _ = rand.Read(jwtSecret)
	var staticLine string
	if static != "" {
		staticLine = "STATIC_ROOT_PATH = " + static
	}
	ini := fmt.Sprintf(`APP_NAME = Slipway test forge
RUN_MODE = prod
RUN_USER = %[1]s
WORK_PATH = %[2]s

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = %[3]d
DOMAIN = 127.0.0.1
ROOT_URL = http://127.0.0.1:%[3]d/
DISABLE_SSH = true
START_SSH_SERVER = false
OFFLINE_MODE = true
LFS_START_SERVER = false
APP_DATA_PATH = %[2]s/data
%[4]s

[database]
DB_TYPE = sqlite3
PATH = %[2]s/data/gitea.db
SQLITE_JOURNAL_MODE = WAL

[repository]
ROOT = %[2]s/repos
DEFAULT_BRANCH = main

[security]
INSTALL_LOCK = true
SECRET_KEY = %[5]s
PASSWORD_COMPLEXITY = off
MIN_PASSWORD_LENGTH = 6
PASSWORD_CHECK_PWN = false

[oauth2]
ENABLED = true
JWT_SECRET = %[6]s
INVALIDATE_REFRESH_TOKENS = true

[webhook]
ALLOWED_HOST_LIST = loopback
SKIP_TLS_VERIFY = true
DELIVER_TIMEOUT = 10

[service]
DISABLE_REGISTRATION = true
ENABLE_CAPTCHA = false
REQUIRE_SIGNIN_VIEW = false
DEFAULT_KEEP_EMAIL_PRIVATE = false
ENABLE_NOTIFY_MAIL = false

[mailer]
ENABLED = false

[session]
PROVIDER = memory

[cache]
ADAPTER = memory

[queue]
TYPE = channel

[indexer]
ISSUE_INDEXER_TYPE = db
REPO_INDEXER_ENABLED = false

[cron]
ENABLED = false

[cron.update_checker]
ENABLED = false

[actions]
ENABLED = false

[log]
MODE = file
LEVEL = Info
ROOT_PATH = %[2]s/log
`, runUser, s.dir, port, staticLine, randomHex(32), base64.RawURLEncoding.EncodeToString(jwtSecret))
	return os.WriteFile(s.config, []byte(ini), 0o600)
}

func (s *Server) waitHealthy(ctx context.Context) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.baseURL+"/api/healthz", nil)
		if resp, err := s.http.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("gitea web exited during startup: %s", s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("gitea did not become healthy: %w: %s", ctx.Err(), s.logTail())
		case <-tick.C:
		}
	}
}

func (s *Server) logTail() string {
	out, _ := os.ReadFile(filepath.Join(s.dir, "log", "web.stdout"))
	if g, err := os.ReadFile(filepath.Join(s.dir, "log", "gitea.log")); err == nil {
		out = append(out, g...)
	}
	return lastLines(out)
}

// Stop kills the server and removes its files. It is safe to call twice.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	}
	_ = os.RemoveAll(s.dir)
}

// URL is the server's base URL, without a trailing slash.
func (s *Server) URL() string { return s.baseURL }

// UniqueName returns prefix with a random suffix, for users, orgs and
// repositories of tests sharing one server.
func UniqueName(prefix string) string { return prefix + "-" + randomHex(4) }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func lastLines(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

// APIError is a non-2xx answer of the Gitea API.
type APIError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.Status, e.Body)
}

// API calls the Gitea API at path (below /api/v1) with basic auth as
// user/password, sending in as JSON when non-nil and decoding the answer
// into out when non-nil.
func (s *Server) API(ctx context.Context, user, password, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.baseURL+"/api/v1"+path, body)
	if err != nil {
		return err
	}
	req.SetBasicAuth(user, password)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode/100 != 2 {
		return &APIError{Method: method, Path: path, Status: resp.StatusCode, Body: strings.TrimSpace(string(raw))}
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return nil
}

func (s *Server) admin(t testing.TB, method, path string, in, out any) {
	t.Helper()
	if err := s.API(context.Background(), s.AdminUser, s.AdminPassword, method, path, in, out); err != nil {
		t.Fatal(err)
	}
}

// StatusOf returns the HTTP status of an *APIError in err, or 0.
func StatusOf(err error) int {
	var e *APIError
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// CreateUser creates a user and returns its password.
func (s *Server) CreateUser(t testing.TB, name string) (password string) {
	t.Helper()
	password = randomHex(12)
	s.admin(t, http.MethodPost, "/admin/users", map[string]any{
		"username":             name,
		"email":                name + "@example.invalid",
		"password":             password,
		"must_change_password": false,
	}, nil)
	return password
}

// AllScopes are the scopes of a token that may do everything its user may.
var AllScopes = []string{"write:activitypub", "write:admin", "write:issue", "write:misc",
	"write:notification", "write:organization", "write:package", "write:repository", "write:user"}

// CreateToken creates an access token for user with the given scopes (all
// of them when none are given) and returns its secret.
func (s *Server) CreateToken(t testing.TB, user, password, name string, scopes ...string) string {
	t.Helper()
	if len(scopes) == 0 {
		scopes = AllScopes
	}
	var out struct {
		SHA1 string `json:"sha1"`
	}
	if err := s.API(context.Background(), user, password, http.MethodPost,
		"/users/"+user+"/tokens", map[string]any{"name": name, "scopes": scopes}, &out); err != nil {
		t.Fatal(err)
	}
	if out.SHA1 == "" {
		t.Fatal("create token: empty token in answer")
	}
	return out.SHA1
}

// DeleteToken revokes user's token called name.
func (s *Server) DeleteToken(t testing.TB, user, password, name string) {
	t.Helper()
	if err := s.API(context.Background(), user, password, http.MethodDelete,
		"/users/"+user+"/tokens/"+name, nil, nil); err != nil {
		t.Fatal(err)
	}
}

// CreateOrg creates organisation org owned by owner.
func (s *Server) CreateOrg(t testing.TB, owner, org string) {
	t.Helper()
	s.admin(t, http.MethodPost, "/admin/users/"+owner+"/orgs", map[string]any{
		"username": org, "visibility": "public",
	}, nil)
}

// CreateRepo creates owner/name (owner a user or an organisation) with an
// initial commit on main and returns its numeric id.
func (s *Server) CreateRepo(t testing.TB, owner, name string, private bool) (id int64) {
	t.Helper()
	var out struct {
		ID int64 `json:"id"`
	}
	in := map[string]any{
		"name": name, "private": private, "auto_init": true,
		"default_branch": "main", "readme": "Default",
	}
	ctx := context.Background()
	// Organisations take repositories through their own endpoint; users
	// through the admin one (which refuses organisations).
	err := s.API(ctx, s.AdminUser, s.AdminPassword, http.MethodPost, "/orgs/"+owner+"/repos", in, &out)
	if StatusOf(err) == http.StatusNotFound {
		err = s.API(ctx, s.AdminUser, s.AdminPassword, http.MethodPost, "/admin/users/"+owner+"/repos", in, &out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return out.ID
}

// CreateBranch creates branch from an existing branch of owner/repo.
func (s *Server) CreateBranch(t testing.TB, owner, repo, branch, from string) {
	t.Helper()
	s.admin(t, http.MethodPost, "/repos/"+owner+"/"+repo+"/branches", map[string]any{
		"new_branch_name": branch, "old_branch_name": from,
	}, nil)
}

// CreateTag creates a tag of owner/repo at target (a branch or a SHA). A
// non-empty message makes it an annotated tag.
func (s *Server) CreateTag(t testing.TB, owner, repo, tag, target, message string) {
	t.Helper()
	s.admin(t, http.MethodPost, "/repos/"+owner+"/"+repo+"/tags", map[string]any{
		"tag_name": tag, "target": target, "message": message,
	}, nil)
}

// Hook is a repository webhook as Gitea reports it.
type Hook struct {
	ID     int64             `json:"id"`
	Type   string            `json:"type"`
	Active bool              `json:"active"`
	Events []string          `json:"events"`
	Config map[string]string `json:"config"`
}

// ListHooks returns the webhooks of owner/repo.
func (s *Server) ListHooks(t testing.TB, owner, repo string) []Hook {
	t.Helper()
	var hooks []Hook
	s.admin(t, http.MethodGet, "/repos/"+owner+"/"+repo+"/hooks", nil, &hooks)
	return hooks
}

// CreateOAuthApp registers a confidential OAuth2 application for user and
// returns its client id and secret.
func (s *Server) CreateOAuthApp(t testing.TB, user, password, name, redirectURI string) (clientID, clientSecret string) {
	t.Helper()
	var out struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := s.API(context.Background(), user, password, http.MethodPost, "/user/applications/oauth2",
		map[string]any{"name": name, "redirect_uris": []string{redirectURI}, "confidential_client": true}, &out); err != nil {
		t.Fatal(err)
	}
	return out.ClientID, out.ClientSecret
}

// PushCommit commits files (path → content) on branch of repoFullName
// (created from the default branch when missing) as user, pushes it with
// the git CLI over HTTP and returns the new commit's SHA. The credentials
// reach git through the environment (GIT_CONFIG_* setting an
// http.extraHeader), never through its command line or the remote URL.
func (s *Server) PushCommit(t testing.TB, user, password, repoFullName, branch string, files map[string]string, message string) (sha string) {
	t.Helper()
	git, work := s.clone(t, user, password, repoFullName)
	if git("ls-remote", "--heads", "origin", branch) != "" {
		git("checkout", "--quiet", "-B", branch, "origin/"+branch)
	} else {
		git("checkout", "--quiet", "-b", branch)
	}
	for name, content := range files {
		p := filepath.Join(work, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git("add", "--all")
	git("commit", "--quiet", "--allow-empty", "-m", message)
	git("push", "--quiet", "origin", "HEAD:refs/heads/"+branch)
	return git("rev-parse", "HEAD")
}

// PushSubmodule commits a gitlink at path pinned to sha, with a
// .gitmodules entry pointing at url, on branch of repoFullName, pushes it
// and returns the new commit's SHA. Nothing is cloned: the gitlink goes
// straight into the index, as git submodule add would leave it.
func (s *Server) PushSubmodule(t testing.TB, user, password, repoFullName, branch, path, url, sha string) string {
	t.Helper()
	git, work := s.clone(t, user, password, repoFullName)
	git("checkout", "--quiet", "-B", branch, "origin/"+branch)
	gm := "[submodule \"" + path + "\"]\n\tpath = " + path + "\n\turl = " + url + "\n"
	if err := os.WriteFile(filepath.Join(work, ".gitmodules"), []byte(gm), 0o644); err != nil {
		t.Fatal(err)
	}
	git("update-index", "--add", "--cacheinfo", "160000,"+sha+","+path)
	git("add", ".gitmodules")
	git("commit", "--quiet", "-m", "add submodule "+path)
	git("push", "--quiet", "origin", "HEAD:refs/heads/"+branch)
	return git("rev-parse", "HEAD")
}

// PushTag tags the head of branch and pushes the tag with the git CLI, as
// a user would (a tag made through the API sends no push event).
func (s *Server) PushTag(t testing.TB, user, password, repoFullName, branch, tag string) (sha string) {
	t.Helper()
	git, _ := s.clone(t, user, password, repoFullName)
	git("checkout", "--quiet", "-B", branch, "origin/"+branch)
	git("tag", tag)
	git("push", "--quiet", "origin", "refs/tags/"+tag)
	return git("rev-parse", "HEAD")
}

// PushAnnotatedTag is PushTag with an annotated tag (git tag -a): the
// pushed ref then names a tag object, not the commit. It returns both.
func (s *Server) PushAnnotatedTag(t testing.TB, user, password, repoFullName, branch, tag, message string) (commit, tagObject string) {
	t.Helper()
	git, _ := s.clone(t, user, password, repoFullName)
	git("checkout", "--quiet", "-B", branch, "origin/"+branch)
	git("tag", "-a", tag, "-m", message)
	git("push", "--quiet", "origin", "refs/tags/"+tag)
	return git("rev-parse", "HEAD"), git("rev-parse", "refs/tags/"+tag)
}

// clone clones repoFullName into a temporary work tree and returns a git
// runner for it. Credentials travel as an http.extraHeader through the
// environment, never in the URL or on the command line.
func (s *Server) clone(t testing.TB, user, password, repoFullName string) (git func(args ...string) string, work string) {
	t.Helper()
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	env := append(os.Environ(),
		"GIT_TERMINAL_PROMPT=0",
		"GIT_CONFIG_NOSYSTEM=1",
		"HOME="+dir,
		"GIT_CONFIG_COUNT=1",
		"GIT_CONFIG_KEY_0=http.extraHeader",
		"GIT_CONFIG_VALUE_0=Authorization: Basic "+auth,
		"GIT_AUTHOR_NAME="+user, "GIT_AUTHOR_EMAIL="+user+"@example.invalid",
		"GIT_COMMITTER_NAME="+user, "GIT_COMMITTER_EMAIL="+user+"@example.invalid",
	)
	work = filepath.Join(dir, "work")
	git = func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Env = env
		cmd.Dir = dir
		if _, err := os.Stat(work); err == nil {
			cmd.Dir = work
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v: %s", args[0], err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("clone", "--quiet", s.baseURL+"/"+repoFullName+".git", work)
	return git, work
}

// DeleteBranch deletes branch of owner/repo.
func (s *Server) DeleteBranch(t testing.TB, owner, repo, branch string) {
	t.Helper()
	s.admin(t, http.MethodDelete, "/repos/"+owner+"/"+repo+"/branches/"+branch, nil, nil)
}
