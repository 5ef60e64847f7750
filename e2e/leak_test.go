package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/secrets"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
	"slipway.dev/slipway/internal/testenv/giteatest"
)

// TestLeakOAuthConnectEndToEnd connects a real Gitea through its OAuth
// consent screen the way `slipway integration connect gitea --oauth` does:
// the API returns the flow's Slipway link, the signed-in user opens it,
// consents on Gitea, and the provider's redirect to Slipway's callback,
// once confirmed, connects the integration. The picker then lists the user's private
// repository, and the same state used a second time is refused.
func TestLeakOAuthConnectEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	p := startProc(t, filepath.Join(root, "data"), traversableTempDir(t), freeAddr(t))
	c := &recorder{api: api{t: t, base: p.url, token: p.token()}}
	g := giteatest.Shared(t)
	user := giteatest.UniqueName("olu")
	pass := g.CreateUser(t, user)
	repoID := g.CreateRepo(t, user, "private-app", true)

	o := connectOAuth(t, c, p, g, user, pass)
	if o.integ.Status != slipway.IntegrationConnected || o.integ.AuthMethod != slipway.AuthOAuth || o.integ.AccountName != user {
		t.Fatalf("integration after the callback: status %s, method %s, account %q; want connected through OAuth as %s",
			o.integ.Status, o.integ.AuthMethod, o.integ.AccountName, user)
	}
	var repos struct{ Items []forge.Repo }
	c.must("GET", "/api/v1/integrations/"+o.integ.ID+"/repos", nil, &repos)
	if !slices.ContainsFunc(repos.Items, func(r forge.Repo) bool { return r.ID == fmt.Sprint(repoID) && r.Private }) {
		t.Fatalf("the picker does not list the private repository %d: %+v", repoID, repos.Items)
	}

	// The state works once: the provider's redirect opened again, in the
	// same browser, is refused with what to do, and the integration stays
	// as it was.
	again := o.browser.get(o.callback)
	c.keep("GET callback (second use)", []byte(again.body))
	if again.status != http.StatusBadRequest || !strings.Contains(again.body, "already used or has expired") {
		t.Fatalf("second use of the state: HTTP %d %.300s; want 400 saying it was already used", again.status, again.body)
	}
	var after slipway.Integration
	c.must("GET", "/api/v1/integrations/"+o.integ.ID, nil, &after)
	if after.Status != slipway.IntegrationConnected {
		t.Fatalf("after the refused second use the integration is %s", after.Status)
	}

	// Neither the client secret nor the tokens the code was exchanged for
	// were sent back by any answer in this flow.
	sec := o.secrets(t, p.dataDir)
	for _, s := range sec {
		for _, hit := range c.find(s) {
			t.Errorf("%s is in the answer to %s", s.name, hit)
		}
	}
}

