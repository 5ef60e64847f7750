// Package jobs runs Slipway's background work on River: processing webhook
// deliveries, running deployment pipelines and reconciling branch heads.
// Jobs are inserted in the same transaction as the change that causes them
// (a delivery row, a deployment row), so a job exists exactly when its
// cause was committed, and a crash between the two cannot happen. Workers
// are idempotent: River may run a job again after a crash.
//
// On SQLite River uses its riversqlite driver; on PostgreSQL its
// database/sql driver (riverdatabasesql), so the store and the queue share
// one *sql.Tx type and a job can join the store's transaction. Several
// `slipway serve` replicas on one PostgreSQL share the queue; River's job
// locking guarantees one worker per job.
package jobs

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"slipway.dev/slipway/internal/store"
)

// DeployArgs runs one deployment's pipeline.
type DeployArgs struct {
	OrgID        string `json:"org_id"`
	DeploymentID string `json:"deployment_id"`
}

// Kind implements river.JobArgs.
func (DeployArgs) Kind() string { return "deploy" }

// InsertOpts puts deployments on their own queue so long builds never hold
// up webhook processing.
func (DeployArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: "deploy", MaxAttempts: 3}
}

// DeliveryArgs processes one stored webhook delivery.
type DeliveryArgs struct {
	OrgID      string `json:"org_id"`
	DeliveryID string `json:"delivery_id"`
}

// Kind implements river.JobArgs.
func (DeliveryArgs) Kind() string { return "process_delivery" }

// ReconcileArgs checks every auto-deploy Service's branch head.
type ReconcileArgs struct{}

// Kind implements river.JobArgs.
func (ReconcileArgs) Kind() string { return "reconcile" }

// InsertOpts makes concurrent reconcile requests collapse into one.
func (ReconcileArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 1, UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: 10 * time.Second}}
}

// ActionArgs restarts or stops a Service's live release.
type ActionArgs struct {
	OrgID     string `json:"org_id"`
	ServiceID string `json:"service_id"`
	Action    string `json:"action"` // "restart" or "stop"
}

// Kind implements river.JobArgs.
func (ActionArgs) Kind() string { return "service_action" }

// InsertOpts runs actions on the deploy queue, ordered with deployments.
func (ActionArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: "deploy", MaxAttempts: 1}
}

// SweepArgs re-processes deliveries whose job was lost (a killed process
// leaves its running jobs to River's hour-long stuck-job rescue).
type SweepArgs struct{}

// Kind implements river.JobArgs.
func (SweepArgs) Kind() string { return "sweep" }

// InsertOpts collapses concurrent sweeps into one.
func (SweepArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 1, UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: 10 * time.Second}}
}

// sweepInterval is how often stale deliveries are looked for.
const sweepInterval = 30 * time.Second

// Handlers are the use cases the workers call.
type Handlers struct {
	Action          func(ctx context.Context, orgID, serviceID, action string) error
	Sweep           func(ctx context.Context) error
	Deploy          func(ctx context.Context, orgID, deploymentID string) error
	ProcessDelivery func(ctx context.Context, orgID, deliveryID string) error
	Reconcile       func(ctx context.Context) error
}

// Config tunes the queue.
type Config struct {
	DeployWorkers     int           // concurrent deployment pipelines (default 2)
	ReconcileInterval time.Duration // 0 disables the periodic reconciler
	PollInterval      time.Duration // how often idle workers look for jobs (default 200ms)
	Work              bool          // false: insert-only client (no workers)
}

// Queue is the River client.
type Queue struct {
	client *river.Client[*sql.Tx]
	log    *slog.Logger
}

// Migrate creates or upgrades River's tables.
func Migrate(ctx context.Context, st *store.Store) error {
	m, err := rivermigrate.New(driverFor(st), nil)
	if err != nil {
		return fmt.Errorf("river migrator: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river migrate: %w", err)
	}
	return nil
}

func driverFor(st *store.Store) riverdriver.Driver[*sql.Tx] {
	if st.Dialect() == store.DialectSQLite {
		return riversqlite.New(st.DB())
	}
	return riverdatabasesql.New(st.DB())
}

