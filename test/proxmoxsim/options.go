package proxmoxsim

import (
	"strconv"
)

// The VM options are the parameters of the release's config update
// method (POST /nodes/{node}/qemu/{vmid}/config), less the method's own
// (configParams): qemu-server's option_exists is "the option has a
// schema", and the schema is that method's.
func (s *Sim) optionSchema(opt string) *Prop {
	if configParams[opt] {
		return nil
	}
	ep := s.api.Endpoint("POST", "/nodes/{node}/qemu/{vmid}/config")
	if ep == nil {
		return nil
	}
	return indexedProperties(ep.Parameters.Properties, map[string]string{opt: ""})[opt]
}

func (s *Sim) isOption(opt string) bool { return s.optionSchema(opt) != nil }

// jsonValue is an option's value as the API returns it: integers,
// numbers and booleans as bare JSON numbers (bpg reads a quoted "1" as
// false), everything else, property strings included, as a string.
func (s *Sim) jsonValue(opt, v string) any {
	p := s.optionSchema(opt)
	if p == nil {
		return v
	}
	switch p.Type {
	case "integer", "boolean":
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	case "number":
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	}
	return v
}
