// Package azuredevops connects Slipway to Azure DevOps Services
// (https://dev.azure.com/{organisation}) and Azure DevOps Server
// (https://{host}/{collection}) with a personal access token: connection
// checks, repository and ref listings, clone credentials, service hook
// subscriptions authenticated with a per-hook basic-auth secret, delivery
// verification and normalization, changed files and commit statuses.
//
// It is a thin REST client (api-version 7.1 on Services, 7.0 on Server
// 2022, 6.0 on Server 2020: configured per integration or negotiated)
// rather than the official Go
// SDK: the SDK discovers resource locations through extra OPTIONS calls to
// hosts it derives itself, which a test server on loopback cannot answer
// faithfully, and Slipway uses only a dozen endpoints.
//
// A PAT's scopes cannot be listed, so Check probes what Slipway needs:
// Code (Read) through the repository list and Service Hooks (Read & write)
// through the subscription list. Code (Status) cannot be probed without
// writing a status; it shows up when the first status is set.
package azuredevops

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/restapi"
)

// Scope names as the token page shows them.
const (
	scopeCodeRead     = "Code (Read)"
	scopeServiceHooks = "Service Hooks (Read & write)"
)

// Provider is the Azure DevOps provider.
type Provider struct {
	log *slog.Logger
	// versions remembers the api-version negotiated with each
	// organisation or collection URL (see client.call).
	versions sync.Map
}

// New returns an Azure DevOps provider that logs through log.
func New(log *slog.Logger) *Provider {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Provider{log: log}
}

var (
	_ forge.Checker        = (*Provider)(nil)
	_ forge.RepoLister     = (*Provider)(nil)
	_ forge.RefLister      = (*Provider)(nil)
	_ forge.Cloner         = (*Provider)(nil)
	_ forge.HookInstaller  = (*Provider)(nil)
	_ forge.HookParser     = (*Provider)(nil)
	_ forge.Comparer       = (*Provider)(nil)
	_ forge.StatusReporter = (*Provider)(nil)
)

// Kind implements forge.Provider.
func (*Provider) Kind() slipway.Provider { return slipway.ProviderAzureDevOps }

// Check implements forge.Checker.
func (p *Provider) Check(ctx context.Context, c *forge.Conn) (forge.CheckResult, error) {
	cl, err := p.client(ctx, c)
	if err != nil {
		return forge.CheckResult{}, err
	}
	var cd struct {
		AuthenticatedUser struct {
			ID                  string `json:"id"`
			ProviderDisplayName string `json:"providerDisplayName"`
			Descriptor          string `json:"descriptor"`
			Properties          struct {
				Account struct {
					Value string `json:"$value"`
				} `json:"Account"`
			} `json:"properties"`
		} `json:"authenticatedUser"`
	}
	if _, err := cl.doPreview(ctx, http.MethodGet, "_apis/connectionData", nil, nil, &cd); err != nil {
		return forge.CheckResult{}, apiError("read the connection", err, slipway.Errorf(slipway.ECodeProviderUnreachable, "%s is not an Azure DevOps organisation or collection URL", cl.org))
	}
	u := cd.AuthenticatedUser
	// An anonymous caller gets connection data too, as the public-access
	// identity: that means the token was not accepted.
	if u.ID == "" || strings.HasPrefix(u.Descriptor, "System:PublicAccess") {
		return forge.CheckResult{}, fmt.Errorf("azuredevops: check: %w", slipway.Errorf(slipway.ECodeCredentialsInvalid, "Azure DevOps did not accept the personal access token").
			WithFix("Create a new personal access token for this organisation and update the integration"))
	}
	res := forge.CheckResult{Account: u.Properties.Account.Value}
	if res.Account == "" {
		res.Account = u.ProviderDisplayName
	}
	probes := []struct{ scope, path string }{
		{scopeCodeRead, "_apis/git/repositories"},
		{scopeServiceHooks, "_apis/hooks/subscriptions"},
	}
	for _, pr := range probes {
		_, err := cl.do(ctx, http.MethodGet, pr.path, url.Values{"$top": {"1"}}, nil, nil)
		switch {
		case err == nil:
			res.Scopes = append(res.Scopes, pr.scope)
		case restapi.IsStatus(err, http.StatusUnauthorized) || (restapi.IsStatus(err, http.StatusForbidden) && !restapi.RateLimited(err)):
			res.Missing = append(res.Missing, pr.scope)
		default:
			return res, apiError("probe "+pr.scope, err, nil)
		}
	}
	if len(res.Missing) > 0 {
		missing := strings.Join(res.Missing, ", ")
		e := slipway.Errorf(slipway.ECodeScopesMissing, "Azure DevOps token is missing scopes: %s", missing).
			WithFix("Edit the personal access token to add " + missing + ", plus Code (Status)")
		e.Details = map[string]string{"missing": missing}
		res.Problems = append(res.Problems, forge.Problem{Code: e.Code, Message: e.Message, Fix: e.Fix})
		return res, fmt.Errorf("azuredevops: check scopes: %w", e)
	}
	return res, nil
}

