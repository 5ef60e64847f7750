package netpolicy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"sync"
	"time"
)

// Git is what one git command (or a short series of them) needs so that
// it connects only where the policy allows: configuration passed with -c,
// a clean environment without user or system configuration, and, unless
// private networks are allowed, a loopback CONNECT proxy through which
// git's HTTPS goes and which dials through Policy.Dialer. SSH is pinned to
// the address checked here (HostName=<ip>, HostKeyAlias=<host>).
type Git struct {
	// Config is "-c key=value" arguments to put before git's subcommand.
	Config []string
	// SSH is the ssh command line git should use (without key options);
	// callers add "-i key" and host-key options after it.
	SSH string

	proxy *connectProxy
}

// Git prepares a git invocation against rawURL (whose scheme and literal
// host it checks first). Call Close when the command has finished.
func (p Policy) Git(ctx context.Context, rawURL string) (*Git, error) {
	if err := p.CheckURL(rawURL); err != nil {
		return nil, err
	}
	g := &Git{Config: []string{
		"-c", "protocol.allow=never",
		"-c", "protocol.https.allow=always",
		"-c", "protocol.ssh.allow=always",
		"-c", "credential.helper=",
		"-c", "core.hooksPath=/dev/null",
		"-c", "http.followRedirects=initial",
	}, SSH: "ssh -F /dev/null -o BatchMode=yes -o ProxyCommand=none -o ProxyJump=none"}
	if p.AllowPrivate {
		g.Config = append(g.Config, "-c", "protocol.http.allow=always")
	}
	if p.AllowFiles {
		g.Config = append(g.Config, "-c", "protocol.file.allow=always")
	}
	if p.AllowPrivate {
		return g, nil
	}
	scheme, host, _ := splitURL(rawURL)
	if scheme != "https" && scheme != "file" {
		ip, err := p.resolveOne(ctx, host)
		if err != nil {
			return nil, err
		}
		// Pinned: ssh connects to the address checked here whatever DNS
		// answers next, and still verifies the key under the host's name
		// (known_hosts spells a host on another port "[host]:port").
		alias := host
		if u, err := url.Parse(rawURL); err == nil && u.Port() != "" && u.Port() != "22" {
			alias = "[" + host + "]:" + u.Port()
		}
		g.SSH += " -o HostName=" + ip.String() + " -o HostKeyAlias=" + alias
	}
	proxy, err := startConnectProxy(p)
	if err != nil {
		return nil, err
	}
	g.proxy = proxy
	g.Config = append(g.Config, "-c", "http.proxy=http://"+proxy.addr())
	return g, nil
}

// Env is the whole environment for git: nothing inherited beyond PATH, no
// system or global configuration, no prompts.
func (g *Git) Env(home string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_PROTOCOL_FROM_USER=0",
		"LC_ALL=C",
	}
}

// Refused returns the policy's refusal of a connection git asked for, if
// the proxy refused one: the precise reason git itself cannot report.
func (g *Git) Refused() error {
	if g == nil || g.proxy == nil {
		return nil
	}
	return g.proxy.refused()
}

// Close stops the proxy.
func (g *Git) Close() {
	if g != nil && g.proxy != nil {
		g.proxy.close()
	}
}

func (p Policy) resolveOne(ctx context.Context, host string) (netip.Addr, error) {
	if ip, ok := ParseHostIP(host); ok {
		return ip, p.CheckIP(ip)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return netip.Addr{}, fmt.Errorf("resolve %s: %w", host, err)
	}
	for _, ip := range ips {
		if err := p.CheckIP(ip); err != nil {
			return netip.Addr{}, err // one bad answer taints the name
		}
	}
	return ips[0].Unmap(), nil
}

// connectProxy is a loopback HTTP proxy that serves CONNECT only and dials
// the target through the policy, so the check happens on the address git's
// connection actually reaches.
type connectProxy struct {
	ln     net.Listener
	policy Policy
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
	conns  map[net.Conn]struct{}
}

func startConnectProxy(p Policy) (*connectProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("netpolicy: start git proxy: %w", err)
	}
	cp := &connectProxy{ln: ln, policy: p, conns: map[net.Conn]struct{}{}}
	cp.wg.Add(1)
	go cp.serve()
	return cp, nil
}

func (cp *connectProxy) addr() string { return cp.ln.Addr().String() }

func (cp *connectProxy) serve() {
	defer cp.wg.Done()
	for {
		c, err := cp.ln.Accept()
		if err != nil {
			return
		}
		cp.track(c, true)
		cp.wg.Add(1)
		go func() {
			defer cp.wg.Done()
			defer cp.track(c, false)
			cp.handle(c)
		}()
	}
}

func (cp *connectProxy) track(c net.Conn, add bool) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if add {
		cp.conns[c] = struct{}{}
	} else {
		delete(cp.conns, c)
		c.Close()
	}
}

func (cp *connectProxy) handle(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect {
		cp.record(refuse("git asked for %s %s without TLS; only https is allowed", req.Method, req.URL.Redacted()))
		io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	up, err := cp.policy.DialContext(ctx, "tcp", req.Host)
	cancel()
	if err != nil {
		if e, ok := Refusal(err); ok {
			cp.record(e)
		}
		io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return
	}
	cp.track(up, true)
	defer cp.track(up, false)
	_ = c.SetReadDeadline(time.Time{})
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection Established\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, br); closeWrite(up); done <- struct{}{} }()
	go func() { io.Copy(c, up); closeWrite(c); done <- struct{}{} }()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

func (cp *connectProxy) record(err error) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.err == nil {
		cp.err = err
	}
}

func (cp *connectProxy) refused() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.err
}

func (cp *connectProxy) close() {
	cp.ln.Close()
	cp.mu.Lock()
	for c := range cp.conns {
		c.Close()
	}
	cp.mu.Unlock()
	cp.wg.Wait()
}
