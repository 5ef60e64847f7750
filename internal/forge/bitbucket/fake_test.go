package bitbucket

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const testToken = "bb-contract-token"

// fakeBitbucket answers the slice of the Bitbucket Cloud 2.0 API the
// provider uses, in its documented shapes, and records requests.
type fakeBitbucket struct {
	t        *testing.T
	srv      *httptest.Server
	http     *http.Client // validates every request against the description, then reaches srv
	scopes   string       // X-OAuth-Scopes on every answer
	mu       sync.Mutex
	requests []recorded
	override map[string]http.HandlerFunc
	// workspaces are the user's, in the order GET /user/workspaces lists them.
	workspaces []string
}

type recorded struct {
	Method, Path, Query, Auth string
	Body                      map[string]any
}

func newFake(t *testing.T) *fakeBitbucket {
	f := &fakeBitbucket{t: t, scopes: "account, repository:write, webhook, pullrequest", override: map[string]http.HandlerFunc{}, workspaces: []string{"acme", "empty"}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	f.http = apiDoc.NewTransport(t, f.srv.URL).Client()
	return f
}

func (f *fakeBitbucket) last() recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[len(f.requests)-1]
}

func repoUUID(n int) string { return fmt.Sprintf("{00000000-0000-4000-8000-0000000000%02d}", n) }

func repoJSON(n int) map[string]any {
	name := fmt.Sprintf("svc-%d", n)
	return map[string]any{
		"type": "repository", "uuid": repoUUID(n), "full_name": "acme/" + name, "name": name, "slug": name,
		"is_private": n%2 == 1, "scm": "git", "updated_on": fmt.Sprintf("2025-02-0%dT09:30:00.123456+00:00", n),
		"mainbranch": map[string]any{"type": "branch", "name": "main"},
		"links": map[string]any{
			"html": map[string]any{"href": "https://bitbucket.org/acme/" + name},
			"clone": []any{
				map[string]any{"name": "https", "href": "https://jdoe@bitbucket.org/acme/" + name + ".git"},
				map[string]any{"name": "ssh", "href": "git@bitbucket.org:acme/" + name + ".git"},
			},
		},
		"workspace": map[string]any{"type": "workspace", "slug": "acme", "uuid": "{0f1e2d3c-4b5a-4697-8877-665544332211}"},
	}
}

func commitJSON(hash, msg string) map[string]any {
	return map[string]any{"type": "commit", "hash": hash, "message": msg, "date": "2025-03-01T10:15:30+00:00",
		"author": map[string]any{"type": "author", "raw": "Jane Doe <jane@example.test>"},
		"links":  map[string]any{"html": map[string]any{"href": "https://bitbucket.org/acme/svc-1/commits/" + hash}}}
}

// apiHost is the only host Bitbucket Cloud's REST API answers on.
const apiHost = "api.bitbucket.org"

// apiURL is where the real API would put a link (next pages).
const apiURL = "https://" + apiHost

