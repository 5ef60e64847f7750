package service

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/store"
)

// DeployInput asks for a deployment of a Service.
type DeployInput struct {
	Ref     string `json:"ref,omitempty"` // branch or tag; default: the Service's branch/tag
	SHA     string `json:"sha,omitempty"` // an exact commit
	NoCache bool   `json:"no_cache,omitempty"`
}

// autoDedupeKey is the key under which automatic triggers (push, tag,
// reconcile) create deployments: the database keeps one per (Service,
// SHA), whatever mix of webhook, replay and reconciler asks for it.
func autoDedupeKey(serviceID, sha string) string { return "auto:" + serviceID + ":" + sha }

// createDeploymentTx inserts a deployment, supersedes older queued
// deployments of the same Service, and enqueues the pipeline job, all in
// the caller's transaction. created is false when dedupeKey already had a
// deployment (d is then filled with it).
func (s *Service) createDeploymentTx(ctx context.Context, tx *store.Tx, d *slipway.Deployment, dedupeKey string) (bool, error) {
	if d.ID == "" {
		d.ID = slipway.NewID(slipway.PrefixDeployment)
	}
	d.Status = slipway.DeployQueued
	d.CreatedAt = s.now().UTC()
	created, err := tx.CreateDeployment(ctx, d, dedupeKey)
	if err != nil || !created {
		return created, err
	}
	queued, _, err := tx.ListDeployments(ctx, d.OrgID, d.ServiceID, store.Page{Limit: 50})
	if err != nil {
		return false, err
	}
	for _, old := range queued {
		if old.ID != d.ID && old.Status == slipway.DeployQueued {
			if _, err := tx.TransitionDeployment(ctx, d.OrgID, old.ID, slipway.DeploySuperseded, "superseded by "+d.ID); err != nil && slipway.ErrorCodeOf(err) != slipway.ECodeInvalidTransition {
				return false, err
			}
		}
	}
	if err := s.jobs.EnqueueDeploy(ctx, tx, d.OrgID, d.ID); err != nil {
		return false, fmt.Errorf("enqueue deployment: %w", err)
	}
	return true, nil
}

// Deploy queues a deployment of a Service at its branch/tag head, or at the
// given ref or SHA, resolved now so the deployment is pinned to a commit.
func (s *Service) Deploy(ctx context.Context, a Actor, serviceRef string, in DeployInput) (slipway.Deployment, error) {
	return s.deploy(ctx, a, serviceRef, in, slipway.TriggerManual)
}

func (s *Service) deploy(ctx context.Context, a Actor, serviceRef string, in DeployInput, trigger slipway.Trigger) (slipway.Deployment, error) {
	if err := a.can(slipway.ResDeployments, slipway.ActCreate); err != nil {
		return slipway.Deployment{}, err
	}
	svc, err := s.resolveService(ctx, a.OrgID, serviceRef)
	if err != nil {
		return slipway.Deployment{}, err
	}
	d := slipway.Deployment{OrgID: a.OrgID, ServiceID: svc.ID, Trigger: trigger, TriggeredBy: a.String(), NoCache: in.NoCache}
	if svc.Type == slipway.ServiceApp {
		commit, ref, err := s.pinCommit(ctx, svc, in)
		if err != nil {
			return slipway.Deployment{}, err
		}
		d.CommitSHA, d.Ref, d.CommitMessage, d.CommitAuthor, d.IntegrationID = commit.SHA, ref, commit.Message, commit.Author, svc.Source.IntegrationID
		if trigger == slipway.TriggerManual && !in.NoCache {
			// The commit is already being deployed (a push of the same tag
			// a moment ago): the same code is not deployed twice. Redeploy
			// is the way to build it again.
			if id := s.deployingNow(ctx, svc, commit.SHA); id != "" {
				return s.store.GetDeployment(ctx, a.OrgID, id)
			}
		}
	}
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		if _, err := s.createDeploymentTx(ctx, tx, &d, ""); err != nil {
			return err
		}
		// Deploying the branch head by hand counts as having seen it: the
		// reconciler must not deploy the same commit a second time.
		if d.CommitSHA != "" && svc.Source.Branch != "" && d.Ref == svc.Source.Branch {
			if err := tx.SetServiceLastSeenHead(ctx, svc.OrgID, svc.ID, d.CommitSHA); err != nil {
				return err
			}
		}
		s.audit(ctx, tx, a, "deployment.create", "deployment", d.ID, map[string]string{"service": svc.ID, "sha": d.CommitSHA, "trigger": string(trigger)})
		return nil
	})
	return d, err
}

