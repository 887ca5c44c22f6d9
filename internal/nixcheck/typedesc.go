package nixcheck

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Type is a NixOS option type, read back from the description nixpkgs'
// lib/types.nix writes for it into options.json (the "type" of an entry):
// the option data holds descriptions, not types, and this is the only way to
// check a value against them here. Kind names a modlib type
// (testdata/nixos.nix builds it); Elem, Left/Right, Options and Freeform are
// what compound types hold.
type Type struct {
	Kind     string          `json:"kind"`
	Elem     *Type           `json:"elem,omitempty"`
	Left     *Type           `json:"left,omitempty"`
	Right    *Type           `json:"right,omitempty"`
	Values   []any           `json:"values,omitempty"`
	Pattern  string          `json:"pattern,omitempty"`
	Sep      string          `json:"sep,omitempty"`
	Lo       *int64          `json:"lo,omitempty"`
	Hi       *int64          `json:"hi,omitempty"`
	Freeform *Type           `json:"freeform,omitempty"`
	Options  json.RawMessage `json:"options,omitempty"`
	// Desc is the description this was read from (for messages).
	Desc string `json:"desc"`
}

// leafTypes are descriptions that name one type, as lib/types.nix (at the
// commit modlib cites) or the NixOS module that declares a custom type
// writes them.
var leafTypes = map[string]string{
	"boolean":                       "bool",
	"string":                        "str",
	"signed integer":                "int",
	"floating point number":         "float",
	"package":                       "package",
	"path":                          "path",
	"absolute path":                 "path",
	"attribute set":                 "attrs",
	"anything":                      "anything",
	"unspecified value":             "raw",
	"raw value":                     "raw",
	"submodule":                     "submodule",
	"non-empty string":              "nonEmptyStr",
	"positive integer, meaning >0":  "positive",
	"unsigned integer, meaning >=0": "unsigned",
	"JSON value":                    "json",
	"YAML value":                    "json",
	"YAML 1.1 value":                "json",
	"TOML value":                    "json",
	"null":                          "null",
	"(optionally newline-terminated) single-line string": "singleLineStr",
	// nixos/lib/systemd-unit-options.nix unitOption: anything; lists
	// concatenate, other values must agree.
	"systemd option": "systemdOption",
	// nixos/modules/config/locale.nix time.timeZone: a string with no
	// space (addCheck str).
	"string without spaces": "noSpaceStr",
	// nixos/modules/config/nix.nix, the atoms of nix.settings.
	"Nix config atom (null, bool, int, float, str, path or package)": "nixConfigAtom",
	// nixos/modules/services/networking/ssh/sshd.nix, the atoms of
	// services.openssh.settings.
	"atom (null, bool, int, float or string)": "sshdAtom",
	// nixos/modules/config/sysctl.nix: a sysctl value.
	"sysctl option value":                       "sysctlValue",
	"string, not containing newlines or colons": "passwdStr",
}

// ParseTypeDesc reads a NixOS option type description. A description it does
// not know becomes Kind "unknown": the option can be declared, and a value
// given to it fails the check with a message asking to teach this parser.
func ParseTypeDesc(desc string) *Type {
	t := parseDesc(normalizeDesc(desc))
	t.Desc = desc
	return t
}

// normalizeDesc undoes what an HTML scrape of the options page did to the
// text (the 2024 fallback list): typographic quotes and entities.
func normalizeDesc(s string) string {
	r := strings.NewReplacer("“", `"`, "”", `"`, "&quot;", `"`, "&gt;", ">", "&lt;", "<", "&amp;", "&", "‘", "'", "’", "'")
	return strings.TrimSpace(r.Replace(s))
}

