// Package memtest measures this process's resident memory for tests that
// assert memory stays flat while something large streams through.
package memtest

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// RSSKiB is this process's resident set size (VmRSS) in KiB; the test is
// skipped where /proc is missing.
func RSSKiB(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("memtest: no /proc/self/status")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatal("memtest: no VmRSS in /proc/self/status")
	return 0
}

// Sampler records the peak RSS until Stop.
type Sampler struct {
	Base int // RSS at start, KiB
	peak atomic.Int64
	stop chan struct{}
	wg   sync.WaitGroup
}

// Start samples RSS every 20 ms.
func Start(t testing.TB) *Sampler {
	s := &Sampler{Base: RSSKiB(t), stop: make(chan struct{})}
	s.peak.Store(int64(s.Base))
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			select {
			case <-s.stop:
				return
			case <-time.After(20 * time.Millisecond):
				if r := int64(RSSKiB(t)); r > s.peak.Load() {
					s.peak.Store(r)
				}
			}
		}
	}()
	return s
}

// Stop ends sampling and returns the peak RSS in KiB.
func (s *Sampler) Stop() int {
	close(s.stop)
	s.wg.Wait()
	return int(s.peak.Load())
}
