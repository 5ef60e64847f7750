package github

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	gh "github.com/google/go-github/v88/github"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
)

// maxRefPages bounds ListRefs: 100 pages of 100 branches (and of tags).
const maxRefPages = 100

var shaPattern = regexp.MustCompile(`^[0-9a-fA-F]{7,40}$`)

// ListRefs lists every branch and then every tag of repo.
func (p *Provider) ListRefs(ctx context.Context, c *forge.Conn, repo forge.Repo) ([]forge.Ref, error) {
	owner, name, err := splitFullName(repo.FullName)
	if err != nil {
		return nil, err
	}
	client, err := p.installationClient(c)
	if err != nil {
		return nil, err
	}
	var refs []forge.Ref
	opt := &gh.BranchListOptions{ListOptions: gh.ListOptions{PerPage: maxPerPage}}
	for n := 0; ; n++ {
		branches, resp, err := client.Repositories.ListBranches(ctx, owner, name, opt)
		if err != nil {
			return nil, p.repoError("list branches of "+repo.FullName, repo, resp, err)
		}
		for _, b := range branches {
			refs = append(refs, forge.Ref{Name: b.GetName(), Kind: forge.RefBranch, SHA: b.GetCommit().GetSHA()})
		}
		if resp.NextPage == 0 || n >= maxRefPages {
			break
		}
		opt.Page = resp.NextPage
	}
	topt := &gh.ListOptions{PerPage: maxPerPage}
	for n := 0; ; n++ {
		tags, resp, err := client.Repositories.ListTags(ctx, owner, name, topt)
		if err != nil {
			return nil, p.repoError("list tags of "+repo.FullName, repo, resp, err)
		}
		for _, t := range tags {
			refs = append(refs, forge.Ref{Name: t.GetName(), Kind: forge.RefTag, SHA: t.GetCommit().GetSHA()})
		}
		if resp.NextPage == 0 || n >= maxRefPages {
			break
		}
		topt.Page = resp.NextPage
	}
	return refs, nil
}

// ResolveRef resolves a short branch name, else a tag name (annotated
// tags peeled to their commit), else a commit SHA, to a commit.
// Errors: ECodeRefNotFound.
func (p *Provider) ResolveRef(ctx context.Context, c *forge.Conn, repo forge.Repo, ref string) (slipway.Commit, error) {
	owner, name, err := splitFullName(repo.FullName)
	if err != nil {
		return slipway.Commit{}, err
	}
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return slipway.Commit{}, refNotFound(repo, ref)
	}
	client, err := p.installationClient(c)
	if err != nil {
		return slipway.Commit{}, err
	}

	branch, resp, err := client.Repositories.GetBranch(ctx, owner, name, ref, 0)
	switch {
	case err == nil:
		return commitOf(branch.GetCommit()), nil
	case statusOf(resp) != http.StatusNotFound:
		return slipway.Commit{}, p.repoError("resolve "+ref+" in "+repo.FullName, repo, resp, err)
	}

	tagRef, resp, err := client.Git.GetRef(ctx, owner, name, "tags/"+ref)
	switch {
	case err == nil && tagRef.GetRef() == "refs/tags/"+ref:
		sha := tagRef.GetObject().GetSHA()
		for i := 0; tagRef.GetObject().GetType() == "tag" && i < 5; i++ {
			// An annotated tag points at a tag object; peel until a commit.
			tag, resp, err := client.Git.GetTag(ctx, owner, name, sha)
			if err != nil {
				return slipway.Commit{}, p.repoError("read tag "+ref+" of "+repo.FullName, repo, resp, err)
			}
			sha = tag.GetObject().GetSHA()
			if tag.GetObject().GetType() != "tag" {
				break
			}
		}
		return p.commit(ctx, client, owner, name, repo, sha, ref)
	case err != nil && statusOf(resp) != http.StatusNotFound:
		return slipway.Commit{}, p.repoError("resolve "+ref+" in "+repo.FullName, repo, resp, err)
	}

	if shaPattern.MatchString(ref) {
		return p.commit(ctx, client, owner, name, repo, ref, ref)
	}
	return slipway.Commit{}, refNotFound(repo, ref)
}

func (p *Provider) commit(ctx context.Context, client *gh.Client, owner, name string, repo forge.Repo, sha, ref string) (slipway.Commit, error) {
	rc, resp, err := client.Repositories.GetCommit(ctx, owner, name, sha, nil)
	if err != nil {
		if s := statusOf(resp); s == http.StatusNotFound || s == http.StatusUnprocessableEntity {
			return slipway.Commit{}, refNotFound(repo, ref)
		}
		return slipway.Commit{}, p.repoError("read commit "+sha+" of "+repo.FullName, repo, resp, err)
	}
	return commitOf(rc), nil
}

func commitOf(rc *gh.RepositoryCommit) slipway.Commit {
	out := slipway.Commit{
		SHA:     rc.GetSHA(),
		Message: rc.GetCommit().GetMessage(),
		Author:  rc.GetCommit().GetAuthor().GetName(),
		URL:     rc.GetHTMLURL(),
	}
	if d := rc.GetCommit().GetAuthor().GetDate(); !d.IsZero() {
		out.Timestamp = d.UTC()
	}
	return out
}

func refNotFound(repo forge.Repo, ref string) error {
	return fmt.Errorf("github: %w", slipway.Errorf(slipway.ECodeRefNotFound,
		"%q is not a branch, tag or commit of %s", ref, repo.FullName).
		WithFix("check the branch or tag name; it is case-sensitive"))
}

// repoError maps a repository-scoped failure: 404 means the installation
// cannot see the repository.
func (p *Provider) repoError(op string, repo forge.Repo, resp *gh.Response, err error) error {
	if statusOf(resp) == http.StatusNotFound {
		return notVisible(repo.ID + " (" + repo.FullName + ")")
	}
	return apiError(op, resp, err, p.now())
}
