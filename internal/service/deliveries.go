package service

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/store"
)

// Delivery verdicts.
const (
	VerdictReceived  = "received"
	VerdictProcessed = "processed"
	VerdictIgnored   = "ignored"
	VerdictSkipped   = "skipped"
	VerdictFailed    = "failed"
)

// ReceiveResult is what the receiver answers.
type ReceiveResult struct {
	DeliveryID string `json:"delivery_id"`
	Verdict    string `json:"verdict"`
	Duplicate  bool   `json:"duplicate,omitempty"`
}

// headersToKeep are the delivery headers worth showing in the delivery log.
// Signature and authorization headers are never stored.
var headersToKeep = []string{"X-GitHub-Event", "X-GitHub-Delivery", "X-Gitea-Event", "X-Gitea-Delivery", "X-Forgejo-Event",
	"X-Forgejo-Delivery", "X-Gitlab-Event", "X-Gitlab-Event-UUID", "X-Event-Key", "X-Request-UUID", "X-Hook-UUID", "User-Agent", "Content-Type"}

// HookTarget is where a delivery goes: its integration, parser, secret and
// repository hook, resolved from the URL before the body is read, so a
// request for nothing costs nothing.
type HookTarget struct {
	integ  slipway.Integration
	parser forge.HookParser
	secret string
	hook   *store.RepoHook
}

// Key names the target for per-hook limits: the integration and hook.
func (t *HookTarget) Key() string {
	if t.hook != nil {
		return t.integ.ID + "/" + t.hook.ID
	}
	return t.integ.ID
}

// IntegrationID is the target's integration.
func (t *HookTarget) IntegrationID() string { return t.integ.ID }

// ResolveHook finds the target a delivery URL names. source is the
// sender's address, kept in the refusal log when the hook is unknown.
func (s *Service) ResolveHook(ctx context.Context, provider slipway.Provider, integrationID, hookID, source string) (*HookTarget, error) {
	integ, err := s.store.GetIntegrationAnyOrg(ctx, integrationID)
	if err != nil || integ.Provider != provider {
		return nil, slipway.NotFound("integration", integrationID)
	}
	parser, ok := s.forges[provider].(forge.HookParser)
	if !ok {
		return nil, slipway.NotFound("webhook receiver", string(provider))
	}
	secret, hook, err := s.hookSecret(ctx, integ, hookID)
	if err != nil {
		if slipway.ErrorCodeOf(err) == slipway.ECodeBadSignature {
			s.refusals.record(integ.ID, Refusal{At: s.now().UTC(), Source: source, Hook: hookID, Reason: "no secret for this hook"})
		}
		return nil, err
	}
	return &HookTarget{integ: integ, parser: parser, secret: secret, hook: hook}, nil
}

// ReceiveDelivery resolves the target and accepts the delivery (for
// callers that hold the whole body already).
func (s *Service) ReceiveDelivery(ctx context.Context, provider slipway.Provider, integrationID, hookID string, header http.Header, body []byte) (ReceiveResult, error) {
	t, err := s.ResolveHook(ctx, provider, integrationID, hookID, "")
	if err != nil {
		return ReceiveResult{}, err
	}
	return s.AcceptDelivery(ctx, t, "", header, body, true)
}

