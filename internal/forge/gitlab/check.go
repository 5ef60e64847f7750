package gitlab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
)

// expiryWarning is how close to its expiry a token must be for Check to
// report it as a problem before it breaks deployments.
const expiryWarning = 7 * 24 * time.Hour

// Check implements forge.Checker: who the token acts as (GET /user), which
// scopes it carries (personal_access_tokens/self for personal, project and
// group tokens; /oauth/token/info for OAuth), and whether "api" is among
// them.
func (p *Provider) Check(ctx context.Context, c *forge.Conn) (forge.CheckResult, error) {
	cl, err := p.client(ctx, c)
	if err != nil {
		return forge.CheckResult{}, err
	}
	user, resp, err := cl.Users.CurrentUser(gl.WithContext(ctx))
	if err != nil {
		return forge.CheckResult{}, apiError("read the current user", resp, err, nil)
	}
	res := forge.CheckResult{Account: user.Username}

	if c.Integration.AuthMethod == slipway.AuthOAuth {
		scopes, err := p.oauthScopes(ctx, c)
		if err != nil {
			return res, err
		}
		res.Scopes = scopes
	} else {
		tok, resp, err := cl.PersonalAccessTokens.GetSinglePersonalAccessToken(gl.WithContext(ctx))
		switch {
		case err == nil:
			res.Scopes = tok.Scopes
			if tok.Revoked || !tok.Active {
				return res, fmt.Errorf("gitlab: check token: %w", slipway.Errorf(slipway.ECodeCredentialsInvalid, "GitLab token is revoked or inactive").
					WithFix("Create a new token and update the integration"))
			}
			if tok.ExpiresAt != nil {
				exp := time.Time(*tok.ExpiresAt)
				if time.Until(exp) < expiryWarning {
					res.Problems = append(res.Problems, forge.Problem{
						Code:    slipway.ECodeIntegrationNeedsAttention,
						Message: fmt.Sprintf("GitLab token expires on %s", exp.Format(time.DateOnly)),
						Fix:     "Rotate the token before it expires and update the integration",
					})
				}
			}
		case resp != nil && resp.StatusCode == http.StatusNotFound:
			// Instances older than 15.5 have no self endpoint: the scopes
			// cannot be read, so hook installation will tell.
			res.Problems = append(res.Problems, forge.Problem{
				Code:    slipway.ECodeIntegrationNeedsAttention,
				Message: "This GitLab version cannot report token scopes; Slipway needs the api scope",
				Fix:     "Make sure the token has the api scope",
			})
			return res, nil
		default:
			return res, apiError("read the token's scopes", resp, err, nil)
		}
	}
	for _, s := range requiredScopes {
		if !slices.Contains(res.Scopes, s) {
			res.Missing = append(res.Missing, s)
		}
	}
	if len(res.Missing) > 0 {
		missing := strings.Join(res.Missing, ", ")
		e := slipway.Errorf(slipway.ECodeScopesMissing, "GitLab token is missing scopes: %s", missing).
			WithFix("Create a token with the scopes " + strings.Join(requiredScopes, ", ") + " (or reconnect) and update the integration")
		e.Details = map[string]string{"missing": missing}
		res.Problems = append(res.Problems, forge.Problem{Code: e.Code, Message: e.Message, Fix: e.Fix})
		return res, fmt.Errorf("gitlab: check scopes: %w", e)
	}
	return res, nil
}

// oauthScopes reads an OAuth token's scopes from Doorkeeper's token info
// endpoint, which lives outside /api/v4 and so outside the client library.
func (p *Provider) oauthScopes(ctx context.Context, c *forge.Conn) ([]string, error) {
	token, err := c.AccessToken(ctx)
	if err != nil {
		return nil, fmt.Errorf("gitlab: access token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL(c)+"/oauth/token/info", nil)
	if err != nil {
		return nil, fmt.Errorf("gitlab: token info request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		return nil, apiError("read the token's scopes", nil, err, nil)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, apiError("read the token's scopes", &gl.Response{Response: resp}, fmt.Errorf("status %d", resp.StatusCode), nil)
	}
	var info struct {
		Scope []string `json:"scope"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return nil, fmt.Errorf("gitlab: decode token info: %w", err)
	}
	return info.Scope, nil
}
