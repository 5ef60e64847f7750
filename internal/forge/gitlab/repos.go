package gitlab

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	gl "gitlab.com/gitlab-org/api/client-go"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
)

// maxRefPages bounds ListRefs so a repository with a pathological number
// of branches cannot hold a request forever.
const maxRefPages = 50

// ListRepos implements forge.RepoLister: projects the token's user is a
// member of with at least the Reporter role (enough to clone), ordered by
// id so pages stay stable while projects are created.
func (p *Provider) ListRepos(ctx context.Context, c *forge.Conn, opt forge.ListOptions) (forge.RepoPage, error) {
	cl, err := p.client(ctx, c)
	if err != nil {
		return forge.RepoPage{}, err
	}
	lo := &gl.ListProjectsOptions{
		ListOptions:    gl.ListOptions{Page: int64(max(opt.Page, 1)), PerPage: int64(perPage(opt.PerPage))},
		Membership:     gl.Ptr(true),
		MinAccessLevel: gl.Ptr(gl.ReporterPermissions),
		OrderBy:        gl.Ptr("id"),
		Sort:           gl.Ptr("asc"),
	}
	if s := strings.TrimSpace(opt.Search); s != "" {
		lo.Search = gl.Ptr(s)
	}
	projects, resp, err := cl.Projects.ListProjects(lo, gl.WithContext(ctx))
	if err != nil {
		return forge.RepoPage{}, apiError("list projects", resp, err, nil)
	}
	page := forge.RepoPage{NextPage: int(resp.NextPage)}
	for _, pr := range projects {
		page.Repos = append(page.Repos, toRepo(c, pr))
	}
	return page, nil
}

func perPage(n int) int {
	if n <= 0 {
		return 50
	}
	return min(n, 100) // GitLab's maximum
}

// GetRepo implements forge.RepoLister; repoID is the numeric project id.
func (p *Provider) GetRepo(ctx context.Context, c *forge.Conn, repoID string) (forge.Repo, error) {
	notVisible := slipway.Errorf(slipway.ECodeRepoNotVisible, "GitLab project %s does not exist or the integration cannot see it", repoID).
		WithFix("Give the integration's account access to the project")
	id, err := strconv.ParseInt(repoID, 10, 64)
	if err != nil || id <= 0 {
		return forge.Repo{}, fmt.Errorf("gitlab: get project: %w", notVisible)
	}
	cl, err := p.client(ctx, c)
	if err != nil {
		return forge.Repo{}, err
	}
	pr, resp, err := cl.Projects.GetProject(id, nil, gl.WithContext(ctx))
	if err != nil {
		return forge.Repo{}, apiError("get project", resp, err, notVisible)
	}
	return toRepo(c, pr), nil
}

func toRepo(c *forge.Conn, pr *gl.Project) forge.Repo {
	r := forge.Repo{
		ID:            strconv.FormatInt(pr.ID, 10),
		FullName:      pr.PathWithNamespace,
		DefaultBranch: pr.DefaultBranch,
		CloneURL:      pr.HTTPURLToRepo,
		HTMLURL:       pr.WebURL,
		Private:       pr.Visibility != gl.PublicVisibility,
		Archived:      pr.Archived,
	}
	if pr.LastActivityAt != nil {
		r.UpdatedAt = pr.LastActivityAt.UTC()
	}
	return r
}

// ListRefs implements forge.RefLister: every branch and tag with the
// commit it points at.
func (p *Provider) ListRefs(ctx context.Context, c *forge.Conn, repo forge.Repo) ([]forge.Ref, error) {
	cl, err := p.client(ctx, c)
	if err != nil {
		return nil, err
	}
	notVisible := repoNotVisible(repo)
	var refs []forge.Ref
	for page := int64(1); page != 0 && page <= maxRefPages; {
		branches, resp, err := cl.Branches.ListBranches(repo.ID, &gl.ListBranchesOptions{ListOptions: gl.ListOptions{Page: page, PerPage: 100}}, gl.WithContext(ctx))
		if err != nil {
			return nil, apiError("list branches", resp, err, notVisible)
		}
		for _, b := range branches {
			refs = append(refs, forge.Ref{Name: b.Name, Kind: forge.RefBranch, SHA: commitID(b.Commit)})
		}
		page = resp.NextPage
	}
	for page := int64(1); page != 0 && page <= maxRefPages; {
		tags, resp, err := cl.Tags.ListTags(repo.ID, &gl.ListTagsOptions{ListOptions: gl.ListOptions{Page: page, PerPage: 100}}, gl.WithContext(ctx))
		if err != nil {
			return nil, apiError("list tags", resp, err, notVisible)
		}
		for _, t := range tags {
			refs = append(refs, forge.Ref{Name: t.Name, Kind: forge.RefTag, SHA: commitID(t.Commit)})
		}
		page = resp.NextPage
	}
	return refs, nil
}

func commitID(c *gl.Commit) string {
	if c == nil {
		return ""
	}
	return c.ID
}

func repoNotVisible(repo forge.Repo) *slipway.Error {
	return slipway.Errorf(slipway.ECodeRepoNotVisible, "GitLab project %s is not visible to the integration", repo.FullName).
		WithFix("Give the integration's account access to the project")
}

