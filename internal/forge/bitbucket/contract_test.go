package bitbucket

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/forgetest/apispec"
)

// specOps are the operations of Bitbucket's published description that
// the client calls. testdata/openapi.json is trimmed to exactly these
// (TestAPIDescription), every fake request is validated against it, and
// TestMain fails when one of them is never exercised.
var specOps = []apispec.Op{
	{Method: "GET", Path: "/user"},
	{Method: "GET", Path: "/user/workspaces"},
	{Method: "GET", Path: "/repositories/{workspace}"},
	{Method: "GET", Path: "/repositories/{workspace}/{repo_slug}"},
	{Method: "GET", Path: "/repositories/{workspace}/{repo_slug}/refs/branches"},
	{Method: "GET", Path: "/repositories/{workspace}/{repo_slug}/refs/branches/{name}"},
	{Method: "GET", Path: "/repositories/{workspace}/{repo_slug}/refs/tags"},
	{Method: "GET", Path: "/repositories/{workspace}/{repo_slug}/refs/tags/{name}"},
	{Method: "GET", Path: "/repositories/{workspace}/{repo_slug}/commit/{commit}"},
	{Method: "GET", Path: "/repositories/{workspace}/{repo_slug}/diffstat/{spec}"},
	{Method: "POST", Path: "/repositories/{workspace}/{repo_slug}/commit/{commit}/statuses/build"},
	{Method: "POST", Path: "/repositories/{workspace}/{repo_slug}/hooks"},
	{Method: "DELETE", Path: "/repositories/{workspace}/{repo_slug}/hooks/{uid}"},
}

const specFile = "testdata/openapi.json"

// apiDoc is the trimmed description every test's transport validates
// against; loaded once, shared so TestMain can see what was exercised.
// apiDoc is the trimmed description every test's transport validates
// against; shared so TestMain can see what was exercised.
var apiDoc = apispec.MustLoad(specFile)

func TestMain(m *testing.M) { apispec.Main(m, apiDoc) }

func TestAPIDescription(t *testing.T) {
	apispec.Refresh(t, specFile, "bitbucket/swagger.v3.json", apispec.Source{
		From:    "Atlassian's OpenAPI 3 description of Bitbucket Cloud (dac-static.atlassian.com/cloud/bitbucket/swagger.v3.json, x-revision b62ea302637b), via github.com/coderabbitai/bitbucket src/cloud/openapi/swagger.v3.json",
		License: "none stated; Atlassian customer agreement (termsOfService)",
	}, specOps)
}

// TestAPITokenScopesMatchDocument: the granular scopes the check demands
// are exactly those the description names for the operations called.
func TestAPITokenScopesMatchDocument(t *testing.T) {
	var want []string
	for _, op := range specOps {
		o := apiDoc.Operation(op)
		if o == nil {
			t.Fatalf("%s missing from %s", op, specFile)
		}
		raw, _ := o.Extensions["x-atlassian-oauth2-scopes"].([]any)
		for _, entry := range raw {
			m, _ := entry.(map[string]any)
			scopes, _ := m["scopes"].([]any)
			for _, s := range scopes {
				if s, ok := s.(string); ok && !slices.Contains(want, s) {
					want = append(want, s)
				}
			}
		}
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(apiTokenScopes))
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("apiTokenScopes = %v, the description names %v", got, want)
	}
}

