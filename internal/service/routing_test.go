package service_test

import (
	"context"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/service"
)

// TestRoutingSettings: a Service's body limit and HSTS are stored through
// UpdateService; an out-of-range limit is refused and changes nothing.
func TestRoutingSettings(t *testing.T) {
	ctx := context.Background()
	e := newTwoTenants(t)
	if e.webB.EffectiveMaxBodyMB() != slipway.DefaultMaxBodyMB || e.webB.HSTS {
		t.Fatalf("defaults: %d MiB, hsts %v", e.webB.EffectiveMaxBodyMB(), e.webB.HSTS)
	}
	mb, on := 5, true
	if _, err := e.svc.UpdateService(ctx, e.b, e.webB.ID, service.ServiceInput{MaxBodyMB: &mb, HSTS: &on}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []int{0, -1, slipway.MaxMaxBodyMB + 1} {
		bad := bad
		_, err := e.svc.UpdateService(ctx, e.b, e.webB.ID, service.ServiceInput{MaxBodyMB: &bad, Name: "renamed"})
		if slipway.ErrorCodeOf(err) != slipway.ECodeInvalid {
			t.Errorf("max_body_mb %d: %v, want invalid", bad, err)
		}
	}
	got, err := e.svc.ResolveService(ctx, e.b, e.webB.ID)
	if err != nil || got.MaxBodyMB != 5 || !got.HSTS || got.Name == "renamed" {
		t.Fatalf("after updates: %+v, %v", got, err)
	}
}
