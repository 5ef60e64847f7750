package azuredevops

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/restapi"
)

// hookUser is the basic-auth user name of service hook deliveries; only
// the password (the per-hook secret) is checked.
const hookUser = "slipway"

const zeroSHA = "0000000000000000000000000000000000000000"

// InstallHook implements forge.HookInstaller: a service hook subscription
// for git.push on the one repository, delivered to hook.URL with the
// per-hook secret as the basic-auth password.
func (p *Provider) InstallHook(ctx context.Context, c *forge.Conn, repo forge.Repo, hook forge.HookConfig) (string, error) {
	r, err := p.getRepo(ctx, c, repo.ID) // the subscription filter needs the project id
	if err != nil {
		return "", err
	}
	cl, err := p.client(ctx, c)
	if err != nil {
		return "", err
	}
	body := map[string]any{
		"publisherId":      "tfs",
		"eventType":        "git.push",
		"resourceVersion":  "1.0",
		"consumerId":       "webHooks",
		"consumerActionId": "httpRequest",
		"publisherInputs": map[string]string{
			"projectId":  r.Project.ID,
			"repository": r.ID,
			"branch":     "",
			"pushedBy":   "",
		},
		"consumerInputs": map[string]string{
			"url":                    hook.URL,
			"basicAuthUsername":      hookUser,
			"basicAuthPassword":      hook.Secret,
			"resourceDetailsToSend":  "all",
			"messagesToSend":         "none",
			"detailedMessagesToSend": "none",
		},
	}
	var created struct {
		ID string `json:"id"`
	}
	if _, err := cl.do(ctx, http.MethodPost, "_apis/hooks/subscriptions", nil, body, &created); err != nil {
		return "", apiError("create service hook", err, repoNotVisible(repo))
	}
	if created.ID == "" {
		return "", fmt.Errorf("azuredevops: create service hook: %w", slipway.Errorf(slipway.ECodeProviderError, "Azure DevOps returned no subscription id"))
	}
	return created.ID, nil
}

// RemoveHook implements forge.HookInstaller; a subscription that is
// already gone is success.
func (p *Provider) RemoveHook(ctx context.Context, c *forge.Conn, repo forge.Repo, hookID string) error {
	cl, err := p.client(ctx, c)
	if err != nil {
		return err
	}
	if _, err := cl.do(ctx, http.MethodDelete, "_apis/hooks/subscriptions/"+url.PathEscape(hookID), nil, nil, nil); err != nil {
		if restapi.IsStatus(err, http.StatusNotFound) {
			return nil
		}
		return apiError("delete service hook", err, nil)
	}
	return nil
}

// VerifyBasicAuth reports whether the delivery's Authorization header
// carries the hook's secret as its basic-auth password, compared in
// constant time. An empty secret never verifies.
func VerifyBasicAuth(header http.Header, secret string) bool {
	if secret == "" {
		return false
	}
	raw, ok := strings.CutPrefix(header.Get("Authorization"), "Basic ")
	if !ok {
		return false
	}
	dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(raw))
	if err != nil {
		return false
	}
	_, pass, ok := strings.Cut(string(dec), ":")
	return ok && subtle.ConstantTimeCompare([]byte(pass), []byte(secret)) == 1
}

// BasicAuth returns the Authorization value a subscription created by
// InstallHook sends.
func BasicAuth(secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(hookUser+":"+secret))
}

type refUpdate struct {
	Name        string `json:"name"`
	OldObjectID string `json:"oldObjectId"`
	NewObjectID string `json:"newObjectId"`
}

type pushPayload struct {
	ID             string `json:"id"`
	SubscriptionID string `json:"subscriptionId"`
	NotificationID int64  `json:"notificationId"`
	EventType      string `json:"eventType"`
	Resource       struct {
		Commits []struct {
			CommitID string `json:"commitId"`
			Comment  string `json:"comment"`
			URL      string `json:"url"`
			Author   struct {
				Name string `json:"name"`
				Date string `json:"date"`
			} `json:"author"`
		} `json:"commits"`
		RefUpdates []refUpdate `json:"refUpdates"`
		Repository gitRepo     `json:"repository"`
		PushedBy   struct {
			DisplayName string `json:"displayName"`
			UniqueName  string `json:"uniqueName"`
		} `json:"pushedBy"`
	} `json:"resource"`
}

