package httpapi

import (
	"bytes"
	"strings"
	"testing"

	"slipway.dev/slipway"
)

// TestErrorShapes sends the kinds of bad requests clients make and checks
// each answer is a problem document with the right status and stable code.
func TestErrorShapes(t *testing.T) {
	ta := newTestAPI(t)
	cases := []struct {
		name         string
		method, path string
		token        string
		body         []byte
		status       int
		code         slipway.ErrorCode
		detail       string // a fragment the detail must contain
	}{
		{name: "malformed JSON", method: "POST", path: "/api/v1/applications", token: ta.token,
			body: []byte(`{"name": "shop"`), status: 400, code: slipway.ECodeInvalid, detail: "not valid JSON"},
		{name: "not JSON at all", method: "POST", path: "/api/v1/applications", token: ta.token,
			body: []byte(`name=shop`), status: 400, code: slipway.ECodeInvalid, detail: "not valid JSON"},
		{name: "unknown field", method: "POST", path: "/api/v1/applications", token: ta.token,
			body: []byte(`{"name": "shop", "colour": "blue"}`), status: 400, code: slipway.ECodeInvalid, detail: `"colour"`},
		{name: "wrong field type", method: "POST", path: "/api/v1/applications", token: ta.token,
			body: []byte(`{"name": 5}`), status: 400, code: slipway.ECodeInvalid, detail: "name"},
		{name: "trailing data", method: "POST", path: "/api/v1/applications", token: ta.token,
			body: []byte(`{"name": "shop"} {"name": "again"}`), status: 400, code: slipway.ECodeInvalid, detail: "after the JSON value"},
		{name: "bad name", method: "POST", path: "/api/v1/applications", token: ta.token,
			body: []byte(`{"name": "Bad Name"}`), status: 400, code: slipway.ECodeInvalid, detail: "lower-case"},
		{name: "bad page", method: "GET", path: "/api/v1/applications?limit=-1", token: ta.token,
			status: 400, code: slipway.ECodeInvalid, detail: "limit"},
		{name: "missing bearer token", method: "GET", path: "/api/v1/applications",
			status: 401, code: slipway.ECodeUnauthenticated, detail: "bearer token"},
		{name: "wrong token", method: "GET", path: "/api/v1/applications", token: "slw_" + strings.Repeat("A", 43),
			status: 401, code: slipway.ECodeUnauthenticated, detail: "invalid or expired"},
		{name: "token of another kind", method: "GET", path: "/api/v1/applications", token: "ghp_notaslipwaytoken",
			status: 401, code: slipway.ECodeUnauthenticated, detail: "invalid or expired"},
		{name: "unknown object", method: "GET", path: "/api/v1/applications/app_doesnotexist", token: ta.token,
			status: 404, code: slipway.ECodeNotFound, detail: "app_doesnotexist"},
		{name: "oversize body", method: "POST", path: "/api/v1/applications", token: ta.token,
			body: oversizeBody(), status: 413, code: slipway.ECodeTooLarge, detail: "larger than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := ta.send(t, tc.method, tc.path, tc.token, tc.body)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			p := a.problem(t)
			if p.Code != tc.code {
				t.Errorf("code %q, want %q: %s", p.Code, tc.code, a.body)
			}
			if !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("detail %q does not mention %q", p.Detail, tc.detail)
			}
			if tc.token != "" && tc.token != ta.token && strings.Contains(string(a.body), tc.token) {
				t.Errorf("the answer echoes the presented token")
			}
		})
	}

	// Nothing was half-written by the refused creates.
	a := ta.send(t, "GET", "/api/v1/applications", ta.token, nil)
	if a.status != 200 || !bytes.Contains(a.body, []byte(`"total":0`)) {
		t.Errorf("after refused creates the application list is %d %s, want empty", a.status, a.body)
	}
}

// TestBasicAuthIsNotBearer: credentials in another scheme are refused as
// missing, not tried as a token.
func TestBasicAuthIsNotBearer(t *testing.T) {
	ta := newTestAPI(t)
	a := ta.sendAuth(t, "GET", "/api/v1/me", "Basic "+ta.token, nil)
	if a.status != 401 || a.problem(t).Code != slipway.ECodeUnauthenticated {
		t.Errorf("Basic authorization: status %d %s, want 401 unauthenticated", a.status, a.body)
	}
}

// oversizeBody is a syntactically valid JSON document larger than the
// request cap, so only its size can be the reason for refusing it.
func oversizeBody() []byte {
	return []byte(`{"name": "shop", "description": "` + strings.Repeat("x", maxRequestBody) + `"}`)
}
