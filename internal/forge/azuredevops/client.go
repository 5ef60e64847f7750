package azuredevops

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/restapi"
)

const apiVersion = "7.1"

// client is a thin REST client bound to one organisation (Services) or
// collection (Server) URL.
type client struct {
	org  string
	rest *restapi.Client
}

func (p *Provider) client(ctx context.Context, c *forge.Conn) (*client, error) {
	token, err := c.AccessToken(ctx)
	if err != nil {
		return nil, fmt.Errorf("azuredevops: access token: %w", err)
	}
	org := strings.TrimRight(c.APIBaseURL(), "/")
	if org == "" {
		return nil, fmt.Errorf("azuredevops: %w", slipway.Errorf(slipway.ECodeInvalid, "Azure DevOps needs the organisation URL").
			WithFix("Set the base URL to https://dev.azure.com/{organisation} or https://{server}/{collection}"))
	}
	rest := &restapi.Client{
		Provider: "azuredevops",
		HTTP:     c.HTTPClient(),
		Prepare: func(r *http.Request) {
			// A PAT is the password of basic auth with an empty user.
			r.SetBasicAuth("", token)
			// Without this header a rejected credential gets a 203 and an
			// HTML sign-in page instead of a 401.
			r.Header.Set("X-TFS-FedAuthRedirect", "Suppress")
		},
		Check:       signInPage,
		DecodeError: decodeError,
	}
	return &client{org: org, rest: rest}, nil
}

// signInPage turns a sign-in page answered as a success into the 401 it
// means.
func signInPage(resp *http.Response) *restapi.HTTPError {
	if resp.StatusCode == http.StatusNonAuthoritativeInfo || (resp.StatusCode < 300 && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html")) {
		return &restapi.HTTPError{Status: http.StatusUnauthorized, Header: resp.Header, Message: "sign-in page instead of an API answer"}
	}
	return nil
}

// decodeError reads Azure DevOps' {"message": ..., "typeKey": ...}.
func decodeError(body []byte, he *restapi.HTTPError) {
	var eb struct {
		Message string `json:"message"`
		TypeKey string `json:"typeKey"`
	}
	if json.Unmarshal(body, &eb) == nil {
		he.Message, he.TypeKey = eb.Message, eb.TypeKey
	}
}

// do calls {org}/{path}?api-version=7.1&query and decodes the answer into
// out. It returns the response headers (continuation tokens live there).
func (c *client) do(ctx context.Context, method, path string, query url.Values, in, out any) (http.Header, error) {
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	if q.Get("api-version") == "" {
		q.Set("api-version", apiVersion)
	}
	return c.rest.Do(ctx, restapi.Request{Method: method, URL: c.org + "/" + path + "?" + q.Encode(), Path: path, In: in, Out: out})
}

// apiError maps a failed call to a Slipway error, in Azure DevOps' words;
// notFound is what a 404 means for this call.
func apiError(what string, err error, notFound *slipway.Error) error {
	return restapi.Errors{
		Provider:       "azuredevops",
		Name:           "Azure DevOps",
		UnreachableFix: "Check the organisation URL and that Slipway can reach it",
		Unauthorized: func(what string) *slipway.Error {
			return slipway.Errorf(slipway.ECodeCredentialsInvalid, "Azure DevOps rejected the personal access token (%s): it is invalid, expired or revoked", what).
				WithFix("Create a new personal access token for this organisation and update the integration")
		},
		Forbidden: func(what string, _ *restapi.HTTPError) *slipway.Error {
			return slipway.Errorf(slipway.ECodeForbidden, "Azure DevOps refused %s: the account or token lacks permission", what).
				WithFix("Check the token's scopes and the account's project permissions")
		},
		RateLimitHeaders: map[string]string{"delay": "X-RateLimit-Delay"},
	}.Map(what, err, notFound)
}
