package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/forge"
	"slipway.dev/slipway/internal/service"
)

// list is the API's list envelope.
type list[T any] struct {
	Items []T `json:"items"`
	Total int `json:"total"`
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.Format("2006-01-02")
}

func (a *app) orgCmd() *cobra.Command {
	c := &cobra.Command{Use: "org", Short: "Organisations"}
	c.AddCommand(&cobra.Command{Use: "list", Short: "List your organisations", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var out list[slipway.Organisation]
			return a.call(cmd, "GET", "/api/v1/orgs", nil, &out, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tNAME\tCREATED")
				for _, o := range out.Items {
					fmt.Fprintf(w, "%s\t%s\t%s\n", o.ID, o.Name, ago(o.CreatedAt))
				}
			})
		}})
	c.AddCommand(&cobra.Command{Use: "create NAME", Short: "Create an organisation", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out slipway.Organisation
			return a.call(cmd, "POST", "/api/v1/orgs", map[string]string{"name": args[0]}, &out, func(w io.Writer) {
				fmt.Fprintf(w, "Created organisation %s (%s)\n", out.Name, out.ID)
			})
		}})
	return c
}

func (a *app) tokenCmd() *cobra.Command {
	c := &cobra.Command{Use: "token", Short: "Your API tokens"}
	c.AddCommand(&cobra.Command{Use: "create NAME", Short: "Create an API token (shown once)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Token  slipway.APIToken `json:"token"`
				Secret string           `json:"secret"`
			}
			return a.call(cmd, "POST", "/api/v1/tokens", map[string]string{"name": args[0]}, &out, func(w io.Writer) {
				fmt.Fprintf(w, "Token %s created. Copy it now, it is not shown again:\n%s\n", out.Token.ID, out.Secret)
			})
		}})
	c.AddCommand(&cobra.Command{Use: "list", Short: "List your API tokens", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var out list[slipway.APIToken]
			return a.call(cmd, "GET", "/api/v1/tokens", nil, &out, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tNAME\tCREATED")
				for _, t := range out.Items {
					fmt.Fprintf(w, "%s\t%s\t%s\n", t.ID, t.Name, ago(t.CreatedAt))
				}
			})
		}})
	c.AddCommand(&cobra.Command{Use: "revoke ID", Short: "Revoke an API token", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, "DELETE", "/api/v1/tokens/"+esc(args[0]), nil, nil, func(w io.Writer) { fmt.Fprintln(w, "Revoked "+args[0]) })
		}})
	return c
}

func (a *app) memberCmd() *cobra.Command {
	c := &cobra.Command{Use: "member", Short: "Members of the organisation"}
	var name, password, passwordFile, role string
	add := &cobra.Command{Use: "add EMAIL", Short: "Add a member (creating the user), or invite an existing user", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// A password in argv is readable by every local user in the
			// process list.
			if password != "" {
				return errors.New("--password would show in the process list; give the new user's password in $SLIPWAY_MEMBER_PASSWORD or in a file with --password-file FILE")
			}
			password = a.env.Getenv("SLIPWAY_MEMBER_PASSWORD")
			if passwordFile != "" {
				b, err := os.ReadFile(passwordFile)
				if err != nil {
					return fmt.Errorf("--password-file: %w", err)
				}
				password = strings.TrimRight(string(b), "\r\n")
			}
			var out struct {
				Membership *slipway.Membership `json:"membership"`
				Invitation *slipway.Invitation `json:"invitation"`
			}
			in := map[string]string{"email": args[0], "name": name, "password": password, "role": role}
			return a.call(cmd, "POST", "/api/v1/members", in, &out, func(w io.Writer) {
				if out.Invitation != nil {
					fmt.Fprintf(w, "Invited %s (an existing user) with role %s; they join when they accept (slipway invitation list)\n", args[0], out.Invitation.RoleName)
					return
				}
				fmt.Fprintf(w, "Added %s with role %s\n", args[0], out.Membership.RoleID)
			})
		}}
	add.Flags().StringVar(&name, "name", "", "display name")
	add.Flags().StringVar(&password, "password", "", "refused: use $SLIPWAY_MEMBER_PASSWORD or --password-file")
	_ = add.Flags().MarkHidden("password")
	add.Flags().StringVar(&passwordFile, "password-file", "", "file holding a new user's initial password (at least 10 characters; or $SLIPWAY_MEMBER_PASSWORD)")
	add.Flags().StringVar(&role, "role", "Developer", "role name or id")
	c.AddCommand(add)
	c.AddCommand(&cobra.Command{Use: "list", Short: "List members", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var out list[slipway.Membership]
			return a.call(cmd, "GET", "/api/v1/members", nil, &out, func(w io.Writer) {
				fmt.Fprintln(w, "USER\tEMAIL\tROLE")
				for _, m := range out.Items {
					email := ""
					if m.User != nil {
						email = m.User.Email
					}
					fmt.Fprintf(w, "%s\t%s\t%s\n", m.UserID, email, m.RoleID)
				}
			})
		}})
	return c
}

func (a *app) installationCmd() *cobra.Command {
	c := &cobra.Command{Use: "installation", Short: "The installation's settings (installation administrators)"}
	c.AddCommand(&cobra.Command{Use: "show", Short: "Show the settings slipway serve runs with", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Settings []struct{ Name, Value string } `json:"settings"`
			}
			return a.call(cmd, "GET", "/api/v1/installation", nil, &out, func(w io.Writer) {
				fmt.Fprintln(w, "SETTING\tVALUE")
				for _, st := range out.Settings {
					fmt.Fprintf(w, "%s\t%s\n", st.Name, st.Value)
				}
			})
		}})
	return c
}

