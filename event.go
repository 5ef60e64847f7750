package slipway

import (
	"strings"
	"time"
)

// EventKind names a normalized webhook event.
type EventKind string

// Normalized event kinds. Anything a provider sends that is not one of these
// is recorded as ignored.
const (
	EventPush                EventKind = "push"
	EventTag                 EventKind = "tag"
	EventBranchDeleted       EventKind = "branch_deleted"
	EventPullRequest         EventKind = "pull_request"
	EventRepositoryChanged   EventKind = "repository_changed" // renamed or transferred
	EventInstallationChanged EventKind = "installation_changed"
	EventPing                EventKind = "ping"
)

// Event is a provider webhook translated into Slipway's terms.
type Event struct {
	Kind        EventKind         `json:"kind"`
	DeliveryID  string            `json:"delivery_id,omitempty"`
	Repo        RepoRef           `json:"repo"`
	Push        *PushEvent        `json:"push,omitempty"`
	Install     *InstallEvent     `json:"install,omitempty"`
	PullRequest *PullRequestEvent `json:"pull_request,omitempty"`
	// InstallationID names the app installation a delivery came through
	// (GitHub Apps). An App has one webhook URL for all its installations,
	// so this is what routes a delivery to the installation's integration.
	InstallationID string `json:"installation_id,omitempty"`
}

// RepoRef identifies a repository in an event: the immutable provider id
// plus the current full name.
type RepoRef struct {
	ID       string `json:"id"`
	FullName string `json:"full_name"`
	CloneURL string `json:"clone_url,omitempty"`
	Private  bool   `json:"private,omitempty"`
}

// PushEvent is a push of a branch or a tag.
type PushEvent struct {
	Ref    string `json:"ref"`              // full ref: refs/heads/main, refs/tags/v1
	Branch string `json:"branch,omitempty"` // short name when Ref is a branch
	Tag    string `json:"tag,omitempty"`    // short name when Ref is a tag
	Before string `json:"before,omitempty"`
	// After is the object the ref now names: for an annotated tag that is
	// the tag object, not a commit.
	After   string `json:"after"`
	Deleted bool   `json:"deleted,omitempty"`
	Created bool   `json:"created,omitempty"`
	// Head is the commit the ref points at, peeled through tag objects.
	// Head.SHA is empty when the payload does not say (Azure DevOps sends
	// only the tag object for a tag); the service layer then asks the
	// provider (Service.pinPushed), so a deployment always pins a commit.
	Head   Commit `json:"head"`
	Pusher string `json:"pusher,omitempty"`
	// ChangedFiles lists the files the pushed commits touched, when the
	// payload carries them. Truncated payloads set ChangedFilesComplete=false;
	// callers then ask the provider's compare API.
	ChangedFiles         []string `json:"changed_files,omitempty"`
	ChangedFilesComplete bool     `json:"changed_files_complete"`
}

// Commit is one commit's identity and summary.
type Commit struct {
	SHA       string    `json:"sha"`
	Message   string    `json:"message,omitempty"`
	Author    string    `json:"author,omitempty"`
	Timestamp time.Time `json:"timestamp,omitzero"`
	URL       string    `json:"url,omitempty"`
}

// InstallAction is what happened to a GitHub App installation.
type InstallAction string

// Installation actions.
const (
	InstallCreated        InstallAction = "created"
	InstallDeleted        InstallAction = "deleted"
	InstallSuspended      InstallAction = "suspend"
	InstallUnsuspended    InstallAction = "unsuspend"
	InstallNewPermissions InstallAction = "new_permissions_accepted"
	InstallReposAdded     InstallAction = "repositories_added"
	InstallReposRemoved   InstallAction = "repositories_removed"
)

// InstallEvent describes a change to an app installation.
type InstallEvent struct {
	Action         InstallAction `json:"action"`
	InstallationID string        `json:"installation_id"`
	Account        string        `json:"account,omitempty"`
	RepoSelection  string        `json:"repo_selection,omitempty"`
	ReposAdded     []RepoRef     `json:"repos_added,omitempty"`
	ReposRemoved   []RepoRef     `json:"repos_removed,omitempty"`
}

// PullRequestEvent is a pull/merge request opened, updated or closed.
type PullRequestEvent struct {
	Action string `json:"action"`
	Number int    `json:"number"`
	Branch string `json:"branch"`
	Base   string `json:"base"`
	Head   Commit `json:"head"`
}

// SkipRequested reports whether a commit message asks not to deploy.
func SkipRequested(message string) bool {
	for _, m := range []string{"[skip ci]", "[ci skip]", "[skip deploy]"} {
		if strings.Contains(strings.ToLower(message), m) {
			return true
		}
	}
	return false
}
