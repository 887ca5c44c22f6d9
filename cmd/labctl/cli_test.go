package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// runIn runs labctl in-process from folder dir, as a user would type it.
func runIn(t *testing.T, dir, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := os.Chdir(wd); err != nil {
			t.Fatal(err)
		}
	}()
	var o, e bytes.Buffer
	code = run(args, strings.NewReader(stdin), &o, &e)
	return o.String(), e.String(), code
}

// TestUsageErrors: a wrong command line exits 2 with one line saying what is
// wrong and where help is, not a usage dump, as kubectl and flux do.
func TestUsageErrors(t *testing.T) {
	root := testenv.RepoRoot(t)
	cases := map[string]struct {
		reason string
		args   []string
		want   string
	}{
		"UnknownVerb":    {reason: "a verb labctl lacks", args: []string{"bogus"}, want: "labctl --help"},
		"UnknownFlag":    {reason: "a flag the verb lacks", args: []string{"validate", "--bogus"}, want: "labctl validate --help"},
		"BadOutput":      {reason: "-o takes json or yaml", args: []string{"render", "-o", "xml"}, want: "labctl render --help"},
		"MissingArg":     {reason: "new machine needs a name", args: []string{"new", "machine", "--class", "small", "--role", "x"}, want: "<name>"},
		"MissingKey":     {reason: "a machine needs an admin key, and only the command knows", args: []string{"new", "machine", "web01", "--class", "small", "--role", "web"}, want: "--ssh-key"},
		"OutputNoDryRun": {reason: "-o on new machine prints instead of writing, so it needs --dry-run", args: []string{"new", "machine", "web01", "--class", "small", "--role", "web", "--ssh-key", "x", "-o", "yaml"}, want: "--dry-run"},
		"MissingShell":   {reason: "completion needs a shell", args: []string{"completion"}, want: "<shell>"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, errOut, code := runIn(t, root, "", tc.args...)
			if code != exitUsage {
				t.Errorf("%s: exit %d, want %d", tc.reason, code, exitUsage)
			}
			if out != "" || !strings.Contains(errOut, tc.want) || strings.Contains(errOut, "Commands:") || strings.Count(errOut, "\n") > 3 {
				t.Errorf("%s: want a short message naming %q on stderr and nothing on stdout, got stdout %q, stderr:\n%s", tc.reason, tc.want, out, errOut)
			}
		})
	}
}

// TestFromSubfolder: labctl finds the repository from any folder in it, as
// git does; outside one it says so and how to point at one.
func TestFromSubfolder(t *testing.T) {
	root := testenv.RepoRoot(t)
	if out, errOut, code := runIn(t, filepath.Join(root, "nix", "hosts"), "", "validate"); code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Errorf("validate from nix/hosts: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if out, errOut, code := runIn(t, filepath.Join(root, "crossplane", "claims"), "", "render", "dns01.yaml"); code != 0 || !strings.Contains(out, "kind: File") {
		t.Errorf("render of a file named relative to the current folder: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code := runIn(t, t.TempDir(), "", "validate")
	if code != exitProblems || !strings.Contains(errOut, "not inside a homelab-infra repository") || !strings.Contains(errOut, "-C DIR") {
		t.Errorf("validate outside a repo: exit %d, stderr %q", code, errOut)
	}
}

// TestStdin: a claim piped in is checked and rendered as a file would be.
func TestStdin(t *testing.T) {
	root := testenv.RepoRoot(t)
	claim, err := os.ReadFile(filepath.Join(root, "crossplane", "claims", "dns01.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := runIn(t, root, string(claim), "validate", "-"); code != 0 || !strings.HasPrefix(out, "ok: 1 claims") {
		t.Errorf("validate -: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if out, errOut, code := runIn(t, root, string(claim), "render", "-"); code != 0 || strings.Count(out, "kind: VirtualMachine") != 1 {
		t.Errorf("render -: exit %d, stderr %q", code, errOut)
	}
	bad := strings.Replace(string(claim), "ip: 10.0.10.53", "ip: 10.0.20.53", 1)
	_, errOut, code := runIn(t, root, bad, "validate", "-")
	if code != exitProblems || !strings.Contains(errOut, "(stdin): spec.network.ip: 10.0.20.53 is outside") {
		t.Errorf("validate - of a bad claim: exit %d, stderr %q", code, errOut)
	}
}

// TestOutputFormats: where the output is data, -o json and -o yaml print it
// whole on stdout.
func TestOutputFormats(t *testing.T) {
	root := testenv.RepoRoot(t)
	out, errOut, code := runIn(t, root, "", "validate", "-o", "json")
	var report struct {
		Problems []any `json:"problems"`
		Claims   int   `json:"claims"`
	}
	if err := json.Unmarshal([]byte(out), &report); code != 0 || err != nil || report.Claims < 2 || len(report.Problems) != 0 {
		t.Errorf("validate -o json: exit %d, %v, stdout %q, stderr %q", code, err, out, errOut)
	}
	out, errOut, code = runIn(t, root, "", "render", "-o", "json", "dns01")
	var list struct {
		Kind  string           `json:"kind"`
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || list.Kind != "List" || len(list.Items) != 2 {
		t.Errorf("render -o json: exit %d, %v, stderr %q", code, err, errOut)
	}
	out, _, code = runIn(t, root, "", "version", "-o", "json")
	var v buildVersion
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.Version == "" || v.Go == "" {
		t.Errorf("version -o json: exit %d, %v, %q", code, err, out)
	}
	if out, _, code := runIn(t, root, "", "version"); code != 0 || !strings.HasPrefix(out, "labctl ") {
		t.Errorf("version: exit %d, %q", code, out)
	}
}

// TestCompletionScripts: each shell's script calls labctl back.
func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		out, errOut, code := runIn(t, t.TempDir(), "", "completion", sh)
		if code != 0 || !strings.Contains(out, "labctl") || !strings.Contains(out, "complete") {
			t.Errorf("completion %s: exit %d, stdout %q, stderr %q", sh, code, out, errOut)
		}
	}
}