// TestRequestsOffTheAPIHostAreRefused: the description's only server is
// https://api.bitbucket.org/2.0, so a request to the web host, to plain
// http, or to a look-alike never reaches the fake.
func TestRequestsOffTheAPIHostAreRefused(t *testing.T) {
	f := newFake(t)
	for _, target := range []string{
		"https://bitbucket.org/2.0/user",
		"http://api.bitbucket.org/2.0/user",
		"https://api.bitbucket.org.example.test/2.0/user",
		"https://api.bitbucket.org/user",
		"https://api.bitbucket.org/2.0/repositories?role=member", // removed: CHANGE-2770
		"https://api.bitbucket.org/2.0/workspaces",               // deprecated
	} {
		rec := &apispec.Recorder{TB: t}
		cl := apiDoc.NewTransport(rec, f.srv.URL).Client()
		resp, err := cl.Get(target)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 599 || len(rec.Errors) == 0 {
			t.Errorf("%s: status %d, errors %q; want it refused", target, resp.StatusCode, rec.Errors)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) != 0 {
		t.Errorf("the fake saw %d refused requests", len(f.requests))
	}
}

// TestBaseURLsThatAreNotBitbucketCloud: credentials go only to Bitbucket
// Cloud's API host, whatever base URL an integration was saved with.
func TestBaseURLsThatAreNotBitbucketCloud(t *testing.T) {
	for _, ok := range []string{"", "https://bitbucket.org", "https://bitbucket.org/", "https://api.bitbucket.org/2.0", "https://BitBucket.org"} {
		ep, err := endpointsFor(ok)
		if err != nil || ep.API != "https://api.bitbucket.org/2.0" || ep.Web != "https://bitbucket.org" {
			t.Errorf("endpointsFor(%q) = %+v, %v", ok, ep, err)
		}
	}
	for _, bad := range []string{"http://bitbucket.org", "https://bitbucket.org.example.test", "https://user@bitbucket.org", "https://bitbucket.org/acme", "https://127.0.0.1:8080", "https://bitbucket.org/?x=1"} {
		if _, err := endpointsFor(bad); slipway.ErrorCodeOf(err) != slipway.ECodeInvalid {
			t.Errorf("endpointsFor(%q) = %v, want invalid", bad, err)
		}
		c := &forge.Conn{Integration: slipway.Integration{BaseURL: bad, AuthMethod: slipway.AuthOAuth}, Secret: forge.Secret{Token: testToken},
			HTTP: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				t.Errorf("base %q: a request was sent to %s", bad, r.URL)
				return nil, errors.New("no")
			})}}
		if _, err := New(nil).Check(context.Background(), c); slipway.ErrorCodeOf(err) != slipway.ECodeInvalid {
			t.Errorf("Check with base %q = %v, want invalid", bad, err)
		}
	}
}

// TestNextLinksStayUnderTheAPIRoot: a page whose "next" points elsewhere
// is not followed with the credentials.
func TestNextLinksStayUnderTheAPIRoot(t *testing.T) {
	for _, link := range []string{"https://bitbucket.org/2.0/repositories/acme?page=2", "https://evil.example.test/2.0/x", "https://api.bitbucket.org/2.0x/y", "https://u@api.bitbucket.org/2.0/y"} {
		if underRoot(link, APIRoot) {
			t.Errorf("underRoot(%q) = true", link)
		}
	}
	if !underRoot("https://api.bitbucket.org/2.0/repositories/acme?page=2", APIRoot) {
		t.Error("a next link on the API root was refused")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestCheckGranularScopes: an API token is checked against the granular
// scopes, and told to add those, never the OAuth consumer names.
func TestCheckGranularScopes(t *testing.T) {
	f := newFake(t)
	f.scopes = "read:user:bitbucket, read:workspace:bitbucket, read:repository:bitbucket, read:webhook:bitbucket"
	_, err := New(nil).Check(context.Background(), conn(f, slipway.AuthBasicToken))
	e, ok := slipway.AsError(err)
	if !ok || e.Code != slipway.ECodeScopesMissing || e.Details["missing"] != "write:webhook:bitbucket, delete:webhook:bitbucket" {
		t.Fatalf("err = %v, want scopes_missing naming the two webhook scopes", err)
	}
	if !strings.Contains(e.Fix, "API token") || strings.Contains(e.Fix, "OAuth") {
		t.Errorf("fix = %q, want the API token's granular scopes", e.Fix)
	}
	f.scopes = strings.Join(apiTokenScopes, ", ")
	if _, err := New(nil).Check(context.Background(), conn(f, slipway.AuthBasicToken)); err != nil {
		t.Errorf("a token with every granular scope: %v", err)
	}
	// repository:write implies repository for OAuth, but a granular write
	// scope implies no read scope.
	f.scopes = "account, repository:write, webhook"
	if _, err := New(nil).Check(context.Background(), conn(f, slipway.AuthOAuth)); err != nil {
		t.Errorf("OAuth consumer: %v", err)
	}
}

// FuzzEndpointsFor: whatever base URL an integration was saved with, the
// credentials go to Bitbucket Cloud's API root or nowhere.
func FuzzEndpointsFor(f *testing.F) {
	for _, s := range []string{"", "https://bitbucket.org", "https://api.bitbucket.org/2.0", "http://bitbucket.org", "https://bitbucket.org.example.test", "https://u@bitbucket.org", "https://bitbucket.org/%2e%2e", "https://[::1]:443"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, base string) {
		ep, err := endpointsFor(base)
		if err == nil && (ep.API != APIRoot || ep.Web != WebRoot) {
			t.Fatalf("endpointsFor(%q) = %+v", base, ep)
		}
		if err != nil && slipway.ErrorCodeOf(err) != slipway.ECodeInvalid {
			t.Fatalf("endpointsFor(%q) error %v is not invalid", base, err)
		}
	})
}
