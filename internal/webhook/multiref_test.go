package webhook_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge/bitbucket"
	"slipway.dev/slipway/internal/store"
)

// TestOneDeliveryManyRefs: Bitbucket sends one delivery for a push of a
// branch and a tag together. Both refs must deploy the Services that follow
// them, and processing the delivery again must change nothing.
func TestOneDeliveryManyRefs(t *testing.T) {
	const repoID = "{6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d}"
	f := newProviderFixture(t, "", slipway.ProviderBitbucket, bitbucket.New(nil), repoID, "../forge/bitbucket/testdata/hooks/push_branch_and_tag.json")
	ctx := context.Background()
	integs, err := f.st.ListIntegrations(ctx, f.orgID)
	if err != nil || len(integs) != 1 {
		t.Fatal(err)
	}
	app := slipway.Application{OrgID: f.orgID, Name: "shop"}
	if err := f.st.CreateApplication(ctx, &app); err != nil {
		t.Fatal(err)
	}
	env := slipway.Environment{OrgID: f.orgID, ApplicationID: app.ID, Name: "production"}
	if err := f.st.CreateEnvironment(ctx, &env); err != nil {
		t.Fatal(err)
	}
	mk := func(name string, src slipway.ServiceSource) slipway.Service {
		src.IntegrationID, src.RepoID, src.AutoDeploy = f.integID, repoID, true
		svc := slipway.Service{OrgID: f.orgID, ApplicationID: app.ID, EnvironmentID: env.ID, Name: name, Type: slipway.ServiceApp, Source: src}
		if err := f.st.CreateService(ctx, &svc); err != nil {
			t.Fatal(err)
		}
		return svc
	}
	web := mk("web", slipway.ServiceSource{Branch: "main"})
	rel := mk("release", slipway.ServiceSource{TagPattern: "v*"})

	req := httptest.NewRequest("POST", f.url, strings.NewReader(string(f.body)))
	req.Header.Set("X-Event-Key", "repo:push")
	req.Header.Set("X-Request-UUID", "8c1e9f7a-0b2c-4d3e-9f40-5a6b7c8d9e99")
	req.Header.Set("X-Hub-Signature", bitbucket.Sign(f.body, f.secret))
	rec := httptest.NewRecorder()
	f.receiver.ServeHTTP(rec, req)
	if rec.Code != 202 {
		t.Fatalf("delivery: %d %s", rec.Code, rec.Body)
	}
	ds, _, err := f.st.ListDeliveries(ctx, f.orgID, f.integID, store.Page{})
	if err != nil || len(ds) != 1 {
		t.Fatalf("deliveries: %v %d", err, len(ds))
	}
	for range 2 { // processing twice (a job retried, a replay) has one effect
		if err := f.svc.ProcessDelivery(ctx, f.orgID, ds[0].ID); err != nil {
			t.Fatal(err)
		}
	}
	for _, svc := range []slipway.Service{web, rel} {
		deps, _, err := f.st.ListDeployments(ctx, f.orgID, svc.ID, store.Page{})
		if err != nil || len(deps) != 1 {
			t.Fatalf("%s: %d deployments (%v), want 1", svc.Name, len(deps), err)
		}
		want := slipway.TriggerPush
		if svc.Name == "release" {
			want = slipway.TriggerTag
		}
		if deps[0].Trigger != want || deps[0].CommitSHA != "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432" {
			t.Errorf("%s deployment: %+v", svc.Name, deps[0])
		}
	}
	d, err := f.st.GetDelivery(ctx, f.orgID, ds[0].ID)
	if err != nil || d.Verdict != "processed" || len(d.Caused) != 2 {
		t.Errorf("delivery after processing: verdict %q caused %v (%v)", d.Verdict, d.Caused, err)
	}
}
