package httpapi

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"testing"
)

type openAPIDoc struct {
	OpenAPI    string                                       `json:"openapi"`
	Paths      map[string]map[string]openAPIOperation       `json:"paths"`
	Components struct{ Schemas map[string]json.RawMessage } `json:"components"`
}

type openAPIOperation struct {
	OperationID string `json:"operationId"`
	Summary     string `json:"summary"`
	Parameters  []struct {
		Name string `json:"name"`
		In   string `json:"in"`
	} `json:"parameters"`
	Responses map[string]json.RawMessage `json:"responses"`
}

func fetchOpenAPI(t *testing.T, ta testAPI) (openAPIDoc, []byte) {
	t.Helper()
	a := ta.send(t, "GET", "/api/v1/openapi.json", "", nil)
	if a.status != 200 {
		t.Fatalf("GET /api/v1/openapi.json: status %d: %s", a.status, a.body)
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("openapi.json Content-Type %q, want application/json", ct)
	}
	if !json.Valid(a.body) {
		t.Fatalf("openapi.json is not valid JSON: %.200s", a.body)
	}
	var doc openAPIDoc
	dec := json.NewDecoder(strings.NewReader(string(a.body)))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("decode openapi.json: %v", err)
	}
	return doc, a.body
}

// TestOpenAPIDocumentIsWellFormed checks the document itself: OpenAPI 3,
// unique operationIds, declared path parameters, a success and an error
// response on every operation, and no dangling schema reference.
func TestOpenAPIDocumentIsWellFormed(t *testing.T) {
	ta := newTestAPI(t)
	doc, raw := fetchOpenAPI(t, ta)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi version %q, want 3.x", doc.OpenAPI)
	}
	seen := map[string]string{}
	for path, item := range doc.Paths {
		want := pathParamsOf(path)
		for method, op := range item {
			where := strings.ToUpper(method) + " " + path
			if op.OperationID == "" {
				t.Errorf("%s has no operationId", where)
			} else if other, dup := seen[op.OperationID]; dup {
				t.Errorf("operationId %q is used by %s and %s", op.OperationID, other, where)
			}
			seen[op.OperationID] = where
			if op.Summary == "" {
				t.Errorf("%s has no summary", where)
			}
			var got []string
			for _, p := range op.Parameters {
				if p.In == "path" {
					got = append(got, p.Name)
				}
			}
			sort.Strings(got)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("%s declares path parameters %v, its path has %v", where, got, want)
			}
			if _, ok := op.Responses["default"]; !ok {
				t.Errorf("%s has no default (problem) response", where)
			}
			if len(op.Responses) < 2 {
				t.Errorf("%s has no success response: %v", where, op.Responses)
			}
		}
	}
	for _, m := range regexp.MustCompile(`"\$ref":"#/components/schemas/([^"]+)"`).FindAllSubmatch(raw, -1) {
		if _, ok := doc.Components.Schemas[string(m[1])]; !ok {
			t.Errorf("$ref to missing schema %q", m[1])
		}
	}
	if len(seen) < 40 {
		t.Errorf("only %d operations documented", len(seen))
	}
}

// TestOpenAPIMatchesRoutes checks both directions: every route of the
// table is in the document, and every operation of the document is served
// (it never falls through to the catch-all "no API route" 404, nor to 405).
func TestOpenAPIMatchesRoutes(t *testing.T) {
	ta := newTestAPI(t)
	doc, _ := fetchOpenAPI(t, ta)

	for _, rt := range ta.api.routes {
		if _, ok := doc.Paths[rt.pattern][strings.ToLower(rt.method)]; !ok {
			t.Errorf("route %s %s is served but missing from the OpenAPI document", rt.method, rt.pattern)
		}
	}

	served := 0
	for path, item := range doc.Paths {
		for method := range item {
			method = strings.ToUpper(method)
			concrete := regexp.MustCompile(`\{[a-z]+\}`).ReplaceAllString(path, "doesnotexist")
			var body []byte
			if method != "GET" && method != "DELETE" {
				body = []byte("{}")
			}
			a := ta.send(t, method, concrete, ta.token, body)
			if a.status == 405 {
				t.Errorf("%s %s is documented but answers 405 Method Not Allowed", method, path)
				continue
			}
			if a.status == 404 && strings.HasPrefix(a.problem(t).Detail, "no API route") {
				t.Errorf("%s %s is documented but not served: %s", method, path, a.body)
				continue
			}
			served++
		}
	}
	if served == 0 {
		t.Fatal("no documented operation was served")
	}

	// The check above is only meaningful if an undocumented route does hit
	// the catch-all.
	a := ta.send(t, "GET", "/api/v1/no-such-thing", ta.token, nil)
	if p := a.problem(t); a.status != 404 || !strings.HasPrefix(p.Detail, "no API route") || p.Code != "not_found" {
		t.Errorf("unknown API path: status %d, problem %+v; want the catch-all 404", a.status, p)
	}
}

func pathParamsOf(path string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`\{([a-z]+)\}`).FindAllStringSubmatch(path, -1) {
		out = append(out, m[1])
	}
	sort.Strings(out)
	return out
}
