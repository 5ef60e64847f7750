package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/gitea"
	"slipway.dev/slipway/internal/store"
)

// TestGiteaPushToLive is the product's main path, end to end on real
// parts: connect a real Gitea with a token, pick the repository, link a
// Service to main with auto-deploy, deploy it, and let pushes deploy
// exactly the pushed commits through the webhook — once each, never for
// [skip ci], other branches or changes outside the watch paths — with no
// failed request while traffic switches; a replayed or re-sent delivery
// changes nothing; a rollback brings the old commit back and pauses
// auto-deploy; a push made while Slipway was down is deployed by the
// reconciler after the restart.
func TestGiteaPushToLive(t *testing.T) {
	g, user, pass, token := giteaUser(t, "alice")
	repoID := g.CreateRepo(t, user, "hello", true)
	repo := user + "/hello"
	g.PushCommit(t, user, pass, repo, "main", appSource, "add the app")

	dataDir := filepath.Join(t.TempDir(), "data")
	srv := startServer(t, dataDir, "", -1)
	addr := srv.Addr()
	c := api{t: t, base: srv.URL(), token: srv.Bootstrap.Token}

	// Connect Gitea with a token: Connected, and the picker lists the repo.
	var integ slipway.Integration
	c.must("POST", "/api/v1/integrations", map[string]any{"provider": "gitea", "base_url": g.URL(), "token": token, "label": "local gitea"}, &integ)
	if integ.Status != slipway.IntegrationConnected || integ.AccountName != user {
		t.Fatalf("integration after connect: %+v", integ)
	}
	var repos struct{ Items []forge.Repo }
	c.must("GET", "/api/v1/integrations/"+integ.ID+"/repos?search=hello", nil, &repos)
	if len(repos.Items) != 1 || repos.Items[0].ID != fmt.Sprint(repoID) {
		t.Fatalf("picker: %+v", repos.Items)
	}

	// A branch that does not exist and a repository the token cannot see
	// are refused when the Service is saved.
	c.must("POST", "/api/v1/applications", map[string]any{"name": "shop"}, nil)
	code, body := c.do("POST", "/api/v1/environments/shop%2Fproduction/services", map[string]any{"name": "web",
		"source": map[string]any{"integration_id": integ.ID, "repo_id": repos.Items[0].ID, "branch": "nope"}}, nil)
	if code != 422 || !strings.Contains(string(body), "ref_not_found") {
		t.Fatalf("missing branch: %d %s", code, body)
	}
	code, body = c.do("POST", "/api/v1/environments/shop%2Fproduction/services", map[string]any{"name": "web",
		"source": map[string]any{"integration_id": integ.ID, "repo_id": "999999", "branch": "main"}}, nil)
	if code != 422 || !strings.Contains(string(body), "repository_not_visible") {
		t.Fatalf("invisible repo: %d %s", code, body)
	}

	var svc slipway.Service
	c.must("POST", "/api/v1/environments/shop%2Fproduction/services", map[string]any{"name": "web",
		"source": map[string]any{"integration_id": integ.ID, "repo_id": repos.Items[0].ID, "branch": "main", "auto_deploy": true}}, &svc)
	var watched slipway.Service
	c.must("POST", "/api/v1/environments/shop%2Fproduction/services", map[string]any{"name": "docs",
		"source": map[string]any{"integration_id": integ.ID, "repo_id": repos.Items[0].ID, "branch": "main", "auto_deploy": true, "watch_paths": []string{"docs/**"}}}, &watched)
	if hooks := g.ListHooks(t, user, "hello"); len(hooks) != 1 {
		t.Fatalf("want exactly one repository webhook for two services, got %d", len(hooks))
	}

	// First deploy by hand.
	var first slipway.Deployment
	c.must("POST", "/api/v1/services/"+svc.ID+"/deploy", map[string]any{}, &first)
	first = c.waitLive(first.ID, 5*time.Minute)
	host := c.host(svc.ID, slipway.HostGenerated)
	if code, body, err := get(srv.URL(), host); err != nil || code != 200 || body != "hello from "+first.CommitSHA+"\n" {
		t.Fatalf("router answer: %d %q %v", code, body, err)
	}

	// The provider shows the deployment's commit status.
	var statuses []struct {
		Status    string `json:"status"`
		Context   string `json:"context"`
		TargetURL string `json:"target_url"`
	}
	waitFor(t, "a success commit status on Gitea", 30*time.Second, func() bool {
		if err := g.API(ctx2(), user, pass, "GET", "/repos/"+repo+"/statuses/"+first.CommitSHA, nil, &statuses); err != nil {
			t.Fatal(err)
		}
		return len(statuses) > 0 && statuses[0].Status == "success"
	})
	if statuses[0].Context != "slipway/production/web" || !strings.HasSuffix(statuses[0].TargetURL, "/deployments/"+first.ID) {
		t.Errorf("commit status: %+v", statuses[0])
	}

	// A deploy hook (for CI systems) deploys the current head; a rotated
	// hook's old URL stops working.
	var hook struct{ URL string }
	c.must("POST", "/api/v1/services/"+watched.ID+"/deploy-hook", nil, &hook)
	var old struct{ URL string }
	old = hook
	c.must("POST", "/api/v1/services/"+watched.ID+"/deploy-hook", nil, &hook)
	if resp, err := http.Post(old.URL, "", nil); err != nil || resp.StatusCode != 404 {
		t.Fatalf("rotated deploy hook: %v %v", resp.StatusCode, err)
	}
	resp, err := http.Post(hook.URL, "", nil)
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("deploy hook: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	if ds := c.deployments(watched.ID); len(ds) != 1 || ds[0].Trigger != slipway.TriggerDeployHook || ds[0].CommitSHA != first.CommitSHA {
		t.Fatalf("deploy hook deployments: %+v", ds)
	}

	// A push deploys exactly the pushed commit, with no failed request
	// while traffic moves to the new release.
	load := startLoad(srv.URL(), host, 4)
	sha2 := g.PushCommit(t, user, pass, repo, "main", map[string]string{"README.md": "v2\n"}, "second version")
	var pushed slipway.Deployment
	waitFor(t, "a push deployment of "+sha2, time.Minute, func() bool {
		for _, d := range c.deployments(svc.ID) {
			if d.CommitSHA == sha2 {
				pushed = d
				return true
			}
		}
		return false
	})
	if pushed.Trigger != slipway.TriggerPush || pushed.CommitMessage != "second version\n" && pushed.CommitMessage != "second version" {
		t.Errorf("push deployment: trigger %s message %q", pushed.Trigger, pushed.CommitMessage)
	}
	c.waitLive(pushed.ID, 3*time.Minute)
	waitFor(t, "the router to serve "+sha2, 30*time.Second, func() bool {
		_, body, _ := get(srv.URL(), host)
		return body == "hello from "+sha2+"\n"
	})
	time.Sleep(500 * time.Millisecond)
	load.Stop()
	if load.failed.Load() != 0 {
		t.Errorf("%d of %d requests failed during the switch (last: %s)", load.failed.Load(), load.ok.Load()+load.failed.Load(), load.lastErr)
	}
	t.Logf("switch under load: %d requests, %d failed", load.ok.Load()+load.failed.Load(), load.failed.Load())
	if n := countSHA(c.deployments(watched.ID), sha2); n != 0 {
		t.Errorf("docs service (watch docs/**) deployed a README-only push %d times", n)
	}

	// [skip ci], another branch: recorded, not deployed.
	sha3 := g.PushCommit(t, user, pass, repo, "main", map[string]string{"README.md": "v3\n"}, "tweak [skip ci]")
	sha4 := g.PushCommit(t, user, pass, repo, "feature", map[string]string{"x.txt": "x\n"}, "on a branch")
	var deliveries struct {
		Items []struct {
			ID, Event, Verdict, Detail string
			Caused                     []string
			ProviderDeliveryID         string `json:"provider_delivery_id"`
		}
	}
	waitFor(t, "the skip-ci and branch deliveries to be processed", time.Minute, func() bool {
		c.must("GET", "/api/v1/integrations/"+integ.ID+"/deliveries", nil, &deliveries)
		done := 0
		for _, d := range deliveries.Items {
			if d.Verdict != "received" {
				done++
			}
		}
		return done == len(deliveries.Items) && len(deliveries.Items) >= 3
	})
	for _, sha := range []string{sha3, sha4} {
		if n := countSHA(c.deployments(svc.ID), sha); n != 0 {
			t.Errorf("commit %s was deployed %d times; want 0", sha, n)
		}
	}
	verdicts := map[string]int{}
	for _, d := range deliveries.Items {
		verdicts[d.Verdict]++
	}
	if verdicts["skipped"] < 1 || verdicts["ignored"] < 1 {
		t.Errorf("delivery verdicts %v: want a skipped ([skip ci]) and an ignored (other branch)", verdicts)
	}

	// The same delivery twice: a replay and a re-sent signed copy both
	// cause nothing new.
	var pushDelivery string
	var pushProviderID string
	for _, d := range deliveries.Items {
		if len(d.Caused) > 0 {
			pushDelivery, pushProviderID = d.ID, d.ProviderDeliveryID
		}
	}
	if pushDelivery == "" {
		t.Fatal("no delivery recorded the deployment it caused")
	}
	before := len(c.deployments(svc.ID))
	c.must("POST", "/api/v1/integrations/"+integ.ID+"/deliveries/"+pushDelivery+"/replay", nil, nil)
	resendDelivery(t, srv, dataDir, integ.ID, pushDelivery, pushProviderID)
	if after := len(c.deployments(svc.ID)); after != before {
		t.Errorf("replay/redelivery created %d deployments", after-before)
	}

	// A tag matching a Service's tag pattern deploys that tag; deleting a
	// branch is recorded.
	var release slipway.Service
	c.must("POST", "/api/v1/environments/shop%2Fproduction/services", map[string]any{"name": "release",
		"source": map[string]any{"integration_id": integ.ID, "repo_id": repos.Items[0].ID, "tag_pattern": "v*", "auto_deploy": true}}, &release)
	// (main's head says [skip ci], which a tag of it would honour: tag the feature branch)
	tagSHA := g.PushTag(t, user, pass, repo, "feature", "v1.0.0")
	var tagged slipway.Deployment
	waitFor(t, "the v1.0.0 tag to be deployed", time.Minute, func() bool {
		ds := c.deployments(release.ID)
		if len(ds) > 0 {
			tagged = ds[0]
		}
		return len(ds) > 0
	})
	if tagged.Trigger != slipway.TriggerTag || tagged.Ref != "refs/tags/v1.0.0" || tagged.CommitSHA != tagSHA {
		t.Errorf("tag deployment: trigger %s ref %s sha %s", tagged.Trigger, tagged.Ref, tagged.CommitSHA)
	}
	c.must("POST", "/api/v1/deployments/"+tagged.ID+"/cancel", nil, nil) // the build itself is not what this checks

	// An annotated tag pushed with git: Gitea's payload names the tag
	// object as after; the deployment pins the commit, the commit status
	// lands on that commit, and deploying the same tag by hand adds
	// nothing.
	g.PushCommit(t, user, pass, repo, "feature", map[string]string{"CHANGELOG": "1.1.0\n"}, "release notes")
	annCommit, annObject := g.PushAnnotatedTag(t, user, pass, repo, "feature", "v1.1.0", "release 1.1.0")
	var annotated slipway.Deployment
	waitFor(t, "the annotated v1.1.0 tag to be deployed", time.Minute, func() bool {
		for _, d := range c.deployments(release.ID) {
			if d.Ref == "refs/tags/v1.1.0" {
				annotated = d
				return true
			}
		}
		return false
	})
	if annotated.CommitSHA != annCommit || annotated.Trigger != slipway.TriggerTag {
		t.Errorf("annotated tag deployment pins %s (trigger %s); want the commit %s, not the tag object %s", annotated.CommitSHA, annotated.Trigger, annCommit, annObject)
	}
	waitFor(t, "a commit status on the tagged commit", time.Minute, func() bool {
		if err := g.API(ctx2(), user, pass, "GET", "/repos/"+repo+"/statuses/"+annCommit, nil, &statuses); err != nil {
			t.Fatal(err)
		}
		return len(statuses) > 0
	})
	var again slipway.Deployment
	c.must("POST", "/api/v1/services/"+release.ID+"/deploy", map[string]any{"ref": "v1.1.0"}, &again)
	if again.ID != annotated.ID || again.CommitSHA != annCommit {
		t.Errorf("a manual deploy of v1.1.0 made %s at %s; want the existing %s", again.ID, again.CommitSHA, annotated.ID)
	}
	c.must("POST", "/api/v1/deployments/"+annotated.ID+"/cancel", nil, nil)
	g.DeleteBranch(t, user, "hello", "feature")
	waitFor(t, "the branch deletion to be recorded", time.Minute, func() bool {
		c.must("GET", "/api/v1/integrations/"+integ.ID+"/deliveries", nil, &deliveries)
		for _, d := range deliveries.Items {
			if d.Event == string(slipway.EventBranchDeleted) && d.Verdict == "processed" && strings.Contains(d.Detail, "feature") {
				return true
			}
		}
		return false
	})

	// Rollback: the first commit answers again and auto-deploy pauses.
	var rb slipway.Deployment
	c.must("POST", "/api/v1/services/"+svc.ID+"/rollback", map[string]any{"to": first.ID}, &rb)
	c.waitLive(rb.ID, 3*time.Minute)
	waitFor(t, "the rolled-back commit to answer", 30*time.Second, func() bool {
		_, body, _ := get(srv.URL(), host)
		return body == "hello from "+first.CommitSHA+"\n"
	})
	var after slipway.Service
	c.must("GET", "/api/v1/services/"+svc.ID, nil, &after)
	if !after.AutoDeployPaused {
		t.Error("rollback did not pause auto-deploy")
	}
	c.must("POST", "/api/v1/services/"+svc.ID+"/resume-auto-deploy", nil, nil)

	// Downtime: stop Slipway, push, start again: the reconciler deploys the
	// missed commit, exactly once.
	ctx, cancel := contextWithTimeout(30 * time.Second)
	if err := srv.Shutdown(ctx); err != nil {
		t.Logf("shutdown: %v", err)
	}
	cancel()
	sha5 := g.PushCommit(t, user, pass, repo, "main", map[string]string{"README.md": "while down\n"}, "pushed while Slipway was down")
	// Let Gitea attempt its webhook delivery against the closed port (it
	// does not retry), so the push is really lost before Slipway returns.
	time.Sleep(5 * time.Second)
	srv2 := startServer(t, dataDir, addr, time.Hour)
	defer func() {
		ctx, cancel := contextWithTimeout(30 * time.Second)
		defer cancel()
		_ = srv2.Shutdown(ctx)
	}()
	c.base = srv2.URL()
	var missed slipway.Deployment
	waitFor(t, "the reconciler to queue "+sha5, 2*time.Minute, func() bool {
		for _, d := range c.deployments(svc.ID) {
			if d.CommitSHA == sha5 {
				missed = d
				return true
			}
		}
		return false
	})
	if missed.Trigger != slipway.TriggerReconcile {
		t.Errorf("missed push deployed by %s, want reconcile", missed.Trigger)
	}
	c.waitLive(missed.ID, 3*time.Minute)
	if _, err := srv2.Reconcile(ctx2()); err != nil {
		t.Fatal(err)
	}
	if n := countSHA(c.deployments(svc.ID), sha5); n != 1 {
		t.Errorf("commit %s has %d deployments after a second reconcile; want exactly 1", sha5, n)
	}

	// Stop: the host stops answering and the release is stopped; restart
	// brings the same release back without a build.
	c.must("POST", "/api/v1/services/"+svc.ID+"/stop", nil, nil)
	waitFor(t, "the stopped service to stop answering", 30*time.Second, func() bool {
		code, _, _ := get(srv2.URL(), host)
		return code == http.StatusNotFound
	})
	// The route goes first (so no request reaches a stopping release),
	// then the release is stopped and marked: wait for the mark.
	var stopped slipway.Deployment
	waitFor(t, "the release to be marked stopped", 30*time.Second, func() bool {
		c.must("GET", "/api/v1/deployments/"+missed.ID, nil, &stopped)
		return stopped.Status == slipway.DeployStopped
	})
	c.must("POST", "/api/v1/services/"+svc.ID+"/restart", nil, nil)
	waitFor(t, "the restarted release to answer", time.Minute, func() bool {
		_, body, _ := get(srv2.URL(), host)
		return body == "hello from "+sha5+"\n"
	})
	before = len(c.deployments(svc.ID))
	if before != len(c.deployments(svc.ID)) || c.waitLive(missed.ID, 10*time.Second).Status != slipway.DeployLive {
		t.Error("restart should bring the same deployment back live, without a new deployment")
	}
}

