// Package gitcred hands credentials to the git CLI without putting them on
// its command line, in its remote URL or in a file that outlives the call.
//
// HTTPS: GIT_ASKPASS names a tiny shell script (written to a private 0700
// temporary directory) that prints the username or the password from the
// environment variables SLIPWAY_GIT_USERNAME / SLIPWAY_GIT_PASSWORD, which
// git and the script inherit. The secret therefore lives only in the
// environment of the git process tree, readable by the same OS user (and
// root) through /proc/<pid>/environ, never in /proc/<pid>/cmdline. The
// script itself holds no secret.
//
// SSH: the private key is written to that same 0700 directory and named
// with GIT_SSH_COMMAND; cleanup removes the directory right after the call.
package gitcred

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"slipway.dev/slipway/internal/forge"
)

// Environment variables the askpass helper reads.
const (
	EnvUsername = "SLIPWAY_GIT_USERNAME"
	EnvPassword = "SLIPWAY_GIT_PASSWORD"
)

const askpassScript = `#!/bin/sh
case "$1" in
Username*) printf '%s\n' "$` + EnvUsername + `" ;;
*) printf '%s\n' "$` + EnvPassword + `" ;;
esac
`

// Env returns the environment entries to add to a git command so it
// authenticates with creds, and a cleanup that removes the temporary
// helper files; call it when the command has finished. Prompts are
// disabled so a wrong credential fails instead of hanging. sshBase is the
// ssh command line the key options are added to (netpolicy.Git.SSH: no
// ssh configuration, pinned address); "" means plain "ssh".
func Env(creds forge.CloneCredentials, sshBase string) (env []string, cleanup func(), err error) {
	if sshBase == "" {
		sshBase = "ssh"
	}
	env = []string{"GIT_TERMINAL_PROMPT=0"}
	if creds.Password == "" && creds.SSHKey == "" {
		return env, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "gitcred-")
	if err != nil {
		return nil, nil, fmt.Errorf("gitcred: temp dir: %w", err)
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	if err := os.Chmod(dir, 0o700); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("gitcred: %w", err)
	}
	if creds.Password != "" {
		askpass := filepath.Join(dir, "askpass")
		if err := os.WriteFile(askpass, []byte(askpassScript), 0o700); err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("gitcred: askpass helper: %w", err)
		}
		user := creds.Username
		if user == "" {
			user = "git"
		}
		env = append(env, "GIT_ASKPASS="+askpass, EnvUsername+"="+user, EnvPassword+"="+creds.Password)
	}
	if creds.SSHKey != "" {
		key := filepath.Join(dir, "id")
		if err := os.WriteFile(key, []byte(strings.TrimSpace(creds.SSHKey)+"\n"), 0o600); err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("gitcred: ssh key: %w", err)
		}
		ssh := sshBase + " -i " + key + " -o IdentitiesOnly=yes -o BatchMode=yes"
		if creds.KnownHosts != "" {
			kh := filepath.Join(dir, "known_hosts")
			if err := os.WriteFile(kh, []byte(creds.KnownHosts+"\n"), 0o600); err != nil {
				cleanup()
				return nil, nil, fmt.Errorf("gitcred: known hosts: %w", err)
			}
			ssh += " -o StrictHostKeyChecking=yes -o UserKnownHostsFile=" + kh
		} else {
			ssh += " -o StrictHostKeyChecking=accept-new"
		}
		env = append(env, "GIT_SSH_COMMAND="+ssh)
	}
	return env, cleanup, nil
}
