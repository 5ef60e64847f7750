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
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/gitea"
	"slipway.dev/slipway/internal/forge/gitgeneric"
	"slipway.dev/slipway/internal/netpolicy"
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
		Network:           netpolicy.Policy{AllowPrivate: true}, // the test Gitea is on loopback
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
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		s.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, name+".png"), png, 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// where describes the page the browser is on, for failure messages.
func where(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	url, _ := chromedp.Run(ctx, chromedp.Location())
	body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	return fmt.Sprintf("at %s:\n%.2000s", url, body)
}

// stepTimeout bounds one step, so a missing element fails fast with the
// page it was missing from.
const stepTimeout = 60 * time.Second

// deployTimeout bounds a deployment from the click (or push) to a row or
// a live badge: a first build compiles the app with a cold Go cache.
const deployTimeout = 2 * time.Minute

func do(t *testing.T, ctx context.Context, step string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		t.Fatalf("%s: %v\n%s", step, err, where(ctx))
	}
}

// get runs one query, bounded by stepTimeout unless the action carries
// a longer timeout of its own (a poll).
func get[T any](t *testing.T, ctx context.Context, step string, a chromedp.Action[T], timeout ...time.Duration) T {
	t.Helper()
	d := stepTimeout
	if len(timeout) > 0 {
		d = timeout[0]
	}
	sctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		t.Fatalf("%s: %v\n%s", step, err, where(ctx))
	}
	return v
}

