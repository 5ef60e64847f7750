// Package deploy runs a deployment's pipeline: clone the pinned commit with
// freshly minted least-privilege credentials, build it, start the release
// on the runtime, wait for its health check, switch the router's traffic
// to it, drain and stop the previous release, and report the commit status
// to the provider. Every phase change goes through the store's status
// machine, so a cancelled or superseded deployment stops at the next phase
// boundary and two workers can never both advance one deployment.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/build"
	"slipway.dev/slipway/internal/clone"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/router"
	"slipway.dev/slipway/internal/runtime"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/store"
)

// ImageBuilder is implemented by runtimes that run images (docker, swarm):
// they build the release's image from the checked out source.
// For them the pipeline only fetches the commit (no build plan runs on the
// host) and tags the image per (Service, commit): see imageTag.
type ImageBuilder interface {
	BuildImage(ctx context.Context, dir, dockerfile, tag string, noCache bool, logs io.Writer) (string, error)
}

// ImageCache is implemented by image runtimes that can tell whether an
// image exists, so a redeploy or rollback of a commit whose image was
// built skips the fetch and the build (unless the deployment asks for no
// cache).
type ImageCache interface {
	// ImageID returns the local image's ID, or "" when there is none.
	ImageID(ctx context.Context, ref string) (string, error)
}

// imageTag names the image of a Service's commit.
func imageTag(serviceID, sha string) string {
	return "slipway/" + strings.ToLower(serviceID) + ":" + strings.ToLower(sha)
}

// Pipeline runs deployments.
type Pipeline struct {
	svc     *service.Service
	st      *store.Store
	builder *build.Builder
	rt      runtime.Runtime
	router  *router.Router
	log     *slog.Logger

	mu      sync.Mutex
	running map[string]context.CancelFunc // deployment id → cancel, for this replica

	logLimits LogLimits
	disk      DiskGuard
	keep      int // finished builds and images kept per Service besides the live one
}

// SetLogLimits sets the per-deployment log limits (zero fields: defaults).
func (p *Pipeline) SetLogLimits(l LogLimits) { p.logLimits = l }

// New builds a Pipeline.
func New(svc *service.Service, builder *build.Builder, rt runtime.Runtime, rtr *router.Router, logger *slog.Logger) *Pipeline {
	return &Pipeline{svc: svc, st: svc.Store(), builder: builder, rt: rt, router: rtr, log: logger, running: map[string]context.CancelFunc{}}
}

// cancelPoll is how often a running pipeline checks whether its deployment
// was cancelled (by any replica, through the database).
const cancelPoll = time.Second

// Run carries out one deployment. It is the body of a job and may run
// again after a crash: a deployment that is no longer queued is left alone.
func (p *Pipeline) Run(ctx context.Context, orgID, deploymentID string) error {
	d, err := p.st.GetDeployment(ctx, orgID, deploymentID)
	if err != nil {
		if slipway.ErrorCodeOf(err) == slipway.ECodeNotFound {
			return nil
		}
		return err
	}
	if d.Status != slipway.DeployQueued {
		return nil
	}
	svc, err := p.st.GetService(ctx, orgID, d.ServiceID)
	if err != nil {
		_, _ = p.st.TransitionDeployment(ctx, orgID, d.ID, slipway.DeployFailed, "service no longer exists")
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.mu.Lock()
	p.running[d.ID] = cancel
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.running, d.ID)
		p.mu.Unlock()
	}()
	go p.watchCancel(ctx, cancel, orgID, d.ID)

	logs := newLogWriter(ctx, p.st, d.ID, p.logLimits)
	defer logs.Close()
	// Claim the deployment: queued → cloning is a compare-and-set, so of
	// two jobs for one deployment (a re-enqueue after a crash) exactly one
	// proceeds and the other leaves quietly.
	if _, err := p.st.TransitionDeployment(ctx, orgID, d.ID, slipway.DeployCloning, ""); err != nil {
		if slipway.ErrorCodeOf(err) == slipway.ECodeInvalidTransition {
			return nil
		}
		return err
	}
	fmt.Fprintf(logs, "==> %s\n", slipway.DeployCloning)
	err = p.disk.check()
	if err == nil {
		err = p.run(ctx, svc, d, logs)
	}
	if err == nil {
		return nil
	}
	cur, gerr := p.st.GetDeployment(context.WithoutCancel(ctx), orgID, d.ID)
	if gerr == nil && (cur.Status == slipway.DeployCancelled || cur.Status == slipway.DeploySuperseded) {
		fmt.Fprintf(logs, "deployment %s\n", cur.Status)
		return nil
	}
	msg := slipway.ErrorMessageOf(err)
	if e, ok := slipway.AsError(err); ok && e.Fix != "" {
		msg += " — " + e.Fix
	} else if _, ok := slipway.AsError(err); !ok {
		msg = err.Error()
	}
	msg = logs.mask(msg)
	fmt.Fprintf(logs, "deployment failed: %s\n", msg)
	logs.Flush() // whoever sees the status can read why
	if _, terr := p.st.TransitionDeployment(context.WithoutCancel(ctx), orgID, d.ID, slipway.DeployFailed, msg); terr != nil {
		p.log.Warn("mark deployment failed", "deployment", d.ID, "err", terr)
	}
	p.svc.ReportStatus(context.WithoutCancel(ctx), svc, d, forge.StatusFailure, "deployment failed")
	return nil // the failure is recorded; retrying the job would not help
}

