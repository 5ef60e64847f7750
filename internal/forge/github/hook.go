package github

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
)

// maxPushCommits is how many commits GitHub puts in a push payload; a push
// with at least that many may have more, so its file list is partial.
const maxPushCommits = 20

// ParseHook verifies X-Hub-Signature-256 (HMAC-SHA256 of the raw body
// with the App's webhook secret, compared in constant time) before reading
// anything, then normalizes push, installation, installation_repositories
// and repository (renamed, transferred) deliveries. ping and every other
// event or action are forge.ErrIgnored; so is a tag deletion, which
// changes no deployment.
func (p *Provider) ParseHook(header http.Header, body []byte, secret string) (slipway.Event, error) {
	if !validSignature(header.Get("X-Hub-Signature-256"), body, secret) {
		return slipway.Event{}, forge.ErrBadSignature
	}
	delivery := header.Get("X-GitHub-Delivery")
	var (
		ev  slipway.Event
		err error
	)
	switch event := header.Get("X-GitHub-Event"); event {
	case "push":
		ev, err = parsePush(body)
	case "installation", "installation_repositories":
		ev, err = parseInstallation(event, body)
	case "repository":
		ev, err = parseRepository(body)
	default: // ping, and events Slipway does not act on
		return slipway.Event{}, forge.ErrIgnored
	}
	if err != nil {
		return slipway.Event{}, err
	}
	ev.DeliveryID = delivery
	ev.InstallationID = installationOf(body)
	return ev, nil
}

// installationOf reads installation.id, which GitHub puts in every App
// delivery: an App has one webhook URL for all its installations.
func installationOf(body []byte) string {
	var pl struct {
		Installation struct {
			ID int64 `json:"id"`
		} `json:"installation"`
	}
	if json.Unmarshal(body, &pl) != nil || pl.Installation.ID <= 0 {
		return ""
	}
	return strconv.FormatInt(pl.Installation.ID, 10)
}

// validSignature checks "sha256=<hex>" against the body's HMAC. An empty
// secret never verifies: an unconfigured App must not accept anything.
func validSignature(sig string, body []byte, secret string) bool {
	hexSig, ok := strings.CutPrefix(sig, "sha256=")
	return ok && forge.ValidHMACSHA256(hexSig, body, secret)
}

// Sign returns the X-Hub-Signature-256 value GitHub sends for body.
func Sign(body []byte, secret string) string {
	return "sha256=" + forge.SignHMACSHA256(body, secret)
}

// Payload shapes: only the fields Slipway reads.

type hookRepo struct {
	ID       int64  `json:"id"`
	FullName string `json:"full_name"`
	CloneURL string `json:"clone_url"`
	Private  bool   `json:"private"`
}

func (r hookRepo) ref() slipway.RepoRef {
	return slipway.RepoRef{ID: strconv.FormatInt(r.ID, 10), FullName: r.FullName, CloneURL: r.CloneURL, Private: r.Private}
}

type hookCommit struct {
	ID        string    `json:"id"`
	Message   string    `json:"message"`
	Timestamp time.Time `json:"timestamp"`
	URL       string    `json:"url"`
	Author    struct {
		Name     string `json:"name"`
		Username string `json:"username"`
	} `json:"author"`
	Added    []string `json:"added"`
	Removed  []string `json:"removed"`
	Modified []string `json:"modified"`
}

type pushPayload struct {
	Ref        string       `json:"ref"`
	Before     string       `json:"before"`
	After      string       `json:"after"`
	Created    bool         `json:"created"`
	Deleted    bool         `json:"deleted"`
	Forced     bool         `json:"forced"`
	Commits    []hookCommit `json:"commits"`
	HeadCommit *hookCommit  `json:"head_commit"`
	Repository *hookRepo    `json:"repository"`
	Pusher     struct {
		Name string `json:"name"`
	} `json:"pusher"`
}

func malformed(event string, err error) error {
	return fmt.Errorf("github: malformed %s payload: %w", event, err)
}

func parsePush(body []byte) (slipway.Event, error) {
	var pl pushPayload
	if err := json.Unmarshal(body, &pl); err != nil {
		return slipway.Event{}, malformed("push", err)
	}
	if pl.Repository == nil || pl.Repository.ID == 0 || pl.Ref == "" {
		return slipway.Event{}, malformed("push", fmt.Errorf("missing repository or ref"))
	}
	push := &slipway.PushEvent{
		Ref: pl.Ref, Before: pl.Before, After: pl.After,
		Created: pl.Created, Deleted: pl.Deleted, Pusher: pl.Pusher.Name,
	}
	if !pl.Deleted && strings.HasPrefix(pl.Ref, "refs/heads/") {
		// A branch names a commit; a tag's after may be a tag object, and
		// only head_commit is the commit.
		push.Head.SHA = pl.After
	}
	if h := pl.HeadCommit; h != nil && !pl.Deleted {
		push.Head = slipway.Commit{SHA: h.ID, Message: h.Message, Author: h.Author.Name, URL: h.URL}
		if !h.Timestamp.IsZero() {
			push.Head.Timestamp = h.Timestamp.UTC()
		}
	}
	ev := slipway.Event{Repo: pl.Repository.ref(), Push: push}
	switch {
	case strings.HasPrefix(pl.Ref, "refs/heads/"):
		push.Branch = strings.TrimPrefix(pl.Ref, "refs/heads/")
		ev.Kind = slipway.EventPush
		if pl.Deleted {
			ev.Kind = slipway.EventBranchDeleted
		}
	case strings.HasPrefix(pl.Ref, "refs/tags/"):
		if pl.Deleted {
			return slipway.Event{}, forge.ErrIgnored
		}
		push.Tag = strings.TrimPrefix(pl.Ref, "refs/tags/")
		ev.Kind = slipway.EventTag
	default:
		return slipway.Event{}, forge.ErrIgnored
	}
	push.ChangedFiles, push.ChangedFilesComplete = changedFiles(pl)
	return ev, nil
}

