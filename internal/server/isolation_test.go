package server_test

import (
	"context"
	"encoding/json"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/server"
	"slipway.dev/slipway/internal/service"
)

// orgA is everything organisation A owns, by path parameter name, plus the
// strings that must never appear in an answer given to another tenant.
type orgA struct {
	ids     map[string]string // path parameter → A's id
	names   map[string]string // path parameter → A's reference by name, where names resolve
	query   map[string]string // route pattern → query string the route needs
	markers map[string]string // text of A's → what it is
}

// TestTenantIsolation walks every route of the OpenAPI document with a
// token of organisation B and A's identifiers in the path: each must answer
// 404 without a trace of A's data. Lists must not contain A's items. The
// routes come from the served document, so a new route is walked as soon
// as it exists.
func TestTenantIsolation(t *testing.T) {
	databases(t, func(t *testing.T, databaseURL string) {
		srv := startServer(t, databaseURL)
		adminA := apiClient{t: t, base: srv.URL(), token: srv.Bootstrap.Token}
		a := seedOrgA(t, adminA, bareRepo(t))
		seedLegacyProject(t, srv, a)
		seedInvitation(t, srv, adminA, a)
		tokenB := setUpOrgB(t, srv, adminA)
		b := apiClient{t: t, base: srv.URL(), token: tokenB}

		// B is a working tenant: it has its own application, so the lists
		// below are real lists, not errors.
		b.must(201, "POST", "/api/v1/applications", service.ApplicationInput{Name: "b-app"}, nil)

		var doc struct {
			Paths map[string]map[string]json.RawMessage `json:"paths"`
		}
		b.must(200, "GET", "/api/v1/openapi.json", nil, &doc)
		if len(doc.Paths) == 0 {
			t.Fatal("the OpenAPI document lists no paths")
		}
		walked := 0
		for _, pattern := range sortedKeys(doc.Paths) {
			for _, method := range sortedKeys(doc.Paths[pattern]) {
				method = strings.ToUpper(method)
				params := pathParam.FindAllStringSubmatch(pattern, -1)
				if len(params) == 0 {
					checkList(t, b, a, method, pattern)
					continue
				}
				for _, byName := range []bool{false, true} {
					path, ok := substitute(t, a, pattern, params, byName)
					if !ok {
						continue
					}
					if q := a.query[pattern]; q != "" {
						path += "?" + q
					}
					walked++
					r := b.do(method, path, bodyFor(method, pattern))
					route := method + " " + pattern
					if installationRoute(pattern) {
						// Above organisations: B's Admin role does not reach
						// them at all, whatever the id.
						if r.status != 403 {
							t.Errorf("%s as organisation B's Admin: status %d, want 403: %s", route, r.status, r.body)
						}
						assertNoLeak(t, a, route, path, r.body)
						continue
					}
					if r.status != 404 {
						t.Errorf("%s as organisation B (%s %s): status %d, want 404: %s", route, method, path, r.status, r.body)
						continue
					}
					if code := r.problemCode(); code != string(slipway.ECodeNotFound) {
						t.Errorf("%s as organisation B: problem code %q, want %q: %s", route, code, slipway.ECodeNotFound, r.body)
					}
					if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
						t.Errorf("%s as organisation B: Content-Type %q, want application/problem+json", route, ct)
					}
					assertNoLeak(t, a, route, path, r.body)
				}
			}
		}
		t.Logf("walked %d foreign-id requests over %d paths", walked, len(doc.Paths))
		if walked < 30 {
			t.Errorf("walked only %d requests with path parameters; the document seems incomplete", walked)
		}

		// Routes that take A's ids in the body instead of the path.
		for _, rq := range []struct {
			method, path string
			body         any
		}{
			{"POST", "/api/v1/projects/migrate/plan", map[string]any{"project": a.ids["project"]}},
			{"POST", "/api/v1/projects/migrate", map[string]any{"project": a.ids["project"]}},
			{"POST", "/api/v1/projects/migrate", map[string]any{"project": a.ids["project"], "target_application": a.ids["app"]}},
			{"POST", "/api/v1/members", service.CreateUserInput{Email: "bob-b2@example.com", Password: "bob-b2-password", Role: a.ids["role"]}},
			{"PATCH", "/api/v1/members/" + a.ids["user"], map[string]string{"role": a.ids["role"]}},
		} {
			r := b.do(rq.method, rq.path, rq.body)
			route := rq.method + " " + rq.path + " with A's ids in the body"
			// A foreign role named in the body is an invalid reference in
			// B (400), a foreign project or application is not found (404);
			// neither may succeed or fail in any other way.
			if r.status != 404 && r.status != 400 {
				t.Errorf("%s as organisation B: status %d, want 404 (or 400 for an unknown reference): %s", route, r.status, r.body)
			}
			sent, _ := json.Marshal(rq.body)
			assertNoLeak(t, a, route, rq.path+" "+string(sent), r.body)
		}
		// Migrating "everything" in B leaves A's project alone.
		b.must(200, "POST", "/api/v1/projects/migrate", map[string]any{}, nil)
		adminA.must(200, "GET", "/api/v1/projects/"+a.ids["project"], nil, nil)

		// B's lists are scoped, not empty: B sees its own application.
		var appsB struct{ Items []slipway.Application }
		b.must(200, "GET", "/api/v1/applications", nil, &appsB)
		if len(appsB.Items) != 1 || appsB.Items[0].Name != "b-app" {
			t.Errorf("B's applications: %+v, want only b-app", appsB.Items)
		}

		// Nothing B did touched A's objects.
		for _, p := range []string{
			"/api/v1/applications/" + a.ids["app"],
			"/api/v1/environments/" + a.ids["env"],
			"/api/v1/services/" + a.ids["svc"],
			"/api/v1/roles/" + a.ids["role"],
			"/api/v1/deployments/" + a.ids["dep"],
			"/api/v1/integrations/" + a.ids["int"],
		} {
			adminA.must(200, "GET", p, nil, nil)
		}
		var vars struct{ Items []service.VariableView }
		adminA.must(200, "GET", "/api/v1/services/"+a.ids["svc"]+"/variables", nil, &vars)
		if len(vars.Items) != 1 || vars.Items[0].Key != a.ids["key"] || vars.Items[0].Value != "a-variable-value" {
			t.Errorf("A's variables after B's walk: %+v", vars.Items)
		}
		var members struct{ Items []slipway.Membership }
		adminA.must(200, "GET", "/api/v1/members", nil, &members)
		if !containsMember(members.Items, a.ids["user"], "") {
			t.Errorf("A's member %s is gone after B's walk", a.ids["user"])
		}
		var toks struct{ Items []slipway.APIToken }
		adminA.must(200, "GET", "/api/v1/tokens", nil, &toks)
		found := false
		for _, tok := range toks.Items {
			found = found || tok.ID == a.ids["token"]
		}
		if !found {
			t.Errorf("A's token %s is gone after B's walk", a.ids["token"])
		}
	})
}

