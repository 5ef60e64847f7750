package service_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
)

// TestVariables: plain values, a secret generated once from
// {{ secret(N) }} and kept, a reference to another Service's variable
// resolved at deploy time; secret values are masked in every answer and
// listed so logs can mask them.
func TestVariables(t *testing.T) {
	ctx := context.Background()
	svc, a, _, _ := pickerEnv(t, 0)
	if _, err := svc.CreateApplication(ctx, a, service.ApplicationInput{Name: "shop"}); err != nil {
		t.Fatal(err)
	}
	image := "example/db"
	db, err := svc.CreateService(ctx, a, "shop/production", service.ServiceInput{Name: "db", Type: slipway.ServiceDocker, Image: &image})
	if err != nil {
		t.Fatal(err)
	}
	image2 := "example/web"
	web, err := svc.CreateService(ctx, a, "shop/production", service.ServiceInput{Name: "web", Type: slipway.ServiceDocker, Image: &image2})
	if err != nil {
		t.Fatal(err)
	}
	gen, err := svc.SetVariable(ctx, a, db.ID, service.VariableInput{Key: "PASSWORD", Value: "{{ secret(32) }}"})
	if err != nil || !gen.Secret || gen.Value != "********" {
		t.Fatalf("generated secret: %+v %v", gen, err)
	}
	if _, err := svc.SetVariable(ctx, a, web.ID, service.VariableInput{Key: "DATABASE_URL", Value: "postgres://app:{{ db.PASSWORD }}@db/shop"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SetVariable(ctx, a, web.ID, service.VariableInput{Key: "GREETING", Value: "hello"}); err != nil {
		t.Fatal(err)
	}
	dbEnv, err := svc.ServiceEnv(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	password := dbEnv.Values["PASSWORD"]
	if len(password) != 32 || len(dbEnv.Secrets) != 1 || dbEnv.Secrets[0] != password {
		t.Fatalf("db env: %q secrets %d", password, len(dbEnv.Secrets))
	}
	again, _ := svc.ServiceEnv(ctx, db)
	if again.Values["PASSWORD"] != password {
		t.Fatal("a generated secret must be generated once and kept")
	}
	webEnv, err := svc.ServiceEnv(ctx, web)
	if err != nil {
		t.Fatal(err)
	}
	if webEnv.Values["DATABASE_URL"] != "postgres://app:"+password+"@db/shop" || webEnv.Values["GREETING"] != "hello" {
		t.Fatalf("web env: %v", webEnv.Values)
	}
	if len(webEnv.Secrets) != 1 || webEnv.Secrets[0] != password {
		t.Fatal("a referenced secret must be masked in the referring Service's logs too")
	}
	list, err := svc.ListVariables(ctx, a, db.ID)
	if err != nil || len(list) != 1 || strings.Contains(list[0].Value, password) {
		t.Fatalf("listed variables leak the secret: %+v %v", list, err)
	}
	// Bad input is refused with the reason and saves nothing.
	for _, in := range []service.VariableInput{{Key: "PORT", Value: "1"}, {Key: "1BAD", Value: "x"}, {Key: "S", Value: "{{ secret(4) }}"}} {
		if _, err := svc.SetVariable(ctx, a, db.ID, in); slipway.ErrorCodeOf(err) != slipway.ECodeInvalid {
			t.Errorf("SetVariable(%+v) = %v, want invalid", in, err)
		}
	}
	if _, err := svc.SetVariable(ctx, a, web.ID, service.VariableInput{Key: "BROKEN", Value: "{{ nope.KEY }}"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ServiceEnv(ctx, web); slipway.ErrorCodeOf(err) != slipway.ECodeInvalid || !strings.Contains(err.Error(), "nope") {
		t.Errorf("a reference to a missing service: %v", err)
	}
}

// TestLegacyReferencesStayInTheirProject: a legacy Service (in a Project,
// with no Environment) resolves {{ svc.KEY }} among the Services of its own
// Project only. Before, its empty Environment matched every Service of the
// organisation, so a Service of one Project could read another's values.
func TestLegacyReferencesStayInTheirProject(t *testing.T) {
	ctx := context.Background()
	f := newLegacyFixture(t, "")
	org := f.actor.OrgID
	set := func(serviceID, key, value string) {
		t.Helper()
		if err := f.st.SetVariable(ctx, org, serviceID, store.Variable{Key: key, Value: []byte(value)}); err != nil {
			t.Fatal(err)
		}
	}
	get := func(id string) slipway.Service {
		t.Helper()
		s, err := f.st.GetService(ctx, org, id)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// The fixture's sealed placeholder cannot be opened; this test is about
	// plain values.
	if err := f.st.DeleteVariable(ctx, org, "svc_shopweb", "DATABASE_URL"); err != nil {
		t.Fatal(err)
	}
	set("svc_payweb", "PAYMENTS_KEY", "pay-secret")
	set("svc_shopworker", "QUEUE_KEY", "shop-secret")
	// The only "worker" of the organisation is in prj_shop: prj_ops' cron
	// must not reach it.
	set("svc_opscron", "STOLEN", "{{ worker.QUEUE_KEY }}")
	if env, err := f.svc.ServiceEnv(ctx, get("svc_opscron")); slipway.ErrorCodeOf(err) != slipway.ECodeInvalid || strings.Contains(fmt.Sprint(env.Values), "shop-secret") {
		t.Fatalf("a reference from prj_ops resolved in another Project: env %v, err %v", env.Values, err)
	}
	// Within its Project a legacy reference still resolves, to that
	// Project's "web" (there are three Services named web in the
	// organisation).
	set("svc_shopworker", "WEB_PORT", "{{ web.PORT }}")
	env, err := f.svc.ServiceEnv(ctx, get("svc_shopworker"))
	if err != nil {
		t.Fatalf("reference inside the Project: %v", err)
	}
	if env.Values["WEB_PORT"] != "8080" {
		t.Errorf("WEB_PORT = %q, want prj_shop web's 8080", env.Values["WEB_PORT"])
	}
	set("svc_shopworker", "OTHER", "{{ web.PAYMENTS_KEY }}")
	if _, err := f.svc.ServiceEnv(ctx, get("svc_shopworker")); slipway.ErrorCodeOf(err) != slipway.ECodeInvalid {
		t.Errorf("prj_shop read prj_payments' web: %v", err)
	}
}