// changedFiles merges the files of the payload's commits. The list is
// complete only when the payload holds every pushed commit: fewer than 20
// (GitHub's cap), not a deletion, not a force push (reverted files would
// be missed), and not a new branch with no commits listed.
func changedFiles(pl pushPayload) ([]string, bool) {
	if pl.Deleted {
		return nil, false
	}
	seen := map[string]bool{}
	known := true
	for _, c := range pl.Commits {
		if c.Added == nil && c.Removed == nil && c.Modified == nil {
			known = false
		}
		for _, list := range [][]string{c.Added, c.Modified, c.Removed} {
			for _, f := range list {
				seen[f] = true
			}
		}
	}
	files := make([]string, 0, len(seen))
	for f := range seen {
		files = append(files, f)
	}
	sort.Strings(files)
	complete := known && len(pl.Commits) < maxPushCommits && !pl.Forced && !(pl.Created && len(pl.Commits) == 0)
	return files, complete
}

type installationPayload struct {
	Action       string `json:"action"`
	Installation struct {
		ID      int64 `json:"id"`
		Account struct {
			Login string `json:"login"`
		} `json:"account"`
		RepositorySelection string `json:"repository_selection"`
	} `json:"installation"`
	RepositorySelection string     `json:"repository_selection"` // installation_repositories
	Repositories        []hookRepo `json:"repositories"`         // installation created/deleted
	RepositoriesAdded   []hookRepo `json:"repositories_added"`
	RepositoriesRemoved []hookRepo `json:"repositories_removed"`
}

func parseInstallation(event string, body []byte) (slipway.Event, error) {
	var pl installationPayload
	if err := json.Unmarshal(body, &pl); err != nil {
		return slipway.Event{}, malformed(event, err)
	}
	if pl.Installation.ID == 0 {
		return slipway.Event{}, malformed(event, fmt.Errorf("missing installation id"))
	}
	in := &slipway.InstallEvent{
		InstallationID: strconv.FormatInt(pl.Installation.ID, 10),
		Account:        pl.Installation.Account.Login,
		RepoSelection:  pl.Installation.RepositorySelection,
	}
	if pl.RepositorySelection != "" {
		in.RepoSelection = pl.RepositorySelection
	}
	switch {
	case event == "installation" && pl.Action == "created":
		in.Action, in.ReposAdded = slipway.InstallCreated, refs(pl.Repositories)
	case event == "installation" && pl.Action == "deleted":
		in.Action, in.ReposRemoved = slipway.InstallDeleted, refs(pl.Repositories)
	case event == "installation" && pl.Action == "suspend":
		in.Action = slipway.InstallSuspended
	case event == "installation" && pl.Action == "unsuspend":
		in.Action = slipway.InstallUnsuspended
	case event == "installation" && pl.Action == "new_permissions_accepted":
		in.Action = slipway.InstallNewPermissions
	case event == "installation_repositories" && pl.Action == "added":
		in.Action, in.ReposAdded = slipway.InstallReposAdded, refs(pl.RepositoriesAdded)
	case event == "installation_repositories" && pl.Action == "removed":
		in.Action, in.ReposRemoved = slipway.InstallReposRemoved, refs(pl.RepositoriesRemoved)
	default:
		return slipway.Event{}, forge.ErrIgnored
	}
	return slipway.Event{Kind: slipway.EventInstallationChanged, Install: in}, nil
}

func refs(repos []hookRepo) []slipway.RepoRef {
	if len(repos) == 0 {
		return nil
	}
	out := make([]slipway.RepoRef, 0, len(repos))
	for _, r := range repos {
		out = append(out, r.ref())
	}
	return out
}

type repositoryPayload struct {
	Action     string    `json:"action"`
	Repository *hookRepo `json:"repository"`
}

// parseRepository keeps renames and transfers: the repository id stays,
// its full name (and clone URL) change.
func parseRepository(body []byte) (slipway.Event, error) {
	var pl repositoryPayload
	if err := json.Unmarshal(body, &pl); err != nil {
		return slipway.Event{}, malformed("repository", err)
	}
	if pl.Action != "renamed" && pl.Action != "transferred" {
		return slipway.Event{}, forge.ErrIgnored
	}
	if pl.Repository == nil || pl.Repository.ID == 0 {
		return slipway.Event{}, malformed("repository", fmt.Errorf("missing repository"))
	}
	return slipway.Event{Kind: slipway.EventRepositoryChanged, Repo: pl.Repository.ref()}, nil
}
