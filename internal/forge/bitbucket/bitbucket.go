// Package bitbucket connects Slipway to Bitbucket Cloud through a thin
// typed client of its 2.0 REST API: connection checks, repository and ref
// listings, clone credentials, repository webhooks signed with HMAC-SHA256,
// delivery verification and normalization, changed files (diffstat) and
// build statuses.
//
// Credentials: an OAuth consumer (bearer token, scopes repository, account
// and webhook), a user API token (email + token over basic auth), or a
// repository/workspace access token (bearer). Access tokens are not tied to
// a user, so for them the integration names its workspace in
// Settings["workspace"] (or AccountName).
package bitbucket

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/restapi"
)

// Bitbucket Cloud answers at two fixed addresses: the REST API only at
// APIRoot, the web UI and OAuth only at WebRoot. endpointsFor is the one
// place that maps an integration's base URL onto them.
const (
	APIRoot = "https://api.bitbucket.org/2.0"
	WebRoot = "https://bitbucket.org"
)

// endpoints are the roots one integration talks to.
type endpoints struct {
	API string // REST root, with /2.0
	Web string // web and OAuth root
}

// endpointsFor maps a base URL to Bitbucket Cloud's roots. Users give the
// web address (what their browser shows), the API address, or nothing;
// any other host is not Bitbucket Cloud and is refused, so credentials are
// never sent elsewhere.
func endpointsFor(baseURL string) (endpoints, error) {
	cloud := endpoints{API: APIRoot, Web: WebRoot}
	base := strings.TrimSpace(baseURL)
	if base == "" {
		return cloud, nil
	}
	if u, err := url.Parse(base); err == nil && u.Scheme == "https" && u.User == nil && u.RawQuery == "" {
		path := strings.Trim(u.Path, "/")
		switch strings.ToLower(u.Host) {
		case "bitbucket.org", "www.bitbucket.org", "api.bitbucket.org":
			if path == "" || path == "2.0" {
				return cloud, nil
			}
		}
	}
	return endpoints{}, slipway.Errorf(slipway.ECodeInvalid, "%q is not Bitbucket Cloud: its API answers only at %s", base, APIRoot).
		WithFix("Leave the base URL empty or use " + WebRoot)
}

// Clone user names Bitbucket documents for token authentication over HTTPS.
const (
	accessTokenGitUser = "x-token-auth"               // OAuth and repository/workspace access tokens
	apiTokenGitUser    = "x-bitbucket-api-token-auth" // user API tokens
)

// oauthScopes are the OAuth consumer permissions Slipway asks for and
// checks (repository:write and the like imply them: hasScope).
var oauthScopes = []string{"repository", "account", "webhook"}

// apiTokenScopes are the granular scopes of API tokens: the union of the
// scopes Bitbucket's API description names for every operation the
// client calls (TestAPITokenScopesMatchDocument keeps them in step).
var apiTokenScopes = []string{
	"read:user:bitbucket",
	"read:workspace:bitbucket",
	"read:repository:bitbucket",
	"read:webhook:bitbucket",
	"write:webhook:bitbucket",
	"delete:webhook:bitbucket",
}

// scopeFix says how to grant what is missing, in the words of the kind of
// credential that lacks it.
func scopeFix(granular bool) string {
	if granular {
		return "Create an API token with the scopes " + strings.Join(apiTokenScopes, ", ") + " and update the integration"
	}
	return "Grant the OAuth consumer (or access token) the permissions " + strings.Join(oauthScopes, ", ") + " and reconnect"
}

// Provider is the Bitbucket Cloud provider.
type Provider struct {
	log *slog.Logger
}

// New returns a Bitbucket provider that logs through log.
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
	_ forge.OAuthProvider  = (*Provider)(nil)
)

// Kind implements forge.Provider.
func (*Provider) Kind() slipway.Provider { return slipway.ProviderBitbucket }

