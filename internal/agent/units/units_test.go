package units

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestRenderGolden(t *testing.T) {
	files, err := Render(Options{Bin: "/run/current-system/sw/bin/nix-gitops"})
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range files {
		golden := filepath.Join("testdata", name+".golden")
		if *update {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("cannot read golden file (run with -update): %v", err)
		}
		if diff := cmp.Diff(string(want), got); diff != "" {
			t.Errorf("%s: -want, +got:\n%s", name, diff)
		}
	}
}

func TestRenderOptions(t *testing.T) {
	cases := map[string]struct {
		reason  string
		opts    Options
		want    []string // substrings of the apply service
		wantErr string
	}{
		"Defaults": {
			reason: "default paths add no flags, and the start is gated on either file",
			opts:   Options{Bin: "/usr/bin/nix-gitops"},
			want: []string{"ExecStart=/usr/bin/nix-gitops apply --first-boot\n", "ConditionPathExists=|/etc/nix-flake-target\n",
				"ConditionPathExists=|/etc/nix-gitops/config.json\n", "After=network-online.target", "SuccessExitStatus=10\n"},
		},
		"MovedPaths": {
			reason: "moved paths are passed on and gate the start",
			opts:   Options{Bin: "/opt/ng", ConfigFile: "/srv/c.json", TargetFile: "/srv/target"},
			want:   []string{"ExecStart=/opt/ng apply --first-boot --config /srv/c.json --flake-file /srv/target\n", "ConditionPathExists=|/srv/target\n"},
		},
		"RelativeBin":  {reason: "systemd needs an absolute ExecStart", opts: Options{Bin: "nix-gitops"}, wantErr: "--bin"},
		"SpaceInPath":  {reason: "a space would split ExecStart", opts: Options{Bin: "/a b/nix-gitops"}, wantErr: "--bin"},
		"PercentInBin": {reason: "% starts a systemd specifier", opts: Options{Bin: "/a%b"}, wantErr: "--bin"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			files, err := Render(tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("%s\nerror = %v, want one containing %q", tc.reason, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s\n%v", tc.reason, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(files[ApplyService], w) {
					t.Errorf("%s\napply service lacks %q:\n%s", tc.reason, w, files[ApplyService])
				}
			}
		})
	}
}

// TestUnitsVerify runs the real systemd-analyze verify over the written
// units: it parses them as systemd does and reports unknown keys, bad
// values and missing binaries.
func TestUnitsVerify(t *testing.T) {
	sa := testenv.LookPath(t, "systemd-analyze")
	dir := t.TempDir()
	bin, err := os.Executable() // any existing absolute program will do
	if err != nil {
		t.Fatal(err)
	}
	names, err := Write(dir, Options{Bin: bin})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{ApplyService, ApplyTimer, DaemonService}, names); diff != "" {
		t.Errorf("units written: -want, +got:\n%s", diff)
	}
	var paths []string
	for _, n := range names {
		paths = append(paths, filepath.Join(dir, n))
	}
	cmd := exec.Command(sa, append([]string{"verify", "--man=no"}, paths...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, dir) || strings.Contains(line, "nix-gitops") {
			t.Errorf("systemd-analyze verify complains: %s", line)
		}
	}
}