// pinCommit resolves what a manual deployment builds.
func (s *Service) pinCommit(ctx context.Context, svc slipway.Service, in DeployInput) (slipway.Commit, string, error) {
	ref := firstNonEmpty(in.SHA, in.Ref, svc.Source.Branch, svc.Source.Tag)
	if ref == "" {
		return slipway.Commit{}, "", slipway.Errorf(slipway.ECodeInvalid, "service %s follows the tag pattern %q: give --ref TAG or --sha SHA", svc.Name, svc.Source.TagPattern)
	}
	repo, err := s.visibleRepo(ctx, svc.OrgID, svc.Source.IntegrationID, svc.Source.RepoID)
	if err != nil {
		return slipway.Commit{}, "", err
	}
	commit, err := s.resolveRef(ctx, svc.OrgID, svc.Source.IntegrationID, repo, ref)
	if err != nil {
		return slipway.Commit{}, "", err
	}
	if in.SHA != "" {
		ref = firstNonEmpty(in.Ref, svc.Source.Branch, svc.Source.Tag)
	}
	return commit, ref, nil
}

// Redeploy deploys the Service's live (or latest) commit again; with
// NoCache the build starts from scratch.
func (s *Service) Redeploy(ctx context.Context, a Actor, serviceRef string, noCache bool) (slipway.Deployment, error) {
	if err := a.can(slipway.ResDeployments, slipway.ActCreate); err != nil {
		return slipway.Deployment{}, err
	}
	svc, err := s.resolveService(ctx, a.OrgID, serviceRef)
	if err != nil {
		return slipway.Deployment{}, err
	}
	var prev slipway.Deployment
	if svc.LiveDeploymentID != "" {
		prev, err = s.store.GetDeployment(ctx, a.OrgID, svc.LiveDeploymentID)
	} else {
		prev, err = s.store.LatestDeployment(ctx, a.OrgID, svc.ID)
	}
	if err != nil {
		if slipway.ErrorCodeOf(err) == slipway.ECodeNotFound {
			return slipway.Deployment{}, slipway.Errorf(slipway.ECodeConflict, "service %s has never been deployed: use deploy", svc.Name)
		}
		return slipway.Deployment{}, err
	}
	d := slipway.Deployment{OrgID: a.OrgID, ServiceID: svc.ID, Trigger: slipway.TriggerRedeploy, TriggeredBy: a.String(), NoCache: noCache,
		CommitSHA: prev.CommitSHA, Ref: prev.Ref, CommitMessage: prev.CommitMessage, CommitAuthor: prev.CommitAuthor, IntegrationID: prev.IntegrationID}
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		_, err := s.createDeploymentTx(ctx, tx, &d, "")
		return err
	})
	return d, err
}

