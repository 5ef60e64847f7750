package azuredevops

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

const testPAT = "azdo-contract-pat"

// fakeAzureDevOps answers the slice of the Azure DevOps REST API the
// provider uses, under /org, in its documented shapes.
type fakeAzureDevOps struct {
	t        *testing.T
	srv      *httptest.Server
	http     *http.Client // validates every request against the published descriptions, then reaches srv
	mu       sync.Mutex
	requests []recorded
	override map[string]http.HandlerFunc
	// maxVersion, when set, is the newest api-version the fake server
	// knows, as on Azure DevOps Server (2022: 7.0, 2020: 6.0).
	maxVersion string
}

type recorded struct {
	Method, Path, Query, Auth string
	Body                      map[string]any
}

func newFake(t *testing.T) *fakeAzureDevOps {
	f := &fakeAzureDevOps{t: t, override: map[string]http.HandlerFunc{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	f.http = newVersionedTransport(t, f.srv.URL)
	return f
}

func (f *fakeAzureDevOps) last() recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[len(f.requests)-1]
}

func repoGUID(n int) string { return fmt.Sprintf("278d5cd2-584d-4b63-824a-2ba4589372%02d", n) }

func repoJSON(n int) map[string]any {
	name := fmt.Sprintf("svc-%d", n)
	proj := "Alpha"
	if n > 3 {
		proj = "Beta"
	}
	return map[string]any{
		"id": repoGUID(n), "name": name, "defaultBranch": "refs/heads/main", "size": 1024, "isDisabled": false,
		"url":       "https://dev.azure.com/acme/_apis/git/repositories/" + repoGUID(n),
		"remoteUrl": "https://acme@dev.azure.com/acme/" + proj + "/_git/" + name,
		"webUrl":    "https://dev.azure.com/acme/" + proj + "/_git/" + name,
		"project":   map[string]any{"id": "6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c", "name": proj, "state": "wellFormed", "visibility": "private", "lastUpdateTime": "2025-01-15T08:00:00.000Z"},
	}
}

func (f *fakeAzureDevOps) serve(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.EscapedPath(), "/org/")
	rec := recorded{Method: r.Method, Path: path, Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization")}
	if body, _ := io.ReadAll(r.Body); len(body) > 0 {
		_ = json.Unmarshal(body, &rec.Body)
	}
	f.mu.Lock()
	f.requests = append(f.requests, rec)
	f.mu.Unlock()
	q := r.URL.Query()
	if q.Get("api-version") == "" {
		f.t.Errorf("%s %s without api-version", r.Method, path)
	}
	if v := strings.TrimSuffix(q.Get("api-version"), "-preview"); f.maxVersion != "" && v > f.maxVersion {
		// What Azure DevOps Server answers for a version it does not know.
		writeJSON(w, http.StatusBadRequest, map[string]any{"$id": "1", "innerException": nil,
			"message":  "The requested REST API version of " + v + " is out of range for this server. The latest REST API version this server supports is " + f.maxVersion + ".",
			"typeName": "Microsoft.VisualStudio.Services.WebApi.VssVersionOutOfRangeException, Microsoft.VisualStudio.Services.WebApi",
			"typeKey":  "VssVersionOutOfRangeException", "errorCode": 0, "eventId": 3000})
		return
	}
	for prefix, h := range f.override {
		if strings.HasPrefix(path, prefix) {
			h(w, r)
			return
		}
	}
	if user, pass, ok := r.BasicAuth(); !ok || user != "" || pass != testPAT {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"$id": "1", "message": "TF400813: The user '' is not authorized to access this resource.", "typeKey": "UnauthorizedRequestException", "errorCode": 0})
		return
	}
	repos := "_apis/git/repositories/" + repoGUID(1)
	switch {
	case path == "_apis/connectionData":
		writeJSON(w, 200, map[string]any{"authenticatedUser": map[string]any{"id": "00ca946b-2fe9-4f2a-ae2f-40d5c48001bc", "descriptor": "Microsoft.IdentityModel.Claims.ClaimsIdentity;x", "providerDisplayName": "Jamal Hartnett", "isActive": true,
			"properties": map[string]any{"Account": map[string]any{"$type": "System.String", "$value": "jamal@acme.example"}}}, "instanceId": "f844ec47-a9db-4511-8281-8b63f4eaf94e"})
	case path == "_apis/hooks/subscriptions" && r.Method == http.MethodGet:
		writeJSON(w, 200, map[string]any{"count": 0, "value": []any{}})
	case path == "_apis/hooks/subscriptions" && r.Method == http.MethodPost:
		writeJSON(w, 200, map[string]any{"id": "fd672255-8b6b-4769-9260-beea83d752ce", "publisherId": "tfs", "eventType": "git.push", "status": "enabled"})
	case path == "_apis/hooks/subscriptions/fd672255-8b6b-4769-9260-beea83d752ce" && r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(path, "_apis/hooks/subscriptions/") && r.Method == http.MethodDelete:
		writeJSON(w, 404, map[string]any{"message": "VS1051004: Subscription not found", "typeKey": "SubscriptionNotFoundException"})
	case path == "_apis/git/repositories":
		var all []any
		for n := 5; n >= 1; n-- { // the API does not sort; neither does the fake
			all = append(all, repoJSON(n))
		}
		writeJSON(w, 200, map[string]any{"count": len(all), "value": all})
	case strings.HasPrefix(path, "_apis/git/repositories/") && !strings.Contains(strings.TrimPrefix(path, "_apis/git/repositories/"), "/"):
		for n := 1; n <= 5; n++ {
			if path == "_apis/git/repositories/"+repoGUID(n) {
				writeJSON(w, 200, repoJSON(n))
				return
			}
		}
		writeJSON(w, 404, map[string]any{"message": "TF401019: The Git repository with name or identifier x does not exist or you do not have permissions for the operation you are attempting.", "typeKey": "GitRepositoryNotFoundException"})
	case path == repos+"/refs":
		f.refs(w, q)
	case strings.HasPrefix(path, repos+"/commits/") && strings.HasSuffix(path, "/statuses") && r.Method == http.MethodPost:
		writeJSON(w, 201, map[string]any{"id": 1, "state": rec.Body["state"], "context": rec.Body["context"]})
	case strings.HasPrefix(path, repos+"/commits/"):
		sha := strings.TrimPrefix(path, repos+"/commits/")
		writeJSON(w, 200, map[string]any{"commitId": sha, "comment": "Fix the login page", "remoteUrl": "https://dev.azure.com/acme/Alpha/_git/svc-1/commit/" + sha,
			"author": map[string]any{"name": "Jamal Hartnett", "email": "jamal@acme.example", "date": "2025-03-01T10:00:00Z"}, "committer": map[string]any{"name": "Jamal Hartnett", "date": "2025-03-01T10:05:00Z"}})
	case path == repos+"/diffs/commits":
		if q.Get("$skip") == "0" {
			writeJSON(w, 200, map[string]any{"allChangesIncluded": false, "changeCounts": map[string]any{"Edit": 2}, "changes": []any{
				map[string]any{"item": map[string]any{"objectId": "a", "gitObjectType": "tree", "path": "/web", "isFolder": true}, "changeType": "edit"},
				map[string]any{"item": map[string]any{"objectId": "b", "gitObjectType": "blob", "path": "/web/app.go"}, "changeType": "edit"},
			}, "commonCommit": q.Get("baseVersion"), "baseCommit": q.Get("baseVersion"), "targetCommit": q.Get("targetVersion")})
			return
		}
		writeJSON(w, 200, map[string]any{"allChangesIncluded": true, "changes": []any{
			map[string]any{"item": map[string]any{"gitObjectType": "blob", "path": "/docs/new.md"}, "changeType": "rename", "sourceServerItem": "/docs/old.md"},
		}})
	default:
		writeJSON(w, 404, map[string]any{"message": "The resource cannot be found.", "typeKey": "NotFound"})
	}
}

// refs serves heads/ in two continuation pages and tags/ in one, with an
// annotated tag peeled, filtering by prefix like the real API.
func (f *fakeAzureDevOps) refs(w http.ResponseWriter, q map[string][]string) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	all := []map[string]any{
		{"name": "refs/heads/main", "objectId": "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1"},
		{"name": "refs/heads/main-old", "objectId": "e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5"},
		{"name": "refs/heads/feature/login", "objectId": "c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2"},
		{"name": "refs/tags/v1.0.0", "objectId": "aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111", "peeledObjectId": "d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3"},
	}
	match := []any{} // an empty list is [], never null
	for _, r := range all {
		if strings.HasPrefix(r["name"].(string), "refs/"+get("filter")) {
			match = append(match, r)
		}
	}
	if get("filter") == "heads/" && get("continuationToken") == "" {
		w.Header().Set("X-MS-ContinuationToken", "page-2")
		match = match[:1]
	} else if get("filter") == "heads/" {
		match = match[1:]
	}
	writeJSON(w, 200, map[string]any{"count": len(match), "value": match})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8; api-version=7.1")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
