package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// FreeLoopbackPort asks the kernel for a free TCP port on 127.0.0.1. The
// port is released before it is returned, so another process could take
// it first; the health check then fails and the deployment says so.
func FreeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// LoopbackAddr is the address a release on port listens on.
func LoopbackAddr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// probeHTTP makes one health request. With no health path the release is
// healthy once "/" answers anything below 500; with one, the path must
// answer 2xx or 3xx.
func probeHTTP(ctx context.Context, hc *http.Client, addr, healthPath string) error {
	path := healthPath
	if path == "" {
		path = "/"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return fmt.Errorf("health request: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if healthPath == "" && resp.StatusCode < 500 {
		return nil
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return nil
	}
	return fmt.Errorf("GET %s answered %d", path, resp.StatusCode)
}

// WaitHealthy polls the release at addr until its health check passes,
// alive reports it gone, or ctx ends. It returns the reason it gave up: the
// error from alive, or the last probe failure when time ran out.
func WaitHealthy(ctx context.Context, addr, healthPath string, alive func(context.Context) error) error {
	hc := &http.Client{
		Timeout: 2 * time.Second,
		// A redirect to another host must not make the check leave the
		// loopback interface.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	lastErr, first := errors.New("no health check ran"), true
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("gave up waiting (%w); last check: %v", err, lastErr)
		}
		if err := alive(ctx); err != nil {
			if ctx.Err() != nil {
				continue // the deadline, not the release, ended the check
			}
			return err
		}
		err := probeHTTP(ctx, hc, addr, healthPath)
		if err == nil {
			return nil
		}
		// A probe cut short by the deadline says nothing about the release;
		// the one before it does.
		if ctx.Err() == nil || first {
			lastErr = err
		}
		first = false
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}
