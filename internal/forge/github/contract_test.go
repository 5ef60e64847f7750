package github

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"slipway.dev/slipway/internal/forge/forgetest"

	"slipway.dev/slipway/internal/forge/forgetest/apispec"
)

// specOps are the operations of GitHub's published description (GHES
// 3.17, the oldest GHES the description package covers; github.com has
// the same operations) that the client calls. testdata/openapi.json is
// trimmed to exactly these, and every fake request is validated against it.
var specOps = []apispec.Op{
	{Method: "POST", Path: "/app-manifests/{code}/conversions"},
	{Method: "GET", Path: "/app/installations/{installation_id}"},
	{Method: "POST", Path: "/app/installations/{installation_id}/access_tokens"},
	{Method: "GET", Path: "/installation/repositories"},
	{Method: "GET", Path: "/repos/{owner}/{repo}/branches"},
	{Method: "GET", Path: "/repos/{owner}/{repo}/branches/{branch}"},
	{Method: "GET", Path: "/repos/{owner}/{repo}/tags"},
	{Method: "GET", Path: "/repos/{owner}/{repo}/git/tags/{tag_sha}"},
	{Method: "GET", Path: "/repos/{owner}/{repo}/commits/{ref}"},
	{Method: "GET", Path: "/repos/{owner}/{repo}/compare/{basehead}"},
	{Method: "POST", Path: "/repos/{owner}/{repo}/statuses/{sha}"},
}

// contractOptions: what GitHub's description cannot express, each with
// its source.
var contractOptions = []apispec.Option{
	// A repository by its immutable id, which survives renames and
	// transfers. Not in the description; go-github calls it
	// RepositoriesService.GetByID (github.com/google/go-github, github/repos.go).
	apispec.Allowed{Method: "GET", Path: `/api/v3/repositories/[0-9]+`, Page: "https://github.com/google/go-github/blob/master/github/repos.go (GetByID)"},
	// GET /repos/{owner}/{repo}/git/ref/{ref}: a ref is "heads/<branch>"
	// or "tags/<tag>", and its slash is part of the value, which the
	// description's single-segment {ref} cannot hold.
	apispec.Allowed{Method: "GET", Path: `/api/v3/repos/[^/]+/[^/]+/git/ref/(heads|tags)/.+`, Page: "https://docs.github.com/rest/git/refs#get-a-reference"},
}

const specFile = "testdata/openapi.json"

var apiDoc = apispec.MustLoad(specFile, contractOptions...)

func TestMain(m *testing.M) { apispec.Main(m, apiDoc) }

func TestAPIDescription(t *testing.T) {
	apispec.Refresh(t, specFile, "github/ghes-3.17.json", apispec.Source{
		From:    "GitHub's REST description (github/rest-api-description) as published in npm @octokit/openapi@23.0.2, generated/ghes-3.17.json",
		License: "MIT",
	}, specOps)
}

// webhookOps are the webhooks of GitHub's published webhook description
// (npm @octokit/openapi-webhooks) that the golden payloads are checked
// against: every recorded delivery must be a valid instance of its event.
var webhookOps = []apispec.Op{
	{Method: "WEBHOOK", Path: "push"},
	{Method: "WEBHOOK", Path: "ping"},
	{Method: "WEBHOOK", Path: "installation-created"},
	{Method: "WEBHOOK", Path: "installation-deleted"},
	{Method: "WEBHOOK", Path: "installation-new-permissions-accepted"},
	{Method: "WEBHOOK", Path: "installation-suspend"},
	{Method: "WEBHOOK", Path: "installation-unsuspend"},
	{Method: "WEBHOOK", Path: "installation-repositories-added"},
	{Method: "WEBHOOK", Path: "installation-repositories-removed"},
	{Method: "WEBHOOK", Path: "repository-archived"},
	{Method: "WEBHOOK", Path: "repository-renamed"},
	{Method: "WEBHOOK", Path: "repository-transferred"},
	{Method: "WEBHOOK", Path: "star-created"},
}

const webhookSpecFile = "testdata/openapi-webhooks.json"

func TestWebhookDescription(t *testing.T) {
	apispec.Refresh(t, webhookSpecFile, "github/webhooks/api.github.com.json", apispec.Source{
		From:    "GitHub's webhook description as published in npm @octokit/openapi-webhooks@12.1.0, generated/api.github.com.json",
		License: "MIT",
	}, webhookOps)
}

// TestGoldenPayloadsMatchTheWebhookDescription: every recorded delivery
// is a valid instance of its event (and action) in GitHub's description.
func TestGoldenPayloadsMatchTheWebhookDescription(t *testing.T) {
	doc := apispec.Load(t, webhookSpecFile)
	for _, c := range forgetest.LoadHookCases(t, filepath.Join("testdata", "hooks")) {
		name := strings.ReplaceAll(c.Header.Get("X-GitHub-Event"), "_", "-")
		var head struct {
			Action string `json:"action"`
		}
		_ = json.Unmarshal(c.Body, &head)
		if head.Action != "" {
			name += "-" + strings.ReplaceAll(head.Action, "_", "-")
		}
		if err := doc.ValidateWebhook(name, c.Body); err != nil {
			t.Errorf("%s (%s): %v", c.Name, name, err)
		}
	}
	if un := doc.Unused(); len(un) > 0 {
		t.Errorf("webhooks with no golden payload: %v", un)
	}
}
