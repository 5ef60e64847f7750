package sandbox

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const netnsChildEnv = "SLIPWAY_SANDBOX_NETNS_CHILD"

// TestTenantNetworkAndScratch runs a Service's code that tries to reach
// another Service's port, a database port, one of Slipway's own listeners
// and a link-local metadata address, and to read and write another
// Service's /tmp and /dev/shm. Everything runs in a network namespace the
// test creates (re-executing itself under unshare), and the metadata
// address lives in a second namespace behind a veth pair, so no packet
// can leave the machine even if the policy failed.
func TestTenantNetworkAndScratch(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if os.Getenv(netnsChildEnv) == "" {
		for _, tool := range []string{"unshare", "ip", "iptables", "ip6tables", "bash", "timeout"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skip(tool + " not available")
			}
		}
		cmd := exec.Command("unshare", "--net", "--", os.Args[0], "-test.run=^TestTenantNetworkAndScratch$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), netnsChildEnv+"=1")
		out, err := cmd.CombinedOutput()
		t.Logf("in its own network namespace:\n%s", out)
		if err != nil || !strings.Contains(string(out), "--- PASS: TestTenantNetworkAndScratch") {
			t.Fatalf("child: %v", err)
		}
		return
	}
	ctx := context.Background()
	mustRun(t, "ip", "link", "set", "lo", "up")
	metadata := metadataNamespace(t)

	listen := func(addr string) string {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Write([]byte("hello\n"))
				c.Close()
			}
		}()
		return ln.Addr().String()
	}
	targets := map[string]string{
		"other-service":   listen("127.0.0.1:0"),
		"database":        listen("127.0.0.1:0"),
		"slipway-private": listen("127.0.0.1:0"),
		"loopback-v6":     listen("[::1]:0"),
		"metadata":        metadata,
	}
	public := listen("127.0.0.1:0")
	// Every target answers when dialled without the policy (as root, here).
	for name, addr := range targets {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatalf("%s (%s) does not answer at all: %v", name, addr, err)
		}
		c.Close()
	}

	base, err := os.MkdirTemp("/var/tmp", "slipway-net-test-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(base, 0o711)
	defer os.RemoveAll(base)
	m, err := New(slog.New(slog.NewTextHandler(io.Discard, nil)), Options{Root: filepath.Join(base, "ws"), Network: &Network{Allow: []string{public}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !m.PrivateScratch() {
		t.Fatal("private /tmp is off: the scratch part would prove nothing")
	}
	victimWS, victim, err := m.Workspace(ctx, "svc_netvictim00001")
	if err != nil {
		t.Fatal(err)
	}
	defer m.RemoveService(ctx, "svc_netvictim00001")
	attackerWS, attacker, err := m.Workspace(ctx, "svc_netattack00001")
	if err != nil {
		t.Fatal(err)
	}
	defer m.RemoveService(ctx, "svc_netattack00001")
	rules, _ := exec.Command("iptables", "-S", m.fw.chain).Output()
	jumps, _ := exec.Command("iptables", "-S", "OUTPUT").Output()
	if !strings.Contains(string(rules), "169.254.0.0/16") || !strings.Contains(string(jumps), "--uid-owner "+strconv.Itoa(int(attacker.UID))) {
		t.Fatalf("policy not in place:\n%s\n%s", rules, jumps)
	}

	vScratch, err := m.Scratch(ctx, "svc_netvictim00001")
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Command(Spec{User: victim, Home: victimWS, Dir: victimWS, Scratch: vScratch,
		Script: "echo victim > /tmp/victim-file && echo victim > /dev/shm/victim-shm && ls /tmp"}).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "victim-file") {
		t.Fatalf("victim could not use its own /tmp: %v %s", err, out)
	}
	if _, err := os.Stat("/tmp/victim-file"); err == nil {
		t.Fatal("the victim's /tmp is the host's /tmp")
	}

	var script strings.Builder
	dial := func(name, addr string) {
		host, port, _ := net.SplitHostPort(addr)
		fmt.Fprintf(&script, "if timeout 3 bash -c 'exec 3<>/dev/tcp/%s/%s' 2>/dev/null; then echo 'CONNECT %s OK'; else echo 'CONNECT %s REFUSED'; fi\n", host, port, name, name)
	}
	dial("public", public)
	for name, addr := range targets {
		dial(name, addr)
	}
	script.WriteString(`for f in /tmp/victim-file /dev/shm/victim-shm "$VT/victim-file" "$VS/victim-shm"; do cat "$f" 2>/dev/null && echo "READ $f"; done
for d in /tmp /dev/shm "$VT" "$VS"; do { echo x > "$d/attacker-file"; } 2>/dev/null && echo "WROTE $d"; done
true
`)
	aScratch, err := m.Scratch(ctx, "svc_netattack00001")
	if err != nil {
		t.Fatal(err)
	}
	out, err = m.Command(Spec{User: attacker, Home: attackerWS, Dir: attackerWS, Scratch: aScratch, Script: script.String(),
		Env: map[string]string{"VT": vScratch.Tmp, "VS": vScratch.Shm}}).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got := string(out)
	t.Logf("attacker:\n%s", got)
	if !strings.Contains(got, "CONNECT public OK") {
		t.Fatalf("the router's public address is not reachable, so refusals prove nothing:\n%s", got)
	}
	for name := range targets {
		if !strings.Contains(got, "CONNECT "+name+" REFUSED") {
			t.Errorf("tenant code reached %s", name)
		}
	}
	if strings.Contains(got, "READ ") {
		t.Error("tenant code read another Service's scratch files")
	}
	// Its own /tmp and /dev/shm are writable; the victim's are not.
	if !strings.Contains(got, "WROTE /tmp\n") || !strings.Contains(got, "WROTE /dev/shm\n") {
		t.Error("tenant code cannot write its own /tmp and /dev/shm")
	}
	if strings.Contains(got, "WROTE "+vScratch.Tmp) || strings.Contains(got, "WROTE "+vScratch.Shm) {
		t.Error("tenant code wrote into another Service's /tmp or /dev/shm")
	}
	if _, err := os.Stat(filepath.Join(vScratch.Tmp, "attacker-file")); err == nil {
		t.Error("the attacker's file is in the victim's /tmp")
	}
}

// metadataNamespace makes a second network namespace holding
// 169.254.169.254 behind a veth pair and returns the address of a listener
// there. The listener's socket is created on a thread inside that
// namespace and keeps working from any goroutine.
func metadataNamespace(t *testing.T) string {
	t.Helper()
	addr := make(chan string, 1)
	fail := make(chan error, 1)
	// The test's namespace, held open: the thread that unshares may be
	// the main one, so /proc/<pid>/ns/net would name the new namespace.
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			fail <- err
			return
		}
		tid := strconv.Itoa(unix.Gettid())
		// Commands started from this locked thread run in its namespace.
		steps := [][]string{
			{"ip", "link", "set", "lo", "up"},
		}
		for _, s := range steps {
			if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
				fail <- fmt.Errorf("%v: %v %s", s, err, out)
				return
			}
		}
		// The peer is created from the test's namespace, via a helper
		// entering it through /proc of the main thread.
		peer := exec.Command("nsenter", "--net=/proc/self/fd/3", "--",
			"ip", "link", "add", "slwtest0", "type", "veth", "peer", "name", "slwtest1", "netns", tid)
		peer.ExtraFiles = []*os.File{self}
		if out, err := peer.CombinedOutput(); err != nil {
			fail <- fmt.Errorf("veth: %v %s", err, out)
			return
		}
		for _, s := range [][]string{
			{"ip", "addr", "add", "169.254.169.254/16", "dev", "slwtest1"},
			{"ip", "link", "set", "slwtest1", "up"},
		} {
			if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
				fail <- fmt.Errorf("%v: %v %s", s, err, out)
				return
			}
		}
		ln, err := net.Listen("tcp", "169.254.169.254:80")
		if err != nil {
			fail <- err
			return
		}
		addr <- ln.Addr().String()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("metadata\n"))
			c.Close()
		}
	}()
	select {
	case a := <-addr:
		mustRun(t, "ip", "addr", "add", "169.254.169.1/16", "dev", "slwtest0")
		mustRun(t, "ip", "link", "set", "slwtest0", "up")
		return a
	case err := <-fail:
		t.Fatalf("metadata namespace: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("metadata namespace: timeout")
	}
	return ""
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v %s", name, args, err, out)
	}
}