// ResolveRef implements forge.RefLister. GitLab's commit endpoint takes a
// branch name, a tag name or a SHA, so one call resolves any of them.
func (p *Provider) ResolveRef(ctx context.Context, c *forge.Conn, repo forge.Repo, ref string) (slipway.Commit, error) {
	notFound := slipway.Errorf(slipway.ECodeRefNotFound, "%q is not a branch, tag or commit of %s", ref, repo.FullName)
	if strings.TrimSpace(ref) == "" {
		return slipway.Commit{}, fmt.Errorf("gitlab: resolve ref: %w", notFound)
	}
	cl, err := p.client(ctx, c)
	if err != nil {
		return slipway.Commit{}, err
	}
	cm, resp, err := cl.Commits.GetCommit(repo.ID, ref, nil, gl.WithContext(ctx))
	if err != nil {
		return slipway.Commit{}, apiError("resolve ref", resp, err, notFound)
	}
	out := slipway.Commit{SHA: cm.ID, Message: cm.Message, Author: cm.AuthorName, URL: cm.WebURL}
	if cm.CommittedDate != nil {
		out.Timestamp = cm.CommittedDate.UTC()
	}
	return out, nil
}

// CloneCredentials implements forge.Cloner: GitLab accepts any token as
// the password of the user "oauth2" over HTTPS.
func (p *Provider) CloneCredentials(ctx context.Context, c *forge.Conn, repo forge.Repo) (forge.CloneCredentials, error) {
	token, err := c.AccessToken(ctx)
	if err != nil {
		return forge.CloneCredentials{}, fmt.Errorf("gitlab: access token: %w", err)
	}
	if repo.CloneURL == "" {
		return forge.CloneCredentials{}, fmt.Errorf("gitlab: clone credentials: %w", slipway.Errorf(slipway.ECodeInvalid, "project %s has no clone URL", repo.FullName))
	}
	return forge.CloneCredentials{URL: internalURL(c, repo.CloneURL), Username: "oauth2", Password: token}, nil
}

// internalURL rewrites a public URL the API returned to the internal URL
// when the integration has one, so clones take the same path API calls do.
func internalURL(c *forge.Conn, u string) string {
	pub := strings.TrimRight(c.Integration.BaseURL, "/")
	in := strings.TrimRight(c.Integration.InternalURL, "/")
	if pub == "" || in == "" || !strings.HasPrefix(u, pub+"/") {
		return u
	}
	return in + strings.TrimPrefix(u, pub)
}

// ChangedFiles implements forge.Comparer with the repository compare API.
// straight=true diffs the two commits directly (not from their merge
// base), so a force-push lists what actually differs from what ran.
func (p *Provider) ChangedFiles(ctx context.Context, c *forge.Conn, repo forge.Repo, base, head string) ([]string, error) {
	cl, err := p.client(ctx, c)
	if err != nil {
		return nil, err
	}
	cmp, resp, err := cl.Repositories.Compare(repo.ID, &gl.CompareOptions{From: gl.Ptr(base), To: gl.Ptr(head), Straight: gl.Ptr(true)}, gl.WithContext(ctx))
	if err != nil {
		return nil, apiError("compare commits", resp, err,
			slipway.Errorf(slipway.ECodeRefNotFound, "cannot compare %s..%s in %s: a commit is missing", short(base), short(head), repo.FullName))
	}
	if cmp.CompareTimeout {
		return nil, fmt.Errorf("gitlab: compare commits: %w", slipway.Errorf(slipway.ECodeProviderError, "GitLab timed out comparing %s..%s", short(base), short(head)))
	}
	seen := map[string]bool{}
	var files []string
	for _, d := range cmp.Diffs {
		for _, path := range []string{d.OldPath, d.NewPath} {
			if path != "" && !seen[path] {
				seen[path] = true
				files = append(files, path)
			}
		}
	}
	return files, nil
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// SetCommitStatus implements forge.StatusReporter.
func (p *Provider) SetCommitStatus(ctx context.Context, c *forge.Conn, repo forge.Repo, sha string, st forge.CommitStatus) error {
	cl, err := p.client(ctx, c)
	if err != nil {
		return err
	}
	opt := &gl.SetCommitStatusOptions{State: buildState(st.State), Name: gl.Ptr(st.Context)}
	if st.Description != "" {
		opt.Description = gl.Ptr(truncate(st.Description, 255))
	}
	if st.TargetURL != "" {
		opt.TargetURL = gl.Ptr(st.TargetURL)
	}
	_, resp, err := cl.Commits.SetCommitStatus(repo.ID, sha, opt, gl.WithContext(ctx))
	if err != nil {
		// GitLab refuses to set a status to the state it already has
		// ("Cannot transition status via :run from :running"); the
		// status is what we wanted, so that is success.
		if resp != nil && resp.StatusCode == 400 && strings.Contains(errText(err), "Cannot transition status") {
			return nil
		}
		return apiError("set commit status", resp, err,
			slipway.Errorf(slipway.ECodeRefNotFound, "commit %s not found in %s", short(sha), repo.FullName))
	}
	return nil
}

func errText(err error) string {
	if er, ok := err.(*gl.ErrorResponse); ok {
		return string(er.Body) + er.Message
	}
	return err.Error()
}

func buildState(s forge.StatusState) gl.BuildStateValue {
	switch s {
	case forge.StatusSuccess:
		return gl.Success
	case forge.StatusFailure:
		return gl.Failed
	default:
		return gl.Running
	}
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