// AcceptDelivery verifies a webhook delivery on its raw bytes, persists it
// (deduplicated on the provider's delivery id) and enqueues its processing
// in the same transaction. It does no other work, so the provider gets its
// answer fast. A bad or missing signature leaves only a count and an entry
// in the bounded refusal log (time, source, reason; never the body);
// countDurably=false (the receiver's per-hook limit is spent) skips the
// database counter so a flood cannot turn into writes. An ignored event
// keeps its headers and verdict, not its body.
func (s *Service) AcceptDelivery(ctx context.Context, t *HookTarget, source string, header http.Header, body []byte, countDurably bool) (ReceiveResult, error) {
	integ, parser, secret, hook := t.integ, t.parser, t.secret, t.hook
	var err error
	var events []slipway.Event
	var perr error
	if mp, ok := parser.(forge.MultiHookParser); ok {
		events, perr = mp.ParseHookEvents(header, body, secret)
	} else {
		var ev slipway.Event
		ev, perr = parser.ParseHook(header, body, secret)
		events = []slipway.Event{ev}
	}
	if perr == nil && len(events) == 0 {
		perr = forge.ErrIgnored
	}
	var ev slipway.Event
	if len(events) > 0 {
		ev = events[0]
	}
	if errors.Is(perr, forge.ErrBadSignature) {
		hookID := ""
		if hook != nil {
			hookID = hook.ID
		}
		s.refusals.record(integ.ID, Refusal{At: s.now().UTC(), Source: source, Hook: hookID, Reason: "signature missing or invalid"})
		if countDurably {
			if err := s.store.IncrementBadSignatures(ctx, integ.ID); err != nil {
				s.log.Warn("count bad signature", "err", err)
			}
		}
		return ReceiveResult{}, slipway.Errorf(slipway.ECodeBadSignature, "webhook signature missing or invalid")
	}
	d := &store.Delivery{ID: slipway.NewID(slipway.PrefixDelivery), OrgID: integ.OrgID, IntegrationID: integ.ID,
		Headers: map[string]string{}, Body: body, ReceivedAt: s.now().UTC()}
	for _, h := range headersToKeep {
		if v := header.Get(h); v != "" {
			d.Headers[h] = v
		}
	}
	d.ProviderDeliveryID = firstNonEmpty(ev.DeliveryID, header.Get("X-GitHub-Delivery"), header.Get("X-Gitea-Delivery"), header.Get("X-Gitlab-Event-UUID"), header.Get("X-Request-UUID"))
	switch {
	case errors.Is(perr, forge.ErrIgnored):
		d.Event, d.Verdict, d.Detail = eventHeader(header), VerdictIgnored, "Slipway does not act on this event"
		d.Body = nil // nothing will ever read it; a flood of pings must not fill the disk
	case perr != nil:
		d.Event, d.Verdict, d.Detail = eventHeader(header), VerdictFailed, "malformed payload: "+perr.Error()
	default:
		for _, e := range events {
			if hook != nil && e.Repo.ID != "" && e.Repo.ID != hook.RepoID {
				return ReceiveResult{}, slipway.Errorf(slipway.ECodeForbidden, "the delivery's repository does not belong to this webhook")
			}
		}
		d.Event, d.Verdict = string(ev.Kind), VerdictReceived
		if d.Normalized, err = json.Marshal(events); err != nil {
			return ReceiveResult{}, err
		}
	}
	res := ReceiveResult{DeliveryID: d.ID, Verdict: d.Verdict}
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		created, err := tx.InsertDelivery(ctx, d)
		if err != nil {
			return err
		}
		if !created {
			res = ReceiveResult{DeliveryID: d.ID, Verdict: d.Verdict, Duplicate: true}
			return nil
		}
		if d.Verdict == VerdictReceived {
			return s.jobs.EnqueueDelivery(ctx, tx, d.OrgID, d.ID)
		}
		return nil
	})
	if err != nil {
		return ReceiveResult{}, fmt.Errorf("persist delivery: %w", err)
	}
	// Hook health needs minute precision, not a second durable write on
	// every delivery.
	if hook != nil && (hook.Status != "active" || hook.LastDeliveryAt == nil || d.ReceivedAt.Sub(*hook.LastDeliveryAt) > time.Minute) {
		hook.LastDeliveryAt = &d.ReceivedAt
		hook.Status, hook.LastError = "active", ""
		if err := s.store.UpdateRepoHook(ctx, hook); err != nil {
			s.log.Warn("update hook health", "err", err)
		}
	}
	return res, nil
}

func eventHeader(h http.Header) string {
	return firstNonEmpty(h.Get("X-GitHub-Event"), h.Get("X-Gitea-Event"), h.Get("X-Forgejo-Event"), h.Get("X-Gitlab-Event"), h.Get("X-Event-Key"), "unknown")
}

// hookSecret finds the secret a delivery must be signed with: the
// repository hook's own secret, or the GitHub App's webhook secret.
func (s *Service) hookSecret(ctx context.Context, integ slipway.Integration, hookID string) (string, *store.RepoHook, error) {
	if hookID == "" {
		sec, err := s.openSecret(ctx, integ.OrgID, integ.ID)
		if err != nil {
			return "", nil, err
		}
		if sec.WebhookSecret == "" {
			// Nothing can be verified: refuse rather than accept unsigned.
			return "", nil, slipway.Errorf(slipway.ECodeBadSignature, "webhook signature missing or invalid")
		}
		return sec.WebhookSecret, nil, nil
	}
	hooks, err := s.store.ListRepoHooks(ctx, integ.OrgID, integ.ID)
	if err != nil {
		return "", nil, err
	}
	for i := range hooks {
		if hooks[i].ID == hookID {
			raw, err := s.keys.Open(hooks[i].SecretCiphertext, []byte("hook:"+integ.ID+":"+hooks[i].RepoID))
			if err != nil {
				return "", nil, fmt.Errorf("open hook secret: %w", err)
			}
			return string(raw), &hooks[i], nil
		}
	}
	return "", nil, slipway.Errorf(slipway.ECodeBadSignature, "webhook signature missing or invalid")
}