func (a *app) invitationCmd() *cobra.Command {
	c := &cobra.Command{Use: "invitation", Short: "Invitations to join organisations, waiting for your answer"}
	c.AddCommand(&cobra.Command{Use: "list", Short: "List your invitations", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var out list[slipway.Invitation]
			return a.call(cmd, "GET", "/api/v1/invitations", nil, &out, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tORGANISATION\tROLE\tINVITED")
				for _, i := range out.Items {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", i.ID, i.OrgName, i.RoleName, ago(i.CreatedAt))
				}
			})
		}})
	for _, answer := range []struct{ verb, short, done string }{
		{"accept", "Accept an invitation: you become a member", "Accepted"},
		{"decline", "Decline an invitation", "Declined"},
	} {
		c.AddCommand(&cobra.Command{Use: answer.verb + " ID", Short: answer.short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var out slipway.Invitation
				return a.call(cmd, "POST", "/api/v1/invitations/"+esc(args[0])+"/"+answer.verb, nil, &out, func(w io.Writer) {
					fmt.Fprintf(w, "%s the invitation to %s\n", answer.done, out.OrgName)
				})
			}})
	}
	return c
}

func statusBadge(st slipway.IntegrationStatus, reason string) string {
	switch st {
	case slipway.IntegrationConnected:
		return "Connected"
	case slipway.IntegrationNeedsAttention:
		return "Needs attention: " + reason
	case slipway.IntegrationDisconnected:
		return "Disconnected"
	}
	return string(st)
}

func (a *app) integrationCmd() *cobra.Command {
	c := &cobra.Command{Use: "integration", Aliases: []string{"integrations"}, Short: "Connections to Git providers"}
	c.AddCommand(&cobra.Command{Use: "list", Short: "List integrations", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var out list[slipway.Integration]
			return a.call(cmd, "GET", "/api/v1/integrations", nil, &out, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tPROVIDER\tLABEL\tACCOUNT\tSTATUS")
				for _, i := range out.Items {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", i.ID, i.Provider, i.Label, i.AccountName, statusBadge(i.Status, i.StatusReason))
				}
			})
		}})
	c.AddCommand(a.connectCmd())
	c.AddCommand(&cobra.Command{Use: "check ID", Short: "Diagnose an integration, with a fix for every problem", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Integration slipway.Integration `json:"integration"`
				Account     string              `json:"account"`
				Scopes      []string            `json:"scopes"`
				Problems    []forge.Problem     `json:"problems"`
			}
			err := a.call(cmd, "POST", "/api/v1/integrations/"+esc(args[0])+"/check", nil, &out, func(w io.Writer) {
				fmt.Fprintf(w, "%s (%s): %s\n", out.Integration.Label, out.Integration.Provider, statusBadge(out.Integration.Status, out.Integration.StatusReason))
				if out.Account != "" {
					fmt.Fprintf(w, "account: %s\n", out.Account)
				}
				if len(out.Scopes) > 0 {
					fmt.Fprintf(w, "scopes: %s\n", strings.Join(out.Scopes, ", "))
				}
				if len(out.Problems) == 0 {
					fmt.Fprintln(w, "no problems found")
				}
				for _, p := range out.Problems {
					fmt.Fprintf(w, "problem [%s]: %s\n  fix: %s\n", p.Code, p.Message, p.Fix)
				}
			})
			if err == nil && len(out.Problems) > 0 && a.output != "json" {
				return fmt.Errorf("%d problem(s) found", len(out.Problems))
			}
			return err
		}})
	var search string
	repos := &cobra.Command{Use: "repos ID", Short: "Repositories the integration can see (the picker)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out list[forge.Repo]
			q := "?limit=200&search=" + url.QueryEscape(search)
			return a.call(cmd, "GET", "/api/v1/integrations/"+esc(args[0])+"/repos"+q, nil, &out, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tREPOSITORY\tDEFAULT BRANCH\tPRIVATE")
				for _, r := range out.Items {
					fmt.Fprintf(w, "%s\t%s\t%s\t%v\n", r.ID, r.FullName, r.DefaultBranch, r.Private)
				}
				if len(out.Items) == 0 {
					fmt.Fprintln(w, "(no repositories: grant the integration access to the repositories you want to deploy)")
				}
			})
		}}
	repos.Flags().StringVar(&search, "search", "", "filter by name")
	c.AddCommand(repos)
	c.AddCommand(&cobra.Command{Use: "refs ID REPO", Short: "Branches and tags of a repository", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out list[forge.Ref]
			return a.call(cmd, "GET", "/api/v1/integrations/"+esc(args[0])+"/refs?repo="+url.QueryEscape(args[1]), nil, &out, func(w io.Writer) {
				fmt.Fprintln(w, "KIND\tNAME\tSHA")
				for _, r := range out.Items {
					fmt.Fprintf(w, "%s\t%s\t%s\n", r.Kind, r.Name, r.SHA)
				}
			})
		}})
	var replay string
	deliveries := &cobra.Command{Use: "deliveries ID", Short: "The webhook delivery log (--replay DELIVERY to process one again)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			type delivery struct {
				ID         string    `json:"id"`
				Event      string    `json:"event"`
				Verdict    string    `json:"verdict"`
				Detail     string    `json:"detail"`
				Caused     []string  `json:"caused"`
				ReceivedAt time.Time `json:"received_at"`
			}
			if replay != "" {
				var out delivery
				return a.call(cmd, "POST", "/api/v1/integrations/"+esc(args[0])+"/deliveries/"+esc(replay)+"/replay", nil, &out, func(w io.Writer) {
					fmt.Fprintf(w, "Replayed %s: %s — %s\n", out.ID, out.Verdict, out.Detail)
				})
			}
			var out list[delivery]
			return a.call(cmd, "GET", "/api/v1/integrations/"+esc(args[0])+"/deliveries", nil, &out, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tRECEIVED\tEVENT\tVERDICT\tDETAIL")
				for _, d := range out.Items {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", d.ID, ago(d.ReceivedAt), d.Event, d.Verdict, d.Detail)
				}
			})
		}}
	deliveries.Flags().StringVar(&replay, "replay", "", "process this stored delivery again")
	c.AddCommand(deliveries)
	c.AddCommand(&cobra.Command{Use: "hooks ID", Short: "Repository webhooks and their health", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out list[struct {
				ID             string     `json:"id"`
				RepoID         string     `json:"repo_id"`
				Status         string     `json:"status"`
				LastDeliveryAt *time.Time `json:"last_delivery_at"`
				LastError      string     `json:"last_error"`
			}]
			return a.call(cmd, "GET", "/api/v1/integrations/"+esc(args[0])+"/hooks", nil, &out, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tREPO\tSTATUS\tLAST DELIVERY\tLAST ERROR")
				for _, h := range out.Items {
					last := "-"
					if h.LastDeliveryAt != nil {
						last = ago(*h.LastDeliveryAt)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", h.ID, h.RepoID, h.Status, last, h.LastError)
				}
			})
		}})
	c.AddCommand(&cobra.Command{Use: "disconnect ID", Short: "Disconnect (removes webhooks, forgets credentials)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out slipway.Integration
			return a.call(cmd, "DELETE", "/api/v1/integrations/"+esc(args[0]), nil, &out, func(w io.Writer) {
				fmt.Fprintf(w, "Disconnected %s\n", out.ID)
			})
		}})
	return c
}

