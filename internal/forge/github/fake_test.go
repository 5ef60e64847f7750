package github

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
)

// Fixed identities the fake GitHub knows.
const (
	fakeAppID          = 1040217
	fakeInstallationID = 51234567
	fakePublicRepoID   = 777 // a public repository outside the installation
)

// fakeClock is a settable clock shared by the provider and the fake.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// issuedToken is what the fake remembers about a token it minted.
type issuedToken struct {
	installation int64
	repoIDs      []int64
}

// fakeGitHub answers the GitHub REST endpoints the provider calls, in the
// documented shapes, under /api/v3/ (the GHES layout; github.com's API is
// the same without the prefix).
type fakeGitHub struct {
	t      testing.TB
	srv    *httptest.Server
	http   *http.Client // validates every request against GitHub's description, then reaches srv
	key    *rsa.PrivateKey
	keyPEM string
	clock  *fakeClock

	mu           sync.Mutex
	calls        map[string]int // "METHOD pattern" → count
	tokens       map[string]issuedToken
	tokenBodies  []string
	statusBodies []string
	repos        []fakeRepo
	suspended    bool
	permissions  map[string]string
	rateLimited  bool
	mintDelay    time.Duration
}

type fakeRepo struct {
	ID       int64
	FullName string
	Private  bool
}

func newFakeGitHub(t testing.TB, repoCount int) *fakeGitHub {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	f := &fakeGitHub{
		t: t, key: key, keyPEM: string(pemBytes),
		clock:       &fakeClock{t: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)},
		calls:       map[string]int{},
		tokens:      map[string]issuedToken{},
		permissions: map[string]string{"contents": "read", "metadata": "read", "statuses": "write", "pull_requests": "read"},
	}
	for i := range repoCount {
		f.repos = append(f.repos, fakeRepo{ID: int64(1000 + i), FullName: fmt.Sprintf("acme/repo-%04d", i), Private: i%3 != 0})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v3/app-manifests/{code}/conversions", f.convertManifest)
	mux.HandleFunc("GET /api/v3/app/installations/{id}", f.app(f.getInstallation))
	mux.HandleFunc("POST /api/v3/app/installations/{id}/access_tokens", f.app(f.accessTokens))
	mux.HandleFunc("GET /api/v3/installation/repositories", f.inst(f.listRepos))
	mux.HandleFunc("GET /api/v3/repositories/{id}", f.inst(f.getRepo))
	mux.HandleFunc("GET /api/v3/repos/{owner}/{repo}/branches", f.inst(f.listBranches))
	mux.HandleFunc("GET /api/v3/repos/{owner}/{repo}/branches/{branch...}", f.inst(f.getBranch))
	mux.HandleFunc("GET /api/v3/repos/{owner}/{repo}/tags", f.inst(f.listTags))
	mux.HandleFunc("GET /api/v3/repos/{owner}/{repo}/git/ref/{ref...}", f.inst(f.getRef))
	mux.HandleFunc("GET /api/v3/repos/{owner}/{repo}/git/tags/{sha}", f.inst(f.getTag))
	mux.HandleFunc("GET /api/v3/repos/{owner}/{repo}/commits/{sha}", f.inst(f.getCommit))
	mux.HandleFunc("GET /api/v3/repos/{owner}/{repo}/compare/{basehead}", f.inst(f.compare))
	mux.HandleFunc("POST /api/v3/repos/{owner}/{repo}/statuses/{sha}", f.inst(f.createStatus))
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		_, pattern := mux.Handler(r)
		f.calls[pattern]++
		limited := f.rateLimited
		f.mu.Unlock()
		if limited {
			w.Header().Set("X-RateLimit-Limit", "5000")
			w.Header().Set("X-RateLimit-Remaining", "0")
			w.Header().Set("X-RateLimit-Used", "5000")
			w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(f.clock.Now().Add(17*time.Minute).Unix(), 10))
			f.fail(w, http.StatusForbidden, "API rate limit exceeded for installation ID 51234567.", "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api")
			return
		}
		if _, bench := t.(*testing.B); bench {
			// Benchmarks measure the client's paging, not the checks.
			mux.ServeHTTP(w, r)
			return
		}
		completeAnswer(w, r, pattern, mux)
	}))
	t.Cleanup(f.srv.Close)
	if _, bench := t.(*testing.B); bench {
		f.http = f.srv.Client() // every request the benchmark makes is made, and validated, by the tests
		return f
	}
	tr := apiDoc.NewTransport(t, f.srv.URL)
	tr.AnyHost = true // GHES answers at the host it is installed on
	f.http = tr.Client()
	return f
}