// Rollback brings back a previous live release: it pins that commit in a
// new deployment and pauses auto-deploy until the user resumes it, so the
// next push does not undo the rollback.
func (s *Service) Rollback(ctx context.Context, a Actor, serviceRef, toDeployment string) (slipway.Deployment, error) {
	if err := a.can(slipway.ResDeployments, slipway.ActCreate); err != nil {
		return slipway.Deployment{}, err
	}
	svc, err := s.resolveService(ctx, a.OrgID, serviceRef)
	if err != nil {
		return slipway.Deployment{}, err
	}
	var target slipway.Deployment
	if toDeployment != "" {
		target, err = s.store.GetDeployment(ctx, a.OrgID, toDeployment)
		if err != nil {
			return slipway.Deployment{}, err
		}
		if target.ServiceID != svc.ID {
			return slipway.Deployment{}, slipway.NotFound("deployment", toDeployment)
		}
	} else {
		list, _, err := s.store.ListDeployments(ctx, a.OrgID, svc.ID, store.Page{Limit: 200})
		if err != nil {
			return slipway.Deployment{}, err
		}
		for _, d := range list {
			if d.ID != svc.LiveDeploymentID && (d.Status == slipway.DeployReplaced || d.Status == slipway.DeployStopped) && d.CommitSHA != "" {
				target = d
				break
			}
		}
		if target.ID == "" {
			return slipway.Deployment{}, slipway.Errorf(slipway.ECodeConflict, "service %s has no previous release to roll back to", svc.Name)
		}
	}
	if target.Status != slipway.DeployReplaced && target.Status != slipway.DeployStopped && target.Status != slipway.DeployLive {
		return slipway.Deployment{}, slipway.Errorf(slipway.ECodeConflict, "deployment %s never went live (%s); roll back to a release that did", target.ID, target.Status)
	}
	d := slipway.Deployment{OrgID: a.OrgID, ServiceID: svc.ID, Trigger: slipway.TriggerRollback, TriggeredBy: a.String(), RollbackOf: target.ID,
		CommitSHA: target.CommitSHA, Ref: target.Ref, CommitMessage: target.CommitMessage, CommitAuthor: target.CommitAuthor, IntegrationID: target.IntegrationID}
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		if _, err := s.createDeploymentTx(ctx, tx, &d, ""); err != nil {
			return err
		}
		svc.AutoDeployPaused = true
		svc.UpdatedAt = s.now().UTC()
		if err := tx.UpdateService(ctx, &svc); err != nil {
			return err
		}
		s.audit(ctx, tx, a, "deployment.rollback", "service", svc.ID, map[string]string{"to": target.ID, "sha": target.CommitSHA})
		return nil
	})
	return d, err
}

// ResumeAutoDeploy lifts the pause a rollback put on auto-deploy.
func (s *Service) ResumeAutoDeploy(ctx context.Context, a Actor, serviceRef string) (slipway.Service, error) {
	if err := a.can(slipway.ResServices, slipway.ActUpdate); err != nil {
		return slipway.Service{}, err
	}
	svc, err := s.resolveService(ctx, a.OrgID, serviceRef)
	if err != nil {
		return slipway.Service{}, err
	}
	svc.AutoDeployPaused = false
	svc.UpdatedAt = s.now().UTC()
	return svc, s.store.UpdateService(ctx, &svc)
}

// CancelDeployment cancels a queued or running deployment. A running
// pipeline notices at its next phase boundary (and its commands are
// killed through its context).
func (s *Service) CancelDeployment(ctx context.Context, a Actor, id string) (slipway.Deployment, error) {
	if err := a.can(slipway.ResDeployments, slipway.ActUpdate); err != nil {
		return slipway.Deployment{}, err
	}
	d, err := s.store.TransitionDeployment(ctx, a.OrgID, id, slipway.DeployCancelled, "cancelled by "+a.String())
	if err != nil {
		return slipway.Deployment{}, err
	}
	return d, nil
}

// GetDeployment returns one deployment.
func (s *Service) GetDeployment(ctx context.Context, a Actor, id string) (slipway.Deployment, error) {
	if err := a.can(slipway.ResDeployments, slipway.ActRead); err != nil {
		return slipway.Deployment{}, err
	}
	return s.store.GetDeployment(ctx, a.OrgID, id)
}