// Heartbeats tell every replica that a running deployment's worker is
// alive; one silent for abandonAfter is failed by whichever replica
// notices (at start, or in the periodic sweep).
const (
	heartbeatEvery = 5 * time.Second
	abandonAfter   = 20 * time.Second
)

func (p *Pipeline) watchCancel(ctx context.Context, cancel context.CancelFunc, orgID, id string) {
	t := time.NewTicker(cancelPoll)
	defer t.Stop()
	lastBeat := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if time.Since(lastBeat) >= heartbeatEvery {
				if err := p.st.HeartbeatDeployment(ctx, id, time.Now()); err != nil {
					p.log.Warn("deployment heartbeat", "deployment", id, "err", err)
				}
				lastBeat = time.Now()
			}
			d, err := p.st.GetDeployment(ctx, orgID, id)
			if err == nil && (d.Status == slipway.DeployCancelled || d.Status == slipway.DeploySuperseded) {
				cancel()
				return
			}
		}
	}
}

func (p *Pipeline) transition(ctx context.Context, d slipway.Deployment, to slipway.DeploymentStatus, logs io.Writer) error {
	flushLogs(logs) // the log of a phase is readable once the next one shows
	if _, err := p.st.TransitionDeployment(ctx, d.OrgID, d.ID, to, ""); err != nil {
		return fmt.Errorf("move to %s: %w", to, err)
	}
	fmt.Fprintf(logs, "==> %s\n", to)
	return nil
}

