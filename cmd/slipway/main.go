// Command slipway is Slipway's single binary: the server (`slipway serve`)
// and the command-line client. This is the only place that names concrete
// Git providers and runtimes.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	dockerswarm "github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
	"github.com/spf13/cobra"

	"slipway.dev/slipway/internal/build"
	"slipway.dev/slipway/internal/certs"
	"slipway.dev/slipway/internal/cli"
	"slipway.dev/slipway/internal/clientaddr"
	"slipway.dev/slipway/internal/forge/providers"
	"slipway.dev/slipway/internal/netpolicy"
	"slipway.dev/slipway/internal/runtime"
	"slipway.dev/slipway/internal/runtime/docker"
	"slipway.dev/slipway/internal/runtime/images"
	"slipway.dev/slipway/internal/runtime/process"
	"slipway.dev/slipway/internal/runtime/swarm"
	"slipway.dev/slipway/internal/sandbox"
	"slipway.dev/slipway/internal/server"
	"slipway.dev/slipway/internal/service"
	"slipway.dev/slipway/internal/web"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process exit, so end-to-end tests can call it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.Main(ctx, args, cli.Env{
		Stdout: stdout, Stderr: stderr,
		Serve: func(ctx context.Context, f cli.ServeFlags) error { return serve(ctx, f, stdout, stderr) },
		Extra: []*cobra.Command{staticServeCmd()},
	})
}

// dockerRuntime and swarmRuntime add image building and the image cache
// to the image runtimes, so the deploy pipeline builds a Dockerfile for
// them instead of running the process runtime's build plan.
type dockerRuntime struct {
	*docker.Runtime
	images.Builder
}

type swarmRuntime struct {
	*swarm.Runtime
	images.Builder
}

func newRuntime(name string, logger *slog.Logger) func(sb *sandbox.Manager) (runtime.Runtime, error) {
	return func(sb *sandbox.Manager) (runtime.Runtime, error) {
		switch name {
		case "", "process":
			return process.New(logger, sb, process.Options{}), nil
		case "docker":
			cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
			if err != nil {
				return nil, fmt.Errorf("docker client: %w", err)
			}
			return dockerRuntime{Runtime: docker.New(cli, docker.Options{Logger: logger}), Builder: images.Builder{Client: cli}}, nil
		case "swarm":
			cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
			if err != nil {
				return nil, fmt.Errorf("docker client: %w", err)
			}
			if err := requireSwarmManager(context.Background(), cli); err != nil {
				cli.Close()
				return nil, err
			}
			return swarmRuntime{Runtime: swarm.New(cli, swarm.Options{Logger: logger}), Builder: images.Builder{Client: cli}}, nil
		}
		return nil, fmt.Errorf("unknown runtime %q (process, docker or swarm)", name)
	}
}

// requireSwarmManager refuses to start the swarm runtime on a daemon that
// is not a swarm manager. Slipway never creates or joins a swarm itself:
// which address a swarm advertises is the operator's decision.
func requireSwarmManager(ctx context.Context, cli client.SystemAPIClient) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	info, err := cli.Info(ctx)
	if err != nil {
		return fmt.Errorf("swarm runtime: ask the Docker daemon: %w", err)
	}
	switch {
	case info.Swarm.LocalNodeState != dockerswarm.LocalNodeStateActive:
		return fmt.Errorf("swarm runtime: this Docker daemon is not part of a swarm (state %q); "+
			"create one with `docker swarm init --advertise-addr <this host's address>` and start Slipway again", info.Swarm.LocalNodeState)
	case !info.Swarm.ControlAvailable:
		return fmt.Errorf("swarm runtime: this Docker daemon is a swarm worker; run Slipway against a manager node (promote it with `docker node promote`)")
	}
	return nil
}

