// Package providers is the registry of every Git provider this build
// supports. cmd/slipway wires it into the server; end-to-end tests start
// servers with the same set. It is the one place outside a provider's own
// package that names them all.
package providers

import (
	"log/slog"
	"time"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/forge/azuredevops"
	"slipway.dev/slipway/internal/forge/bitbucket"
	"slipway.dev/slipway/internal/forge/gitea"
	"slipway.dev/slipway/internal/forge/gitgeneric"
	"slipway.dev/slipway/internal/forge/github"
	"slipway.dev/slipway/internal/forge/gitlab"
	"slipway.dev/slipway/internal/netpolicy"
)

// All returns one instance of every provider, keyed by kind. network is
// the installation's outbound policy, for the calls a provider makes
// without a connection (GitHub's manifest conversion and installation
// check); calls for a connection dial through forge.Conn's client.
func All(logger *slog.Logger, network netpolicy.Policy) map[slipway.Provider]forge.Provider {
	return map[slipway.Provider]forge.Provider{
		slipway.ProviderGitHub:      github.New(github.Options{Logger: logger, HTTP: network.HTTPClient(30 * time.Second)}),
		slipway.ProviderGitLab:      gitlab.New(logger),
		slipway.ProviderBitbucket:   bitbucket.New(logger),
		slipway.ProviderAzureDevOps: azuredevops.New(logger),
		slipway.ProviderGitea:       gitea.New(),
		slipway.ProviderGit:         gitgeneric.New(),
	}
}
