package gitlab

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const testToken = "glpat-contract-token"

// fakeGitLab answers the slice of GitLab's REST API v4 the provider uses,
// in the documented shapes, and records every request it receives.
type fakeGitLab struct {
	t      *testing.T
	srv    *httptest.Server
	http   *http.Client // validates every request against GitLab's description, then reaches srv
	scopes []string

	mu       sync.Mutex
	requests []recorded
	// override, when set for a path prefix, answers instead of the fake.
	override map[string]http.HandlerFunc
}

type recorded struct {
	Method, Path, Query, Auth string
	Body                      map[string]any
}

func newFakeGitLab(t *testing.T) *fakeGitLab {
	f := &fakeGitLab{t: t, scopes: []string{"api"}, override: map[string]http.HandlerFunc{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	tr := apiDoc.NewTransport(t, f.srv.URL)
	tr.AnyHost = true // self-managed GitLab answers wherever it is installed
	f.http = tr.Client()
	return f
}

func (f *fakeGitLab) last() recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[len(f.requests)-1]
}

func (f *fakeGitLab) serve(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	rec := recorded{Method: r.Method, Path: path, Query: r.URL.RawQuery, Auth: r.Header.Get("PRIVATE-TOKEN")}
	if a := r.Header.Get("Authorization"); a != "" {
		rec.Auth = a
	}
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
	if r.Header.Get("PRIVATE-TOKEN") != testToken && r.Header.Get("Authorization") != "Bearer "+testToken {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "401 Unauthorized"})
		return
	}
	q := r.URL.Query()
	switch {
	case path == "/oauth/token/info":
		writeJSON(w, 200, map[string]any{"resource_owner_id": 1, "scope": f.scopes, "expires_in": 7200, "application": map[string]any{"uid": "x"}, "created_at": 1700000000})
	case path == "/api/v4/user":
		writeJSON(w, 200, map[string]any{"id": 1, "username": "jsmith", "name": "John Smith", "state": "active", "web_url": "https://gitlab.example.test/jsmith"})
	case path == "/api/v4/personal_access_tokens/self":
		writeJSON(w, 200, map[string]any{"id": 4, "name": "slipway", "revoked": false, "created_at": "2025-01-01T00:00:00.000Z", "scopes": f.scopes, "user_id": 1, "last_used_at": nil, "active": true, "expires_at": "2099-01-01"})
	case path == "/api/v4/projects" && r.Method == http.MethodGet:
		f.listProjects(w, q)
	case strings.HasPrefix(path, "/api/v4/projects/"):
		f.project(w, r, strings.Split(strings.TrimPrefix(path, "/api/v4/projects/"), "/"))
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "404 Not Found"})
	}
}

// projects is the fake's catalogue: five projects, ids 11..15.
func projectJSON(id int) map[string]any {
	name := fmt.Sprintf("service-%d", id)
	vis := "private"
	if id%2 == 0 {
		vis = "public"
	}
	return map[string]any{
		"id": id, "name": name, "path": name, "path_with_namespace": "acme/" + name,
		"name_with_namespace": "Acme / " + name, "default_branch": "main", "visibility": vis,
		"http_url_to_repo": "https://gitlab.example.test/acme/" + name + ".git",
		"ssh_url_to_repo":  "git@gitlab.example.test:acme/" + name + ".git",
		"web_url":          "https://gitlab.example.test/acme/" + name,
		"archived":         id == 15, "last_activity_at": "2025-03-0" + strconv.Itoa(id-10) + "T10:00:00.000Z",
		"namespace": map[string]any{"id": 7, "name": "Acme", "path": "acme", "kind": "group", "full_path": "acme"},
	}
}

func (f *fakeGitLab) listProjects(w http.ResponseWriter, q url.Values) {
	if q.Get("membership") != "true" || q.Get("min_access_level") != "20" {
		f.t.Errorf("project listing query = %v, want membership=true&min_access_level=20", q)
	}
	var all []map[string]any
	for id := 11; id <= 15; id++ {
		p := projectJSON(id)
		if s := q.Get("search"); s != "" && !strings.Contains(p["name"].(string), s) {
			continue
		}
		all = append(all, p)
	}
	page, _ := strconv.Atoi(q.Get("page"))
	per, _ := strconv.Atoi(q.Get("per_page"))
	page, per = max(page, 1), max(per, 1)
	total := (len(all) + per - 1) / per
	lo, hi := min((page-1)*per, len(all)), min(page*per, len(all))
	h := w.Header()
	h.Set("X-Page", strconv.Itoa(page))
	h.Set("X-Per-Page", strconv.Itoa(per))
	h.Set("X-Total", strconv.Itoa(len(all)))
	h.Set("X-Total-Pages", strconv.Itoa(total))
	next := ""
	if page < total {
		next = strconv.Itoa(page + 1)
		h.Set("Link", fmt.Sprintf(`<%s/api/v4/projects?page=%s&per_page=%d>; rel="next"`, f.srv.URL, next, per))
	}
	h.Set("X-Next-Page", next)
	writeJSON(w, 200, all[lo:hi])
}

