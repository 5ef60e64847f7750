package e2e

import (
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"slipway.dev/slipway/internal/sandbox"
	"slipway.dev/slipway/internal/testenv/pgtest"
)

// TestDatabasePasswordStaysOutOfTheProcessList: a real `slipway serve` on
// PostgreSQL with a URL that carries a password, given through a 0600
// --database-url-file; /proc/<pid>/cmdline, which every local user can
// read, does not hold the password, and the server runs. (The test
// PostgreSQL trusts local connections, so any password is accepted.)
func TestDatabasePasswordStaysOutOfTheProcessList(t *testing.T) {
	u, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	const password = "pw-in-the-file-only-7f3a"
	u.User = url.UserPassword(u.User.Username(), password)
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "database-url")
	if err := os.WriteFile(urlFile, []byte(u.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	dataDir := filepath.Join(dir, "data")
	cmd := exec.Command(slipwayBinary(t), "serve", "--data", dataDir, "--addr", addr, "--database-url-file", urlFile)
	cmd.Env = append(os.Environ(), "SLIPWAY_WORKSPACES="+filepath.Join(dir, "ws"), "SLIPWAY_DATABASE_URL=")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		if os.Geteuid() == 0 { // a killed server leaves its firewall chain
			_ = sandbox.RemoveLeftovers(slog.New(slog.DiscardHandler), filepath.Join(dir, "ws"))
		}
		if t.Failed() {
			t.Logf("server output:\n%s", out.String())
		}
	})
	waitFor(t, "slipway serve to be ready", 60*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cmdline), password) {
		t.Fatalf("the database password is in the process list: %q", cmdline)
	}
	if !strings.Contains(string(cmdline), "--database-url-file") {
		t.Fatalf("read the wrong process: %q", cmdline)
	}
	if strings.Contains(out.String(), password) {
		t.Error("the server printed the database password")
	}

	// The same URL as a flag is refused before anything starts.
	refused := exec.Command(slipwayBinary(t), "serve", "--data", filepath.Join(dir, "other"), "--addr", freeAddr(t), "--database-url", u.String())
	msg, err := refused.CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "--database-url-file") || strings.Contains(string(msg), password) {
		t.Errorf("a password on the command line: err %v, output %q", err, msg)
	}
}
