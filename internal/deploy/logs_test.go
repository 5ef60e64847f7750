package deploy

import (
	"context"
	"errors"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway.dev/slipway/internal/store"
	"slipway.dev/slipway/internal/testenv/memtest"
)

// memorySink takes lines as the store would. With keepOnly > 0 it keeps
// the first keepOnly lines and the last one and counts the rest, so a
// memory measurement sees the writer, not the sink's copy of the log.
type memorySink struct {
	mu       sync.Mutex
	keepOnly int
	lines    []string
	last     string
	count    int
	total    int
	batches  int
}

func (m *memorySink) AppendDeploymentLog(_ context.Context, _ string, lines []store.LogLine) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.batches++
	for _, l := range lines {
		m.count++
		m.total += len(l.Text)
		m.last = l.Text
		if m.keepOnly == 0 || len(m.lines) < m.keepOnly {
			m.lines = append(m.lines, l.Text)
		}
		if strings.Contains(l.Text, "s3cr3t") {
			return errSecretLogged
		}
	}
	return nil
}

var errSecretLogged = errors.New("a secret reached the log")

func (m *memorySink) bytes() int { return m.total }

// TestLogOf100MBIsCappedAndMemoryStaysFlat runs a real process printing
// 100 MB of lines and then 20 MB without a newline into a deployment's log
// writer: the log ends at 10 MiB with a visible marker, the overlong line
// is cut at 16 KiB, and this process's RSS barely moves.
func TestLogOf100MBIsCappedAndMemoryStaysFlat(t *testing.T) {
	sink := &memorySink{keepOnly: 2}
	w := newLogWriter(context.Background(), sink, "dep_test", LogLimits{})
	if w.lim.MaxBytes != 10<<20 || w.lim.MaxLine != 16<<10 {
		t.Fatalf("defaults not in place: %+v", w.lim)
	}
	runtime.GC()
	mem := memtest.Start(t)
	// A token the build echoes must stay masked, also where a line is cut.
	w.addSecret("s3cr3t-token-value")
	script := `head -c 20971520 /dev/zero | tr '\0' y; echo; yes 'building module 42: compiling a long line of output ........ s3cr3t-token-value' | head -c 104857600`
	cmd := exec.Command("sh", "-c", script)
	cmd.Stdout = w
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	base, peak := mem.Base, mem.Stop()
	t.Logf("120 MB of build output in %s: log %d bytes in %d lines (%d batches); RSS %d KiB before, peak %d KiB (+%d KiB)",
		time.Since(start).Round(time.Millisecond), sink.bytes(), sink.count, sink.batches, base, peak, peak-base)
	if got := sink.bytes(); got > 10<<20+200 || got < 10<<20-16<<10-200 {
		t.Errorf("log is %d bytes; want about 10 MiB", got)
	}
	last := sink.last
	if !strings.Contains(last, "log truncated") {
		t.Errorf("last line %q is not the truncation marker", last)
	}
	first := sink.lines[0]
	if len(first) > 16<<10+len(lineTruncatedMarker) || !strings.HasSuffix(first, lineTruncatedMarker) {
		t.Errorf("the 20 MB line was kept as %d bytes; want 16 KiB and the marker", len(first))
	}
	if !strings.HasPrefix(sink.lines[1], "building module 42") {
		t.Errorf("the rest of the cut line was not dropped: next line %.40q", sink.lines[1])
	}
	// (A secret reaching the sink fails Close above.)
	if grew := peak - base; grew > 16<<10 {
		t.Errorf("RSS grew by %d KiB while writing a capped 10 MiB log", grew)
	}
}

// TestLogCutKeepsNoSecretPrefix: a secret straddling the 16 KiB cut is not
// half-written into the log.
func TestLogCutKeepsNoSecretPrefix(t *testing.T) {
	sink := &memorySink{}
	w := newLogWriter(context.Background(), sink, "dep_test", LogLimits{MaxLine: 64})
	w.addSecret("ABCDEFGHIJ")
	w.Write([]byte(strings.Repeat("x", 60) + "ABCDEFGHIJ and more\nnext\n"))
	w.Close()
	if len(sink.lines) != 2 || strings.Contains(sink.lines[0], "ABCD") || sink.lines[1] != "next" {
		t.Fatalf("lines %q", sink.lines)
	}
}

func FuzzLogWriter(f *testing.F) {
	f.Add([]byte("a\nb\r\nc"), 8)
	f.Add([]byte(strings.Repeat("x", 100)+"\n\xff\xfe"), 16)
	f.Fuzz(func(t *testing.T, b []byte, split int) {
		sink := &memorySink{}
		w := newLogWriter(context.Background(), sink, "d", LogLimits{MaxBytes: 256, MaxLine: 32})
		split = max(1, split%64)
		for len(b) > 0 {
			n := min(split, len(b))
			w.Write(b[:n])
			b = b[n:]
		}
		w.Close()
		total := 0
		for _, l := range sink.lines {
			total += len(l)
			if strings.Contains(l, "\n") || !utf8Valid(l) {
				t.Fatalf("bad line %q", l)
			}
		}
		if total > 256+len(lineTruncatedMarker)+200 {
			t.Fatalf("log of %d bytes over the 256-byte cap", total)
		}
	})
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "") == s }
