package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/service"
)

// migrateCmd is `slipway migrate projects`: preview with --dry-run, then
// migrate legacy projects into applications.
func (a *app) migrateCmd() *cobra.Command {
	c := &cobra.Command{Use: "migrate", Short: "Migrate legacy data into the current model"}
	var dryRun bool
	var project, into string
	projects := &cobra.Command{
		Use:   "projects [--dry-run] [--project ID] [--into APP]",
		Short: "Move legacy projects into applications (preview first with --dry-run)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{"project": project, "target_application": into, "dry_run": dryRun}
			var out service.Plan
			return a.call(cmd, "POST", "/api/v1/projects/migrate", body, &out, func(w io.Writer) { writePlan(w, out) })
		},
	}
	projects.Flags().BoolVar(&dryRun, "dry-run", false, "print what would happen and change nothing")
	projects.Flags().StringVar(&project, "project", "", "migrate only this project (id or name)")
	projects.Flags().StringVar(&into, "into", "", "migrate into this existing application (id or name) instead of a new one per project")
	c.AddCommand(projects)
	return c
}

// writePlan prints a migration plan or result for people.
func writePlan(w io.Writer, plan service.Plan) {
	if len(plan.Projects) == 0 {
		fmt.Fprintln(w, "No legacy projects to migrate.")
		return
	}
	if plan.DryRun {
		fmt.Fprintln(w, "Dry run: nothing was changed.")
	}
	for _, p := range plan.Projects {
		fmt.Fprintf(w, "\nProject %s (%s)", p.ProjectName, p.ProjectID)
		if p.Compute != "" {
			fmt.Fprintf(w, ", compute %s", p.Compute)
		}
		fmt.Fprintf(w, ": %s\n", strings.ReplaceAll(p.Status, "_", " "))
		if p.Reason != "" {
			fmt.Fprintf(w, "  %s\n", p.Reason)
		}
		if p.Status == service.PlanAlreadyMigrated {
			continue
		}
		fmt.Fprintf(w, "  application:\t%s\t(%s)\t%s\n", p.Application.Name, verb(p.Application.Action, plan.DryRun), p.Application.ID)
		for _, e := range p.Environments {
			def := ""
			if e.Default {
				def = ", default"
			}
			fmt.Fprintf(w, "  environment:\t%s\t(%s%s)\t%s\n", e.Name, verb(e.Action, plan.DryRun), def, e.ID)
		}
		for _, s := range p.Services {
			name := s.NewName
			if s.Name != s.NewName {
				name = s.Name + " → " + s.NewName
			}
			fmt.Fprintf(w, "  service:\t%s\t%s/%s\t%s, %d deployments, %d variables\n", s.ID, s.Environment, name,
				verb(s.Action, plan.DryRun), s.Deployments, s.Variables)
			if s.Reason != "" {
				fmt.Fprintf(w, "    cannot move: %s\n", s.Reason)
			}
			for _, warn := range s.Warnings {
				fmt.Fprintf(w, "    warning: %s\n", warn)
			}
		}
		for _, c := range p.Collisions {
			fmt.Fprintf(w, "  name taken:\t%s %s\t%s\t→ %s\n", c.Kind, c.Name, c.Resolution, c.ResolvedAs)
		}
		for _, n := range p.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
	}
}

// verb is an action word in the tense that fits: "will create" in a plan,
// "created" after the fact.
func verb(action string, planned bool) string {
	if planned {
		return "will " + action
	}
	switch action {
	case service.ActionCreate:
		return "created"
	case service.ActionReuse:
		return "reused"
	case service.ActionMove:
		return "moved"
	case service.ActionStay:
		return "stays"
	}
	return action
}

// projectCmd is `slipway project list|show`: legacy projects, read-only.
func (a *app) projectCmd() *cobra.Command {
	c := &cobra.Command{Use: "project", Short: "Legacy projects (read-only; migrate them with slipway migrate projects)"}
	var all bool
	lst := &cobra.Command{Use: "list", Short: "List legacy projects", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var out list[slipway.Project]
			q := url.Values{}
			if all {
				q.Set("migrated", "true")
			}
			return a.call(cmd, "GET", "/api/v1/projects?"+q.Encode(), nil, &out, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tNAME\tCOMPUTE\tMIGRATED TO\tCREATED")
				for _, p := range out.Items {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", p.ID, p.Name, dashIfEmpty(p.Compute), dashIfEmpty(p.MigratedToApplication), ago(p.CreatedAt))
				}
			})
		}}
	lst.Flags().BoolVar(&all, "all", false, "include projects already migrated")
	c.AddCommand(lst)
	c.AddCommand(&cobra.Command{Use: "show PROJECT", Short: "Show a legacy project and its services", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// A migrated project answers with a redirect to its
			// application, which the client follows: show that instead.
			var raw map[string]any
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.Do(cmd.Context(), "GET", "/api/v1/projects/"+esc(args[0]), nil, &raw); err != nil {
				return err
			}
			if id, _ := raw["id"].(string); strings.HasPrefix(id, slipway.PrefixApplication+"_") {
				name, _ := raw["name"].(string)
				return a.print(raw, func(w io.Writer) {
					fmt.Fprintf(w, "Project %s was migrated into application %s (%s): see slipway app show %s\n", args[0], name, id, id)
				})
			}
			var out service.ProjectDetail
			if err := remarshal(raw, &out); err != nil {
				return err
			}
			return a.print(out, func(w io.Writer) {
				fmt.Fprintf(w, "id:\t%s\nname:\t%s\ncompute:\t%s\ncreated:\t%s\n\n", out.ID, out.Name, dashIfEmpty(out.Compute), ago(out.CreatedAt))
				fmt.Fprintln(w, "SERVICE\tNAME\tTYPE\tSOURCE\tDOMAINS")
				for _, s := range out.Services {
					src := s.Image
					if s.Type == slipway.ServiceApp {
						src = s.Source.RepoName + "@" + firstSet(s.Source.Branch, s.Source.Tag, s.Source.TagPattern)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.Name, s.Type, dashIfEmpty(src), dashIfEmpty(strings.Join(s.Domains, ",")))
				}
			})
		}})
	return c
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func firstSet(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// remarshal converts a decoded JSON value into a typed one.
func remarshal(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("re-encode answer: %w", err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}