// ListDeployments lists a Service's deployments, newest first.
func (s *Service) ListDeployments(ctx context.Context, a Actor, serviceRef string, p store.Page) ([]slipway.Deployment, int, error) {
	if err := a.can(slipway.ResDeployments, slipway.ActRead); err != nil {
		return nil, 0, err
	}
	svc, err := s.resolveService(ctx, a.OrgID, serviceRef)
	if err != nil {
		return nil, 0, err
	}
	return s.store.ListDeployments(ctx, a.OrgID, svc.ID, p)
}

// DeploymentLogs returns log lines after seq.
func (s *Service) DeploymentLogs(ctx context.Context, a Actor, id string, afterSeq int64, limit int) ([]store.LogLine, error) {
	if err := a.can(slipway.ResDeployments, slipway.ActRead); err != nil {
		return nil, err
	}
	return s.store.ReadDeploymentLogs(ctx, a.OrgID, id, afterSeq, limit)
}

// CloneSource is everything the pipeline needs to fetch a deployment's
// commit: the repository and freshly minted, least-privilege credentials.
type CloneSource struct {
	Repo  forge.Repo
	Creds forge.CloneCredentials
}

// CloneSourceFor mints clone credentials for a deployment's repository.
// A failure caused by the credential marks the integration as needing
// attention and fails with that reason.
func (s *Service) CloneSourceFor(ctx context.Context, svc slipway.Service) (CloneSource, error) {
	integ, c, err := s.connFor(ctx, svc.OrgID, svc.Source.IntegrationID)
	if err != nil {
		return CloneSource{}, err
	}
	if integ.Status == slipway.IntegrationNeedsAttention {
		return CloneSource{}, slipway.Errorf(slipway.ECodeIntegrationNeedsAttention, "integration %s needs attention: %s", integ.Label, integ.StatusReason).WithFix(integ.StatusFix)
	}
	p := s.forges[integ.Provider]
	cl, ok := p.(forge.Cloner)
	if !ok {
		return CloneSource{}, slipway.Errorf(slipway.ECodeInvalid, "%s cannot clone", integ.Provider)
	}
	repo, err := p.(forge.RepoLister).GetRepo(ctx, c, svc.Source.RepoID)
	if err != nil {
		s.markNeedsAttention(ctx, integ, err)
		return CloneSource{}, err
	}
	creds, err := cl.CloneCredentials(ctx, c, repo)
	if err != nil {
		s.markNeedsAttention(ctx, integ, err)
		return CloneSource{}, err
	}
	return CloneSource{Repo: repo, Creds: creds}, nil
}

// SubmoduleCredentials hands out a credential for one submodule of svc,
// when svc allows it (Build.SubmoduleCredentials) and the submodule's
// repository is on the same host as svc's and visible to svc's
// integration: the provider's clone credential for that repository, which
// GitHub narrows to it. ok=false means "fetch it without credentials".
func (s *Service) SubmoduleCredentials(ctx context.Context, svc slipway.Service, parentURL, submoduleURL string) (username, password string, ok bool, err error) {
	if !svc.Build.SubmoduleCredentials || svc.Source.IntegrationID == "" {
		return "", "", false, nil
	}
	parent, perr := url.Parse(parentURL)
	sub, serr := url.Parse(submoduleURL)
	if perr != nil || serr != nil || !strings.EqualFold(parent.Host, sub.Host) || sub.User != nil {
		return "", "", false, nil
	}
	fullName := strings.TrimSuffix(strings.Trim(sub.Path, "/"), ".git")
	repo, err := s.visibleRepo(ctx, svc.OrgID, svc.Source.IntegrationID, fullName)
	if err != nil {
		if slipway.ErrorCodeOf(err) == slipway.ECodeRepoNotVisible {
			return "", "", false, nil
		}
		return "", "", false, err
	}
	integ, c, err := s.connFor(ctx, svc.OrgID, svc.Source.IntegrationID)
	if err != nil {
		return "", "", false, err
	}
	cl, isCloner := s.forges[integ.Provider].(forge.Cloner)
	if !isCloner {
		return "", "", false, nil
	}
	creds, err := cl.CloneCredentials(ctx, c, repo)
	if err != nil {
		return "", "", false, err
	}
	// The credential is for the repository the integration reports, at
	// the address it reports: a submodule URL naming the same repository
	// elsewhere gets nothing.
	if got, perr := url.Parse(creds.URL); perr != nil || !strings.EqualFold(got.Host, sub.Host) ||
		!strings.EqualFold(strings.TrimSuffix(strings.Trim(got.Path, "/"), ".git"), fullName) {
		return "", "", false, nil
	}
	return creds.Username, creds.Password, creds.Password != "", nil
}