// waitLocation waits until the tab's address contains part: the end of a
// navigation that replaces a page holding the same elements.
func waitLocation(part string) chromedp.Action[chromedp.Void] {
	location := chromedp.Location()
	return chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
		for {
			// Between two documents the address cannot be read; try again.
			if url, err := location(ctx, tab); err == nil && strings.Contains(url, part) {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("the address never contained %q: %w", part, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// dialogSeen is a JavaScript dialog that a page opened.
type dialogSeen struct{ url, message string }

// acceptDialogs accepts every JavaScript dialog the tab opens and returns
// a func that lists them. A dialog blocks the page's renderer until it is
// answered, and with it every query of the tab: the Gitea under test runs
// from its source tree without the built front-end bundle, so each of its
// pages alerts "Failed to load asset file". Its sign-in and consent forms
// are plain HTML and work without that script. The walk clicks nothing on
// the dashboard that asks for a confirmation, so a dialog there is a
// defect; the test checks that at the end.
func acceptDialogs(t *testing.T, ctx context.Context) func() []dialogSeen {
	var mu sync.Mutex
	var seen []dialogSeen
	events := chromedp.Events(ctx, page.JavascriptDialogOpening)
	done := make(chan struct{})
	t.Cleanup(func() { <-done }) // ctx ends before the cleanups run, and with it the loop
	go func() {
		defer close(done)
		for ev, err := range events {
			if err != nil {
				return
			}
			mu.Lock()
			seen = append(seen, dialogSeen{ev.URL, ev.Message})
			mu.Unlock()
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := chromedp.Call(actx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
			cancel()
			if err != nil && ctx.Err() == nil {
				t.Logf("accept the dialog %q: %v", ev.Message, err)
			}
		}
	}()
	return func() []dialogSeen {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
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

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx); err != nil { // start the browser on a context without a deadline
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(bctx, 5*time.Minute)
	defer cancel()
	dialogs := acceptDialogs(t, ctx)

	shots := shooter{t: t, on: *screenshots || os.Getenv("SLIPWAY_SCREENSHOTS") == "1", dir: filepath.Join("..", "..", "docs", "screenshots")}
	base := srv.URL()
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }

	// Sign in as the first-start administrator.
	do(t, ctx, "sign in",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(css("#email")),
		chromedp.SendKeys(css("#email"), srv.Bootstrap.Email),
		chromedp.SendKeys(css("#password"), strings.TrimSpace(string(adminPassword))),
		chromedp.Submit(css("#login")),
		chromedp.WaitVisible(css("#new-app")),
	)
	shots.shot(ctx, "01-applications-empty")
	orgBase := strings.TrimSuffix(get(t, ctx, "location", chromedp.Location()), "/apps")

	// Connect Gitea through its OAuth consent screen: the browser itself
	// signs in to Gitea and grants access.
	do(t, ctx, "integrations page",
		chromedp.Navigate(orgBase+"/integrations"),
		chromedp.WaitVisible(css("#provider-gitea")),
	)
	shots.shot(ctx, "02-integrations")
	do(t, ctx, "start OAuth",
		chromedp.Click(css("#provider-gitea summary")),
		chromedp.WaitVisible(css("#gitea-cid")),
		chromedp.SendKeys(css("#gitea-olabel"), "local gitea"),
		chromedp.SendKeys(css("#gitea-obase"), g.URL()),
		chromedp.SendKeys(css("#gitea-cid"), clientID),
		chromedp.SendKeys(css("#gitea-csecret"), clientSecret),
		chromedp.Submit(css("#gitea-cid")),
	)
	do(t, ctx, "Gitea sign-in page",
		chromedp.WaitVisible(css("#user_name")),
		chromedp.SendKeys(css("#user_name"), user),
		chromedp.SendKeys(css("#password"), pass),
		chromedp.Submit(css("#password")),
		chromedp.WaitVisible(css("#authorize-app")),
	)
	do(t, ctx, "grant",
		chromedp.Click(css("#authorize-app")),
		chromedp.WaitVisible(css("#confirm-connection")),
	)
	// Back on Slipway: a confirmation naming the Gitea account and the
	// organisation, before anything is saved.
	if account := get(t, ctx, "confirmed account", chromedp.Text(css("#confirm-account"))); account != user {
		t.Fatalf("the confirmation names account %q, want %q\n%s", account, user, where(ctx))
	}
	shots.shot(ctx, "03-confirm-connection")
	do(t, ctx, "confirm",
		chromedp.Click(css("#confirm")),
		chromedp.WaitVisible(css("#integration-status")),
	)
	if status := get(t, ctx, "status", chromedp.AttributeValue(css("#integration-status"), "data-status")); status.Value != string(slipway.IntegrationConnected) {
		t.Fatalf("after consent the integration is %q, want connected\n%s", status.Value, where(ctx))
	}
	if seen := get(t, ctx, "repositories", chromedp.Text(css("#repos"))); !strings.Contains(seen, repo) {
		t.Errorf("the connected integration's repositories do not list %s: %q", repo, seen)
	}
	shots.shot(ctx, "04-integration-connected")

	// Application, then a Service from the picker.
	do(t, ctx, "create application and open the picker",
		chromedp.Navigate(orgBase+"/apps"),
		chromedp.WaitVisible(css("#app-name")),
		chromedp.SendKeys(css("#app-name"), "shop"),
		chromedp.Submit(css("#app-name")),
		chromedp.WaitVisible(css("#env-production")),
		chromedp.Click(css("#env-production a.button.primary")),
		chromedp.WaitVisible(css("#integration-picker")),
		chromedp.Click(css("#integration-picker a")),
		chromedp.WaitVisible(css("#repo-q")),
		chromedp.SendKeys(css("#repo-q"), "hello"),
		chromedp.Submit(css("#repo-q")),
		// The unfiltered list already shows the repository: wait for the
		// search's own page, or the next click lands on the page that is
		// being replaced.
		waitLocation("q=hello"),
		chromedp.WaitVisible(css(`#repo-picker a[data-repo="`+repo+`"]`)),
	)
	shots.shot(ctx, "05-new-service-picker")
	do(t, ctx, "pick the repository",
		chromedp.Click(css(`#repo-picker a[data-repo="`+repo+`"]`)),
		chromedp.WaitVisible(css("#svc-ref")),
		chromedp.SetValue(css("#svc-name"), "web"),
	)
	shots.shot(ctx, "06-new-service-settings")

	// Save and deploy: the log streams into the page until live.
	do(t, ctx, "save and deploy",
		chromedp.Click(css("#save-deploy")),
		chromedp.WaitVisible(css("#log")),
	)
	ended := get(t, ctx, "watch the log to the end", chromedp.Poll[string](`document.getElementById("log").dataset.ended || ""`,
		chromedp.WithPollingTimeout(deployTimeout), chromedp.WithPollingInterval(500*time.Millisecond)), deployTimeout+5*time.Second)
	logText := get(t, ctx, "log", chromedp.Text(css("#log")))
	livePhase := get(t, ctx, "phases", chromedp.AttributeValue(css(`#phases li[data-phase="live"]`), "class"))
	if ended != "live" || livePhase.Value != "done" || logText == "" {
		t.Fatalf("deployment ended %q (live phase %q), log:\n%s", ended, livePhase.Value, logText)
	}
	if took := get(t, ctx, "build timing", chromedp.Text(css(`#phases li[data-phase="building"] small`))); !strings.HasSuffix(took, "s") {
		t.Errorf("the building phase shows no duration once live: %q", took)
	}
	if cancelShown := get(t, ctx, "cancel button", chromedp.Evaluate[bool](
		`(function () { var f = document.getElementById("cancel-deployment"); return !!f && f.offsetParent !== null; })()`)); cancelShown {
		t.Error("a live deployment still offers Cancel")
	}
	if strings.Contains(logText, "\r") {
		t.Errorf("the log shows carriage returns: %q", logText)
	}
	shots.shot(ctx, "07-deployment-live")

	// The deployed app answers through the router (*.localhost is loopback).
	deploymentURL := get(t, ctx, "deployment page address", chromedp.Location())
	port := srv.Addr()[strings.LastIndex(srv.Addr(), ":")+1:]
	do(t, ctx, "open the app", chromedp.Navigate("http://web.production.shop.default.localhost:"+port+"/"))
	if answer := get(t, ctx, "app answer", chromedp.Text(css("body"))); !strings.HasPrefix(answer, "hello from ") {
		t.Fatalf("the deployed app answered %q", answer)
	}

	// A push shows up on the service page without a reload. The way back
	// is a fresh navigation: a page restored from the back/forward cache
	// sends no new document, and the tab's DOM would stay empty.
	do(t, ctx, "service page",
		chromedp.Navigate(deploymentURL),
		chromedp.WaitVisible(css("#log")),
		chromedp.Click(css(".crumbs a")),
		chromedp.WaitVisible(css("#deployment-rows")),
	)
	get(t, ctx, "mark the page", chromedp.Evaluate[bool](`window.notReloaded = true`))
	sha := g.PushCommit(t, user, pass, repo, "main", map[string]string{"README.md": "v2\n"}, "second version")
	get(t, ctx, "the pushed deployment appears", chromedp.Poll[bool](
		fmt.Sprintf(`document.getElementById("deployment-rows").textContent.includes(%q)`, slipway.ShortSHA(sha)),
		chromedp.WithPollingTimeout(deployTimeout), chromedp.WithPollingInterval(500*time.Millisecond)), deployTimeout+5*time.Second)
	rows := get(t, ctx, "rows", chromedp.Text(css("#deployment-rows")))
	if notReloaded := get(t, ctx, "no reload", chromedp.Evaluate[bool](`window.notReloaded === true`)); !notReloaded {
		t.Fatal("the page reloaded to show the push deployment")
	}
	if !strings.Contains(rows, "push") {
		t.Errorf("the new row does not say it was a push: %q", rows)
	}
	shots.shot(ctx, "08-service-with-push")

	for _, d := range dialogs() {
		if strings.HasPrefix(d.url, base) {
			t.Errorf("the dashboard opened a dialog at %s: %q", d.url, d.message)
		}
	}
}