// ProcessDelivery carries out what a received delivery causes. It is the
// body of a job, so it may run more than once: every effect is idempotent
// (deployments are deduplicated per Service and SHA).
func (s *Service) ProcessDelivery(ctx context.Context, orgID, deliveryID string) error {
	d, err := s.store.GetDelivery(ctx, orgID, deliveryID)
	if err != nil {
		return err
	}
	events, err := decodeEvents(d.Normalized)
	if err != nil {
		return s.store.UpdateDeliveryVerdict(ctx, orgID, d.ID, VerdictFailed, "stored event is unreadable: "+err.Error(), nil)
	}
	integ, err := s.store.GetIntegration(ctx, orgID, d.IntegrationID)
	if err != nil {
		return err
	}
	// One delivery may carry several ref updates: apply each, and record
	// the strongest verdict (processed > skipped > ignored).
	rank := map[string]int{VerdictIgnored: 0, VerdictSkipped: 1, VerdictProcessed: 2}
	verdict, details, caused := VerdictIgnored, []string{}, []string{}
	for _, ev := range events {
		target, err := s.routeToInstallation(ctx, integ, ev)
		if err != nil {
			return err
		}
		v, detail, c, err := s.applyEvent(ctx, target, d, ev)
		if err != nil {
			return fmt.Errorf("process delivery %s: %w", d.ID, err)
		}
		if rank[v] > rank[verdict] {
			verdict = v
		}
		if detail != "" {
			details = append(details, detail)
		}
		caused = append(caused, c...)
	}
	return s.store.UpdateDeliveryVerdict(ctx, orgID, d.ID, verdict, strings.Join(details, "; "), caused)
}

// decodeEvents reads a delivery's stored events: a JSON array (one event
// per ref update), or a single object as stored by earlier versions.
func decodeEvents(raw []byte) ([]slipway.Event, error) {
	var events []slipway.Event
	if err := json.Unmarshal(raw, &events); err == nil {
		return events, nil
	}
	var ev slipway.Event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, err
	}
	return []slipway.Event{ev}, nil
}

func (s *Service) applyEvent(ctx context.Context, integ slipway.Integration, d store.Delivery, ev slipway.Event) (verdict, detail string, caused []string, err error) {
	switch ev.Kind {
	case slipway.EventPush, slipway.EventTag:
		return s.applyPush(ctx, integ, d, ev)
	case slipway.EventBranchDeleted:
		return VerdictProcessed, "branch " + ev.Push.Branch + " deleted; Services following it will fail to deploy until relinked", nil, nil
	case slipway.EventRepositoryChanged:
		if err := s.store.UpdateRepoName(ctx, integ.OrgID, integ.ID, ev.Repo.ID, ev.Repo.FullName); err != nil {
			return "", "", nil, err
		}
		return VerdictProcessed, "repository is now " + ev.Repo.FullName, nil, nil
	case slipway.EventInstallationChanged:
		return s.applyInstallation(ctx, integ, ev.Install)
	default:
		return VerdictIgnored, "Slipway does not act on " + string(ev.Kind) + " events", nil, nil
	}
}

// applyPush deploys every Service that follows the pushed branch or tag.
func (s *Service) applyPush(ctx context.Context, integ slipway.Integration, d store.Delivery, ev slipway.Event) (string, string, []string, error) {
	p := ev.Push
	if p == nil || p.Deleted {
		return VerdictProcessed, "ref deleted", nil, nil
	}
	svcs, _, err := s.store.ListServices(ctx, integ.OrgID, store.ServiceFilter{IntegrationID: integ.ID, RepoID: ev.Repo.ID}, store.Page{Limit: 200})
	if err != nil {
		return "", "", nil, err
	}
	var notes, caused []string
	var head slipway.Commit
	matched := 0
	for _, svc := range svcs {
		if !follows(svc.Source, p) {
			continue
		}
		matched++
		if head.SHA == "" {
			if head, err = s.pinPushed(ctx, integ, ev.Repo, p); err != nil {
				return "", "", nil, err
			}
		}
		dep, note, _, err := s.autoDeploy(ctx, integ, svc, head.SHA, p.Ref, head, ev.Kind, "delivery:"+d.ID, p)
		if err != nil {
			return "", "", nil, err
		}
		notes = append(notes, svc.Name+": "+note)
		if dep != "" {
			caused = append(caused, dep)
		}
	}
	if matched == 0 {
		return VerdictIgnored, "no Service follows " + p.Ref, nil, nil
	}
	verdict := VerdictProcessed
	if len(caused) == 0 {
		verdict = VerdictSkipped
	}
	return verdict, strings.Join(notes, "; "), caused, nil
}

