// Package cgroup puts untrusted code in control groups of its own: one per
// build and one per release, each with a memory, process-count and CPU
// limit, and each killable as a whole, so a double-forked `setsid` child is
// counted and killed with its owner.
//
// Which hierarchy is used is found by trying, not by looking at what is
// mounted: Probe creates a child group and writes limits into it. The
// unified hierarchy (cgroup v2) is preferred when its memory and pids
// controllers can be delegated to a child of Slipway's own group; else the
// v1 hierarchies memory, pids, cpu and freezer are used, each that works.
// Groups are created below Slipway's own group in every hierarchy, never
// elsewhere, so Slipway stays inside whatever limits its host gave it.
//
// v1 is exercised for real by the tests on hosts that have it; v2 is
// unit-tested against a fake cgroupfs in a temporary directory (see
// cgroup_test.go), since a host exposes one or the other.
package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Limits of one group; zero fields are not limited.
type Limits struct {
	MemoryBytes int64 // memory (and, where the host allows, memory plus swap)
	Pids        int64 // processes and threads together
	CPUPercent  int   // 100 is one full core
}

// Version says which hierarchy a Manager uses.
type Version int

const (
	None Version = iota // no usable controller: only rlimits apply
	V1                  // per-controller hierarchies
	V2                  // the unified hierarchy
)

func (v Version) String() string {
	switch v {
	case V1:
		return "cgroup v1"
	case V2:
		return "cgroup v2"
	}
	return "no cgroups"
}

// Manager creates groups under one base group per Slipway instance.
type Manager struct {
	version Version
	// bases maps a controller ("memory", "pids", "cpu", "freezer"; "" for
	// the unified hierarchy) to this instance's base directory.
	bases map[string]string
}

// v1Controllers are the v1 hierarchies used, in the order they are joined.
var v1Controllers = []string{"memory", "pids", "cpu", "freezer"}

// Probe finds the usable hierarchy under fsRoot (normally /sys/fs/cgroup),
// given the contents of /proc/self/cgroup, and creates the base group
// "<name>" below Slipway's own group. It returns a Manager of version None
// (and no error) when no controller can be used.
func Probe(fsRoot, selfCgroup, name string) (*Manager, error) {
	if name == "" || strings.ContainsAny(name, "/.") {
		return nil, fmt.Errorf("cgroup: invalid base name %q", name)
	}
	own := parseSelf(selfCgroup)
	if m, err := probeV2(fsRoot, own[""], name); err == nil {
		return m, nil
	}
	m := &Manager{version: None, bases: map[string]string{}}
	for _, c := range v1Controllers {
		rel, ok := own[c]
		if !ok {
			continue
		}
		base := filepath.Join(fsRoot, c, rel, name)
		if err := probeV1(base, c); err != nil {
			continue
		}
		m.bases[c] = base
	}
	if m.bases["memory"] != "" || m.bases["pids"] != "" {
		m.version = V1
	} else {
		m.bases = map[string]string{}
	}
	// Base groups exist only while they hold a group (see Create), so an
	// instance that ends leaves nothing in the host's hierarchy.
	m.Close()
	return m, nil
}

// ProbeHost probes the host's /sys/fs/cgroup for this process.
func ProbeHost(name string) (*Manager, error) {
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return &Manager{bases: map[string]string{}}, nil
	}
	return Probe("/sys/fs/cgroup", string(self), name)
}

// parseSelf maps each controller of /proc/self/cgroup to this process's
// group path; "" is the unified hierarchy.
func parseSelf(s string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out
}

func probeV2(fsRoot, rel, name string) (*Manager, error) {
	mount := fsRoot
	if _, err := os.Stat(filepath.Join(mount, "cgroup.controllers")); err != nil {
		mount = filepath.Join(fsRoot, "unified")
	}
	parent := filepath.Join(mount, rel)
	avail, err := os.ReadFile(filepath.Join(parent, "cgroup.controllers"))
	if err != nil {
		return nil, err
	}
	have := strings.Fields(string(avail))
	if !slices.Contains(have, "memory") || !slices.Contains(have, "pids") {
		return nil, errors.New("cgroup v2: memory or pids controller not available")
	}
	enable := "+memory +pids"
	if slices.Contains(have, "cpu") {
		enable += " +cpu"
	}
	// Delegating to children fails in a non-root group that holds
	// processes itself (the "no internal processes" rule): then v2 is not
	// usable for us here.
	if err := write(filepath.Join(parent, "cgroup.subtree_control"), enable); err != nil {
		return nil, err
	}
	base := filepath.Join(parent, name)
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, err
	}
	if err := write(filepath.Join(base, "cgroup.subtree_control"), enable); err != nil {
		os.Remove(base)
		return nil, err
	}
	m := &Manager{version: V2, bases: map[string]string{"": base}}
	probe, err := m.Create("probe", Limits{MemoryBytes: 64 << 20, Pids: 16})
	if err != nil {
		os.Remove(base)
		return nil, err
	}
	probe.Remove()
	m.Close()
	return m, nil
}

