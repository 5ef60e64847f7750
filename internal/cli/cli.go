// Package cli is the `slipway` command line: the client commands that talk
// to a server's JSON API (login, org, integration, app, env, service,
// deploy, logs, …) and the `serve` command, whose wiring cmd/slipway
// injects. Every command takes --output json for scripts; otherwise it
// prints readable tables. Errors are one line on stderr with a non-zero
// exit status.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"slipway.dev/slipway/internal/apiclient"
)

// Env is what the CLI needs from its surroundings.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Serve runs `slipway serve` with its parsed flags; nil hides the
	// command.
	Serve func(ctx context.Context, flags ServeFlags) error
	// Extra adds commands wired in cmd/slipway (static-serve, …).
	Extra []*cobra.Command
}

// ServeFlags are the flags of `slipway serve`.
type ServeFlags struct {
	DataDir, Addr, PublicURL, DatabaseURL, Runtime, BaseDomain, Workspaces string
	// DatabaseURLFile names a 0600 file holding the database URL, so a
	// password never appears in the process's argv.
	DatabaseURLFile string
	// TrustedProxies lists the reverse proxies (addresses or CIDR prefixes)
	// whose X-Forwarded-For names the client.
	TrustedProxies string
	// DNSResolver is the HOST:PORT of the DNS server custom-domain
	// ownership records are looked up on (empty: the system resolver).
	DNSResolver string
	// AllowPrivateNetworks lets Slipway reach loopback, link-local and
	// private addresses and plain http for tenants (a forge on the
	// operator's own network).
	AllowPrivateNetworks bool
	// DeliveryMaxAge and DeliveriesKept bound the webhook delivery log.
	DeliveryMaxAge time.Duration
	DeliveriesKept int
	// MinFreeDisk is the free disk (percent) a deploy needs to start.
	MinFreeDisk float64
	// BuildsKept is how many finished builds (images) of a Service are
	// kept besides the live one.
	BuildsKept int
	// TLS is off, acme or manual; HTTPSAddr the HTTPS listener; ACMECA
	// and ACMECARoot a private ACME directory and the CA its TLS
	// certificate chains to; TLSCert and TLSKey the manual pair.
	TLS, HTTPSAddr, ACMECA, ACMECARoot, ACMEEmail, TLSCert, TLSKey string
}

// Main runs the CLI and returns the exit status.
func Main(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	root := newRoot(ctx, env)
	root.SetArgs(args)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(env.Stderr, "error: "+oneLine(err))
		var p *apiclient.Problem
		if errors.As(err, &p) && p.Code != "" {
			fmt.Fprintln(env.Stderr, "code: "+p.Code)
		}
		return 1
	}
	return 0
}

func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", " ")
}

// app carries the state shared by commands.
type app struct {
	env     Env
	output  string
	server  string
	token   string
	profile string
}

