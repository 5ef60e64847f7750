package swarm

import (
	"testing"
	"time"
)

func TestOptionsDefaults(t *testing.T) {
	got := Options{}.withDefaults()
	if got.Logger == nil || got.MemoryBytes != 512<<20 || got.PidsLimit != 512 || got.NanoCPUs != 1e9 ||
		got.MaxRestarts != 5 || got.StopGrace != 10*time.Second || got.UpdateMonitor != 3*time.Second || got.HealthTimeout != 90*time.Second {
		t.Errorf("defaults: %+v", got)
	}
	set := Options{NanoCPUs: 5e8, MaxRestarts: 1, HealthTimeout: time.Minute}.withDefaults()
	if set.NanoCPUs != 5e8 || set.MaxRestarts != 1 || set.HealthTimeout != time.Minute {
		t.Errorf("set fields were replaced: %+v", set)
	}
}
