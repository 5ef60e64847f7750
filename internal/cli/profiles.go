package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/apiclient"
)

// profile is one remembered login: a server and a token that acts in one
// organisation. A user of several organisations keeps one profile each.
type profile struct {
	Server  string `json:"server"`
	Token   string `json:"token"`
	OrgID   string `json:"org_id,omitempty"`
	OrgName string `json:"org_name,omitempty"`
}

// config is what `slipway login` remembers. Files written before
// profiles existed hold one login at the top level; they read as the
// profile "default".
type config struct {
	Current  string             `json:"current,omitempty"`
	Profiles map[string]profile `json:"profiles,omitempty"`
	Server   string             `json:"server,omitempty"`
	Token    string             `json:"token,omitempty"`
}

const defaultProfile = "default"

func (a *app) configPath() string {
	if p := a.env.Getenv("SLIPWAY_CONFIG"); p != "" {
		return p
	}
	dir := a.env.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		dir = filepath.Join(a.env.Getenv("HOME"), ".config")
	}
	return filepath.Join(dir, "slipway", "config.json")
}

// loadConfig reads the saved logins; a missing file is an empty config.
func (a *app) loadConfig() (config, error) {
	var c config
	b, err := os.ReadFile(a.configPath())
	if errors.Is(err, os.ErrNotExist) {
		return config{Profiles: map[string]profile{}}, nil
	}
	if err != nil {
		return c, fmt.Errorf("read saved logins: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("read saved logins %s: %w", a.configPath(), err)
	}
	if c.Profiles == nil {
		c.Profiles = map[string]profile{}
	}
	if c.Server != "" || c.Token != "" {
		if _, ok := c.Profiles[defaultProfile]; !ok {
			c.Profiles[defaultProfile] = profile{Server: c.Server, Token: c.Token}
		}
		if c.Current == "" {
			c.Current = defaultProfile
		}
		c.Server, c.Token = "", ""
	}
	return c, nil
}

func (a *app) saveConfig(c config) error {
	path := a.configPath()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	// Write a sibling and rename, so a crash never leaves half a file of
	// tokens; the file holds credentials, so 0600.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("save login: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save login: %w", err)
	}
	return nil
}

// profileName is the profile a command uses: --profile, $SLIPWAY_PROFILE,
// then the current one. explicit says whether the user named it.
func (a *app) profileName(c config) (name string, explicit bool) {
	if a.profile != "" {
		return a.profile, true
	}
	if p := a.env.Getenv("SLIPWAY_PROFILE"); p != "" {
		return p, true
	}
	return c.Current, false
}

// client returns an API client from flags, environment or a saved
// profile.
func (a *app) client() (*apiclient.Client, error) {
	server, token := a.server, a.token
	if server == "" {
		server = a.env.Getenv("SLIPWAY_SERVER")
	}
	if token == "" {
		token = a.env.Getenv("SLIPWAY_TOKEN")
	}
	if server == "" || token == "" {
		c, err := a.loadConfig()
		if err != nil {
			return nil, err
		}
		name, explicit := a.profileName(c)
		p, ok := c.Profiles[name]
		if !ok && explicit {
			return nil, fmt.Errorf("no login profile %q: run `slipway login --server URL --org ORG --profile %s`", name, name)
		}
		if server == "" {
			server = p.Server
		}
		if token == "" {
			token = p.Token
		}
	}
	if server == "" || token == "" {
		return nil, errors.New("not logged in: run `slipway login --server URL --token TOKEN`")
	}
	return apiclient.New(server, token), nil
}

// loginToken is the token login starts from: --token, or the token of a
// saved profile for the same server (the chosen one first), so a user
// logged in once can add a profile per organisation without a new token.
func (a *app) loginToken(c config) string {
	if a.token != "" {
		return a.token
	}
	name, _ := a.profileName(c)
	if p, ok := c.Profiles[name]; ok && p.Server == a.server {
		return p.Token
	}
	names := make([]string, 0, len(c.Profiles))
	for n := range c.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if p := c.Profiles[n]; p.Server == a.server {
			return p.Token
		}
	}
	return ""
}

