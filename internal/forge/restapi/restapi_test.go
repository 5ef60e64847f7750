package restapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge/restapi"
)

func testClient(srv *httptest.Server) *restapi.Client {
	return &restapi.Client{
		Provider: "example",
		HTTP:     srv.Client(),
		Prepare:  func(r *http.Request) { r.Header.Set("Authorization", "Bearer t0ken") },
		DecodeError: func(body []byte, he *restapi.HTTPError) {
			var eb struct{ Message, Type string }
			if json.Unmarshal(body, &eb) == nil {
				he.Message, he.TypeKey = eb.Message, eb.Type
			}
		},
	}
}

func TestDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0ken" || r.Header.Get("Accept") != "application/json" {
			http.Error(w, `{"Message":"who are you"}`, http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/echo":
			if r.Header.Get("Content-Type") != "application/json" {
				http.Error(w, "no content type", http.StatusBadRequest)
				return
			}
			var in map[string]string
			_ = json.NewDecoder(r.Body).Decode(&in)
			w.Header().Set("X-Next", "page-2")
			_ = json.NewEncoder(w).Encode(map[string]string{"got": in["name"]})
		case "/gone":
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"Message":"no such thing","Type":"NotFound"}`))
		case "/html":
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html>sign in</html>"))
		default:
			_, _ = w.Write([]byte("not json"))
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	cl := testClient(srv)

	var out struct{ Got string }
	h, err := cl.Do(ctx, restapi.Request{Method: http.MethodPost, URL: srv.URL + "/echo", Path: "echo", In: map[string]string{"name": "shop"}, Out: &out})
	if err != nil || out.Got != "shop" || h.Get("X-Next") != "page-2" {
		t.Fatalf("echo: out %+v header %v err %v", out, h, err)
	}

	_, err = cl.Do(ctx, restapi.Request{Method: http.MethodGet, URL: srv.URL + "/gone", Path: "gone"})
	var he *restapi.HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusNotFound || he.Message != "no such thing" || he.TypeKey != "NotFound" {
		t.Fatalf("gone: %v (%+v)", err, he)
	}
	if !restapi.IsStatus(err, http.StatusForbidden, http.StatusNotFound) || restapi.IsStatus(err, http.StatusForbidden) {
		t.Errorf("IsStatus does not tell 404 from 403")
	}

	_, err = cl.Do(ctx, restapi.Request{Method: http.MethodGet, URL: srv.URL + "/bad", Path: "bad", Out: &out})
	if err == nil || !strings.Contains(err.Error(), "example: decode GET bad") {
		t.Errorf("undecodable answer: %v", err)
	}

	cl.Check = func(resp *http.Response) *restapi.HTTPError {
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			return &restapi.HTTPError{Status: http.StatusUnauthorized, Header: resp.Header}
		}
		return nil
	}
	if _, err := cl.Do(ctx, restapi.Request{Method: http.MethodGet, URL: srv.URL + "/html", Path: "html"}); !restapi.IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("Check did not turn the sign-in page into a 401: %v", err)
	}
}

func TestErrorsMap(t *testing.T) {
	m := restapi.Errors{
		Provider:       "example",
		Name:           "Example",
		UnreachableFix: "Check the network",
		Unauthorized: func(what string) *slipway.Error {
			return slipway.Errorf(slipway.ECodeCredentialsInvalid, "Example rejected the token (%s)", what)
		},
		Forbidden: func(what string, he *restapi.HTTPError) *slipway.Error {
			return slipway.Errorf(slipway.ECodeForbidden, "Example refused %s: %s", what, he.Message)
		},
		RateLimitHeaders: map[string]string{"delay": "X-RateLimit-Delay"},
	}
	// What http.Client returns when nothing answers.
	var unreachable error = &url.Error{Op: "Get", URL: "http://127.0.0.1:1/", Err: errors.New("connection refused")}
	notFound := slipway.Errorf(slipway.ECodeRepoNotVisible, "no such repository")
	limited := http.Header{"Retry-After": {"30"}, "X-Ratelimit-Delay": {"2"}, "X-Ratelimit-Limit": {"60"}}
	cases := []struct {
		name     string
		err      error
		notFound *slipway.Error
		code     slipway.ErrorCode
		message  string
		details  map[string]string
	}{
		{"401", &restapi.HTTPError{Status: 401}, nil, slipway.ECodeCredentialsInvalid, "Example rejected the token (list repos)", nil},
		{"403 rate limited", &restapi.HTTPError{Status: 403, Header: limited}, nil, slipway.ECodeRateLimited, "Example rate limit reached (list repos)",
			map[string]string{"retry_after": "30", "delay": "2", "limit": "60"}},
		{"429", &restapi.HTTPError{Status: 429, Header: http.Header{}}, nil, slipway.ECodeRateLimited, "Example rate limit reached (list repos)", map[string]string{}},
		{"403", &restapi.HTTPError{Status: 403, Header: http.Header{}, Message: "admin only"}, nil, slipway.ECodeForbidden, "Example refused list repos: admin only", nil},
		{"404 with meaning", &restapi.HTTPError{Status: 404}, notFound, slipway.ECodeRepoNotVisible, "no such repository", nil},
		{"404 without", &restapi.HTTPError{Status: 404}, nil, slipway.ECodeProviderError, "Example answered 404 to list repos", nil},
		{"unreachable", unreachable, nil, slipway.ECodeProviderUnreachable, "Example did not answer (list repos)", nil},
	}
	for _, c := range cases {
		err := m.Map("list repos", c.err, c.notFound)
		e, ok := slipway.AsError(err)
		if !ok || e.Code != c.code || e.Message != c.message || !strings.HasPrefix(err.Error(), "example: list repos: ") {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if c.details != nil && !maps.Equal(e.Details, c.details) {
			t.Errorf("%s: details %v, want %v", c.name, e.Details, c.details)
		}
	}
	if err := m.Map("list repos", context.Canceled, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancellation is not kept: %v", err)
	}
	if !restapi.RateLimited(&restapi.HTTPError{Status: 403, Header: limited}) || restapi.RateLimited(&restapi.HTTPError{Status: 403, Header: http.Header{}}) {
		t.Errorf("RateLimited does not read the headers")
	}
}