func (a *app) connectCmd() *cobra.Command {
	var in struct {
		token, baseURL, internalURL, label, username, repoURL, clientID, clientSecret string
		appID, privateKeyFile, webhookSecret, installationID, org                     string
		oauth, ssh, createApp                                                         bool
	}
	c := &cobra.Command{
		Use:   "connect PROVIDER",
		Short: "Connect github, gitlab, bitbucket, azuredevops, gitea or git",
		Long: `Connect a Git provider.

  gitea/gitlab/bitbucket/azuredevops with a token:  --token T [--base-url URL] [--username EMAIL]
  through the provider's consent screen:            --oauth --client-id ID --client-secret S [--base-url URL]
  GitHub App you already have:                      github --app-id N --private-key FILE --webhook-secret S
  generic Git:                                      git --url URL [--username U --token T | --ssh]`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			provider := args[0]
			if in.oauth {
				var out struct {
					Integration slipway.Integration `json:"integration"`
					OpenURL     string              `json:"open_url"`
				}
				body := map[string]string{"provider": provider, "label": in.label, "base_url": in.baseURL, "internal_url": in.internalURL,
					"client_id": in.clientID, "client_secret": in.clientSecret}
				return a.call(cmd, "POST", "/api/v1/integrations/oauth", body, &out, func(w io.Writer) {
					fmt.Fprintf(w, "Integration %s is waiting for the provider's consent.\nOpen this URL in a browser, sign in to Slipway as yourself, approve access on %s and confirm:\n%s\n",
						out.Integration.ID, provider, out.OpenURL)
				})
			}
			if in.createApp {
				var out struct {
					Integration slipway.Integration `json:"integration"`
					FormURL     string              `json:"form_url"`
				}
				body := map[string]string{"org": in.org, "base_url": in.baseURL, "label": in.label}
				return a.call(cmd, "POST", "/api/v1/integrations/github/manifest", body, &out, func(w io.Writer) {
					fmt.Fprintf(w, "Integration %s is waiting for its GitHub App.\nOpen this URL in a browser, sign in to Slipway as yourself, create the App on GitHub, then install it on the repositories to deploy:\n%s\n", out.Integration.ID, out.FormURL)
				})
			}
			body := map[string]any{"provider": provider, "label": in.label, "base_url": in.baseURL, "internal_url": in.internalURL,
				"token": in.token, "username": in.username, "url": in.repoURL, "ssh": in.ssh,
				"app_id": in.appID, "webhook_secret": in.webhookSecret, "installation_id": in.installationID}
			if in.privateKeyFile != "" {
				key, err := os.ReadFile(in.privateKeyFile)
				if err != nil {
					return fmt.Errorf("read private key: %w", err)
				}
				body["private_key"] = string(key)
			}
			var out slipway.Integration
			return a.call(cmd, "POST", "/api/v1/integrations", body, &out, func(w io.Writer) {
				fmt.Fprintf(w, "%s %s (%s): %s\n", out.ID, out.Label, out.AccountName, statusBadge(out.Status, out.StatusReason))
				if k := out.Settings["deploy_key"]; k != "" {
					fmt.Fprintf(w, "Add this read-only deploy key to the repository:\n%s\n", k)
				}
			})
		},
	}
	f := c.Flags()
	f.StringVar(&in.token, "token", "", "access token")
	f.StringVar(&in.baseURL, "base-url", "", "the provider's URL (self-hosted instances)")
	f.StringVar(&in.internalURL, "internal-url", "", "URL for server-to-server calls, when it differs")
	f.StringVar(&in.label, "label", "", "a name for this connection")
	f.StringVar(&in.username, "username", "", "user or e-mail for basic-auth tokens")
	f.StringVar(&in.repoURL, "url", "", "generic Git: the repository URL")
	f.BoolVar(&in.ssh, "ssh", false, "generic Git: generate an SSH deploy key")
	f.BoolVar(&in.oauth, "oauth", false, "connect through the provider's OAuth consent screen")
	f.StringVar(&in.clientID, "client-id", "", "OAuth application client id")
	f.StringVar(&in.clientSecret, "client-secret", "", "OAuth application client secret")
	f.BoolVar(&in.createApp, "create-app", false, "GitHub: create a GitHub App from a manifest")
	f.StringVar(&in.org, "org", "", "GitHub: organisation to create the App in")
	f.StringVar(&in.appID, "app-id", "", "GitHub App id")
	f.StringVar(&in.privateKeyFile, "private-key", "", "GitHub App private key file (PEM)")
	f.StringVar(&in.webhookSecret, "webhook-secret", "", "GitHub App webhook secret")
	f.StringVar(&in.installationID, "installation-id", "", "GitHub App installation id")
	return c
}

