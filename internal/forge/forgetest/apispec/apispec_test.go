package apispec

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A small description with what the checks must catch.
const testDoc = `{
 "openapi": "3.0.3",
 "info": {"title": "Test API", "version": "1"},
 "servers": [{"url": "https://api.example.test/v1"}],
 "paths": {
  "/things/{id}": {
   "get": {
    "parameters": [
     {"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}},
     {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 100}}
    ],
    "responses": {"200": {"description": "a thing", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/thing"}}}}}
   }
  },
  "/things": {
   "post": {
    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/thing"}}}},
    "responses": {"201": {"description": "created"}}
   }
  },
  "/old": {"get": {"deprecated": true, "responses": {"200": {"description": "gone soon"}}}}
 },
 "components": {"schemas": {"thing": {"type": "object", "required": ["name"],
  "properties": {"name": {"type": "string"}, "size": {"type": "integer"}}}}}
}`

func TestTransportRefusesWhatTheDescriptionDoesNot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doc.json")
	if err := os.WriteFile(path, []byte(testDoc), 0o644); err != nil {
		t.Fatal(err)
	}
	doc := Load(t, path,
		Allowed{Method: "GET", Path: `/v1/prose-only`, Page: "https://docs.example.test/prose"},
		Deviation{Op: "GET /things/{id}", Field: "/size", Why: "the real API sends a string"})
	answer := `{"name": "a", "size": 3}`
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "api.example.test" {
			t.Errorf("the fake saw host %q", r.Host)
		}
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPost {
			w.WriteHeader(201)
		}
		_, _ = io.WriteString(w, answer)
	}))
	defer fake.Close()

	send := func(method, url, body string) (int, []string) {
		rec := &Recorder{TB: t}
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, url, rd)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := doc.NewTransport(rec, fake.URL).Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, rec.Errors
	}
	for _, c := range []struct{ method, url, body string }{
		{"GET", "https://api.example.test/v1/things/7?limit=5", ""},
		{"POST", "https://api.example.test/v1/things", `{"name": "b"}`},
		{"GET", "https://api.example.test/v1/prose-only", ""},
	} {
		if code, errs := send(c.method, c.url, c.body); len(errs) != 0 || code == 599 {
			t.Errorf("%s %s: %d %v, want it through", c.method, c.url, code, errs)
		}
	}
	for name, c := range map[string]struct{ method, url, body string }{
		"unknown path":      {"GET", "https://api.example.test/v1/nothing", ""},
		"wrong method":      {"DELETE", "https://api.example.test/v1/things/7", ""},
		"other host":        {"GET", "https://example.test/v1/things/7", ""},
		"plain http":        {"GET", "http://api.example.test/v1/things/7", ""},
		"path type":         {"GET", "https://api.example.test/v1/things/seven", ""},
		"query over max":    {"GET", "https://api.example.test/v1/things/7?limit=500", ""},
		"body lacks a name": {"POST", "https://api.example.test/v1/things", `{"size": 1}`},
		"deprecated":        {"GET", "https://api.example.test/v1/old", ""},
	} {
		if code, errs := send(c.method, c.url, c.body); len(errs) == 0 || code != 599 {
			t.Errorf("%s: %d %v, want it refused before the fake", name, code, errs)
		}
	}

	// The fake's answer is checked too: a listed deviation is forgiven,
	// anything else is not.
	answer = `{"name": "a", "size": "3"}`
	if _, errs := send("GET", "https://api.example.test/v1/things/7", ""); len(errs) != 0 {
		t.Errorf("a listed deviation was reported: %v", errs)
	}
	answer = `{"size": 3}`
	if _, errs := send("GET", "https://api.example.test/v1/things/7", ""); len(errs) != 1 || !strings.Contains(errs[0], "does not match") {
		t.Errorf("an answer without its required name: %v", errs)
	}
	answer = `{"name": 5, "size": "3"}`
	if _, errs := send("GET", "https://api.example.test/v1/things/7", ""); len(errs) != 1 {
		t.Errorf("an unlisted bad field next to a listed one: %v", errs)
	}
	// A refused request exercises nothing.
	if un := doc.Unused(); len(un) != 1 || un[0] != "GET /old" {
		t.Errorf("unused = %v, want only the deprecated GET /old", un)
	}
}

func TestTrimKeepsOnlyWhatOperationsReference(t *testing.T) {
	out, err := Trim([]byte("\xEF\xBB\xBF"+testDoc), Source{File: "doc.json"}, []Op{{Method: "get", Path: "/things/{id}"}})
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if !strings.Contains(s, `"thing"`) || strings.Contains(s, `"/old"`) || strings.Contains(s, `"/things":`) || !strings.Contains(s, `"sha256"`) {
		t.Errorf("trimmed document:\n%s", s)
	}
	if _, err := Trim([]byte(testDoc), Source{File: "doc.json"}, []Op{{Method: "put", Path: "/things/{id}"}}); err == nil {
		t.Error("an operation the document lacks was trimmed in")
	}
}
