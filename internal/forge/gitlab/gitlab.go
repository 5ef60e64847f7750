// Package gitlab connects Slipway to GitLab, both gitlab.com and
// self-managed instances: it checks a connection's token and scopes, lists
// projects and refs, mints clone credentials, installs project webhooks,
// verifies and normalizes their deliveries, lists changed files and reports
// commit statuses. It speaks GitLab's REST API v4 through the official
// client library, pointed at the integration's base URL.
//
// Scopes: Slipway asks for the single scope "api". Listing and cloning would
// need only read_api and read_repository, but creating project webhooks and
// setting commit statuses require "api", which is a superset of both; asking
// for the read scopes as well would add nothing.
package gitlab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	gl "gitlab.com/gitlab-org/api/client-go"
	"golang.org/x/oauth2"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
)

// DefaultBaseURL is used when an integration names no base URL.
const DefaultBaseURL = "https://gitlab.com"

// RequiredScopes are the token scopes Slipway needs (see the package doc).
var requiredScopes = []string{"api"}

// Provider is the GitLab provider. The zero value is not usable; call New.
type Provider struct {
	log *slog.Logger
}

// New returns a GitLab provider that logs through log.
func New(log *slog.Logger) *Provider {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Provider{log: log}
}

// Kind implements forge.Provider.
func (*Provider) Kind() slipway.Provider { return slipway.ProviderGitLab }

// Compile-time checks of the capabilities this provider offers.
var (
	_ forge.Checker        = (*Provider)(nil)
	_ forge.RepoLister     = (*Provider)(nil)
	_ forge.RefLister      = (*Provider)(nil)
	_ forge.Cloner         = (*Provider)(nil)
	_ forge.HookInstaller  = (*Provider)(nil)
	_ forge.HookParser     = (*Provider)(nil)
	_ forge.Comparer       = (*Provider)(nil)
	_ forge.StatusReporter = (*Provider)(nil)
	_ forge.OAuthProvider  = (*Provider)(nil)
)

// OAuthEndpoint implements forge.OAuthProvider.
func (*Provider) OAuthEndpoint(baseURL string) oauth2.Endpoint {
	base := strings.TrimRight(baseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	return oauth2.Endpoint{
		AuthURL:   base + "/oauth/authorize",
		TokenURL:  base + "/oauth/token",
		AuthStyle: oauth2.AuthStyleInParams,
	}
}

// OAuthScopes implements forge.OAuthProvider.
func (*Provider) OAuthScopes() []string { return append([]string(nil), requiredScopes...) }

func baseURL(c *forge.Conn) string {
	if b := strings.TrimRight(c.APIBaseURL(), "/"); b != "" {
		return b
	}
	return DefaultBaseURL
}

// client builds an API client for one call. Retries are off: a job that
// fails is retried by the queue with its own backoff, and a request
// handler must not sit in a retry loop while the user waits.
func (p *Provider) client(ctx context.Context, c *forge.Conn) (*gl.Client, error) {
	token, err := c.AccessToken(ctx)
	if err != nil {
		return nil, fmt.Errorf("gitlab: access token: %w", err)
	}
	opts := []gl.ClientOptionFunc{
		gl.WithBaseURL(baseURL(c)),
		gl.WithHTTPClient(c.HTTPClient()),
		gl.WithoutRetries(),
		gl.WithURLWarningLogger(p.log),
	}
	var cl *gl.Client
	if c.Integration.AuthMethod == slipway.AuthOAuth {
		cl, err = gl.NewAuthSourceClient(gl.OAuthTokenSource{
			TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token}),
		}, opts...)
	} else {
		cl, err = gl.NewClient(token, opts...)
	}
	if err != nil {
		return nil, slipway.Errorf(slipway.ECodeInvalid, "GitLab base URL %q is not usable: %v", baseURL(c), err).
			WithFix("Set the base URL to the instance root, for example https://gitlab.example.com")
	}
	return cl, nil
}

// apiError maps a failed call to a Slipway error. notFound is the error a
// 404 means for this call (repository not visible, ref not found, …); nil
// maps it to a provider error.
func apiError(what string, resp *gl.Response, err error, notFound *slipway.Error) error {
	status := 0
	var header http.Header
	if resp != nil && resp.Response != nil {
		status = resp.StatusCode
		header = resp.Header
	}
	if status == 0 {
		var er *gl.ErrorResponse
		if errors.As(err, &er) && er.Response != nil {
			status, header = er.Response.StatusCode, er.Response.Header
		} else if errors.Is(err, gl.ErrNotFound) {
			status = http.StatusNotFound
		}
	}
	var e *slipway.Error
	switch {
	case status == 0:
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("gitlab: %s: %w", what, err)
		}
		e = slipway.Errorf(slipway.ECodeProviderUnreachable, "GitLab did not answer (%s)", what).
			WithFix("Check the base URL and that Slipway can reach it")
	case status == http.StatusUnauthorized:
		e = slipway.Errorf(slipway.ECodeCredentialsInvalid, "GitLab rejected the token (%s): it is invalid, expired or revoked", what).
			WithFix("Create a new token (or reconnect) and update the integration")
	case status == http.StatusTooManyRequests || (status == http.StatusForbidden && rateLimited(header)):
		e = slipway.Errorf(slipway.ECodeRateLimited, "GitLab rate limit reached (%s)", what).
			WithFix("Wait for the limit to reset; Slipway retries on its own")
		e.Details = rateLimitDetails(header)
	case status == http.StatusForbidden && insufficientScope(err):
		e = slipway.Errorf(slipway.ECodeScopesMissing, "GitLab token is missing scopes for %s: api", what).
			WithFix("Give the token the api scope")
		e.Details = map[string]string{"missing": "api"}
	case status == http.StatusForbidden:
		e = slipway.Errorf(slipway.ECodeForbidden, "GitLab refused %s: the account lacks permission", what).
			WithFix("Give the account at least the Maintainer role on the project")
	case status == http.StatusNotFound && notFound != nil:
		e = notFound
	default:
		e = slipway.Errorf(slipway.ECodeProviderError, "GitLab answered %d to %s", status, what)
	}
	return fmt.Errorf("gitlab: %s: %w", what, e)
}

func insufficientScope(err error) bool {
	var er *gl.ErrorResponse
	return errors.As(err, &er) && strings.Contains(string(er.Body), "insufficient_scope")
}

// rateLimited reports whether headers say the rate limit is exhausted.
// GitLab answers 429 normally, but proxies in front of self-managed
// instances sometimes turn it into a 403 that keeps the headers.
func rateLimited(h http.Header) bool {
	return h.Get("RateLimit-Remaining") == "0" || h.Get("Retry-After") != ""
}

func rateLimitDetails(h http.Header) map[string]string {
	d := map[string]string{}
	for k, name := range map[string]string{"retry_after": "Retry-After", "reset": "RateLimit-Reset", "limit": "RateLimit-Limit"} {
		if v := h.Get(name); v != "" {
			d[k] = v
		}
	}
	return d
}