// OAuthEndpoint implements forge.OAuthProvider. OAuth lives on the web
// root whatever base URL the integration names (a base URL that is not
// Bitbucket Cloud never gets this far: connect checks it first).
func (*Provider) OAuthEndpoint(string) oauth2.Endpoint {
	return oauth2.Endpoint{
		AuthURL:   WebRoot + "/site/oauth2/authorize",
		TokenURL:  WebRoot + "/site/oauth2/access_token",
		AuthStyle: oauth2.AuthStyleInHeader,
	}
}

// OAuthScopes implements forge.OAuthProvider. Bitbucket takes scopes from
// the consumer's settings, not the request, but they are listed here so
// the connect page can tell the user which boxes to tick.
func (*Provider) OAuthScopes() []string { return append([]string(nil), oauthScopes...) }

// workspaceOf is the one workspace an integration is bound to: the one it
// names, or, for an access token (which belongs to one workspace or
// repository, not to a user), its account. Users without one see every
// workspace they belong to.
func workspaceOf(c *forge.Conn) string {
	if ws := c.Integration.Settings["workspace"]; ws != "" {
		return ws
	}
	if c.Integration.AuthMethod == slipway.AuthToken {
		return c.Integration.AccountName
	}
	return ""
}

type account struct {
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	Nickname    string `json:"nickname"`
	UUID        string `json:"uuid"`
}

// Check implements forge.Checker. Users (OAuth, API token) are identified
// by GET /2.0/user; access tokens have no user, so for them the check
// reads the integration's workspace instead. OAuth responses carry the
// granted scopes in X-OAuth-Scopes; other credentials do not expose them.
func (p *Provider) Check(ctx context.Context, c *forge.Conn) (forge.CheckResult, error) {
	cl, err := p.client(ctx, c)
	if err != nil {
		return forge.CheckResult{}, err
	}
	var res forge.CheckResult
	var user account
	header, err := cl.do(ctx, http.MethodGet, "/user", nil, nil, &user)
	switch {
	case err == nil:
		res.Account = orDefault(user.Username, orDefault(user.Nickname, user.DisplayName))
	case c.Integration.AuthMethod == slipway.AuthToken && (restapi.IsStatus(err, http.StatusUnauthorized) || restapi.IsStatus(err, http.StatusForbidden)) && workspaceOf(c) != "":
		ws := workspaceOf(c)
		var probe struct{}
		header, err = cl.do(ctx, http.MethodGet, "/repositories/"+url.PathEscape(ws), url.Values{"pagelen": {"1"}}, nil, &probe)
		if err != nil {
			return res, apiError("read workspace "+ws, err, slipway.Errorf(slipway.ECodeCredentialsInvalid, "the access token cannot see workspace %s", ws))
		}
		res.Account = ws
	default:
		return res, apiError("read the current user", err, nil)
	}
	if raw := header.Get("X-OAuth-Scopes"); raw != "" {
		for _, sc := range strings.Split(raw, ",") {
			if sc = strings.TrimSpace(sc); sc != "" {
				res.Scopes = append(res.Scopes, sc)
			}
		}
	}
	if len(res.Scopes) == 0 {
		return res, nil // the credential does not expose its scopes
	}
	// API tokens carry granular scopes (read:repository:bitbucket); OAuth
	// consumers and access tokens the older names (repository).
	granular := c.Integration.AuthMethod == slipway.AuthBasicToken || slices.ContainsFunc(res.Scopes, isGranular)
	need := oauthScopes
	if granular {
		need = apiTokenScopes
	}
	for _, n := range need {
		if !hasScope(res.Scopes, n) {
			res.Missing = append(res.Missing, n)
		}
	}
	if len(res.Missing) > 0 {
		missing := strings.Join(res.Missing, ", ")
		e := slipway.Errorf(slipway.ECodeScopesMissing, "Bitbucket credentials are missing scopes: %s", missing).WithFix(scopeFix(granular))
		e.Details = map[string]string{"missing": missing}
		res.Problems = append(res.Problems, forge.Problem{Code: e.Code, Message: e.Message, Fix: e.Fix})
		return res, fmt.Errorf("bitbucket: check scopes: %w", e)
	}
	return res, nil
}

