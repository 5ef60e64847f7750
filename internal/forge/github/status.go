package github

import (
	"context"
	"fmt"

	gh "github.com/google/go-github/v88/github"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
)

// maxCompareFiles is the most files GitHub's compare API returns.
const maxCompareFiles = 300

// maxStatusDescription is GitHub's limit on a status description.
const maxStatusDescription = 140

// ChangedFiles lists the files changed between base and head
// (GET /repos/{owner}/{repo}/compare/{base}...{head}), including the old
// path of a renamed file. GitHub lists at most 300 files; a comparison at
// that cap may be incomplete, so it returns ECodeTooLarge and callers
// treat every path as changed.
func (p *Provider) ChangedFiles(ctx context.Context, c *forge.Conn, repo forge.Repo, base, head string) ([]string, error) {
	owner, name, err := splitFullName(repo.FullName)
	if err != nil {
		return nil, err
	}
	client, err := p.installationClient(c)
	if err != nil {
		return nil, err
	}
	cmp, resp, err := client.Repositories.CompareCommits(ctx, owner, name, base, head, nil)
	if err != nil {
		return nil, p.repoError("compare "+base+"..."+head+" in "+repo.FullName, repo, resp, err)
	}
	if len(cmp.Files) >= maxCompareFiles {
		return nil, slipway.Errorf(slipway.ECodeTooLarge,
			"GitHub lists only the first %d changed files between %s and %s", maxCompareFiles, base, head)
	}
	seen := map[string]bool{}
	var files []string
	for _, f := range cmp.Files {
		for _, n := range []string{f.GetPreviousFilename(), f.GetFilename()} {
			if n != "" && !seen[n] {
				seen[n] = true
				files = append(files, n)
			}
		}
	}
	return files, nil
}

// SetCommitStatus sets a commit status
// (POST /repos/{owner}/{repo}/statuses/{sha}). Descriptions longer than
// GitHub's 140 characters are shortened.
func (p *Provider) SetCommitStatus(ctx context.Context, c *forge.Conn, repo forge.Repo, sha string, st forge.CommitStatus) error {
	owner, name, err := splitFullName(repo.FullName)
	if err != nil {
		return err
	}
	client, err := p.installationClient(c)
	if err != nil {
		return err
	}
	desc := []rune(st.Description)
	if len(desc) > maxStatusDescription {
		desc = append(desc[:maxStatusDescription-1], '…')
	}
	status := gh.RepoStatus{State: gh.Ptr(string(st.State)), Context: gh.Ptr(st.Context), Description: gh.Ptr(string(desc))}
	if st.TargetURL != "" {
		status.TargetURL = gh.Ptr(st.TargetURL)
	}
	if _, resp, err := client.Repositories.CreateStatus(ctx, owner, name, sha, status); err != nil {
		return fmt.Errorf("set commit status: %w", p.repoError("set a commit status on "+repo.FullName, repo, resp, err))
	}
	return nil
}