// TestLeakNoCredentialAnywhere deploys one Service from a private Gitea
// repository with each kind of credential that can run here — a Gitea
// personal access token, a Gitea OAuth connection (its client secret and
// its access and refresh tokens) and generic Git over HTTPS with a user and
// a token — and then looks for every secret (the repository hooks' secrets
// too) where none may be: any file under the data and workspace
// directories (the database's files hold sealed values only), any line of
// the server's log, any deployment log line, any API answer received, and
// any process's command line sampled from before each deploy until it is
// live (and the environment of the build's and the app's processes).
func TestLeakNoCredentialAnywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	dataDir, ws := filepath.Join(root, "data"), traversableTempDir(t)
	p := startProc(t, dataDir, ws, freeAddr(t))
	c := &recorder{api: api{t: t, base: p.url, token: p.token()}}
	g := giteatest.Shared(t)
	user := giteatest.UniqueName("lee")
	pass := g.CreateUser(t, user)

	procs := startProcSampler(25 * time.Millisecond)
	defer procs.stop()

	// One Service, relinked to each credential's private repository in
	// turn: every deploy clones with that credential, and the Go build
	// cache of the Service's user stays warm after the first.
	marker := "slipway-leak-build-" + randomHexString(6)
	build := map[string]any{"build_command": "sh -c 'sleep 2; :' " + marker + " && go build -o ./app ."}
	app := giteatest.UniqueName("leaky")
	c.must("POST", "/api/v1/applications", map[string]any{"name": app}, nil)
	var all []secretValue

	// (a) A Gitea personal access token.
	pat := g.CreateToken(t, user, pass, "slipway-pat")
	all = append(all, secretValue{"the Gitea personal access token", pat})
	patRepo := g.CreateRepo(t, user, "by-token", true)
	g.PushCommit(t, user, pass, user+"/by-token", "main", appSource, "add the app")
	var patInteg slipway.Integration
	c.must("POST", "/api/v1/integrations", map[string]any{"provider": "gitea", "base_url": g.URL(), "token": pat, "label": "gitea token"}, &patInteg)
	var svc slipway.Service
	c.must("POST", "/api/v1/environments/"+app+"%2Fproduction/services", map[string]any{"name": "web", "build": build,
		"source": map[string]any{"integration_id": patInteg.ID, "repo_id": fmt.Sprint(patRepo), "branch": "main", "auto_deploy": true}}, &svc)
	all = append(all, hookSecrets(t, dataDir, patInteg.ID, "Gitea token")...)
	var d slipway.Deployment
	c.must("POST", "/api/v1/services/"+svc.ID+"/deploy", map[string]any{}, &d)
	c.waitLive(d.ID, 4*time.Minute)
	t.Logf("deployed with the personal access token")

	// (b) A Gitea OAuth connection; the deploy comes from a push, through
	// the repository hook the OAuth token created.
	oauthRepo := g.CreateRepo(t, user, "by-oauth", true)
	g.PushCommit(t, user, pass, user+"/by-oauth", "main", appSource, "add the app")
	o := connectOAuth(t, c, p, g, user, pass)
	if o.integ.Status != slipway.IntegrationConnected {
		t.Fatalf("OAuth integration: %s %s", o.integ.Status, o.integ.StatusReason)
	}
	all = append(all, o.secrets(t, dataDir)...)
	c.must("PATCH", "/api/v1/services/"+svc.ID, map[string]any{"source": map[string]any{
		"integration_id": o.integ.ID, "repo_id": fmt.Sprint(oauthRepo), "branch": "main", "auto_deploy": true}}, &svc)
	all = append(all, hookSecrets(t, dataDir, o.integ.ID, "Gitea OAuth")...)
	readme := map[string]string{"README.md": "deployed by a push\n"}
	merged := func(a, b map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range a {
			m[k] = v
		}
		for k, v := range b {
			m[k] = v
		}
		return m
	}
	sha := g.PushCommit(t, user, pass, user+"/by-oauth", "main", merged(appSource, readme), "a push Slipway deploys")
	waitFor(t, "the pushed commit's deployment", time.Minute, func() bool {
		var l deploymentList
		c.must("GET", "/api/v1/services/"+svc.ID+"/deployments", nil, &l)
		for _, x := range l.Items {
			if x.CommitSHA == sha {
				d = x
				return true
			}
		}
		return false
	})
	c.waitLive(d.ID, 3*time.Minute)
	var deliveries struct {
		Items []json.RawMessage `json:"items"`
	}
	c.must("GET", "/api/v1/integrations/"+o.integ.ID+"/deliveries", nil, &deliveries)
	if len(deliveries.Items) == 0 {
		t.Error("the push's delivery is not in the delivery log")
	}
	t.Logf("deployed with OAuth from a push (%d deliveries)", len(deliveries.Items))

	// (c) Generic Git over HTTPS with a user and a token.
	gitToken := g.CreateToken(t, user, pass, "slipway-git", "read:repository")
	all = append(all, secretValue{"the generic Git token", gitToken})
	g.CreateRepo(t, user, "by-git", true)
	g.PushCommit(t, user, pass, user+"/by-git", "main", appSource, "add the app")
	var gitInteg slipway.Integration
	c.must("POST", "/api/v1/integrations", map[string]any{"provider": "git", "url": g.URL() + "/" + user + "/by-git.git",
		"username": user, "token": gitToken, "label": "plain git"}, &gitInteg)
	if gitInteg.Status != slipway.IntegrationConnected {
		t.Fatalf("generic Git integration: %s %s", gitInteg.Status, gitInteg.StatusReason)
	}
	var repos struct{ Items []forge.Repo }
	c.must("GET", "/api/v1/integrations/"+gitInteg.ID+"/repos", nil, &repos)
	if len(repos.Items) != 1 {
		t.Fatalf("generic Git repositories: %+v", repos.Items)
	}
	c.must("PATCH", "/api/v1/services/"+svc.ID, map[string]any{"source": map[string]any{
		"integration_id": gitInteg.ID, "repo_id": repos.Items[0].ID, "branch": "main", "auto_deploy": true}}, &svc)
	c.must("POST", "/api/v1/services/"+svc.ID+"/deploy", map[string]any{}, &d)
	c.waitLive(d.ID, 3*time.Minute)
	t.Logf("deployed with generic Git")
	seen := procs.stop()

	// Every answer a client could ask for about what was set up.
	var integs struct {
		Items []slipway.Integration `json:"items"`
	}
	c.must("GET", "/api/v1/integrations", nil, &integs)
	for _, in := range integs.Items {
		c.must("GET", "/api/v1/integrations/"+in.ID, nil, nil)
		c.must("GET", "/api/v1/integrations/"+in.ID+"/hooks", nil, nil)
		c.must("GET", "/api/v1/integrations/"+in.ID+"/deliveries", nil, nil)
		c.must("POST", "/api/v1/integrations/"+in.ID+"/check", map[string]any{}, nil)
	}
	c.must("GET", "/api/v1/services", nil, nil)
	c.must("GET", "/api/v1/services/"+svc.ID, nil, nil)
	c.must("GET", "/api/v1/services/"+svc.ID+"/variables", nil, nil)
	var deps deploymentList
	c.must("GET", "/api/v1/services/"+svc.ID+"/deployments", nil, &deps)
	if len(deps.Items) < 3 {
		t.Fatalf("%d deployments; want at least 3", len(deps.Items))
	}
	var logLines []string
	for _, x := range deps.Items {
		c.must("GET", "/api/v1/deployments/"+x.ID, nil, nil)
		logLines = append(logLines, c.deploymentLog(x.ID)...)
	}
	if len(logLines) < 10 {
		t.Fatalf("only %d deployment log lines", len(logLines))
	}

	// The sampler ran while the builds did: it saw the build's marker.
	if !seen.sawCmdline(marker) {
		t.Fatalf("the process sampler never saw the build running (%d samples, %d distinct command lines)", seen.samples, len(seen.cmdlines))
	}
	if !seen.root && len(seen.environs) == 0 {
		t.Log("not root: the environment of the build's processes was not read")
	}

	for _, s := range all {
		if len(s.value) < 16 {
			t.Fatalf("%s is %d characters: too short to look for", s.name, len(s.value))
		}
	}
	files := filesContaining(t, all, dataDir, ws)
	logHits := logContaining(t, p.logPath, all)
	for _, s := range all {
		for _, hit := range files.hits[s.name] {
			t.Errorf("%s is in plain text in %s", s.name, hit)
		}
		for _, hit := range logHits.hits[s.name] {
			t.Errorf("%s is in the server log: %s", s.name, hit)
		}
		for _, hit := range linesContaining(logLines, s) {
			t.Errorf("%s is in a deployment log line: %s", s.name, hit)
		}
		for _, hit := range c.find(s) {
			t.Errorf("%s is in the answer to %s", s.name, hit)
		}
		for _, hit := range seen.find(s) {
			t.Errorf("%s is visible in a process: %s", s.name, hit)
		}
	}
	t.Logf("looked for %d secrets in %d files, %d server log lines, %d deployment log lines, %d API answers, %d process samples (%d distinct command lines, %d of them git fetches or remote helpers, %d build environments)",
		len(all), files.scanned, logHits.lines, len(logLines), len(c.bodies), seen.samples, len(seen.cmdlines),
		seen.countCmdlines("\x00fetch\x00", "git-remote-http"), len(seen.environs))
}

