// Package gitea is the forge provider for Gitea and Forgejo servers: a
// personal access token or an OAuth2 grant lists repositories, branches and
// tags, mints clone credentials, installs repository webhooks, verifies and
// parses their deliveries, compares commits and reports commit statuses.
//
// Scopes. Gitea tokens carry scopes per category and access level. Slipway
// needs:
//   - read:user        to know which account the token acts as;
//   - read:repository  to list repositories, branches and tags and to clone;
//   - write:repository to install webhooks and set commit statuses (it
//     implies read:repository).
//
// Gitea does not report a token's scopes in a header, so Check probes one
// request per scope: an API call outside a token's scopes is refused with
// HTTP 403 "token does not have at least one of required scope(s)" before
// any lookup, so the probe for write:repository (deleting hook 0 of a
// repository that does not exist) changes nothing and answers 404 when the
// scope is held. Missing scopes are refused with slipway.ECodeScopesMissing
// naming each one in Details["missing"].
package gitea

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	sdk "code.gitea.io/sdk/gitea"
	"golang.org/x/oauth2"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
)

// The scopes Slipway needs on a Gitea token, and asks for over OAuth2.
const (
	ScopeReadUser        = "read:user"
	ScopeReadRepository  = "read:repository"
	ScopeWriteRepository = "write:repository"
)

// Provider talks to one kind of host: Gitea or Forgejo. The zero value is
// ready to use.
type Provider struct{}

// New returns the Gitea/Forgejo provider.
func New() *Provider { return &Provider{} }

// Compile-time proof of the capabilities this provider offers.
var (
	_ forge.Provider       = (*Provider)(nil)
	_ forge.Checker        = (*Provider)(nil)
	_ forge.RepoLister     = (*Provider)(nil)
	_ forge.RefLister      = (*Provider)(nil)
	_ forge.Cloner         = (*Provider)(nil)
	_ forge.HookInstaller  = (*Provider)(nil)
	_ forge.HookParser     = (*Provider)(nil)
	_ forge.Comparer       = (*Provider)(nil)
	_ forge.StatusReporter = (*Provider)(nil)
	_ forge.OAuthProvider  = (*Provider)(nil)
)

// Kind names the provider.
func (*Provider) Kind() slipway.Provider { return slipway.ProviderGitea }

// client builds an API client bound to ctx. The server version check of
// the SDK is skipped: it would cost one more request per call.
func client(ctx context.Context, c *forge.Conn) (*sdk.Client, error) {
	base := strings.TrimSuffix(c.APIBaseURL(), "/")
	if base == "" {
		return nil, slipway.Errorf(slipway.ECodeInvalid, "gitea: the integration has no base URL")
	}
	token, err := c.AccessToken(ctx)
	if err != nil {
		return nil, fmt.Errorf("gitea: access token: %w", err)
	}
	cl, err := sdk.NewClient(base, sdk.SetToken(token), sdk.SetHTTPClient(c.HTTPClient()),
		sdk.SetContext(ctx), sdk.SetGiteaVersion(""))
	if err != nil {
		return nil, fmt.Errorf("gitea: client: %w", err)
	}
	return cl, nil
}

// scopeRefusal matches Gitea's answer to a request outside a token's scopes.
var scopeRefusal = regexp.MustCompile(`token does not have at least one of required scope\(s\)(?:, required=\[([^\]]*)\])?(?:, token scope=(\S*))?`)

