package nixcheck

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

func TestParseTypeDesc(t *testing.T) {
	i := func(n int64) *int64 { return &n }
	cases := map[string]struct {
		reason string
		desc   string
		want   *Type
	}{
		"Leaf":          {reason: "a noun is a leaf", desc: "boolean", want: &Type{Kind: "bool"}},
		"Port":          {reason: "types.port's description", desc: "16 bit unsigned integer; between 0 and 65535 (both inclusive)", want: &Type{Kind: "intBetween", Lo: i(0), Hi: i(65535)}},
		"ListOfPort":    {reason: "list of a noun", desc: "list of 16 bit unsigned integer; between 0 and 65535 (both inclusive)", want: &Type{Kind: "listOf", Elem: &Type{Kind: "intBetween", Lo: i(0), Hi: i(65535)}}},
		"NullOrEnum":    {reason: "null or X is nullOr", desc: `null or one of "yes", "no"`, want: &Type{Kind: "nullOr", Elem: &Type{Kind: "enum", Values: []any{"yes", "no"}}}},
		"SingularEnum":  {reason: "an enum of one value, then a parenthesized clause", desc: `value "auto" (singular enum) or (positive integer, meaning >0)`, want: &Type{Kind: "either", Left: &Type{Kind: "enum", Values: []any{"auto"}}, Right: &Type{Kind: "positive"}}},
		"SingleLineOr":  {reason: "the leading parenthesis of a leaf is not a group", desc: "(optionally newline-terminated) single-line string or list of string", want: &Type{Kind: "either", Left: &Type{Kind: "singleLineStr"}, Right: &Type{Kind: "listOf", Elem: &Type{Kind: "str"}}}},
		"AttrsOfEither": {reason: "parentheses group", desc: "attribute set of (string or (submodule))", want: &Type{Kind: "attrsOf", Elem: &Type{Kind: "either", Left: &Type{Kind: "str"}, Right: &Type{Kind: "submodule"}}}},
		"Passwd":        {reason: "the clause with an or in it", desc: "list of (string, not containing newlines or colons)", want: &Type{Kind: "listOf", Elem: &Type{Kind: "passwdStr"}}},
		"Pattern":       {reason: "a pattern runs to the end", desc: "list of string matching the pattern [a-z]+[.](service|socket)", want: &Type{Kind: "listOf", Elem: &Type{Kind: "strMatching", Pattern: "[a-z]+[.](service|socket)"}}},
		"Open":          {reason: "a freeform submodule", desc: "open submodule of (JSON value)", want: &Type{Kind: "submodule", Freeform: &Type{Kind: "json"}}},
		"Lines":         {reason: "types.lines", desc: `strings concatenated with "\n"`, want: &Type{Kind: "separatedString", Sep: "\n"}},
		"Scraped":       {reason: "the scraped list's quotes and entities", desc: "one of “asDropinIfExists”, “asDropin”", want: &Type{Kind: "enum", Values: []any{"asDropinIfExists", "asDropin"}}},
		"Atoms":         {reason: "a named leaf with an or inside", desc: "null or one of \"a\" or atom (null, bool, int, float or string)", want: &Type{Kind: "nullOr", Elem: &Type{Kind: "either", Left: &Type{Kind: "enum", Values: []any{"a"}}, Right: &Type{Kind: "sshdAtom"}}}},
		"Unknown":       {reason: "an unknown phrase is kept as unknown, not guessed", desc: "a frobnicator", want: &Type{Kind: "unknown"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := ParseTypeDesc(tc.desc)
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreFields(Type{}, "Desc")); diff != "" {
				t.Errorf("%s\nParseTypeDesc(%q): -want, +got:\n%s", tc.reason, tc.desc, diff)
			}
		})
	}
}

// TestOptionDataTypesAreUnderstood: every type the primary data gives (the
// options this repo uses) is read, none left "unknown"; and the whole data
// makes one option tree. Orphans (options below one whose type has no
// submodule) are logged.
func TestOptionDataTypesAreUnderstood(t *testing.T) {
	opts := loadOptions(t)
	var unknown []string
	for _, o := range opts {
		if hasUnknown(o.Type) && !strings.HasPrefix(o.Source, "nixos-unstable 2024-12") {
			unknown = append(unknown, o.Name+": "+o.Type.Desc)
		}
	}
	if len(unknown) > 0 {
		t.Errorf("types of the primary data or the missing list that typedesc.go does not read:\n%v", unknown)
	}
	tree, orphans, err := OptionTree(opts)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(tree, &v); err != nil {
		t.Fatal(err)
	}
	if _, ok := v["services"]; !ok {
		t.Errorf("the option tree has no services")
	}
	t.Logf("%d options, %d orphans (below options whose type has no submodule), e.g. %v", len(opts), len(orphans), orphans[:min(len(orphans), 5)])
}

func hasUnknown(t *Type) bool {
	if t == nil {
		return false
	}
	return t.Kind == "unknown" || hasUnknown(t.Elem) || hasUnknown(t.Left) || hasUnknown(t.Right) || hasUnknown(t.Freeform)
}

func loadOptions(t *testing.T) map[string]*Option {
	t.Helper()
	root := testenv.RepoRoot(t)
	opts, err := LoadOptions(OptionsDir(root), OptionsMissing)
	if err != nil {
		t.Fatal(err)
	}
	return opts
}