func (a *app) appCmd() *cobra.Command {
	c := &cobra.Command{Use: "app", Short: "Applications"}
	var desc string
	create := &cobra.Command{Use: "create NAME", Short: "Create an application with a production environment", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out slipway.Application
			return a.call(cmd, "POST", "/api/v1/applications", map[string]string{"name": args[0], "description": desc}, &out, func(w io.Writer) {
				fmt.Fprintf(w, "Created application %s (%s), status %s\n", out.Name, out.ID, out.Status)
			})
		}}
	create.Flags().StringVar(&desc, "description", "", "description")
	c.AddCommand(create)
	var status string
	lst := &cobra.Command{Use: "list", Short: "List applications", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var out list[slipway.Application]
			return a.call(cmd, "GET", "/api/v1/applications?limit=200&status="+url.QueryEscape(status), nil, &out, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tNAME\tSTATUS\tCREATED")
				for _, x := range out.Items {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", x.ID, x.Name, x.Status, ago(x.CreatedAt))
				}
			})
		}}
	lst.Flags().StringVar(&status, "status", "", "draft, active or archived")
	c.AddCommand(lst)
	for _, verb := range []string{"archive", "restore"} {
		c.AddCommand(&cobra.Command{Use: verb + " APP", Short: strings.ToUpper(verb[:1]) + verb[1:] + " an application", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var out slipway.Application
				return a.call(cmd, "POST", "/api/v1/applications/"+esc(args[0])+"/"+verb, nil, &out, func(w io.Writer) {
					fmt.Fprintf(w, "%s is now %s\n", out.Name, out.Status)
				})
			}})
	}
	c.AddCommand(&cobra.Command{Use: "show APP", Short: "Show an application", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out slipway.Application
			return a.call(cmd, "GET", "/api/v1/applications/"+esc(args[0]), nil, &out, func(w io.Writer) {
				fmt.Fprintf(w, "id:\t%s\nname:\t%s\nstatus:\t%s\ndefault environment:\t%s\n", out.ID, out.Name, out.Status, out.DefaultEnvironmentID)
				if out.MigratedFromProject != "" {
					fmt.Fprintf(w, "migrated from project:\t%s\n", out.MigratedFromProject)
				}
			})
		}})
	return c
}

func (a *app) envCmd() *cobra.Command {
	c := &cobra.Command{Use: "env", Short: "Environments of an application"}
	c.AddCommand(&cobra.Command{Use: "create APP NAME", Short: "Create an environment", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out slipway.Environment
			return a.call(cmd, "POST", "/api/v1/applications/"+esc(args[0])+"/environments", map[string]string{"name": args[1]}, &out, func(w io.Writer) {
				fmt.Fprintf(w, "Created environment %s (%s), status %s\n", out.Name, out.ID, out.Status)
			})
		}})
	c.AddCommand(&cobra.Command{Use: "list APP", Short: "List environments", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out list[slipway.Environment]
			return a.call(cmd, "GET", "/api/v1/applications/"+esc(args[0])+"/environments", nil, &out, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tNAME\tSTATUS\tDEFAULT")
				for _, e := range out.Items {
					fmt.Fprintf(w, "%s\t%s\t%s\t%v\n", e.ID, e.Name, e.Status, e.IsDefault)
				}
			})
		}})
	for verb, path := range map[string]string{"activate": "activate", "set-default": "default"} {
		c.AddCommand(&cobra.Command{Use: verb + " APP/ENV", Short: verb + " an environment", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var out slipway.Environment
				return a.call(cmd, "POST", "/api/v1/environments/"+esc(args[0])+"/"+path, nil, &out, func(w io.Writer) {
					fmt.Fprintf(w, "%s: status %s, default %v\n", out.Name, out.Status, out.IsDefault)
				})
			}})
	}
	return c
}

// serviceFlags are the flags shared by service create and set.
type serviceFlags struct {
	integration, repo, branch, tag, tagPattern, rootDir, typ, image string
	installCmd, buildCmd, startCmd, healthPath, dockerfile          string
	watch, domains                                                  []string
	autoDeploy                                                      bool
	maxBodyMB                                                       int
	hsts                                                            bool
}

