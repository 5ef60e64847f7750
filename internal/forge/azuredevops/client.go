package azuredevops

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

const (
	apiVersion   = "7.1"
	maxErrorBody = 64 << 10
)

// client is a thin REST client bound to one organisation (Services) or
// collection (Server) URL.
type client struct {
	org   string
	http  *http.Client
	token string
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
	return &client{org: org, http: c.HTTPClient(), token: token}, nil
}

type httpError struct {
	Status  int
	Header  http.Header
	Message string
	TypeKey string
}

func (e *httpError) Error() string { return fmt.Sprintf("status %d: %s", e.Status, e.Message) }

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
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("azuredevops: encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.org+"/"+path+"?"+q.Encode(), body)
	if err != nil {
		return nil, fmt.Errorf("azuredevops: build request: %w", err)
	}
	// A PAT is the password of basic auth with an empty user.
	req.SetBasicAuth("", c.token)
	req.Header.Set("Accept", "application/json")
	// Without this header a rejected credential gets a 203 and an HTML
	// sign-in page instead of a 401.
	req.Header.Set("X-TFS-FedAuthRedirect", "Suppress")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNonAuthoritativeInfo || (resp.StatusCode < 300 && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html")) {
		return resp.Header, &httpError{Status: http.StatusUnauthorized, Header: resp.Header, Message: "sign-in page instead of an API answer"}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		he := &httpError{Status: resp.StatusCode, Header: resp.Header}
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		var eb struct {
			Message string `json:"message"`
			TypeKey string `json:"typeKey"`
		}
		if json.Unmarshal(raw, &eb) == nil {
			he.Message, he.TypeKey = eb.Message, eb.TypeKey
		}
		return resp.Header, he
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.Header, fmt.Errorf("azuredevops: decode %s %s: %w", method, path, err)
		}
	}
	return resp.Header, nil
}

func isStatus(err error, status ...int) bool {
	var he *httpError
	if !errors.As(err, &he) {
		return false
	}
	for _, s := range status {
		if he.Status == s {
			return true
		}
	}
	return false
}

// apiError maps a failed call to a Slipway error; notFound is what a 404
// means for this call.
func apiError(what string, err error, notFound *slipway.Error) error {
	var he *httpError
	var e *slipway.Error
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("azuredevops: %s: %w", what, err)
	case !errors.As(err, &he):
		var ue *url.Error
		if !errors.As(err, &ue) {
			return fmt.Errorf("azuredevops: %s: %w", what, err)
		}
		e = slipway.Errorf(slipway.ECodeProviderUnreachable, "Azure DevOps did not answer (%s)", what).
			WithFix("Check the organisation URL and that Slipway can reach it")
	case he.Status == http.StatusUnauthorized:
		e = slipway.Errorf(slipway.ECodeCredentialsInvalid, "Azure DevOps rejected the personal access token (%s): it is invalid, expired or revoked", what).
			WithFix("Create a new personal access token for this organisation and update the integration")
	case he.Status == http.StatusTooManyRequests || (he.Status == http.StatusForbidden && rateLimited(he.Header)):
		e = slipway.Errorf(slipway.ECodeRateLimited, "Azure DevOps rate limit reached (%s)", what).
			WithFix("Wait for the limit to reset; Slipway retries on its own")
		e.Details = rateLimitDetails(he.Header)
	case he.Status == http.StatusForbidden:
		e = slipway.Errorf(slipway.ECodeForbidden, "Azure DevOps refused %s: the account or token lacks permission", what).
			WithFix("Check the token's scopes and the account's project permissions")
	case he.Status == http.StatusNotFound && notFound != nil:
		e = notFound
	default:
		e = slipway.Errorf(slipway.ECodeProviderError, "Azure DevOps answered %d to %s", he.Status, what)
	}
	return fmt.Errorf("azuredevops: %s: %w", what, e)
}

func rateLimited(h http.Header) bool {
	return h.Get("Retry-After") != "" || h.Get("X-RateLimit-Remaining") == "0"
}

func rateLimitDetails(h http.Header) map[string]string {
	d := map[string]string{}
	for k, name := range map[string]string{"retry_after": "Retry-After", "resource": "X-RateLimit-Resource", "delay": "X-RateLimit-Delay", "reset": "X-RateLimit-Reset", "limit": "X-RateLimit-Limit"} {
		if v := h.Get(name); v != "" {
			d[k] = v
		}
	}
	return d
}
