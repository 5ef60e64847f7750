package build

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/clone"
	"slipway.dev/slipway/internal/netpolicy"
	"slipway.dev/slipway/internal/sandbox"
)

// appMain is the deployed test app: standard library only, so it builds
// offline. It answers its version file and refuses to start without PORT.
const appMain = `package main

import (
	"net/http"
	"os"
)

func main() {
	version, _ := os.ReadFile("version.txt")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write(version) })
	http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil)
}
`

func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=T", "GIT_AUTHOR_EMAIL=t@example.test",
		"GIT_COMMITTER_NAME=T", "GIT_COMMITTER_EMAIL=t@example.test", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// repoWith commits files into a new repository and returns its file URL
// and the commit SHA.
func repoWith(t *testing.T, files map[string]string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	gitIn(t, dir, "init", "-q", "-b", "main")
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitIn(t, dir, "add", ".")
	gitIn(t, dir, "commit", "-q", "-m", "test app")
	return "file://" + dir, gitIn(t, dir, "rev-parse", "HEAD")
}

// localSources lets these tests fetch from the directories they make.
var localSources = netpolicy.Policy{AllowFiles: true}

// reachableTempDir is a temp directory other users can traverse (the
// testing package makes its directories 0700), for sandbox roots.
func reachableTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(filepath.Base(d), "Test") {
			break
		}
	}
	return dir
}

func newBuilder(t *testing.T) (*Builder, *sandbox.Manager) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not available")
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var extra []string
	if goBin, err := exec.LookPath("go"); err == nil {
		extra = append(extra, filepath.Dir(goBin))
	}
	sb, err := sandbox.New(logger, sandbox.Options{Root: filepath.Join(reachableTempDir(t), "ws"), ExtraPath: extra})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(logger, sb, Options{SelfPath: "/usr/local/bin/slipway"})
	if err != nil {
		t.Fatal(err)
	}
	return b, sb
}