func (f *serviceFlags) register(c *cobra.Command) {
	fs := c.Flags()
	fs.StringVar(&f.integration, "integration", "", "integration id")
	fs.StringVar(&f.repo, "repo", "", "repository (owner/name or provider id)")
	fs.StringVar(&f.branch, "branch", "", "branch to deploy")
	fs.StringVar(&f.tag, "tag", "", "tag to deploy")
	fs.StringVar(&f.tagPattern, "tag-pattern", "", "deploy tags matching this glob (e.g. v*)")
	fs.StringVar(&f.rootDir, "root-dir", "", "directory inside the repository to build")
	fs.StringArrayVar(&f.watch, "watch", nil, "only deploy pushes that change files matching this glob (repeatable)")
	fs.BoolVar(&f.autoDeploy, "auto-deploy", false, "deploy every push automatically")
	fs.StringVar(&f.typ, "type", "app", "app (builds from Git) or docker (runs an image)")
	fs.StringVar(&f.image, "image", "", "docker: the image to run")
	fs.StringVar(&f.installCmd, "install-cmd", "", "install command (default: detected)")
	fs.StringVar(&f.buildCmd, "build-cmd", "", "build command (default: detected)")
	fs.StringVar(&f.startCmd, "start-cmd", "", "start command (default: detected)")
	fs.StringVar(&f.healthPath, "health-path", "", "HTTP path that answers 2xx when healthy")
	fs.StringVar(&f.dockerfile, "dockerfile", "", "Dockerfile path (docker and swarm runtimes)")
	fs.StringArrayVar(&f.domains, "domain", nil, "custom domain (repeatable)")
	fs.IntVar(&f.maxBodyMB, "max-body-mb", slipway.DefaultMaxBodyMB, "largest request body the router lets through, in MiB (1-10240; larger gets 413)")
	fs.BoolVar(&f.hsts, "hsts", false, "send Strict-Transport-Security on HTTPS responses")
}

func (f *serviceFlags) body(c *cobra.Command, name string) map[string]any {
	body := map[string]any{}
	if name != "" {
		body["name"] = name
	}
	if c.Flags().Changed("type") || name != "" {
		body["type"] = f.typ
	}
	changed := func(names ...string) bool {
		for _, n := range names {
			if c.Flags().Changed(n) {
				return true
			}
		}
		return false
	}
	if changed("integration", "repo", "branch", "tag", "tag-pattern", "root-dir", "watch", "auto-deploy") {
		body["source"] = slipway.ServiceSource{IntegrationID: f.integration, RepoID: f.repo, Branch: f.branch, Tag: f.tag, TagPattern: f.tagPattern,
			RootDir: f.rootDir, WatchPaths: f.watch, AutoDeploy: f.autoDeploy}
	}
	if changed("install-cmd", "build-cmd", "start-cmd", "health-path", "dockerfile") {
		body["build"] = slipway.BuildSettings{InstallCommand: f.installCmd, BuildCommand: f.buildCmd, StartCommand: f.startCmd, HealthPath: f.healthPath, Dockerfile: f.dockerfile}
	}
	if changed("image") {
		body["image"] = f.image
	}
	if changed("domain") {
		body["domains"] = f.domains
	}
	if changed("max-body-mb") {
		body["max_body_mb"] = f.maxBodyMB
	}
	if changed("hsts") {
		body["hsts"] = f.hsts
	}
	return body
}

func printService(w io.Writer, s slipway.Service) {
	fmt.Fprintf(w, "id:\t%s\nname:\t%s\ntype:\t%s\n", s.ID, s.Name, s.Type)
	if s.Type == slipway.ServiceApp {
		ref := s.Source.Branch
		if ref == "" {
			ref = "tag " + s.Source.Tag + s.Source.TagPattern
		} else {
			ref = "branch " + ref
		}
		fmt.Fprintf(w, "repository:\t%s (%s)\nfollows:\t%s\nauto-deploy:\t%v", s.Source.RepoName, s.Source.RepoID, ref, s.Source.AutoDeploy)
		if s.AutoDeployPaused {
			fmt.Fprint(w, " (paused after a rollback: slipway service resume "+s.ID+")")
		}
		fmt.Fprintln(w)
		if s.Source.RootDir != "" {
			fmt.Fprintf(w, "root dir:\t%s\n", s.Source.RootDir)
		}
		if len(s.Source.WatchPaths) > 0 {
			fmt.Fprintf(w, "watch:\t%s\n", strings.Join(s.Source.WatchPaths, ", "))
		}
	} else {
		fmt.Fprintf(w, "image:\t%s\n", s.Image)
	}
	fmt.Fprintf(w, "max body:\t%d MiB\nhsts:\t%v\n", s.EffectiveMaxBodyMB(), s.HSTS)
	if s.LiveDeploymentID != "" {
		fmt.Fprintf(w, "live deployment:\t%s\n", s.LiveDeploymentID)
	}
	for i, h := range s.Hosts {
		label := ""
		if i == 0 {
			label = "hosts:"
		}
		fmt.Fprintf(w, "%s\t%s (%s, %s)\n", label, h.Host, h.Kind, h.State)
	}
}

