package sandbox

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
)

func TestUserName(t *testing.T) {
	cases := map[string]string{
		"svc_5k2q9x3m7d1c8v4b":     "slipway-5k2q9x3m7d1c8v4b",
		"svc_ABCdef-123_xyz":       "slipway-abcdef123xyz",
		"svc_0123456789abcdefghij": "slipway-0123456789abcdef",
	}
	for in, want := range cases {
		if got := UserName(in); got != want {
			t.Errorf("UserName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCommandEnvironmentIsClean(t *testing.T) {
	t.Setenv("SLIPWAY_MASTER_KEY", "must-not-leak")
	m, err := New(slog.New(slog.NewTextHandler(io.Discard, nil)), Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	cmd := m.Command(Spec{Home: home, Dir: home, Script: "env; ulimit -n", Env: map[string]string{"GREETING": "hi", "HOME": "/elsewhere"},
		Limits: Limits{OpenFiles: 321}})
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	s := string(out)
	if strings.Contains(s, "must-not-leak") {
		t.Error("Slipway's environment leaked into the command")
	}
	for _, want := range []string{"GREETING=hi", "HOME=" + home, "PATH=" + DefaultPath, "\n321\n"} {
		if !strings.Contains("\n"+s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if os.Geteuid() == 0 && !m.Isolating() {
		t.Error("root but not isolating")
	}
}
