// Package providers is the registry of every Git provider this build
// supports. cmd/slipway wires it into the server; end-to-end tests start
// servers with the same set. It is the one place outside a provider's own
// package that names them all.
package providers

import (
	"log/slog"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/azuredevops"
	"slipway.dev/slipway/internal/forge/bitbucket"
	"slipway.dev/slipway/internal/forge/gitea"
	"slipway.dev/slipway/internal/forge/gitgeneric"
	"slipway.dev/slipway/internal/forge/github"
	"slipway.dev/slipway/internal/forge/gitlab"
)

// All returns one instance of every provider, keyed by kind.
func All(logger *slog.Logger) map[slipway.Provider]forge.Provider {
	return map[slipway.Provider]forge.Provider{
		slipway.ProviderGitHub:      github.New(github.Options{Logger: logger}),
		slipway.ProviderGitLab:      gitlab.New(logger),
		slipway.ProviderBitbucket:   bitbucket.New(logger),
		slipway.ProviderAzureDevOps: azuredevops.New(logger),
		slipway.ProviderGitea:       gitea.New(),
		slipway.ProviderGit:         gitgeneric.New(),
	}
}
