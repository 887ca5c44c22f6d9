package vaulttest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy is a TCP forwarder on loopback in front of a real server, which a
// test can take down and bring back: "Vault is unreachable" as the machine
// sees it (connection refused) while the dev server, which keeps its data
// only in memory, keeps running. It models nothing of Vault.
type Proxy struct {
	// Addr is the proxy's http://127.0.0.1:<port>.
	Addr     string
	target   string
	hostport string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

// NewProxy forwards a loopback port to the server at target (host:port).
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{target: target, hostport: ln.Addr().String(), conns: map[net.Conn]bool{}}
	p.Addr = "http://" + p.hostport
	p.serve(ln)
	t.Cleanup(p.Down)
	return p
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
}

func (p *Proxy) pipe(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// Down stops listening and cuts every open connection.
func (p *Proxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

// Up listens again on the same port.
func (p *Proxy) Up(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", p.hostport)
	if err != nil {
		t.Fatalf("cannot bring the proxy back on %s: %v", p.hostport, err)
	}
	p.serve(ln)
}

// HostPort is the server's address without the scheme.
func (s *Server) HostPort() string { return s.Addr[len("http://"):] }
