package forge_test

import (
	"errors"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
)

func TestFirstEvent(t *testing.T) {
	evs := []slipway.Event{{DeliveryID: "d1", Kind: slipway.EventPush}, {DeliveryID: "d1", Kind: slipway.EventTag}}
	if ev, err := forge.FirstEvent(evs, nil); err != nil || ev.Kind != slipway.EventPush {
		t.Errorf("FirstEvent = %+v, %v; want the push", ev, err)
	}
	if ev, err := forge.FirstEvent(nil, forge.ErrIgnored); !errors.Is(err, forge.ErrIgnored) || ev.Kind != "" {
		t.Errorf("FirstEvent on an error = %+v, %v; want the error and no event", ev, err)
	}
}