func (f *fakeGitLab) project(w http.ResponseWriter, r *http.Request, parts []string) {
	id, err := strconv.Atoi(parts[0])
	if err != nil || id < 11 || id > 15 {
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "404 Project Not Found"})
		return
	}
	rest := strings.Join(parts[1:], "/")
	commit := func(sha, msg string) map[string]any {
		return map[string]any{"id": sha, "short_id": sha[:8], "title": msg, "message": msg, "author_name": "Jane Doe",
			"author_email": "jane@example.test", "committed_date": "2025-03-01T12:00:00.000+01:00",
			"web_url": "https://gitlab.example.test/acme/x/-/commit/" + sha}
	}
	const mainSHA, tagSHA = "7b5c3cc8be40ee161ae89a06bba6229da1032a0c", "2695effb5807a22ff3d138d593fd856244e155e7"
	switch {
	case rest == "" && r.Method == http.MethodGet:
		writeJSON(w, 200, projectJSON(id))
	case rest == "repository/branches":
		page := r.URL.Query().Get("page")
		if page == "" || page == "1" {
			w.Header().Set("X-Next-Page", "2")
			writeJSON(w, 200, []any{map[string]any{"name": "main", "commit": commit(mainSHA, "main"), "default": true}})
			return
		}
		w.Header().Set("X-Next-Page", "")
		writeJSON(w, 200, []any{map[string]any{"name": "feature/login", "commit": commit("c1b2a3d4e5f60718293a4b5c6d7e8f9012345678", "login")}})
	case rest == "repository/tags":
		writeJSON(w, 200, []any{map[string]any{"name": "v1.0.0", "target": "ffeeddccbbaa", "commit": commit(tagSHA, "release")}})
	case strings.HasPrefix(rest, "repository/commits/"):
		ref, _ := url.PathUnescape(strings.TrimPrefix(rest, "repository/commits/"))
		switch ref {
		case "main":
			writeJSON(w, 200, commit(mainSHA, "Add login page"))
		case "feature/login":
			writeJSON(w, 200, commit("c1b2a3d4e5f60718293a4b5c6d7e8f9012345678", "login"))
		default:
			writeJSON(w, http.StatusNotFound, map[string]any{"message": "404 Commit Not Found"})
		}
	case rest == "repository/compare":
		writeJSON(w, 200, map[string]any{
			"commit": commit(mainSHA, "head"), "commits": []any{commit(mainSHA, "head")},
			"diffs": []any{
				map[string]any{"old_path": "web/app.go", "new_path": "web/app.go", "a_mode": "100644", "b_mode": "100644", "diff": "@@ -1 +1 @@", "new_file": false, "renamed_file": false, "deleted_file": false},
				map[string]any{"old_path": "docs/old.md", "new_path": "docs/new.md", "renamed_file": true},
				map[string]any{"old_path": "api/new.go", "new_path": "api/new.go", "new_file": true},
			},
			"compare_timeout": false, "compare_same_ref": false,
			"web_url": "https://gitlab.example.test/acme/x/-/compare/a...b",
		})
	case rest == "hooks" && r.Method == http.MethodPost:
		writeJSON(w, http.StatusCreated, map[string]any{"id": 1042, "url": "https://slipway.example.test/hooks/gitlab/int_1", "project_id": id, "push_events": true, "tag_push_events": true})
	case rest == "hooks/1042" && r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(rest, "hooks/") && r.Method == http.MethodDelete:
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "404 Not found"})
	case strings.HasPrefix(rest, "statuses/") && r.Method == http.MethodPost:
		writeJSON(w, http.StatusCreated, map[string]any{"id": 93, "sha": strings.TrimPrefix(rest, "statuses/"), "status": "running", "name": "slipway"})
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "404 Not Found"})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
