package dockertest

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TCPListeners lists the local addresses that have a listening socket on
// addr's port, read from the kernel's socket tables (/proc/net/tcp and
// tcp6). Containers on the host network share these tables, so a test can
// prove a release listens on 127.0.0.1 and nowhere else. Addresses other
// than 127.0.0.1 are reported in the kernel's hex form.
func TCPListeners(t testing.TB, addr string) []string {
	t.Helper()
	_, portText, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		t.Fatal(err)
	}
	suffix := fmt.Sprintf(":%04X", port)
	var found []string
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			const listen = "0A"
			if len(fields) < 4 || fields[3] != listen || !strings.HasSuffix(fields[1], suffix) {
				continue
			}
			host := strings.TrimSuffix(fields[1], suffix)
			if host == "0100007F" {
				host = "127.0.0.1"
			}
			found = append(found, host)
		}
	}
	return found
}
