package github

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	gh "github.com/google/go-github/v88/github"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
)

const (
	defaultPerPage = 30
	maxPerPage     = 100
	// maxSearchPages bounds a search walk: 100 pages of 100 repositories.
	maxSearchPages = 100
)

// ListRepos lists the repositories the installation was granted
// (GET /installation/repositories), one page at a time; NextPage follows
// GitHub's Link header.
//
// GitHub has no server-side filter for this endpoint, so a Search walks
// every page (100 repositories per request), keeps the repositories whose
// owner/name contains the search text (case-insensitive), and pages through
// the matches with opt.Page and opt.PerPage. That costs one request per
// hundred repositories; pickers should search their synced copy and keep
// this for explicit refreshes.
func (p *Provider) ListRepos(ctx context.Context, c *forge.Conn, opt forge.ListOptions) (forge.RepoPage, error) {
	if strings.TrimSpace(opt.Search) != "" {
		return p.searchRepos(ctx, c, opt)
	}
	page, _, err := p.ListReposIfChanged(ctx, c, opt, "")
	return page, err
}

// ListReposIfChanged lists one page like ListRepos (without Search) but
// sends etag as If-None-Match. When GitHub answers 304 Not Modified, which
// does not count against the rate limit, it returns notModified=true and a
// page holding only the ETag and NextPage: the caller's copy of that page
// is current.
// The returned page's ETag is what to send next time.
func (p *Provider) ListReposIfChanged(ctx context.Context, c *forge.Conn, opt forge.ListOptions, etag string) (page forge.RepoPage, notModified bool, err error) {
	client, err := p.installationClient(c)
	if err != nil {
		return forge.RepoPage{}, false, err
	}
	return p.listPage(ctx, client, opt, etag)
}

func (p *Provider) listPage(ctx context.Context, client *gh.Client, opt forge.ListOptions, etag string) (forge.RepoPage, bool, error) {
	pageNo, perPage := opt.Page, opt.PerPage
	if pageNo < 1 {
		pageNo = 1
	}
	if perPage < 1 {
		perPage = defaultPerPage
	}
	if perPage > maxPerPage {
		perPage = maxPerPage
	}
	u := "installation/repositories?per_page=" + strconv.Itoa(perPage) + "&page=" + strconv.Itoa(pageNo)
	req, err := client.NewRequest(ctx, http.MethodGet, u, nil)
	if err != nil {
		return forge.RepoPage{}, false, fmt.Errorf("github: list repositories: %w", err)
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	var out gh.ListRepositories
	resp, err := client.Do(req, &out)
	if statusOf(resp) == http.StatusNotModified {
		// GitHub repeats the Link header on a 304, so the walk can go on.
		return forge.RepoPage{ETag: etagOr(resp, etag), NextPage: resp.NextPage}, true, nil
	}
	if err != nil {
		return forge.RepoPage{}, false, apiError("list the installation's repositories", resp, err, p.now())
	}
	page := forge.RepoPage{NextPage: resp.NextPage, ETag: resp.Header.Get("ETag"), Repos: make([]forge.Repo, 0, len(out.Repositories))}
	for _, r := range out.Repositories {
		page.Repos = append(page.Repos, normalizeRepo(r))
	}
	return page, false, nil
}

func etagOr(resp *gh.Response, fallback string) string {
	if e := resp.Header.Get("ETag"); e != "" {
		return e
	}
	return fallback
}

func (p *Provider) searchRepos(ctx context.Context, c *forge.Conn, opt forge.ListOptions) (forge.RepoPage, error) {
	client, err := p.installationClient(c)
	if err != nil {
		return forge.RepoPage{}, err
	}
	needle := strings.ToLower(strings.TrimSpace(opt.Search))
	var matches []forge.Repo
	for next, n := 1, 0; next != 0; n++ {
		if n >= maxSearchPages {
			return forge.RepoPage{}, slipway.Errorf(slipway.ECodeTooLarge,
				"the installation has more than %d repositories to search", maxSearchPages*maxPerPage).
				WithFix("narrow the App installation to selected repositories")
		}
		page, _, err := p.listPage(ctx, client, forge.ListOptions{Page: next, PerPage: maxPerPage}, "")
		if err != nil {
			return forge.RepoPage{}, err
		}
		for _, r := range page.Repos {
			if strings.Contains(strings.ToLower(r.FullName), needle) {
				matches = append(matches, r)
			}
		}
		next = page.NextPage
	}
	pageNo, perPage := max(opt.Page, 1), opt.PerPage
	if perPage < 1 {
		perPage = defaultPerPage
	}
	start := min((pageNo-1)*perPage, len(matches))
	end := min(start+perPage, len(matches))
	out := forge.RepoPage{Repos: matches[start:end]}
	if end < len(matches) {
		out.NextPage = pageNo + 1
	}
	return out, nil
}

// GetRepo fetches a repository by its immutable id (GET /repositories/{id})
// and confirms it belongs to the installation's set: a public repository
// is readable by any token, so a successful GET alone proves nothing. The
// check mints a token narrowed to the repository with metadata:read, which
// GitHub refuses (422) for a repository outside the installation.
// Errors: ECodeRepoNotVisible.
func (p *Provider) GetRepo(ctx context.Context, c *forge.Conn, repoID string) (forge.Repo, error) {
	id, err := parseRepoID(repoID)
	if err != nil {
		return forge.Repo{}, err
	}
	client, err := p.installationClient(c)
	if err != nil {
		return forge.Repo{}, err
	}
	r, resp, err := client.Repositories.GetByID(ctx, id)
	if err != nil {
		if statusOf(resp) == http.StatusNotFound {
			return forge.Repo{}, notVisible(repoID)
		}
		return forge.Repo{}, apiError("read repository "+repoID, resp, err, p.now())
	}
	if c.Tokens == nil {
		tc, installationID, err := p.tokenCache(c)
		if err != nil {
			return forge.Repo{}, err
		}
		_, _, err = tc.create(ctx, installationID, &gh.InstallationTokenOptions{
			RepositoryIDs: []int64{id},
			Permissions:   &gh.InstallationPermissions{Metadata: gh.Ptr("read")},
		})
		if slipway.ErrorCodeOf(err) == slipway.ECodeRepoNotVisible {
			return forge.Repo{}, notVisible(repoID)
		}
		if err != nil {
			return forge.Repo{}, err
		}
	}
	return normalizeRepo(r), nil
}

func notVisible(repoID string) error {
	return fmt.Errorf("github: %w", slipway.Errorf(slipway.ECodeRepoNotVisible,
		"GitHub repository %s does not exist or is not shared with the App installation", repoID).
		WithFix("grant the App access to the repository (installation settings → Repository access)"))
}

func normalizeRepo(r *gh.Repository) forge.Repo {
	return forge.Repo{
		ID:            strconv.FormatInt(r.GetID(), 10),
		FullName:      r.GetFullName(),
		DefaultBranch: r.GetDefaultBranch(),
		CloneURL:      r.GetCloneURL(),
		HTMLURL:       r.GetHTMLURL(),
		Private:       r.GetPrivate(),
		Archived:      r.GetArchived(),
		UpdatedAt:     r.GetUpdatedAt().Time.UTC(),
	}
}