// TestLeakScannersCatchAPlantedCopy shows that each place the leak test
// looks in would report a secret that is there: a copy planted in a file
// deep under a directory, in a log line, in an API answer, in a deployment
// log line, on a process's command line and in a build process's
// environment.
func TestLeakScannersCatchAPlantedCopy(t *testing.T) {
	canary := secretValue{"the canary", "canary-" + randomHexString(16)}
	other := secretValue{"an absent secret", "absent-" + randomHexString(16)}
	both := []secretValue{canary, other}

	dir := t.TempDir()
	deep := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(deep, 0o700); err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, 64<<10)
	_, _ = rand.Read(junk)
	planted := append(append(append([]byte{}, junk...), canary.value...), junk...)
	if err := os.WriteFile(filepath.Join(deep, "db.sqlite-wal"), planted, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "clean"), junk, 0o600); err != nil {
		t.Fatal(err)
	}
	files := filesContaining(t, both, dir)
	if len(files.hits[canary.name]) != 1 || len(files.hits[other.name]) != 0 || files.scanned != 2 {
		t.Errorf("file scan: %v over %d files; want the planted copy only", files.hits, files.scanned)
	}

	logPath := filepath.Join(dir, "server.log")
	if err := os.WriteFile(logPath, []byte("level=INFO msg=start\nlevel=INFO msg=clone token="+canary.value+"\nlevel=INFO msg=done\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logHits := logContaining(t, logPath, both)
	if len(logHits.hits[canary.name]) != 1 || !strings.Contains(logHits.hits[canary.name][0], "line 2") || len(logHits.hits[other.name]) != 0 {
		t.Errorf("log scan: %v; want line 2 only", logHits.hits)
	}
	if strings.Contains(fmt.Sprint(logHits.hits), canary.value) {
		t.Error("the log scan's report repeats the secret")
	}

	c := &recorder{}
	c.keep("GET /api/v1/integrations", []byte(`{"items":[{"id":"int_1","token":"`+canary.value+`"}]}`))
	c.keep("GET /api/v1/services", []byte(`{"items":[]}`))
	if hits := c.find(canary); len(hits) != 1 || !strings.Contains(hits[0], "/api/v1/integrations") {
		t.Errorf("answer scan: %v; want the integrations answer", hits)
	}
	if hits := c.find(other); len(hits) != 0 {
		t.Errorf("answer scan found an absent secret: %v", hits)
	}
	if hits := linesContaining([]string{"cloning", "fatal: https://x:" + canary.value + "@host/repo", "done"}, canary); len(hits) != 1 {
		t.Errorf("deployment log scan: %v; want one line", hits)
	}

	// A process with the canary on its command line, and (as root) one
	// running as another user with the canary in its environment, like a
	// build would.
	onCmdline := exec.Command("sh", "-c", "sleep 30", canary.value)
	if err := onCmdline.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = onCmdline.Process.Kill(); _ = onCmdline.Wait() }()
	var inEnv *exec.Cmd
	if os.Geteuid() == 0 {
		inEnv = exec.Command("sleep", "30")
		inEnv.Env = []string{"PATH=/usr/bin:/bin", "LEAKED=" + canary.value}
		inEnv.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if err := inEnv.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = inEnv.Process.Kill(); _ = inEnv.Wait() }()
	}
	s := startProcSampler(10 * time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	seen := s.stop()
	hits := seen.find(canary)
	wantHits := 1
	if inEnv != nil {
		wantHits = 2
	}
	if len(hits) != wantHits || !strings.Contains(strings.Join(hits, "\n"), "command line") {
		t.Errorf("process scan: %v; want %d hits (the command line and, as root, the environment)", hits, wantHits)
	}
	if inEnv != nil && !strings.Contains(strings.Join(hits, "\n"), "environment") {
		t.Errorf("process scan missed the environment: %v", hits)
	}
	if len(seen.find(other)) != 0 {
		t.Errorf("process scan found an absent secret")
	}
	if strings.Contains(strings.Join(hits, "\n"), canary.value) {
		t.Error("the process scan's report repeats the secret")
	}
}

