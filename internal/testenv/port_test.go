package testenv

import (
	"net"
	"strconv"
	"testing"
)

func TestFreePorts(t *testing.T) {
	lo, err := ephemeralLow()
	if err != nil {
		t.Fatal(err)
	}
	ports, err := FreePorts(50)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Errorf("port %d handed out twice", p)
		}
		seen[p] = true
		if p < portFloor || p >= lo {
			t.Errorf("port %d: want one in [%d, %d), below the ephemeral range outgoing connections take ports from", p, portFloor, lo)
		}
		// Released, and free for the component to bind.
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Errorf("port %d: cannot bind it after it was handed out: %v", p, err)
			continue
		}
		_ = l.Close()
	}
}

func TestFreePortRun(t *testing.T) {
	first, err := FreePortRun(2)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []int{first, first + 1} {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d of the run from %d: cannot bind it: %v", p, first, err)
		}
		_ = l.Close()
	}
}

// TestListenRunSeesEveryAddress: a port some process listens on at one
// address is not free for a component that binds the wildcard (Crossplane's
// metrics listener binds ":port").
func TestListenRunSeesEveryAddress(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	p := taken.Addr().(*net.TCPAddr).Port
	if ls, ok := listenRun(p, 1); ok {
		closeAll(ls)
		t.Errorf("listenRun(%d): port held on 127.0.0.1 reported free", p)
	}
	// A run whose second port is taken is refused whole.
	if ls, ok := listenRun(p-1, 2); ok {
		closeAll(ls)
		t.Errorf("listenRun(%d, 2): run over a held port reported free", p-1)
	}
}
