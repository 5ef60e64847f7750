package github

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Installation is a GitHub App installation on a user or organisation.
type Installation struct {
	ID                  int64             `json:"id"`
	Account             string            `json:"account"`
	AccountType         string            `json:"account_type"`         // "User" or "Organization"
	RepositorySelection string            `json:"repository_selection"` // "all" or "selected"
	SuspendedAt         *time.Time        `json:"suspended_at,omitempty"`
	Permissions         map[string]string `json:"permissions"` // e.g. "contents": "read"
}

// VerifyInstallation fetches an installation with the App JWT
// (GET /app/installations/{id}). An unknown installation is
// ECodeCredentialsInvalid with the fix.
func (p *Provider) VerifyInstallation(ctx context.Context, app *App, installationID int64) (Installation, error) {
	return verifyInstallation(ctx, p.http, p.now, app, installationID)
}

func verifyInstallation(ctx context.Context, hc *http.Client, now func() time.Time, app *App, installationID int64) (Installation, error) {
	client, err := app.client(hc, now)
	if err != nil {
		return Installation{}, fmt.Errorf("github: verify installation: %w", err)
	}
	inst, resp, err := client.Apps.GetInstallation(ctx, installationID)
	if err != nil {
		if statusOf(resp) == http.StatusNotFound {
			return Installation{}, fmt.Errorf("github: verify installation: %w", installationGone(installationID))
		}
		return Installation{}, apiError("read the App installation", resp, err, now())
	}
	out := Installation{
		ID:                  inst.GetID(),
		Account:             inst.GetAccount().GetLogin(),
		AccountType:         inst.GetAccount().GetType(),
		RepositorySelection: inst.GetRepositorySelection(),
		Permissions:         map[string]string{},
	}
	if inst.SuspendedAt != nil {
		t := inst.SuspendedAt.UTC()
		out.SuspendedAt = &t
	}
	if inst.Permissions != nil {
		// go-github models permissions as a struct of optional strings; a
		// map keyed by GitHub's own names is what checks and the UI need.
		raw, err := json.Marshal(inst.Permissions)
		if err == nil {
			err = json.Unmarshal(raw, &out.Permissions)
		}
		if err != nil {
			return Installation{}, fmt.Errorf("github: read installation permissions: %w", err)
		}
	}
	return out, nil
}
