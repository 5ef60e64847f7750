package clone

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slipway.dev/slipway/internal/netpolicy"
)

func requireGit(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not available")
	}
}

// gitIn runs git in dir for test setup and returns trimmed stdout.
func gitIn(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=Ada Lovelace", "GIT_AUTHOR_EMAIL=ada@example.test",
		"GIT_COMMITTER_NAME=Ada Lovelace", "GIT_COMMITTER_EMAIL=ada@example.test",
		"GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// newRepo makes a repository with two commits on main and returns its
// directory and the SHA of the first commit: the branch has moved on.
func newRepo(t *testing.T) (dir, first, second string) {
	dir = t.TempDir()
	gitIn(t, dir, "init", "-q", "-b", "main")
	write(t, filepath.Join(dir, "README"), "v1\n")
	write(t, filepath.Join(dir, "apps", "web", "main.go"), "package main\n")
	write(t, filepath.Join(dir, "apps", "api", "main.go"), "package main\n")
	gitIn(t, dir, "add", ".")
	gitIn(t, dir, "commit", "-q", "-m", "first commit\n\nwith a body")
	first = gitIn(t, dir, "rev-parse", "HEAD")
	write(t, filepath.Join(dir, "README"), "v2\n")
	gitIn(t, dir, "commit", "-q", "-am", "second commit")
	second = gitIn(t, dir, "rev-parse", "HEAD")
	return dir, first, second
}

func TestFetchExactCommitAfterBranchMovedOn(t *testing.T) {
	requireGit(t)
	repo, first, second := newRepo(t)
	dst := filepath.Join(t.TempDir(), "checkout")
	var log bytes.Buffer
	res, err := Fetch(context.Background(), Options{Network: testNet, URL: "file://" + repo, SHA: first, Dir: dst}, &log)
	if err != nil {
		t.Fatalf("Fetch: %v\n%s", err, log.String())
	}
	if res.SHA != first {
		t.Fatalf("SHA = %s, want %s (branch head is %s)", res.SHA, first, second)
	}
	if res.Message != "first commit\n\nwith a body" {
		t.Errorf("Message = %q", res.Message)
	}
	if res.Author != "Ada Lovelace <ada@example.test>" {
		t.Errorf("Author = %q", res.Author)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "README")); string(b) != "v1\n" {
		t.Errorf("README = %q, want the first commit's content", b)
	}
	if n := gitIn(t, dst, "rev-list", "--count", "HEAD"); n != "1" {
		t.Errorf("history depth = %s, want 1 (shallow)", n)
	}
	if tags := gitIn(t, dst, "tag"); tags != "" {
		t.Errorf("tags fetched: %q", tags)
	}
	if res.Dir != dst {
		t.Errorf("Dir = %s, want %s", res.Dir, dst)
	}
}

