// Package dnstest is a DNS server on loopback for tests: it answers TXT
// questions from records the test sets, NXDOMAIN for anything else, over
// UDP and TCP, so Go's own resolver (pointed at it) is exercised for real.
package dnstest

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// Server is a running test DNS server.
type Server struct {
	Addr string // host:port of both listeners
	mu   sync.Mutex
	txt  map[string][]string
	ips  map[string][]netip.Addr
}

// Start runs a server until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("dnstest: %v", err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		t.Fatalf("dnstest: %v", err)
	}
	s := &Server{Addr: pc.LocalAddr().String(), txt: map[string][]string{}, ips: map[string][]netip.Addr{}}
	t.Cleanup(func() { pc.Close(); ln.Close() })
	go s.serveUDP(pc)
	go s.serveTCP(ln)
	return s
}

// SetTXT makes name answer TXT with values (none: NXDOMAIN again).
func (s *Server) SetTXT(name string, values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.txt[canonical(name)] = values
}

// SetIP makes name answer A (IPv4) and AAAA (IPv6) with addrs.
func (s *Server) SetIP(name string, addrs ...netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ips[canonical(name)] = addrs
}

func canonical(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) + "." }

func (s *Server) serveUDP(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if out, ok := s.answer(buf[:n]); ok {
			_, _ = pc.WriteTo(out, from)
		}
	}
}

func (s *Server) serveTCP(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			var size [2]byte
			if _, err := io.ReadFull(c, size[:]); err != nil {
				return
			}
			msg := make([]byte, binary.BigEndian.Uint16(size[:]))
			if _, err := io.ReadFull(c, msg); err != nil {
				return
			}
			if out, ok := s.answer(msg); ok {
				binary.BigEndian.PutUint16(size[:], uint16(len(out)))
				_, _ = c.Write(append(size[:], out...))
			}
		}()
	}
}

func (s *Server) answer(query []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	s.mu.Lock()
	values, found := s.txt[strings.ToLower(q.Name.String())]
	addrs, hasIP := s.ips[strings.ToLower(q.Name.String())]
	s.mu.Unlock()
	if q.Type == dnsmessage.TypeA || q.Type == dnsmessage.TypeAAAA {
		found = hasIP
		values = make([]string, len(addrs)) // counted below; answers are addrs
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	if !found || len(values) == 0 {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, false
	}
	if err := b.Question(q); err != nil {
		return nil, false
	}
	if err := b.StartAnswers(); err != nil {
		return nil, false
	}
	if found && q.Type == dnsmessage.TypeTXT {
		for _, v := range values {
			if err := b.TXTResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1},
				dnsmessage.TXTResource{TXT: []string{v}}); err != nil {
				return nil, false
			}
		}
	}
	for _, a := range addrs {
		rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}
		switch {
		case q.Type == dnsmessage.TypeA && a.Is4():
			err = b.AResource(rh, dnsmessage.AResource{A: a.As4()})
		case q.Type == dnsmessage.TypeAAAA && a.Is6():
			err = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
		if err != nil {
			return nil, false
		}
	}
	out, err := b.Finish()
	return out, err == nil
}
