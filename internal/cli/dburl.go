package cli

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
)

// resolveDatabaseURL settles where the database URL comes from. A URL
// holding a password is refused on the command line, where every local
// user can read it in /proc/<pid>/cmdline; it may come from
// $SLIPWAY_DATABASE_URL or from --database-url-file, a file only
// Slipway's user can read.
func resolveDatabaseURL(cmd *cobra.Command, f *ServeFlags) error {
	onCommandLine := cmd.Flags().Changed("database-url")
	if onCommandLine && databaseURLHasPassword(f.DatabaseURL) {
		return errors.New("--database-url holds a password, which every local user can read in the process list; " +
			"set SLIPWAY_DATABASE_URL in the environment instead, or write the URL to a file with mode 0600 and pass --database-url-file FILE")
	}
	if f.DatabaseURLFile == "" {
		return nil
	}
	if onCommandLine {
		return errors.New("give either --database-url or --database-url-file, not both")
	}
	fi, err := os.Stat(f.DatabaseURLFile)
	if err != nil {
		return fmt.Errorf("--database-url-file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("--database-url-file %s is not a regular file", f.DatabaseURLFile)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("--database-url-file %s can be read by other users (mode %04o); run chmod 600 %s", f.DatabaseURLFile, perm, f.DatabaseURLFile)
	}
	b, err := os.ReadFile(f.DatabaseURLFile)
	if err != nil {
		return fmt.Errorf("--database-url-file: %w", err)
	}
	f.DatabaseURL = strings.TrimSpace(string(b))
	if f.DatabaseURL == "" {
		return fmt.Errorf("--database-url-file %s is empty", f.DatabaseURLFile)
	}
	return nil
}

// keywordPassword finds libpq's key/value form, where spaces may surround
// the equals sign.
var keywordPassword = regexp.MustCompile(`(?i)(^|\s)password\s*=`)

// databaseURLHasPassword reports whether a PostgreSQL connection string
// carries a password: in the URL's user part, as a password= query
// parameter, or as a password= keyword of the key/value form.
func databaseURLHasPassword(s string) bool {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		if _, ok := u.User.Password(); ok {
			return true
		}
		for k := range u.Query() {
			if strings.EqualFold(k, "password") {
				return true
			}
		}
		return false
	}
	if keywordPassword.MatchString(s) {
		return true
	}
	// Unparsable as a URL but shaped like one with user:password@.
	if _, rest, ok := strings.Cut(s, "://"); ok {
		userinfo, _, hasAt := strings.Cut(rest, "@")
		return hasAt && strings.Contains(userinfo, ":")
	}
	return false
}