func newRoot(ctx context.Context, env Env) *cobra.Command {
	a := &app{env: env}
	root := &cobra.Command{
		Use:           "slipway",
		Short:         "Slipway: deploy from Git, on your own machines",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	root.PersistentFlags().StringVar(&a.server, "server", "", "server URL (default: from slipway login, or $SLIPWAY_SERVER)")
	root.PersistentFlags().StringVar(&a.token, "token", "", "API token (default: from slipway login, or $SLIPWAY_TOKEN)")
	root.PersistentFlags().StringVar(&a.profile, "profile", "", "login profile to use (default: $SLIPWAY_PROFILE, or the current one; see slipway profile list)")
	if env.Serve != nil {
		root.AddCommand(a.serveCmd())
	}
	root.AddCommand(a.loginCmd(), a.orgCmd(), a.integrationCmd(), a.appCmd(), a.envCmd(), a.serviceCmd(),
		a.deployCmd(), a.redeployCmd(), a.rollbackCmd(), a.deploymentsCmd(), a.logsCmd(), a.cancelCmd(), a.tokenCmd(), a.memberCmd(), a.doctorCmd(), a.profileCmd(), a.invitationCmd(), a.installationCmd())
	root.AddCommand(a.extraCmds()...)
	root.AddCommand(env.Extra...)
	return root
}

func (a *app) serveCmd() *cobra.Command {
	var f ServeFlags
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the Slipway server (API, webhooks, dashboard, router) on one listener",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := resolveDatabaseURL(cmd, &f); err != nil {
				return err
			}
			return a.env.Serve(cmd.Context(), f)
		},
	}
	def := func(name, fallback string) string {
		if v := a.env.Getenv(name); v != "" {
			return v
		}
		return fallback
	}
	c.Flags().StringVar(&f.DataDir, "data", def("SLIPWAY_DATA", "./slipway-data"), "data directory ($SLIPWAY_DATA)")
	c.Flags().StringVar(&f.Addr, "addr", def("SLIPWAY_ADDR", "127.0.0.1:8080"), "listen address ($SLIPWAY_ADDR)")
	c.Flags().StringVar(&f.PublicURL, "public-url", def("SLIPWAY_PUBLIC_URL", ""), "URL users and providers reach this server at ($SLIPWAY_PUBLIC_URL; default http://ADDR)")
	c.Flags().StringVar(&f.DatabaseURL, "database-url", def("SLIPWAY_DATABASE_URL", ""), "postgres://… to use PostgreSQL ($SLIPWAY_DATABASE_URL; default embedded SQLite); with a password, use the variable or --database-url-file")
	c.Flags().StringVar(&f.DatabaseURLFile, "database-url-file", def("SLIPWAY_DATABASE_URL_FILE", ""), "file (mode 0600) holding the database URL ($SLIPWAY_DATABASE_URL_FILE)")
	c.Flags().StringVar(&f.TrustedProxies, "trusted-proxies", def("SLIPWAY_TRUSTED_PROXIES", ""), "reverse proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For names the client ($SLIPWAY_TRUSTED_PROXIES; default none: the TCP peer is the client)")
	c.Flags().StringVar(&f.Runtime, "runtime", def("SLIPWAY_RUNTIME", "process"), "where services run: process, docker or swarm ($SLIPWAY_RUNTIME)")
	c.Flags().StringVar(&f.Workspaces, "workspaces", def("SLIPWAY_WORKSPACES", ""), "directory for per-service build workspaces ($SLIPWAY_WORKSPACES; default /var/lib/slipway/workspaces/… as root)")
	c.Flags().BoolVar(&f.AllowPrivateNetworks, "allow-private-networks", def("SLIPWAY_ALLOW_PRIVATE_NETWORKS", "") == "1" || def("SLIPWAY_ALLOW_PRIVATE_NETWORKS", "") == "true",
		"let integrations, OAuth and git reach loopback, link-local and private addresses and plain http ($SLIPWAY_ALLOW_PRIVATE_NETWORKS=1)")
	c.Flags().DurationVar(&f.DeliveryMaxAge, "delivery-retention", 30*24*time.Hour, "how long finished webhook deliveries are kept")
	c.Flags().IntVar(&f.DeliveriesKept, "deliveries-kept", 1000, "how many finished webhook deliveries each integration keeps")
	c.Flags().IntVar(&f.BuildsKept, "builds-kept", 3, "finished builds (or images) of each service kept besides the live one, for rollbacks without a rebuild (at least 1)")
	c.Flags().StringVar(&f.TLS, "tls", def("SLIPWAY_TLS", "off"), "HTTPS: off, acme (certificates from an ACME server for every served name) or manual (--tls-cert/--tls-key) ($SLIPWAY_TLS)")
	c.Flags().StringVar(&f.HTTPSAddr, "https-addr", def("SLIPWAY_HTTPS_ADDR", ":443"), "HTTPS listen address when --tls is on ($SLIPWAY_HTTPS_ADDR)")
	c.Flags().StringVar(&f.ACMECA, "acme-ca", def("SLIPWAY_ACME_CA", ""), "ACME directory URL (default Let's Encrypt production; its staging directory, step-ca or Pebble for tests) ($SLIPWAY_ACME_CA)")
	c.Flags().StringVar(&f.ACMECARoot, "acme-ca-root", def("SLIPWAY_ACME_CA_ROOT", ""), "PEM file of the CA a private ACME server's own HTTPS certificate chains to ($SLIPWAY_ACME_CA_ROOT)")
	c.Flags().StringVar(&f.ACMEEmail, "acme-email", def("SLIPWAY_ACME_EMAIL", ""), "contact address for the ACME account (expiry notices) ($SLIPWAY_ACME_EMAIL)")
	c.Flags().StringVar(&f.TLSCert, "tls-cert", def("SLIPWAY_TLS_CERT", ""), "certificate chain PEM file for --tls manual ($SLIPWAY_TLS_CERT)")
	c.Flags().StringVar(&f.TLSKey, "tls-key", def("SLIPWAY_TLS_KEY", ""), "private key PEM file for --tls manual ($SLIPWAY_TLS_KEY)")
	c.Flags().Float64Var(&f.MinFreeDisk, "min-free-disk", 5, "percent of free disk a deploy needs to start (workspaces and data directory; 0 turns the check off)")
	c.Flags().StringVar(&f.BaseDomain, "base-domain", def("SLIPWAY_BASE_DOMAIN", "localhost"), "services answer at <service>.<env>.<app>.<org-label>.<base-domain>")
	c.Flags().StringVar(&f.DNSResolver, "dns-resolver", def("SLIPWAY_DNS_RESOLVER", ""), "HOST:PORT of the DNS server custom-domain TXT and A/AAAA records are checked with (default: the system resolver)")
	return c
}

// call performs an API request and prints the answer.
func (a *app) call(cmd *cobra.Command, method, path string, body, out any, table func(io.Writer)) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	if err := c.Do(cmd.Context(), method, path, body, out); err != nil {
		return err
	}
	return a.print(out, table)
}

// print writes v as JSON with --output json, or calls table.
func (a *app) print(v any, table func(io.Writer)) error {
	switch a.output {
	case "json":
		enc := json.NewEncoder(a.env.Stdout)
		enc.SetIndent("", "  ")
		if v == nil {
			v = map[string]string{"status": "ok"}
		}
		return enc.Encode(v)
	case "table", "":
		if table != nil {
			tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
			table(tw)
			return tw.Flush()
		}
		return nil
	}
	return fmt.Errorf("unknown --output %q (use table or json)", a.output)
}

func esc(s string) string { return apiclient.PathEscape(s) }
