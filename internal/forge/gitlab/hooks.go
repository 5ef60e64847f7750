package gitlab

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
)

// InstallHook implements forge.HookInstaller: a project webhook for push
// and tag push events that carries the per-hook secret in X-Gitlab-Token.
func (p *Provider) InstallHook(ctx context.Context, c *forge.Conn, repo forge.Repo, hook forge.HookConfig) (string, error) {
	cl, err := p.client(ctx, c)
	if err != nil {
		return "", err
	}
	h, resp, err := cl.Projects.AddProjectHook(repo.ID, &gl.AddProjectHookOptions{
		Name:                  gl.Ptr("Slipway"),
		URL:                   gl.Ptr(hook.URL),
		Token:                 gl.Ptr(hook.Secret),
		PushEvents:            gl.Ptr(true),
		TagPushEvents:         gl.Ptr(true),
		MergeRequestsEvents:   gl.Ptr(false),
		EnableSSLVerification: gl.Ptr(true),
	}, gl.WithContext(ctx))
	if err != nil {
		return "", apiError("create project hook", resp, err, repoNotVisible(repo))
	}
	return strconv.FormatInt(h.ID, 10), nil
}

// RemoveHook implements forge.HookInstaller; a hook that is already gone
// (or a project that is) counts as removed.
func (p *Provider) RemoveHook(ctx context.Context, c *forge.Conn, repo forge.Repo, hookID string) error {
	id, err := strconv.ParseInt(hookID, 10, 64)
	if err != nil {
		return fmt.Errorf("gitlab: remove hook: %w", slipway.Errorf(slipway.ECodeInvalid, "GitLab hook id %q is not a number", hookID))
	}
	cl, err := p.client(ctx, c)
	if err != nil {
		return err
	}
	resp, err := cl.Projects.DeleteProjectHook(repo.ID, id, gl.WithContext(ctx))
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			return nil
		}
		return apiError("delete project hook", resp, err, nil)
	}
	return nil
}

const zeroSHA = "0000000000000000000000000000000000000000"

// hookPayload holds the fields Slipway reads from push, tag push, merge
// request and system hook deliveries.
type hookPayload struct {
	ObjectKind        string     `json:"object_kind"`
	Before            string     `json:"before"`
	After             string     `json:"after"`
	Ref               string     `json:"ref"`
	CheckoutSHA       *string    `json:"checkout_sha"`
	UserUsername      string     `json:"user_username"`
	UserName          string     `json:"user_name"`
	ProjectID         int64      `json:"project_id"`
	Project           project    `json:"project"`
	Commits           []commit   `json:"commits"`
	TotalCommitsCount int        `json:"total_commits_count"`
	User              *hookUser  `json:"user"`
	ObjectAttributes  *mrAttribs `json:"object_attributes"`
}

type project struct {
	ID                int64  `json:"id"`
	PathWithNamespace string `json:"path_with_namespace"`
	GitHTTPURL        string `json:"git_http_url"`
	WebURL            string `json:"web_url"`
	VisibilityLevel   *int   `json:"visibility_level"`
}

type commit struct {
	ID        string `json:"id"`
	Message   string `json:"message"`
	Timestamp string `json:"timestamp"`
	URL       string `json:"url"`
	Author    struct {
		Name string `json:"name"`
	} `json:"author"`
	Added    []string `json:"added"`
	Modified []string `json:"modified"`
	Removed  []string `json:"removed"`
}

type hookUser struct {
	Username string `json:"username"`
}

type mrAttribs struct {
	IID          int     `json:"iid"`
	Action       string  `json:"action"`
	SourceBranch string  `json:"source_branch"`
	TargetBranch string  `json:"target_branch"`
	OldRev       string  `json:"oldrev"`
	LastCommit   *commit `json:"last_commit"`
}

// ParseHook implements forge.HookParser. GitLab does not sign bodies: it
// sends the hook's secret token in X-Gitlab-Token, compared here in
// constant time before the body is read.
func (p *Provider) ParseHook(header http.Header, body []byte, secret string) (slipway.Event, error) {
	if !VerifyToken(header, secret) {
		return slipway.Event{}, forge.ErrBadSignature
	}
	var pl hookPayload
	if err := json.Unmarshal(body, &pl); err != nil {
		return slipway.Event{}, fmt.Errorf("gitlab: decode hook payload: %w", err)
	}
	// Slipway installs project hooks only. A system hook (an instance
	// administrator pointed one here) or a payload about no project
	// (group and instance events) is valid but not Slipway's to act on.
	switch header.Get("X-Gitlab-Event") {
	case "Push Hook", "Tag Push Hook", "Merge Request Hook":
	default:
		return slipway.Event{}, forge.ErrIgnored
	}
	ev := slipway.Event{DeliveryID: deliveryID(header, body), Repo: repoRef(pl)}
	if ev.Repo.ID == "" {
		return slipway.Event{}, forge.ErrIgnored
	}
	switch pl.ObjectKind {
	case "push", "tag_push":
		push, evKind, err := parsePush(pl, pl.ObjectKind == "tag_push")
		if err != nil {
			return slipway.Event{}, err
		}
		ev.Kind, ev.Push = evKind, push
	case "merge_request":
		pr, err := parseMergeRequest(pl)
		if err != nil {
			return slipway.Event{}, err
		}
		ev.Kind, ev.PullRequest = slipway.EventPullRequest, pr
	default:
		return slipway.Event{}, forge.ErrIgnored
	}
	return ev, nil
}

