package stcstandin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func parse(t *testing.T, text string) UnitInfo {
	t.Helper()
	u := UnitInfo{}
	if err := parseINI(u, strings.NewReader(text)); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestParseUnit(t *testing.T) {
	dir := t.TempDir()
	unit := filepath.Join(dir, "a.service")
	write := func(p, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(unit, "[Unit]\nDescription=a\n[Service]\nExecStart=/bin/a\nEnvironment=A=1\n[Install]\nWantedBy=multi-user.target\n")
	write(unit+".d/overrides.conf", "[Service]\nExecStart=\nExecStart=/bin/b\nEnvironment=B=2\nX-RestartIfChanged=false\n")
	got, err := ParseUnit(unit, unit)
	if err != nil {
		t.Fatal(err)
	}
	want := UnitInfo{
		"Unit":    {"Description": {"a"}},
		"Service": {"ExecStart": {"/bin/b"}, "Environment": {"A=1", "B=2"}, "X-RestartIfChanged": {"false"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("a drop-in's empty value clears, other values add up, [Install] is skipped (main.rs:344): -want, +got:\n%s", diff)
	}
	if got.Bool("Service", "X-RestartIfChanged", true) || !got.Bool("Service", "X-StopIfChanged", true) {
		t.Errorf("Bool: X-RestartIfChanged=false read as true, or a missing key not given its default")
	}
}

func TestCompare(t *testing.T) {
	cases := map[string]struct {
		reason    string
		cur, next string
		want      Comparison
	}{
		"Same":           {reason: "nothing changed", cur: "[Service]\nExecStart=/a\n", next: "[Service]\nExecStart=/a\n", want: Equal},
		"ExecStart":      {reason: "a changed command restarts", cur: "[Service]\nExecStart=/a\n", next: "[Service]\nExecStart=/b\n", want: NeedsRestart},
		"Description":    {reason: "an ignored [Unit] key changes nothing", cur: "[Unit]\nDescription=a\n[Service]\nExecStart=/a\n", next: "[Unit]\nDescription=b\n[Service]\nExecStart=/a\n", want: Equal},
		"ReloadTriggers": {reason: "X-Reload-Triggers reloads", cur: "[Unit]\nX-Reload-Triggers=1\n", next: "[Unit]\nX-Reload-Triggers=2\n", want: NeedsReload},
		"NewReload":      {reason: "a new X-Reload-Triggers reloads", cur: "[Service]\nExecStart=/a\n", next: "[Unit]\nX-Reload-Triggers=2\n[Service]\nExecStart=/a\n", want: NeedsReload},
		"ExecReload":     {reason: "a changed ExecReload only reloads", cur: "[Service]\nExecStart=/a\nExecReload=/r1\n", next: "[Service]\nExecStart=/a\nExecReload=/r2\n", want: NeedsReload},
		"MountOptions":   {reason: "a mount's Options reload", cur: "[Mount]\nOptions=ro\n", next: "[Mount]\nOptions=rw\n", want: NeedsReload},
		"NewSection":     {reason: "a new section that is not [Unit] restarts", cur: "[Unit]\nDescription=a\n", next: "[Unit]\nDescription=a\n[Service]\nExecStart=/a\n", want: NeedsRestart},
		"DropInRemoved":  {reason: "a removed key restarts", cur: "[Service]\nExecStart=/a\nEnvironment=X=1\n", next: "[Service]\nExecStart=/a\n", want: NeedsRestart},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := Compare(parse(t, tc.cur), parse(t, tc.next)); got != tc.want {
				t.Errorf("%s: Compare = %v, want %v", tc.reason, got, tc.want)
			}
		})
	}
}
