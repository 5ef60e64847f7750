package azuredevops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/restapi"
)

// apiVersions are the REST api-versions Slipway speaks, newest first:
// Azure DevOps Services takes 7.1, Server 2022 at most 7.0, Server 2020 at
// most 6.0. Every call Slipway makes has the same shape in all three.
var apiVersions = []string{"7.1", "7.0", "6.0"}

// versionOutOfRange is the error type Azure DevOps answers (400) for an
// api-version newer than the server knows.
const versionOutOfRange = "VssVersionOutOfRangeException"

// client is a thin REST client bound to one organisation (Services) or
// collection (Server) URL.
type client struct {
	org  string
	rest *restapi.Client
	// version is the api-version calls carry; pinned when the integration
	// configures it (Settings["api_version"]), else negotiated: the newest
	// the server accepts, remembered per organisation URL in known.
	version string
	pinned  bool
	known   *sync.Map
}

// apiVersionFor picks the api-version to start with: the integration's
// configured one, the one negotiated earlier with this organisation, or
// the newest.
func (p *Provider) apiVersionFor(c *forge.Conn, org string) (version string, pinned bool, err error) {
	if v := c.Integration.Settings["api_version"]; v != "" {
		if !slices.Contains(apiVersions, v) {
			return "", false, slipway.Errorf(slipway.ECodeInvalid, "Azure DevOps api-version %q is not one Slipway speaks (%s)", v, strings.Join(apiVersions, ", ")).
				WithFix("Use 7.1 for Azure DevOps Services, 7.0 for Server 2022, 6.0 for Server 2020, or leave it empty to negotiate")
		}
		return v, true, nil
	}
	if v, ok := p.versions.Load(org); ok {
		return v.(string), false, nil
	}
	return apiVersions[0], false, nil
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
	version, pinned, err := p.apiVersionFor(c, org)
	if err != nil {
		return nil, fmt.Errorf("azuredevops: %w", err)
	}
	return &client{org: org, rest: rest, version: version, pinned: pinned, known: &p.versions}, nil
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

// do calls {org}/{path}?api-version={version}&query and decodes the
// answer into out. It returns the response headers (continuation tokens
// live there).
func (c *client) do(ctx context.Context, method, path string, query url.Values, in, out any) (http.Header, error) {
	return c.call(ctx, method, path, query, in, out, "")
}

// doPreview is do for a resource Azure DevOps serves only as a preview
// (api-version "7.1-preview").
func (c *client) doPreview(ctx context.Context, method, path string, query url.Values, in, out any) (http.Header, error) {
	return c.call(ctx, method, path, query, in, out, "-preview")
}

// call sends one request. A server that does not know the api-version
// (Azure DevOps Server answers 400 VssVersionOutOfRangeException) is asked
// again with the next older one, which is then remembered for the
// organisation; a configured version is never changed.
func (c *client) call(ctx context.Context, method, path string, query url.Values, in, out any, suffix string) (http.Header, error) {
	for {
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		q.Set("api-version", c.version+suffix)
		h, err := c.rest.Do(ctx, restapi.Request{Method: method, URL: c.org + "/" + path + "?" + q.Encode(), Path: path, In: in, Out: out})
		var he *restapi.HTTPError
		if c.pinned || !errors.As(err, &he) || he.Status != http.StatusBadRequest || he.TypeKey != versionOutOfRange {
			return h, err
		}
		i := slices.Index(apiVersions, c.version)
		if i < 0 || i+1 >= len(apiVersions) {
			return h, err
		}
		c.version = apiVersions[i+1]
		c.known.Store(c.org, c.version)
	}
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
