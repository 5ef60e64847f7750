package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// Network is the outbound policy for tenant code, enforced per Service
// user with iptables/ip6tables owner matching in the OUTPUT chain: every
// socket a Service's process opens, build or release, passes through one
// chain of this Slipway instance. The chain allows replies on connections
// made to the app (the router's requests) and connections to the Allow
// addresses (the router's public address), and rejects new connections
// to any address of this host (other Services' ports, Slipway's own
// listeners, a database on this machine), to loopback, link-local
// (metadata services) and, unless AllowPrivate, private ranges.
// The rest of the network (package registries) stays reachable.
type Network struct {
	// Allow lists host:port pairs tenant code may connect to even though
	// they are local (the router's public listener).
	Allow []string
	// AllowPrivate leaves RFC 1918, CGNAT and unique-local ranges open
	// (a database elsewhere on a private network is then reachable).
	AllowPrivate bool
}

// firewall installs and maintains the rules of one instance's chain.
type firewall struct {
	chain string
	run   func(ctx context.Context, tool string, args ...string) error

	mu   sync.Mutex
	uids map[uint32]bool
}

var (
	blockedV4 = []string{"127.0.0.0/8", "169.254.0.0/16", "0.0.0.0/8"}
	privateV4 = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"}
	blockedV6 = []string{"::1/128", "fe80::/10", "::ffff:0:0/96"}
	privateV6 = []string{"fc00::/7"}
)

func runTool(ctx context.Context, tool string, args ...string) error {
	out, err := exec.CommandContext(ctx, tool, append([]string{"-w"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", tool, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// chainRules is the chain's content for one family, in order.
func chainRules(n Network, v6 bool) ([][]string, error) {
	rules := [][]string{{"-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"}}
	for _, a := range n.Allow {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("sandbox: allowed address %q: %w", a, err)
		}
		ip := net.ParseIP(host)
		if ip == nil {
			return nil, fmt.Errorf("sandbox: allowed address %q is not an IP address", a)
		}
		if (ip.To4() == nil) != v6 {
			continue
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return nil, fmt.Errorf("sandbox: allowed address %q: bad port", a)
		}
		if ip.IsUnspecified() {
			// A listener on 0.0.0.0 answers on every local address.
			rules = append(rules, []string{"-p", "tcp", "-m", "addrtype", "--dst-type", "LOCAL", "--dport", port, "-j", "RETURN"})
			continue
		}
		rules = append(rules, []string{"-p", "tcp", "-d", ip.String(), "--dport", port, "-j", "RETURN"})
	}
	reject := []string{"-j", "REJECT"}
	rules = append(rules, append([]string{"-m", "addrtype", "--dst-type", "LOCAL"}, reject...))
	nets := blockedV4
	if !n.AllowPrivate {
		nets = append(append([]string(nil), nets...), privateV4...)
	}
	if v6 {
		nets = blockedV6
		if !n.AllowPrivate {
			nets = append(append([]string(nil), nets...), privateV6...)
		}
	}
	for _, c := range nets {
		rules = append(rules, append([]string{"-d", c}, reject...))
	}
	return rules, nil
}

// newFirewall (re)creates the instance's chain in both families and drops
// jumps a previous run left in OUTPUT.
func newFirewall(ctx context.Context, chain string, n Network) (*firewall, error) {
	f := &firewall{chain: chain, run: runTool, uids: map[uint32]bool{}}
	for _, tool := range []string{"iptables", "ip6tables"} {
		rules, err := chainRules(n, tool == "ip6tables")
		if err != nil {
			return nil, err
		}
		f.dropJumps(ctx, tool, 0)
		if err := f.run(ctx, tool, "-N", chain); err != nil {
			// It exists from an earlier run: start it afresh.
			if ferr := f.run(ctx, tool, "-F", chain); ferr != nil {
				return nil, fmt.Errorf("sandbox: firewall: %w", errors.Join(err, ferr))
			}
		}
		for _, r := range rules {
			if err := f.run(ctx, tool, append([]string{"-A", chain}, r...)...); err != nil {
				return nil, fmt.Errorf("sandbox: firewall: %w", err)
			}
		}
	}
	return f, nil
}

// dropJumps deletes OUTPUT's jumps to the chain, for uid (0: all).
func (f *firewall) dropJumps(ctx context.Context, tool string, uid uint32) {
	out, err := exec.CommandContext(ctx, tool, "-w", "-S", "OUTPUT").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "-A" || !strings.HasSuffix(line, "-j "+f.chain) {
			continue
		}
		if uid != 0 && !strings.Contains(line, "--uid-owner "+strconv.FormatUint(uint64(uid), 10)+" ") {
			continue
		}
		f.run(ctx, tool, append([]string{"-D"}, fields[1:]...)...)
	}
}

// cover sends every socket of uid through the chain (once per process).
func (f *firewall) cover(ctx context.Context, uid uint32) error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.uids[uid] {
		return nil
	}
	rule := []string{"OUTPUT", "-m", "owner", "--uid-owner", strconv.FormatUint(uint64(uid), 10), "-j", f.chain}
	for _, tool := range []string{"iptables", "ip6tables"} {
		if f.run(ctx, tool, append([]string{"-C"}, rule...)...) == nil {
			continue
		}
		if err := f.run(ctx, tool, append([]string{"-I"}, rule...)...); err != nil {
			return fmt.Errorf("sandbox: firewall: %w", err)
		}
	}
	f.uids[uid] = true
	return nil
}

// uncover removes uid's jump (its user is being deleted).
func (f *firewall) uncover(ctx context.Context, uid uint32) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.uids, uid)
	for _, tool := range []string{"iptables", "ip6tables"} {
		f.dropJumps(ctx, tool, uid)
	}
}

// close removes the chain and every jump to it.
func (f *firewall) close(ctx context.Context) {
	if f == nil {
		return
	}
	for _, tool := range []string{"iptables", "ip6tables"} {
		f.dropJumps(ctx, tool, 0)
		f.run(ctx, tool, "-F", f.chain)
		f.run(ctx, tool, "-X", f.chain)
	}
}