// secretValue is one credential the test looks for, with a name for
// reports (which never repeat the value).
type secretValue struct{ name, value string }

// recorder is the API client of the leak tests: it keeps every answer's
// body to look for secrets in afterwards.
type recorder struct {
	api
	mu     sync.Mutex
	bodies []recordedBody
}

type recordedBody struct {
	what string
	body []byte
}

func (r *recorder) keep(what string, body []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bodies = append(r.bodies, recordedBody{what, bytes.Clone(body)})
}

func (r *recorder) do(method, path string, in, out any) (int, []byte) {
	r.t.Helper()
	code, body := r.api.do(method, path, in, out)
	r.keep(method+" "+path, body)
	return code, body
}

func (r *recorder) must(method, path string, in, out any) {
	r.t.Helper()
	if code, data := r.do(method, path, in, out); code >= 300 {
		r.t.Fatalf("%s %s: %d %s", method, path, code, data)
	}
}

// find names the answers that hold s.
func (r *recorder) find(s secretValue) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var hits []string
	for _, b := range r.bodies {
		if bytes.Contains(b.body, []byte(s.value)) {
			hits = append(hits, b.what)
		}
	}
	return hits
}

// waitLive is api.waitLive with every answer recorded.
func (r *recorder) waitLive(id string, timeout time.Duration) {
	r.t.Helper()
	waitFor(r.t, "deployment "+id+" live", timeout, func() bool {
		var d slipway.Deployment
		r.must("GET", "/api/v1/deployments/"+id, nil, &d)
		if d.Status == slipway.DeployFailed || d.Status == slipway.DeployCancelled {
			r.t.Fatalf("deployment %s %s: %s\nlog:\n%s", id, d.Status, d.Error, strings.Join(r.deploymentLog(id), "\n"))
		}
		return d.Status == slipway.DeployLive
	})
}

