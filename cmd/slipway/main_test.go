package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"slipway.dev/slipway/internal/forge/providers"
	"slipway.dev/slipway/internal/netpolicy"
	"slipway.dev/slipway/internal/server"
	"slipway.dev/slipway/internal/testenv/pgtest"
)

// TestMain lets the scripts run this test binary as `slipway`: the real
// main, so signals and exit codes behave as in the shipped binary.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"slipway": main})
}

// TestScripts runs the end-to-end CLI scripts in testdata/script on
// SQLite. Each script gets its own work directory, HOME and server.
func TestScripts(t *testing.T) {
	testscript.Run(t, scriptParams(nil))
}

// TestScriptsPostgres runs the same scripts with PostgreSQL as the
// database, each script on a fresh database of its own.
func TestScriptsPostgres(t *testing.T) {
	scripts, err := filepath.Glob(filepath.Join("testdata", "script", "*.txtar"))
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts found: %v", err)
	}
	urls := map[string]string{}
	for _, s := range scripts {
		urls[strings.TrimSuffix(filepath.Base(s), ".txtar")] = pgtest.URL(t)
	}
	testscript.Run(t, scriptParams(urls))
}

// scriptParams configures the scripts. databaseURLs maps a script name to
// its PostgreSQL database; nil means SQLite.
func scriptParams(databaseURLs map[string]string) testscript.Params {
	return testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			home := filepath.Join(env.WorkDir, "home")
			if err := os.MkdirAll(home, 0o700); err != nil {
				return err
			}
			env.Setenv("HOME", home)
			env.Setenv("XDG_CONFIG_HOME", "")
			if databaseURLs != nil {
				// testscript names work directories "script-NAME".
				name := strings.TrimPrefix(filepath.Base(env.WorkDir), "script-")
				u, ok := databaseURLs[name]
				if !ok {
					return fmt.Errorf("no database prepared for script %s", name)
				}
				// `slipway serve` and startserver both read it.
				env.Setenv("SLIPWAY_DATABASE_URL", u)
			}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"startserver": cmdStartServer,
			"freeport":    cmdFreePort,
			"waithttp":    cmdWaitHTTP,
			"envfile":     cmdEnvFile,
		},
	}
}

// cmdStartServer starts a control plane in the test process on
// 127.0.0.1:0 with a data directory in the script's work directory, the
// real Git providers and the process runtime, then sets $SERVER and $TOKEN
// (the first-start administrator token). $SLIPWAY_DATABASE_URL, when set,
// selects PostgreSQL. The server stops when the script
// ends. Usage: startserver [datadir]
func cmdStartServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! startserver")
	}
	dataDir := ts.MkAbs("data")
	if len(args) > 0 {
		dataDir = ts.MkAbs(args[0])
	}
	logFile, err := os.Create(ts.MkAbs("server.log"))
	ts.Check(err)
	logger := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := server.Start(ctx, server.Config{
		DataDir:           dataDir,
		Addr:              "127.0.0.1:0",
		DatabaseURL:       ts.Getenv("SLIPWAY_DATABASE_URL"),
		ReconcileInterval: -1,
		Forges:            providers.All(logger, netpolicy.Policy{AllowPrivate: true}),
		Network:           netpolicy.Policy{AllowPrivate: true}, // the test Gitea is on loopback
		NewRuntime:        newRuntime("process", logger),
		// Nothing listens there: ownership checks fail without a packet
		// leaving the machine.
		DNSResolver: "127.0.0.1:1",
		Logger:      logger,
	})
	ts.Check(err)
	ts.Defer(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			ts.Logf("server shutdown: %v", err)
		}
		_ = logFile.Close()
	})
	ts.Setenv("SERVER", srv.URL())
	ts.Setenv("TOKEN", srv.Bootstrap.Token)
}

// cmdFreePort sets the named variable to a loopback port that was free a
// moment ago, for scripts that run `slipway serve` itself and must know
// where it listens. Usage: freeport VAR
func cmdFreePort(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: freeport VAR")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	port := ln.Addr().(*net.TCPAddr).Port
	ts.Check(ln.Close())
	ts.Setenv(args[0], strconv.Itoa(port))
}

// cmdWaitHTTP waits until URL answers 200 (or, negated, until it stops
// answering), for at most 30 seconds. Usage: [!] waithttp URL
func cmdWaitHTTP(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: waithttp URL")
	}
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := client.Get(args[0])
		up := err == nil && resp.StatusCode == http.StatusOK
		if err == nil {
			resp.Body.Close()
			last = resp.Status
		} else {
			last = err.Error()
		}
		if up != neg {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	ts.Fatalf("%s: still %s after 30s", args[0], fmt.Sprint(last))
}

// cmdEnvFile sets a variable to the trimmed content of a file, e.g. the
// admin token `slipway serve` writes on first start.
// Usage: envfile VAR FILE
func cmdEnvFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: envfile VAR FILE")
	}
	ts.Setenv(args[0], strings.TrimSpace(ts.ReadFile(args[1])))
}
