package cli

import "github.com/spf13/cobra"

// extraCmds collects command groups kept in their own files.
func (a *app) extraCmds() []*cobra.Command {
	return []*cobra.Command{a.migrateCmd(), a.projectCmd()}
}