func (p *Pipeline) run(ctx context.Context, svc slipway.Service, d slipway.Deployment, logs *logWriter) error {
	p.svc.ReportStatus(ctx, svc, d, forge.StatusPending, "deploying")
	env, err := p.svc.ServiceEnv(ctx, svc)
	if err != nil {
		return err
	}
	for _, v := range env.Secrets {
		logs.addSecret(v)
	}
	rel := runtime.Release{ServiceID: svc.ID, DeploymentID: d.ID, Env: withPlatformEnv(env.Values, svc, d), HealthPath: svc.Build.HealthPath, Replicas: svc.Build.Replicas}
	if host, err := p.svc.ServiceHost(ctx, svc); err == nil {
		rel.Name = strings.ReplaceAll(strings.TrimSuffix(host, "."+p.svc.Config().BaseDomain), ".", "-")
	}
	switch svc.Type {
	case slipway.ServiceDocker:
		rel.Image = svc.Image
		if err := p.transition(ctx, d, slipway.DeployBuilding, logs); err != nil {
			return err
		}
	default:
		if ib, ok := p.rt.(ImageBuilder); ok {
			img, err := p.buildImage(ctx, ib, svc, d, env.Values, logs)
			if err != nil {
				return err
			}
			rel.Image = img
			break
		}
		src, err := p.svc.CloneSourceFor(ctx, svc)
		if err != nil {
			return err
		}
		logs.addSecret(src.Creds.Password)
		logs.addSecret(src.Creds.SSHKey)
		fmt.Fprintf(logs, "fetching %s at %s\n", src.Repo.FullName, d.CommitSHA)
		req := build.Request{ServiceID: svc.ID, DeploymentID: d.ID, Settings: svc.Build, Env: env.Values, NoCache: d.NoCache,
			Source: clone.Options{URL: src.Creds.URL, Username: src.Creds.Username, Password: src.Creds.Password, SSHKey: src.Creds.SSHKey,
				KnownHosts: src.Creds.KnownHosts, SHA: d.CommitSHA, RootDir: svc.Source.RootDir, Submodules: true, LFS: true, Network: p.svc.Config().Network, SubmoduleCredentials: p.submoduleCredentials(svc, src.Creds.URL, logs)},
			OnPhase: func(st slipway.DeploymentStatus) {
				if st == slipway.DeployBuilding {
					_ = p.transition(ctx, d, slipway.DeployBuilding, logs)
				}
			}}
		res, err := p.builder.Build(ctx, req, logs)
		if err != nil {
			return err
		}
		if cur, _ := p.st.GetDeployment(ctx, d.OrgID, d.ID); cur.Status == slipway.DeployCloning {
			if err := p.transition(ctx, d, slipway.DeployBuilding, logs); err != nil {
				return err
			}
		}
		if res.Cached {
			fmt.Fprintln(logs, "reusing the finished build of this commit (cache)")
		}
		rel.Dir, rel.Command, rel.User = res.Dir, firstNonEmpty(svc.Build.StartCommand, res.StartCommand), res.User
		if rel.Env == nil {
			rel.Env = map[string]string{}
		}
		if res.Home != "" {
			rel.Env["HOME"] = res.Home
		}
	}
	if err := p.transition(ctx, d, slipway.DeployDeploying, logs); err != nil {
		return err
	}
	inst, err := p.rt.Start(ctx, rel, logs)
	if err != nil {
		var he *runtime.HealthCheckError
		if errors.As(err, &he) {
			return slipway.Errorf(slipway.ECodeInvalid, "the new release did not become healthy: %s", he.Reason).
				WithFix("check the start command and that the app listens on $PORT; the previous release keeps serving")
		}
		return err
	}
	if err := p.goLive(ctx, svc, d, inst, logs); err != nil {
		return err
	}
	p.prune(ctx, svc, rel, logs)
	return nil
}

// buildImage makes the image of d's commit: the existing one when the
// commit was built before and d allows the cache, else the Dockerfile
// (Build.Dockerfile, default "Dockerfile") of a fresh fetch. It returns
// the image reference the runtime runs.
func (p *Pipeline) buildImage(ctx context.Context, ib ImageBuilder, svc slipway.Service, d slipway.Deployment, env map[string]string, logs *logWriter) (string, error) {
	tag := imageTag(svc.ID, d.CommitSHA)
	if ic, ok := p.rt.(ImageCache); ok && !d.NoCache {
		id, err := ic.ImageID(ctx, tag)
		if err != nil {
			return "", err
		}
		if id != "" {
			if err := p.transition(ctx, d, slipway.DeployBuilding, logs); err != nil {
				return "", err
			}
			fmt.Fprintf(logs, "reusing the image %s of this commit (cache)\n", tag)
			return tag, nil
		}
	}
	src, err := p.svc.CloneSourceFor(ctx, svc)
	if err != nil {
		return "", err
	}
	logs.addSecret(src.Creds.Password)
	logs.addSecret(src.Creds.SSHKey)
	fmt.Fprintf(logs, "fetching %s at %s\n", src.Repo.FullName, d.CommitSHA)
	res, err := p.builder.Build(ctx, build.Request{ServiceID: svc.ID, DeploymentID: d.ID, Settings: svc.Build, Env: env, NoCache: d.NoCache, SourceOnly: true,
		Source: clone.Options{URL: src.Creds.URL, Username: src.Creds.Username, Password: src.Creds.Password, SSHKey: src.Creds.SSHKey,
			KnownHosts: src.Creds.KnownHosts, SHA: d.CommitSHA, RootDir: svc.Source.RootDir, Submodules: true, LFS: true, Network: p.svc.Config().Network, SubmoduleCredentials: p.submoduleCredentials(svc, src.Creds.URL, logs)}}, logs)
	if err != nil {
		return "", err
	}
	// The image holds everything the release needs; the checkout is only
	// its build context.
	defer os.RemoveAll(res.Checkout)
	if err := p.transition(ctx, d, slipway.DeployBuilding, logs); err != nil {
		return "", err
	}
	if _, err := ib.BuildImage(ctx, res.Dir, svc.Build.Dockerfile, tag, d.NoCache, logs); err != nil {
		return "", err
	}
	return tag, nil
}