// conn is a GitHub integration pointing at the fake (GHES layout).
func (f *fakeGitHub) conn() *forge.Conn {
	return &forge.Conn{
		Integration: slipway.Integration{Provider: slipway.ProviderGitHub, AuthMethod: slipway.AuthGitHubApp,
			BaseURL: f.srv.URL, ExternalID: strconv.Itoa(fakeInstallationID)},
		Secret: forge.Secret{AppID: strconv.Itoa(fakeAppID), PrivateKey: f.keyPEM, WebhookSecret: "hook-secret"},
	}
}

func (f *fakeGitHub) provider() *Provider {
	return New(Options{HTTP: f.http, Now: f.clock.Now})
}

func (f *fakeGitHub) count(pattern string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[pattern]
}

func (f *fakeGitHub) fail(w http.ResponseWriter, status int, msg, doc string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg, "documentation_url": doc, "status": strconv.Itoa(status)})
}

// answerTemplates complete the fake's answers for operations whose
// schemas require far more than the client reads (a repository has some
// 80 required fields): testdata/fake-answers.json holds, per operation, a
// value with every required field of the described response, typed as
// the description says. The fake's own fields win; only missing ones are
// filled, so every field the client reads is still the fake's, and is
// checked against the description like the rest.
var answerTemplates = func() map[string]any {
	raw, err := os.ReadFile("testdata/fake-answers.json")
	if err != nil {
		panic(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		panic(err)
	}
	return m
}()

// answerOps maps the fake's routes to the described operations.
var answerOps = map[string]string{
	"POST /api/v3/app-manifests/{code}/conversions":         "POST /app-manifests/{code}/conversions",
	"GET /api/v3/app/installations/{id}":                    "GET /app/installations/{installation_id}",
	"GET /api/v3/installation/repositories":                 "GET /installation/repositories",
	"GET /api/v3/repos/{owner}/{repo}/branches/{branch...}": "GET /repos/{owner}/{repo}/branches/{branch}",
	"GET /api/v3/repos/{owner}/{repo}/commits/{sha}":        "GET /repos/{owner}/{repo}/commits/{ref}",
	"GET /api/v3/repos/{owner}/{repo}/compare/{basehead}":   "GET /repos/{owner}/{repo}/compare/{basehead}",
}

// completeAnswer serves r through mux and fills a successful JSON answer
// of a templated operation with the template's missing fields.
func completeAnswer(w http.ResponseWriter, r *http.Request, pattern string, mux http.Handler) {
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	if tmpl, ok := answerTemplates[answerOps[pattern]]; ok && rec.Code < 300 {
		var v any
		if json.Unmarshal(body, &v) == nil {
			body, _ = json.Marshal(fillMissing(v, tmpl))
		}
	}
	for k, vs := range rec.Header() {
		w.Header()[k] = vs
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body)
}

// fillMissing adds tmpl's fields that v lacks, recursively; list items
// are completed from the template's first item.
func fillMissing(v, tmpl any) any {
	switch t := tmpl.(type) {
	case map[string]any:
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		for k, tv := range t {
			if cur, ok := m[k]; ok {
				m[k] = fillMissing(cur, tv)
			} else {
				m[k] = tv
			}
		}
		return m
	case []any:
		l, ok := v.([]any)
		if !ok || len(t) == 0 {
			return v
		}
		for i := range l {
			l[i] = fillMissing(l[i], t[0])
		}
		return l
	}
	return v
}

func (f *fakeGitHub) reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-RateLimit-Limit", "5000")
	w.Header().Set("X-RateLimit-Remaining", "4999")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// app requires a valid App JWT: RS256, signed by the App's key, issuer the
// App id, expiring at most ten minutes after it was issued.
func (f *fakeGitHub) app(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		var claims jwt.RegisteredClaims
		_, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return &f.key.PublicKey, nil },
			jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(f.clock.Now), jwt.WithIssuedAt())
		if !ok || err != nil || claims.Issuer != strconv.Itoa(fakeAppID) ||
			claims.ExpiresAt.Sub(claims.IssuedAt.Time) > 10*time.Minute || !claims.IssuedAt.Before(f.clock.Now()) {
			f.fail(w, http.StatusUnauthorized, "A JSON web token could not be decoded", "https://docs.github.com/rest")
			return
		}
		h(w, r)
	}
}

