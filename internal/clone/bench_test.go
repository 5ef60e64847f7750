package clone

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// largeRepo generates, once per benchmark run, a repository of
// files×commits with git fast-import: every commit rewrites a slice of the
// files, so history is deep and the tip tree is wide.
func largeRepo(b *testing.B, files, commits int) (dir, tip string) {
	b.Helper()
	dir = b.TempDir()
	gitIn(b, dir, "init", "-q", "-b", "main")
	cmd := exec.Command("git", "fast-import", "--quiet")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(in, 1<<20)
	for c := 0; c < commits; c++ {
		msg := fmt.Sprintf("commit %d", c)
		fmt.Fprintf(w, "commit refs/heads/main\ncommitter Bench <bench@example.test> %d +0000\ndata %d\n%s\n", 1700000000+c, len(msg), msg)
		for f := 0; f < files; f++ {
			if c > 0 && f%commits != c%commits && f%17 != c%17 {
				continue
			}
			body := fmt.Sprintf("package pkg%d\n\n// revision %d of file %d\nvar V = %q\n", f/100, c, f, fmt.Sprint(f*c))
			for len(body) < 2048 {
				body += "// padding line to give the file a realistic size...........\n"
			}
			fmt.Fprintf(w, "M 644 inline dir%03d/file%05d.go\ndata %d\n%s\n", f/100, f, len(body), body)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		b.Fatal(err)
	}
	gitIn(b, dir, "repack", "-adq")
	return dir, gitIn(b, dir, "rev-parse", "main")
}

// BenchmarkClone compares the time of our single-commit fetch with a plain
// "git clone --depth 1" of the same repository over file://. Memory is
// measured in BenchmarkCloneGoGit with /usr/bin/time: the rusage of a git
// child started from Go reports at least the Go parent's own peak (the
// child is charged the parent's memory until it execs), so it is not
// reported here.
func BenchmarkClone(b *testing.B) {
	requireGit(b)
	repo, tip := largeRepo(b, 5000, 300)
	url := "file://" + repo

	b.Run("fetch-sha", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			dst := filepath.Join(b.TempDir(), "c")
			if _, err := Fetch(context.Background(), Options{Network: testNet, URL: url, SHA: tip, Dir: dst}, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("git-clone-depth1", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			dst := filepath.Join(b.TempDir(), "c")
			cmd := exec.Command("git", "clone", "-q", "--depth", "1", "--no-tags", url, dst)
			cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1")
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("git clone: %v\n%s", err, out)
			}
		}
	})
}
