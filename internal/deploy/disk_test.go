package deploy

import (
	"strings"
	"syscall"
	"testing"

	"slipway.dev/slipway"
)

// TestDiskGuardRefusesANearlyFullDisk measures the real filesystem of a
// temporary directory and puts the threshold just above and just below
// its free space.
func TestDiskGuardRefusesANearlyFullDisk(t *testing.T) {
	dir := t.TempDir()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := 100 * float64(st.Bavail) / float64(st.Blocks)
	err := DiskGuard{Dirs: []string{dir}, MinFreePercent: free + 1}.check()
	e, ok := slipway.AsError(err)
	if !ok || e.Code != slipway.ECodeUnavailable || !strings.Contains(e.Message, dir) || !strings.Contains(e.Message, "nearly full") || e.Fix == "" {
		t.Fatalf("threshold above the free space (%.1f%%): %v", free, err)
	}
	if free > 1 {
		if err := (DiskGuard{Dirs: []string{dir}, MinFreePercent: free - 1}).check(); err != nil {
			t.Fatalf("threshold below the free space: %v", err)
		}
	}
	if err := (DiskGuard{Dirs: []string{dir}}).check(); err != nil {
		t.Fatalf("guard off: %v", err)
	}
}
