package function

import (
	"context"
	"runtime"

	grpcstatus "google.golang.org/grpc/status"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
)

// InFlight serves fn running at most n calls at once (n <= 0: twice
// GOMAXPROCS); the others wait their turn, or until their deadline
// (DeadlineExceeded or Canceled, from their context).
//
// Crossplane calls the function from up to one worker per XR controller
// (100 by default) at once. The function does no I/O, so calls beyond the
// cores only take turns at the CPU, each holding its working memory (the
// request decoded, the resources composed, the response) meanwhile, and
// the heap, and with GOGC the memory the runtime keeps, grows with
// Crossplane's concurrency instead of the machine's. Waiting here, a call
// holds only the request gRPC decoded for it.
func InFlight(fn fnv1.FunctionRunnerServiceServer, n int) fnv1.FunctionRunnerServiceServer {
	if n <= 0 {
		n = 2 * runtime.GOMAXPROCS(0)
	}
	return &inFlight{fn: fn, slots: make(chan struct{}, n)}
}

type inFlight struct {
	fnv1.UnimplementedFunctionRunnerServiceServer

	fn    fnv1.FunctionRunnerServiceServer
	slots chan struct{}
}

func (f *inFlight) RunFunction(ctx context.Context, req *fnv1.RunFunctionRequest) (*fnv1.RunFunctionResponse, error) {
	select {
	case f.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, grpcstatus.FromContextError(ctx.Err()).Err()
	}
	defer func() { <-f.slots }()
	return f.fn.RunFunction(ctx, req)
}
