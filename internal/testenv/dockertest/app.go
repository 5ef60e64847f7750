package dockertest

import (
	"os"
	"path/filepath"
	"testing"
)

// HTTPApp writes a build context for a tiny web app on the base image:
// busybox httpd on 127.0.0.1:$PORT serving /version (the given text) and
// /healthz. It returns the directory.
func HTTPApp(t testing.TB, version string) string {
	t.Helper()
	return writeApp(t, version, true)
}

// HTTPAppWithoutHealth is HTTPApp with no /healthz: a health check on
// /healthz gets 404 and never passes.
func HTTPAppWithoutHealth(t testing.TB, version string) string {
	t.Helper()
	return writeApp(t, version, false)
}

// CrashingApp writes a build context whose container prints message to
// stderr and exits with status 3.
func CrashingApp(t testing.TB, message string) string {
	t.Helper()
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "Dockerfile"), "FROM "+BaseImageRef+"\n"+
		`CMD ["sh", "-c", "echo starting; echo '`+message+`' >&2; exit 3"]`+"\n")
	return dir
}

func writeApp(t testing.TB, version string, health bool) string {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "Dockerfile"), "FROM "+BaseImageRef+"\n"+
		"COPY www /www\n"+
		// exec so httpd gets SIGTERM on stop; -f keeps it in the foreground.
		`CMD ["sh", "-c", "exec httpd -f -v -p 127.0.0.1:$PORT -h /www"]`+"\n")
	mustWrite(t, filepath.Join(dir, "www", "version"), version)
	mustWrite(t, filepath.Join(dir, "www", "index.html"), "<p>"+version+"</p>\n")
	if health {
		mustWrite(t, filepath.Join(dir, "www", "healthz"), "ok\n")
	}
	return dir
}

func mustWrite(t testing.TB, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