// goLive switches traffic to inst, retires the previous release and marks
// the deployment live.
func (p *Pipeline) goLive(ctx context.Context, svc slipway.Service, d slipway.Deployment, inst runtime.Instance, logs io.Writer) error {
	hosts, err := p.hosts(ctx, svc)
	if err != nil {
		return err
	}
	flushLogs(logs)
	replaced, err := p.takeLive(ctx, svc, d)
	if err != nil {
		_ = p.rt.Stop(context.WithoutCancel(ctx), d.ID)
		return fmt.Errorf("go live: %w", err)
	}
	p.router.SetSettings(svc.ID, router.SettingsOf(svc))
	previous, refused := p.router.Switch(svc.ID, hosts, inst)
	for _, h := range refused {
		fmt.Fprintf(logs, "not routing %s: another service holds it\n", h)
	}
	fmt.Fprintf(logs, "==> live at %s\n", strings.Join(hosts, ", "))
	bg := context.WithoutCancel(ctx)
	go func() {
		dctx, cancel := context.WithTimeout(bg, 30*time.Second)
		defer cancel()
		for _, addr := range previous {
			_ = p.router.Drain(dctx, addr)
		}
		for _, prevID := range replaced {
			if err := p.rt.Stop(bg, prevID); err != nil {
				p.log.Warn("stop previous release", "deployment", prevID, "err", err)
			}
		}
	}()
	p.svc.ReportStatus(bg, svc, d, forge.StatusSuccess, "live")
	return nil
}

// takeLive marks d live, makes it the Service's live release and marks
// every other live release of the Service replaced, in one transaction.
// Setting the Service's live pointer first locks its row, so two
// pipelines of one Service (two workers, or two replicas) go live one
// after the other and the later one retires the earlier: a Service never
// keeps two live deployments. The snapshot svc was read when the pipeline
// started and may be stale, so the previous releases are read again here.
// It returns the releases replaced, to stop.
func (p *Pipeline) takeLive(ctx context.Context, svc slipway.Service, d slipway.Deployment) ([]string, error) {
	var replaced []string
	err := p.st.InTx(ctx, func(tx *store.Tx) error {
		replaced = replaced[:0]
		if err := tx.SetLiveDeployment(ctx, svc.OrgID, svc.ID, d.ID); err != nil {
			return err
		}
		if _, err := tx.TransitionDeployment(ctx, d.OrgID, d.ID, slipway.DeployLive, ""); err != nil {
			return err
		}
		recent, _, err := tx.ListDeployments(ctx, svc.OrgID, svc.ID, store.Page{Limit: 50})
		if err != nil {
			return err
		}
		for _, o := range recent {
			if o.ID == d.ID || o.Status != slipway.DeployLive {
				continue
			}
			if _, err := tx.TransitionDeployment(ctx, svc.OrgID, o.ID, slipway.DeployReplaced, "replaced by "+d.ID); err != nil {
				return fmt.Errorf("mark previous release %s replaced: %w", o.ID, err)
			}
			replaced = append(replaced, o.ID)
		}
		return nil
	})
	// The release this pipeline found live when it started is stopped
	// too, whatever its status now (stopping a stopped one is harmless).
	if prev := svc.LiveDeploymentID; err == nil && prev != "" && prev != d.ID && !slices.Contains(replaced, prev) {
		replaced = append(replaced, prev)
	}
	return replaced, err
}