type gitRepo struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	DefaultBranch string `json:"defaultBranch"`
	RemoteURL     string `json:"remoteUrl"`
	WebURL        string `json:"webUrl"`
	IsDisabled    bool   `json:"isDisabled"`
	Project       struct {
		ID             string `json:"id"`
		Name           string `json:"name"`
		Visibility     string `json:"visibility"`
		LastUpdateTime string `json:"lastUpdateTime"`
	} `json:"project"`
}

func (r gitRepo) toRepo() forge.Repo {
	out := forge.Repo{
		ID:            r.ID,
		FullName:      r.Project.Name + "/" + r.Name,
		DefaultBranch: strings.TrimPrefix(r.DefaultBranch, "refs/heads/"),
		CloneURL:      stripUser(r.RemoteURL),
		HTMLURL:       r.WebURL,
		Private:       r.Project.Visibility != "public",
		Archived:      r.IsDisabled,
	}
	if t, err := time.Parse(time.RFC3339Nano, r.Project.LastUpdateTime); err == nil {
		out.UpdatedAt = t.UTC()
	}
	return out
}

// stripUser removes the "organisation@" Azure DevOps puts in remote URLs.
func stripUser(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.User = nil
	return u.String()
}

// ListRepos implements forge.RepoLister. The organisation-level
// repository list returns every repository of every project the token can
// read in one answer (it has no server-side paging), so the search and
// the pages are applied here, over a listing sorted by full name.
func (p *Provider) ListRepos(ctx context.Context, c *forge.Conn, opt forge.ListOptions) (forge.RepoPage, error) {
	cl, err := p.client(ctx, c)
	if err != nil {
		return forge.RepoPage{}, err
	}
	var res struct {
		Value []gitRepo `json:"value"`
	}
	if _, err := cl.do(ctx, http.MethodGet, "_apis/git/repositories", nil, nil, &res); err != nil {
		return forge.RepoPage{}, apiError("list repositories", err, nil)
	}
	search := strings.ToLower(strings.TrimSpace(opt.Search))
	var all []forge.Repo
	for _, r := range res.Value {
		repo := r.toRepo()
		if search == "" || strings.Contains(strings.ToLower(repo.FullName), search) {
			all = append(all, repo)
		}
	}
	slices.SortFunc(all, func(a, b forge.Repo) int {
		return strings.Compare(strings.ToLower(a.FullName), strings.ToLower(b.FullName))
	})
	page, per := max(opt.Page, 1), opt.PerPage
	if per <= 0 {
		per = 50
	}
	lo, hi := min((page-1)*per, len(all)), min(page*per, len(all))
	out := forge.RepoPage{Repos: all[lo:hi]}
	if hi < len(all) {
		out.NextPage = page + 1
	}
	return out, nil
}

var guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// GetRepo implements forge.RepoLister; repoID is the repository GUID.
func (p *Provider) GetRepo(ctx context.Context, c *forge.Conn, repoID string) (forge.Repo, error) {
	r, err := p.getRepo(ctx, c, repoID)
	if err != nil {
		return forge.Repo{}, err
	}
	return r.toRepo(), nil
}

func (p *Provider) getRepo(ctx context.Context, c *forge.Conn, repoID string) (gitRepo, error) {
	notVisible := slipway.Errorf(slipway.ECodeRepoNotVisible, "Azure DevOps repository %s does not exist or the token cannot see it", repoID).
		WithFix("Give the token's user access to the repository's project")
	if !guidPattern.MatchString(repoID) {
		return gitRepo{}, fmt.Errorf("azuredevops: get repository: %w", notVisible)
	}
	cl, err := p.client(ctx, c)
	if err != nil {
		return gitRepo{}, err
	}
	var r gitRepo
	if _, err := cl.do(ctx, http.MethodGet, "_apis/git/repositories/"+repoID, nil, nil, &r); err != nil {
		return gitRepo{}, apiError("get repository", err, notVisible)
	}
	return r, nil
}

func repoNotVisible(repo forge.Repo) *slipway.Error {
	return slipway.Errorf(slipway.ECodeRepoNotVisible, "Azure DevOps repository %s is not visible to the token", repo.FullName).
		WithFix("Give the token's user access to the repository's project")
}