func (a *app) serviceCmd() *cobra.Command {
	c := &cobra.Command{Use: "service", Aliases: []string{"services", "svc"}, Short: "Services"}
	var cf serviceFlags
	create := &cobra.Command{Use: "create APP/ENV/NAME", Short: "Create a service linked to a repository and a branch or tag", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i := strings.LastIndex(args[0], "/")
			if i <= 0 || strings.Count(args[0], "/") != 2 {
				return errors.New("name the service as APP/ENV/NAME, e.g. shop/production/web")
			}
			var out slipway.Service
			return a.call(cmd, "POST", "/api/v1/environments/"+esc(args[0][:i])+"/services", cf.body(cmd, args[0][i+1:]), &out, func(w io.Writer) {
				fmt.Fprintf(w, "Created service %s (%s)\n", args[0], out.ID)
				printService(w, out)
			})
		}}
	cf.register(create)
	c.AddCommand(create)
	var sf serviceFlags
	set := &cobra.Command{Use: "set SERVICE", Short: "Change a service's source or build settings", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var cur slipway.Service
			cl, err := a.client()
			if err != nil {
				return err
			}
			if err := cl.Do(cmd.Context(), "GET", "/api/v1/services/"+esc(args[0]), nil, &cur); err != nil {
				return err
			}
			// Unchanged source fields keep their current values.
			def := func(flag string, dst *string, cur string) {
				if !cmd.Flags().Changed(flag) {
					*dst = cur
				}
			}
			def("integration", &sf.integration, cur.Source.IntegrationID)
			def("repo", &sf.repo, cur.Source.RepoID)
			def("root-dir", &sf.rootDir, cur.Source.RootDir)
			if !cmd.Flags().Changed("branch") && !cmd.Flags().Changed("tag") && !cmd.Flags().Changed("tag-pattern") {
				sf.branch, sf.tag, sf.tagPattern = cur.Source.Branch, cur.Source.Tag, cur.Source.TagPattern
			}
			if !cmd.Flags().Changed("watch") {
				sf.watch = cur.Source.WatchPaths
			}
			if !cmd.Flags().Changed("auto-deploy") {
				sf.autoDeploy = cur.Source.AutoDeploy
			}
			var out slipway.Service
			return a.call(cmd, "PATCH", "/api/v1/services/"+esc(args[0]), sf.body(cmd, ""), &out, func(w io.Writer) { printService(w, out) })
		}}
	sf.register(set)
	c.AddCommand(set)
	c.AddCommand(&cobra.Command{Use: "show SERVICE", Short: "Show a service", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out slipway.Service
			return a.call(cmd, "GET", "/api/v1/services/"+esc(args[0]), nil, &out, func(w io.Writer) { printService(w, out) })
		}})
	c.AddCommand(&cobra.Command{Use: "list [APP/ENV]", Short: "List services", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/api/v1/services?limit=200"
			if len(args) == 1 {
				path = "/api/v1/environments/" + esc(args[0]) + "/services?limit=200"
			}
			var out list[slipway.Service]
			return a.call(cmd, "GET", path, nil, &out, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tNAME\tTYPE\tREPOSITORY\tREF\tAUTO-DEPLOY")
				for _, s := range out.Items {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%v\n", s.ID, s.Name, s.Type, s.Source.RepoName, s.Source.Branch+s.Source.Tag+s.Source.TagPattern, s.Source.AutoDeploy)
				}
			})
		}})
	c.AddCommand(&cobra.Command{Use: "delete SERVICE", Short: "Delete a service", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, "DELETE", "/api/v1/services/"+esc(args[0]), nil, nil, func(w io.Writer) { fmt.Fprintln(w, "Deleted "+args[0]) })
		}})
	for _, verb := range []string{"restart", "stop"} {
		c.AddCommand(&cobra.Command{Use: verb + " SERVICE", Short: map[string]string{"restart": "Restart the live release (no build)", "stop": "Stop the live release"}[verb], Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var out slipway.Service
				return a.call(cmd, "POST", "/api/v1/services/"+esc(args[0])+"/"+verb, nil, &out, func(w io.Writer) {
					fmt.Fprintf(w, "%s of %s queued\n", verb, args[0])
				})
			}})
	}
	c.AddCommand(&cobra.Command{Use: "resume SERVICE", Short: "Resume auto-deploy after a rollback", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out slipway.Service
			return a.call(cmd, "POST", "/api/v1/services/"+esc(args[0])+"/resume-auto-deploy", nil, &out, func(w io.Writer) { printService(w, out) })
		}})
	c.AddCommand(&cobra.Command{Use: "deploy-hook SERVICE", Short: "Issue a new deploy-hook URL (the old one stops working)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				URL string `json:"url"`
			}
			return a.call(cmd, "POST", "/api/v1/services/"+esc(args[0])+"/deploy-hook", nil, &out, func(w io.Writer) {
				fmt.Fprintf(w, "POST to this URL to deploy the current head (keep it secret):\n%s\n", out.URL)
			})
		}})
	c.AddCommand(a.varCmd())
	c.AddCommand(a.domainCmd())
	return c
}

