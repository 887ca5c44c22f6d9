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
		not     []string // and what it must not hold
		wantErr string
	}{
		"Defaults": {
			reason: "default paths add no flags, and the start waits for the flake target alone",
			opts:   Options{Bin: "/usr/bin/nix-gitops"},
			want: []string{"ExecStart=/usr/bin/nix-gitops apply --first-boot\n", "ConditionPathExists=/etc/nix-flake-target\n",
				"DefaultDependencies=no\n", "network-online.target", "SuccessExitStatus=10 20 21 75\n",
				"After=sysinit.target basic.target network-online.target nss-lookup.target cloud-final.service cloud-init.target\n", "Restart=on-failure\n"},
		},
		"MovedPaths": {
			reason: "moved paths are passed on and gate the start",
			opts:   Options{Bin: "/opt/ng", ConfigFile: "/srv/c.json", TargetFile: "/srv/target"},
			want:   []string{"ExecStart=/opt/ng apply --first-boot --config /srv/c.json --flake-file /srv/target\n", "ConditionPathExists=/srv/target\n"},
			not:    []string{"ConditionPathExists=/srv/c.json"},
		},
		"FlakeInConfig": {
			reason: "the config file names the flake: it alone gates the start",
			opts:   Options{Bin: "/opt/ng", ConfigFile: "/srv/c.json", TargetFile: "/srv/target", FlakeInConfig: true},
			want:   []string{"ConditionPathExists=/srv/c.json\n"},
			not:    []string{"ConditionPathExists=/srv/target"},
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
			for _, w := range tc.not {
				if strings.Contains(files[ApplyService], w) {
					t.Errorf("%s\napply service holds %q:\n%s", tc.reason, w, files[ApplyService])
				}
			}
		})
	}
}

// TestUnitsVerify runs the real systemd-analyze verify over the written
// units: it parses them as systemd does and reports unknown keys, bad
// values and missing binaries.
func TestUnitsVerify(t *testing.T) {
	testenv.LookPath(t, "systemd-analyze")
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
	testenv.SystemdVerify(t, dir, paths)
}

// TestNoOrderingCycleWithCloudInit: cloud-init 25.x orders cloud-init.target
// and cloud-final.service after multi-user.target, and the apply service
// waits for both while being wanted by multi-user.target. With default dependencies that
// is an ordering cycle systemd breaks by dropping the boot-time start (seen
// in the VM suite's guest). The real systemd-analyze loads a boot target
// that wants both, as the enabled units do, and must find no cycle. (The
// two small units stand in for Debian's multi-user.target and cloud-init's
// target, reduced to the dependencies that matter.)
func TestNoOrderingCycleWithCloudInit(t *testing.T) {
	sa := testenv.LookPath(t, "systemd-analyze")
	dir := t.TempDir()
	if _, err := Write(dir, Options{Bin: "/bin/true"}); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"multi-user.target":   "[Unit]\nDescription=boot\nWants=" + ApplyService + " " + DaemonService + " cloud-init.target cloud-final.service\n",
		"cloud-init.target":   "[Unit]\nDescription=cloud-init\nAfter=multi-user.target\n",
		"cloud-final.service": "[Unit]\nDescription=cloud-final\nAfter=multi-user.target\n[Service]\nType=oneshot\nExecStart=/bin/true\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(sa, "verify", "--man=no", filepath.Join(dir, "multi-user.target"))
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput()
	if strings.Contains(string(out), "ordering cycle") {
		t.Errorf("systemd finds an ordering cycle:\n%s", out)
	}
}

// sections parses a unit file into section → key → values, the way
// switch-to-configuration-ng's parse_systemd_ini does (rust-ini; later values
// of a key append, an empty value clears).
func sections(t *testing.T, text string) map[string]map[string][]string {
	t.Helper()
	out := map[string]map[string][]string{}
	sec := ""
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			sec = strings.Trim(line, "[]")
			if out[sec] == nil {
				out[sec] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || sec == "" {
				t.Fatalf("unit line outside a section or without '=': %q", line)
			}
			if v == "" {
				out[sec][k] = nil
				continue
			}
			out[sec][k] = append(out[sec][k], v)
		}
	}
	return out
}

// TestSwitchKeysWhereSTCReadsThem: NixOS's switch-to-configuration-ng reads
// X-RestartIfChanged, X-StopIfChanged and X-ReloadIfChanged from [Service]
// (handle_modified_unit and MigrationAction::for_active_unit call
// parse_systemd_bool(.., "Service", "X-RestartIfChanged", true)) and
// X-StopOnRemoval from [Unit] (collect_unit_changes). Keys in the wrong
// section are ignored, and stc then restarts the unit running the switch.
func TestSwitchKeysWhereSTCReadsThem(t *testing.T) {
	files, err := Render(Options{Bin: "/run/current-system/sw/bin/nix-gitops"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{ApplyService, DaemonService} {
		s := sections(t, files[name])
		for _, c := range []struct{ section, key string }{
			{"Service", "X-RestartIfChanged"},
			{"Service", "X-StopIfChanged"},
			{"Unit", "X-StopOnRemoval"},
		} {
			if diff := cmp.Diff([]string{"false"}, s[c.section][c.key]); diff != "" {
				t.Errorf("%s: [%s] %s, where switch-to-configuration-ng reads it (-want, +got):\n%s", name, c.section, c.key, diff)
			}
		}
		for _, sec := range []string{"Unit", "Install"} {
			for _, k := range []string{"X-RestartIfChanged", "X-StopIfChanged", "X-ReloadIfChanged"} {
				if _, ok := s[sec][k]; ok {
					t.Errorf("%s: %s is in [%s], where switch-to-configuration-ng never looks", name, k, sec)
				}
			}
		}
	}
}
