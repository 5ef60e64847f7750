package clone

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// authRecorder wraps the git HTTP server's handler and keeps the
// Authorization header of every request, so a test can say which host
// was offered which credential.
type authRecorder struct {
	mu      sync.Mutex
	headers []string
	paths   []string
}

func (a *authRecorder) record(path, authorization string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.paths = append(a.paths, path)
	a.headers = append(a.headers, authorization)
}

func (a *authRecorder) snapshot() (paths, headers []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.paths...), append([]string(nil), a.headers...)
}

// bareRepo turns a work tree repository into a bare one named name under
// root, which is what the http-backend serves.
func bareRepo(t *testing.T, work, root, name string) {
	t.Helper()
	gitIn(t, root, "clone", "-q", "--bare", work, filepath.Join(root, name))
}

// childRepo makes a repository with two commits and returns the first: the
// submodule is pinned to a commit that is no longer its branch tip.
func childRepo(t *testing.T, file string) (work, pinned string) {
	t.Helper()
	work = t.TempDir()
	gitIn(t, work, "init", "-q", "-b", "main")
	write(t, filepath.Join(work, file), "pinned\n")
	gitIn(t, work, "add", ".")
	gitIn(t, work, "commit", "-q", "-m", "pinned")
	pinned = gitIn(t, work, "rev-parse", "HEAD")
	write(t, filepath.Join(work, file), "later\n")
	gitIn(t, work, "commit", "-q", "-am", "later")
	return work, pinned
}

// parentRepo makes a repository whose single commit records one gitlink
// per submodule path, without cloning anything: .gitmodules is written by
// hand and the gitlink goes straight into the index.
func parentRepo(t *testing.T, subs map[string][2]string) (work, sha string) {
	t.Helper()
	work = t.TempDir()
	gitIn(t, work, "init", "-q", "-b", "main")
	write(t, filepath.Join(work, "README"), "parent\n")
	var gm strings.Builder
	for path, urlAndSHA := range subs {
		gm.WriteString("[submodule \"" + path + "\"]\n\tpath = " + path + "\n\turl = " + urlAndSHA[0] + "\n")
		gitIn(t, work, "update-index", "--add", "--cacheinfo", "160000,"+urlAndSHA[1]+","+path)
	}
	write(t, filepath.Join(work, ".gitmodules"), gm.String())
	gitIn(t, work, "add", "README", ".gitmodules")
	gitIn(t, work, "commit", "-q", "-m", "parent with submodules")
	return work, gitIn(t, work, "rev-parse", "HEAD")
}

// argvRecordingGit writes a git wrapper that appends its arguments to a
// file, so a test can read every command line Fetch started.
func argvRecordingGit(t *testing.T) (wrapper, argvLog string) {
	t.Helper()
	dir := t.TempDir()
	argvLog = filepath.Join(dir, "argv")
	wrapper = filepath.Join(dir, "git-wrapper")
	script := "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '" + argvLog + "'\nexec git \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return wrapper, argvLog
}

