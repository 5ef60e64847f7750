package forge

import "slipway.dev/slipway"

// FirstEvent is ParseHook for a MultiHookParser: the first of the events
// a delivery carries, or the parse error. A parser returns at least one
// event or an error (ErrIgnored when no ref is left).
func FirstEvent(evs []slipway.Event, err error) (slipway.Event, error) {
	if err != nil {
		return slipway.Event{}, err
	}
	return evs[0], nil
}