// Act restarts or stops a Service's current release (a job body).
// Restart stops the process and starts it again from the cached build
// (a brief gap: the process runtime keys a release by its deployment);
// stop removes the Service's hosts from the router first, then stops it.
func (p *Pipeline) Act(ctx context.Context, orgID, serviceID, action string) error {
	svc, err := p.st.GetService(ctx, orgID, serviceID)
	if err != nil || svc.LiveDeploymentID == "" {
		return nil
	}
	d, err := p.st.GetDeployment(ctx, orgID, svc.LiveDeploymentID)
	if err != nil {
		return err
	}
	logs := newLogWriter(ctx, p.st, d.ID, p.logLimits)
	defer logs.Close()
	switch action {
	case service.ActionStop:
		if d.Status != slipway.DeployLive {
			return nil
		}
		p.router.RemoveOwner(svc.ID)
		if err := p.rt.Stop(ctx, d.ID); err != nil {
			return err
		}
		fmt.Fprintln(logs, "==> stopped")
		_, err = p.st.TransitionDeployment(ctx, orgID, d.ID, slipway.DeployStopped, "stopped")
		return err
	case service.ActionRestart:
		if d.Status == slipway.DeployLive {
			if err := p.rt.Stop(ctx, d.ID); err != nil {
				return err
			}
		}
		if d.Status == slipway.DeployStopped {
			if _, err := p.st.TransitionDeployment(ctx, orgID, d.ID, slipway.DeployLive, ""); err != nil {
				return err
			}
		}
		fmt.Fprintln(logs, "==> restarting")
		return p.restore(ctx, d)
	}
	return fmt.Errorf("unknown release action %q", action)
}

// hosts are the host names a Service holds and may be routed at.
func (p *Pipeline) hosts(ctx context.Context, svc slipway.Service) ([]string, error) {
	return p.svc.RoutableHosts(ctx, svc)
}

// SyncRoutes makes the router's entries for a Service exactly the hosts it
// holds now (after a domain was added or removed, or a rename): released
// hosts stop answering at once, new ones are routed to the live release.
// The Service's routing settings (body limit, HSTS) take effect with it.
func (p *Pipeline) SyncRoutes(ctx context.Context, orgID, serviceID string) error {
	svc, err := p.st.GetService(ctx, orgID, serviceID)
	if err != nil {
		if slipway.ErrorCodeOf(err) == slipway.ECodeNotFound {
			p.router.RemoveOwner(serviceID)
			return nil
		}
		return err
	}
	hosts, err := p.hosts(ctx, svc)
	if err != nil {
		return err
	}
	p.router.SetSettings(svc.ID, router.SettingsOf(svc))
	p.router.Retain(svc.ID, hosts)
	if inst, ok := p.router.Routed(svc.ID); ok {
		if _, refused := p.router.Switch(svc.ID, hosts, inst); len(refused) > 0 {
			p.log.Warn("hosts held by this service are routed to another", "service", svc.ID, "hosts", refused)
		}
	}
	return nil
}

// Recover runs at start. Deployments left mid-way by a crash are marked
// failed with that reason (their next deploy works as usual), and live
// releases of the process runtime, which died with the previous process,
// are started again from their build and routed.
func (p *Pipeline) Recover(ctx context.Context) error {
	if err := p.FailAbandoned(ctx); err != nil {
		return err
	}
	// Queued deployments may have lost their job with the previous
	// process; a second job is harmless (see Run).
	queued, err := p.st.ListDeploymentsByStatus(ctx, slipway.DeployQueued)
	if err != nil {
		return err
	}
	for _, d := range queued {
		if err := p.svc.RequeueDeployment(ctx, d.OrgID, d.ID); err != nil {
			p.log.Warn("requeue deployment", "deployment", d.ID, "err", err)
		}
	}
	live, err := p.st.ListDeploymentsByStatus(ctx, slipway.DeployLive)
	if err != nil {
		return err
	}
	for _, d := range live {
		if err := p.restore(ctx, d); err != nil {
			p.log.Warn("restore live release", "deployment", d.ID, "err", err)
		}
	}
	return nil
}