var pathParam = regexp.MustCompile(`\{([a-z]+)\}`)

// seedOrgA creates one of everything in organisation A (the bootstrap
// organisation) that exists without a hosted Git provider.
func seedOrgA(t *testing.T, c apiClient, repoURL string) orgA {
	t.Helper()
	a := orgA{ids: map[string]string{}, names: map[string]string{}, query: map[string]string{}, markers: map[string]string{}}

	var me struct {
		OrgID  string `json:"org_id"`
		UserID string `json:"user_id"`
	}
	c.must(200, "GET", "/api/v1/me", nil, &me)
	a.ids["org"] = me.OrgID
	a.markers[me.OrgID] = "A's organisation id"
	a.markers[me.UserID] = "A's administrator id"

	var app slipway.Application
	c.must(201, "POST", "/api/v1/applications", service.ApplicationInput{Name: "isolation-a-app", Description: "a-app-description"}, &app)
	a.ids["app"], a.names["app"] = app.ID, app.Name
	a.markers[app.ID], a.markers[app.Name], a.markers["a-app-description"] = "A's application id", "A's application name", "A's application description"
	a.markers[app.DefaultEnvironmentID] = "A's production environment id"

	var env slipway.Environment
	c.must(201, "POST", "/api/v1/applications/"+app.ID+"/environments", service.EnvironmentInput{Name: "isolation-a-staging"}, &env)
	a.ids["env"], a.names["env"] = env.ID, app.Name+"/"+env.Name
	a.markers[env.ID], a.markers[env.Name] = "A's environment id", "A's environment name"

	image := "x"
	var svc slipway.Service
	c.must(201, "POST", "/api/v1/environments/"+app.DefaultEnvironmentID+"/services",
		service.ServiceInput{Name: "isolation-a-web", Type: slipway.ServiceDocker, Image: &image}, &svc)
	a.ids["svc"], a.names["svc"] = svc.ID, app.Name+"/production/"+svc.Name
	a.markers[svc.ID], a.markers[svc.Name] = "A's service id", "A's service name"

	var dom service.DomainView
	c.must(201, "POST", "/api/v1/services/"+svc.ID+"/domains", map[string]string{"domain": "isolation-a.example.test"}, &dom)
	a.ids["domain"] = dom.Domain
	a.markers[dom.Domain], a.markers[dom.Record.Value] = "A's custom domain", "A's domain verification token"

	var v service.VariableView
	c.must(200, "PUT", "/api/v1/services/"+svc.ID+"/variables/A_ISOLATION_VAR", service.VariableInput{Value: "a-variable-value"}, &v)
	a.ids["key"] = "A_ISOLATION_VAR"
	a.markers["a-variable-value"] = "A's variable value"

	var hook struct {
		URL string `json:"url"`
	}
	c.must(200, "POST", "/api/v1/services/"+svc.ID+"/deploy-hook", nil, &hook)
	if hook.URL == "" {
		t.Fatal("deploy hook rotation returned no URL")
	}
	a.markers[hook.URL] = "A's deploy-hook URL"

	var dep slipway.Deployment
	c.must(202, "POST", "/api/v1/services/"+svc.ID+"/deploy", service.DeployInput{}, &dep)
	a.ids["dep"] = dep.ID
	a.markers[dep.ID] = "A's deployment id"

	var role slipway.Role
	c.must(201, "POST", "/api/v1/roles", service.RoleInput{Name: "isolation-a-role",
		Permissions: slipway.Permissions{slipway.ResApplications: {slipway.ActRead}}}, &role)
	a.ids["role"] = role.ID
	a.markers[role.ID], a.markers[role.Name] = "A's role id", "A's role name"

	var added service.AddMemberResult
	c.must(201, "POST", "/api/v1/members", service.CreateUserInput{Email: "carol-a@example.com", Name: "Carol of A",
		Password: "carol-a-password", Role: role.Name}, &added)
	if added.Membership == nil {
		t.Fatalf("adding a new user gave no membership: %+v", added)
	}
	m := *added.Membership
	a.ids["user"] = m.UserID
	a.markers[m.UserID], a.markers["carol-a@example.com"], a.markers["Carol of A"] = "A's member id", "A's member e-mail", "A's member name"

	var tok service.CreateTokenResult
	c.must(201, "POST", "/api/v1/tokens", map[string]any{"name": "isolation-a-token"}, &tok)
	a.ids["token"] = tok.Token.ID
	a.markers[tok.Token.ID], a.markers[tok.Token.Name], a.markers[tok.Secret] = "A's token id", "A's token name", "A's token secret"

	var integ slipway.Integration
	c.must(201, "POST", "/api/v1/integrations", service.ConnectInput{Provider: slipway.ProviderGit, Label: "isolation-a-git", URL: repoURL}, &integ)
	a.ids["int"] = integ.ID
	a.markers[integ.ID], a.markers[integ.Label] = "A's integration id", "A's integration label"
	u, err := url.Parse(repoURL)
	if err != nil {
		t.Fatal(err)
	}
	a.markers[u.Path] = "A's repository path"

	var repos struct {
		Items []struct{ ID, FullName string }
	}
	c.must(200, "GET", "/api/v1/integrations/"+integ.ID+"/repos", nil, &repos)
	if len(repos.Items) == 0 {
		t.Fatal("A's generic Git integration lists no repository")
	}
	a.query["/api/v1/integrations/{int}/refs"] = "repo=" + url.QueryEscape(repos.Items[0].ID)
	// Deliveries only arrive from a provider; a well-formed id that no
	// organisation owns must still be a plain 404.
	a.ids["delivery"] = slipway.NewID(slipway.PrefixDelivery)
	return a
}

