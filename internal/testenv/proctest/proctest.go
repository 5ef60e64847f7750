// Package proctest finds processes for tests that check nothing a build
// or release started outlives it.
package proctest

import (
	"os"
	"path/filepath"
	"strings"
)

// Running lists the pids of live (not zombie) processes whose command
// line, with its NUL separators removed, is cmd.
func Running(cmd string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || strings.ReplaceAll(string(raw), "\x00", "") != cmd {
			continue
		}
		if st, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); !strings.Contains(string(st), ") Z ") {
			out = append(out, e.Name())
		}
	}
	return out
}
