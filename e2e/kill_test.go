package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge/gitea"
	"slipway.dev/slipway/internal/sandbox"
	"slipway.dev/slipway/internal/secrets"
	"slipway.dev/slipway/internal/store"
	"slipway.dev/slipway/internal/testenv/giteatest"
)

// binaryOnce builds the slipway binary once per test run.
var binaryOnce struct {
	sync.Once
	path string
	err  error
}

func slipwayBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "slipway-bin-")
		if err != nil {
			binaryOnce.err = err
			return
		}
		binaryOnce.path = filepath.Join(dir, "slipway")
		out, err := exec.Command("go", "build", "-o", binaryOnce.path, "slipway.dev/slipway/cmd/slipway").CombinedOutput()
		if err != nil {
			binaryOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binaryOnce.err != nil {
		t.Fatal(binaryOnce.err)
	}
	return binaryOnce.path
}

// proc is a `slipway serve` child process: a real server that a test can
// kill with SIGKILL at any moment.
type proc struct {
	t       *testing.T
	cmd     *exec.Cmd
	url     string
	dataDir string
	logPath string
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startProc starts `slipway serve` on addr with dataDir, appending its
// output to a log file, and waits until it is ready.
func startProc(t *testing.T, dataDir, wsDir, addr string) *proc {
	t.Helper()
	logPath := dataDir + ".log"
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	// The database URL goes in the environment: `serve` refuses one with a
	// password on the command line. The test Gitea is on loopback.
	cmd := exec.Command(slipwayBinary(t), "serve", "--data", dataDir, "--addr", addr, "--allow-private-networks")
	cmd.Env = append(os.Environ(), "SLIPWAY_WORKSPACES="+wsDir, "SLIPWAY_DATABASE_URL="+databaseURL(t, dataDir))
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lf.Close()
	p := &proc{t: t, cmd: cmd, url: "http://" + addr, dataDir: dataDir, logPath: logPath}
	t.Cleanup(func() {
		p.kill()
		// Its releases outlive a killed server by design; this one will
		// not start again, so they (and its firewall chain) go now.
		if os.Geteuid() == 0 {
			_ = sandbox.RemoveLeftovers(slog.New(slog.DiscardHandler), wsDir)
		}
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				if len(b) > 8000 {
					b = b[len(b)-8000:]
				}
				t.Logf("server log (tail):\n%s", b)
			}
			if dir := os.Getenv("SLIPWAY_E2E_KEEP"); dir != "" {
				_ = exec.Command("cp", "-a", dataDir, dir).Run()
			}
		}
	})
	waitFor(t, "slipway serve to be ready", 30*time.Second, func() bool {
		resp, err := http.Get(p.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

// kill ends the server with SIGKILL: no shutdown code runs.
func (p *proc) kill() {
	if p.cmd.Process != nil && p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
	}
}

func (p *proc) token() string {
	b, err := os.ReadFile(filepath.Join(p.dataDir, "admin-token"))
	if err != nil {
		p.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func traversableTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "slipway-e2e-ws-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// hookSecret reads a repository hook's secret the way only the server
// can, to sign deliveries as the provider would.
func hookSecret(t *testing.T, dataDir, integrationID string) (hookID, secret string) {
	t.Helper()
	keys, err := secrets.LoadOrCreate(filepath.Join(dataDir, "master.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx2(), databaseURL(t, dataDir), dataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	integ, err := st.GetIntegrationAnyOrg(ctx2(), integrationID)
	if err != nil {
		t.Fatal(err)
	}
	hooks, err := st.ListRepoHooks(ctx2(), integ.OrgID, integrationID)
	if err != nil || len(hooks) != 1 {
		t.Fatalf("hooks: %v %d", err, len(hooks))
	}
	raw, err := keys.Open(hooks[0].SecretCiphertext, []byte("hook:"+integrationID+":"+hooks[0].RepoID))
	if err != nil {
		t.Fatal(err)
	}
	return hooks[0].ID, string(raw)
}

// linkedService connects the shared Gitea, creates a private repository
// with the test app, and links a Service with auto-deploy on main.
func linkedService(t *testing.T, c api, buildSettings map[string]any) (g *giteatest.Server, user, pass, repo string, repoID int64, integ slipway.Integration, svc slipway.Service, token string) {
	t.Helper()
	g = giteatest.Shared(t)
	user = giteatest.UniqueName("kim")
	pass = g.CreateUser(t, user)
	token = g.CreateToken(t, user, pass, "slipway")
	repoID = g.CreateRepo(t, user, "svc", true)
	repo = user + "/svc"
	g.PushCommit(t, user, pass, repo, "main", appSource, "add the app")
	c.must("POST", "/api/v1/integrations", map[string]any{"provider": "gitea", "base_url": g.URL(), "token": token}, &integ)
	app := giteatest.UniqueName("app")
	c.must("POST", "/api/v1/applications", map[string]any{"name": app}, nil)
	body := map[string]any{"name": "web", "source": map[string]any{"integration_id": integ.ID, "repo_id": fmt.Sprint(repoID), "branch": "main", "auto_deploy": true}}
	if buildSettings != nil {
		body["build"] = buildSettings
	}
	c.must("POST", "/api/v1/environments/"+app+"%2Fproduction/services", body, &svc)
	return
}

// TestAcknowledgedWebhooksSurviveKill sends signed push deliveries and
// kills the server with SIGKILL right after the last acknowledgement. After
// a restart every acknowledged delivery is there and is carried out once:
// one deployment per pushed commit, none lost, none doubled.
func TestAcknowledgedWebhooksSurviveKill(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	dataDir, ws, addr := filepath.Join(root, "data"), traversableTempDir(t), freeAddr(t)
	p := startProc(t, dataDir, ws, addr)
	c := api{t: t, base: p.url, token: p.token()}
	_, _, _, repo, repoID, integ, svc, _ := linkedService(t, c, map[string]any{"install_command": "exit 1"})
	hookID, secret := hookSecret(t, dataDir, integ.ID)

	payload, err := os.ReadFile("../internal/forge/gitea/testdata/hooks/push.json")
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	shas := make([]string, n)
	acked := 0
	for i := range n {
		var m map[string]any
		if err := json.Unmarshal(payload, &m); err != nil {
			t.Fatal(err)
		}
		shas[i] = fmt.Sprintf("%040x", i+1)
		m["ref"], m["after"] = "refs/heads/main", shas[i]
		m["repository"].(map[string]any)["id"] = repoID
		m["repository"].(map[string]any)["full_name"] = repo
		hc := m["head_commit"].(map[string]any)
		hc["id"], hc["message"] = shas[i], fmt.Sprintf("commit %d", i)
		m["commits"] = []any{hc}
		body, _ := json.Marshal(m)
		req, _ := http.NewRequest("POST", p.url+"/hooks/gitea/"+integ.ID+"?hook="+hookID, bytes.NewReader(body))
		req.Header.Set("X-Gitea-Event", "push")
		req.Header.Set("X-Gitea-Delivery", fmt.Sprintf("kill-test-%d", i))
		gitea.Sign(req.Header, body, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("delivery %d: status %d", i, resp.StatusCode)
		}
		acked++
	}
	p.kill()

	p2 := startProc(t, dataDir, ws, addr)
	c.base = p2.url
	var dl struct {
		Items []struct {
			Verdict    string
			ProviderID string `json:"provider_delivery_id"`
		} `json:"items"`
		Total int `json:"total"`
	}
	waitFor(t, "every acknowledged delivery to be processed after the restart", 2*time.Minute, func() bool {
		c.must("GET", "/api/v1/integrations/"+integ.ID+"/deliveries?limit=200", nil, &dl)
		processed := 0
		for _, d := range dl.Items {
			if d.Verdict == "received" {
				return false
			}
			if strings.HasPrefix(d.ProviderID, "kill-test-") {
				processed++
			}
		}
		return processed == acked
	})
	var deps deploymentList
	c.must("GET", "/api/v1/services/"+svc.ID+"/deployments?limit=200", nil, &deps)
	per := map[string]int{}
	for _, d := range deps.Items {
		per[d.CommitSHA]++
	}
	for _, sha := range shas {
		if per[sha] != 1 {
			t.Errorf("commit %s: %d deployments, want exactly 1", sha[:8], per[sha])
		}
	}
	t.Logf("%d deliveries acknowledged before SIGKILL; after restart %d stored, %d deployments", acked, dl.Total, len(deps.Items))
}

// TestKilledDuringBuild kills the server while a deployment is building.
// On restart the deployment is failed with the reason, not left stuck, and
// the next deploy works.
func TestKilledDuringBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	dataDir, ws, addr := filepath.Join(root, "data"), traversableTempDir(t), freeAddr(t)
	p := startProc(t, dataDir, ws, addr)
	c := api{t: t, base: p.url, token: p.token()}
	_, _, _, _, _, _, svc, token := linkedService(t, c, map[string]any{"install_command": "sleep 60"})

	var d slipway.Deployment
	c.must("POST", "/api/v1/services/"+svc.ID+"/deploy", map[string]any{}, &d)
	waitFor(t, "the build to start", 2*time.Minute, func() bool {
		c.must("GET", "/api/v1/deployments/"+d.ID, nil, &d)
		if d.Status.Terminal() {
			t.Fatalf("deployment ended %s before its build: %s", d.Status, d.Error)
		}
		return d.Status == slipway.DeployBuilding
	})
	// While the build runs: the clone token is on no process command line.
	assertNotInCmdlines(t, token)
	p.kill()

	p2 := startProc(t, dataDir, ws, addr)
	c.base = p2.url
	// The dead worker's heartbeat goes silent; the restarted server fails
	// the deployment within the abandon window plus one sweep.
	waitFor(t, "the interrupted deployment to be failed", 2*time.Minute, func() bool {
		c.must("GET", "/api/v1/deployments/"+d.ID, nil, &d)
		return d.Status != slipway.DeployBuilding
	})
	if d.Status != slipway.DeployFailed || !strings.Contains(d.Error, "building") {
		t.Fatalf("interrupted deployment after restart: %s %q; want failed naming the building phase", d.Status, d.Error)
	}
	c.must("PATCH", "/api/v1/services/"+svc.ID, map[string]any{"build": map[string]any{}}, nil)
	var next slipway.Deployment
	c.must("POST", "/api/v1/services/"+svc.ID+"/deploy", map[string]any{}, &next)
	defer func() {
		if t.Failed() {
			for _, d := range c.deployments(svc.ID) {
				t.Logf("deployment %s %s trigger=%s by=%s sha=%s err=%q", d.ID, d.Status, d.Trigger, d.TriggeredBy, d.CommitSHA[:8], d.Error)
			}
		}
	}()
	c.waitLive(next.ID, 5*time.Minute)
	assertNoLeak(t, token, p2)
}

// assertNotInCmdlines fails when secret appears in any process's argv.
func assertNotInCmdlines(t *testing.T, secret string) {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	seen := 0
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		seen++
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("process %s has the token on its command line: %q", e.Name(), strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	if seen < 5 {
		t.Fatalf("read only %d command lines", seen)
	}
}

// assertNoLeak fails when the token appears in any file under the data
// directory (the database included: credentials are sealed) or in the
// server's log.
func assertNoLeak(t *testing.T, secret string, p *proc) {
	t.Helper()
	files := 0
	_ = filepath.Walk(p.dataDir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		files++
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("the token is in plain text in %s", path)
		}
		return nil
	})
	if files < 3 {
		t.Fatalf("scanned only %d files under %s", files, p.dataDir)
	}
	logb, err := os.ReadFile(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(logb, []byte(secret)) {
		t.Error("the token is in the server log")
	}
	if len(logb) == 0 {
		t.Fatal("empty server log")
	}
}