// deploymentLog reads a deployment's whole log through the API.
func (r *recorder) deploymentLog(id string) []string {
	var lines []string
	eachLogLine(r.must, id, func(text string) { lines = append(lines, text) })
	return lines
}

// eachLogLine pages through a deployment's whole log with must (a
// recorder's, so what the API answered is recorded too).
func eachLogLine(must func(method, path string, in, out any), id string, fn func(text string)) {
	var after int64
	for {
		var page struct {
			Items []struct {
				Seq  int64
				Text string
			} `json:"items"`
		}
		must("GET", "/api/v1/deployments/"+id+"/logs?limit=10000&after="+strconv.FormatInt(after, 10), nil, &page)
		if len(page.Items) == 0 {
			return
		}
		for _, l := range page.Items {
			fn(l.Text)
			after = l.Seq
		}
	}
}

// oauthConnection is a Gitea integration connected through OAuth.
type oauthConnection struct {
	integ        slipway.Integration
	clientSecret string
	callback     string     // the provider's redirect to Slipway, code and state included
	browser      *dashboard // the browser that connected it
}

// connectOAuth registers an OAuth application for user on Gitea with the
// server's callback as redirect URI, starts connecting through the API as
// the CLI does, opens the flow's Slipway link in the administrator's
// signed-in browser, consents as user on Gitea, opens the provider's
// redirect back to Slipway in that browser and confirms.
func connectOAuth(t *testing.T, c *recorder, p *proc, g *giteatest.Server, user, pass string) oauthConnection {
	t.Helper()
	clientID, clientSecret := g.CreateOAuthApp(t, user, pass, giteatest.UniqueName("slipway"), p.url+service.OAuthCallbackPath)
	var start service.OAuthStartResult
	c.must("POST", "/api/v1/integrations/oauth", map[string]any{"provider": "gitea", "base_url": g.URL(), "label": "gitea oauth",
		"client_id": clientID, "client_secret": clientSecret}, &start)
	if start.Integration.Status != slipway.IntegrationPending || !strings.HasPrefix(start.OpenURL, p.url+service.FlowBeginPath+"?") {
		t.Fatalf("OAuth start: status %s, link %q", start.Integration.Status, start.OpenURL)
	}
	browser := adminDashboard(t, p)
	authorize := browser.beginFlow(start.OpenURL)
	back := g.Consent(t, user, pass, authorize)
	if got := back.Scheme + "://" + back.Host + back.Path; got != p.url+service.OAuthCallbackPath {
		t.Fatalf("the provider redirected to %s; want Slipway's callback", got)
	}
	if back.Query().Get("code") == "" || back.Query().Get("state") == "" {
		t.Fatalf("the provider's redirect has no code or state: %s", back.RawQuery)
	}
	confirmation := browser.get(back.String())
	c.keep("GET "+service.OAuthCallbackPath, []byte(confirmation.body))
	if confirmation.status != http.StatusOK || !strings.Contains(confirmation.body, user) {
		t.Fatalf("callback: HTTP %d %.500s; want 200 with a confirmation naming %s", confirmation.status, confirmation.body, user)
	}
	done := browser.confirm(confirmation)
	c.keep("POST "+service.FlowConfirmPath, []byte(done.body))
	if done.status != http.StatusSeeOther {
		t.Fatalf("confirm: HTTP %d %.500s", done.status, done.body)
	}
	var integ slipway.Integration
	c.must("GET", "/api/v1/integrations/"+start.Integration.ID, nil, &integ)
	return oauthConnection{integ: integ, clientSecret: clientSecret, callback: back.String(), browser: browser}
}

