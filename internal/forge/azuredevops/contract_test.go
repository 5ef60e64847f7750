package azuredevops

import (
	"net/http"
	"strings"
	"testing"

	"slipway.dev/slipway/internal/forge/forgetest/apispec"
)

// gitOps and hookOps are the operations of Microsoft's published Git and
// Service Hooks descriptions the client calls. The client calls them at
// organisation level: {project} is marked x-ms-required: false, which
// apispec routes without the segment.
var (
	gitOps = []apispec.Op{
		{Method: "GET", Path: "/{organization}/{project}/_apis/git/repositories"},
		{Method: "GET", Path: "/{organization}/{project}/_apis/git/repositories/{repositoryId}"},
		{Method: "GET", Path: "/{organization}/{project}/_apis/git/repositories/{repositoryId}/refs"},
		{Method: "GET", Path: "/{organization}/{project}/_apis/git/repositories/{repositoryId}/commits/{commitId}"},
		{Method: "GET", Path: "/{organization}/{project}/_apis/git/repositories/{repositoryId}/diffs/commits"},
		{Method: "POST", Path: "/{organization}/{project}/_apis/git/repositories/{repositoryId}/commits/{commitId}/statuses"},
	}
	hookOps = []apispec.Op{
		{Method: "GET", Path: "/{organization}/_apis/hooks/subscriptions"},
		{Method: "POST", Path: "/{organization}/_apis/hooks/subscriptions"},
		{Method: "DELETE", Path: "/{organization}/_apis/hooks/subscriptions/{subscriptionId}"},
	}
)

// undocumented is the one call the descriptions lack: who the token acts
// as. It is the location service's connection data, which Microsoft's own
// clients call first (azure-devops-go-api, azuredevops/v7/location/client.go,
// GetConnectionData; the same resource the Azure DevOps CLI reads).
var undocumented = apispec.Allowed{Method: "GET", Path: `/[^/]+/_apis/connectionData`,
	Page: "https://github.com/microsoft/azure-devops-go-api/blob/dev/azuredevops/v7/location/client.go (GetConnectionData)"}

// shapes are where Azure DevOps' answers differ from its descriptions,
// each with the evidence.
var shapes = []apispec.Option{
	apispec.Envelope{Member: "value", Why: "list answers are {\"count\": n, \"value\": [...]}, as every httpExamples response beside the descriptions shows (e.g. git/7.1/httpExamples/repositories/GET__git_repositories.json)"},
	apispec.Deviation{Op: "GET /{organization}/{project}/_apis/git/repositories/{repositoryId}/diffs/commits", Field: "/changes/*/item",
		Why: "an object (objectId, path, gitObjectType), typed string in the description: git/7.1/httpExamples/commitDiffs/GET__git_repositories__repositoryId__diffs_commits_baseVersionType-_baseVersionType_.json"},
}

const msSource = "Microsoft's published description, github.com/MicrosoftDocs/vsts-rest-api-specs at adb28786a3e9349d5b3deb43eb2134b682c33bb2, specification/"

// apiDocs are the descriptions per api-version: Services (7.1), Server
// 2022 (7.0), Server 2020 (6.0). A request is validated against the ones
// of the version it asks for.
var apiDocs = map[string][]*apispec.Document{}

func init() {
	for _, v := range apiVersions {
		apiDocs[v] = []*apispec.Document{
			apispec.MustLoad("testdata/openapi/git-"+v+".json", append([]apispec.Option{undocumented}, shapes...)...),
			apispec.MustLoad("testdata/openapi/hooks-"+v+".json", shapes...),
		}
	}
}

func TestMain(m *testing.M) {
	// Every operation is exercised at the newest version; the older
	// versions are exercised by TestAPIVersionPerServer.
	var all []*apispec.Document
	for _, v := range apiVersions {
		all = append(all, apiDocs[v]...)
	}
	apispec.Main(m, all...)
}

func TestAPIDescription(t *testing.T) {
	for _, v := range apiVersions {
		apispec.Refresh(t, "testdata/openapi/git-"+v+".json", "azure-devops/git/"+v+"/git.json", apispec.Source{
			From: msSource + "git/" + v + "/git.json", License: "MIT (repository); info.license: Microsoft Software License Terms",
		}, gitOps)
		apispec.Refresh(t, "testdata/openapi/hooks-"+v+".json", "azure-devops/hooks/"+v+"/serviceHooks.json", apispec.Source{
			From: msSource + "hooks/" + v + "/serviceHooks.json", License: "MIT (repository); info.license: Microsoft Software License Terms",
		}, hookOps)
	}
}

// versionedTransport validates each request against the descriptions of
// the api-version it carries, so a 6.0 request is held to the 6.0 shape.
type versionedTransport struct {
	t  testing.TB
	by map[string]*apispec.Transport
}

func newVersionedTransport(t testing.TB, target string) *http.Client {
	vt := &versionedTransport{t: t, by: map[string]*apispec.Transport{}}
	for v, docs := range apiDocs {
		tr := apispec.NewTransport(t, target, docs...)
		tr.AnyHost = true // Server runs wherever it is installed
		vt.by[v] = tr
	}
	return &http.Client{Transport: vt}
}

func (vt *versionedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	v := strings.TrimSuffix(r.URL.Query().Get("api-version"), "-preview")
	tr, ok := vt.by[v]
	if !ok {
		vt.t.Errorf("%s %s: api-version %q has no published description here", r.Method, r.URL.Path, v)
		tr = vt.by[apiVersions[0]]
	}
	return tr.RoundTrip(r)
}