// mapErr turns a failed API call into a slipway error. what names the
// operation for the message; notFound is the code a 404 means here.
func mapErr(what string, resp *sdk.Response, err error, notFound slipway.ErrorCode) error {
	if err == nil {
		return nil
	}
	if resp == nil || resp.Response == nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("gitea: %s: %w", what, err)
		}
		e := slipway.Errorf(slipway.ECodeProviderUnreachable, "gitea: %s: the server does not answer", what).
			WithFix("Check the base URL and that Slipway can reach it.")
		return fmt.Errorf("%w: %w", e, err)
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return slipway.Errorf(slipway.ECodeCredentialsInvalid, "gitea: %s: the token was rejected (expired, revoked or wrong)", what).
			WithFix("Create a new access token and update the integration.")
	case http.StatusForbidden:
		if m := scopeRefusal.FindStringSubmatch(err.Error()); m != nil {
			e := slipway.Errorf(slipway.ECodeScopesMissing, "gitea: %s: the token lacks the scope %s", what, m[1])
			e.Details = map[string]string{"missing": strings.ReplaceAll(m[1], " ", ",")}
			return e.WithFix("Create a token with the scopes " + strings.Join(requiredScopes(), ", ") + ".")
		}
		return slipway.Errorf(slipway.ECodeForbidden, "gitea: %s: forbidden: %v", what, err)
	case http.StatusNotFound:
		if notFound != "" {
			return slipway.Errorf(notFound, "gitea: %s: not found or not visible to this integration", what)
		}
	case http.StatusTooManyRequests:
		return slipway.Errorf(slipway.ECodeRateLimited, "gitea: %s: rate limited", what)
	}
	return fmt.Errorf("%w: %w", slipway.Errorf(slipway.ECodeProviderError, "gitea: %s: HTTP %d", what, resp.StatusCode), err)
}

func requiredScopes() []string {
	return []string{ScopeReadUser, ScopeReadRepository, ScopeWriteRepository}
}

func statusOf(resp *sdk.Response) int {
	if resp == nil || resp.Response == nil {
		return 0
	}
	return resp.StatusCode
}

// splitFullName returns owner and name of "owner/name".
func splitFullName(fullName string) (owner, name string, err error) {
	owner, name, ok := strings.Cut(fullName, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return "", "", slipway.Errorf(slipway.ECodeInvalid, "gitea: %q is not an owner/name repository name", fullName)
	}
	return owner, name, nil
}

func toRepo(r *sdk.Repository) forge.Repo {
	return forge.Repo{
		ID:            strconv.FormatInt(r.ID, 10),
		FullName:      r.FullName,
		DefaultBranch: r.DefaultBranch,
		CloneURL:      r.CloneURL,
		HTMLURL:       r.HTMLURL,
		Private:       r.Private,
		Archived:      r.Archived,
		UpdatedAt:     r.Updated,
	}
}

// Check verifies the token: the account it acts as and the scopes Slipway
// needs (see the package documentation).
func (p *Provider) Check(ctx context.Context, c *forge.Conn) (forge.CheckResult, error) {
	cl, err := client(ctx, c)
	if err != nil {
		return forge.CheckResult{}, err
	}
	var res forge.CheckResult
	missing := map[string]bool{}
	probe := func(scope string, resp *sdk.Response, err error) error {
		if err == nil {
			return nil
		}
		if statusOf(resp) == http.StatusForbidden && scopeRefusal.MatchString(err.Error()) {
			missing[scope] = true
			return nil
		}
		return err
	}

	me, resp, err := cl.GetMyUserInfo()
	if err := probe(ScopeReadUser, resp, err); err != nil {
		return res, mapErr("check the token", resp, err, slipway.ECodeCredentialsInvalid)
	}
	account := ""
	if me != nil {
		account = me.UserName
	}
	res.Account = account

	// /user/repos would also need read:user; the search needs only
	// read:repository.
	_, resp, err = cl.SearchRepos(sdk.SearchRepoOptions{ListOptions: sdk.ListOptions{Page: 1, PageSize: 1}})
	if err := probe(ScopeReadRepository, resp, err); err != nil {
		return res, mapErr("list repositories", resp, err, "")
	}

	// Deleting hook 0 of a repository that does not exist: refused for the
	// scope before any lookup, otherwise a harmless 404.
	owner := account
	if owner == "" {
		owner = "slipway-scope-probe"
	}
	resp, err = cl.DeleteRepoHook(owner, "slipway-scope-probe-"+strconv.FormatInt(int64(len(owner)), 10)+"-nonexistent", 0)
	if statusOf(resp) != http.StatusNotFound {
		if err := probe(ScopeWriteRepository, resp, err); err != nil {
			return res, mapErr("probe webhook scope", resp, err, "")
		}
	}

	for _, s := range requiredScopes() {
		if missing[s] {
			res.Missing = append(res.Missing, s)
		} else {
			res.Scopes = append(res.Scopes, s)
		}
	}
	if len(res.Missing) > 0 {
		list := strings.Join(res.Missing, ", ")
		fix := "Create a token with the scopes " + strings.Join(requiredScopes(), ", ") + " and update the integration."
		res.Problems = append(res.Problems, forge.Problem{
			Code: slipway.ECodeScopesMissing, Message: "The token lacks the scopes " + list + ".", Fix: fix,
		})
		e := slipway.Errorf(slipway.ECodeScopesMissing, "gitea: the token lacks the scopes %s", list).WithFix(fix)
		e.Details = map[string]string{"missing": strings.Join(res.Missing, ",")}
		return res, e
	}
	return res, nil
}