func (a *app) domainCmd() *cobra.Command {
	c := &cobra.Command{Use: "domain", Aliases: []string{"domains"}, Short: "Custom domains (pending until their DNS record proves ownership)"}
	printDomain := func(w io.Writer, d service.DomainView) {
		fmt.Fprintf(w, "%s\t%s\n", d.Domain, d.State)
		if d.Record != nil {
			fmt.Fprintf(w, "\tcreate the DNS record: %s %s %q\n", d.Record.Name, d.Record.Type, d.Record.Value)
		}
		if d.HTTP != nil {
			fmt.Fprintf(w, "\tor, once the domain points here: %s must answer %q (Slipway serves it)\n", d.HTTP.URL, d.HTTP.Body)
		}
		if d.PointAt != nil {
			fmt.Fprintf(w, "\tpoint it at Slipway: %s %s %s\n", d.Domain, d.PointAt.Type, d.PointAt.Value)
		}
		if d.LastError != "" {
			fmt.Fprintf(w, "\tlast check: %s\n", d.LastError)
		}
		if c := d.Certificate; c != nil {
			expiry := ""
			if c.ExpiresInDays != nil {
				expiry = fmt.Sprintf(", expires in %d days", *c.ExpiresInDays)
			}
			fmt.Fprintf(w, "\tcertificate: %s%s\n", c.State, expiry)
			if c.Warning != "" {
				fmt.Fprintf(w, "\t\t%s\n", c.Warning)
			}
		}
	}
	c.AddCommand(&cobra.Command{Use: "add SERVICE DOMAIN", Short: "Add a custom domain; it is routed once verified", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out service.DomainView
			return a.call(cmd, "POST", "/api/v1/services/"+esc(args[0])+"/domains", map[string]string{"domain": args[1]}, &out, func(w io.Writer) {
				printDomain(w, out)
				fmt.Fprintf(w, "then: slipway service domain verify %s %s\n", args[0], out.Domain)
			})
		}})
	c.AddCommand(&cobra.Command{Use: "list SERVICE", Short: "List a service's custom domains and what each waits for", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out list[service.DomainView]
			return a.call(cmd, "GET", "/api/v1/services/"+esc(args[0])+"/domains", nil, &out, func(w io.Writer) {
				for _, d := range out.Items {
					printDomain(w, d)
				}
			})
		}})
	c.AddCommand(&cobra.Command{Use: "verify SERVICE DOMAIN", Short: "Check a pending domain's TXT record (or HTTP proof) now", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out service.DomainView
			return a.call(cmd, "POST", "/api/v1/services/"+esc(args[0])+"/domains/"+esc(args[1])+"/verify", nil, &out, func(w io.Writer) { printDomain(w, out) })
		}})
	c.AddCommand(&cobra.Command{Use: "remove SERVICE DOMAIN", Short: "Remove a custom domain (it stops answering at once)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, "DELETE", "/api/v1/services/"+esc(args[0])+"/domains/"+esc(args[1]), nil, nil, func(w io.Writer) {
				fmt.Fprintf(w, "removed %s from %s\n", args[1], args[0])
			})
		}})
	return c
}

func (a *app) varCmd() *cobra.Command {
	c := &cobra.Command{Use: "var", Short: "Service variables"}
	var secret bool
	set := &cobra.Command{Use: "set SERVICE KEY=VALUE", Short: "Set a variable ({{ secret(64) }} generates one)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, v, ok := strings.Cut(args[1], "=")
			if !ok {
				return errors.New("give the variable as KEY=VALUE")
			}
			var out struct {
				Key    string `json:"key"`
				Value  string `json:"value"`
				Secret bool   `json:"secret"`
			}
			return a.call(cmd, "PUT", "/api/v1/services/"+esc(args[0])+"/variables/"+esc(k), map[string]any{"key": k, "value": v, "secret": secret}, &out, func(w io.Writer) {
				fmt.Fprintf(w, "%s=%s\n", out.Key, out.Value)
			})
		}}
	set.Flags().BoolVar(&secret, "secret", false, "encrypt the value and mask it everywhere")
	c.AddCommand(set)
	c.AddCommand(&cobra.Command{Use: "list SERVICE", Short: "List variables (secret values masked)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out list[struct {
				Key    string `json:"key"`
				Value  string `json:"value"`
				Secret bool   `json:"secret"`
			}]
			return a.call(cmd, "GET", "/api/v1/services/"+esc(args[0])+"/variables", nil, &out, func(w io.Writer) {
				for _, v := range out.Items {
					fmt.Fprintf(w, "%s=%s\n", v.Key, v.Value)
				}
			})
		}})
	c.AddCommand(&cobra.Command{Use: "unset SERVICE KEY", Short: "Remove a variable", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, "DELETE", "/api/v1/services/"+esc(args[0])+"/variables/"+esc(args[1]), nil, nil, func(w io.Writer) { fmt.Fprintln(w, "Removed "+args[1]) })
		}})
	return c
}

func printDeployment(w io.Writer, d slipway.Deployment) {
	fmt.Fprintf(w, "Deployment %s of %s: %s (trigger %s)\n", d.ID, slipway.ShortSHA(d.CommitSHA), d.Status, d.Trigger)
}

func (a *app) deployCmd() *cobra.Command {
	var ref, sha string
	var noCache, wait bool
	c := &cobra.Command{Use: "deploy SERVICE", Short: "Deploy a service's branch/tag head (or --ref / --sha)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out slipway.Deployment
			err := a.call(cmd, "POST", "/api/v1/services/"+esc(args[0])+"/deploy", map[string]any{"ref": ref, "sha": sha, "no_cache": noCache}, &out, func(w io.Writer) { printDeployment(w, out) })
			if err != nil || !wait {
				return err
			}
			return a.follow(cmd, out.ID, a.output != "json")
		}}
	c.Flags().StringVar(&ref, "ref", "", "branch or tag to deploy")
	c.Flags().StringVar(&sha, "sha", "", "exact commit to deploy")
	c.Flags().BoolVar(&noCache, "no-cache", false, "build from scratch")
	c.Flags().BoolVar(&wait, "wait", false, "follow the log until the deployment settles; fail if it fails")
	return c
}

func (a *app) redeployCmd() *cobra.Command {
	var noCache, wait bool
	c := &cobra.Command{Use: "redeploy SERVICE", Short: "Deploy the live commit again", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out slipway.Deployment
			err := a.call(cmd, "POST", "/api/v1/services/"+esc(args[0])+"/redeploy", map[string]any{"no_cache": noCache}, &out, func(w io.Writer) { printDeployment(w, out) })
			if err != nil || !wait {
				return err
			}
			return a.follow(cmd, out.ID, a.output != "json")
		}}
	c.Flags().BoolVar(&noCache, "no-cache", false, "build from scratch")
	c.Flags().BoolVar(&wait, "wait", false, "follow the log until the deployment settles")
	return c
}

