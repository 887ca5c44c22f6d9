package proxmoxsim

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// errs collects verification errors by parameter path, as add_error does:
// a second error on one path is appended after a newline.
type errs map[string]string

func (e errs) add(path, msg string) {
	if path == "" {
		path = "_root"
	}
	if old, ok := e[path]; ok {
		e[path] = old + "\n" + msg
		return
	}
	e[path] = msg
}

// validateParams is PVE::JSONSchema::validate of a method's parameters:
// check_object over the request's parameters (all strings, as they arrive
// from a form or a query), with the method's additionalProperties.
func (v *validator) validateParams(schema *Prop, params map[string]string) errs {
	e := errs{}
	v.checkObject("", indexedProperties(schema.Properties, params), params, schema.AdditionalProperties, e)
	return e
}

var indexedRE = regexp.MustCompile(`^([a-z]+)(\d+)$`)

// indexedProperties adds, for each parameter like net0, the schema's
// entry for "net[n]" (the schema names indexed options once, with a
// literal [n]) when the index is one Proxmox has: drives as the resize
// method's disk enum lists them, net and ipconfig 0-31, serial 0-3,
// parallel 0-2 (qemu-server src/PVE/QemuServer.pm at
// dab637268eb2944128a6ecff219ffebd571b0968: $MAX_NETS, $MAX_SERIAL_PORTS,
// $MAX_PARALLEL_PORTS); the other indexed options at any index, as their
// ranges are not in the data.
func indexedProperties(props map[string]*Prop, params map[string]string) map[string]*Prop {
	var out map[string]*Prop
	for k := range params {
		if props[k] != nil {
			continue
		}
		m := indexedRE.FindStringSubmatch(k)
		if m == nil {
			continue
		}
		p := props[m[1]+"[n]"]
		if p == nil || !indexInRange(m[1], m[2]) {
			continue
		}
		if out == nil {
			out = make(map[string]*Prop, len(props)+4)
			for kk, vv := range props {
				out[kk] = vv
			}
		}
		out[k] = p
	}
	if out == nil {
		return props
	}
	return out
}

func indexInRange(base, idx string) bool {
	n, err := strconv.Atoi(idx)
	if err != nil || (len(idx) > 1 && idx[0] == '0') {
		return false
	}
	switch base {
	case "ide", "sata", "scsi", "virtio":
		return isDrive(base + idx)
	case "net", "ipconfig":
		return n < 32
	case "serial":
		return n < 4
	case "parallel":
		return n < 3
	}
	return true
}

// validator checks values against schemas of one API release. It records
// the named formats it met but could not check (formats.go).
type validator struct {
	// privileges are the release's, for the pve-priv format.
	privileges map[string]bool

	mu        sync.Mutex
	unchecked map[string]int
}