// ListRepos lists the repositories the token's account can see: its own,
// its collaborations and those of its organisations.
func (p *Provider) ListRepos(ctx context.Context, c *forge.Conn, opt forge.ListOptions) (forge.RepoPage, error) {
	cl, err := client(ctx, c)
	if err != nil {
		return forge.RepoPage{}, err
	}
	page, perPage := opt.Page, opt.PerPage
	if page < 1 {
		page = 1
	}
	if perPage < 1 || perPage > 50 {
		perPage = 50
	}
	lo := sdk.ListOptions{Page: page, PageSize: perPage}
	var (
		repos []*sdk.Repository
		resp  *sdk.Response
	)
	if opt.Search == "" {
		repos, resp, err = cl.ListMyRepos(sdk.ListReposOptions{ListOptions: lo})
	} else {
		// Searching needs the account's id: the search covers the same
		// repositories as the listing when scoped to it.
		me, mresp, merr := cl.GetMyUserInfo()
		if merr != nil {
			return forge.RepoPage{}, mapErr("who am I", mresp, merr, slipway.ECodeCredentialsInvalid)
		}
		return searchRepos(ctx, c, opt.Search, me.ID, page, perPage)
	}
	if err != nil {
		return forge.RepoPage{}, mapErr("list repositories", resp, err, "")
	}
	out := forge.RepoPage{Repos: make([]forge.Repo, 0, len(repos))}
	for _, r := range repos {
		out.Repos = append(out.Repos, toRepo(r))
	}
	if resp != nil {
		out.NextPage = resp.NextPage
	}
	return out, nil
}

// GetRepo finds a repository by its numeric id.
func (p *Provider) GetRepo(ctx context.Context, c *forge.Conn, repoID string) (forge.Repo, error) {
	id, err := strconv.ParseInt(repoID, 10, 64)
	if err != nil || id <= 0 {
		return forge.Repo{}, slipway.Errorf(slipway.ECodeRepoNotVisible, "gitea: repository %q is not visible to this integration", repoID)
	}
	cl, err := client(ctx, c)
	if err != nil {
		return forge.Repo{}, err
	}
	r, resp, err := cl.GetRepoByID(id)
	if err != nil {
		return forge.Repo{}, mapErr("repository "+repoID, resp, err, slipway.ECodeRepoNotVisible)
	}
	return toRepo(r), nil
}

// ListRefs lists every branch and tag with the commit it points at (tags
// peeled to their commit).
func (p *Provider) ListRefs(ctx context.Context, c *forge.Conn, repo forge.Repo) ([]forge.Ref, error) {
	owner, name, err := splitFullName(repo.FullName)
	if err != nil {
		return nil, err
	}
	cl, err := client(ctx, c)
	if err != nil {
		return nil, err
	}
	var refs []forge.Ref
	for page := 1; page != 0; {
		branches, resp, err := cl.ListRepoBranches(owner, name, sdk.ListRepoBranchesOptions{ListOptions: sdk.ListOptions{Page: page, PageSize: 50}})
		if err != nil {
			return nil, mapErr("list branches of "+repo.FullName, resp, err, slipway.ECodeRepoNotVisible)
		}
		for _, b := range branches {
			if b.Commit != nil {
				refs = append(refs, forge.Ref{Name: b.Name, Kind: forge.RefBranch, SHA: b.Commit.ID})
			}
		}
		page = resp.NextPage
	}
	for page := 1; page != 0; {
		tags, resp, err := cl.ListRepoTags(owner, name, sdk.ListRepoTagsOptions{ListOptions: sdk.ListOptions{Page: page, PageSize: 50}})
		if err != nil {
			return nil, mapErr("list tags of "+repo.FullName, resp, err, slipway.ECodeRepoNotVisible)
		}
		for _, t := range tags {
			if t.Commit != nil {
				refs = append(refs, forge.Ref{Name: t.Name, Kind: forge.RefTag, SHA: t.Commit.SHA})
			}
		}
		page = resp.NextPage
	}
	return refs, nil
}

