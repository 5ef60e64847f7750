package deploy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"slipway.dev/slipway/internal/store"
)

// LogLimits bound a deployment's log. Zero fields take the defaults.
type LogLimits struct {
	MaxBytes int // whole log, default 10 MiB
	MaxLine  int // one line, default 16 KiB
}

// Log limit defaults.
const (
	DefaultLogMaxBytes = 10 << 20
	DefaultLogMaxLine  = 16 << 10
)

func (l LogLimits) withDefaults() LogLimits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultLogMaxBytes
	}
	if l.MaxLine <= 0 {
		l.MaxLine = DefaultLogMaxLine
	}
	return l
}

// Markers written into a log where output was dropped.
const (
	lineTruncatedMarker = " … [line truncated]"
	logTruncatedMarker  = "==> log truncated: this deployment's log reached its limit of %d bytes; later output is not kept"
)

// Batching: lines go to the database in groups, not one row per write; a
// timer flushes what waits so a following stream still sees a quiet build's
// last line promptly.
const (
	flushLines = 256
	flushBytes = 64 << 10
	flushAfter = 250 * time.Millisecond
)

// logSink is where log lines go (the store).
type logSink interface {
	AppendDeploymentLog(ctx context.Context, deploymentID string, lines []store.LogLine) error
}

// logWriter appends a deployment's output to its durable log, line by
// line, masking every secret it was told about. Memory stays bounded
// whatever the build prints: a partial line is held up to MaxLine bytes
// (the rest of an overlong line is dropped and the line marked), and after
// MaxBytes the log ends with a visible marker and further output is
// discarded (the build itself keeps running). Each byte is scanned once.
type logWriter struct {
	ctx          context.Context
	st           logSink
	id           string
	lim          LogLimits
	mu           sync.Mutex
	partial      []byte // the current line so far, at most lim.MaxLine bytes
	cutLine      bool   // the current line overflowed: drop until its end
	pending      []store.LogLine
	pendingBytes int
	written      int // bytes of text accepted into the log
	full         bool
	timer        *time.Timer
	err          error
	secrets      []string
}

func newLogWriter(ctx context.Context, st logSink, id string, lim LogLimits) *logWriter {
	return &logWriter{ctx: context.WithoutCancel(ctx), st: st, id: id, lim: lim.withDefaults()}
}

func (l *logWriter) addSecret(s string) {
	if len(s) >= 4 {
		l.mu.Lock()
		l.secrets = append(l.secrets, s)
		l.mu.Unlock()
	}
}

func (l *logWriter) mask(s string) string {
	for _, sec := range l.secrets {
		s = strings.ReplaceAll(s, sec, "********")
	}
	return s
}

func (l *logWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(b)
	for len(b) > 0 && !l.full {
		i := bytes.IndexByte(b, '\n')
		chunk := b
		if i >= 0 {
			chunk = b[:i]
		}
		if !l.cutLine {
			room := l.lim.MaxLine - len(l.partial)
			if len(chunk) > room {
				l.partial = append(l.partial, chunk[:room]...)
				l.cutLine = true
				l.endLine(l.withoutSecretStart(l.partial) + lineTruncatedMarker)
			} else {
				l.partial = append(l.partial, chunk...)
			}
		}
		if i < 0 {
			break
		}
		if !l.cutLine {
			l.endLine(string(l.partial))
		}
		l.partial, l.cutLine = l.partial[:0], false
		b = b[i+1:]
	}
	if l.err != nil {
		return 0, l.err
	}
	// Past the limit the output is dropped, not refused: a build must not
	// fail because it is chatty.
	return n, nil
}

// withoutSecretStart returns a cut line without its last bytes that could
// begin a secret running past the cut (masking needs the whole secret).
func (l *logWriter) withoutSecretStart(line []byte) string {
	longest := 0
	for _, s := range l.secrets {
		longest = max(longest, len(s))
	}
	keep := len(line) - max(longest-1, 0)
	s := string(line[:max(keep, 0)])
	return l.mask(s)
}

// endLine queues one finished line (lock held). Text is made valid UTF-8:
// a cut can split a character, and build output is not always UTF-8.
func (l *logWriter) endLine(text string) {
	text = strings.ToValidUTF8(l.mask(strings.TrimRight(text, "\r")), "\uFFFD")
	if l.written+len(text) > l.lim.MaxBytes {
		l.full = true
		text = fmt.Sprintf(logTruncatedMarker, l.lim.MaxBytes)
	}
	l.written += len(text)
	l.pending = append(l.pending, store.LogLine{At: time.Now().UTC(), Stream: "build", Text: text})
	l.pendingBytes += len(text)
	if len(l.pending) >= flushLines || l.pendingBytes >= flushBytes || l.full {
		l.flushLocked()
		return
	}
	if l.timer == nil {
		l.timer = time.AfterFunc(flushAfter, func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.flushLocked()
		})
	}
}

func (l *logWriter) flushLocked() {
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	if len(l.pending) == 0 {
		return
	}
	if err := l.st.AppendDeploymentLog(l.ctx, l.id, l.pending); err != nil && l.err == nil {
		l.err = err
	}
	l.pending, l.pendingBytes = nil, 0
}

// Flush sends the queued lines now (a status change is about to be seen).
func (l *logWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
}

func flushLogs(w io.Writer) {
	if f, ok := w.(interface{ Flush() }); ok {
		f.Flush()
	}
}

// Close writes a final partial line and everything still queued.
func (l *logWriter) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 && !l.cutLine && !l.full {
		l.endLine(string(l.partial))
	}
	l.partial = nil
	l.flushLocked()
	return l.err
}