// seedLegacyProject gives A a legacy project. The API refuses new ones
// (projects are read-only), so the test writes it to the store, as an
// installation upgraded from the project era would have it.
func seedLegacyProject(t *testing.T, srv *server.Server, a orgA) {
	t.Helper()
	p := &slipway.Project{ID: slipway.NewID(slipway.PrefixProject), OrgID: a.ids["org"], Name: "isolation-a-project", CreatedAt: time.Now().UTC()}
	if err := srv.Store.CreateProject(context.Background(), p); err != nil {
		t.Fatalf("seed legacy project: %v", err)
	}
	a.ids["project"], a.names["project"] = p.ID, p.Name
	a.markers[p.ID], a.markers[p.Name] = "A's legacy project id", "A's legacy project name"
}

// seedInvitation has A invite a user who belongs to neither organisation
// (adding an existing user is an invitation they accept).
func seedInvitation(t *testing.T, srv *server.Server, adminA apiClient, a orgA) {
	t.Helper()
	dave := slipway.User{Email: "dave-elsewhere@example.com", Name: "Dave Elsewhere"}
	if err := srv.Store.CreateUser(context.Background(), &dave, "unused"); err != nil {
		t.Fatalf("seed user: %v", err)
	}
	var invited service.AddMemberResult
	adminA.must(202, "POST", "/api/v1/members", service.CreateUserInput{Email: dave.Email, Role: slipway.RoleAdmin}, &invited)
	if invited.Invitation == nil {
		t.Fatalf("inviting an existing user gave no invitation: %+v", invited)
	}
	a.ids["inv"] = invited.Invitation.ID
	a.markers[invited.Invitation.ID] = "A's invitation id"
}

