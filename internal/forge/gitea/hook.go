package gitea

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
)

// Delivery headers. Forgejo sends the same deliveries under its own name.
const (
	headerEvent     = "X-Gitea-Event"
	headerDelivery  = "X-Gitea-Delivery"
	headerSignature = "X-Gitea-Signature"

	headerForgejoEvent     = "X-Forgejo-Event"
	headerForgejoDelivery  = "X-Forgejo-Delivery"
	headerForgejoSignature = "X-Forgejo-Signature"
)

const zeroSHA = "0000000000000000000000000000000000000000"

// Sign sets the signature header Gitea sends: the hex HMAC-SHA256 of the
// raw body under the hook's secret.
func Sign(h http.Header, body []byte, secret string) {
	h.Set(headerSignature, forge.SignHMACSHA256(body, secret))
}

func firstHeader(h http.Header, names ...string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}

// ParseHook verifies a delivery's signature on the raw body, in constant
// time and before anything is parsed, then normalizes it.
func (p *Provider) ParseHook(h http.Header, body []byte, secret string) (slipway.Event, error) {
	got := firstHeader(h, headerSignature, headerForgejoSignature)
	if got == "" || !forge.ValidHMACSHA256(strings.TrimSpace(got), body, secret) {
		return slipway.Event{}, forge.ErrBadSignature
	}

	delivery := firstHeader(h, headerDelivery, headerForgejoDelivery)
	switch kind := firstHeader(h, headerEvent, headerForgejoEvent); kind {
	case "push":
		return parsePush(body, delivery)
	case "delete":
		return parseDelete(body, delivery)
	case "repository":
		return parseRepository(body, delivery)
	default:
		// ping, create (a push delivery covers new branches and tags), and
		// everything else Slipway does not act on.
		return slipway.Event{}, forge.ErrIgnored
	}
}

type hookUser struct {
	Login    string `json:"login"`
	UserName string `json:"username"`
	Name     string `json:"name"`
}

func (u hookUser) name() string {
	if u.Login != "" {
		return u.Login
	}
	return u.UserName
}

type hookRepo struct {
	ID       int64  `json:"id"`
	FullName string `json:"full_name"`
	CloneURL string `json:"clone_url"`
	Private  bool   `json:"private"`
}

func (r hookRepo) ref() (slipway.RepoRef, error) {
	if r.ID == 0 || r.FullName == "" {
		return slipway.RepoRef{}, fmt.Errorf("gitea: delivery without a repository")
	}
	return slipway.RepoRef{ID: strconv.FormatInt(r.ID, 10), FullName: r.FullName, CloneURL: r.CloneURL, Private: r.Private}, nil
}

type hookCommit struct {
	ID        string `json:"id"`
	Message   string `json:"message"`
	URL       string `json:"url"`
	Timestamp string `json:"timestamp"`
	Author    struct {
		Name     string `json:"name"`
		UserName string `json:"username"`
	} `json:"author"`
	Added    []string `json:"added"`
	Removed  []string `json:"removed"`
	Modified []string `json:"modified"`
}

func (c hookCommit) commit() slipway.Commit {
	out := slipway.Commit{SHA: c.ID, Message: c.Message, URL: c.URL, Author: c.Author.Name}
	if ts, err := parseTime(c.Timestamp); err == nil {
		out.Timestamp = ts
	}
	return out
}

type pushPayload struct {
	Ref          string       `json:"ref"`
	Before       string       `json:"before"`
	After        string       `json:"after"`
	Commits      []hookCommit `json:"commits"`
	TotalCommits int          `json:"total_commits"`
	HeadCommit   *hookCommit  `json:"head_commit"`
	Repository   hookRepo     `json:"repository"`
	Pusher       hookUser     `json:"pusher"`
}

func parsePush(body []byte, delivery string) (slipway.Event, error) {
	var p pushPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return slipway.Event{}, fmt.Errorf("gitea: push payload: %w", err)
	}
	repo, err := p.Repository.ref()
	if err != nil {
		return slipway.Event{}, err
	}
	push := &slipway.PushEvent{
		Ref: p.Ref, Before: p.Before, After: p.After, Pusher: p.Pusher.name(),
		Created: p.Before == zeroSHA, Deleted: p.After == zeroSHA,
	}
	ev := slipway.Event{DeliveryID: delivery, Repo: repo, Push: push}
	switch {
	case strings.HasPrefix(p.Ref, "refs/heads/"):
		push.Branch = strings.TrimPrefix(p.Ref, "refs/heads/")
		ev.Kind = slipway.EventPush
		if push.Deleted {
			ev.Kind = slipway.EventBranchDeleted
			return ev, nil
		}
	case strings.HasPrefix(p.Ref, "refs/tags/"):
		push.Tag = strings.TrimPrefix(p.Ref, "refs/tags/")
		ev.Kind = slipway.EventTag
		if push.Deleted {
			return slipway.Event{}, forge.ErrIgnored
		}
	default:
		return slipway.Event{}, forge.ErrIgnored
	}
	if p.HeadCommit != nil {
		push.Head = p.HeadCommit.commit()
	} else if n := len(p.Commits); n > 0 {
		push.Head = p.Commits[n-1].commit()
	}
	if push.Head.SHA == "" && push.Branch != "" {
		// A branch names a commit; for an annotated tag after is the tag
		// object and only head_commit is the commit.
		push.Head.SHA = p.After
	}
	seen := map[string]bool{}
	for _, c := range p.Commits {
		for _, list := range [][]string{c.Added, c.Modified, c.Removed} {
			for _, f := range list {
				if !seen[f] {
					seen[f] = true
					push.ChangedFiles = append(push.ChangedFiles, f)
				}
			}
		}
	}
	push.ChangedFilesComplete = p.TotalCommits <= len(p.Commits)
	return ev, nil
}

type deletePayload struct {
	Ref        string   `json:"ref"`
	RefType    string   `json:"ref_type"`
	Repository hookRepo `json:"repository"`
	Sender     hookUser `json:"sender"`
}

func parseDelete(body []byte, delivery string) (slipway.Event, error) {
	var p deletePayload
	if err := json.Unmarshal(body, &p); err != nil {
		return slipway.Event{}, fmt.Errorf("gitea: delete payload: %w", err)
	}
	if p.RefType != "branch" {
		return slipway.Event{}, forge.ErrIgnored
	}
	repo, err := p.Repository.ref()
	if err != nil {
		return slipway.Event{}, err
	}
	branch := strings.TrimPrefix(p.Ref, "refs/heads/")
	return slipway.Event{
		Kind: slipway.EventBranchDeleted, DeliveryID: delivery, Repo: repo,
		Push: &slipway.PushEvent{
			Ref: "refs/heads/" + branch, Branch: branch, After: zeroSHA, Deleted: true, Pusher: p.Sender.name(),
		},
	}, nil
}

type repositoryPayload struct {
	Action     string   `json:"action"`
	Repository hookRepo `json:"repository"`
}

func parseRepository(body []byte, delivery string) (slipway.Event, error) {
	var p repositoryPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return slipway.Event{}, fmt.Errorf("gitea: repository payload: %w", err)
	}
	// Gitea itself sends only created and deleted; renamed and transferred
	// are the actions Slipway follows when a server sends them.
	switch p.Action {
	case "renamed", "transferred":
	default:
		return slipway.Event{}, forge.ErrIgnored
	}
	repo, err := p.Repository.ref()
	if err != nil {
		return slipway.Event{}, err
	}
	return slipway.Event{Kind: slipway.EventRepositoryChanged, DeliveryID: delivery, Repo: repo}, nil
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}
