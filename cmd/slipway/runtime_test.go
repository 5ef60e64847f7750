package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"

	"slipway.dev/slipway/internal/testenv/dockertest"
)

// infoOnly answers Info with a fixed swarm state; the other methods are
// never called by requireSwarmManager.
type infoOnly struct {
	client.SystemAPIClient
	state   swarm.LocalNodeState
	manager bool
}

func (i infoOnly) Info(context.Context) (system.Info, error) {
	return system.Info{Swarm: swarm.Info{LocalNodeState: i.state, ControlAvailable: i.manager}}, nil
}

func TestSwarmRuntimeNeedsAManager(t *testing.T) {
	err := requireSwarmManager(context.Background(), infoOnly{state: swarm.LocalNodeStateInactive})
	if err == nil || !strings.Contains(err.Error(), "docker swarm init --advertise-addr") {
		t.Errorf("daemon outside a swarm: err = %v", err)
	}
	err = requireSwarmManager(context.Background(), infoOnly{state: swarm.LocalNodeStateActive})
	if err == nil || !strings.Contains(err.Error(), "worker") {
		t.Errorf("worker node: err = %v", err)
	}

	// A real manager is accepted, and serve builds the swarm runtime with
	// image building.
	dockertest.Swarm(t)
	rt, err := newRuntime("swarm", slog.New(slog.DiscardHandler))(nil)
	if err != nil {
		t.Fatalf("swarm runtime on a manager: %v", err)
	}
	if _, ok := rt.(interface {
		ImageID(context.Context, string) (string, error)
	}); !ok || rt.Name() != "swarm" {
		t.Errorf("swarm runtime %T lacks the image cache", rt)
	}
}