// ParseHook implements forge.HookParser for the first ref of a push; see
// ParseHookEvents for pushes of several refs.
func (p *Provider) ParseHook(header http.Header, body []byte, secret string) (slipway.Event, error) {
	return forge.FirstEvent(p.ParseHookEvents(header, body, secret))
}

// ParseHookEvents verifies a delivery and returns one event per updated
// ref: a single git.push carries every ref of `git push origin main v1.2`
// in resource.refUpdates. Deleted tags are skipped; when nothing is left
// the result is forge.ErrIgnored. The delivery id is the event's "id".
func (p *Provider) ParseHookEvents(header http.Header, body []byte, secret string) ([]slipway.Event, error) {
	if !VerifyBasicAuth(header, secret) {
		return nil, forge.ErrBadSignature
	}
	var pl pushPayload
	if err := json.Unmarshal(body, &pl); err != nil {
		return nil, fmt.Errorf("azuredevops: decode hook payload: %w", err)
	}
	if pl.EventType != "git.push" {
		return nil, forge.ErrIgnored
	}
	r := pl.Resource.Repository
	if r.ID == "" {
		return nil, fmt.Errorf("azuredevops: git.push names no repository")
	}
	repo := slipway.RepoRef{ID: r.ID, FullName: r.Project.Name + "/" + r.Name, CloneURL: stripUser(r.RemoteURL), Private: r.Project.Visibility != "public"}
	delivery := pl.ID
	if delivery == "" && pl.NotificationID != 0 {
		delivery = fmt.Sprintf("%s/%d", pl.SubscriptionID, pl.NotificationID)
	}
	pusher := pl.Resource.PushedBy.UniqueName
	if pusher == "" {
		pusher = pl.Resource.PushedBy.DisplayName
	}
	var evs []slipway.Event
	for _, u := range pl.Resource.RefUpdates {
		push := &slipway.PushEvent{Ref: u.Name, Before: u.OldObjectID, After: u.NewObjectID, Pusher: pusher,
			Deleted: u.NewObjectID == zeroSHA, Created: u.OldObjectID == zeroSHA}
		ev := slipway.Event{DeliveryID: delivery, Repo: repo, Push: push}
		switch {
		case strings.HasPrefix(u.Name, "refs/heads/"):
			push.Branch, ev.Kind = strings.TrimPrefix(u.Name, "refs/heads/"), slipway.EventPush
			if push.Deleted {
				ev.Kind = slipway.EventBranchDeleted
			}
		case strings.HasPrefix(u.Name, "refs/tags/"):
			if push.Deleted {
				continue // nothing to deploy or clean up
			}
			push.Tag, ev.Kind = strings.TrimPrefix(u.Name, "refs/tags/"), slipway.EventTag
		default:
			continue
		}
		if !push.Deleted {
			// A branch's newObjectId is a commit. A tag's may be an
			// annotated tag object, and the payload has no peeled commit:
			// Head stays empty and the service asks the refs API.
			if push.Branch != "" {
				push.Head = slipway.Commit{SHA: u.NewObjectID}
			}
			for _, c := range pl.Resource.Commits {
				if c.CommitID == u.NewObjectID {
					push.Head = slipway.Commit{SHA: c.CommitID, Message: c.Comment, Author: c.Author.Name, URL: c.URL}
					if t, err := time.Parse(time.RFC3339Nano, c.Author.Date); err == nil {
						push.Head.Timestamp = t.UTC()
					}
				}
			}
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		return nil, forge.ErrIgnored
	}
	return evs, nil
}

var _ forge.HookTargetChecker = (*Provider)(nil)

// CheckHookTarget implements forge.HookTargetChecker: Azure DevOps sends a
// service hook with basic authentication only to an https URL, so an http
// public URL could never receive a delivery.
func (*Provider) CheckHookTarget(hookURL string) error {
	u, err := url.Parse(hookURL)
	if err == nil && u.Scheme == "https" && u.Host != "" {
		return nil
	}
	return fmt.Errorf("azuredevops: %w", slipway.Errorf(slipway.ECodeInvalid,
		"Azure DevOps sends service hooks with basic authentication only to https URLs, and Slipway would receive them at %q", hookURL).
		WithFix("Serve Slipway over https (--tls acme or a TLS proxy) and set --public-url to its https:// address, then connect again"))
}