func (a *app) rollbackCmd() *cobra.Command {
	var to string
	var wait bool
	c := &cobra.Command{Use: "rollback SERVICE", Short: "Bring back a previous release (pauses auto-deploy)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out slipway.Deployment
			err := a.call(cmd, "POST", "/api/v1/services/"+esc(args[0])+"/rollback", map[string]any{"to": to}, &out, func(w io.Writer) {
				printDeployment(w, out)
				fmt.Fprintln(w, "Auto-deploy is paused until `slipway service resume "+args[0]+"`.")
			})
			if err != nil || !wait {
				return err
			}
			return a.follow(cmd, out.ID, a.output != "json")
		}}
	c.Flags().StringVar(&to, "to", "", "deployment to roll back to (default: the previous release)")
	c.Flags().BoolVar(&wait, "wait", false, "follow the log until the deployment settles")
	return c
}

func (a *app) deploymentsCmd() *cobra.Command {
	return &cobra.Command{Use: "deployments SERVICE", Short: "A service's deployments, newest first", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out list[slipway.Deployment]
			return a.call(cmd, "GET", "/api/v1/services/"+esc(args[0])+"/deployments", nil, &out, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tSTATUS\tSHA\tTRIGGER\tBY\tCREATED\tMESSAGE")
				for _, d := range out.Items {
					msg, _, _ := strings.Cut(d.CommitMessage, "\n")
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Status, slipway.ShortSHA(d.CommitSHA), d.Trigger, d.TriggeredBy, ago(d.CreatedAt), msg)
				}
			})
		}}
}

func (a *app) cancelCmd() *cobra.Command {
	return &cobra.Command{Use: "cancel DEPLOYMENT", Short: "Cancel a queued or running deployment", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out slipway.Deployment
			return a.call(cmd, "POST", "/api/v1/deployments/"+esc(args[0])+"/cancel", nil, &out, func(w io.Writer) { printDeployment(w, out) })
		}}
}

func (a *app) logsCmd() *cobra.Command {
	var follow bool
	c := &cobra.Command{Use: "logs DEPLOYMENT", Short: "A deployment's log (--follow to stream it live)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if follow {
				return a.follow(cmd, args[0], true)
			}
			var out list[struct {
				Seq  int64  `json:"Seq"`
				Text string `json:"Text"`
			}]
			return a.call(cmd, "GET", "/api/v1/deployments/"+esc(args[0])+"/logs", nil, &out, func(w io.Writer) {
				for _, l := range out.Items {
					fmt.Fprintln(w, l.Text)
				}
			})
		}}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "stream until the deployment settles")
	return c
}

// follow streams a deployment's log and returns an error when it fails.
func (a *app) follow(cmd *cobra.Command, id string, print bool) error {
	cl, err := a.client()
	if err != nil {
		return err
	}
	final := ""
	err = cl.Stream(cmd.Context(), "/api/v1/deployments/"+esc(id)+"/logs", func(event, data string) bool {
		switch event {
		case "log":
			var l struct {
				Text string `json:"Text"`
			}
			if json.Unmarshal([]byte(data), &l) == nil && print {
				fmt.Fprintln(a.env.Stdout, l.Text)
			}
		case "end":
			var e struct {
				Status string `json:"status"`
			}
			_ = json.Unmarshal([]byte(data), &e)
			final = e.Status
			return false
		}
		return true
	})
	if err != nil {
		return err
	}
	if final != string(slipway.DeployLive) {
		return fmt.Errorf("deployment %s ended %s: see `slipway logs %s`", id, final, id)
	}
	if print {
		fmt.Fprintf(a.env.Stdout, "deployment %s is live\n", id)
	}
	return nil
}

func (a *app) doctorCmd() *cobra.Command {
	return &cobra.Command{Use: "doctor", Short: "Check the server and every integration", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			me, err := whoAmI(cmd.Context(), cl)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.env.Stdout, "server %s: reachable, signed in as %s in %s\n", cl.BaseURL, me.UserID, me.OrgID)
			var ints list[slipway.Integration]
			if err := cl.Do(cmd.Context(), "GET", "/api/v1/integrations", nil, &ints); err != nil {
				return err
			}
			problems := 0
			for _, in := range ints.Items {
				var d struct {
					Problems []forge.Problem `json:"problems"`
				}
				if err := cl.Do(cmd.Context(), "POST", "/api/v1/integrations/"+esc(in.ID)+"/check", nil, &d); err != nil {
					return err
				}
				if len(d.Problems) == 0 {
					fmt.Fprintf(a.env.Stdout, "integration %s (%s): ok\n", in.Label, in.ID)
				}
				for _, p := range d.Problems {
					problems++
					fmt.Fprintf(a.env.Stdout, "integration %s (%s): %s\n  fix: %s\n", in.Label, in.ID, p.Message, p.Fix)
				}
			}
			var certificates list[service.CertificateView]
			if err := cl.Do(cmd.Context(), "GET", "/api/v1/certificates", nil, &certificates); err != nil {
				return err
			}
			for _, c := range certificates.Items {
				if c.Warning == "" {
					continue
				}
				problems++
				fmt.Fprintf(a.env.Stdout, "certificate %s (%s): %s\n", c.Host, c.State, c.Warning)
			}
			if problems > 0 {
				return fmt.Errorf("%d problem(s) found", problems)
			}
			return nil
		}}
}
