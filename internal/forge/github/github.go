// Package github is Slipway's GitHub provider for github.com and GitHub
// Enterprise Server, connected as a GitHub App. It creates the App through
// the manifest flow, verifies installations, mints installation tokens
// (cached, one mint at a time per installation, narrowed to one repository
// for clones), lists repositories with conditional requests so an unchanged
// re-sync costs no rate limit, resolves refs, reports commit statuses and
// verifies and normalizes App webhook deliveries.
//
// A GitHub integration's forge.Conn carries the installation id in
// Integration.ExternalID and the App's id, private key and webhook secret
// in Secret. Integration.BaseURL is empty for github.com, or the GHES
// address (https://ghe.example.com or its /api/v3/ API base).
package github

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	gh "github.com/google/go-github/v88/github"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
)

// DefaultAPIBase is github.com's REST API.
const DefaultAPIBase = "https://api.github.com/"

// Options configure a Provider. Every field is optional.
type Options struct {
	// HTTP is the client for API calls when a Conn brings none.
	HTTP *http.Client
	// Now is the clock used for JWTs and token expiry; time.Now when nil.
	Now func() time.Time
	// Logger receives operational messages (never credentials).
	Logger *slog.Logger
}

// Provider implements the forge capabilities for GitHub. It is safe for
// concurrent use and keeps one TokenCache per App, so installation tokens
// are shared by every caller of the same (base URL, app id, installation).
type Provider struct {
	http   *http.Client
	now    func() time.Time
	logger *slog.Logger

	mu     sync.Mutex
	caches map[appKey]*TokenCache
}

// appKey identifies an App on one GitHub host. The key fingerprint makes a
// rotated private key start a fresh cache instead of reusing the old App.
type appKey struct {
	apiBase string
	appID   int64
	keyHash [32]byte
}

// New returns a Provider.
func New(opts Options) *Provider {
	p := &Provider{http: opts.HTTP, now: opts.Now, logger: opts.Logger, caches: map[appKey]*TokenCache{}}
	if p.http == nil {
		p.http = &http.Client{Timeout: 30 * time.Second}
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.logger == nil {
		p.logger = slog.New(slog.DiscardHandler)
	}
	return p
}

// Kind implements forge.Provider.
func (p *Provider) Kind() slipway.Provider { return slipway.ProviderGitHub }

// Capabilities this package offers, checked by the compiler.
var (
	_ forge.Provider       = (*Provider)(nil)
	_ forge.Checker        = (*Provider)(nil)
	_ forge.RepoLister     = (*Provider)(nil)
	_ forge.RefLister      = (*Provider)(nil)
	_ forge.Cloner         = (*Provider)(nil)
	_ forge.HookParser     = (*Provider)(nil)
	_ forge.Comparer       = (*Provider)(nil)
	_ forge.StatusReporter = (*Provider)(nil)
)

// APIBase turns an integration's base URL into the REST API base with a
// trailing slash: empty or github.com → https://api.github.com/, GitHub
// Enterprise Cloud with data residency (<tenant>.ghe.com) →
// https://api.<tenant>.ghe.com/, a GHES address → {address}/api/v3/. A
// URL already naming an API base is kept. It and WebBase are the one place
// that knows each GitHub's API and web roots.
func APIBase(baseURL string) (string, error) {
	baseURL = strings.TrimSpace(baseURL)
	if baseURL == "" {
		return DefaultAPIBase, nil
	}
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", slipway.Errorf(slipway.ECodeInvalid, "GitHub base URL %q is not an http(s) URL", baseURL).
			WithFix("use https://github.com or your GitHub Enterprise Server address, e.g. https://ghe.example.com")
	}
	if u.Host == "github.com" || u.Host == "www.github.com" {
		return DefaultAPIBase, nil
	}
	path := strings.TrimSuffix(u.Path, "/")
	if tenant, ok := gheTenant(u.Host); ok && path == "" {
		u.Host, u.Path = "api."+tenant+"."+gheDomain, "/"
		return u.String(), nil
	}
	if strings.HasPrefix(u.Host, "api.") || strings.HasSuffix(path, "/api/v3") {
		u.Path = path + "/"
		return u.String(), nil
	}
	u.Path = path + "/api/v3/"
	return u.String(), nil
}

// gheDomain is GitHub Enterprise Cloud with data residency: each
// enterprise has <tenant>.ghe.com for the web and api.<tenant>.ghe.com
// for the REST API (no /api/v3).
const gheDomain = "ghe.com"

// gheTenant returns the tenant of a <tenant>.ghe.com or
// api.<tenant>.ghe.com host.
func gheTenant(host string) (string, bool) {
	name, ok := strings.CutSuffix(strings.ToLower(host), "."+gheDomain)
	name = strings.TrimPrefix(name, "api.")
	if !ok || name == "" || strings.Contains(name, ".") {
		return "", false
	}
	return name, true
}