func (a *app) loginCmd() *cobra.Command {
	var org string
	c := &cobra.Command{
		Use:   "login --server URL [--token TOKEN] [--org ORG] [--profile NAME]",
		Short: "Remember a server and an API token for later commands, one profile per organisation",
		Long: `Checks the token and saves it as a login profile, which becomes the current one.
With --org, a token of your own is created in that organisation (by id or name) from the
token given, or from a saved profile for the same server, so one login reaches each of
your organisations. The profile is named by --profile, else by --org, else "default".
Choose another profile later with --profile NAME, $SLIPWAY_PROFILE or slipway profile use.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			token := a.loginToken(cfg)
			if a.server == "" || token == "" {
				return errors.New("give both --server and --token (the admin token is in DATA/admin-token)")
			}
			me, err := whoAmI(ctx, apiclient.New(a.server, token))
			if err != nil {
				return err
			}
			if org != "" && org != me.OrgID {
				if token, me, err = a.tokenForOrg(ctx, token, org, me); err != nil {
					return err
				}
			}
			name := a.profile
			if name == "" {
				name = defaultProfile
				if org != "" {
					name = org
				}
			}
			var o slipway.Organisation
			if err := apiclient.New(a.server, token).Do(ctx, "GET", "/api/v1/orgs/"+esc(me.OrgID), nil, &o); err != nil {
				return err
			}
			cfg.Profiles[name] = profile{Server: a.server, Token: token, OrgID: me.OrgID, OrgName: o.Name}
			cfg.Current = name
			if err := a.saveConfig(cfg); err != nil {
				return err
			}
			out := struct {
				identity
				Profile string `json:"profile"`
			}{me, name}
			return a.print(out, func(w io.Writer) {
				fmt.Fprintf(w, "Logged in to %s as %s (organisation %s, role %s)\n", a.server, me.UserID, me.OrgID, me.Role)
				fmt.Fprintf(w, "Saved as profile %s (organisation %s), now the current profile\n", name, o.Name)
			})
		},
	}
	c.Flags().StringVar(&org, "org", "", "organisation (id or name) the profile acts in; default: the token's own")
	return c
}

// tokenForOrg asks the server for a token of the same user in org, unless
// token already acts there.
func (a *app) tokenForOrg(ctx context.Context, token, org string, me identity) (string, identity, error) {
	c := apiclient.New(a.server, token)
	var cur slipway.Organisation
	if err := c.Do(ctx, "GET", "/api/v1/orgs/"+esc(me.OrgID), nil, &cur); err == nil && cur.Name == org {
		return token, me, nil
	}
	host, _ := os.Hostname()
	var res struct {
		Secret string `json:"secret"`
	}
	if err := c.Do(ctx, "POST", "/api/v1/orgs/"+esc(org)+"/tokens", map[string]string{"name": "slipway login on " + host}, &res); err != nil {
		return "", identity{}, fmt.Errorf("token for organisation %s: %w", org, err)
	}
	me, err := whoAmI(ctx, apiclient.New(a.server, res.Secret))
	return res.Secret, me, err
}

// identity is who an API token acts as.
type identity struct {
	UserID string `json:"user_id"`
	OrgID  string `json:"org_id"`
	Role   string `json:"role"`
}

// whoAmI asks the server who c's token acts as; it is also how the CLI
// checks that the server answers and accepts the token.
func whoAmI(ctx context.Context, c *apiclient.Client) (identity, error) {
	var me identity
	err := c.Do(ctx, "GET", "/api/v1/me", nil, &me)
	return me, err
}

func (a *app) profileCmd() *cobra.Command {
	c := &cobra.Command{Use: "profile", Short: "Saved login profiles (one per organisation)"}
	c.AddCommand(&cobra.Command{Use: "list", Short: "List login profiles", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			type row struct {
				Name    string `json:"name"`
				Current bool   `json:"current"`
				Server  string `json:"server"`
				OrgID   string `json:"org_id,omitempty"`
				OrgName string `json:"org_name,omitempty"`
			}
			rows := []row{}
			for n, p := range cfg.Profiles {
				rows = append(rows, row{Name: n, Current: n == cfg.Current, Server: p.Server, OrgID: p.OrgID, OrgName: p.OrgName})
			}
			sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
			return a.print(rows, func(w io.Writer) {
				fmt.Fprintln(w, "CURRENT\tNAME\tSERVER\tORGANISATION")
				for _, r := range rows {
					mark := ""
					if r.Current {
						mark = "*"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", mark, r.Name, r.Server, r.OrgName)
				}
			})
		}})
	c.AddCommand(&cobra.Command{Use: "use NAME", Short: "Make a saved profile the current one", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			if _, ok := cfg.Profiles[args[0]]; !ok {
				return fmt.Errorf("no login profile %q (see slipway profile list)", args[0])
			}
			cfg.Current = args[0]
			if err := a.saveConfig(cfg); err != nil {
				return err
			}
			return a.print(map[string]string{"current": args[0]}, func(w io.Writer) { fmt.Fprintf(w, "Current profile: %s\n", args[0]) })
		}})
	return c
}