var fullSHA = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

// ResolveRef resolves a branch, then a tag (peeled to its commit), then a
// full commit SHA.
func (p *Provider) ResolveRef(ctx context.Context, c *forge.Conn, repo forge.Repo, ref string) (slipway.Commit, error) {
	owner, name, err := splitFullName(repo.FullName)
	if err != nil {
		return slipway.Commit{}, err
	}
	cl, err := client(ctx, c)
	if err != nil {
		return slipway.Commit{}, err
	}
	notFound := slipway.Errorf(slipway.ECodeRefNotFound, "gitea: %s has no branch, tag or commit %q", repo.FullName, ref)
	if ref == "" {
		return slipway.Commit{}, notFound
	}
	b, resp, err := cl.GetRepoBranch(owner, name, ref)
	if err == nil && b.Commit != nil {
		return slipway.Commit{
			SHA: b.Commit.ID, Message: b.Commit.Message, URL: b.Commit.URL,
			Author: authorName(b.Commit.Author), Timestamp: b.Commit.Timestamp,
		}, nil
	}
	if err != nil && statusOf(resp) != http.StatusNotFound {
		return slipway.Commit{}, mapErr("branch "+ref, resp, err, "")
	}
	sha := ""
	t, resp, err := cl.GetTag(owner, name, ref)
	switch {
	case err == nil && t.Commit != nil:
		sha = t.Commit.SHA
	case err != nil && statusOf(resp) != http.StatusNotFound:
		return slipway.Commit{}, mapErr("tag "+ref, resp, err, "")
	case fullSHA.MatchString(ref):
		sha = ref
	default:
		return slipway.Commit{}, notFound
	}
	cm, resp, err := cl.GetSingleCommit(owner, name, sha)
	if err != nil {
		if s := statusOf(resp); s == http.StatusNotFound || s == http.StatusUnprocessableEntity {
			return slipway.Commit{}, notFound
		}
		return slipway.Commit{}, mapErr("commit "+sha, resp, err, "")
	}
	out := slipway.Commit{SHA: cm.SHA, URL: cm.HTMLURL}
	if cm.RepoCommit != nil {
		out.Message = cm.RepoCommit.Message
		if cm.RepoCommit.Author != nil {
			out.Author = cm.RepoCommit.Author.Name
			if ts, err := parseTime(cm.RepoCommit.Author.Date); err == nil {
				out.Timestamp = ts
			}
		}
	}
	return out, nil
}

func authorName(u *sdk.PayloadUser) string {
	if u == nil {
		return ""
	}
	return u.Name
}

// CloneCredentials returns the HTTPS clone URL (on the internal URL when
// one is configured) with the token as the password of user "oauth2".
func (p *Provider) CloneCredentials(ctx context.Context, c *forge.Conn, repo forge.Repo) (forge.CloneCredentials, error) {
	token, err := c.AccessToken(ctx)
	if err != nil {
		return forge.CloneCredentials{}, fmt.Errorf("gitea: access token: %w", err)
	}
	cloneURL := repo.CloneURL
	if cloneURL == "" {
		cloneURL = strings.TrimSuffix(c.Integration.BaseURL, "/") + "/" + repo.FullName + ".git"
	}
	cloneURL = onInternalURL(c, cloneURL)
	return forge.CloneCredentials{URL: cloneURL, Username: "oauth2", Password: token, ExpiresAt: c.Secret.Expiry}, nil
}

// onInternalURL moves a public URL of the server onto its internal URL,
// so server-to-server traffic stays inside when the two differ.
func onInternalURL(c *forge.Conn, u string) string {
	pub := strings.TrimSuffix(c.Integration.BaseURL, "/")
	internal := strings.TrimSuffix(c.Integration.InternalURL, "/")
	if pub == "" || internal == "" || !strings.HasPrefix(u, pub+"/") {
		return u
	}
	return internal + strings.TrimPrefix(u, pub)
}

