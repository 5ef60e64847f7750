package bitbucket

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
)

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// client is a thin typed client for the Bitbucket Cloud 2.0 REST API, bound
// to one connection.
type client struct {
	base string // API root, without /2.0
	http *http.Client
	auth func(*http.Request)
}

func (p *Provider) client(ctx context.Context, c *forge.Conn) (*client, error) {
	token, err := c.AccessToken(ctx)
	if err != nil {
		return nil, fmt.Errorf("bitbucket: access token: %w", err)
	}
	base := strings.TrimRight(c.APIBaseURL(), "/")
	if base == "" {
		base = DefaultAPIURL
	}
	cl := &client{base: base, http: c.HTTPClient()}
	if c.Integration.AuthMethod == slipway.AuthBasicToken {
		user := c.Secret.Username
		cl.auth = func(r *http.Request) { r.SetBasicAuth(user, token) }
	} else {
		cl.auth = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
	}
	return cl, nil
}

// httpError is a non-2xx answer, kept so callers can map it by status.
type httpError struct {
	Status  int
	Header  http.Header
	Message string // Bitbucket's error.message, when the body carries one
}

func (e *httpError) Error() string { return fmt.Sprintf("status %d: %s", e.Status, e.Message) }

// do sends one request. path is either a path under the API root
// ("/2.0/user") or an absolute "next" URL from a previous page, which must
// stay on the same host. out, when non-nil, receives the decoded body.
func (c *client) do(ctx context.Context, method, path string, query url.Values, in, out any) (http.Header, error) {
	target := c.base + path
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		if !sameOrigin(path, c.base) {
			return nil, fmt.Errorf("bitbucket: refusing to follow %q off the API host", path)
		}
		target = path
	}
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("bitbucket: encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, fmt.Errorf("bitbucket: build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.auth(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		he := &httpError{Status: resp.StatusCode, Header: resp.Header}
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		var eb struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(raw, &eb) == nil {
			he.Message = eb.Error.Message
		}
		return resp.Header, he
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.Header, fmt.Errorf("bitbucket: decode %s %s: %w", method, path, err)
		}
	}
	return resp.Header, nil
}

func sameOrigin(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && ua.Scheme == ub.Scheme && ua.Host == ub.Host
}

// apiError maps a failed call to a Slipway error; notFound is what a 404
// means for this call (nil: a provider error).
func apiError(what string, err error, notFound *slipway.Error) error {
	var he *httpError
	var e *slipway.Error
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("bitbucket: %s: %w", what, err)
	case !errors.As(err, &he):
		var ue *url.Error
		if !errors.As(err, &ue) {
			return fmt.Errorf("bitbucket: %s: %w", what, err)
		}
		e = slipway.Errorf(slipway.ECodeProviderUnreachable, "Bitbucket did not answer (%s)", what).
			WithFix("Check that Slipway can reach the Bitbucket API")
	case he.Status == http.StatusUnauthorized:
		e = slipway.Errorf(slipway.ECodeCredentialsInvalid, "Bitbucket rejected the credentials (%s): they are invalid, expired or revoked", what).
			WithFix("Create a new token (or reconnect) and update the integration")
	case he.Status == http.StatusTooManyRequests || (he.Status == http.StatusForbidden && rateLimited(he.Header)):
		e = slipway.Errorf(slipway.ECodeRateLimited, "Bitbucket rate limit reached (%s)", what).
			WithFix("Wait for the limit to reset; Slipway retries on its own")
		e.Details = rateLimitDetails(he.Header)
	case he.Status == http.StatusForbidden:
		e = slipway.Errorf(slipway.ECodeForbidden, "Bitbucket refused %s: %s", what, orDefault(he.Message, "the credentials lack permission")).
			WithFix("Give the account admin access to the repository, and the token the repository, account and webhook scopes")
	case he.Status == http.StatusNotFound && notFound != nil:
		e = notFound
	default:
		e = slipway.Errorf(slipway.ECodeProviderError, "Bitbucket answered %d to %s", he.Status, what)
	}
	return fmt.Errorf("bitbucket: %s: %w", what, e)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func rateLimited(h http.Header) bool {
	return h.Get("Retry-After") != "" || h.Get("X-RateLimit-Remaining") == "0"
}

func rateLimitDetails(h http.Header) map[string]string {
	d := map[string]string{}
	for k, name := range map[string]string{"retry_after": "Retry-After", "limit": "X-RateLimit-Limit", "resource": "X-RateLimit-Resource", "reset": "X-RateLimit-Reset"} {
		if v := h.Get(name); v != "" {
			d[k] = v
		}
	}
	return d
}

func isStatus(err error, status int) bool {
	var he *httpError
	return errors.As(err, &he) && he.Status == status
}

// repoPath is /2.0/repositories/{workspace}/{slug} with each part escaped.
func repoPath(repo forge.Repo) (string, error) {
	ws, slug, ok := strings.Cut(repo.FullName, "/")
	if !ok || ws == "" || slug == "" {
		return "", slipway.Errorf(slipway.ECodeInvalid, "Bitbucket repository name %q is not workspace/slug", repo.FullName)
	}
	return "/2.0/repositories/" + url.PathEscape(ws) + "/" + url.PathEscape(slug), nil
}

// refPath escapes each segment of a branch or tag name but keeps its
// slashes, which is how Bitbucket expects names like feature/login.
func refPath(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}