// pinPushed is the rule every automatic deployment follows: it pins the
// commit the pushed ref points at, peeled, never a tag object. Providers
// put the peeled commit in Head when their payload has it (GitHub's
// head_commit, GitLab's checkout_sha, Gitea's head_commit); otherwise
// (Azure DevOps tags) the provider's API resolves the tag, as a manual
// deploy of the same tag would, so both pin the same commit.
func (s *Service) pinPushed(ctx context.Context, integ slipway.Integration, repo slipway.RepoRef, p *slipway.PushEvent) (slipway.Commit, error) {
	if p.Head.SHA != "" {
		return p.Head, nil
	}
	name := firstNonEmpty(p.Tag, p.Branch)
	commit, err := s.resolveRef(ctx, integ.OrgID, integ.ID, forge.Repo{ID: repo.ID, FullName: repo.FullName, CloneURL: repo.CloneURL}, name)
	if err != nil {
		return slipway.Commit{}, fmt.Errorf("pin the commit of %s: %w", p.Ref, err)
	}
	return commit, nil
}

// follows reports whether a Service's source tracks the pushed ref.
func follows(src slipway.ServiceSource, p *slipway.PushEvent) bool {
	switch {
	case src.Branch != "":
		return p.Branch == src.Branch
	case src.Tag != "":
		return p.Tag == src.Tag
	case src.TagPattern != "":
		ok, _ := path.Match(src.TagPattern, p.Tag)
		return p.Tag != "" && ok
	}
	return false
}

// autoDeploy decides whether a new head deploys a Service, and queues the
// deployment (deduplicated per Service and SHA) when it does. push is nil
// when the reconciler found the head. It returns the deployment id ("" when
// nothing was deployed) and a note for the delivery log.
func (s *Service) autoDeploy(ctx context.Context, integ slipway.Integration, svc slipway.Service, sha, ref string, head slipway.Commit, kind slipway.EventKind, by string, push *slipway.PushEvent) (depID, note string, created bool, err error) {
	markSeen := func() error { return s.store.SetServiceLastSeenHead(ctx, svc.OrgID, svc.ID, sha) }
	switch {
	case !svc.Source.AutoDeploy:
		return "", "new commit " + slipway.ShortSHA(sha) + " available (auto-deploy is off)", false, markSeen()
	case svc.AutoDeployPaused:
		return "", "new commit " + slipway.ShortSHA(sha) + " available (auto-deploy paused after a rollback)", false, markSeen()
	case slipway.SkipRequested(head.Message):
		return "", "skipped: the commit message asks not to deploy", false, markSeen()
	}
	if id := s.deployingNow(ctx, svc, sha); id != "" {
		// Deployed by hand (or a hook, or an earlier delivery) a moment
		// before this: the same commit is not deployed twice.
		return id, "already deploying " + slipway.ShortSHA(sha) + " as " + id, false, markSeen()
	}
	if len(svc.Source.WatchPaths) > 0 {
		files, known := s.changedFiles(ctx, integ, svc, push, sha)
		if known && !anyMatch(svc.Source.WatchPaths, svc.Source.RootDir, files) {
			return "", "skipped: no change under the watch paths", false, markSeen()
		}
	}
	trigger := slipway.TriggerPush
	if kind == slipway.EventTag {
		trigger = slipway.TriggerTag
	}
	if push == nil {
		trigger = slipway.TriggerReconcile
	}
	dep := slipway.Deployment{OrgID: svc.OrgID, ServiceID: svc.ID, Trigger: trigger, TriggeredBy: by, CommitSHA: sha, Ref: ref,
		CommitMessage: head.Message, CommitAuthor: head.Author, IntegrationID: integ.ID}
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		var err error
		created, err = s.createDeploymentTx(ctx, tx, &dep, autoDedupeKey(svc.ID, sha))
		if err != nil {
			return err
		}
		return tx.SetServiceLastSeenHead(ctx, svc.OrgID, svc.ID, sha)
	})
	if err != nil {
		return "", "", false, err
	}
	if !created {
		// Seen before (a redelivery, a replay, the reconciler after the
		// webhook): the existing deployment is what this delivery caused.
		return dep.ID, "already deploying " + slipway.ShortSHA(sha) + " as " + dep.ID, false, nil
	}
	return dep.ID, "deploying " + slipway.ShortSHA(sha) + " as " + dep.ID, true, nil
}