// inst requires an installation token the fake minted.
func (f *fakeGitHub) inst(h func(http.ResponseWriter, *http.Request, issuedToken)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		f.mu.Lock()
		tok, ok := f.tokens[raw]
		f.mu.Unlock()
		if !ok {
			f.fail(w, http.StatusUnauthorized, "Bad credentials", "https://docs.github.com/rest")
			return
		}
		h(w, r, tok)
	}
}

func (f *fakeGitHub) convertManifest(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("code") != "a1b2c3d4e5" {
		f.fail(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/apps/apps#create-a-github-app-from-a-manifest")
		return
	}
	f.reply(w, http.StatusCreated, map[string]any{
		"id": fakeAppID, "slug": "slipway-acme", "node_id": "A_kwDOAAmbzc4AD9_Z", "name": "Slipway (acme)",
		"owner":       map[string]any{"login": "acme", "id": 9919, "type": "Organization"},
		"description": nil, "external_url": "https://slipway.example.com", "html_url": "https://github.com/apps/slipway-acme",
		"created_at": "2026-03-01T08:00:00Z", "updated_at": "2026-03-01T08:00:00Z",
		"client_id": "Iv23liAbCdEfGh123456", "client_secret": "1d5b1c4e0c9a-client-secret",
		"webhook_secret": "e7c1f0a9-hook-secret", "pem": f.keyPEM,
		"permissions": map[string]string{"contents": "read", "metadata": "read"}, "events": []string{"push"},
	})
}

func (f *fakeGitHub) installationJSON() map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	inst := map[string]any{
		"id": fakeInstallationID, "client_id": "Iv23liAbCdEfGh123456", "app_id": fakeAppID, "app_slug": "slipway-acme",
		"account":              map[string]any{"login": "acme", "id": 9919, "type": "Organization"},
		"repository_selection": "selected", "target_id": 9919, "target_type": "Organization",
		"access_tokens_url": f.srv.URL + "/api/v3/app/installations/51234567/access_tokens",
		"permissions":       f.permissions, "events": []string{"create", "delete", "push", "repository"},
		"created_at": "2026-03-01T08:00:00.000Z", "updated_at": "2026-03-02T10:00:00.000Z",
		"suspended_at": nil, "suspended_by": nil,
	}
	if f.suspended {
		inst["suspended_at"] = "2026-03-02T11:00:00Z"
		inst["suspended_by"] = map[string]any{"login": "octocat", "id": 583231, "type": "User"}
	}
	return inst
}

func (f *fakeGitHub) getInstallation(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("id") != strconv.Itoa(fakeInstallationID) {
		f.fail(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/apps/apps#get-an-installation-for-the-authenticated-app")
		return
	}
	f.reply(w, http.StatusOK, f.installationJSON())
}

func (f *fakeGitHub) accessTokens(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.tokenBodies = append(f.tokenBodies, string(body))
	delay := f.mintDelay
	f.mu.Unlock()
	time.Sleep(delay)
	if r.PathValue("id") != strconv.Itoa(fakeInstallationID) {
		f.fail(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app")
		return
	}
	var req struct {
		RepositoryIDs []int64 `json:"repository_ids"`
	}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			f.fail(w, http.StatusBadRequest, "Problems parsing JSON", "https://docs.github.com/rest")
			return
		}
	}
	for _, id := range req.RepositoryIDs {
		if f.repoByID(id) == nil {
			f.fail(w, http.StatusUnprocessableEntity, "There is at least one repository that does not exist or is not accessible to the parent installation.", "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app")
			return
		}
	}
	f.mu.Lock()
	sum := sha256.Sum256(append(body, []byte(strconv.Itoa(len(f.tokens)))...))
	tok := "ghs_" + hex.EncodeToString(sum[:18])
	f.tokens[tok] = issuedToken{installation: fakeInstallationID, repoIDs: req.RepositoryIDs}
	f.mu.Unlock()
	f.reply(w, http.StatusCreated, map[string]any{
		"token": tok, "expires_at": f.clock.Now().Add(time.Hour).Format(time.RFC3339),
		"permissions": map[string]string{"contents": "read", "metadata": "read"}, "repository_selection": "selected",
	})
}

