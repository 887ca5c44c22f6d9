package function

import (
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/homelab-infra/homelab-infra/internal/machine"
)

// validSpecs keeps each XR's spec as last decoded and found valid.
// Crossplane sends the same spec in both calls of a reconcile and at every
// poll, and decoding and validating it was a sixth of the function's CPU
// per call (issue 21). An entry is used only for the same spec, value for
// value (sameStruct, which allocates nothing), validated against the same
// parsed input (inputCache gives a new one when the input changes). A spec
// refused is never kept: it may hold a ref with a token in it.
//
// The Spec is shared by the calls that find it: nothing after validation
// writes to it (ResolveValid copies it into the Resolved machine).
var validSpecs = specCache{max: 2048}

type specCache struct {
	mu  sync.Mutex
	max int // entries; when full it starts again
	m   map[string]specEntry
}

type specEntry struct {
	src  *structpb.Struct // a copy of the spec it was decoded from
	in   *machine.Input
	spec *machine.Spec
	// host is hostOf(spec): parsing the flake ref for it was a twentieth
	// of a call's CPU.
	host string
}

// get is the spec decoded from src for the XR with uid, validated against
// in, and its host, or nil when it is not known.
func (c *specCache) get(uid string, src *structpb.Struct, in *machine.Input) (*machine.Spec, string) {
	if src == nil {
		return nil, ""
	}
	c.mu.Lock()
	e, ok := c.m[uid]
	c.mu.Unlock()
	if !ok || e.in != in || !sameStruct(e.src, src) {
		return nil, ""
	}
	return e.spec, e.host
}

// put records that src decodes to spec, valid against in, whose host is
// host.
func (c *specCache) put(uid string, src *structpb.Struct, in *machine.Input, spec *machine.Spec, host string) {
	if src == nil {
		return
	}
	e := specEntry{src: proto.Clone(src).(*structpb.Struct), in: in, spec: spec, host: host}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= c.max {
		c.m = make(map[string]specEntry)
	}
	c.m[uid] = e
}