// secrets returns the connection's client secret and the access and
// refresh tokens Slipway holds for it, opened from the store the way only
// the server can.
func (o oauthConnection) secrets(t *testing.T, dataDir string) []secretValue {
	t.Helper()
	keys, st := openStore(t, dataDir)
	defer st.Close()
	sealed, err := st.GetIntegrationSecret(ctx2(), o.integ.OrgID, o.integ.ID)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := keys.Open(sealed, []byte("integration:"+o.integ.ID))
	if err != nil {
		t.Fatal(err)
	}
	var sec forge.Secret
	if err := json.Unmarshal(raw, &sec); err != nil {
		t.Fatal(err)
	}
	if sec.Token == "" || sec.RefreshToken == "" || sec.ClientSecret != o.clientSecret {
		t.Fatalf("the OAuth integration's sealed secret lacks the access token, the refresh token or the client secret")
	}
	return []secretValue{{"the OAuth client secret", o.clientSecret}, {"the OAuth access token", sec.Token}, {"the OAuth refresh token", sec.RefreshToken}}
}

// hookSecrets returns the secrets of the integration's repository hooks.
func hookSecrets(t *testing.T, dataDir, integrationID, label string) []secretValue {
	t.Helper()
	keys, st := openStore(t, dataDir)
	defer st.Close()
	integ, err := st.GetIntegrationAnyOrg(ctx2(), integrationID)
	if err != nil {
		t.Fatal(err)
	}
	hooks, err := st.ListRepoHooks(ctx2(), integ.OrgID, integrationID)
	if err != nil || len(hooks) == 0 {
		t.Fatalf("%s: repository hooks: %v (%d)", label, err, len(hooks))
	}
	var out []secretValue
	for _, h := range hooks {
		raw, err := keys.Open(h.SecretCiphertext, []byte("hook:"+integrationID+":"+h.RepoID))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, secretValue{"the " + label + " repository hook's secret", string(raw)})
	}
	return out
}