// ReportStatus sets a commit status for a deployment on its provider, when
// the provider supports it. Failures are logged, never fatal.
func (s *Service) ReportStatus(ctx context.Context, svc slipway.Service, d slipway.Deployment, state forge.StatusState, description string) {
	if d.CommitSHA == "" || svc.Source.IntegrationID == "" {
		return
	}
	integ, c, err := s.connFor(ctx, svc.OrgID, svc.Source.IntegrationID)
	if err != nil {
		return
	}
	rep, ok := s.forges[integ.Provider].(forge.StatusReporter)
	if !ok {
		return
	}
	repo := forge.Repo{ID: svc.Source.RepoID, FullName: svc.Source.RepoName}
	env, _ := s.store.GetEnvironment(ctx, svc.OrgID, svc.EnvironmentID)
	st := forge.CommitStatus{State: state, Context: "slipway/" + env.Name + "/" + svc.Name, Description: description,
		TargetURL: s.cfg.PublicURL + "/deployments/" + d.ID}
	if err := rep.SetCommitStatus(ctx, c, repo, d.CommitSHA, st); err != nil {
		s.log.Warn("report commit status", "deployment", d.ID, "err", err)
	}
}

// Release actions.
const (
	ActionRestart = "restart"
	ActionStop    = "stop"
)

// actionJobs is implemented by job queues that can restart and stop
// releases (the deploy workers carry them out, in order with deployments).
type actionJobs interface {
	EnqueueServiceAction(ctx context.Context, tx *store.Tx, orgID, serviceID, action string) error
}

// RestartService restarts the Service's live (or stopped) release in place,
// without building anything.
func (s *Service) RestartService(ctx context.Context, a Actor, serviceRef string) (slipway.Service, error) {
	return s.releaseAction(ctx, a, serviceRef, ActionRestart)
}

// StopService stops the Service's live release: its hosts stop answering
// until a restart or a new deployment.
func (s *Service) StopService(ctx context.Context, a Actor, serviceRef string) (slipway.Service, error) {
	return s.releaseAction(ctx, a, serviceRef, ActionStop)
}

func (s *Service) releaseAction(ctx context.Context, a Actor, serviceRef, action string) (slipway.Service, error) {
	if err := a.can(slipway.ResDeployments, slipway.ActUpdate); err != nil {
		return slipway.Service{}, err
	}
	svc, err := s.resolveService(ctx, a.OrgID, serviceRef)
	if err != nil {
		return slipway.Service{}, err
	}
	if svc.LiveDeploymentID == "" {
		return slipway.Service{}, slipway.Errorf(slipway.ECodeConflict, "service %s has no release to %s: deploy it first", svc.Name, action)
	}
	aj, ok := s.jobs.(actionJobs)
	if !ok {
		return slipway.Service{}, slipway.Errorf(slipway.ECodeUnavailable, "this server cannot %s releases", action)
	}
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		if err := aj.EnqueueServiceAction(ctx, tx, a.OrgID, svc.ID, action); err != nil {
			return err
		}
		s.audit(ctx, tx, a, "service."+action, "service", svc.ID, map[string]string{"deployment": svc.LiveDeploymentID})
		return nil
	})
	return svc, err
}
