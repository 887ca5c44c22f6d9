package function

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"

	"github.com/homelab-infra/homelab-infra/internal/repo"
)

// counting runs the function and records how many calls ran at once.
type counting struct {
	fnv1.UnimplementedFunctionRunnerServiceServer
	f            *Function
	now, most    atomic.Int32
	hold         chan struct{}
	started      chan struct{}
	startedCount atomic.Int32
}

func (c *counting) RunFunction(ctx context.Context, req *fnv1.RunFunctionRequest) (*fnv1.RunFunctionResponse, error) {
	n := c.now.Add(1)
	defer c.now.Add(-1)
	for {
		m := c.most.Load()
		if n <= m || c.most.CompareAndSwap(m, n) {
			break
		}
	}
	c.startedCount.Add(1)
	c.started <- struct{}{}
	<-c.hold
	return c.f.RunFunction(ctx, req)
}

// TestInFlight: 20 calls at once run the function 3 at a time, and each
// still gets its response; a call whose deadline passes while it waits
// gets DeadlineExceeded without running.
func TestInFlight(t *testing.T) {
	claims, input := exampleClaims(t)
	req, err := NewRequest(repo.XRFor(claims["dns01"]), input, nil, Offline())
	if err != nil {
		t.Fatal(err)
	}
	c := &counting{f: &Function{}, hold: make(chan struct{}), started: make(chan struct{}, 100)}
	srv := InFlight(c, 3)

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rsp, err := srv.RunFunction(context.Background(), req)
			if err == nil && len(rsp.GetDesired().GetResources()) == 0 {
				t.Error("a call got no composed resources")
			}
			errs <- err
		}()
	}
	for i := 0; i < 3; i++ {
		<-c.started
	}
	// Three run; the others wait. One more call gives up waiting.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := srv.RunFunction(ctx, req); grpcstatus.Code(err) != codes.DeadlineExceeded {
		t.Errorf("a call whose deadline passed while it waited: want DeadlineExceeded, got %v", err)
	}
	if got := c.startedCount.Load(); got != 3 {
		t.Errorf("want 3 calls running while the first are held, got %d", got)
	}
	close(c.hold)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a call failed: %v", err)
		}
	}
	if got := c.most.Load(); got != 3 {
		t.Errorf("want at most 3 calls running at once, got %d", got)
	}
	if got := c.startedCount.Load(); got != 20 {
		t.Errorf("want all 20 calls run, got %d", got)
	}
}