func TestFetchRootDirSparse(t *testing.T) {
	requireGit(t)
	repo, _, second := newRepo(t)
	dst := t.TempDir()
	res, err := Fetch(context.Background(), Options{Network: testNet, URL: "file://" + repo, SHA: second, Dir: dst, RootDir: "/apps/web/"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dst, "apps", "web"); res.Dir != want {
		t.Errorf("Dir = %s, want %s", res.Dir, want)
	}
	if !exists(filepath.Join(dst, "apps", "web", "main.go")) {
		t.Error("root directory not checked out")
	}
	if exists(filepath.Join(dst, "apps", "api")) {
		t.Error("a sibling of the root directory was checked out")
	}
	if _, err := Fetch(context.Background(), Options{Network: testNet, URL: "file://" + repo, SHA: second, Dir: t.TempDir(), RootDir: "nope"}, nil); err == nil {
		t.Error("missing root directory: no error")
	}
	if _, err := Fetch(context.Background(), Options{Network: testNet, URL: "file://" + repo, SHA: second, Dir: t.TempDir(), RootDir: "../etc"}, nil); err == nil {
		t.Error("root directory outside the repository: no error")
	}
}

func TestFetchRejectsBadInput(t *testing.T) {
	requireGit(t)
	repo, first, _ := newRepo(t)
	cases := map[string]Options{
		"short sha":       {URL: "file://" + repo, SHA: first[:7], Dir: t.TempDir()},
		"url credentials": {URL: "https://user:secret@127.0.0.1/x.git", SHA: first, Dir: t.TempDir()},
		// The zero policy is the installation default: no local files.
		"file url by default":   {URL: "file://" + repo, SHA: first, Dir: t.TempDir()},
		"local path by default": {URL: repo, SHA: first, Dir: t.TempDir()},
	}
	for name, opts := range cases {
		_, err := Fetch(context.Background(), opts, nil)
		if err == nil {
			t.Errorf("%s: no error", name)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error leaks the credential: %v", name, err)
		}
	}
	nonEmpty := t.TempDir()
	write(t, filepath.Join(nonEmpty, "x"), "x")
	if _, err := Fetch(context.Background(), Options{Network: testNet, URL: "file://" + repo, SHA: first, Dir: nonEmpty}, nil); err == nil {
		t.Error("non-empty directory: no error")
	}
	missing := strings.Repeat("ab", 20)
	if _, err := Fetch(context.Background(), Options{Network: testNet, URL: "file://" + repo, SHA: missing, Dir: t.TempDir()}, nil); err == nil {
		t.Error("unknown commit: no error")
	}
}

// gitHTTPServer serves repositories under root with git http-backend on
// 127.0.0.1, behind basic auth, and records every password it was offered.
func gitHTTPServer(t *testing.T, root, user, password string) *httptest.Server {
	t.Helper()
	return gitHTTPServerRecording(t, root, user, password, nil)
}

// gitHTTPServerRecording is gitHTTPServer that also hands every request's
// path and Authorization header to rec, when rec is not nil.
func gitHTTPServerRecording(t *testing.T, root, user, password string, rec *authRecorder) *httptest.Server {
	t.Helper()
	execPath := gitIn(t, root, "--exec-path")
	backend := &cgi.Handler{
		Path: filepath.Join(execPath, "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rec != nil {
			rec.record(r.URL.Path, r.Header.Get("Authorization"))
		}
		u, p, ok := r.BasicAuth()
		if !ok || u != user || subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFetchOverHTTPWithAskpassCredentials(t *testing.T) {
	requireGit(t)
	repo, first, _ := newRepo(t)
	const token = "tok-s3cr3t-value-1234"
	srv := gitHTTPServer(t, filepath.Dir(repo), "x-access-token", token)
	url := srv.URL + "/" + filepath.Base(repo) + "/.git"

	dst := t.TempDir()
	var log bytes.Buffer
	res, err := Fetch(context.Background(), Options{Network: testNet, URL: url, Username: "x-access-token", Password: token, SHA: first, Dir: dst}, &log)
	if err != nil {
		t.Fatalf("Fetch: %v\n%s", err, log.String())
	}
	if res.SHA != first {
		t.Fatalf("SHA = %s, want %s", res.SHA, first)
	}
	if strings.Contains(log.String(), token) {
		t.Error("log contains the token")
	}
	cfg, err := os.ReadFile(filepath.Join(dst, ".git", "config"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cfg), token) || strings.Contains(string(cfg), "x-access-token") {
		t.Errorf(".git/config holds credentials:\n%s", cfg)
	}

	// A wrong token fails with a readable reason and leaks nothing.
	log.Reset()
	_, err = Fetch(context.Background(), Options{Network: testNet, URL: url, Username: "x-access-token", Password: "wrong-" + token, SHA: first, Dir: t.TempDir()}, &log)
	if err == nil {
		t.Fatal("wrong token: no error")
	}
	if strings.Contains(err.Error(), token) || strings.Contains(log.String(), token) {
		t.Errorf("credential leaked: err=%v log=%s", err, log.String())
	}
	if !strings.Contains(err.Error(), "fetch") {
		t.Errorf("error does not name the failing step: %v", err)
	}
}

func TestAskpassAnswersOnlyItsHost(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "askpass")
	if err := os.WriteFile(script, []byte(askpassScript), 0o700); err != nil {
		t.Fatal(err)
	}
	ask := func(prompt string) (string, error) {
		cmd := exec.Command(script, prompt)
		cmd.Env = []string{"SLIPWAY_GIT_HOST=git.example.test", "SLIPWAY_GIT_USERNAME=u", "SLIPWAY_GIT_PASSWORD=p"}
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	if got, err := ask("Username for 'https://git.example.test': "); err != nil || got != "u" {
		t.Errorf("username prompt: %q, %v", got, err)
	}
	if got, err := ask("Password for 'https://u@git.example.test': "); err != nil || got != "p" {
		t.Errorf("password prompt: %q, %v", got, err)
	}
	if got, err := ask("Password for 'https://u@other.example.test': "); err == nil || got != "" {
		t.Errorf("foreign host answered: %q, %v", got, err)
	}
}

func TestMaskingWriterSplitSecret(t *testing.T) {
	var out bytes.Buffer
	w := NewMaskingWriter(&out, "hunter2")
	fmt.Fprint(w, "remote: bad token hun")
	fmt.Fprint(w, "ter2\rprogress 50%\n")
	fmt.Fprint(w, "tail hunter2")
	w.Flush()
	if strings.Contains(out.String(), "hunter2") {
		t.Fatalf("secret not masked: %q", out.String())
	}
	if want := "remote: bad token ***\rprogress 50%\ntail ***"; out.String() != want {
		t.Fatalf("got %q, want %q", out.String(), want)
	}
}

func TestFetchCancelled(t *testing.T) {
	requireGit(t)
	repo, first, _ := newRepo(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	_, err := Fetch(ctx, Options{Network: testNet, URL: "file://" + repo, SHA: first, Dir: t.TempDir()}, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
}

// testNet is the policy of these tests: their repositories are served from
// directories and loopback.
var testNet = netpolicy.Policy{AllowPrivate: true, AllowFiles: true}
