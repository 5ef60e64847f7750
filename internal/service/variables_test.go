package service_test

import (
	"context"
	"strings"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/service"
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