func isGranular(scope string) bool { return strings.HasSuffix(scope, ":bitbucket") }

// hasScope reports whether granted covers need. Bitbucket's OAuth scopes
// imply their weaker forms (repository:write covers repository); granular
// scopes imply nothing and must be granted one by one.
func hasScope(granted []string, need string) bool {
	for _, g := range granted {
		if g == need || !isGranular(need) && strings.HasPrefix(g, need+":") {
			return true
		}
	}
	return false
}

// Bitbucket's JSON shapes, reduced to what Slipway reads.
type (
	link struct {
		Href string `json:"href"`
	}
	links struct {
		HTML  link `json:"html"`
		Clone []struct {
			Name string `json:"name"`
			Href string `json:"href"`
		} `json:"clone"`
	}
	repository struct {
		UUID       string `json:"uuid"`
		FullName   string `json:"full_name"`
		Name       string `json:"name"`
		IsPrivate  bool   `json:"is_private"`
		UpdatedOn  string `json:"updated_on"`
		Links      links  `json:"links"`
		Mainbranch *struct {
			Name string `json:"name"`
		} `json:"mainbranch"`
	}
	page[T any] struct {
		Values []T    `json:"values"`
		Next   string `json:"next"`
		Page   int    `json:"page"`
	}
)

func (r repository) toRepo() forge.Repo {
	out := forge.Repo{ID: r.UUID, FullName: r.FullName, HTMLURL: r.Links.HTML.Href, Private: r.IsPrivate}
	if r.Mainbranch != nil {
		out.DefaultBranch = r.Mainbranch.Name
	}
	for _, cl := range r.Links.Clone {
		if cl.Name == "https" {
			out.CloneURL = stripUser(cl.Href)
		}
	}
	if out.CloneURL == "" && out.HTMLURL != "" {
		out.CloneURL = out.HTMLURL + ".git"
	}
	if t, err := time.Parse(time.RFC3339Nano, r.UpdatedOn); err == nil {
		out.UpdatedAt = t.UTC()
	}
	return out
}

// stripUser removes the "user@" Bitbucket puts in HTTPS clone links.
func stripUser(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.User = nil
	return u.String()
}

// ListRepos implements forge.RepoLister: the integration's workspace when
// it is bound to one, otherwise every workspace the user belongs to
// (GET /user/workspaces), one after the other. Bitbucket removed the
// cross-workspace GET /repositories?role=member (CHANGE-2770).
//
// Pages are opaque to callers: page p is page (p-1)%workspaceStride+1 of
// the workspace at index (p-1)/workspaceStride, so a listing resumes in
// the right workspace without any state kept between calls.
func (p *Provider) ListRepos(ctx context.Context, c *forge.Conn, opt forge.ListOptions) (forge.RepoPage, error) {
	cl, err := p.client(ctx, c)
	if err != nil {
		return forge.RepoPage{}, err
	}
	pageNo := max(opt.Page, 1)
	wsIndex, wsPage := (pageNo-1)/workspaceStride, (pageNo-1)%workspaceStride+1
	workspaces := []string{workspaceOf(c)}
	if workspaces[0] == "" {
		if workspaces, err = cl.workspaces(ctx); err != nil {
			return forge.RepoPage{}, err
		}
	}
	if wsIndex >= len(workspaces) {
		return forge.RepoPage{}, nil
	}
	q := url.Values{"page": {strconv.Itoa(wsPage)}, "pagelen": {strconv.Itoa(pageLen(opt.PerPage))}, "sort": {"full_name"}}
	if s := strings.TrimSpace(opt.Search); s != "" {
		q.Set("q", `name ~ "`+bbqlEscape(s)+`"`)
	}
	var res page[repository]
	if _, err := cl.do(ctx, http.MethodGet, "/repositories/"+url.PathEscape(workspaces[wsIndex]), q, nil, &res); err != nil {
		return forge.RepoPage{}, apiError("list repositories of "+workspaces[wsIndex], err, nil)
	}
	out := forge.RepoPage{}
	for _, r := range res.Values {
		out.Repos = append(out.Repos, r.toRepo())
	}
	switch {
	case res.Next != "" && wsPage < workspaceStride:
		out.NextPage = pageNo + 1
	case wsIndex+1 < len(workspaces):
		out.NextPage = (wsIndex+1)*workspaceStride + 1
	}
	return out, nil
}

