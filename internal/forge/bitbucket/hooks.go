package bitbucket

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/restapi"
)

// hookEvents are the events Slipway subscribes a repository hook to:
// pushes, and renames and transfers (which change the full name Slipway
// shows and clones by).
var hookEvents = []string{"repo:push", "repo:updated", "repo:transfer"}

// InstallHook implements forge.HookInstaller: a repository webhook whose
// deliveries are signed with the per-hook secret.
func (p *Provider) InstallHook(ctx context.Context, c *forge.Conn, repo forge.Repo, hook forge.HookConfig) (string, error) {
	cl, err := p.client(ctx, c)
	if err != nil {
		return "", err
	}
	rp, err := repoPath(repo)
	if err != nil {
		return "", fmt.Errorf("bitbucket: install hook: %w", err)
	}
	body := map[string]any{
		"description": "Slipway",
		"url":         hook.URL,
		"active":      true,
		"secret":      hook.Secret,
		"events":      hookEvents,
	}
	var created struct {
		UUID string `json:"uuid"`
	}
	if _, err := cl.do(ctx, http.MethodPost, rp+"/hooks", nil, body, &created); err != nil {
		return "", apiError("create repository hook", err, repoNotVisible(repo))
	}
	if created.UUID == "" {
		return "", fmt.Errorf("bitbucket: create repository hook: %w", slipway.Errorf(slipway.ECodeProviderError, "Bitbucket returned no hook id"))
	}
	return created.UUID, nil
}

// RemoveHook implements forge.HookInstaller; an already-removed hook is
// success.
func (p *Provider) RemoveHook(ctx context.Context, c *forge.Conn, repo forge.Repo, hookID string) error {
	cl, err := p.client(ctx, c)
	if err != nil {
		return err
	}
	rp, err := repoPath(repo)
	if err != nil {
		return fmt.Errorf("bitbucket: remove hook: %w", err)
	}
	if _, err := cl.do(ctx, http.MethodDelete, rp+"/hooks/"+url.PathEscape(hookID), nil, nil, nil); err != nil {
		if restapi.IsStatus(err, http.StatusNotFound) {
			return nil
		}
		return apiError("delete repository hook", err, nil)
	}
	return nil
}

// VerifySignature checks X-Hub-Signature ("sha256=<hex>", HMAC-SHA256 of
// the raw body with the hook's secret) in constant time. An empty secret
// never verifies.
func VerifySignature(header http.Header, body []byte, secret string) bool {
	sig := header.Get("X-Hub-Signature")
	if sig == "" {
		sig = header.Get("X-Hub-Signature-256")
	}
	hexSig, ok := strings.CutPrefix(sig, "sha256=")
	return ok && forge.ValidHMACSHA256(hexSig, body, secret)
}

// Sign returns the X-Hub-Signature value Bitbucket would send for body.
func Sign(body []byte, secret string) string {
	return "sha256=" + forge.SignHMACSHA256(body, secret)
}

type hookRepo struct {
	UUID      string `json:"uuid"`
	FullName  string `json:"full_name"`
	IsPrivate bool   `json:"is_private"`
	Links     links  `json:"links"`
}

type change struct {
	New       *pushRef `json:"new"`
	Old       *pushRef `json:"old"`
	Created   bool     `json:"created"`
	Closed    bool     `json:"closed"`
	Forced    bool     `json:"forced"`
	Truncated bool     `json:"truncated"`
}

type pushRef struct {
	Type string `json:"type"`
	refJSON
}

type hookPayload struct {
	Actor      *account `json:"actor"`
	Repository hookRepo `json:"repository"`
	Push       *struct {
		Changes []change `json:"changes"`
	} `json:"push"`
	Changes map[string]struct {
		Old any `json:"old"`
		New any `json:"new"`
	} `json:"changes"`
}

// ParseHook implements forge.HookParser for the first ref of a push; see
// ParseHookEvents for pushes of several refs at once.
func (p *Provider) ParseHook(header http.Header, body []byte, secret string) (slipway.Event, error) {
	return forge.FirstEvent(p.ParseHookEvents(header, body, secret))
}