// WebBase is the browser-facing address matching an API base: github.com
// for the public API, <tenant>.ghe.com for api.<tenant>.ghe.com, the GHES
// host for {ghes}/api/v3/.
func WebBase(apiBase string) string {
	if apiBase == "" || apiBase == DefaultAPIBase {
		return "https://github.com"
	}
	u, err := url.Parse(apiBase)
	if err != nil {
		return strings.TrimSuffix(apiBase, "/")
	}
	if tenant, ok := gheTenant(u.Host); ok {
		return u.Scheme + "://" + tenant + "." + gheDomain
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/api/v3")
	u.RawQuery, u.Fragment = "", ""
	return strings.TrimSuffix(u.String(), "/")
}

// httpClient picks the Conn's client, then the Provider's.
func (p *Provider) httpClient(c *forge.Conn) *http.Client {
	if c != nil && c.HTTP != nil {
		return c.HTTP
	}
	return p.http
}

// authTransport adds an Authorization header computed per request, so a
// token never sits in a URL or a long-lived header map.
type authTransport struct {
	base  http.RoundTripper
	token func(ctx context.Context) (string, error)
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := t.token(req.Context())
	if err != nil {
		return nil, err
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	return t.base.RoundTrip(req)
}

// newClient builds a go-github client for apiBase that authenticates every
// request with token (nil: anonymous). A client per call keeps no rate
// limit state between integrations; GitHub's answer is the authority.
func newClient(hc *http.Client, apiBase string, token func(ctx context.Context) (string, error)) (*gh.Client, error) {
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	var rt http.RoundTripper = base
	if token != nil {
		rt = &authTransport{base: base, token: token}
	}
	client := &http.Client{Transport: rt, Timeout: hc.Timeout, CheckRedirect: hc.CheckRedirect}
	return gh.NewClient(
		gh.WithHTTPClient(client),
		gh.WithEnterpriseURLs(apiBase, apiBase),
		gh.WithUserAgent("slipway"),
		gh.WithDisableRateLimitCheck(),
	)
}

// connApp reads the App credentials and installation id from a Conn.
func connApp(c *forge.Conn) (apiBase string, appID, installationID int64, err error) {
	apiBase, err = APIBase(c.APIBaseURL())
	if err != nil {
		return "", 0, 0, err
	}
	appID, err = strconv.ParseInt(strings.TrimSpace(c.Secret.AppID), 10, 64)
	if err != nil || appID <= 0 {
		return "", 0, 0, slipway.Errorf(slipway.ECodeCredentialsInvalid, "the GitHub integration has no valid App id").
			WithFix("reconnect the integration with the App's numeric id (App settings → General → App ID)")
	}
	installationID, err = strconv.ParseInt(strings.TrimSpace(c.Integration.ExternalID), 10, 64)
	if err != nil || installationID <= 0 {
		return "", 0, 0, slipway.Errorf(slipway.ECodeIntegrationNeedsAttention, "the GitHub integration has no installation yet").
			WithFix("install the GitHub App on a user or organisation to finish connecting")
	}
	return apiBase, appID, installationID, nil
}

// tokenCache returns the shared TokenCache for the Conn's App.
func (p *Provider) tokenCache(c *forge.Conn) (*TokenCache, int64, error) {
	apiBase, appID, installationID, err := connApp(c)
	if err != nil {
		return nil, 0, err
	}
	key := appKey{apiBase: apiBase, appID: appID, keyHash: keyFingerprint(c.Secret.PrivateKey)}
	p.mu.Lock()
	defer p.mu.Unlock()
	if tc, ok := p.caches[key]; ok {
		return tc, installationID, nil
	}
	app, err := NewApp(appID, []byte(c.Secret.PrivateKey), c.Secret.WebhookSecret, apiBase)
	if err != nil {
		return nil, 0, err
	}
	tc := NewTokenCache(app, p.httpClient(c), p.now)
	p.caches[key] = tc
	return tc, installationID, nil
}

// installationClient returns a client authenticated with the Conn's
// installation token: Conn.Tokens when the caller supplies a source, the
// Provider's shared TokenCache otherwise.
func (p *Provider) installationClient(c *forge.Conn) (*gh.Client, error) {
	apiBase, err := APIBase(c.APIBaseURL())
	if err != nil {
		return nil, err
	}
	if c.Tokens != nil {
		return newClient(p.httpClient(c), apiBase, c.Tokens.Token)
	}
	tc, installationID, err := p.tokenCache(c)
	if err != nil {
		return nil, err
	}
	return newClient(p.httpClient(c), apiBase, func(ctx context.Context) (string, error) {
		return tc.Token(ctx, installationID)
	})
}

// apiError translates a failed GitHub call into a slipway error. op says
// what was attempted ("list repositories"). Callers that give 404 or 422 a
// specific meaning check the status before calling this.
func apiError(op string, resp *gh.Response, err error, now time.Time) error {
	if err == nil {
		return nil
	}
	var se *slipway.Error
	if errors.As(err, &se) { // from our own token source: already explained
		return fmt.Errorf("%s: %w", op, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("github: %s: %w", op, err)
	}
	if resp == nil || resp.Response == nil {
		return fmt.Errorf("github: %s: %w", op, &slipway.Error{
			Code:    slipway.ECodeProviderUnreachable,
			Message: fmt.Sprintf("GitHub did not answer (%s)", op),
			Fix:     "check the integration's base URL and that this server can reach it",
		})
	}
	var msg string
	var er *gh.ErrorResponse
	var rl *gh.RateLimitError
	var ab *gh.AbuseRateLimitError
	switch {
	case errors.As(err, &er):
		msg = er.Message
	case errors.As(err, &rl):
		msg = rl.Message
	case errors.As(err, &ab):
		msg = ab.Message
	}
	status := resp.StatusCode
	if e := rateLimitError(op, resp.Response, now); e != nil {
		return fmt.Errorf("github: %w", e)
	}
	detail := fmt.Sprintf("%d", status)
	if msg != "" {
		detail += ": " + msg
	}
	var e *slipway.Error
	switch {
	case status == http.StatusUnauthorized:
		e = &slipway.Error{Code: slipway.ECodeCredentialsInvalid,
			Message: fmt.Sprintf("GitHub rejected the App's credentials (%s) while trying to %s", detail, op),
			Fix:     "check the App id and private key in the integration; generate a new private key in the App's settings if it was revoked"}
	case status == http.StatusForbidden:
		e = &slipway.Error{Code: slipway.ECodeScopesMissing,
			Message: fmt.Sprintf("GitHub refused to %s (%s)", op, detail),
			Fix:     "accept the App's requested permissions on the installation (Settings → Applications → Configure)"}
	case status == http.StatusNotFound:
		e = &slipway.Error{Code: slipway.ECodeNotFound, Message: fmt.Sprintf("GitHub found nothing to %s (%s)", op, detail)}
	default:
		e = &slipway.Error{Code: slipway.ECodeProviderError, Message: fmt.Sprintf("GitHub could not %s (%s)", op, detail)}
	}
	return fmt.Errorf("github: %w", e)
}

// rateLimitError reports a primary (X-RateLimit-Remaining: 0) or secondary
// (Retry-After) rate limit answer, with when to try again.
func rateLimitError(op string, r *http.Response, now time.Time) *slipway.Error {
	if r.StatusCode != http.StatusForbidden && r.StatusCode != http.StatusTooManyRequests {
		return nil
	}
	var reset time.Time
	switch {
	case r.Header.Get("Retry-After") != "":
		secs, err := strconv.Atoi(strings.TrimSpace(r.Header.Get("Retry-After")))
		if err != nil {
			secs = 60
		}
		reset = now.Add(time.Duration(secs) * time.Second)
	case r.Header.Get("X-RateLimit-Remaining") == "0":
		unix, err := strconv.ParseInt(r.Header.Get("X-RateLimit-Reset"), 10, 64)
		if err != nil {
			reset = now.Add(time.Minute)
		} else {
			reset = time.Unix(unix, 0)
		}
	default:
		return nil
	}
	reset = reset.UTC().Truncate(time.Second)
	return &slipway.Error{
		Code:    slipway.ECodeRateLimited,
		Message: fmt.Sprintf("GitHub's rate limit was reached while trying to %s; it resets at %s", op, reset.Format(time.RFC3339)),
		Fix:     "wait until the reset time; Slipway retries on its own",
		Details: map[string]string{"reset_at": reset.Format(time.RFC3339)},
	}
}

// statusOf returns the HTTP status of a go-github response, 0 when none.
func statusOf(resp *gh.Response) int {
	if resp == nil || resp.Response == nil {
		return 0
	}
	return resp.StatusCode
}

// parseRepoID reads a GitHub repository id kept as a string.
func parseRepoID(id string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(id), 10, 64)
	if err != nil || n <= 0 {
		return 0, slipway.Errorf(slipway.ECodeRepoNotVisible, "%q is not a GitHub repository id", id)
	}
	return n, nil
}

// splitFullName splits owner/name.
func splitFullName(full string) (owner, name string, err error) {
	owner, name, ok := strings.Cut(full, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return "", "", slipway.Errorf(slipway.ECodeInvalid, "%q is not an owner/name repository name", full)
	}
	return owner, name, nil
}