// filesUnder returns the content of every regular file under dir, for a
// sweep that no credential was written to disk.
func filesUnder(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[p] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFetchSubmoduleGetsNoCredentialsByDefault: a commit whose .gitmodules
// points at another private repository on the same host does not borrow
// the parent's credential: the fetch fails, and the submodule's host was
// never offered it.
func TestFetchSubmoduleGetsNoCredentialsByDefault(t *testing.T) {
	const user, token = "x-access-token", "tok-parent-only-1234"
	srv, sha, _, seen := sameHostSubmodule(t, user, token)

	var log bytes.Buffer
	_, err := Fetch(context.Background(), Options{Network: testNet,
		URL: srv.URL + "/parent.git", Username: user, Password: token,
		SHA: sha, Dir: t.TempDir(), Submodules: true,
	}, &log)
	if err == nil {
		t.Fatalf("the private submodule was fetched without an allowance\n%s", log.String())
	}
	if !strings.Contains(log.String(), "submodule vendor/lib ("+srv.URL+"/child.git): fetching without credentials") {
		t.Errorf("the log does not say how the submodule was fetched:\n%s", log.String())
	}
	paths, headers := seen.snapshot()
	childAsked := false
	for i, p := range paths {
		if strings.HasPrefix(p, "/child.git/") {
			childAsked = true
			if headers[i] != "" {
				t.Errorf("the submodule was offered a credential on %s", p)
			}
		}
	}
	if !childAsked {
		t.Fatalf("the submodule was never requested: the test proves nothing; requests %v", paths)
	}
}

// sameHostSubmodule serves a parent repository whose submodule vendor/lib
// is another private repository on the same authenticated server.
func sameHostSubmodule(t *testing.T, user, token string) (srv *httptest.Server, sha, pinned string, seen *authRecorder) {
	t.Helper()
	requireGit(t)
	child, pinned := childRepo(t, "lib.txt")
	root := t.TempDir()
	bareRepo(t, child, root, "child.git")
	// A relative URL, as forges recommend: resolved against the parent's
	// remote, so it lands on the same host.
	parent, sha := parentRepo(t, map[string][2]string{"vendor/lib": {"../child.git", pinned}})
	bareRepo(t, parent, root, "parent.git")
	seen = &authRecorder{}
	return gitHTTPServerRecording(t, root, user, token, seen), sha, pinned, seen
}

func TestFetchSubmoduleOnSameHostGetsCredentials(t *testing.T) {
	const user, token = "x-access-token", "tok-subm0dule-s3cr3t-5678"
	srv, sha, pinned, seen := sameHostSubmodule(t, user, token)

	git, argvLog := argvRecordingGit(t)
	dst := t.TempDir()
	var log bytes.Buffer
	res, err := Fetch(context.Background(), Options{Network: testNet,
		URL: srv.URL + "/parent.git", Username: user, Password: token,
		SHA: sha, Dir: dst, Submodules: true, Git: git,
		// The per-Service allowance: a credential for the one repository.
		SubmoduleCredentials: func(_ context.Context, u string) (string, string, bool, error) {
			return user, token, u == srv.URL+"/child.git", nil
		},
	}, &log)
	if err != nil {
		t.Fatalf("Fetch: %v\n%s", err, log.String())
	}
	if res.SHA != sha {
		t.Fatalf("SHA = %s, want %s", res.SHA, sha)
	}

	sub := filepath.Join(dst, "vendor", "lib")
	if b, err := os.ReadFile(filepath.Join(sub, "lib.txt")); err != nil || string(b) != "pinned\n" {
		t.Errorf("submodule file = %q, %v; want the pinned commit's content", b, err)
	}
	if got := gitIn(t, sub, "rev-parse", "HEAD"); got != pinned {
		t.Errorf("submodule HEAD = %s, want the recorded %s", got, pinned)
	}
	if n := gitIn(t, sub, "rev-list", "--count", "HEAD"); n != "1" {
		t.Errorf("submodule history depth = %s, want 1 (shallow)", n)
	}

	if !strings.Contains(log.String(), "fetching with a credential narrowed to that repository") {
		t.Errorf("the log does not say how the submodule was fetched:\n%s", log.String())
	}
	// The submodule's fetch really went through the authenticated server.
	paths, headers := seen.snapshot()
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+token))
	childAuthed := false
	for i, p := range paths {
		if strings.HasPrefix(p, "/child.git/") && headers[i] == wantAuth {
			childAuthed = true
		}
	}
	if !childAuthed {
		t.Errorf("no authenticated request for the submodule; requests: %v", paths)
	}

	// The credential is nowhere but in the git children's environment.
	if strings.Contains(log.String(), token) {
		t.Error("log contains the token")
	}
	argv, err := os.ReadFile(argvLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(argv), "submodule update") {
		t.Errorf("argv log does not show the submodule step:\n%s", argv)
	}
	if strings.Contains(string(argv), token) || strings.Contains(string(argv), user+":") {
		t.Errorf("a command line carries the credential:\n%s", argv)
	}
	for p, b := range filesUnder(t, filepath.Join(dst, ".git")) {
		if bytes.Contains(b, []byte(token)) || bytes.Contains(b, []byte(user+"@")) {
			t.Errorf("%s holds the credential", p)
		}
	}
	cfg := gitIn(t, dst, "config", "--get", "submodule.vendor/lib.url")
	if cfg != srv.URL+"/child.git" {
		t.Errorf("submodule URL in .git/config = %q, want %q (no credentials)", cfg, srv.URL+"/child.git")
	}
}

func TestFetchSubmoduleOnAnotherHostGetsNoCredentials(t *testing.T) {
	requireGit(t)
	const user, token = "x-access-token", "tok-own-host-only-9012"
	child, pinned := childRepo(t, "lib.txt")
	foreignRoot := t.TempDir()
	bareRepo(t, child, foreignRoot, "child.git")
	// The other host asks for credentials too (any would do for it), and
	// records what it was offered.
	var foreignSeen authRecorder
	foreign := gitHTTPServerRecording(t, foreignRoot, "someone", "their-own-password", &foreignSeen)

	root := t.TempDir()
	parent, sha := parentRepo(t, map[string][2]string{"vendor/lib": {foreign.URL + "/child.git", pinned}})
	bareRepo(t, parent, root, "parent.git")
	srv := gitHTTPServer(t, root, user, token)

	dst := t.TempDir()
	var log bytes.Buffer
	_, err := Fetch(context.Background(), Options{Network: testNet,
		URL: srv.URL + "/parent.git", Username: user, Password: token,
		SHA: sha, Dir: dst, Submodules: true,
	}, &log)
	// The code fails the fetch (it does not skip the submodule): a build
	// without its submodule would be a different build.
	if err == nil {
		t.Fatalf("Fetch succeeded although the submodule's host refused it\n%s", log.String())
	}
	if !strings.Contains(err.Error(), "submodule") {
		t.Errorf("error does not name the failing step: %v", err)
	}
	if strings.Contains(err.Error(), token) || strings.Contains(log.String(), token) {
		t.Errorf("credential leaked: err=%v log=%s", err, log.String())
	}

	paths, headers := foreignSeen.snapshot()
	if len(paths) == 0 {
		t.Fatal("the other host was never contacted: the test proves nothing")
	}
	encoded := base64.StdEncoding.EncodeToString([]byte(user + ":" + token))
	for i, h := range headers {
		if h != "" {
			t.Errorf("the other host was offered credentials on %s: %q", paths[i], h)
		}
		if strings.Contains(h, encoded) || strings.Contains(h, token) {
			t.Errorf("the other host received the token on %s", paths[i])
		}
	}
}