// HookEvents are the repository events Slipway subscribes to.
var hookEvents = []string{"push", "create", "delete", "repository"}

// InstallHook creates a Gitea-type repository webhook delivering JSON
// signed with the hook's secret.
func (p *Provider) InstallHook(ctx context.Context, c *forge.Conn, repo forge.Repo, hook forge.HookConfig) (string, error) {
	owner, name, err := splitFullName(repo.FullName)
	if err != nil {
		return "", err
	}
	cl, err := client(ctx, c)
	if err != nil {
		return "", err
	}
	h, resp, err := cl.CreateRepoHook(owner, name, sdk.CreateHookOption{
		Type:         sdk.HookTypeGitea,
		Config:       map[string]string{"url": hook.URL, "content_type": "json", "secret": hook.Secret},
		Events:       append([]string(nil), hookEvents...),
		BranchFilter: "*",
		Active:       true,
	})
	if err != nil {
		return "", mapErr("install webhook on "+repo.FullName, resp, err, slipway.ECodeRepoNotVisible)
	}
	return strconv.FormatInt(h.ID, 10), nil
}

// RemoveHook deletes a repository webhook; one already gone is fine.
func (p *Provider) RemoveHook(ctx context.Context, c *forge.Conn, repo forge.Repo, hookID string) error {
	owner, name, err := splitFullName(repo.FullName)
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(hookID, 10, 64)
	if err != nil {
		return slipway.Errorf(slipway.ECodeInvalid, "gitea: hook id %q is not a number", hookID)
	}
	cl, err := client(ctx, c)
	if err != nil {
		return err
	}
	resp, err := cl.DeleteRepoHook(owner, name, id)
	if err != nil && statusOf(resp) != http.StatusNotFound {
		return mapErr("remove webhook from "+repo.FullName, resp, err, "")
	}
	return nil
}

// ChangedFiles lists the files the commits between base and head touched.
func (p *Provider) ChangedFiles(ctx context.Context, c *forge.Conn, repo forge.Repo, base, head string) ([]string, error) {
	owner, name, err := splitFullName(repo.FullName)
	if err != nil {
		return nil, err
	}
	cl, err := client(ctx, c)
	if err != nil {
		return nil, err
	}
	cmp, resp, err := cl.CompareCommits(owner, name, base, head)
	if err != nil {
		return nil, mapErr("compare "+base+"..."+head, resp, err, slipway.ECodeRefNotFound)
	}
	seen := map[string]bool{}
	var files []string
	for _, cm := range cmp.Commits {
		for _, f := range cm.Files {
			if f != nil && !seen[f.Filename] {
				seen[f.Filename] = true
				files = append(files, f.Filename)
			}
		}
	}
	return files, nil
}

// SetCommitStatus reports st on commit sha.
func (p *Provider) SetCommitStatus(ctx context.Context, c *forge.Conn, repo forge.Repo, sha string, st forge.CommitStatus) error {
	owner, name, err := splitFullName(repo.FullName)
	if err != nil {
		return err
	}
	cl, err := client(ctx, c)
	if err != nil {
		return err
	}
	_, resp, err := cl.CreateStatus(owner, name, sha, sdk.CreateStatusOption{
		State: sdk.StatusState(st.State), TargetURL: st.TargetURL,
		Description: st.Description, Context: st.Context,
	})
	if err != nil {
		return mapErr("set commit status on "+repo.FullName, resp, err, slipway.ECodeRefNotFound)
	}
	return nil
}

// OAuthEndpoint returns the server's OAuth2 endpoints.
func (p *Provider) OAuthEndpoint(baseURL string) oauth2.Endpoint {
	base := strings.TrimSuffix(baseURL, "/")
	return oauth2.Endpoint{
		AuthURL:   base + "/login/oauth/authorize",
		TokenURL:  base + "/login/oauth/access_token",
		AuthStyle: oauth2.AuthStyleInParams,
	}
}

// OAuthScopes are the scopes Slipway asks for.
func (p *Provider) OAuthScopes() []string { return requiredScopes() }