// ParseHookEvents verifies a delivery and returns one event per ref it
// changed: Bitbucket sends a single repo:push for `git push origin main
// v1.2`, with one entry per ref in push.changes. Changes Slipway does not
// act on (a deleted tag) are skipped; when none is left the result is
// forge.ErrIgnored. Every event carries the delivery's id.
func (p *Provider) ParseHookEvents(header http.Header, body []byte, secret string) ([]slipway.Event, error) {
	if !VerifySignature(header, body, secret) {
		return nil, forge.ErrBadSignature
	}
	key := header.Get("X-Event-Key")
	if key != "repo:push" && key != "repo:updated" && key != "repo:transfer" {
		return nil, forge.ErrIgnored
	}
	var pl hookPayload
	if err := json.Unmarshal(body, &pl); err != nil {
		return nil, fmt.Errorf("bitbucket: decode hook payload: %w", err)
	}
	if pl.Repository.UUID == "" {
		return nil, fmt.Errorf("bitbucket: hook payload names no repository")
	}
	repo := slipway.RepoRef{ID: pl.Repository.UUID, FullName: pl.Repository.FullName, Private: pl.Repository.IsPrivate}
	if h := pl.Repository.Links.HTML.Href; h != "" {
		repo.CloneURL = h + ".git"
	}
	delivery := header.Get("X-Request-UUID")

	if key == "repo:transfer" {
		// The repository moved to another workspace: its full name changed,
		// its UUID did not.
		return []slipway.Event{{Kind: slipway.EventRepositoryChanged, DeliveryID: delivery, Repo: repo}}, nil
	}
	if key == "repo:updated" {
		// Only a rename or a transfer changes what Slipway tracks.
		_, renamed := pl.Changes["full_name"]
		_, renamedToo := pl.Changes["name"]
		if !renamed && !renamedToo {
			return nil, forge.ErrIgnored
		}
		return []slipway.Event{{Kind: slipway.EventRepositoryChanged, DeliveryID: delivery, Repo: repo}}, nil
	}
	if pl.Push == nil {
		return nil, fmt.Errorf("bitbucket: repo:push without push")
	}
	pusher := ""
	if pl.Actor != nil {
		pusher = orDefault(pl.Actor.Nickname, pl.Actor.DisplayName)
	}
	var evs []slipway.Event
	for _, ch := range pl.Push.Changes {
		ev, ok := changeEvent(ch)
		if !ok {
			continue
		}
		ev.DeliveryID, ev.Repo, ev.Push.Pusher = delivery, repo, pusher
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		return nil, forge.ErrIgnored
	}
	return evs, nil
}

// changeEvent normalizes one push change. Bitbucket payloads carry no
// file lists, so ChangedFiles is left to the diffstat API.
func changeEvent(ch change) (slipway.Event, bool) {
	ref := ch.New
	if ref == nil {
		ref = ch.Old
	}
	if ref == nil || ref.Name == "" {
		return slipway.Event{}, false
	}
	push := &slipway.PushEvent{Created: ch.Created || ch.Old == nil, Deleted: ch.Closed || ch.New == nil}
	if ch.Old != nil {
		push.Before = ch.Old.Target.Hash
	}
	ev := slipway.Event{Push: push}
	switch ref.Type {
	case "branch", "named_branch":
		push.Ref, push.Branch, ev.Kind = "refs/heads/"+ref.Name, ref.Name, slipway.EventPush
		if push.Deleted {
			ev.Kind = slipway.EventBranchDeleted
		}
	case "tag", "annotated_tag":
		if push.Deleted {
			return slipway.Event{}, false // nothing to deploy or clean up
		}
		push.Ref, push.Tag, ev.Kind = "refs/tags/"+ref.Name, ref.Name, slipway.EventTag
	default:
		return slipway.Event{}, false
	}
	if push.Deleted {
		push.After = "0000000000000000000000000000000000000000"
		return ev, true
	}
	push.After = ch.New.Target.Hash
	push.Head = ch.New.Target.commit()
	return ev, true
}

// statusKey fits a status context into Bitbucket's 40-character key,
// keeping it stable so later updates replace the same status.
func statusKey(ctx string) string {
	if len(ctx) <= 40 {
		return ctx
	}
	sum := sha256.Sum256([]byte(ctx))
	return ctx[:31] + "-" + hex.EncodeToString(sum[:4])
}