func serve(ctx context.Context, f cli.ServeFlags, stdout, stderr io.Writer) error {
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	proxies, err := clientaddr.Parse(f.TrustedProxies)
	if err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	network := netpolicy.Policy{AllowPrivate: f.AllowPrivateNetworks}
	tlsMode, err := certs.ParseMode(f.TLS)
	if err != nil {
		return err
	}
	srv, err := server.Start(ctx, server.Config{
		DataDir: f.DataDir, WorkspaceDir: f.Workspaces, Addr: f.Addr, PublicURL: f.PublicURL, DatabaseURL: f.DatabaseURL, BaseDomain: f.BaseDomain,
		MasterKey:          os.Getenv("SLIPWAY_MASTER_KEY"),
		Network:            network,
		DeliveryRetention:  service.DeliveryRetention{MaxAge: f.DeliveryMaxAge, KeepPerIntegration: f.DeliveriesKept},
		MinFreeDiskPercent: minFreeDisk(f.MinFreeDisk),
		BuildsKept:         f.BuildsKept,
		Forges:             providers.All(logger, network),
		NewRuntime:         newRuntime(f.Runtime, logger),
		Installation:       installationSettings(f, proxies),
		DNSResolver:        f.DNSResolver,
		TLS: certs.Options{Mode: tlsMode, DirectoryURL: f.ACMECA, CARootFile: f.ACMECARoot, Email: f.ACMEEmail,
			CertFile: f.TLSCert, KeyFile: f.TLSKey},
		HTTPSAddr: f.HTTPSAddr,
		// Tenant code never reaches this host's other ports or metadata
		// addresses (process runtime; see README "Isolation").
		FilterTenantNetwork: true,
		Dashboard: func(svc *service.Service, mux *http.ServeMux) {
			web.New(svc, logger, web.Options{ClientAddr: proxies}).Register(mux)
		},
		TrustedProxies: proxies,
		Logger:         logger,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Slipway is serving on %s\n", srv.URL())
	if a := srv.HTTPSAddr(); a != "" {
		fmt.Fprintf(stdout, "HTTPS (--tls %s) is listening on %s\n", tlsMode, a)
	}
	if b := srv.Bootstrap; b.Created {
		fmt.Fprintf(stdout, "First start: created organisation \"default\" and administrator %s.\n", b.Email)
		fmt.Fprintf(stdout, "Dashboard password and API token are in %s/admin-password and %s/admin-token (mode 0600).\n", f.DataDir, f.DataDir)
		fmt.Fprintf(stdout, "Log in with:\n  slipway login --server %s --token $(cat %s/admin-token)\n", srv.URL(), f.DataDir)
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "Shutting down…")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// installationSettings lists the settings of `slipway serve` the server
// does not know itself, for installation administrators.
func installationSettings(f cli.ServeFlags, proxies clientaddr.Resolver) []service.InstallationSetting {
	return []service.InstallationSetting{
		{Name: "runtime", Value: f.Runtime},
		{Name: "trusted-proxies", Value: proxies.String()},
		{Name: "dns-resolver", Value: f.DNSResolver},
		{Name: "tls", Value: f.TLS},
		{Name: "acme-ca", Value: f.ACMECA},
		{Name: "allow-private-networks", Value: strconv.FormatBool(f.AllowPrivateNetworks)},
		{Name: "delivery-retention", Value: f.DeliveryMaxAge.String()},
		{Name: "deliveries-kept", Value: strconv.Itoa(f.DeliveriesKept)},
		{Name: "min-free-disk", Value: strconv.FormatFloat(f.MinFreeDisk, 'f', -1, 64) + "%"},
		{Name: "builds-kept", Value: strconv.Itoa(f.BuildsKept)},
	}
}

func staticServeCmd() *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:    "static-serve",
		Short:  "Serve a static site on $PORT (the start command of static-site builds)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			port := os.Getenv("PORT")
			if port == "" {
				return fmt.Errorf("PORT is not set")
			}
			return build.ServeStatic(cmd.Context(), slog.New(slog.NewTextHandler(os.Stderr, nil)), dir, "127.0.0.1:"+port)
		},
	}
	c.Flags().StringVar(&dir, "dir", ".", "directory to serve")
	return c
}

// minFreeDisk maps the flag (0 = off) onto server.Config (0 = default).
func minFreeDisk(flag float64) float64 {
	if flag <= 0 {
		return -1
	}
	return flag
}