// workspaceStride bounds the pages listed per workspace (100 repositories
// each) and spaces the workspaces out in the page numbers.
const workspaceStride = 1000

// workspaces lists the slugs of the workspaces the user belongs to, in
// slug order.
func (cl *client) workspaces(ctx context.Context) ([]string, error) {
	type access struct {
		Workspace struct {
			Slug string `json:"slug"`
		} `json:"workspace"`
	}
	var slugs []string
	next, q := "/user/workspaces", url.Values{"sort": {"slug"}, "pagelen": {"100"}}
	for i := 0; next != "" && i < maxPages; i++ {
		var res page[access]
		if _, err := cl.do(ctx, http.MethodGet, next, q, nil, &res); err != nil {
			return nil, apiError("list workspaces", err, nil)
		}
		for _, a := range res.Values {
			if a.Workspace.Slug != "" {
				slugs = append(slugs, a.Workspace.Slug)
			}
		}
		next, q = res.Next, nil
	}
	return slugs, nil
}

func pageLen(n int) int {
	if n <= 0 {
		return 50
	}
	return min(n, 100) // Bitbucket's maximum
}

// bbqlEscape escapes a string for a double-quoted BBQL literal.
func bbqlEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

var uuidPattern = regexp.MustCompile(`^\{[0-9a-fA-F-]{36}\}$`)

// GetRepo implements forge.RepoLister. repoID is the repository UUID with
// its braces; Bitbucket resolves a UUID without knowing the workspace when
// the workspace segment is "{}".
func (p *Provider) GetRepo(ctx context.Context, c *forge.Conn, repoID string) (forge.Repo, error) {
	notVisible := slipway.Errorf(slipway.ECodeRepoNotVisible, "Bitbucket repository %s does not exist or the integration cannot see it", repoID).
		WithFix("Give the integration's account access to the repository")
	if !uuidPattern.MatchString(repoID) {
		return forge.Repo{}, fmt.Errorf("bitbucket: get repository: %w", notVisible)
	}
	cl, err := p.client(ctx, c)
	if err != nil {
		return forge.Repo{}, err
	}
	var r repository
	if _, err := cl.do(ctx, http.MethodGet, "/repositories/%7B%7D/"+url.PathEscape(repoID), nil, nil, &r); err != nil {
		if restapi.IsStatus(err, http.StatusForbidden) && !restapi.RateLimited(err) {
			return forge.Repo{}, fmt.Errorf("bitbucket: get repository: %w", notVisible)
		}
		return forge.Repo{}, apiError("get repository", err, notVisible)
	}
	return r.toRepo(), nil
}

// refJSON is a branch or tag as the refs API shows it (push payloads add
// its type: pushRef).
type refJSON struct {
	Name   string    `json:"name"`
	Target refTarget `json:"target"`
}

// refTarget is the commit a ref points at.
type refTarget struct {
	Hash    string `json:"hash"`
	Message string `json:"message"`
	Date    string `json:"date"`
	Author  struct {
		Raw  string   `json:"raw"`
		User *account `json:"user"`
	} `json:"author"`
	Links links `json:"links"`
}

func (t refTarget) commit() slipway.Commit {
	c := slipway.Commit{SHA: t.Hash, Message: t.Message, Author: authorName(t.Author.Raw, t.Author.User), URL: t.Links.HTML.Href}
	if ts, err := time.Parse(time.RFC3339Nano, t.Date); err == nil {
		c.Timestamp = ts.UTC()
	}
	return c
}

// maxPages bounds how many pages one call follows.
const maxPages = 50