// VerifyToken reports whether the delivery carries the hook's secret. An
// empty secret never verifies, so a hook saved without one cannot be
// driven by anyone who knows its URL.
func VerifyToken(header http.Header, secret string) bool {
	got := header.Get("X-Gitlab-Token")
	if secret == "" || got == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(secret)) == 1
}

// deliveryID is unique per delivery on every GitLab version, and the same
// for a retry of it:
//   - Idempotency-Key (GitLab 17.4 and later) is exactly that;
//   - before 17.4, X-Gitlab-Event-UUID is shared by every hook execution
//     one request triggers (a push of two refs runs the same project hook
//     twice with one UUID), so the key adds a digest of the body, which
//     differs between those executions and not between retries;
//   - with neither header (GitLab before 15.x sends no event UUID), the
//     body digest alone.
func deliveryID(h http.Header, body []byte) string {
	if v := h.Get("Idempotency-Key"); v != "" {
		return v
	}
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:12])
	if v := h.Get("X-Gitlab-Event-UUID"); v != "" {
		return v + ":" + digest
	}
	return "body:" + digest
}

func repoRef(pl hookPayload) slipway.RepoRef {
	id := pl.Project.ID
	if id == 0 {
		id = pl.ProjectID
	}
	r := slipway.RepoRef{FullName: pl.Project.PathWithNamespace, CloneURL: pl.Project.GitHTTPURL}
	if id != 0 {
		r.ID = strconv.FormatInt(id, 10)
	}
	// visibility_level: 0 private, 10 internal, 20 public.
	r.Private = pl.Project.VisibilityLevel != nil && *pl.Project.VisibilityLevel < 20
	return r
}

func parsePush(pl hookPayload, tagPush bool) (*slipway.PushEvent, slipway.EventKind, error) {
	push := &slipway.PushEvent{Ref: pl.Ref, Before: pl.Before, After: pl.After, Pusher: pl.UserUsername}
	if push.Pusher == "" {
		push.Pusher = pl.UserName
	}
	push.Deleted = pl.After == zeroSHA
	push.Created = pl.Before == zeroSHA
	var kind slipway.EventKind
	switch {
	case strings.HasPrefix(pl.Ref, "refs/heads/") && !tagPush:
		push.Branch = strings.TrimPrefix(pl.Ref, "refs/heads/")
		kind = slipway.EventPush
		if push.Deleted {
			kind = slipway.EventBranchDeleted
		}
	case strings.HasPrefix(pl.Ref, "refs/tags/"):
		push.Tag = strings.TrimPrefix(pl.Ref, "refs/tags/")
		kind = slipway.EventTag
		if push.Deleted {
			// A deleted tag leaves nothing to deploy or clean up.
			return nil, "", forge.ErrIgnored
		}
	default:
		return nil, "", fmt.Errorf("gitlab: push of unexpected ref %q", pl.Ref)
	}
	if push.Deleted {
		push.After = zeroSHA
		push.ChangedFilesComplete = false
		return push, kind, nil
	}
	// checkout_sha is the commit; for an annotated tag after is the tag
	// object. Without checkout_sha only a branch's after is known to be a
	// commit.
	head := ""
	if kind == slipway.EventPush {
		head = pl.After
	}
	if pl.CheckoutSHA != nil && *pl.CheckoutSHA != "" {
		head = *pl.CheckoutSHA
	}
	push.Head = slipway.Commit{SHA: head}
	for _, c := range pl.Commits {
		if c.ID == head {
			push.Head = toCommit(c)
		}
	}
	// GitLab lists at most 20 commits; the list is the whole story only
	// when it holds every pushed commit and the push extends a known
	// commit (a new branch's list is relative to nothing we deployed).
	complete := !push.Created && kind == slipway.EventPush && len(pl.Commits) == pl.TotalCommitsCount
	seen := map[string]bool{}
	for _, c := range pl.Commits {
		for _, list := range [][]string{c.Added, c.Modified, c.Removed} {
			for _, f := range list {
				if !seen[f] {
					seen[f] = true
					push.ChangedFiles = append(push.ChangedFiles, f)
				}
			}
		}
	}
	push.ChangedFilesComplete = complete
	if !complete {
		push.ChangedFiles = nil
	}
	return push, kind, nil
}

func toCommit(c commit) slipway.Commit {
	out := slipway.Commit{SHA: c.ID, Message: c.Message, Author: c.Author.Name, URL: c.URL}
	if t, err := time.Parse(time.RFC3339, c.Timestamp); err == nil {
		out.Timestamp = t.UTC()
	}
	return out
}

// parseMergeRequest keeps the actions that change what a preview would
// run: opened, reopened, new commits pushed (an update with oldrev),
// closed and merged. Title or label edits are ignored.
func parseMergeRequest(pl hookPayload) (*slipway.PullRequestEvent, error) {
	a := pl.ObjectAttributes
	if a == nil {
		return nil, fmt.Errorf("gitlab: merge request hook without object_attributes")
	}
	var action string
	switch a.Action {
	case "open":
		action = "opened"
	case "reopen":
		action = "reopened"
	case "update":
		if a.OldRev == "" {
			return nil, forge.ErrIgnored
		}
		action = "synchronize"
	case "close":
		action = "closed"
	case "merge":
		action = "merged"
	default:
		return nil, forge.ErrIgnored
	}
	pr := &slipway.PullRequestEvent{Action: action, Number: a.IID, Branch: a.SourceBranch, Base: a.TargetBranch}
	if a.LastCommit != nil {
		pr.Head = toCommit(*a.LastCommit)
	}
	return pr, nil
}