// changedFiles returns the files a push changed: from the compare API when
// the provider has one (payloads truncate their commit lists), else from
// the payload when it is complete. known=false means "cannot tell", and the
// caller deploys.
func (s *Service) changedFiles(ctx context.Context, integ slipway.Integration, svc slipway.Service, push *slipway.PushEvent, head string) ([]string, bool) {
	base := ""
	if push != nil {
		base = push.Before
	} else if svc.LiveDeploymentID != "" {
		if live, err := s.store.GetDeployment(ctx, svc.OrgID, svc.LiveDeploymentID); err == nil {
			base = live.CommitSHA
		}
	}
	if cmp, ok := s.forges[integ.Provider].(forge.Comparer); ok && base != "" && strings.Trim(base, "0") != "" {
		if c, err := s.conn(ctx, integ); err == nil {
			files, err := cmp.ChangedFiles(ctx, c, forge.Repo{ID: svc.Source.RepoID, FullName: svc.Source.RepoName}, base, head)
			if err == nil {
				return files, true
			}
			s.log.Warn("compare commits for watch paths", "service", svc.ID, "err", err)
		}
	}
	if push != nil && push.ChangedFilesComplete {
		return push.ChangedFiles, true
	}
	return nil, false
}

// anyMatch reports whether any file matches any watch glob. Globs are
// relative to the Service's root directory; "dir/**" matches everything
// under dir.
func anyMatch(globs []string, rootDir string, files []string) bool {
	root := strings.Trim(rootDir, "/")
	for _, f := range files {
		rel := f
		if root != "" {
			if !strings.HasPrefix(f, root+"/") {
				continue
			}
			rel = strings.TrimPrefix(f, root+"/")
		}
		for _, g := range globs {
			if strings.HasSuffix(g, "/**") {
				if strings.HasPrefix(rel, strings.TrimSuffix(g, "**")) {
					return true
				}
				continue
			}
			if ok, _ := path.Match(g, rel); ok {
				return true
			}
			if ok, _ := path.Match(g, path.Base(rel)); ok && !strings.Contains(g, "/") {
				return true
			}
		}
	}
	return false
}

// notThisInstallation is the detail of an installation event that names
// an installation other than the integration's: it says nothing of whether
// that installation exists or whose it is.
const notThisInstallation = "the event names an installation this integration does not hold"

// applyInstallation updates a GitHub App integration after an installation
// event. integ is the integration routeToInstallation chose, within the
// receiving integration's organisation and App; an event for any other
// installation is ignored. The one exception is an integration still
// without an installation, which adopts the one an installation.created
// names once GitHub confirms it (App JWT) as an installation of its App.
func (s *Service) applyInstallation(ctx context.Context, integ slipway.Integration, in *slipway.InstallEvent) (verdict, detail string, caused []string, err error) {
	if in == nil || in.InstallationID == "" {
		return VerdictIgnored, "no installation details", nil, nil
	}
	if in.InstallationID != integ.ExternalID {
		if integ.ExternalID != "" || in.Action != slipway.InstallCreated || !s.isAppInstallation(ctx, integ, in.InstallationID) {
			return VerdictIgnored, notThisInstallation, nil, nil
		}
		integ.ExternalID = in.InstallationID
	}
	integ.UpdatedAt = s.now().UTC()
	switch in.Action {
	case slipway.InstallCreated, slipway.InstallUnsuspended, slipway.InstallNewPermissions:
		integ.Status, integ.StatusReason, integ.StatusFix = slipway.IntegrationConnected, "", ""
		if in.RepoSelection != "" {
			integ.RepoSelection = in.RepoSelection
		}
		detail = "installation " + string(in.Action)
	case slipway.InstallDeleted:
		integ.Status, integ.StatusReason, integ.StatusFix = slipway.IntegrationDisconnected, "the GitHub App was uninstalled", "install the App again and reconnect"
		detail = "installation deleted"
	case slipway.InstallSuspended:
		integ.Status, integ.StatusReason, integ.StatusFix = slipway.IntegrationNeedsAttention, "the GitHub App installation is suspended", "unsuspend the installation in the account's GitHub settings"
		detail = "installation suspended"
	case slipway.InstallReposAdded, slipway.InstallReposRemoved:
		var add []forge.Repo
		var remove []string
		for _, r := range in.ReposAdded {
			add = append(add, forge.Repo{ID: r.ID, FullName: r.FullName, CloneURL: r.CloneURL, Private: r.Private})
		}
		for _, r := range in.ReposRemoved {
			remove = append(remove, r.ID)
		}
		if len(add) > 0 {
			if err := s.store.AddIntegrationRepos(ctx, integ.OrgID, integ.ID, add); err != nil {
				return "", "", nil, err
			}
		}
		if len(remove) > 0 {
			if err := s.store.RemoveIntegrationRepos(ctx, integ.OrgID, integ.ID, remove); err != nil {
				return "", "", nil, err
			}
		}
		if in.RepoSelection != "" {
			integ.RepoSelection = in.RepoSelection
		}
		detail = fmt.Sprintf("%d repositories added, %d removed", len(add), len(remove))
	}
	return VerdictProcessed, detail, nil, s.store.UpdateIntegration(ctx, &integ)
}

