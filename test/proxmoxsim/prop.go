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
	var r struct {
		Type                 json.RawMessage  `json:"type"`
		Optional             perlBool         `json:"optional"`
		Default              any              `json:"default"`
		Enum                 []any            `json:"enum"`
		Pattern              json.RawMessage  `json:"pattern"`
		Minimum              json.RawMessage  `json:"minimum"`
		Maximum              json.RawMessage  `json:"maximum"`
		MinLength            json.RawMessage  `json:"minLength"`
		MaxLength            json.RawMessage  `json:"maxLength"`
		Format               json.RawMessage  `json:"format"`
		Properties           map[string]*Prop `json:"properties"`
		AdditionalProperties *perlBool        `json:"additionalProperties"`
		Requires             json.RawMessage  `json:"requires"`
		Alias                string           `json:"alias"`
		KeyAlias             string           `json:"keyAlias"`
		DefaultKey           perlBool         `json:"default_key"`
		TypeText             string           `json:"typetext"`
		OneOf                json.RawMessage  `json:"oneOf"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	str := func(v json.RawMessage) string {
		var s string
		_ = json.Unmarshal(v, &s)
		return s
	}
	// 39 minimum/maximum values are JSON strings (README of the data).
	num := func(v json.RawMessage) *float64 {
		if v == nil {
			return nil
		}
		f, err := strconv.ParseFloat(strings.Trim(string(v), `"`), 64)
		if err != nil {
			return nil
		}
		return &f
	}
	intp := func(v json.RawMessage) *int {
		if f := num(v); f != nil {
			n := int(*f)
			return &n
		}
		return nil
	}
	p.Type, p.Pattern, p.Requires = str(r.Type), str(r.Pattern), str(r.Requires)
	p.Alias, p.KeyAlias, p.TypeText = r.Alias, r.KeyAlias, r.TypeText
	p.Optional, p.DefaultKey = bool(r.Optional), bool(r.DefaultKey)
	p.Minimum, p.Maximum = num(r.Minimum), num(r.Maximum)
	p.MinLength, p.MaxLength = intp(r.MinLength), intp(r.MaxLength)
	p.OneOf = r.OneOf != nil
	p.Default = r.Default
	for _, x := range r.Enum {
		p.Enum = append(p.Enum, fmt.Sprint(x))
	}
	if r.Format != nil {
		if err := json.Unmarshal(r.Format, &p.FormatName); err != nil {
			if err := json.Unmarshal(r.Format, &p.Format); err != nil {
				return fmt.Errorf("format: %w", err)
			}
		}
	}
	p.Properties = r.Properties
	if r.AdditionalProperties != nil {
		b := bool(*r.AdditionalProperties)
		p.AdditionalProperties = &b
	}
	return nil
}
