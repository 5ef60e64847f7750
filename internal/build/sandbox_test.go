package build

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"slipway.dev/slipway"
	"slipway.dev/slipway/internal/clone"
)

// TestHostileBuildCannotReadSecrets runs a build script that tries to read
// Slipway's database and master key, another Service's files and PID 1's
// environment, and dumps its own environment. Every read must fail and the
// environment must hold only the Service's variables and the platform's
// minimal entries.
func TestHostileBuildCannotReadSecrets(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("isolation needs root: builds run as the current user here")
	}
	b, sb := newBuilder(t)
	ctx := context.Background()

	// Slipway's data directory, as serve creates it: root-owned, 0700.
	data := filepath.Join(reachableTempDir(t), "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	const dbSecret, keySecret, otherSecret = "DB-CONTENT-7f3a", "MASTER-KEY-91bc", "OTHER-SERVICE-SECRET-44d0"
	os.WriteFile(filepath.Join(data, "slipway.db"), []byte(dbSecret), 0o600)
	os.WriteFile(filepath.Join(data, "master.key"), []byte(keySecret), 0o600)

	// Another Service's workspace with a file of its own.
	otherWS, otherUser, err := sb.Workspace(ctx, "svc_othervictim0001")
	if err != nil {
		t.Fatal(err)
	}
	otherFile := filepath.Join(otherWS, "secret.txt")
	os.WriteFile(otherFile, []byte(otherSecret), 0o644) // even a world-readable file: the 0700 directory stops it
	os.Chown(otherFile, int(otherUser.UID), int(otherUser.GID))

	// Slipway's own environment holds something a build must not see.
	t.Setenv("SLIPWAY_MASTER_KEY", keySecret)

	script := strings.Join([]string{
		"for f in " + filepath.Join(data, "slipway.db") + " " + filepath.Join(data, "master.key") + " " + otherFile + " /proc/1/environ; do",
		`  if cat "$f"; then echo "READ-OK $f"; else echo "READ-DENIED $f"; fi`,
		"done",
		"ls " + otherWS + ` && echo "LIST-OK" || echo "LIST-DENIED"`,
		`echo "ENV-BEGIN"; env | cut -d= -f1 | sort; echo "ENV-END"`,
		"id -u",
	}, "\n")
	url, sha := repoWith(t, map[string]string{"Procfile": "web: true\n"})
	var logs bytes.Buffer
	_, err = b.Build(ctx, Request{ServiceID: "svc_hostile00000001", Source: clone.Options{Network: localSources, URL: url, SHA: sha},
		Env:      map[string]string{"DATABASE_URL": "postgres://app", "GREETING": "hi"},
		Settings: slipway.BuildSettings{BuildCommand: script}}, &logs)
	if err != nil {
		t.Fatalf("Build: %v\n%s", err, logs.String())
	}
	out := logs.String()
	t.Logf("hostile build output:\n%s", out)

	for _, secret := range []string{dbSecret, keySecret, otherSecret} {
		if strings.Contains(out, secret) {
			t.Errorf("the build read %q", secret)
		}
	}
	for _, f := range []string{"slipway.db", "master.key", "secret.txt", "/proc/1/environ"} {
		if !regexpLine(out, "READ-DENIED ", f) {
			t.Errorf("no denied read of %s", f)
		}
		if regexpLine(out, "READ-OK ", f) {
			t.Errorf("read of %s succeeded", f)
		}
	}
	if !strings.Contains(out, "LIST-DENIED") || !strings.Contains(out, "Permission denied") {
		t.Error("listing another Service's workspace was not denied")
	}
	envBlock := out[strings.LastIndex(out, "ENV-BEGIN\n")+len("ENV-BEGIN\n") : strings.LastIndex(out, "ENV-END\n")]
	allowed := map[string]bool{"DATABASE_URL": true, "GREETING": true, "HOME": true, "PATH": true, "USER": true, "PWD": true, "SHLVL": true, "OLDPWD": true}
	for _, name := range strings.Fields(envBlock) {
		if !allowed[name] {
			t.Errorf("unexpected variable in the build's environment: %s", name)
		}
	}
	if !strings.Contains(envBlock, "DATABASE_URL") || !strings.Contains(envBlock, "GREETING") {
		t.Errorf("the Service's variables are missing: %s", envBlock)
	}
	if strings.Contains(out, "\n0\n") {
		t.Error("the build ran as root")
	}
}

func regexpLine(out, prefix, suffix string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, prefix) && strings.HasSuffix(line, suffix) {
			return true
		}
	}
	return false
}