// ListRefs implements forge.RefLister.
func (p *Provider) ListRefs(ctx context.Context, c *forge.Conn, repo forge.Repo) ([]forge.Ref, error) {
	cl, err := p.client(ctx, c)
	if err != nil {
		return nil, err
	}
	base, err := repoPath(repo)
	if err != nil {
		return nil, fmt.Errorf("bitbucket: list refs: %w", err)
	}
	var refs []forge.Ref
	for _, kind := range []forge.RefKind{forge.RefBranch, forge.RefTag} {
		next := base + "/refs/branches"
		if kind == forge.RefTag {
			next = base + "/refs/tags"
		}
		q := url.Values{"pagelen": {"100"}}
		for i := 0; next != "" && i < maxPages; i++ {
			var res page[refJSON]
			if _, err := cl.do(ctx, http.MethodGet, next, q, nil, &res); err != nil {
				return nil, apiError("list "+string(kind)+"es", err, repoNotVisible(repo))
			}
			for _, r := range res.Values {
				refs = append(refs, forge.Ref{Name: r.Name, Kind: kind, SHA: r.Target.Hash})
			}
			next, q = res.Next, nil // the next URL carries its own query
		}
	}
	return refs, nil
}

func repoNotVisible(repo forge.Repo) *slipway.Error {
	return slipway.Errorf(slipway.ECodeRepoNotVisible, "Bitbucket repository %s is not visible to the integration", repo.FullName).
		WithFix("Give the integration's account access to the repository")
}

var hexSHA = regexp.MustCompile(`^[0-9a-fA-F]{7,40}$`)

// ResolveRef implements forge.RefLister: a branch, then a tag, then (for
// something shaped like a SHA) a commit.
func (p *Provider) ResolveRef(ctx context.Context, c *forge.Conn, repo forge.Repo, ref string) (slipway.Commit, error) {
	notFound := slipway.Errorf(slipway.ECodeRefNotFound, "%q is not a branch, tag or commit of %s", ref, repo.FullName)
	if strings.TrimSpace(ref) == "" {
		return slipway.Commit{}, fmt.Errorf("bitbucket: resolve ref: %w", notFound)
	}
	cl, err := p.client(ctx, c)
	if err != nil {
		return slipway.Commit{}, err
	}
	base, err := repoPath(repo)
	if err != nil {
		return slipway.Commit{}, fmt.Errorf("bitbucket: resolve ref: %w", err)
	}
	for _, kind := range []string{"branches", "tags"} {
		var r refJSON
		_, err := cl.do(ctx, http.MethodGet, base+"/refs/"+kind+"/"+refPath(ref), nil, nil, &r)
		if err == nil {
			return r.Target.commit(), nil
		}
		if !restapi.IsStatus(err, http.StatusNotFound) {
			return slipway.Commit{}, apiError("resolve ref", err, nil)
		}
	}
	if hexSHA.MatchString(ref) {
		var r refJSON
		if _, err := cl.do(ctx, http.MethodGet, base+"/commit/"+url.PathEscape(ref), nil, nil, &r.Target); err == nil {
			return r.Target.commit(), nil
		} else if !restapi.IsStatus(err, http.StatusNotFound) {
			return slipway.Commit{}, apiError("resolve ref", err, nil)
		}
	}
	return slipway.Commit{}, fmt.Errorf("bitbucket: resolve ref: %w", notFound)
}

// authorName prefers the linked account's name, else the name part of the
// raw "Name <email>" string.
func authorName(raw string, user *account) string {
	if user != nil && user.DisplayName != "" {
		return user.DisplayName
	}
	if name, _, ok := strings.Cut(raw, " <"); ok {
		return name
	}
	return raw
}