func countSHA(ds []slipway.Deployment, sha string) int {
	n := 0
	for _, d := range ds {
		if d.CommitSHA == sha && d.Trigger != slipway.TriggerRollback && d.Trigger != slipway.TriggerRedeploy && d.Trigger != slipway.TriggerManual {
			n++
		}
	}
	return n
}

// resendDelivery posts a stored delivery again exactly as Gitea would on a
// redelivery: same body, same delivery id, a valid signature made with the
// hook's secret (read from the data directory the way only the server can).
func resendDelivery(t *testing.T, srv interface{ URL() string }, dataDir, integrationID, deliveryID, providerID string) {
	t.Helper()
	hookID, secret := hookSecret(t, dataDir, integrationID)
	st, err := store.Open(ctx2(), databaseURL(t, dataDir), dataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	integ, err := st.GetIntegrationAnyOrg(ctx2(), integrationID)
	if err != nil {
		t.Fatal(err)
	}
	d, err := st.GetDelivery(ctx2(), integ.OrgID, deliveryID)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", srv.URL()+"/hooks/gitea/"+integrationID+"?hook="+hookID, strings.NewReader(string(d.Body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Gitea-Event", "push")
	req.Header.Set("X-Gitea-Delivery", providerID)
	gitea.Sign(req.Header, d.Body, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res struct {
		Duplicate bool `json:"duplicate"`
	}
	_ = jsonDecode(resp.Body, &res)
	if resp.StatusCode != http.StatusAccepted || !res.Duplicate {
		t.Errorf("re-sent delivery: status %d duplicate=%v; want 202 and a duplicate", resp.StatusCode, res.Duplicate)
	}
}