type gitRef struct {
	Name           string `json:"name"`
	ObjectID       string `json:"objectId"`
	PeeledObjectID string `json:"peeledObjectId"`
}

// maxRefPages bounds how many continuation pages one listing follows.
const maxRefPages = 50

// refs lists refs under filter (for example "heads/"), following the
// x-ms-continuationtoken header. Annotated tags are peeled to their
// commit.
func (p *Provider) refs(ctx context.Context, cl *client, repo forge.Repo, filter string) ([]gitRef, error) {
	var all []gitRef
	q := url.Values{"filter": {filter}, "peelTags": {"true"}, "$top": {"1000"}}
	for i := 0; i < maxRefPages; i++ {
		var res struct {
			Value []gitRef `json:"value"`
		}
		h, err := cl.do(ctx, http.MethodGet, "_apis/git/repositories/"+url.PathEscape(repo.ID)+"/refs", q, nil, &res)
		if err != nil {
			return nil, apiError("list refs", err, repoNotVisible(repo))
		}
		all = append(all, res.Value...)
		token := h.Get("X-Ms-Continuationtoken")
		if token == "" {
			break
		}
		q.Set("continuationToken", token)
	}
	return all, nil
}

func (r gitRef) sha() string {
	if r.PeeledObjectID != "" {
		return r.PeeledObjectID
	}
	return r.ObjectID
}

// ListRefs implements forge.RefLister.
func (p *Provider) ListRefs(ctx context.Context, c *forge.Conn, repo forge.Repo) ([]forge.Ref, error) {
	cl, err := p.client(ctx, c)
	if err != nil {
		return nil, err
	}
	var out []forge.Ref
	for _, k := range []struct {
		filter string
		kind   forge.RefKind
	}{{"heads/", forge.RefBranch}, {"tags/", forge.RefTag}} {
		refs, err := p.refs(ctx, cl, repo, k.filter)
		if err != nil {
			return nil, err
		}
		for _, r := range refs {
			out = append(out, forge.Ref{Name: strings.TrimPrefix(r.Name, "refs/"+k.filter), Kind: k.kind, SHA: r.sha()})
		}
	}
	return out, nil
}

var hexSHA = regexp.MustCompile(`^[0-9a-fA-F]{40}$`)

// ResolveRef implements forge.RefLister. The refs filter is a prefix
// match, so the exact name is picked out of the answer.
func (p *Provider) ResolveRef(ctx context.Context, c *forge.Conn, repo forge.Repo, ref string) (slipway.Commit, error) {
	notFound := slipway.Errorf(slipway.ECodeRefNotFound, "%q is not a branch, tag or commit of %s", ref, repo.FullName)
	if strings.TrimSpace(ref) == "" {
		return slipway.Commit{}, fmt.Errorf("azuredevops: resolve ref: %w", notFound)
	}
	cl, err := p.client(ctx, c)
	if err != nil {
		return slipway.Commit{}, err
	}
	sha := ""
	for _, prefix := range []string{"heads/", "tags/"} {
		refs, err := p.refs(ctx, cl, repo, prefix+ref)
		if err != nil {
			return slipway.Commit{}, err
		}
		for _, r := range refs {
			if r.Name == "refs/"+prefix+ref {
				sha = r.sha()
			}
		}
		if sha != "" {
			break
		}
	}
	if sha == "" && hexSHA.MatchString(ref) {
		sha = ref
	}
	if sha == "" {
		return slipway.Commit{}, fmt.Errorf("azuredevops: resolve ref: %w", notFound)
	}
	var cm struct {
		CommitID  string `json:"commitId"`
		Comment   string `json:"comment"`
		RemoteURL string `json:"remoteUrl"`
		Author    struct {
			Name string `json:"name"`
			Date string `json:"date"`
		} `json:"author"`
		Committer struct {
			Date string `json:"date"`
		} `json:"committer"`
	}
	if _, err := cl.do(ctx, http.MethodGet, "_apis/git/repositories/"+url.PathEscape(repo.ID)+"/commits/"+url.PathEscape(sha), nil, nil, &cm); err != nil {
		return slipway.Commit{}, apiError("get commit", err, notFound)
	}
	out := slipway.Commit{SHA: cm.CommitID, Message: cm.Comment, Author: cm.Author.Name, URL: cm.RemoteURL}
	if t, err := time.Parse(time.RFC3339Nano, cm.Committer.Date); err == nil {
		out.Timestamp = t.UTC()
	}
	return out, nil
}