// CloneCredentials implements forge.Cloner with the user names Bitbucket
// documents: x-token-auth for OAuth and access tokens, and the static
// x-bitbucket-api-token-auth for user API tokens (whose API user is an
// email, which git does not accept).
func (p *Provider) CloneCredentials(ctx context.Context, c *forge.Conn, repo forge.Repo) (forge.CloneCredentials, error) {
	token, err := c.AccessToken(ctx)
	if err != nil {
		return forge.CloneCredentials{}, fmt.Errorf("bitbucket: access token: %w", err)
	}
	if repo.CloneURL == "" {
		return forge.CloneCredentials{}, fmt.Errorf("bitbucket: clone credentials: %w", slipway.Errorf(slipway.ECodeInvalid, "repository %s has no clone URL", repo.FullName))
	}
	user := accessTokenGitUser
	if c.Integration.AuthMethod == slipway.AuthBasicToken {
		user = apiTokenGitUser
	}
	return forge.CloneCredentials{URL: stripUser(repo.CloneURL), Username: user, Password: token}, nil
}

// ChangedFiles implements forge.Comparer with the diffstat API. Bitbucket
// writes the range as {new}..{old}; topic=false asks for a plain two-dot
// diff between the commits rather than one from their merge base.
func (p *Provider) ChangedFiles(ctx context.Context, c *forge.Conn, repo forge.Repo, base, head string) ([]string, error) {
	cl, err := p.client(ctx, c)
	if err != nil {
		return nil, err
	}
	rp, err := repoPath(repo)
	if err != nil {
		return nil, fmt.Errorf("bitbucket: changed files: %w", err)
	}
	type side struct {
		Path string `json:"path"`
	}
	type stat struct {
		Status string `json:"status"`
		Old    *side  `json:"old"`
		New    *side  `json:"new"`
	}
	next := rp + "/diffstat/" + url.PathEscape(head) + ".." + url.PathEscape(base)
	q := url.Values{"topic": {"false"}, "pagelen": {"500"}}
	seen := map[string]bool{}
	var files []string
	for i := 0; next != ""; i++ {
		if i >= maxPages {
			return nil, fmt.Errorf("bitbucket: changed files: %w", slipway.Errorf(slipway.ECodeTooLarge, "more than %d pages of changed files between %s and %s", maxPages, base, head))
		}
		var res page[stat]
		if _, err := cl.do(ctx, http.MethodGet, next, q, nil, &res); err != nil {
			return nil, apiError("diffstat", err, slipway.Errorf(slipway.ECodeRefNotFound, "cannot compare %s..%s in %s: a commit is missing", base, head, repo.FullName))
		}
		for _, s := range res.Values {
			for _, sd := range []*side{s.Old, s.New} {
				if sd != nil && sd.Path != "" && !seen[sd.Path] {
					seen[sd.Path] = true
					files = append(files, sd.Path)
				}
			}
		}
		next, q = res.Next, nil
	}
	return files, nil
}

// SetCommitStatus implements forge.StatusReporter with a build status.
// Bitbucket requires a URL and limits the key to 40 characters, so a
// longer context is shortened to a stable prefix plus a hash.
func (p *Provider) SetCommitStatus(ctx context.Context, c *forge.Conn, repo forge.Repo, sha string, st forge.CommitStatus) error {
	cl, err := p.client(ctx, c)
	if err != nil {
		return err
	}
	rp, err := repoPath(repo)
	if err != nil {
		return fmt.Errorf("bitbucket: set commit status: %w", err)
	}
	target := st.TargetURL
	if target == "" {
		target = repo.HTMLURL
	}
	body := map[string]string{
		"type":        "commitstatus", // the description's discriminator, required
		"key":         statusKey(st.Context),
		"name":        st.Context,
		"state":       buildState(st.State),
		"url":         target,
		"description": st.Description,
	}
	if _, err := cl.do(ctx, http.MethodPost, rp+"/commit/"+url.PathEscape(sha)+"/statuses/build", nil, body, nil); err != nil {
		return apiError("set commit status", err, slipway.Errorf(slipway.ECodeRefNotFound, "commit %s not found in %s", sha, repo.FullName))
	}
	return nil
}

func buildState(s forge.StatusState) string {
	switch s {
	case forge.StatusSuccess:
		return "SUCCESSFUL"
	case forge.StatusFailure:
		return "FAILED"
	default:
		return "INPROGRESS"
	}
}
