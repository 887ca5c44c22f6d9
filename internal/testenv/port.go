package testenv

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// Ports for the processes a test starts, chosen where nothing else takes
// them between the choice and the bind.
//
// Listening on port 0 hands out a port from the kernel's ephemeral range
// (net.ipv4.ip_local_port_range, 32768-60999 by default), the range every
// outgoing connection takes its source port from. A port chosen that way
// and released for a component to bind is open to the thousands of client
// connections a control plane makes: a cold make test, its suites side by
// side, once saw Crossplane exit with "listen tcp :33175: bind: address
// already in use" that way. The kernel never hands out a port below the
// range by itself, so a port chosen there at random can only collide with
// another test's explicit choice, among some 17,000.

// portFloor is the lowest port chosen: above the ports of common services.
const portFloor = 15000

// FreePorts returns n distinct ports that are free on every loopback and
// wildcard address (a component may bind ":port"), outside the ephemeral range.
func FreePorts(n int) ([]int, error) {
	lo, err := ephemeralLow()
	if err != nil {
		return nil, err
	}
	ports := make([]int, 0, n)
	var held []net.Listener
	defer func() { closeAll(held) }()
	for len(ports) < n {
		// Each port is held until all are chosen, so none is chosen twice.
		p, ls, err := freeRun(lo, 1)
		if err != nil {
			return nil, err
		}
		held = append(held, ls...)
		ports = append(ports, p)
	}
	return ports, nil
}

// FreePortRun returns the first of n adjacent free ports (Vault's cluster
// listener is its API port plus one).
func FreePortRun(n int) (int, error) {
	lo, err := ephemeralLow()
	if err != nil {
		return 0, err
	}
	p, ls, err := freeRun(lo, n)
	closeAll(ls)
	return p, err
}

// freeRun finds n adjacent free ports between portFloor and lo, the start
// of the ephemeral range, and returns the first with the listeners that
// hold them.
func freeRun(lo, n int) (int, []net.Listener, error) {
	span := lo - portFloor - n
	if span < 1000 {
		return 0, nil, fmt.Errorf("cannot choose a port: the ephemeral range starts at %d, leaving too few ports above %d", lo, portFloor)
	}
	for range 200 {
		first := portFloor + rand.IntN(span)
		ls, ok := listenRun(first, n)
		if ok {
			return first, ls, nil
		}
	}
	return 0, nil, fmt.Errorf("cannot find %d adjacent free ports between %d and %d", n, portFloor, lo)
}

// listenRun listens on ports first..first+n-1 on the wildcard address, which
// conflicts with a listener on any address; on any failure it closes what it
// opened.
func listenRun(first, n int) ([]net.Listener, bool) {
	ls := make([]net.Listener, 0, n)
	for p := first; p < first+n; p++ {
		l, err := net.Listen("tcp", ":"+strconv.Itoa(p))
		if err != nil {
			closeAll(ls)
			return nil, false
		}
		ls = append(ls, l)
	}
	return ls, true
}

func closeAll(ls []net.Listener) {
	for _, l := range ls {
		_ = l.Close()
	}
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() (int, error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if errors.Is(err, os.ErrNotExist) {
		return 32768, nil // not Linux: IANA's dynamic range starts higher still (49152)
	}
	if err != nil {
		return 0, fmt.Errorf("cannot read the ephemeral port range: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, fmt.Errorf("cannot parse the ephemeral port range %q", b)
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, fmt.Errorf("cannot parse the ephemeral port range %q: %w", b, err)
	}
	return lo, nil
}
