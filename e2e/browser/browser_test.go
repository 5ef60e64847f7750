// Package browser drives the dashboard in a real headless Chromium against
// a real control plane and a real Gitea: sign in, connect Gitea through
// its OAuth consent screen, build an Application, Environment and Service
// from the picker, deploy, watch the log stream to live, open the app
// through the router, and see a pushed commit's deployment appear without
// reloading. Run with -args -screenshots (or SLIPWAY_SCREENSHOTS=1) to
// refresh docs/screenshots.
package browser

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/gitea"
	"slipway.dev/slipway/internal/forge/gitgeneric"
	"slipway.dev/slipway/internal/runtime"
	"slipway.dev/slipway/internal/runtime/process"
	"slipway.dev/slipway/internal/sandbox"
	"slipway.dev/slipway/internal/server"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/testenv/giteatest"
	"slipway.dev/slipway/internal/web"
)

var screenshots = flag.Bool("screenshots", false, "save screenshots of each step to docs/screenshots")

func TestMain(m *testing.M) { giteatest.Main(m) }

// appSource is a small Go HTTP app that answers with the commit it runs.
var appSource = map[string]string{
	"go.mod": "module example.com/hello\n\ngo 1.22\n",
	"main.go": `package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", os.Getenv("SLIPWAY_COMMIT_SHA"))
	})
	http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil)
}
`,
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func chromium(t *testing.T) string {
	bin := os.Getenv("SLIPWAY_CHROMIUM")
	if bin == "" {
		bin = "/usr/bin/chromium"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("chromium not available at %s: set SLIPWAY_CHROMIUM", bin)
	}
	return bin
}

// startServer runs the full control plane with the dashboard on loopback.
func startServer(t *testing.T) (srv *server.Server, dataDir string) {
	t.Helper()
	ws, err := os.MkdirTemp("", "slipway-browser-ws-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(ws) })
	if err := os.Chmod(ws, 0o711); err != nil { // per-Service users must reach their workspaces
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dataDir = filepath.Join(t.TempDir(), "data")
	srv, err = server.Start(context.Background(), server.Config{
		DataDir: dataDir, WorkspaceDir: ws, Addr: "127.0.0.1:0", BaseDomain: "localhost",
		ReconcileInterval: -1,
		Forges: map[slipway.Provider]forge.Provider{
			slipway.ProviderGitea: gitea.New(),
			slipway.ProviderGit:   gitgeneric.New(),
		},
		NewRuntime: func(sb *sandbox.Manager) (runtime.Runtime, error) {
			return process.New(logger, sb, process.Options{}), nil
		},
		Dashboard: func(svc *service.Service, mux *http.ServeMux) {
			web.New(svc, logger, web.Options{}).Register(mux)
		},
		Logger: logger,
	})
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv, dataDir
}

// shooter saves full-page screenshots when asked to.
type shooter struct {
	t   *testing.T
	on  bool
	dir string
}

func (s shooter) shot(ctx context.Context, name string) {
	s.t.Helper()
	if !s.on {
		return
	}
	var png []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		s.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, name+".png"), png, 0o644); err != nil {
		s.t.Fatal(err)
	}
}

func run(t *testing.T, ctx context.Context, step string, actions ...chromedp.Action) {
	t.Helper()
	if err := chromedp.Run(ctx, actions...); err != nil {
		var url, body string
		_ = chromedp.Run(ctx, chromedp.Location(&url), chromedp.Text("body", &body, chromedp.ByQuery))
		t.Fatalf("%s: %v\nat %s:\n%.2000s", step, err, url, body)
	}
}

func TestDashboardFromSignInToAPushedDeployment(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := chromium(t)
	g := giteatest.Shared(t)
	user := giteatest.UniqueName("dora")
	pass := g.CreateUser(t, user)
	g.CreateRepo(t, user, "hello", true)
	repo := user + "/hello"
	g.PushCommit(t, user, pass, repo, "main", appSource, "add the app")

	srv, dataDir := startServer(t)
	clientID, clientSecret := g.CreateOAuthApp(t, user, pass, "slipway", srv.URL()+service.OAuthCallbackPath)
	adminPassword, err := os.ReadFile(filepath.Join(dataDir, "admin-password"))
	if err != nil {
		t.Fatalf("the first-start password file: %v", err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:0:0],
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()

	shots := shooter{t: t, on: *screenshots || os.Getenv("SLIPWAY_SCREENSHOTS") == "1", dir: filepath.Join("..", "..", "docs", "screenshots")}
	base := srv.URL()

	// Sign in as the first-start administrator.
	run(t, ctx, "sign in",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible("#email", chromedp.ByID),
		chromedp.SendKeys("#email", srv.Bootstrap.Email, chromedp.ByID),
		chromedp.SendKeys("#password", strings.TrimSpace(string(adminPassword)), chromedp.ByID),
		chromedp.Submit("#login", chromedp.ByID),
		chromedp.WaitVisible("#new-app", chromedp.ByID),
	)
	shots.shot(ctx, "01-applications-empty")

	// Connect Gitea through its OAuth consent screen.
	orgApps := ""
	run(t, ctx, "open integrations", chromedp.Location(&orgApps))
	orgBase := strings.TrimSuffix(orgApps, "/apps")
	run(t, ctx, "integrations page",
		chromedp.Navigate(orgBase+"/integrations"),
		chromedp.WaitVisible("#provider-gitea", chromedp.ByID),
	)
	shots.shot(ctx, "02-integrations")
	run(t, ctx, "start OAuth",
		chromedp.Click("#provider-gitea summary", chromedp.ByQuery),
		chromedp.WaitVisible("#gitea-cid", chromedp.ByID),
		chromedp.SendKeys("#gitea-olabel", "local gitea", chromedp.ByID),
		chromedp.SendKeys("#gitea-obase", g.URL(), chromedp.ByID),
		chromedp.SendKeys("#gitea-cid", clientID, chromedp.ByID),
		chromedp.SendKeys("#gitea-csecret", clientSecret, chromedp.ByID),
		chromedp.Submit("#gitea-cid", chromedp.ByID),
		// Gitea's own sign-in page, then its consent page.
		chromedp.WaitVisible("#user_name", chromedp.ByID),
		chromedp.SendKeys("#user_name", user, chromedp.ByID),
		chromedp.SendKeys("#password", pass, chromedp.ByID),
		chromedp.Submit("#password", chromedp.ByID),
		chromedp.WaitVisible("#authorize-app", chromedp.ByID),
	)
	shots.shot(ctx, "03-gitea-consent")
	var status string
	run(t, ctx, "grant",
		chromedp.Click("#authorize-app", chromedp.ByID),
		chromedp.WaitVisible("#integration-status", chromedp.ByID),
		chromedp.AttributeValue("#integration-status", "data-status", &status, nil, chromedp.ByID),
	)
	if status != string(slipway.IntegrationConnected) {
		t.Fatalf("after consent the integration is %q, want connected", status)
	}
	var seen string
	run(t, ctx, "connected shows repositories", chromedp.Text("#repos", &seen, chromedp.ByID))
	if !strings.Contains(seen, repo) {
		t.Errorf("the connected integration's repositories do not list %s: %q", repo, seen)
	}
	shots.shot(ctx, "04-integration-connected")

	// Application → Service from the picker.
	run(t, ctx, "create application",
		chromedp.Navigate(orgBase+"/apps"),
		chromedp.WaitVisible("#app-name", chromedp.ByID),
		chromedp.SendKeys("#app-name", "shop", chromedp.ByID),
		chromedp.Submit("#app-name", chromedp.ByID),
		chromedp.WaitVisible("#env-production", chromedp.ByID),
		chromedp.Click("#env-production a.button.primary", chromedp.ByQuery),
		chromedp.WaitVisible("#integration-picker", chromedp.ByID),
		chromedp.Click("#integration-picker a", chromedp.ByQuery),
		chromedp.WaitVisible("#repo-q", chromedp.ByID),
		chromedp.SendKeys("#repo-q", "hello", chromedp.ByID),
		chromedp.Submit("#repo-q", chromedp.ByID),
		chromedp.WaitVisible(`#repo-picker a[data-repo="`+repo+`"]`, chromedp.ByQuery),
	)
	shots.shot(ctx, "05-new-service-picker")
	run(t, ctx, "pick repository",
		chromedp.Click(`#repo-picker a[data-repo="`+repo+`"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#svc-ref", chromedp.ByID),
		chromedp.SetValue("#svc-name", "web", chromedp.ByID),
	)
	shots.shot(ctx, "06-new-service-settings")

	// Save and deploy: the log streams until the deployment is live.
	var ended string
	run(t, ctx, "deploy",
		chromedp.Click("#save-deploy", chromedp.ByID),
		chromedp.WaitVisible("#log", chromedp.ByID),
		chromedp.Poll(`document.getElementById("log").dataset.ended || ""`, &ended, chromedp.WithPollingTimeout(5*time.Minute), chromedp.WithPollingInterval(500*time.Millisecond)),
	)
	var logText, phaseLive string
	run(t, ctx, "live", chromedp.Text("#log", &logText, chromedp.ByID),
		chromedp.AttributeValue(`#phases li[data-phase="live"]`, "class", &phaseLive, nil, chromedp.ByQuery))
	if ended != "live" || phaseLive != "done" || logText == "" {
		t.Fatalf("deployment ended %q (live phase %q), log:\n%s", ended, phaseLive, logText)
	}
	shots.shot(ctx, "07-deployment-live")

	// The deployed app answers through the router (*.localhost is loopback).
	var answer string
	appURL := fmt.Sprintf("http://web.production.shop.localhost:%s/", srv.Addr()[strings.LastIndex(srv.Addr(), ":")+1:])
	run(t, ctx, "open app", chromedp.Navigate(appURL), chromedp.Text("body", &answer, chromedp.ByQuery))
	if !strings.HasPrefix(answer, "hello from ") {
		t.Fatalf("the deployed app answered %q", answer)
	}

	// A push shows up on the service page without a reload.
	svcPage := ""
	run(t, ctx, "service page",
		chromedp.NavigateBack(),
		chromedp.WaitVisible("#log", chromedp.ByID),
		chromedp.Click(".crumbs a", chromedp.ByQuery),
		chromedp.WaitVisible("#deployment-rows", chromedp.ByID),
		chromedp.Location(&svcPage),
		chromedp.Evaluate(`window.notReloaded = true`, nil),
	)
	sha := g.PushCommit(t, user, pass, repo, "main", map[string]string{"README.md": "v2\n"}, "second version")
	var rows string
	var appeared bool
	run(t, ctx, "pushed deployment appears",
		chromedp.Poll(fmt.Sprintf(`document.getElementById("deployment-rows").textContent.includes(%q)`, slipway.ShortSHA(sha)), &appeared,
			chromedp.WithPollingTimeout(2*time.Minute), chromedp.WithPollingInterval(500*time.Millisecond)),
		chromedp.Text("#deployment-rows", &rows, chromedp.ByID),
	)
	var notReloaded bool
	run(t, ctx, "no reload", chromedp.Evaluate(`window.notReloaded === true`, &notReloaded))
	if !notReloaded || !strings.Contains(rows, "push") {
		t.Fatalf("the push deployment appeared after a reload (%v) or without its trigger: %q", notReloaded, rows)
	}
	shots.shot(ctx, "08-service-with-push")
}