// isAppInstallation asks GitHub, with the JWT of integ's App, whether
// installationID is an installation of that App.
func (s *Service) isAppInstallation(ctx context.Context, integ slipway.Integration, installationID string) bool {
	flow, err := s.gitHubFlow()
	if err != nil || integ.Provider != slipway.ProviderGitHub {
		return false
	}
	sec, err := s.openSecret(ctx, integ.OrgID, integ.ID)
	if err != nil || sec.AppID == "" || sec.PrivateKey == "" {
		return false
	}
	probe := integ
	probe.ExternalID = installationID
	id, _, _, err := flow.VerifyAppInstallation(ctx, &forge.Conn{Integration: probe, Secret: sec})
	if err != nil {
		s.log.Info("installation event for an installation the App's JWT cannot confirm", "integration", integ.ID, "err", err)
		return false
	}
	return id == installationID
}

// ListDeliveries is an integration's delivery log.
func (s *Service) ListDeliveries(ctx context.Context, a Actor, integrationID string, p store.Page) ([]store.Delivery, int, error) {
	if err := a.can(slipway.ResIntegrations, slipway.ActRead); err != nil {
		return nil, 0, err
	}
	if _, err := s.store.GetIntegration(ctx, a.OrgID, integrationID); err != nil {
		return nil, 0, err
	}
	return s.store.ListDeliveries(ctx, a.OrgID, integrationID, p)
}

// ReplayDelivery processes a stored delivery again. Deployments stay
// deduplicated, so a replay of an already-deployed push changes nothing.
func (s *Service) ReplayDelivery(ctx context.Context, a Actor, integrationID, deliveryID string) (store.Delivery, error) {
	if err := a.can(slipway.ResIntegrations, slipway.ActUpdate); err != nil {
		return store.Delivery{}, err
	}
	d, err := s.store.GetDelivery(ctx, a.OrgID, deliveryID)
	if err != nil || d.IntegrationID != integrationID {
		return store.Delivery{}, slipway.NotFound("delivery", deliveryID)
	}
	if len(d.Normalized) == 0 {
		return d, slipway.Errorf(slipway.ECodeConflict, "delivery %s was %s and has nothing to replay", d.ID, d.Verdict)
	}
	if err := s.ProcessDelivery(ctx, a.OrgID, d.ID); err != nil {
		return store.Delivery{}, err
	}
	return s.store.GetDelivery(ctx, a.OrgID, d.ID)
}

