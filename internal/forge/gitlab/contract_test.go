package gitlab

import (
	"testing"

	"slipway.dev/slipway/internal/forge/forgetest/apispec"
)

// specOps are the operations of GitLab's published description the client
// calls; testdata/openapi.json is trimmed to exactly these
// (TestAPIDescription) and every fake request is validated against it.
var specOps = []apispec.Op{
	{Method: "GET", Path: "/api/v4/personal_access_tokens/self"},
	{Method: "GET", Path: "/api/v4/projects"},
	{Method: "GET", Path: "/api/v4/projects/{id}"},
	{Method: "GET", Path: "/api/v4/projects/{id}/repository/branches"},
	{Method: "GET", Path: "/api/v4/projects/{id}/repository/tags"},
	{Method: "GET", Path: "/api/v4/projects/{id}/repository/commits/{sha}"},
	{Method: "GET", Path: "/api/v4/projects/{id}/repository/compare"},
	{Method: "POST", Path: "/api/v4/projects/{id}/hooks"},
	{Method: "DELETE", Path: "/api/v4/projects/{id}/hooks/{hook_id}"},
	{Method: "POST", Path: "/api/v4/projects/{id}/statuses/{sha}"},
}

// contractOptions are operations GitLab documents only on its pages, not
// in openapi_v2.yaml, and the fields where that generated file contradicts
// the API (and GitLab's own pages): each with the page it was built from.
var contractOptions = []apispec.Option{
	apispec.Deviation{Op: "GET /api/v4/personal_access_tokens/self", Field: "/expires_at",
		Why: "a date (2099-01-01), not a date-time: https://docs.gitlab.com/api/personal_access_tokens/#get-single-personal-access-token"},
	apispec.Deviation{Op: "GET /api/v4/personal_access_tokens/self", Field: "/last_used_at",
		Why: "null until the token is first used: https://docs.gitlab.com/api/personal_access_tokens/#get-single-personal-access-token"},
	apispec.Deviation{Op: "POST /api/v4/projects/{id}/hooks", Field: "/id",
		Why: "an integer (the file says string): https://docs.gitlab.com/api/project_webhooks/#add-a-webhook-to-a-project"},
	apispec.Deviation{Op: "POST /api/v4/projects/{id}/hooks", Field: "/project_id",
		Why: "an integer (the file says string): https://docs.gitlab.com/api/project_webhooks/#add-a-webhook-to-a-project"},
	// The current user: https://docs.gitlab.com/api/users/#retrieve-the-current-user
	// (missing from the OpenAPI file, which has only GET /users/{id}).
	apispec.Allowed{Method: "GET", Path: `/api/v4/user`, Page: "https://docs.gitlab.com/api/users/#retrieve-the-current-user"},
	// An OAuth token's scopes (Doorkeeper, outside /api/v4):
	// https://docs.gitlab.com/api/oauth2/#retrieve-the-token-information
	apispec.Allowed{Method: "GET", Path: `/oauth/token/info`, Page: "https://docs.gitlab.com/api/oauth2/#retrieve-the-token-information"},
}

const specFile = "testdata/openapi.json"

// apiDoc is the trimmed description every test's transport validates
// against; shared so TestMain can see what was exercised.
var apiDoc = apispec.MustLoad(specFile, contractOptions...)

func TestMain(m *testing.M) { apispec.Main(m, apiDoc) }

func TestAPIDescription(t *testing.T) {
	apispec.Refresh(t, specFile, "gitlab/openapi_v2.yaml", apispec.Source{
		From:    "GitLab's doc/api/openapi/openapi_v2.yaml (about GitLab 17.10), via github.com/terrateamio/terrateam api_schemas/gitlab_api/openapi_v2.yaml at 065739bafb8d9fc50a0d1f436886261b67efba0c",
		License: "none stated in the file; GitLab's newer openapi_v3.yaml states CC BY-SA 4.0",
	}, specOps)
}
