package github

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
)

// permissionRank orders GitHub permission levels: write includes read,
// admin includes write.
var permissionRank = map[string]int{"read": 1, "write": 2, "admin": 3}

// grants reports whether an installation's permissions include name:level.
func grants(perms map[string]string, name, level string) bool {
	return permissionRank[perms[name]] >= permissionRank[level]
}

// Check verifies the installation: it exists for this App, it is not
// suspended, and it grants contents:read and metadata:read. A missing
// statuses:write is a Problem (deployments still work, commit statuses do
// not). Errors: ECodeCredentialsInvalid (bad key, unknown installation),
// ECodeIntegrationNeedsAttention (suspended), ECodeScopesMissing.
func (p *Provider) Check(ctx context.Context, c *forge.Conn) (forge.CheckResult, error) {
	apiBase, appID, installationID, err := connApp(c)
	if err != nil {
		return forge.CheckResult{}, err
	}
	app, err := NewApp(appID, []byte(c.Secret.PrivateKey), c.Secret.WebhookSecret, apiBase)
	if err != nil {
		return forge.CheckResult{}, err
	}
	inst, err := verifyInstallation(ctx, p.httpClient(c), p.now, app, installationID)
	if err != nil {
		return forge.CheckResult{}, err
	}
	res := forge.CheckResult{Account: inst.Account}
	for name, level := range inst.Permissions {
		res.Scopes = append(res.Scopes, name+":"+level)
	}
	sort.Strings(res.Scopes)

	if inst.SuspendedAt != nil {
		e := slipway.Errorf(slipway.ECodeIntegrationNeedsAttention,
			"the GitHub App installation on %s was suspended on %s", inst.Account, inst.SuspendedAt.Format(time.DateOnly)).
			WithFix(fmt.Sprintf("an owner of %s can unsuspend it in GitHub: Settings → Applications → Installed GitHub Apps → Configure → Unsuspend", inst.Account))
		res.Problems = append(res.Problems, forge.Problem{Code: e.Code, Message: e.Message, Fix: e.Fix})
		return res, fmt.Errorf("github: check: %w", e)
	}

	for _, name := range []string{"contents", "metadata"} {
		if !grants(inst.Permissions, name, requiredPermissions[name]) {
			res.Missing = append(res.Missing, name+":"+requiredPermissions[name])
		}
	}
	if !grants(inst.Permissions, "statuses", "write") {
		res.Problems = append(res.Problems, forge.Problem{
			Code:    slipway.ECodeScopesMissing,
			Message: "the App cannot write commit statuses, so deployments will not show on commits and pull requests",
			Fix:     "give the App the Commit statuses: Read and write permission, then accept it on the installation",
		})
	}
	if len(res.Missing) > 0 {
		e := slipway.Errorf(slipway.ECodeScopesMissing, "the GitHub App installation lacks %s", strings.Join(res.Missing, ", ")).
			WithFix("give the App these repository permissions in its settings, then accept the new permissions on the installation")
		e.Details = map[string]string{"missing": strings.Join(res.Missing, ",")}
		res.Problems = append(res.Problems, forge.Problem{Code: e.Code, Message: e.Message, Fix: e.Fix})
		return res, fmt.Errorf("github: check: %w", e)
	}
	return res, nil
}
