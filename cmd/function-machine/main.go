// Command function-machine serves the Machine composition function over gRPC.
// All logic lives in internal/function; this is flags and a server.
//
// In a cluster Crossplane runs it with mTLS certificates in
// TLS_SERVER_CERTS_DIR (tls.crt, tls.key, ca.crt). For `crossplane render`,
// run it with --insecure and annotate the Function with
// render.crossplane.io/runtime: Development (see crossplane/functions.yaml).
package main

import (
	"os"
	"runtime/debug"

	"github.com/alecthomas/kong"

	sdk "github.com/crossplane/function-sdk-go"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"

	"github.com/homelab-infra/homelab-infra/internal/function"
)

type cli struct {
	Debug              bool   `short:"d" help:"Emit debug logs as well as info logs."`
	Network            string `default:"tcp" help:"Network on which to listen for gRPC connections."`
	Address            string `default:":9443" help:"Address at which to listen for gRPC connections."`
	TLSCertsDir        string `name:"tls-server-certs-dir" env:"TLS_SERVER_CERTS_DIR" help:"Folder with the server certificate (tls.crt, tls.key) and the CA that signs Crossplane's client certificates (ca.crt)."`
	Insecure           bool   `help:"Serve without mTLS (development and crossplane render only); --tls-server-certs-dir is then ignored."`
	MetricsAddress     string `default:":8080" help:"Address of the Prometheus metrics endpoint; empty turns it off."`
	MaxRecvMessageSize int    `default:"4" help:"Largest request accepted, in MB."`
	MaxConcurrentCalls int    `default:"0" help:"Calls the function runs at once; more wait their turn. 0: twice the CPUs Go uses (GOMAXPROCS)."`
	MemoryLimitMiB     int64  `name:"memory-limit-mib" default:"192" help:"Soft memory limit of the Go runtime, in MiB, when GOMEMLIMIT is not set; 0 sets none."`
}

func (c *cli) Run() error {
	log, err := sdk.NewLogger(c.Debug)
	if err != nil {
		return err
	}
	// Under Crossplane's 100 concurrent reconciles the process's memory is
	// bounded by design, not by GC timing: calls beyond the cores wait
	// (function.InFlight), and the runtime collects harder as the heap
	// nears the limit instead of letting it double (GOGC's headroom).
	// GOMEMLIMIT, when set, is the runtime's own and wins.
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && c.MemoryLimitMiB > 0 {
		debug.SetMemoryLimit(c.MemoryLimitMiB << 20)
	}
	return c.serve(function.InFlight(&function.Function{Log: log}, c.MaxConcurrentCalls))
}

// serve serves fn as configured. The benchmark serves its no-op floor
// through it too, so both run behind the same server and options.
func (c *cli) serve(fn fnv1.FunctionRunnerServiceServer) error {
	return sdk.Serve(fn,
		sdk.Listen(c.Network, c.Address),
		sdk.MTLSCertificates(c.TLSCertsDir),
		sdk.Insecure(c.Insecure),
		sdk.WithMetricsServer(c.MetricsAddress),
		sdk.MaxRecvMessageSize(c.MaxRecvMessageSize*1024*1024))
}

func main() {
	ctx := kong.Parse(&cli{}, kong.Name("function-machine"),
		kong.Description("The Machine composition function: composes an XMachine into a Proxmox VM and its cloud-init snippet."))
	ctx.FatalIfErrorf(ctx.Run())
}