// CloneCredentials implements forge.Cloner: Azure DevOps takes the PAT as
// the basic-auth password with any user name.
func (p *Provider) CloneCredentials(ctx context.Context, c *forge.Conn, repo forge.Repo) (forge.CloneCredentials, error) {
	token, err := c.AccessToken(ctx)
	if err != nil {
		return forge.CloneCredentials{}, fmt.Errorf("azuredevops: access token: %w", err)
	}
	if repo.CloneURL == "" {
		return forge.CloneCredentials{}, fmt.Errorf("azuredevops: clone credentials: %w", slipway.Errorf(slipway.ECodeInvalid, "repository %s has no clone URL", repo.FullName))
	}
	return forge.CloneCredentials{URL: stripUser(repo.CloneURL), Username: "pat", Password: token}, nil
}

// maxDiffPages bounds ChangedFiles on enormous diffs.
const maxDiffPages = 50

// ChangedFiles implements forge.Comparer with the commit diff API.
// diffCommonCommit=false compares the two commits directly rather than
// from their merge base. Paths come back rooted ("/src/app.go") and are
// returned repository-relative like every other provider's.
func (p *Provider) ChangedFiles(ctx context.Context, c *forge.Conn, repo forge.Repo, base, head string) ([]string, error) {
	cl, err := p.client(ctx, c)
	if err != nil {
		return nil, err
	}
	const top = 2000
	seen := map[string]bool{}
	var files []string
	add := func(path string) {
		path = strings.TrimPrefix(path, "/")
		if path != "" && !seen[path] {
			seen[path] = true
			files = append(files, path)
		}
	}
	for skip, i := 0, 0; ; i++ {
		if i >= maxDiffPages {
			return nil, fmt.Errorf("azuredevops: changed files: %w", slipway.Errorf(slipway.ECodeTooLarge, "more than %d changed files between %s and %s", maxDiffPages*top, base, head))
		}
		q := url.Values{
			"baseVersion": {base}, "baseVersionType": {"commit"},
			"targetVersion": {head}, "targetVersionType": {"commit"},
			"diffCommonCommit": {"false"}, "$top": {fmt.Sprint(top)}, "$skip": {fmt.Sprint(skip)},
		}
		var res struct {
			AllChangesIncluded bool `json:"allChangesIncluded"`
			Changes            []struct {
				ChangeType       string `json:"changeType"`
				SourceServerItem string `json:"sourceServerItem"`
				OriginalPath     string `json:"originalPath"`
				Item             struct {
					Path          string `json:"path"`
					IsFolder      bool   `json:"isFolder"`
					GitObjectType string `json:"gitObjectType"`
				} `json:"item"`
			} `json:"changes"`
		}
		if _, err := cl.do(ctx, http.MethodGet, "_apis/git/repositories/"+url.PathEscape(repo.ID)+"/diffs/commits", q, nil, &res); err != nil {
			return nil, apiError("diff commits", err, slipway.Errorf(slipway.ECodeRefNotFound, "cannot compare %s..%s in %s: a commit is missing", base, head, repo.FullName))
		}
		for _, ch := range res.Changes {
			if ch.Item.IsFolder || ch.Item.GitObjectType == "tree" {
				continue
			}
			add(ch.OriginalPath)
			add(ch.SourceServerItem)
			add(ch.Item.Path)
		}
		if res.AllChangesIncluded || len(res.Changes) == 0 {
			return files, nil
		}
		skip += len(res.Changes)
	}
}

// SetCommitStatus implements forge.StatusReporter. The status context is
// split into Azure DevOps' genre and name at its first slash
// ("slipway/production/web" → genre "slipway", name "production/web").
func (p *Provider) SetCommitStatus(ctx context.Context, c *forge.Conn, repo forge.Repo, sha string, st forge.CommitStatus) error {
	cl, err := p.client(ctx, c)
	if err != nil {
		return err
	}
	genre, name, ok := strings.Cut(st.Context, "/")
	if !ok {
		genre, name = "slipway", st.Context
	}
	state := "pending"
	switch st.State {
	case forge.StatusSuccess:
		state = "succeeded"
	case forge.StatusFailure:
		state = "failed"
	}
	body := map[string]any{
		"state":       state,
		"description": st.Description,
		"context":     map[string]string{"genre": genre, "name": name},
	}
	if st.TargetURL != "" {
		body["targetUrl"] = st.TargetURL
	}
	if _, err := cl.do(ctx, http.MethodPost, "_apis/git/repositories/"+url.PathEscape(repo.ID)+"/commits/"+url.PathEscape(sha)+"/statuses", nil, body, nil); err != nil {
		return apiError("set commit status", err, slipway.Errorf(slipway.ECodeRefNotFound, "commit %s not found in %s", sha, repo.FullName))
	}
	return nil
}