// Reconcile resolves what every auto-deploy Service follows (its branch
// head, its tag, or the newest tag matching its pattern) through the
// provider API and queues a deployment for a commit that was never seen: a
// lost webhook, a downtime, or a push GitLab sends no hook for (more than
// push_event_hooks_limit refs at once) never loses a push. It returns the
// deployments it queued.
func (s *Service) Reconcile(ctx context.Context) ([]string, error) {
	svcs, err := s.store.ListServicesWithAutoDeploy(ctx)
	if err != nil {
		return nil, err
	}
	var queued []string
	for _, svc := range svcs {
		src := svc.Source
		if src.Branch == "" && src.Tag == "" && src.TagPattern == "" || svc.AutoDeployPaused || !src.AutoDeploy {
			continue
		}
		integ, err := s.store.GetIntegration(ctx, svc.OrgID, src.IntegrationID)
		if err != nil || integ.Status != slipway.IntegrationConnected {
			continue
		}
		repo := forge.Repo{ID: src.RepoID, FullName: src.RepoName}
		if l, ok := s.forges[integ.Provider].(forge.RepoLister); ok {
			if c, err := s.conn(ctx, integ); err == nil {
				if r, err := l.GetRepo(ctx, c, src.RepoID); err == nil {
					repo = r
				}
			}
		}
		ref, kind, err := s.followedRef(ctx, integ, svc, repo)
		if err != nil {
			s.log.Warn("reconcile: find the followed ref", "service", svc.ID, "err", err)
			continue
		}
		if ref == "" {
			continue // no tag matches the pattern yet
		}
		// ResolveRef peels annotated tags: the same commit a push pins.
		head, err := s.resolveRef(ctx, svc.OrgID, integ.ID, repo, ref)
		if err != nil {
			s.log.Warn("reconcile: resolve ref", "service", svc.ID, "ref", ref, "err", err)
			continue
		}
		if head.SHA == svc.LastSeenHead || s.deployingNow(ctx, svc, head.SHA) != "" {
			continue
		}
		fullRef := "refs/heads/" + ref
		if kind == slipway.EventTag {
			fullRef = "refs/tags/" + ref
		}
		dep, _, created, err := s.autoDeploy(ctx, integ, svc, head.SHA, fullRef, head, kind, "reconciler", nil)
		if err != nil {
			return queued, err
		}
		if created {
			s.log.Info("reconcile: queued a missed head", "service", svc.ID, "ref", fullRef, "sha", head.SHA, "deployment", dep)
			queued = append(queued, dep)
		}
	}
	return queued, nil
}

// followedRef names the ref a Service follows now: its branch, its tag,
// or the newest tag matching its pattern ("" when none matches yet).
func (s *Service) followedRef(ctx context.Context, integ slipway.Integration, svc slipway.Service, repo forge.Repo) (string, slipway.EventKind, error) {
	src := svc.Source
	switch {
	case src.Branch != "":
		return src.Branch, slipway.EventPush, nil
	case src.Tag != "":
		return src.Tag, slipway.EventTag, nil
	}
	rl, ok := s.forges[integ.Provider].(forge.RefLister)
	if !ok {
		return "", "", slipway.Errorf(slipway.ECodeInvalid, "%s cannot list tags", integ.Provider)
	}
	c, err := s.conn(ctx, integ)
	if err != nil {
		return "", "", err
	}
	refs, err := rl.ListRefs(ctx, c, repo)
	if err != nil {
		s.markNeedsAttention(ctx, integ, err)
		return "", "", err
	}
	var tags []string
	for _, r := range refs {
		if r.Kind == forge.RefTag {
			tags = append(tags, r.Name)
		}
	}
	return NewestMatchingTag(src.TagPattern, tags), slipway.EventTag, nil
}

// NewestMatchingTag is the tag a pattern-following Service runs: of the
// tags matching pattern (path.Match), the greatest in version order, where
// runs of digits compare as numbers (v1.10.0 is newer than v1.9.2, and
// v2 newer than v1.99). Tags that tie (v1.0 and v1.00) fall back to
// plain string order so the choice is stable. "" when none matches.
func NewestMatchingTag(pattern string, tags []string) string {
	best := ""
	for _, t := range tags {
		if ok, _ := path.Match(pattern, t); !ok || t == "" {
			continue
		}
		if best == "" || versionLess(best, t) {
			best = t
		}
	}
	return best
}

// versionLess orders tags by their digit runs as numbers and the text
// between them as strings; equal versions (v1.0, v1.00) by their text.
func versionLess(a, b string) bool {
	if c := versionCompare(a, b); c != 0 {
		return c < 0
	}
	return a < b
}

func versionCompare(a, b string) int {
	// Lexicographic over tokens (runs of digits, runs of other text), each
	// token ranked first: text starting with "-" (a pre-release: v1.0-rc1
	// is older than v1.0) < the end of the tag (v1.0 is older than
	// v1.0.1) < other text < a number. Ranking every
	// token the same way everywhere keeps the order transitive, so the
	// newest tag does not depend on the order tags are listed in.
	for {
		ra, restA := versionToken(a)
		rb, restB := versionToken(b)
		if c := cmp.Compare(tokenRank(ra), tokenRank(rb)); c != 0 {
			return c
		}
		if ra == "" {
			return 0 // both ended
		}
		if isDigits(ra) {
			na, nb := strings.TrimLeft(ra, "0"), strings.TrimLeft(rb, "0")
			if c := cmp.Compare(len(na), len(nb)); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
		} else if c := strings.Compare(ra, rb); c != 0 {
			return c
		}
		a, b = restA, restB
	}
}

// tokenRank orders the kinds of version tokens (see versionCompare).
func tokenRank(tok string) int {
	switch {
	case strings.HasPrefix(tok, "-"):
		return 0
	case tok == "":
		return 1
	case isDigits(tok):
		return 3
	}
	return 2
}

