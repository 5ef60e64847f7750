// Package netnstest runs a test inside a network namespace of its own, in
// which only the loopback interface (with extra addresses the test asks
// for) exists. A test of "Slipway refuses to connect there" then cannot
// send a packet off the machine even when the code under test is wrong.
package netnstest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

const envInside = "SLIPWAY_NETNS_INSIDE"

// Run re-executes the current test in a fresh network namespace
// (unshare --net) and reports its result, unless it already runs inside
// one: then it returns true and the caller continues with the test body.
// extraAddrs are CIDRs assigned inside the namespace, so an address such as
// 169.254.169.254 exists there and nowhere else.
// The test is skipped when namespaces cannot be made (not root, no unshare).
func Run(t *testing.T, extraAddrs ...string) (inside bool) {
	t.Helper()
	if os.Getenv(envInside) == "1" {
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("netnstest: needs root to make a network namespace")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("netnstest: unshare not installed")
	}
	script := "set -e; ip link set lo up\n"
	// Extra addresses go on the namespace's own loopback interface: it
	// exists in every namespace (dummy interfaces need a kernel module a
	// container may not have) and is gone with the namespace.
	for _, a := range extraAddrs {
		script += "ip addr add " + a + " dev lo\n"
	}
	script += `exec "$@"`
	args := []string{"--net", "--", "sh", "-c", script, "sh", os.Args[0], "-test.run=^" + t.Name() + "$", "-test.count=1", "-test.v"}
	cmd := exec.Command(unshare, args...)
	cmd.Env = append(os.Environ(), envInside+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("inside a network namespace of its own:\n%s", indent(string(out)))
	if err != nil {
		t.Fatalf("netnstest: the test failed inside its namespace: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("netnstest: the test did not pass inside its namespace")
	}
	return false
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