func probeV1(base, controller string) error {
	if err := os.MkdirAll(base, 0o755); err != nil {
		return err
	}
	probe := filepath.Join(base, "probe")
	if err := os.Mkdir(probe, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		os.Remove(base)
		return err
	}
	defer os.Remove(base)
	defer os.Remove(probe)
	var err error
	switch controller {
	case "memory":
		err = write(filepath.Join(probe, "memory.limit_in_bytes"), "67108864")
	case "pids":
		err = write(filepath.Join(probe, "pids.max"), "16")
	case "cpu":
		err = write(filepath.Join(probe, "cpu.cfs_quota_us"), "100000")
	case "freezer":
		_, err = os.Stat(filepath.Join(probe, "freezer.state"))
	}
	return err
}

// Version is the hierarchy in use.
func (m *Manager) Version() Version { return m.version }

// Controllers lists what is enforced, for the start-up log and README.
func (m *Manager) Controllers() []string {
	if m.version == V2 {
		return []string{"memory", "pids", "cpu"}
	}
	var out []string
	for _, c := range v1Controllers {
		if m.bases[c] != "" {
			out = append(out, c)
		}
	}
	return out
}

// Group is one build's or release's control group.
type Group struct {
	m    *Manager
	name string
	dirs map[string]string // controller → directory, like Manager.bases
}

// Create makes (or reuses) the group name with limits. On a Manager of
// version None it returns nil and no error: a nil *Group is valid and
// does nothing.
func (m *Manager) Create(name string, l Limits) (*Group, error) {
	if m == nil || m.version == None {
		return nil, nil
	}
	if name == "" || strings.ContainsAny(name, "/") || name == "." || name == ".." {
		return nil, fmt.Errorf("cgroup: invalid group name %q", name)
	}
	g := &Group{m: m, name: name, dirs: map[string]string{}}
	for c, base := range m.bases {
		dir := filepath.Join(base, name)
		if err := m.mkdirInBase(base, dir); err != nil {
			g.Remove()
			return nil, fmt.Errorf("cgroup: create %s: %w", dir, err)
		}
		g.dirs[c] = dir
	}
	if err := g.setLimits(l); err != nil {
		g.Remove()
		return nil, err
	}
	return g, nil
}

// mkdirInBase creates dir in base, creating base first when missing (the
// last group's Remove may have just removed it).
func (m *Manager) mkdirInBase(base, dir string) error {
	var err error
	for range 3 {
		if err = os.Mkdir(base, 0o755); err == nil && m.version == V2 {
			err = write(filepath.Join(base, "cgroup.subtree_control"), readString(filepath.Join(filepath.Dir(base), "cgroup.subtree_control")))
			if err != nil {
				return err
			}
		} else if err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if err = os.Mkdir(dir, 0o755); err == nil || errors.Is(err, os.ErrExist) {
			return nil
		}
	}
	return err
}

// Open returns an existing group without changing it (for cleanup).
func (m *Manager) Open(name string) *Group {
	if m == nil || m.version == None {
		return nil
	}
	g := &Group{m: m, name: name, dirs: map[string]string{}}
	for c, base := range m.bases {
		g.dirs[c] = filepath.Join(base, name)
	}
	return g
}

