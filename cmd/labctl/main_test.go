package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// TestEveryVerbHasHelp parses `labctl <verb> --help` for every verb: each
// must print its own usage with a description.
func TestEveryVerbHasHelp(t *testing.T) {
	cases := map[string]struct {
		reason string
		args   []string
		want   []string
	}{
		"Root":       {reason: "top-level help lists the verbs", args: []string{"--help"}, want: []string{"validate", "render", "new machine"}},
		"Validate":   {reason: "validate", args: []string{"validate", "--help"}, want: []string{"Usage: labctl validate", "Check the whole repo"}},
		"Render":     {reason: "render", args: []string{"render", "--help"}, want: []string{"Usage: labctl render", "--user-data", "[<claims> ...]"}},
		"New":        {reason: "new", args: []string{"new", "--help"}, want: []string{"Usage: labctl new", "machine"}},
		"NewMachine": {reason: "new machine", args: []string{"new", "machine", "--help"}, want: []string{"Usage: labctl new machine", "<name>", "--class", "--role", "--ssh-key-file"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			exited := false
			p, err := kong.New(&cli{}, kong.Name("labctl"), kong.Writers(&out, &out), kong.Exit(func(int) { exited = true }))
			if err != nil {
				t.Fatal(err)
			}
			_, _ = p.Parse(tc.args)
			if !exited {
				t.Errorf("%s: --help did not exit", tc.reason)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("%s: help lacks %q:\n%s", tc.reason, w, out.String())
				}
			}
		})
	}
}
