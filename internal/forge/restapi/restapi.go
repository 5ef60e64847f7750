// Package restapi is the small JSON-over-HTTP plumbing the providers that
// speak to a forge's REST API directly (Bitbucket, Azure DevOps) share:
// send a request with the connection's credentials, decode the answer, keep
// a non-2xx answer as an *HTTPError, and map a failed call to a Slipway
// error in the provider's own words.
//
// Building URLs, paging and the provider's error vocabulary stay in the
// provider: only what is the same logic for every REST API lives here.
package restapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"slipway.dev/slipway"
)

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// HTTPError is a non-2xx answer, kept so callers can map it by status.
type HTTPError struct {
	Status  int
	Header  http.Header
	Message string // the provider's error message, when the body carries one
	TypeKey string // the provider's error type, when it names one
}

func (e *HTTPError) Error() string { return fmt.Sprintf("status %d: %s", e.Status, e.Message) }

// Client sends JSON requests for one provider and one connection.
type Client struct {
	// Provider prefixes the errors the client itself makes ("bitbucket").
	Provider string
	HTTP     *http.Client
	// Prepare adds the credentials, and any header the provider needs, to
	// every request.
	Prepare func(*http.Request)
	// Check, when set, may turn a response the status line calls a
	// success into an *HTTPError (an HTML sign-in page answered with 203).
	Check func(*http.Response) *HTTPError
	// DecodeError fills an *HTTPError's Message and TypeKey from the
	// (bounded) body of a non-2xx answer; a body it cannot read leaves them
	// empty.
	DecodeError func(body []byte, he *HTTPError)
}

// Request is one call: Path names it in errors (without the query, which
// may be long), URL is where it goes. In, when non-nil, is sent as JSON;
// Out, when non-nil, receives the decoded answer.
type Request struct {
	Method  string
	URL     string
	Path    string
	In, Out any
}

// Do sends r and returns the response headers (continuation tokens and
// scopes live there). A non-2xx answer is an *HTTPError, returned as is.
func (c *Client) Do(ctx context.Context, r Request) (http.Header, error) {
	var body io.Reader
	if r.In != nil {
		b, err := json.Marshal(r.In)
		if err != nil {
			return nil, fmt.Errorf("%s: encode request: %w", c.Provider, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, body)
	if err != nil {
		return nil, fmt.Errorf("%s: build request: %w", c.Provider, err)
	}
	req.Header.Set("Accept", "application/json")
	if r.In != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Prepare != nil {
		c.Prepare(req)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if c.Check != nil {
		if he := c.Check(resp); he != nil {
			return resp.Header, he
		}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		he := &HTTPError{Status: resp.StatusCode, Header: resp.Header}
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if c.DecodeError != nil {
			c.DecodeError(raw, he)
		}
		return resp.Header, he
	}
	if r.Out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(r.Out); err != nil {
			return resp.Header, fmt.Errorf("%s: decode %s %s: %w", c.Provider, r.Method, r.Path, err)
		}
	}
	return resp.Header, nil
}

// IsStatus reports whether err is an *HTTPError with one of statuses.
func IsStatus(err error, statuses ...int) bool {
	var he *HTTPError
	if !errors.As(err, &he) {
		return false
	}
	for _, s := range statuses {
		if he.Status == s {
			return true
		}
	}
	return false
}

// RateLimited reports whether err is an *HTTPError whose headers say a rate
// limit was hit: forges answer 403 for both a missing permission and a
// spent limit, and only the headers tell them apart.
func RateLimited(err error) bool {
	var he *HTTPError
	return errors.As(err, &he) && rateLimitedHeader(he.Header)
}

func rateLimitedHeader(h http.Header) bool {
	return h.Get("Retry-After") != "" || h.Get("X-RateLimit-Remaining") == "0"
}

// Errors is a provider's vocabulary for the failures every REST API
// shares. The messages differ by what the provider calls its credentials
// and what the user can do about them.
type Errors struct {
	Provider string // prefixes every error ("bitbucket")
	Name     string // starts every message ("Bitbucket")
	// UnreachableFix is the fix when the API did not answer at all.
	UnreachableFix string
	// Unauthorized is the error for a 401 to the call named what.
	Unauthorized func(what string) *slipway.Error
	// Forbidden is the error for a 403 that is not a rate limit.
	Forbidden func(what string, he *HTTPError) *slipway.Error
	// RateLimitHeaders are headers the provider adds to the shared ones in
	// a rate-limit error's details, by detail key.
	RateLimitHeaders map[string]string
}

// Map turns a failed call named what into a Slipway error; notFound is
// what a 404 means for this call (nil: a provider error). Cancellation and
// errors that are not about the API are only wrapped.
func (m Errors) Map(what string, err error, notFound *slipway.Error) error {
	var he *HTTPError
	var e *slipway.Error
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %s: %w", m.Provider, what, err)
	case !errors.As(err, &he):
		var ue *url.Error
		if !errors.As(err, &ue) {
			return fmt.Errorf("%s: %s: %w", m.Provider, what, err)
		}
		e = slipway.Errorf(slipway.ECodeProviderUnreachable, "%s did not answer (%s)", m.Name, what).
			WithFix(m.UnreachableFix)
	case he.Status == http.StatusUnauthorized:
		e = m.Unauthorized(what)
	case he.Status == http.StatusTooManyRequests || (he.Status == http.StatusForbidden && rateLimitedHeader(he.Header)):
		e = slipway.Errorf(slipway.ECodeRateLimited, "%s rate limit reached (%s)", m.Name, what).
			WithFix("Wait for the limit to reset; Slipway retries on its own")
		e.Details = m.rateLimitDetails(he.Header)
	case he.Status == http.StatusForbidden:
		e = m.Forbidden(what, he)
	case he.Status == http.StatusNotFound && notFound != nil:
		e = notFound
	default:
		e = slipway.Errorf(slipway.ECodeProviderError, "%s answered %d to %s", m.Name, he.Status, what)
	}
	return fmt.Errorf("%s: %s: %w", m.Provider, what, e)
}

// rateLimitDetails reports the rate-limit headers of an answer, by detail
// key: the ones every provider sends, then the provider's own.
func (m Errors) rateLimitDetails(h http.Header) map[string]string {
	shared := map[string]string{
		"retry_after": "Retry-After",
		"limit":       "X-RateLimit-Limit",
		"resource":    "X-RateLimit-Resource",
		"reset":       "X-RateLimit-Reset",
	}
	d := map[string]string{}
	for _, set := range []map[string]string{shared, m.RateLimitHeaders} {
		for k, name := range set {
			if v := h.Get(name); v != "" {
				d[k] = v
			}
		}
	}
	return d
}