// checkObject is check_object: every schema key is checked (a missing
// required one is "property is missing and it is not optional"), every
// value key needs a schema entry unless additional properties are
// allowed, and a present key's 'requires' names a key that must be there.
func (v *validator) checkObject(path string, schema map[string]*Prop, value map[string]string, additional *bool, e errs) {
	keys := make([]string, 0, len(schema))
	for k := range schema {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		val, ok := value[k]
		var vp *string
		if ok {
			vp = &val
		}
		v.checkProp(vp, schema[k], join(path, k), e)
	}
	vkeys := make([]string, 0, len(value))
	for k := range value {
		vkeys = append(vkeys, k)
	}
	sort.Strings(vkeys)
	for _, k := range vkeys {
		if sub := schema[k]; sub != nil {
			if r := sub.Requires; r != "" {
				if _, ok := value[r]; !ok {
					e.add(join(path, r), fmt.Sprintf("missing property - '%s' requires this property", join(path, k)))
				}
			}
			continue
		}
		if additional != nil && !*additional {
			e.add(join(path, k), "property is not defined in schema and the schema does not allow additional properties")
		}
	}
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// checkProp is check_prop for a scalar value: presence, type, format,
// pattern (anchored), maxLength, minLength, maximum, minimum (for numbers),
// enum; the first failing check is reported.
func (v *validator) checkProp(value *string, s *Prop, path string, e errs) {
	if value == nil {
		if s.Type == "null" {
			return
		}
		if !s.Optional && s.Alias == "" {
			e.add(path, "property is missing and it is not optional")
		}
		return
	}
	val := *value
	if s.OneOf {
		v.uncheckedFormat("oneOf")
		return
	}
	if !checkType(path, s.Type, val, e) {
		return
	}
	if s.Format != nil || s.FormatName != "" {
		if err := v.checkFormat(s, val, path); err != nil {
			e.add(path, "invalid format - "+err.Error())
			return
		}
	}
	if s.Pattern != "" {
		re, err := perlRegexp(s.Pattern)
		if err == nil && !re.MatchString(val) {
			e.add(path, "value does not match the regex pattern")
			return
		}
	}
	if s.MaxLength != nil && len(val) > *s.MaxLength {
		e.add(path, fmt.Sprintf("value may only be %d characters long", *s.MaxLength))
		return
	}
	if s.MinLength != nil && len(val) < *s.MinLength {
		e.add(path, fmt.Sprintf("value must be at least %d characters long", *s.MinLength))
		return
	}
	if isNumber(val) {
		f, _ := strconv.ParseFloat(val, 64)
		if s.Maximum != nil && f > *s.Maximum {
			e.add(path, "value must have a maximum value of "+perlNum(*s.Maximum))
			return
		}
		if s.Minimum != nil && f < *s.Minimum {
			e.add(path, "value must have a minimum value of "+perlNum(*s.Minimum))
			return
		}
	}
	if len(s.Enum) > 0 {
		for _, x := range s.Enum {
			if x == val {
				return
			}
		}
		e.add(path, fmt.Sprintf("value '%s' does not have a value in the enumeration '%s'", val, strings.Join(s.Enum, ", ")))
	}
}

func perlNum(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

var (
	integerRE = regexp.MustCompile(`^[+-]?\d+$`)
	numberRE  = regexp.MustCompile(`^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$`)
)

func isNumber(s string) bool { return numberRE.MatchString(s) }

// checkType is check_type for a string value: a boolean is exactly "1" or
// "0" (the API takes no "true"), an integer and a number match is_integer
// and is_number.
func checkType(path, typ, val string, e errs) bool {
	ok := true
	switch typ {
	case "boolean":
		ok = val == "1" || val == "0"
	case "integer":
		ok = integerRE.MatchString(val)
	case "number":
		ok = isNumber(val)
	case "array", "object":
		e.add(path, fmt.Sprintf("type check ('%s') failed", typ))
		return false
	}
	if !ok {
		e.add(path, fmt.Sprintf("type check ('%s') failed - got '%s'", typ, val))
	}
	return ok
}

var (
	regexpMu    sync.Mutex
	regexpCache = map[string]*regexp.Regexp{}
	// Perl's stringified flags group (?^:...) / (?^i:...).
	perlFlagsRE = regexp.MustCompile(`\(\?\^([a-z]*):`)
	// Repeat counts over RE2's limit of 1000.
	bigRepeatRE = regexp.MustCompile(`\{(\d+),(\d{4,})\}`)
)

// perlRegexp compiles one of the schema's Perl patterns as PVE applies it,
// anchored to the whole value (m/^$pattern$/). Perl-only syntax is mapped
// to RE2: (?^flags:...) to (?flags:...), an atomic group (?>...) to a plain
// group and a repeat count past 1000 to an open one; each mapping accepts
// every string the original does, so the simulator never refuses a value
// Proxmox takes.
func perlRegexp(p string) (*regexp.Regexp, error) {
	regexpMu.Lock()
	defer regexpMu.Unlock()
	if re, ok := regexpCache[p]; ok {
		return re, nil
	}
	q := perlFlagsRE.ReplaceAllStringFunc(p, func(m string) string {
		flags := perlFlagsRE.FindStringSubmatch(m)[1]
		if flags == "" {
			return "(?:"
		}
		return "(?" + flags + ":"
	})
	q = strings.ReplaceAll(q, "(?>", "(?:")
	q = bigRepeatRE.ReplaceAllString(q, "{$1,}")
	re, err := regexp.Compile("^(?:" + q + ")$")
	if err != nil {
		return nil, fmt.Errorf("proxmoxsim: cannot compile the schema pattern %q: %w", p, err)
	}
	regexpCache[p] = re
	return re, nil
}

// parsePropertyString is parse_property_string: "k=v,k=v" split on commas
// (blank parts skipped), aliases resolved (a keyAlias also records the key
// itself, as net's "virtio=<mac>" records model=virtio), booleans parsed, a
// part without "=" taken as the default key; then the result is checked
// against the format with additional properties refused. Errors carry the
// "format error" message and the failing keys, as PVE reports them inside
// "invalid format - ".
func (v *validator) parsePropertyString(format map[string]*Prop, data, path string) (map[string]string, error) {
	res := map[string]string{}
	defaultKey := ""
	for _, part := range strings.Split(data, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, val, hasEq := strings.Cut(part, "=")
		switch {
		case hasEq && k != "" && val != "":
			if _, dup := res[k]; dup {
				return nil, fmt.Errorf("duplicate key in comma-separated list property: %s", k)
			}
			s := format[k]
			if s != nil && s.Alias != "" {
				if ka := s.KeyAlias; ka != "" {
					if _, dup := res[ka]; dup {
						return nil, fmt.Errorf("key alias '%s' is already defined", ka)
					}
					res[ka] = k
				}
				k = s.Alias
				s = format[k]
			}
			if s == nil {
				return nil, fmt.Errorf("invalid key in comma-separated list property: %s", k)
			}
			if s.Type == "boolean" {
				if b, ok := parseBoolean(val); ok {
					val = b
				}
			}
			res[k] = val
		case !hasEq:
			if defaultKey != "" {
				return nil, fmt.Errorf("duplicate key in comma-separated list property: %s", defaultKey)
			}
			for key, s := range format {
				if s.DefaultKey {
					defaultKey = key
				}
			}
			if defaultKey == "" {
				return nil, fmt.Errorf("value without key, but schema does not define a default key")
			}
			if _, dup := res[defaultKey]; dup {
				return nil, fmt.Errorf("duplicate key in comma-separated list property: %s", defaultKey)
			}
			res[defaultKey] = part
		default:
			return nil, fmt.Errorf("missing key in comma-separated list property")
		}
	}
	no := false
	e := errs{}
	v.checkObject(path, format, res, &no, e)
	if len(e) > 0 {
		return nil, formatError(e)
	}
	return res, nil
}

// formatError is the "format error" exception as PVE::Exception prints it
// into the enclosing message: the message, then one "key: error" a line.
func formatError(e errs) error {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("format error\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s\n", k, e[k])
	}
	return fmt.Errorf("%s", strings.TrimSuffix(b.String(), "\n"))
}

// parseBoolean is parse_boolean: 1/on/yes/true and 0/off/no/false, any case.
func parseBoolean(s string) (string, bool) {
	switch strings.ToLower(s) {
	case "1", "on", "yes", "true":
		return "1", true
	case "0", "off", "no", "false":
		return "0", true
	}
	return "", false
}

// splitList is PVE::Tools::split_list: a list separated by NULs, or by
// commas, semicolons and white space.
func splitList(s string) []string {
	if strings.Contains(s, "\x00") {
		return strings.Split(s, "\x00")
	}
	return strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ';' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
}