func (f *fakeGitHub) repoByID(id int64) *fakeRepo {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.repos {
		if f.repos[i].ID == id {
			return &f.repos[i]
		}
	}
	return nil
}

func (f *fakeGitHub) repoJSON(r fakeRepo) map[string]any {
	owner, name, _ := strings.Cut(r.FullName, "/")
	return map[string]any{
		"id": r.ID, "node_id": "R_kgDO" + strconv.FormatInt(r.ID, 10), "name": name, "full_name": r.FullName, "private": r.Private,
		"owner":    map[string]any{"login": owner, "id": 9919, "type": "Organization"},
		"html_url": "https://github.com/" + r.FullName, "clone_url": "https://github.com/" + r.FullName + ".git",
		"ssh_url": "git@github.com:" + r.FullName + ".git", "default_branch": "main", "archived": r.ID%10 == 9,
		"visibility": map[bool]string{true: "private", false: "public"}[r.Private],
		"created_at": "2024-01-02T03:04:05Z", "updated_at": "2026-02-01T12:00:00Z", "pushed_at": "2026-02-01T12:00:00Z",
	}
}

// listRepos pages like GitHub: per_page (max 100), page, a Link header with
// next/last/first/prev, and a weak ETag that If-None-Match turns into 304.
func (f *fakeGitHub) listRepos(w http.ResponseWriter, r *http.Request, _ issuedToken) {
	perPage, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	if perPage <= 0 {
		perPage = 30
	}
	perPage = min(perPage, 100)
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	page = max(page, 1)
	f.mu.Lock()
	total := len(f.repos)
	start := min((page-1)*perPage, total)
	end := min(start+perPage, total)
	slice := append([]fakeRepo(nil), f.repos[start:end]...)
	f.mu.Unlock()

	repos := make([]map[string]any, 0, len(slice))
	for _, rp := range slice {
		repos = append(repos, f.repoJSON(rp))
	}
	body, _ := json.Marshal(map[string]any{"total_count": total, "repository_selection": "selected", "repositories": repos})
	sum := sha256.Sum256(body)
	etag := `W/"` + hex.EncodeToString(sum[:16]) + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "private, max-age=60, s-maxage=60")
	w.Header().Set("Vary", "Accept, Authorization, Cookie, X-GitHub-OTP")
	lastPage := max((total+perPage-1)/perPage, 1)
	link := func(p int, rel string) string {
		return fmt.Sprintf(`<%s/api/v3/installation/repositories?per_page=%d&page=%d>; rel="%s"`, f.srv.URL, perPage, p, rel)
	}
	var links []string
	if page > 1 {
		links = append(links, link(page-1, "prev"))
	}
	if page < lastPage {
		links = append(links, link(page+1, "next"), link(lastPage, "last"))
	}
	if page > 1 {
		links = append(links, link(1, "first"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-RateLimit-Remaining", "4321")
	_, _ = w.Write(body)
}

// getRepo answers like GitHub: repositories in the installation, and the
// public repository outside it (which any token may read).
func (f *fakeGitHub) getRepo(w http.ResponseWriter, r *http.Request, _ issuedToken) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if id == fakePublicRepoID {
		f.reply(w, http.StatusOK, f.repoJSON(fakeRepo{ID: fakePublicRepoID, FullName: "someone/public-lib"}))
		return
	}
	rp := f.repoByID(id)
	if rp == nil {
		f.fail(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/repos/repos#get-a-repository")
		return
	}
	f.reply(w, http.StatusOK, f.repoJSON(*rp))
}

// The repository acme/web: branches main and feature/pricing, a
// lightweight tag v1.3.0 and an annotated tag v1.4.0.
const (
	shaMain    = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
	shaFeature = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
	shaOld     = "9049f1265b7d61be4a8904a9a27120d2064dab3b"
	shaTagObj  = "c0ffee1d4e5f60718293a4b5c6d7e8f901234567"
)

func (f *fakeGitHub) commitJSON(owner, repo, sha string) map[string]any {
	msgs := map[string]string{shaMain: "Add pricing page\n\nCloses #42", shaFeature: "Update landing copy", shaOld: "Initial commit"}
	return map[string]any{
		"sha": sha, "node_id": "C_kwDO" + sha[:8], "html_url": "https://github.com/" + owner + "/" + repo + "/commit/" + sha,
		"url": f.srv.URL + "/api/v3/repos/" + owner + "/" + repo + "/commits/" + sha,
		"commit": map[string]any{
			"message":   msgs[sha],
			"author":    map[string]any{"name": "Mona Lisa", "email": "mona@acme.example", "date": "2026-03-02T10:14:05Z"},
			"committer": map[string]any{"name": "GitHub", "email": "noreply@github.com", "date": "2026-03-02T10:14:05Z"},
			"tree":      map[string]any{"sha": "f9d2a07e9488b91af2641b26b9407fe22a451433"},
		},
		"author":  map[string]any{"login": "mona", "id": 1},
		"parents": []map[string]any{{"sha": shaOld}},
	}
}

func (f *fakeGitHub) knownRepo(w http.ResponseWriter, r *http.Request) bool {
	if r.PathValue("owner")+"/"+r.PathValue("repo") != "acme/web" {
		f.fail(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/repos/repos#get-a-repository")
		return false
	}
	return true
}

func (f *fakeGitHub) listBranches(w http.ResponseWriter, r *http.Request, _ issuedToken) {
	if !f.knownRepo(w, r) {
		return
	}
	f.reply(w, http.StatusOK, []map[string]any{
		{"name": "feature/pricing", "commit": map[string]any{"sha": shaFeature, "url": "x"}, "protected": false},
		{"name": "main", "commit": map[string]any{"sha": shaMain, "url": "x"}, "protected": true},
	})
}

func (f *fakeGitHub) getBranch(w http.ResponseWriter, r *http.Request, _ issuedToken) {
	if !f.knownRepo(w, r) {
		return
	}
	shas := map[string]string{"main": shaMain, "feature/pricing": shaFeature}
	sha, ok := shas[r.PathValue("branch")]
	if !ok {
		f.fail(w, http.StatusNotFound, "Branch not found", "https://docs.github.com/rest/branches/branches#get-a-branch")
		return
	}
	f.reply(w, http.StatusOK, map[string]any{"name": r.PathValue("branch"), "commit": f.commitJSON("acme", "web", sha), "protected": false})
}

func (f *fakeGitHub) listTags(w http.ResponseWriter, r *http.Request, _ issuedToken) {
	if !f.knownRepo(w, r) {
		return
	}
	f.reply(w, http.StatusOK, []map[string]any{
		{"name": "v1.4.0", "commit": map[string]any{"sha": shaMain, "url": "x"}, "zipball_url": "x", "tarball_url": "x", "node_id": "REF_1"},
		{"name": "v1.3.0", "commit": map[string]any{"sha": shaOld, "url": "x"}, "zipball_url": "x", "tarball_url": "x", "node_id": "REF_2"},
	})
}

func (f *fakeGitHub) getRef(w http.ResponseWriter, r *http.Request, _ issuedToken) {
	if !f.knownRepo(w, r) {
		return
	}
	switch r.PathValue("ref") {
	case "tags/v1.4.0":
		f.reply(w, http.StatusOK, map[string]any{"ref": "refs/tags/v1.4.0", "node_id": "REF_1", "object": map[string]any{"type": "tag", "sha": shaTagObj}})
	case "tags/v1.3.0":
		f.reply(w, http.StatusOK, map[string]any{"ref": "refs/tags/v1.3.0", "node_id": "REF_2", "object": map[string]any{"type": "commit", "sha": shaOld}})
	default:
		f.fail(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/git/refs#get-a-reference")
	}
}

func (f *fakeGitHub) getTag(w http.ResponseWriter, r *http.Request, _ issuedToken) {
	if !f.knownRepo(w, r) || r.PathValue("sha") != shaTagObj {
		f.fail(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/git/tags#get-a-tag")
		return
	}
	api := "https://ghe.example.test/api/v3/repos/acme/web/git/"
	f.reply(w, http.StatusOK, map[string]any{"sha": shaTagObj, "node_id": "MDM6VGFnOTQwYmQzMzYyNDhlZmFlMGY5ZWU1YmM3YjJkNWM5ODU4ODdiMTZhYw==",
		"url": api + "tags/" + shaTagObj, "tag": "v1.4.0", "message": "Release 1.4.0\n",
		"object": map[string]any{"type": "commit", "sha": shaMain, "url": api + "commits/" + shaMain},
		"tagger": map[string]any{"name": "Mona Lisa", "email": "octocat@github.com", "date": "2026-03-01T10:00:00Z"}})
}

func (f *fakeGitHub) getCommit(w http.ResponseWriter, r *http.Request, _ issuedToken) {
	if !f.knownRepo(w, r) {
		return
	}
	for _, sha := range []string{shaMain, shaFeature, shaOld} {
		if strings.HasPrefix(sha, r.PathValue("sha")) {
			f.reply(w, http.StatusOK, f.commitJSON("acme", "web", sha))
			return
		}
	}
	f.fail(w, http.StatusUnprocessableEntity, "No commit found for SHA: "+r.PathValue("sha"), "https://docs.github.com/rest/commits/commits#get-a-commit")
}

func (f *fakeGitHub) compare(w http.ResponseWriter, r *http.Request, _ issuedToken) {
	if !f.knownRepo(w, r) {
		return
	}
	if r.PathValue("basehead") != shaOld+"..."+shaMain {
		f.fail(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/commits/commits#compare-two-commits")
		return
	}
	f.reply(w, http.StatusOK, map[string]any{
		"status": "ahead", "ahead_by": 2, "behind_by": 0, "total_commits": 2,
		"base_commit": f.commitJSON("acme", "web", shaOld), "merge_base_commit": f.commitJSON("acme", "web", shaOld),
		"commits": []any{f.commitJSON("acme", "web", shaFeature), f.commitJSON("acme", "web", shaMain)},
		"files": []map[string]any{
			{"sha": "bbcd538c8e72b8c175046e27cc8f907076331401", "filename": "site/index.html", "status": "modified", "additions": 3, "deletions": 1, "changes": 4, "blob_url": "https://github.com/acme/web/blob/main/site/index.html", "raw_url": "https://github.com/acme/web/raw/main/site/index.html", "contents_url": "https://ghe.example.test/api/v3/repos/acme/web/contents/site/index.html?ref=main"},
			{"sha": "a1b2c3", "filename": "site/pricing.html", "status": "added", "additions": 40, "deletions": 0, "changes": 40, "blob_url": "https://github.com/acme/web/blob/main/site/pricing.html", "raw_url": "https://github.com/acme/web/raw/main/site/pricing.html", "contents_url": "https://ghe.example.test/api/v3/repos/acme/web/contents/site/pricing.html?ref=main"},
			{"sha": "d4e5f6", "filename": "docs/guide.md", "previous_filename": "README.md", "status": "renamed", "additions": 0, "deletions": 0, "changes": 0, "blob_url": "https://github.com/acme/web/blob/main/docs/guide.md", "raw_url": "https://github.com/acme/web/raw/main/docs/guide.md", "contents_url": "https://ghe.example.test/api/v3/repos/acme/web/contents/docs/guide.md?ref=main"},
		},
	})
}

func (f *fakeGitHub) createStatus(w http.ResponseWriter, r *http.Request, _ issuedToken) {
	if !f.knownRepo(w, r) {
		return
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.statusBodies = append(f.statusBodies, r.PathValue("sha")+" "+strings.TrimSpace(string(body)))
	f.mu.Unlock()
	var in map[string]any
	_ = json.Unmarshal(body, &in)
	f.reply(w, http.StatusCreated, map[string]any{
		"url": "https://ghe.example.test/api/v3/repos/acme/web/statuses/" + r.PathValue("sha"), "id": 1, "node_id": "MDY6U3RhdHVzMQ==",
		"avatar_url": "https://ghe.example.test/images/ci.png", "state": in["state"], "description": in["description"],
		"target_url": in["target_url"], "context": in["context"], "created_at": "2026-03-02T10:00:00Z", "updated_at": "2026-03-02T10:00:00Z",
		"creator": nil,
	})
}
