package machine_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/machine"
	"github.com/homelab-infra/homelab-infra/internal/machine/machinetest"
)

// TestSSHKeys: a key line is valid exactly when OpenSSH's parser takes it
// and its type is its data's. The XRD's pattern (the same expression) must
// refuse a line cut short and a type swapped; a character changed inside
// the data can only be caught by parsing (the function and labctl).
func TestSSHKeys(t *testing.T) {
	re := regexp.MustCompile(machine.SSHKeyPattern)
	lines := machinetest.KeyLines(t)
	for typ, l := range lines {
		t.Run(typ, func(t *testing.T) {
			if msg := machine.CheckSSHKey(l); msg != "" {
				t.Fatalf("a real %s key is refused: %s", typ, msg)
			}
			if !re.MatchString(l) {
				t.Fatalf("the XRD's pattern refuses a real %s key", typ)
			}
			fields := strings.Fields(l)
			data := fields[1]
			cases := map[string]struct {
				line       string
				xrdRefuses bool // the pattern alone catches it
			}{
				"LastCharLost":    {line: fields[0] + " " + data[:len(data)-1] + " " + fields[2], xrdRefuses: true},
				"MiddleCharLost":  {line: fields[0] + " " + data[:len(data)/2] + data[len(data)/2+1:] + " " + fields[2], xrdRefuses: true},
				"FourCharsLost":   {line: fields[0] + " " + data[:len(data)-8] + data[len(data)-4:] + " " + fields[2], xrdRefuses: typ != "ssh-rsa" && !strings.HasPrefix(typ, "sk-")},
				"NoComment":       {line: fields[0] + " " + data},
				"TwoSpaces":       {line: fields[0] + "  " + data, xrdRefuses: true},
				"TabSeparator":    {line: fields[0] + "\t" + data, xrdRefuses: true},
				"TrailingNewline": {line: l + "\n", xrdRefuses: true},
				"SecondLine":      {line: l + "\n" + l, xrdRefuses: true},
				"Options":         {line: `from="10.0.0.0/8" ` + l, xrdRefuses: true},
			}
			for other, ol := range lines {
				if other != typ {
					cases["TypeSwappedWith:"+other] = struct {
						line       string
						xrdRefuses bool
					}{line: other + " " + data + " " + fields[2], xrdRefuses: true}
					_ = ol
				}
			}
			for name, tc := range cases {
				modelOK := machine.CheckSSHKey(tc.line) == ""
				xrdOK := re.MatchString(tc.line)
				want := name == "NoComment"
				if modelOK != want {
					t.Errorf("%s: the model accepts it: %v, want %v", name, modelOK, want)
				}
				if xrdOK == tc.xrdRefuses {
					t.Errorf("%s: the XRD's pattern accepts it: %v, want %v", name, xrdOK, !tc.xrdRefuses)
				}
				if xrdOK && !modelOK && machine.CheckSSHKey(tc.line) != machine.MsgSSHKey {
					t.Errorf("%s: the XRD admits it, so the function's message must be the XRD's", name)
				}
			}
		})
	}
}