// FailAbandoned fails the deployments whose worker stopped sending
// heartbeats (its process was killed or its machine lost), with the phase
// it was in. Only silent deployments are touched, so a replica starting
// next to another never fails that replica's running work.
func (p *Pipeline) FailAbandoned(ctx context.Context) error {
	stuck, err := p.st.ListAbandonedDeployments(ctx, time.Now().Add(-abandonAfter))
	if err != nil {
		return err
	}
	for _, d := range stuck {
		msg := fmt.Sprintf("Slipway stopped during the %s phase; deploy again", d.Status)
		if _, err := p.st.TransitionDeployment(ctx, d.OrgID, d.ID, slipway.DeployFailed, msg); err != nil {
			p.log.Warn("fail interrupted deployment", "deployment", d.ID, "err", err)
			continue
		}
		p.log.Info("failed interrupted deployment", "deployment", d.ID, "phase", d.Status)
	}
	return nil
}

// restore starts a live release again and routes it: the build is cached
// per (Service, SHA), so this fetches nothing.
func (p *Pipeline) restore(ctx context.Context, d slipway.Deployment) error {
	svc, err := p.st.GetService(ctx, d.OrgID, d.ServiceID)
	if err != nil {
		return err
	}
	if svc.LiveDeploymentID != d.ID {
		return nil
	}
	logs := newLogWriter(ctx, p.st, d.ID, p.logLimits)
	defer logs.Close()
	env, err := p.svc.ServiceEnv(ctx, svc)
	if err != nil {
		return err
	}
	rel := runtime.Release{ServiceID: svc.ID, DeploymentID: d.ID, Env: withPlatformEnv(env.Values, svc, d), HealthPath: svc.Build.HealthPath, Replicas: svc.Build.Replicas, Image: svc.Image}
	if _, ok := p.rt.(ImageBuilder); ok && svc.Type == slipway.ServiceApp {
		// The image of the commit was built when it was deployed.
		rel.Image = imageTag(svc.ID, d.CommitSHA)
	} else if svc.Type == slipway.ServiceApp {
		src, err := p.svc.CloneSourceFor(ctx, svc)
		if err != nil {
			return err
		}
		res, err := p.builder.Build(ctx, build.Request{ServiceID: svc.ID, DeploymentID: d.ID, Settings: svc.Build, Env: env.Values,
			Source: clone.Options{URL: src.Creds.URL, Username: src.Creds.Username, Password: src.Creds.Password, SSHKey: src.Creds.SSHKey,
				SHA: d.CommitSHA, RootDir: svc.Source.RootDir}}, logs)
		if err != nil {
			return err
		}
		rel.Dir, rel.Command, rel.User = res.Dir, firstNonEmpty(svc.Build.StartCommand, res.StartCommand), res.User
		if rel.Env == nil {
			rel.Env = map[string]string{}
		}
		if res.Home != "" {
			rel.Env["HOME"] = res.Home
		}
	}
	fmt.Fprintln(logs, "==> restarting the live release after a Slipway restart")
	inst, err := p.rt.Start(ctx, rel, logs)
	if err != nil {
		return err
	}
	hosts, err := p.hosts(ctx, svc)
	if err != nil {
		return err
	}
	p.router.SetSettings(svc.ID, router.SettingsOf(svc))
	p.router.Switch(svc.ID, hosts, inst)
	return nil
}