// New creates the queue (after Migrate). Call Start to begin working.
func New(st *store.Store, h Handlers, cfg Config, logger *slog.Logger) (*Queue, error) {
	if cfg.DeployWorkers <= 0 {
		cfg.DeployWorkers = 2
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 200 * time.Millisecond
	}
	rc := &river.Config{
		Logger:            logger.With("component", "river"),
		FetchCooldown:     20 * time.Millisecond,
		FetchPollInterval: cfg.PollInterval,
		PollOnly:          true, // SQLite has no LISTEN; polling is uniform across dialects
		JobTimeout:        45 * time.Minute,
		// A job left "running" by a killed process is rescued by River only
		// after this (it must exceed the longest deployment). The faster
		// nets are Slipway's own: the delivery sweeper, and Recover at start
		// re-enqueueing queued deployments and failing interrupted ones.
		RescueStuckJobsAfter: time.Hour,
	}
	if cfg.Work {
		workers := river.NewWorkers()
		river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, j *river.Job[DeployArgs]) error {
			return h.Deploy(ctx, j.Args.OrgID, j.Args.DeploymentID)
		}))
		river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, j *river.Job[DeliveryArgs]) error {
			return h.ProcessDelivery(ctx, j.Args.OrgID, j.Args.DeliveryID)
		}))
		river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, j *river.Job[ReconcileArgs]) error {
			return h.Reconcile(ctx)
		}))
		if h.Action != nil {
			river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, j *river.Job[ActionArgs]) error {
				return h.Action(ctx, j.Args.OrgID, j.Args.ServiceID, j.Args.Action)
			}))
		}
		if h.Sweep != nil {
			river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, j *river.Job[SweepArgs]) error {
				return h.Sweep(ctx)
			}))
			rc.PeriodicJobs = append(rc.PeriodicJobs, river.NewPeriodicJob(river.PeriodicInterval(sweepInterval),
				func() (river.JobArgs, *river.InsertOpts) { return SweepArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}))
		}
		rc.Workers = workers
		rc.Queues = map[string]river.QueueConfig{
			river.QueueDefault: {MaxWorkers: 4},
			"deploy":           {MaxWorkers: cfg.DeployWorkers},
		}
		if cfg.ReconcileInterval > 0 {
			rc.PeriodicJobs = append(rc.PeriodicJobs, river.NewPeriodicJob(river.PeriodicInterval(cfg.ReconcileInterval),
				func() (river.JobArgs, *river.InsertOpts) { return ReconcileArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}))
		}
	}
	client, err := river.NewClient(driverFor(st), rc)
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return &Queue{client: client, log: logger}, nil
}

// Start begins working jobs until Stop.
func (q *Queue) Start(ctx context.Context) error { return q.client.Start(ctx) }

// Stop lets running jobs finish (until ctx ends) and stops the workers.
func (q *Queue) Stop(ctx context.Context) error { return q.client.Stop(ctx) }

// EnqueueDeploy inserts a deployment job in tx.
func (q *Queue) EnqueueDeploy(ctx context.Context, tx *store.Tx, orgID, deploymentID string) error {
	_, err := q.client.InsertTx(ctx, tx.SQLTx(), DeployArgs{OrgID: orgID, DeploymentID: deploymentID}, nil)
	return err
}

// EnqueueDelivery inserts a delivery-processing job in tx.
func (q *Queue) EnqueueDelivery(ctx context.Context, tx *store.Tx, orgID, deliveryID string) error {
	_, err := q.client.InsertTx(ctx, tx.SQLTx(), DeliveryArgs{OrgID: orgID, DeliveryID: deliveryID}, nil)
	return err
}

// EnqueueServiceAction inserts a restart or stop of a Service in tx.
func (q *Queue) EnqueueServiceAction(ctx context.Context, tx *store.Tx, orgID, serviceID, action string) error {
	_, err := q.client.InsertTx(ctx, tx.SQLTx(), ActionArgs{OrgID: orgID, ServiceID: serviceID, Action: action}, nil)
	return err
}

// EnqueueReconcile asks for a reconciliation pass now.
func (q *Queue) EnqueueReconcile(ctx context.Context) error {
	_, err := q.client.Insert(ctx, ReconcileArgs{}, nil)
	return err
}