func parseDesc(d string) *Type {
	d = strings.TrimSpace(d)
	if inner, ok := stripParens(d); ok {
		return parseDesc(inner)
	}
	if k, ok := leafTypes[d]; ok {
		return &Type{Kind: k, Desc: d}
	}
	// nixos/modules/services/networking/unbound.nix names its settings type
	// by a sentence that has " or " in it.
	if strings.HasPrefix(d, "unbound.conf configuration type") {
		return &Type{Kind: "unboundSettings", Desc: d}
	}
	if p, ok := strings.CutSuffix(d, ", not containing newlines or colons"); ok {
		return &Type{Kind: "passwdEntry", Elem: parseDesc(p), Desc: d}
	}
	if p, ok := strings.CutPrefix(d, "string matching the pattern "); ok {
		return &Type{Kind: "strMatching", Pattern: p, Desc: d}
	}
	// types.nix:1437: a submodule's freeform type is in parentheses unless
	// it is a noun or composite, so "open submodule of" spans to the end.
	if rest, ok := strings.CutPrefix(d, "open submodule of "); ok {
		return &Type{Kind: "submodule", Freeform: parseDesc(rest), Desc: d}
	}
	// types.nix either: "A or B" (", or" after a non-restrictive clause);
	// right-associative, and "null or X" is nullOr X.
	if l, r, ok := cutTopLevel(d, " or "); ok {
		l = strings.TrimSuffix(l, ",")
		lt, rt := parseDesc(l), parseDesc(r)
		if lt.Kind == "null" {
			return &Type{Kind: "nullOr", Elem: rt, Desc: d}
		}
		return &Type{Kind: "either", Left: lt, Right: rt, Desc: d}
	}
	for prefix, kind := range map[string]string{
		"list of ": "listOf", "attribute set of ": "attrsOf", "lazy attribute set of ": "lazyAttrsOf",
		"non-empty list of ": "nonEmptyListOf",
	} {
		if rest, ok := strings.CutPrefix(d, prefix); ok {
			return &Type{Kind: kind, Elem: parseDesc(rest), Desc: d}
		}
	}
	if rest, ok := strings.CutPrefix(d, "strings concatenated with "); ok {
		if sep, err := strconv.Unquote(rest); err == nil {
			return &Type{Kind: "separatedString", Sep: sep, Desc: d}
		}
	}
	if rest, ok := strings.CutPrefix(d, "one of "); ok {
		if vals, ok := parseEnumValues(rest); ok {
			return &Type{Kind: "enum", Values: vals, Desc: d}
		}
	}
	if rest, ok := strings.CutSuffix(d, " (singular enum)"); ok {
		if v, ok := strings.CutPrefix(rest, "value "); ok {
			if vals, ok := parseEnumValues(v); ok && len(vals) == 1 {
				return &Type{Kind: "enum", Values: vals, Desc: d}
			}
		}
	}
	// types.nix ints: "<n> bit unsigned integer; between A and B (both
	// inclusive)", "integer between A and B (both inclusive)".
	if _, rest, ok := strings.Cut(d, "between "); ok && strings.HasSuffix(rest, " (both inclusive)") &&
		(strings.HasPrefix(d, "integer between") || strings.Contains(d, " bit unsigned integer;") || strings.Contains(d, " bit signed integer;")) {
		a, b, _ := strings.Cut(strings.TrimSuffix(rest, " (both inclusive)"), " and ")
		lo, err1 := strconv.ParseInt(a, 10, 64)
		hi, err2 := strconv.ParseInt(b, 10, 64)
		if err1 == nil && err2 == nil {
			return &Type{Kind: "intBetween", Lo: &lo, Hi: &hi, Desc: d}
		}
	}
	return &Type{Kind: "unknown", Desc: d}
}

// stripParens removes one pair of parentheses around the whole of d.
func stripParens(d string) (string, bool) {
	if !strings.HasPrefix(d, "(") || !strings.HasSuffix(d, ")") {
		return "", false
	}
	depth := 0
	inQuote := false
	for i, c := range d {
		switch {
		case c == '"':
			inQuote = !inQuote
		case inQuote:
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 && i != len(d)-1 {
				return "", false
			}
		}
	}
	return d[1 : len(d)-1], depth == 0
}

// cutTopLevel splits d at the first sep outside parentheses and quotes.
func cutTopLevel(d, sep string) (string, string, bool) {
	depth := 0
	inQuote := false
	for i := 0; i < len(d); i++ {
		switch c := d[i]; {
		case c == '\\' && inQuote:
			i++
		case c == '"':
			inQuote = !inQuote
		case inQuote:
		case c == '(':
			depth++
		case c == ')':
			depth--
		case depth == 0 && strings.HasPrefix(d[i:], sep):
			return d[:i], d[i+len(sep):], true
		}
	}
	return "", "", false
}

// parseEnumValues reads `"a", "b", 3, true` (types.nix enum's show).
func parseEnumValues(s string) ([]any, bool) {
	var vals []any
	s = strings.TrimSpace(s)
	for s != "" {
		var tok string
		if strings.HasPrefix(s, `"`) {
			end := 1
			for ; end < len(s) && s[end] != '"'; end++ {
				if s[end] == '\\' {
					end++
				}
			}
			if end >= len(s) {
				return nil, false
			}
			str, err := strconv.Unquote(s[:end+1])
			if err != nil {
				str = s[1:end]
			}
			vals = append(vals, str)
			s = s[end+1:]
		} else {
			tok, s, _ = strings.Cut(s, ",")
			s = "," + s
			switch tok = strings.TrimSpace(tok); tok {
			case "true", "false":
				vals = append(vals, tok == "true")
			default:
				n, err := strconv.ParseInt(tok, 10, 64)
				if err != nil {
					return nil, false
				}
				vals = append(vals, n)
			}
		}
		s = strings.TrimSpace(s)
		if s == "," {
			s = ""
		}
		if s == "" {
			break
		}
		if !strings.HasPrefix(s, ",") {
			return nil, false
		}
		s = strings.TrimSpace(s[1:])
	}
	return vals, len(vals) > 0
}

// String is the description, for messages.
func (t *Type) String() string { return fmt.Sprintf("%s (%s)", t.Desc, t.Kind) }