// withPlatformEnv adds what Slipway tells every release about itself, so
// an app can report the commit it runs.
func withPlatformEnv(vars map[string]string, svc slipway.Service, d slipway.Deployment) map[string]string {
	out := make(map[string]string, len(vars)+3)
	for k, v := range vars {
		out[k] = v
	}
	out["SLIPWAY_COMMIT_SHA"] = d.CommitSHA
	out["SLIPWAY_DEPLOYMENT_ID"] = d.ID
	out["SLIPWAY_SERVICE"] = svc.Name
	return out
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// DefaultKeep is how many finished builds (and images) of a Service are
// kept besides the live one, for rollbacks without a rebuild
// (--builds-kept).
const DefaultKeep = 3

// SetKeep sets how many finished builds and images are kept per Service
// besides the live one; at least one, since the release just replaced is
// still draining from its build.
func (p *Pipeline) SetKeep(n int) { p.keep = max(n, 1) }

// ImagePruner is implemented by image runtimes that can remove a
// Service's older images.
type ImagePruner interface {
	PruneImages(ctx context.Context, repo string, inUse []string, keep int) (int, error)
}

// prune removes the Service's builds or images beyond the live release
// and the newest kept others, once the new release is live. It is
// best-effort: what it cannot remove now goes with the next deploy.
func (p *Pipeline) prune(ctx context.Context, svc slipway.Service, live runtime.Release, logs io.Writer) {
	keep := p.keep
	if keep == 0 {
		keep = DefaultKeep
	}
	ctx = context.WithoutCancel(ctx)
	if ip, ok := p.rt.(ImagePruner); ok && live.Image != "" && svc.Type == slipway.ServiceApp {
		n, err := ip.PruneImages(ctx, strings.SplitN(imageTag(svc.ID, "x"), ":", 2)[0], []string{live.Image}, keep)
		if err != nil {
			p.log.Warn("remove old images", "service", svc.ID, "err", err)
		}
		if n > 0 {
			fmt.Fprintf(logs, "removed %d older images of this service (keeping the live one and %d more)\n", n, keep)
		}
		return
	}
	if live.Dir == "" {
		return
	}
	pruned, err := p.builder.Prune(ctx, svc.ID, []string{live.Dir}, keep)
	if err != nil {
		p.log.Warn("remove old builds", "service", svc.ID, "err", err)
	}
	if pruned.Builds > 0 {
		fmt.Fprintf(logs, "removed %d older builds of this service, %.1f MiB (keeping the live one and %d more)\n",
			pruned.Builds, float64(pruned.Bytes)/(1<<20), keep)
	}
}

// ImageRemover is implemented by image runtimes that can remove every
// image of a deleted Service.
type ImageRemover interface {
	RemoveImages(ctx context.Context, repo string) error
}

// Retire tears down a Service being deleted (service.Releases): its
// routes leave the router, its deployments running here are cancelled,
// its releases stopped (the cgroup takes whatever they detached), its
// images removed, and its builds, caches, workspace and user deleted.
func (p *Pipeline) Retire(ctx context.Context, svc slipway.Service) error {
	p.router.RemoveOwner(svc.ID)
	recent, _, err := p.st.ListDeployments(ctx, svc.OrgID, svc.ID, store.Page{Limit: 100})
	if err != nil {
		return err
	}
	ids := []string{}
	if svc.LiveDeploymentID != "" {
		ids = append(ids, svc.LiveDeploymentID)
	}
	p.mu.Lock()
	for _, d := range recent {
		if cancel, ok := p.running[d.ID]; ok {
			cancel()
		}
		if d.ID != svc.LiveDeploymentID && (d.Status == slipway.DeployLive || d.Status == slipway.DeployReplaced || d.Status == slipway.DeployDeploying) {
			ids = append(ids, d.ID)
		}
	}
	p.mu.Unlock()
	var errs []error
	for _, id := range ids {
		if err := p.rt.Stop(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("stop release %s: %w", id, err))
		}
	}
	if ir, ok := p.rt.(ImageRemover); ok && svc.Type == slipway.ServiceApp {
		if err := ir.RemoveImages(ctx, strings.SplitN(imageTag(svc.ID, "x"), ":", 2)[0]); err != nil {
			errs = append(errs, err)
		}
	}
	if err := p.builder.RemoveService(ctx, svc.ID); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// submoduleCredentials is the fetch's source of submodule credentials: nil
// (none) unless the Service allows them; each one handed out is masked in
// the log like the parent's.
func (p *Pipeline) submoduleCredentials(svc slipway.Service, parentURL string, logs *logWriter) func(ctx context.Context, url string) (string, string, bool, error) {
	if !svc.Build.SubmoduleCredentials {
		return nil
	}
	return func(ctx context.Context, url string) (string, string, bool, error) {
		user, pass, ok, err := p.svc.SubmoduleCredentials(ctx, svc, parentURL, url)
		logs.addSecret(pass)
		return user, pass, ok, err
	}
}