// setUpOrgB creates organisation B with A's administrator, gives B its own
// administrator (who is not a member of A) and takes A's administrator out
// of B again. It returns a token of B's administrator.
func setUpOrgB(t *testing.T, srv *server.Server, adminA apiClient) string {
	t.Helper()
	var org slipway.Organisation
	adminA.must(201, "POST", "/api/v1/orgs", map[string]string{"name": "org-b"}, &org)
	var me struct {
		UserID string `json:"user_id"`
	}
	adminA.must(200, "GET", "/api/v1/me", nil, &me)
	founder := apiClient{t: t, base: adminA.base, http: adminA.http, token: seedToken(t, srv, org.ID, me.UserID)}
	var added service.AddMemberResult
	founder.must(201, "POST", "/api/v1/members", service.CreateUserInput{Email: "bob-b@example.com", Password: "bob-b-password", Role: slipway.RoleAdmin}, &added)
	if added.Membership == nil {
		t.Fatalf("adding a new user gave no membership: %+v", added)
	}
	tokenB := seedToken(t, srv, org.ID, added.Membership.UserID)
	b := apiClient{t: t, base: adminA.base, http: adminA.http, token: tokenB}
	b.must(204, "DELETE", "/api/v1/members/"+me.UserID, nil, nil)
	var who struct {
		OrgID string `json:"org_id"`
		Role  string `json:"role"`
	}
	b.must(200, "GET", "/api/v1/me", nil, &who)
	if who.OrgID != org.ID || who.Role != slipway.RoleAdmin {
		t.Fatalf("B's token acts as %+v, want Admin of %s", who, org.ID)
	}
	return tokenB
}