// List returns the names of the groups under the base whose names start
// with prefix.
func (m *Manager) List(prefix string) []string {
	if m == nil || m.version == None {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, base := range m.bases {
		entries, _ := os.ReadDir(base)
		for _, e := range entries {
			if e.IsDir() && strings.HasPrefix(e.Name(), prefix) && !seen[e.Name()] {
				seen[e.Name()] = true
				out = append(out, e.Name())
			}
		}
	}
	slices.Sort(out)
	return out
}

// KillStale kills and removes every group whose name starts with prefix:
// what a previous run of Slipway left behind. It returns the names.
func (m *Manager) KillStale(logger *slog.Logger, prefix string) []string {
	names := m.List(prefix)
	for _, n := range names {
		g := m.Open(n)
		if err := g.Kill(); err != nil {
			logger.Warn("kill leftover cgroup", "cgroup", n, "err", err)
		}
		g.Remove()
	}
	return names
}

// Close removes the instance's base groups when they hold no group.
func (m *Manager) Close() {
	if m == nil {
		return
	}
	for _, b := range m.bases {
		os.Remove(b)
	}
}

func (g *Group) setLimits(l Limits) error {
	type setting struct {
		controller, file, value string
		optional                bool
	}
	var s []setting
	if g.m.version == V2 {
		if l.MemoryBytes > 0 {
			s = append(s, setting{"", "memory.max", strconv.FormatInt(l.MemoryBytes, 10), false},
				setting{"", "memory.swap.max", "0", true})
		}
		if l.Pids > 0 {
			s = append(s, setting{"", "pids.max", strconv.FormatInt(l.Pids, 10), false})
		}
		if l.CPUPercent > 0 {
			s = append(s, setting{"", "cpu.max", fmt.Sprintf("%d 100000", l.CPUPercent*1000), true})
		}
	} else {
		if l.MemoryBytes > 0 {
			v := strconv.FormatInt(l.MemoryBytes, 10)
			s = append(s, setting{"memory", "memory.limit_in_bytes", v, false},
				setting{"memory", "memory.memsw.limit_in_bytes", v, true})
		}
		if l.Pids > 0 {
			s = append(s, setting{"pids", "pids.max", strconv.FormatInt(l.Pids, 10), false})
		}
		if l.CPUPercent > 0 {
			s = append(s, setting{"cpu", "cpu.cfs_period_us", "100000", true},
				setting{"cpu", "cpu.cfs_quota_us", strconv.Itoa(l.CPUPercent * 1000), true})
		}
	}
	for _, x := range s {
		dir, ok := g.dirs[x.controller]
		if !ok {
			continue
		}
		if err := write(filepath.Join(dir, x.file), x.value); err != nil && !x.optional {
			return fmt.Errorf("cgroup: set %s of %s: %w", x.file, g.name, err)
		}
	}
	return nil
}

// Name is the group's name under the base.
func (g *Group) Name() string {
	if g == nil {
		return ""
	}
	return g.name
}

// ProcsFiles are the cgroup.procs files a process writes its pid into to
// join the group (one per v1 hierarchy, one for v2), in a fixed order.
func (g *Group) ProcsFiles() []string {
	if g == nil {
		return nil
	}
	var out []string
	if d, ok := g.dirs[""]; ok {
		out = append(out, filepath.Join(d, "cgroup.procs"))
	}
	for _, c := range v1Controllers {
		if d, ok := g.dirs[c]; ok {
			out = append(out, filepath.Join(d, "cgroup.procs"))
		}
	}
	return out
}

// Pids lists the processes in the group.
func (g *Group) Pids() []int {
	if g == nil {
		return nil
	}
	seen := map[int]bool{}
	var out []int
	for _, f := range g.ProcsFiles() {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, field := range strings.Fields(string(raw)) {
			if pid, err := strconv.Atoi(field); err == nil && pid > 0 && !seen[pid] {
				seen[pid] = true
				out = append(out, pid)
			}
		}
	}
	return out
}

// Kill kills every process in the group and waits until it is empty.
// The group is frozen first where the host allows (cgroup.kill on v2, the
// freezer on v1), so a fork bomb cannot outrun the signals.
func (g *Group) Kill() error {
	if g == nil {
		return nil
	}
	if d, ok := g.dirs[""]; ok {
		if err := write(filepath.Join(d, "cgroup.kill"), "1"); err == nil {
			return g.waitEmpty()
		}
	}
	freeze, thaw := g.freezer()
	deadline := time.Now().Add(10 * time.Second)
	for {
		freeze()
		pids := g.Pids()
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		thaw()
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup: %s still has %d processes after SIGKILL", g.name, len(pids))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (g *Group) waitEmpty() error {
	deadline := time.Now().Add(10 * time.Second)
	for len(g.Pids()) > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup: %s not empty after kill", g.name)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// freezer returns functions that freeze and thaw the group, or no-ops.
func (g *Group) freezer() (freeze, thaw func()) {
	noop := func() {}
	if d, ok := g.dirs[""]; ok {
		f := filepath.Join(d, "cgroup.freeze")
		if _, err := os.Stat(f); err == nil {
			return func() { write(f, "1"); g.waitState(filepath.Join(d, "cgroup.events"), "frozen 1") },
				func() { write(f, "0") }
		}
		return noop, noop
	}
	if d, ok := g.dirs["freezer"]; ok {
		f := filepath.Join(d, "freezer.state")
		return func() { write(f, "FROZEN"); g.waitState(f, "FROZEN") }, func() { write(f, "THAWED") }
	}
	return noop, noop
}

// waitState waits briefly until file contains want (freezing is
// asynchronous); killing proceeds either way.
func (g *Group) waitState(file, want string) {
	for i := 0; i < 50; i++ {
		raw, err := os.ReadFile(file)
		if err != nil || strings.Contains(string(raw), want) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Remove deletes the group's directories (it must be empty: Kill first).
func (g *Group) Remove() {
	if g == nil {
		return
	}
	for _, d := range g.dirs {
		// An exiting process may hold the group for a moment.
		for i := 0; i < 50; i++ {
			if err := os.Remove(d); err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		// The base goes with its last group; removing a base that still
		// holds groups fails, which is fine.
		os.Remove(filepath.Dir(d))
	}
}

// OOMKills is how many processes of the group the kernel killed for
// running out of memory (memory.events on v2, memory.oom_control on v1).
func (g *Group) OOMKills() int {
	if g == nil {
		return 0
	}
	if d, ok := g.dirs[""]; ok {
		return counter(filepath.Join(d, "memory.events"), "oom_kill")
	}
	if d, ok := g.dirs["memory"]; ok {
		return counter(filepath.Join(d, "memory.oom_control"), "oom_kill")
	}
	return 0
}

// PidsLimitHits is how many forks the pids limit refused.
func (g *Group) PidsLimitHits() int {
	if g == nil {
		return 0
	}
	d, ok := g.dirs[""]
	if !ok {
		d, ok = g.dirs["pids"]
	}
	if !ok {
		return 0
	}
	return counter(filepath.Join(d, "pids.events"), "max")
}

// Limits reads back the limits in force, so a test can assert them before
// it attacks them. Unlimited or unknown fields are zero.
func (g *Group) Limits() Limits {
	if g == nil {
		return Limits{}
	}
	var l Limits
	if d, ok := g.dirs[""]; ok {
		l.MemoryBytes = readInt(filepath.Join(d, "memory.max"))
		l.Pids = readInt(filepath.Join(d, "pids.max"))
		if f := strings.Fields(readString(filepath.Join(d, "cpu.max"))); len(f) == 2 {
			q, _ := strconv.ParseInt(f[0], 10, 64)
			p, _ := strconv.ParseInt(f[1], 10, 64)
			if p > 0 {
				l.CPUPercent = int(q * 100 / p)
			}
		}
		return l
	}
	if d, ok := g.dirs["memory"]; ok {
		if v := readInt(filepath.Join(d, "memory.limit_in_bytes")); v < 1<<62 {
			l.MemoryBytes = v
		}
	}
	if d, ok := g.dirs["pids"]; ok {
		l.Pids = readInt(filepath.Join(d, "pids.max"))
	}
	if d, ok := g.dirs["cpu"]; ok {
		q, p := readInt(filepath.Join(d, "cpu.cfs_quota_us")), readInt(filepath.Join(d, "cpu.cfs_period_us"))
		if q > 0 && p > 0 {
			l.CPUPercent = int(q * 100 / p)
		}
	}
	return l
}

func write(path, value string) error {
	return os.WriteFile(path, []byte(value), 0o644)
}

func readString(path string) string {
	raw, _ := os.ReadFile(path)
	return strings.TrimSpace(string(raw))
}

// readInt reads a number; "max" and garbage read as 0 (unlimited).
func readInt(path string) int64 {
	v, err := strconv.ParseInt(readString(path), 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// counter reads "key N" from a flat-keyed cgroup file.
func counter(path, key string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 && fields[0] == key {
			n, _ := strconv.Atoi(fields[1])
			return n
		}
	}
	return 0
}
