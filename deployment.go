package slipway

import "time"

// DeploymentStatus is where a Deployment is in its life.
type DeploymentStatus string

// Deployment statuses: queued → cloning → building → deploying → live, or
// one of the terminal failed / cancelled / superseded. A live deployment
// becomes "replaced" when a newer one goes live, or "stopped" when the
// user stops the Service.
const (
	DeployQueued     DeploymentStatus = "queued"
	DeployCloning    DeploymentStatus = "cloning"
	DeployBuilding   DeploymentStatus = "building"
	DeployDeploying  DeploymentStatus = "deploying"
	DeployLive       DeploymentStatus = "live"
	DeployFailed     DeploymentStatus = "failed"
	DeployCancelled  DeploymentStatus = "cancelled"
	DeploySuperseded DeploymentStatus = "superseded"
	DeployReplaced   DeploymentStatus = "replaced"
	DeployStopped    DeploymentStatus = "stopped"
)

// deploymentTransitions is the one place the status machine is written
// down. Every status change in the store goes through CanTransition.
var deploymentTransitions = map[DeploymentStatus][]DeploymentStatus{
	DeployQueued:    {DeployCloning, DeployFailed, DeployCancelled, DeploySuperseded},
	DeployCloning:   {DeployBuilding, DeployFailed, DeployCancelled},
	DeployBuilding:  {DeployDeploying, DeployFailed, DeployCancelled},
	DeployDeploying: {DeployLive, DeployFailed, DeployCancelled},
	DeployLive:      {DeployReplaced, DeployStopped},
	DeployReplaced:  {DeployLive}, // a rollback or restart may bring a previous release back
	DeployStopped:   {DeployLive},
}

// CanTransition reports whether a deployment may move from s to next.
func (s DeploymentStatus) CanTransition(next DeploymentStatus) bool {
	for _, t := range deploymentTransitions[s] {
		if t == next {
			return true
		}
	}
	return false
}

// Terminal reports whether no further work will happen for the deployment
// (live is not terminal: it can be replaced or stopped).
func (s DeploymentStatus) Terminal() bool {
	switch s {
	case DeployFailed, DeployCancelled, DeploySuperseded, DeployReplaced, DeployStopped:
		return true
	}
	return false
}

// InProgress reports whether the deployment is queued or running a phase.
func (s DeploymentStatus) InProgress() bool {
	switch s {
	case DeployQueued, DeployCloning, DeployBuilding, DeployDeploying:
		return true
	}
	return false
}

// Trigger says what caused a deployment.
type Trigger string

// Deployment triggers.
const (
	TriggerManual     Trigger = "manual"
	TriggerPush       Trigger = "push"
	TriggerTag        Trigger = "tag"
	TriggerDeployHook Trigger = "deploy-hook"
	TriggerRedeploy   Trigger = "redeploy"
	TriggerRollback   Trigger = "rollback"
	TriggerReconcile  Trigger = "reconcile"
)

// Deployment is one concrete release of a Service: a pinned commit, what
// triggered it, and what happened.
type Deployment struct {
	ID            string           `json:"id"`
	OrgID         string           `json:"org_id"`
	ServiceID     string           `json:"service_id"`
	Status        DeploymentStatus `json:"status"`
	CommitSHA     string           `json:"commit_sha"`
	Ref           string           `json:"ref,omitempty"`
	CommitMessage string           `json:"commit_message,omitempty"`
	CommitAuthor  string           `json:"commit_author,omitempty"`
	Trigger       Trigger          `json:"trigger"`
	TriggeredBy   string           `json:"triggered_by,omitempty"` // user id, delivery id, "reconciler", …
	IntegrationID string           `json:"integration_id,omitempty"`
	NoCache       bool             `json:"no_cache,omitempty"`
	RollbackOf    string           `json:"rollback_of,omitempty"` // the deployment whose release a rollback brings back
	Error         string           `json:"error,omitempty"`
	Phases        []PhaseTiming    `json:"phases,omitempty"`
	CreatedAt     time.Time        `json:"created_at"`
	StartedAt     *time.Time       `json:"started_at,omitempty"`
	FinishedAt    *time.Time       `json:"finished_at,omitempty"`
}

// PhaseTiming records when a deployment entered and left one phase.
type PhaseTiming struct {
	Phase      DeploymentStatus `json:"phase"`
	StartedAt  time.Time        `json:"started_at"`
	FinishedAt *time.Time       `json:"finished_at,omitempty"`
}

// ShortSHA returns the first 7 characters of a commit SHA, for display.
func ShortSHA(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}
