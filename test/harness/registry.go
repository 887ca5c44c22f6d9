package harness

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// Registry is an OCI registry on loopback: go-containerregistry's
// implementation of the distribution API, in memory. The tests push the
// packages they build to it and Crossplane pulls them from it, over plain
// HTTP, which go-containerregistry (Crossplane's client too) uses for
// loopback addresses.
type Registry struct {
	// Host is host:port, as package names carry it.
	Host string
	srv  *http.Server
	done chan error
}

// StartRegistry serves an empty registry on a free loopback port.
func StartRegistry() (*Registry, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("cannot listen for the registry: %w", err)
	}
	r := &Registry{Host: l.Addr().String(), done: make(chan error, 1)}
	r.srv = &http.Server{
		Handler:           registry.New(registry.Logger(log.New(io.Discard, "", 0))),
		ReadHeaderTimeout: 30 * time.Second,
	}
	go func() { r.done <- r.srv.Serve(l) }()
	return r, nil
}

// Close stops the registry.
func (r *Registry) Close() error {
	err := r.srv.Close()
	if e := <-r.done; !errors.Is(e, http.ErrServerClosed) {
		err = errors.Join(err, e)
	}
	return err
}
