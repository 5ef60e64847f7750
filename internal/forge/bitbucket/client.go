package bitbucket

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

// client is a thin typed client for the Bitbucket Cloud 2.0 REST API, bound
// to one connection.
type client struct {
	base string // API root, with /2.0
	rest *restapi.Client
}

func (p *Provider) client(ctx context.Context, c *forge.Conn) (*client, error) {
	token, err := c.AccessToken(ctx)
	if err != nil {
		return nil, fmt.Errorf("bitbucket: access token: %w", err)
	}
	// Only the public base URL counts: Bitbucket Cloud has no internal
	// address, and the API root is fixed (endpointsFor).
	ep, err := endpointsFor(c.Integration.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("bitbucket: %w", err)
	}
	base := ep.API
	rest := &restapi.Client{Provider: "bitbucket", HTTP: c.HTTPClient(), DecodeError: decodeError}
	if c.Integration.AuthMethod == slipway.AuthBasicToken {
		user := c.Secret.Username
		rest.Prepare = func(r *http.Request) { r.SetBasicAuth(user, token) }
	} else {
		rest.Prepare = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
	}
	return &client{base: base, rest: rest}, nil
}

// decodeError reads Bitbucket's {"error": {"message": ...}}.
func decodeError(body []byte, he *restapi.HTTPError) {
	var eb struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &eb) == nil {
		he.Message = eb.Error.Message
	}
}

// do sends one request. path is either a path under the API root
// ("/user") or an absolute "next" URL from a previous page, which must
// stay on the same host. out, when non-nil, receives the decoded body.
func (c *client) do(ctx context.Context, method, path string, query url.Values, in, out any) (http.Header, error) {
	target := c.base + path
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		if !underRoot(path, c.base) {
			return nil, fmt.Errorf("bitbucket: refusing to follow %q off the API host", path)
		}
		target = path
	}
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	return c.rest.Do(ctx, restapi.Request{Method: method, URL: target, Path: path, In: in, Out: out})
}

// underRoot reports whether a "next" link stays under the API root, so a
// page cannot send the credentials anywhere else.
func underRoot(link, root string) bool {
	ul, err1 := url.Parse(link)
	ur, err2 := url.Parse(root)
	return err1 == nil && err2 == nil && ul.Scheme == ur.Scheme && ul.Host == ur.Host && ul.User == nil &&
		strings.HasPrefix(ul.Path, ur.Path+"/")
}

// apiError maps a failed call to a Slipway error, in Bitbucket's words;
// notFound is what a 404 means for this call (nil: a provider error).
func apiError(what string, err error, notFound *slipway.Error) error {
	return restapi.Errors{
		Provider:       "bitbucket",
		Name:           "Bitbucket",
		UnreachableFix: "Check that Slipway can reach the Bitbucket API",
		Unauthorized: func(what string) *slipway.Error {
			return slipway.Errorf(slipway.ECodeCredentialsInvalid, "Bitbucket rejected the credentials (%s): they are invalid, expired or revoked", what).
				WithFix("Create a new token (or reconnect) and update the integration")
		},
		Forbidden: func(what string, he *restapi.HTTPError) *slipway.Error {
			return slipway.Errorf(slipway.ECodeForbidden, "Bitbucket refused %s: %s", what, orDefault(he.Message, "the credentials lack permission")).
				WithFix("Give the account admin access to the repository, and the credential the scopes Slipway needs: " +
					"API token " + strings.Join(apiTokenScopes, ", ") + "; OAuth consumer or access token " + strings.Join(oauthScopes, ", "))
		},
	}.Map(what, err, notFound)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// repoPath is /repositories/{workspace}/{slug} with each part escaped.
func repoPath(repo forge.Repo) (string, error) {
	ws, slug, ok := strings.Cut(repo.FullName, "/")
	if !ok || ws == "" || slug == "" {
		return "", slipway.Errorf(slipway.ECodeInvalid, "Bitbucket repository name %q is not workspace/slug", repo.FullName)
	}
	return "/repositories/" + url.PathEscape(ws) + "/" + url.PathEscape(slug), nil
}

// refPath escapes a branch or tag name as one path segment: the API
// description makes {name} a single parameter, so feature/login travels
// as feature%2Flogin.
func refPath(name string) string { return url.PathEscape(name) }
