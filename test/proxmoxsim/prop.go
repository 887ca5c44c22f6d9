package proxmoxsim

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Prop is one schema entry as PVE's JSONSchema (pve-common
// src/PVE/JSONSchema.pm) declares it: a parameter, an object's property, or
// a key of a property string.
type Prop struct {
	Type                 string
	Optional             bool
	Default              any
	Enum                 []string
	Pattern              string
	Minimum, Maximum     *float64
	MinLength, MaxLength *int
	// FormatName is a format registered in PVE's code ("pve-vmid"); Format
	// is an inline property-string format (key -> schema).
	FormatName string
	Format     map[string]*Prop
	Properties map[string]*Prop
	// AdditionalProperties: nil when unset (allowed), else the flag.
	AdditionalProperties *bool
	Requires             string
	Alias, KeyAlias      string
	DefaultKey           bool
	TypeText             string
	// OneOf marks the PVE 9 variant schemas (type-property), which the
	// simulator does not check.
	OneOf bool
}

func (p *Prop) UnmarshalJSON(b []byte) error {
	var r map[string]json.RawMessage
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	str := func(k string) string {
		var s string
		_ = json.Unmarshal(r[k], &s)
		return s
	}
	flag := func(k string) bool {
		var f perlBool
		if v, ok := r[k]; ok {
			_ = f.UnmarshalJSON(v)
		}
		return bool(f)
	}
	// 39 minimum/maximum values are JSON strings (README of the data).
	num := func(k string) *float64 {
		v, ok := r[k]
		if !ok {
			return nil
		}
		f, err := strconv.ParseFloat(strings.Trim(string(v), `"`), 64)
		if err != nil {
			return nil
		}
		return &f
	}
	intp := func(k string) *int {
		if f := num(k); f != nil {
			n := int(*f)
			return &n
		}
		return nil
	}
	p.Type, p.Pattern, p.Requires = str("type"), str("pattern"), str("requires")
	p.Alias, p.KeyAlias, p.TypeText = str("alias"), str("keyAlias"), str("typetext")
	p.Optional, p.DefaultKey = flag("optional"), flag("default_key")
	p.Minimum, p.Maximum = num("minimum"), num("maximum")
	p.MinLength, p.MaxLength = intp("minLength"), intp("maxLength")
	_, p.OneOf = r["oneOf"]
	if v, ok := r["default"]; ok {
		_ = json.Unmarshal(v, &p.Default)
	}
	if v, ok := r["enum"]; ok {
		var e []any
		_ = json.Unmarshal(v, &e)
		for _, x := range e {
			p.Enum = append(p.Enum, fmt.Sprint(x))
		}
	}
	if v, ok := r["format"]; ok {
		if err := json.Unmarshal(v, &p.FormatName); err != nil {
			if err := json.Unmarshal(v, &p.Format); err != nil {
				return fmt.Errorf("format: %w", err)
			}
		}
	}
	if v, ok := r["properties"]; ok {
		if err := json.Unmarshal(v, &p.Properties); err != nil {
			return fmt.Errorf("properties: %w", err)
		}
	}
	if v, ok := r["additionalProperties"]; ok {
		var f perlBool
		_ = f.UnmarshalJSON(v)
		b := bool(f)
		p.AdditionalProperties = &b
	}
	return nil
}