// versionToken splits off the leading run of digits or of non-digits;
// "" at the end.
func versionToken(s string) (tok, rest string) {
	if s == "" {
		return "", ""
	}
	return versionPart(s)
}

// versionPart splits off the leading run of digits, or of non-digits.
func versionPart(s string) (part, rest string) {
	digit := s[0] >= '0' && s[0] <= '9'
	i := 1
	for i < len(s) && (s[i] >= '0' && s[i] <= '9') == digit {
		i++
	}
	return s[:i], s[i:]
}

func isDigits(s string) bool { return s != "" && s[0] >= '0' && s[0] <= '9' }

// RotateDeployHook issues a new deploy-hook URL for a Service, invalidating
// the previous one.
func (s *Service) RotateDeployHook(ctx context.Context, a Actor, serviceRef string) (string, error) {
	if err := a.can(slipway.ResServices, slipway.ActUpdate); err != nil {
		return "", err
	}
	svc, err := s.resolveService(ctx, a.OrgID, serviceRef)
	if err != nil {
		return "", err
	}
	token, hash := newSecretToken("dh_")
	if err := s.store.SetDeployHookToken(ctx, a.OrgID, svc.ID, hash); err != nil {
		return "", err
	}
	return strings.TrimRight(s.cfg.PublicURL, "/") + "/hooks/deploy/" + token, nil
}

// TriggerDeployHook deploys the current head of the Service a deploy-hook
// token belongs to.
func (s *Service) TriggerDeployHook(ctx context.Context, token string) (slipway.Deployment, error) {
	svc, err := s.store.GetServiceByDeployHook(ctx, HashToken(token))
	if err != nil {
		return slipway.Deployment{}, slipway.NotFound("deploy hook", "…")
	}
	return s.deploy(ctx, System(svc.OrgID, "deploy-hook"), svc.ID, DeployInput{}, slipway.TriggerDeployHook)
}

// staleAfter is how long a delivery may wait in the received state before
// the sweeper processes it itself.
const staleAfter = 30 * time.Second

// SweepDeliveries processes deliveries that were acknowledged but whose
// job was lost (the process was killed while running it). Processing is
// idempotent, so a delivery that was merely slow is safe to process again.
func (s *Service) SweepDeliveries(ctx context.Context) error {
	stale, err := s.store.ListStaleDeliveries(ctx, s.now().Add(-staleAfter), 100)
	if err != nil {
		return err
	}
	for _, d := range stale {
		if err := s.ProcessDelivery(ctx, d.OrgID, d.ID); err != nil {
			s.log.Warn("sweep: process delivery", "delivery", d.ID, "err", err)
		}
	}
	return s.PruneDeliveries(ctx)
}

// PruneDeliveries applies the delivery retention policy (run by the
// periodic sweeper on the River leader).
func (s *Service) PruneDeliveries(ctx context.Context) error {
	r := s.cfg.DeliveryRetention
	if r.MaxAge <= 0 {
		r.MaxAge = DefaultDeliveryMaxAge
	}
	if r.KeepPerIntegration <= 0 {
		r.KeepPerIntegration = DefaultDeliveriesKept
	}
	n, err := s.store.PruneDeliveries(ctx, s.now().Add(-r.MaxAge), r.KeepPerIntegration)
	if n > 0 {
		s.log.Info("pruned webhook deliveries", "count", n)
	}
	return err
}

// RequeueDeployment inserts a new pipeline job for a queued deployment
// whose job may have been lost. A duplicate job is harmless: the pipeline
// only advances a deployment that is still queued, with a compare-and-set.
func (s *Service) RequeueDeployment(ctx context.Context, orgID, deploymentID string) error {
	return s.store.InTx(ctx, func(tx *store.Tx) error {
		return s.jobs.EnqueueDeploy(ctx, tx, orgID, deploymentID)
	})
}

// deployingNow returns the Service's newest deployment when it is of sha
// and did not fail: the commit is being (or was) deployed, so another
// trigger for it has nothing to add.
func (s *Service) deployingNow(ctx context.Context, svc slipway.Service, sha string) string {
	latest, err := s.store.LatestDeployment(ctx, svc.OrgID, svc.ID)
	if err != nil || latest.CommitSHA != sha {
		return ""
	}
	switch latest.Status {
	case slipway.DeployFailed, slipway.DeployCancelled, slipway.DeploySuperseded:
		return ""
	}
	return latest.ID
}