// substitute fills the path parameters with A's ids (or names). ok is
// false when a parameter has no name form.
func substitute(t *testing.T, a orgA, pattern string, params [][]string, byName bool) (string, bool) {
	t.Helper()
	path := pattern
	usedName := false
	for _, p := range params {
		v, known := a.ids[p[1]]
		if !known {
			t.Errorf("%s: the isolation walk has no id of organisation A for path parameter {%s}: create one in seedOrgA", pattern, p[1])
			return "", false
		}
		if n, ok := a.names[p[1]]; ok && byName {
			v, usedName = n, true
		}
		path = strings.Replace(path, p[0], url.PathEscape(v), 1)
	}
	return path, !byName || usedName
}

// bodyFor is a request body that would be valid for B's own objects, so
// a refusal is about the foreign id, not about the input.
func bodyFor(method, pattern string) any {
	switch method + " " + pattern {
	case "PATCH /api/v1/members/{user}":
		return map[string]string{"role": slipway.RoleDeveloper}
	case "PATCH /api/v1/roles/{role}":
		return service.RoleInput{Name: "renamed-by-b", Permissions: slipway.Permissions{}}
	case "PATCH /api/v1/applications/{app}":
		return service.ApplicationInput{Name: "renamed-by-b"}
	case "POST /api/v1/applications/{app}/environments":
		return service.EnvironmentInput{Name: "planted-by-b"}
	case "POST /api/v1/environments/{env}/services":
		image := "x"
		return service.ServiceInput{Name: "planted-by-b", Type: slipway.ServiceDocker, Image: &image}
	case "PATCH /api/v1/services/{svc}":
		image := "y"
		return service.ServiceInput{Image: &image}
	case "PUT /api/v1/services/{svc}/variables/{key}":
		return service.VariableInput{Value: "planted-by-b"}
	}
	if method == "GET" || method == "DELETE" {
		return nil
	}
	return map[string]any{}
}

// checkList reads a route without path parameters as B: it must not show
// any of A's data. Only reads are checked; creating routes act in B's own
// organisation by construction.
func checkList(t *testing.T, b apiClient, a orgA, method, pattern string) {
	t.Helper()
	if method != "GET" {
		return
	}
	r := b.do(method, pattern, nil)
	if installationRoute(pattern) {
		if r.status != 403 {
			t.Errorf("GET %s as organisation B's Admin: status %d, want 403: %s", pattern, r.status, r.body)
		}
		assertNoLeak(t, a, "GET "+pattern, pattern, r.body)
		return
	}
	if r.status != 200 {
		t.Errorf("GET %s as organisation B: status %d, want 200: %s", pattern, r.status, r.body)
		return
	}
	assertNoLeak(t, a, "GET "+pattern, pattern, r.body)
}

// assertNoLeak fails when body carries any of A's markers other than those
// the request itself named (in its path, or in sent).
func assertNoLeak(t *testing.T, a orgA, route, sent string, body []byte) {
	t.Helper()
	requested, _ := url.PathUnescape(sent)
	for marker, what := range a.markers {
		if marker == "" || strings.Contains(requested, marker) {
			continue
		}
		if strings.Contains(string(body), marker) {
			t.Errorf("%s as organisation B leaks %s (%q): %s", route, what, marker, body)
		}
	}
}

// installationRoute reports a route for installation administrators,
// above every organisation.
func installationRoute(pattern string) bool {
	return strings.HasPrefix(pattern, "/api/v1/installation")
}

func containsMember(ms []slipway.Membership, userID, roleID string) bool {
	for _, m := range ms {
		if m.UserID == userID && (roleID == "" || m.RoleID == roleID) {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
