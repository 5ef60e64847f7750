package deploy

import (
	"fmt"
	"syscall"

	"slipway.dev/slipway"
)

// DiskGuard refuses to start a deployment when the filesystem holding a
// directory (the workspaces, the data directory) is nearly full: a build
// that fills the disk would take the database and every other Service's
// deploys down with it.
type DiskGuard struct {
	Dirs []string
	// MinFreePercent is the least free space, in percent of the
	// filesystem, a deploy starts with; 0 turns the guard off.
	MinFreePercent float64
}

// DefaultMinFreePercent is the installation default (--min-free-disk).
const DefaultMinFreePercent = 5

// SetDiskGuard sets the guard checked before every deployment.
func (p *Pipeline) SetDiskGuard(g DiskGuard) { p.disk = g }

// check returns a refusal naming the directory and the free space when a
// filesystem is below the threshold.
func (g DiskGuard) check() error {
	if g.MinFreePercent <= 0 {
		return nil
	}
	for _, dir := range g.Dirs {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			continue // a missing directory is created later; nothing to measure yet
		}
		total := float64(st.Blocks) * float64(st.Bsize)
		free := float64(st.Bavail) * float64(st.Bsize)
		if total <= 0 {
			continue
		}
		if pct := 100 * free / total; pct < g.MinFreePercent {
			return slipway.Errorf(slipway.ECodeUnavailable,
				"the disk holding %s is nearly full: %.1f GiB free (%.1f%%), and deploys start only with at least %.0f%% free",
				dir, free/(1<<30), pct, g.MinFreePercent).
				WithFix(fmt.Sprintf("free space on the host (old images and builds), then deploy again; the threshold is `slipway serve --min-free-disk` (now %.0f%%)", g.MinFreePercent))
		}
	}
	return nil
}