func openStore(t *testing.T, dataDir string) (*secrets.Keyring, *store.Store) {
	t.Helper()
	keys, err := secrets.LoadOrCreate(filepath.Join(dataDir, "master.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx2(), databaseURL(t, dataDir), dataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return keys, st
}

func redactQuery(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	pu.RawQuery = ""
	return pu.String()
}

// fileHits are the files that hold each secret, by secret name.
type fileHits struct {
	hits    map[string][]string
	scanned int
}

func (f fileHits) String() string { return fmt.Sprint(f.hits) }

// filesContaining reads every regular file under dirs whole and reports
// which hold which secret.
func filesContaining(t *testing.T, secrets []secretValue, dirs ...string) fileHits {
	t.Helper()
	out := fileHits{}
	out.hits = map[string][]string{}
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !e.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			out.scanned++
			for _, s := range secrets {
				if bytes.Contains(b, []byte(s.value)) {
					out.hits[s.name] = append(out.hits[s.name], path)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("scan %s: %v", dir, err)
		}
	}
	return out
}

// logHits are the log lines that hold each secret, redacted.
type logHits struct {
	hits  map[string][]string
	lines int
}

func logContaining(t *testing.T, path string, secrets []secretValue) logHits {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	out := logHits{hits: map[string][]string{}, lines: len(lines)}
	if len(b) == 0 {
		t.Fatalf("the log %s is empty", path)
	}
	for _, s := range secrets {
		for i, l := range lines {
			if strings.Contains(l, s.value) {
				out.hits[s.name] = append(out.hits[s.name], fmt.Sprintf("line %d: %s", i+1, redact(l, s.value)))
			}
		}
	}
	return out
}

// linesContaining returns the lines that hold s, redacted.
func linesContaining(lines []string, s secretValue) []string {
	var hits []string
	for _, l := range lines {
		if strings.Contains(l, s.value) {
			hits = append(hits, redact(l, s.value))
		}
	}
	return hits
}

func redact(text, secret string) string {
	text = strings.ReplaceAll(text, secret, "‹secret›")
	if len(text) > 300 {
		text = text[:300] + "…"
	}
	return text
}

// procSampler reads every process's command line, and the environment of
// processes not running as the test's user (the builds and apps, which run
// as per-Service users), at an interval until stopped. It keeps each
// distinct value once.
type procSampler struct {
	every time.Duration
	done  chan struct{}
	out   chan procSamples
	once  sync.Once
	res   procSamples
}

type procSamples struct {
	samples  int
	root     bool
	cmdlines map[string]string // command line → pid first seen with it
	environs map[string]string // environment → pid first seen with it
}

func startProcSampler(every time.Duration) *procSampler {
	s := &procSampler{every: every, done: make(chan struct{}), out: make(chan procSamples, 1)}
	go s.run()
	return s
}

func (s *procSampler) run() {
	res := procSamples{root: os.Geteuid() == 0, cmdlines: map[string]string{}, environs: map[string]string{}}
	me := uint32(os.Geteuid())
	tick := time.NewTicker(s.every)
	defer tick.Stop()
	for {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			if _, err := strconv.Atoi(e.Name()); err != nil {
				continue
			}
			dir := filepath.Join("/proc", e.Name())
			if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil && len(b) > 0 {
				if _, ok := res.cmdlines[string(b)]; !ok {
					res.cmdlines[string(b)] = e.Name()
				}
			}
			if fi, err := os.Stat(dir); err == nil {
				if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != me {
					if b, err := os.ReadFile(filepath.Join(dir, "environ")); err == nil && len(b) > 0 {
						if _, ok := res.environs[string(b)]; !ok {
							res.environs[string(b)] = e.Name()
						}
					}
				}
			}
		}
		res.samples++
		select {
		case <-s.done:
			s.out <- res
			return
		case <-tick.C:
		}
	}
}

// stop ends sampling and returns what was seen; later calls return the
// same.
func (s *procSampler) stop() procSamples {
	s.once.Do(func() {
		close(s.done)
		s.res = <-s.out
	})
	return s.res
}

func (r procSamples) sawCmdline(part string) bool {
	for c := range r.cmdlines {
		if strings.Contains(c, part) {
			return true
		}
	}
	return false
}

// countCmdlines counts the command lines that hold any of parts.
func (r procSamples) countCmdlines(parts ...string) int {
	n := 0
	for c := range r.cmdlines {
		if slices.ContainsFunc(parts, func(p string) bool { return strings.Contains(c, p) }) {
			n++
		}
	}
	return n
}

// find describes the processes that showed s, redacted.
func (r procSamples) find(s secretValue) []string {
	var hits []string
	for c, pid := range r.cmdlines {
		if strings.Contains(c, s.value) {
			hits = append(hits, fmt.Sprintf("process %s command line %q", pid, redact(strings.ReplaceAll(c, "\x00", " "), s.value)))
		}
	}
	for env, pid := range r.environs {
		if strings.Contains(env, s.value) {
			var names []string
			for _, kv := range strings.Split(env, "\x00") {
				if k, v, ok := strings.Cut(kv, "="); ok && strings.Contains(v, s.value) {
					names = append(names, k)
				}
			}
			hits = append(hits, fmt.Sprintf("process %s environment (%s)", pid, strings.Join(names, ", ")))
		}
	}
	return hits
}

func randomHexString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