func TestBuildGoAppAndCache(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go toolchain not available")
	}
	b, sb := newBuilder(t)
	url, sha := repoWith(t, map[string]string{
		"svc/go.mod":      "module example.test/app\n\ngo 1.22\n",
		"svc/main.go":     appMain,
		"svc/version.txt": "v1",
		"other/README":    "not part of the build",
	})
	req := Request{ServiceID: "svc_goapp0000000001", DeploymentID: "dep_1",
		Source: clone.Options{Network: localSources, URL: url, SHA: sha, RootDir: "svc"}}
	var phases []slipway.DeploymentStatus
	req.OnPhase = func(s slipway.DeploymentStatus) { phases = append(phases, s) }
	var logs bytes.Buffer
	res, err := b.Build(context.Background(), req, &logs)
	if err != nil {
		t.Fatalf("Build: %v\n%s", err, logs.String())
	}
	if res.Kind != "go" || res.StartCommand != "exec ./app" || res.SHA != sha || res.Cached {
		t.Fatalf("result = %+v", res)
	}
	if len(phases) != 2 || phases[0] != slipway.DeployCloning || phases[1] != slipway.DeployBuilding {
		t.Errorf("phases = %v", phases)
	}
	fi, err := os.Stat(filepath.Join(res.Dir, "app"))
	if err != nil {
		t.Fatalf("built binary missing: %v\n%s", err, logs.String())
	}
	if sb.Isolating() {
		// A finished build is Slipway's: the Service's group may read and
		// run it, nobody but root may change it.
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 0 || st.Gid != res.User.GID || res.User.UID == 0 || st.Mode&0o027 != 0 || st.Mode&0o010 == 0 {
			t.Errorf("binary owned by %d:%d mode %o, want root:%d, group read/run only", st.Uid, st.Gid, st.Mode&0o7777, res.User.GID)
		}
	}
	if !strings.Contains(logs.String(), "$ go build -o ./app .") {
		t.Errorf("build log lacks the command:\n%s", logs.String())
	}

	again, err := b.Build(context.Background(), req, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cached || again.Dir != res.Dir {
		t.Errorf("redeploy did not reuse the build: %+v", again)
	}
	req.NoCache = true
	fresh, err := b.Build(context.Background(), req, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Cached || fresh.Dir == res.Dir {
		t.Errorf("NoCache reused the build: %+v", fresh)
	}
	if _, err := os.Stat(filepath.Join(res.Dir, "app")); err != nil {
		t.Error("a no-cache rebuild removed the previous build, which may be live")
	}
}

func TestBuildFailureIsReported(t *testing.T) {
	b, _ := newBuilder(t)
	url, sha := repoWith(t, map[string]string{"Procfile": "web: ./serve\n"})
	var logs bytes.Buffer
	_, err := b.Build(context.Background(), Request{ServiceID: "svc_fail", Source: clone.Options{Network: localSources, URL: url, SHA: sha},
		Settings: slipway.BuildSettings{BuildCommand: "echo compiling; echo broken >&2; exit 3"}}, &logs)
	if err == nil || !strings.Contains(err.Error(), "build command failed") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(logs.String(), "compiling\n") || !strings.Contains(logs.String(), "broken\n") {
		t.Errorf("logs = %q", logs.String())
	}
}

func TestDetect(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		set   slipway.BuildSettings
		want  Plan
	}{
		{"go", map[string]string{"go.mod": "module x"}, slipway.BuildSettings{}, Plan{Kind: "go", Build: "go build -o ./app .", Start: "exec ./app"}},
		{"node with lock and build", map[string]string{"package.json": `{"scripts":{"build":"tsc","start":"node ."}}`, "package-lock.json": "{}"}, slipway.BuildSettings{},
			Plan{Kind: "node", Install: "npm ci", Build: "npm run build", Start: "exec npm start"}},
		{"node plain", map[string]string{"package.json": `{"scripts":{"start":"node ."}}`}, slipway.BuildSettings{}, Plan{Kind: "node", Install: "npm install", Start: "exec npm start"}},
		{"python", map[string]string{"requirements.txt": "", "main.py": ""}, slipway.BuildSettings{},
			Plan{Kind: "python", Install: "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt", Start: "exec .venv/bin/python3 main.py"}},
		{"python procfile", map[string]string{"requirements.txt": "", "Procfile": "worker: x\nweb: gunicorn app:app\n"}, slipway.BuildSettings{},
			Plan{Kind: "python", Install: "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt", Start: "gunicorn app:app"}},
		{"static", map[string]string{"index.html": "<h1>hi</h1>"}, slipway.BuildSettings{}, Plan{Kind: "static", Start: "exec '/opt/slip way/slipway' 'static-serve' '--dir' '.'"}},
		{"procfile", map[string]string{"Procfile": "web: ./run.sh"}, slipway.BuildSettings{}, Plan{Kind: "procfile", Start: "./run.sh"}},
		{"settings win", map[string]string{"go.mod": "module x"}, slipway.BuildSettings{BuildCommand: "make", StartCommand: "./bin/server"},
			Plan{Kind: "go", Build: "make", Start: "./bin/server"}},
	}
	for _, c := range cases {
		dir := t.TempDir()
		for n, body := range c.files {
			os.WriteFile(filepath.Join(dir, n), []byte(body), 0o644)
		}
		got, err := Detect(dir, c.set, "/opt/slip way/slipway")
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
	if _, err := Detect(t.TempDir(), slipway.BuildSettings{}, "slipway"); slipway.ErrorCodeOf(err) != slipway.ECodeInvalid {
		t.Errorf("nothing to run: err = %v", err)
	}
}

// An image runtime's request only fetches: a repository with nothing the
// process runtime could run (a Dockerfile only) and a build command that
// would fail both pass, each request gets its own directory, and nothing
// is cached for the process runtime.
func TestSourceOnlyFetchesWithoutBuilding(t *testing.T) {
	b, _ := newBuilder(t)
	url, sha := repoWith(t, map[string]string{
		"app/Dockerfile":  "FROM scratch\n",
		"app/www/version": "v1",
		"elsewhere/x":     "outside the root directory",
	})
	req := Request{ServiceID: "svc_imageonly000001", DeploymentID: "dep_1", SourceOnly: true,
		Source:   clone.Options{Network: localSources, URL: url, SHA: sha, RootDir: "app"},
		Settings: slipway.BuildSettings{BuildCommand: "exit 7"}}
	var phases []slipway.DeploymentStatus
	req.OnPhase = func(s slipway.DeploymentStatus) { phases = append(phases, s) }
	var logs bytes.Buffer
	res, err := b.Build(context.Background(), req, &logs)
	if err != nil {
		t.Fatalf("Build: %v\n%s", err, logs.String())
	}
	if res.Kind != "image" || res.SHA != sha || res.StartCommand != "" || res.Cached {
		t.Fatalf("result = %+v", res)
	}
	if len(phases) != 2 || phases[1] != slipway.DeployBuilding {
		t.Errorf("phases = %v", phases)
	}
	if got, err := os.ReadFile(filepath.Join(res.Dir, "www", "version")); err != nil || string(got) != "v1" {
		t.Errorf("checkout: %q %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(res.Dir, "Dockerfile")); err != nil {
		t.Errorf("Dockerfile not at the root directory: %v", err)
	}
	if res.Checkout == "" || !strings.HasPrefix(res.Dir, res.Checkout) {
		t.Errorf("checkout %q does not hold dir %q", res.Checkout, res.Dir)
	}
	if strings.Contains(logs.String(), "Detected") || strings.Contains(logs.String(), "exit 7") {
		t.Errorf("a source-only request ran the build plan:\n%s", logs.String())
	}

	again, err := b.Build(context.Background(), req, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if again.Cached || again.Dir == res.Dir {
		t.Errorf("a second source-only request reused the first checkout: %+v", again)
	}
	// The process runtime's build of the same commit is not served from
	// a source-only fetch: it runs its plan, and finds nothing to start.
	req.SourceOnly = false
	if _, err := b.Build(context.Background(), req, io.Discard); slipway.ErrorCodeOf(err) != slipway.ECodeInvalid {
		t.Errorf("process build after a source-only fetch: err = %v", err)
	}
}
