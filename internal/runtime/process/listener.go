package process

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// tcpListen is the st value of a listening socket in /proc/net/tcp.
const tcpListen = "0A"

// listenerUIDs parses /proc/net/tcp or /proc/net/tcp6 and returns the uid
// of every listening socket on port. Malformed lines are skipped: the
// file is the kernel's, but the parser must not trust its shape.
func listenerUIDs(r io.Reader, port int) []uint32 {
	var uids []uint32
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<16)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid ...
		if len(f) < 8 || f[3] != tcpListen {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil || int(p) != port {
			continue
		}
		uid, err := strconv.ParseUint(f[7], 10, 32)
		if err != nil {
			continue
		}
		uids = append(uids, uint32(uid))
	}
	return uids
}

// checkListenerOwner fails unless every listener on the release's port
// belongs to the release's user (or, when not isolating, to Slipway's).
func (p *supervised) checkListenerOwner() error {
	want := uint32(os.Geteuid())
	if !p.rel.User.IsZero() {
		want = p.rel.User.UID
	}
	dir := p.rt.opts.ProcNet
	if dir == "" {
		dir = "/proc/net"
	}
	var all []uint32
	for _, name := range []string{"tcp", "tcp6"} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		all = append(all, listenerUIDs(f, p.port)...)
		f.Close()
	}
	if len(all) == 0 {
		return fmt.Errorf("nothing of the release listens on port %d", p.port)
	}
	for _, uid := range all {
		if uid != want {
			return fmt.Errorf("port %d is held by another user (uid %d), not by the release (uid %d); traffic does not move", p.port, uid, want)
		}
	}
	return nil
}
