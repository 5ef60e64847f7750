// Package runtime defines where a built Service runs. A Runtime starts a
// Release, waits until it is healthy and hands back the address the router
// sends traffic to; it stops a release once the router has drained it.
//
// Implementations live in subpackages (process, docker, swarm); only
// cmd/slipway names a concrete one. Optional abilities (runtime logs,
// restart counts) are separate small interfaces discovered with a type
// assertion, so a runtime that cannot offer them carries no stubs.
package runtime

import (
	"context"
	"errors"
	"io"
	"time"
)

// Release is one built deployment ready to run.
type Release struct {
	ServiceID    string
	DeploymentID string
	// Name is human- and DNS-safe, for example "web-production-shop".
	Name string
	// Dir is the built workspace (process runtime).
	Dir string
	// Image is the built image (docker and swarm runtimes).
	Image string
	// Command is the start command (process runtime), run with sh -c.
	Command string
	// Env holds the Service's variables. The runtime adds PORT.
	Env map[string]string
	// HealthPath is the HTTP path checked before traffic moves. Empty means
	// "/" accepting any status below 500 (or, where HTTP is not possible, a
	// TCP connect).
	HealthPath string
	// Replicas is how many copies to run; 0 means 1.
	Replicas int
	// User is the unprivileged account the release runs as. The zero value
	// means "the runtime's own user" (developer machines only).
	User User
}

// User is an operating-system identity for untrusted code.
type User struct {
	Name     string
	UID, GID uint32
}

// IsZero reports whether no user was chosen.
func (u User) IsZero() bool { return u == User{} }

// Instance is a started, healthy release.
type Instance struct {
	DeploymentID string
	// Addr is the 127.0.0.1:port the router sends traffic to.
	Addr string
}

// Runtime runs releases.
type Runtime interface {
	// Name identifies the runtime ("process", "docker", "swarm").
	Name() string
	// Start runs the release and returns once it passes its health check,
	// or fails with the reason. Output of the release goes to logs.
	// Starting a deployment that already runs returns its instance.
	Start(ctx context.Context, rel Release, logs io.Writer) (Instance, error)
	// Stop stops a release after its in-flight requests drained (the caller
	// drains the router first). Stopping an unknown release is not an error.
	Stop(ctx context.Context, deploymentID string) error
}

// LogReader is implemented by runtimes that keep the recent output of a
// running release.
type LogReader interface {
	// Logs writes the retained output of the release to w.
	Logs(ctx context.Context, deploymentID string, w io.Writer) error
}

// Status is what a runtime knows about a running release.
type Status struct {
	DeploymentID string
	Addr         string
	Running      bool
	Restarts     int
	StartedAt    time.Time // of the current process or container
	LastExit     string    // why the previous run ended, if it did
}

// StatusReader is implemented by runtimes that can report on a release.
type StatusReader interface {
	Status(ctx context.Context, deploymentID string) (Status, error)
}

// ErrUnknownRelease is returned (wrapped) by Logs and Status for a release
// the runtime does not run.
var ErrUnknownRelease = errors.New("runtime: unknown release")

// HealthCheckError says why a release did not become healthy. Runtimes
// return it (wrapped) from Start so the deployment can show the reason.
type HealthCheckError struct {
	DeploymentID string
	Reason       string // e.g. "process exited with status 1", "GET /healthz answered 503"
}

func (e *HealthCheckError) Error() string {
	return "release " + e.DeploymentID + " failed its health check: " + e.Reason
}