func (f *fakeBitbucket) serve(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	if r.Host != apiHost {
		// The web host (bitbucket.org) has no REST API: what the real
		// service does there is not an answer a client can rely on.
		f.t.Errorf("request to %s%s: Bitbucket's REST API answers only at %s", r.Host, path, apiHost)
		http.Error(w, "not the API host", http.StatusMisdirectedRequest)
		return
	}
	rec := recorded{Method: r.Method, Path: path, Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization")}
	if body, _ := io.ReadAll(r.Body); len(body) > 0 {
		_ = json.Unmarshal(body, &rec.Body)
	}
	f.mu.Lock()
	f.requests = append(f.requests, rec)
	f.mu.Unlock()
	for prefix, h := range f.override {
		if strings.HasPrefix(path, prefix) {
			h(w, r)
			return
		}
	}
	user, pass, basic := r.BasicAuth()
	if r.Header.Get("Authorization") != "Bearer "+testToken && !(basic && user == "jane@example.test" && pass == testToken) {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"type": "error", "error": map[string]any{"message": "Access token expired."}})
		return
	}
	if f.scopes != "" {
		w.Header().Set("X-OAuth-Scopes", f.scopes)
	}
	q := r.URL.Query()
	const repoPrefix = "/2.0/repositories/acme/svc-1"
	switch {
	case path == "/2.0/user":
		writeJSON(w, 200, map[string]any{"type": "user", "username": "jdoe", "display_name": "Jane Doe", "uuid": "{d3c0c6e8-1c3e-4f54-9d2b-2a5e0f5f7c11}", "account_id": "557058:0a1b2c3d"})
	case path == "/2.0/repositories":
		// CHANGE-2770: the cross-workspace listing is gone.
		writeJSON(w, http.StatusGone, map[string]any{"type": "error", "error": map[string]any{"message": "This API is no longer available"}})
	case path == "/2.0/user/workspaces":
		all := []any{}
		for _, ws := range f.workspaces {
			all = append(all, map[string]any{"type": "workspace_access", "administrator": false,
				"workspace": map[string]any{"type": "workspace_base", "slug": ws, "uuid": "{0f1e2d3c-4b5a-4697-8877-6655443322" + fmt.Sprintf("%02d", len(ws)) + "}"}})
		}
		writeJSON(w, 200, map[string]any{"pagelen": 100, "page": 1, "size": len(all), "values": all})
	case path == "/2.0/repositories/empty":
		writeJSON(w, 200, map[string]any{"pagelen": 100, "page": 1, "size": 0, "values": []any{}})
	case path == "/2.0/repositories/acme":
		var all []any
		for n := 1; n <= 5; n++ {
			if s := q.Get("q"); s != "" && !strings.Contains(s, fmt.Sprintf(`"svc-%d"`, n)) {
				continue
			}
			all = append(all, repoJSON(n))
		}
		page, _ := strconv.Atoi(q.Get("page"))
		per, _ := strconv.Atoi(q.Get("pagelen"))
		page, per = max(page, 1), max(per, 1)
		lo, hi := min((page-1)*per, len(all)), min(page*per, len(all))
		body := map[string]any{"pagelen": per, "size": len(all), "page": page, "values": all[lo:hi]}
		if hi < len(all) {
			nq := r.URL.Query()
			nq.Set("page", strconv.Itoa(page+1))
			body["next"] = apiURL + path + "?" + nq.Encode()
		}
		writeJSON(w, 200, body)
	case strings.HasPrefix(path, "/2.0/repositories/%7B%7D/"):
		for n := 1; n <= 5; n++ {
			if strings.EqualFold(strings.TrimPrefix(path, "/2.0/repositories/%7B%7D/"), strings.NewReplacer("{", "%7B", "}", "%7D").Replace(repoUUID(n))) {
				writeJSON(w, 200, repoJSON(n))
				return
			}
		}
		writeJSON(w, 404, map[string]any{"type": "error", "error": map[string]any{"message": "Repository not found"}})
	case path == repoPrefix+"/refs/branches" && q.Get("page") == "":
		writeJSON(w, 200, map[string]any{"pagelen": 1, "values": []any{map[string]any{"type": "branch", "name": "main", "target": commitJSON("b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1", "main")}},
			"next": apiURL + repoPrefix + "/refs/branches?pagelen=1&page=2"})
	case path == repoPrefix+"/refs/branches":
		writeJSON(w, 200, map[string]any{"pagelen": 1, "values": []any{map[string]any{"type": "branch", "name": "feature/login", "target": commitJSON("c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2", "login")}}})
	case path == repoPrefix+"/refs/tags":
		writeJSON(w, 200, map[string]any{"pagelen": 100, "values": []any{map[string]any{"type": "tag", "name": "v1.0.0", "target": commitJSON("d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3", "release")}}})
	case path == repoPrefix+"/refs/branches/feature%2Flogin":
		writeJSON(w, 200, map[string]any{"type": "branch", "name": "feature/login", "target": commitJSON("c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2", "Add login\n")})
	case path == repoPrefix+"/refs/tags/v1.0.0":
		writeJSON(w, 200, map[string]any{"type": "tag", "name": "v1.0.0", "target": commitJSON("d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3", "release")})
	case path == repoPrefix+"/commit/abc1234":
		writeJSON(w, 200, commitJSON("abc1234000000000000000000000000000000000", "by sha"))
	case path == repoPrefix+"/hooks" && r.Method == http.MethodPost:
		writeJSON(w, 201, map[string]any{"type": "webhook_subscription", "uuid": "{11111111-2222-4333-8444-555555555555}", "url": rec.Body["url"], "active": true, "events": rec.Body["events"]})
	case path == repoPrefix+"/hooks/%7B11111111-2222-4333-8444-555555555555%7D" && r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(path, repoPrefix+"/diffstat/"):
		if q.Get("page") == "" {
			writeJSON(w, 200, map[string]any{"pagelen": 2, "page": 1, "values": []any{
				map[string]any{"type": "diffstat", "status": "modified", "lines_added": 3, "lines_removed": 1, "old": map[string]any{"path": "web/app.go", "type": "commit_file"}, "new": map[string]any{"path": "web/app.go", "type": "commit_file"}},
				map[string]any{"type": "diffstat", "status": "added", "new": map[string]any{"path": "api/new.go", "type": "commit_file"}},
			}, "next": apiURL + path + "?page=2"})
			return
		}
		writeJSON(w, 200, map[string]any{"pagelen": 2, "page": 2, "values": []any{
			map[string]any{"type": "diffstat", "status": "renamed", "old": map[string]any{"type": "commit_file", "path": "docs/old.md"}, "new": map[string]any{"type": "commit_file", "path": "docs/new.md"}},
			map[string]any{"type": "diffstat", "status": "removed", "old": map[string]any{"type": "commit_file", "path": "tmp/x"}},
		}})
	case strings.HasPrefix(path, repoPrefix+"/commit/") && strings.HasSuffix(path, "/statuses/build") && r.Method == http.MethodPost:
		writeJSON(w, 201, map[string]any{"type": "build", "key": rec.Body["key"], "state": rec.Body["state"]})
	default:
		writeJSON(w, 404, map[string]any{"type": "error", "error": map[string]any{"message": "Resource not found"}})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
