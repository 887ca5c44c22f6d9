package config

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/flakeref"
)

func TestParseAndValidate(t *testing.T) {
	cases := map[string]struct {
		reason  string
		in      string
		check   func(t *testing.T, c Config)
		wantErr string
	}{
		"Empty": {
			reason: "no file or an empty one means all defaults",
			in:     "",
			check: func(t *testing.T, c Config) {
				if c.StateDir != DefaultStateDir || c.Profile != DefaultProfile || c.Timeouts.Switch.D() != 10*time.Minute || !*c.Health.Systemd {
					t.Errorf("defaults not applied: %+v", c)
				}
			},
		},
		"NixOSModuleShape": {
			reason: "what builtins.toJSON of the NixOS module's settings produces",
			in: `{"flake":"git+https://git.example/repo?ref=main#dns01","stateDir":"/var/lib/nix-gitops",
			      "verify":{"mode":"ssh","allowedSigners":"/etc/nix-gitops/allowed_signers"},
			      "auth":{"sshKeyFile":"/run/keys/deploy","sshKnownHosts":"/etc/nix-gitops/known_hosts"},
			      "timeouts":{"build":"2h","switch":"5m"},"health":{"systemd":false,"requiredUnits":["sshd.service"],"tcp":["127.0.0.1:22"]},
			      "metrics":{"textfile":"/var/lib/node_exporter/nix-gitops.prom"}}`,
			check: func(t *testing.T, c Config) {
				if c.Timeouts.Build.D() != 2*time.Hour || *c.Health.Systemd || c.Verify.Mode != "ssh" || c.Timeouts.Eval.D() != 10*time.Minute {
					t.Errorf("parsed wrongly: %+v", c)
				}
			},
		},
		"UnknownKey":      {reason: "a typo must not fall back to a default", in: `{"stateDirr":"/x"}`, wantErr: `unknown key "stateDirr"`},
		"WrongType":       {reason: "the error names the field", in: `{"allowNonFastForward":"yes"}`, wantErr: `field "allowNonFastForward"`},
		"BadDuration":     {reason: "durations are Go duration strings", in: `{"timeouts":{"build":3600}}`, wantErr: "duration"},
		"Trailing":        {reason: "two objects in one file is a broken file", in: `{} {}`, wantErr: "trailing"},
		"RelativePath":    {reason: "relative paths depend on the working directory of systemd", in: `{"stateDir":"var/lib"}`, wantErr: "stateDir (--state-dir)"},
		"BadVerifyMode":   {reason: "the mode names the fix", in: `{"verify":{"mode":"x509"}}`, wantErr: "verify.mode"},
		"VerifyNoSigners": {reason: "verification without allowed signers would accept nothing or everything", in: `{"verify":{"mode":"gpg"}}`, wantErr: "verify.allowedSigners"},
		"KeyWithoutHosts": {reason: "a deploy key without a pinned known_hosts trusts any server", in: `{"auth":{"sshKeyFile":"/k"}}`, wantErr: "pinned"},
		"MetricsPublic":   {reason: "metrics are served on localhost only", in: `{"metrics":{"listen":"0.0.0.0:9971"}}`, wantErr: "loopback"},
		"BadFlake":        {reason: "the flake key is parsed at load time", in: `{"flake":"github:o/r"}`, wantErr: "flake (--flake)"},
		"BadTCP":          {reason: "probes are host:port", in: `{"health":{"tcp":["localhost"]}}`, wantErr: "health.tcp"},
		"NegativeTimeout": {reason: "a negative timeout is a mistake", in: `{"timeouts":{"fetch":"-1s"}}`, wantErr: "timeouts.fetch"},
		"BadOnDrift":      {reason: "onDrift names its two values", in: `{"onDrift":"ignore"}`, wantErr: "onDrift"},
		"BadReboot":       {reason: "reboot.allow names its two values", in: `{"reboot":{"allow":"always"}}`, wantErr: "reboot.allow"},
		"BadWindow":       {reason: "a window is HH:MM", in: `{"reboot":{"allow":"window","window":{"lower":"1am","upper":"05:00"}}}`, wantErr: "reboot.window.lower"},
		"HalfWindow":      {reason: "a window has two ends", in: `{"reboot":{"allow":"window","window":{"lower":"01:00"}}}`, wantErr: "give both"},
		"ShortFloor":      {reason: "the floor is a full commit id", in: `{"floorCommit":"abc123"}`, wantErr: "floorCommit"},
		"NewDefaults": {
			reason: "drift is re-applied, reboots only reported, by default",
			in:     "{}",
			check: func(t *testing.T, c Config) {
				if c.OnDrift != "reapply" || c.Reboot.Allow != "never" || c.CurrentSystem != DefaultCurrentSystem {
					t.Errorf("defaults: onDrift %q, reboot.allow %q, currentSystem %q", c.OnDrift, c.Reboot.Allow, c.CurrentSystem)
				}
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := Parse([]byte(tc.in))
			if err == nil {
				c.Defaults()
				err = c.Validate()
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("%s\nerror = %v, want one containing %q", tc.reason, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s\n%v", tc.reason, err)
			}
			tc.check(t, c)
		})
	}
}

func TestFlagsOverrideFile(t *testing.T) {
	c, err := Parse([]byte(`{"stateDir":"/from/file","profile":"/file/profile","allowNonFastForward":true}`))
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	_, apply := Flags(fs)
	if err := fs.Parse([]string{"--state-dir", "/from/flag", "--allow-non-fast-forward=false", "--poll-interval", "7s"}); err != nil {
		t.Fatal(err)
	}
	apply(&c)
	want := Config{StateDir: "/from/flag", Profile: "/file/profile", Poll: Poll{Interval: Duration(7 * time.Second)}}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("flags given must win, flags not given must leave the file alone: -want, +got:\n%s", diff)
	}
}

func TestTarget(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "nix-flake-target")
	cases := map[string]struct {
		reason  string
		cfg     Config
		file    string
		want    flakeref.Ref
		wantErr string
	}{
		"FromFile": {
			reason: "cloud-init writes one line",
			cfg:    Config{FlakeTargetFile: file},
			file:   "# written by cloud-init\ngit+https://h/r?ref=main#dns01\n",
			want:   flakeref.Ref{Transport: "https", Remote: "https://h/r", Branch: "main", Host: "dns01"},
		},
		"FlagWins": {
			reason: "--flake overrides the file",
			cfg:    Config{FlakeTargetFile: file, Flake: "git+file:///srv/r?ref=x#a"},
			file:   "git+https://h/r?ref=main#dns01\n",
			want:   flakeref.Ref{Transport: "file", Remote: "file:///srv/r", Branch: "x", Host: "a"},
		},
		"HostnameKey": {
			reason: "a ref without #host takes the hostname key",
			cfg:    Config{FlakeTargetFile: file, Hostname: "web1"},
			file:   "git+https://h/r?ref=main",
			want:   flakeref.Ref{Transport: "https", Remote: "https://h/r", Branch: "main", Host: "web1"},
		},
		"Missing": {
			reason:  "the error says who writes the file",
			cfg:     Config{FlakeTargetFile: filepath.Join(dir, "absent")},
			wantErr: "cloud-init",
		},
		"BadInFile": {
			reason:  "the error names the file",
			cfg:     Config{FlakeTargetFile: file},
			file:    "https://h/r",
			wantErr: file,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if tc.file != "" {
				if err := os.WriteFile(file, []byte(tc.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := tc.cfg.Target()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("%s\nerror = %v, want one containing %q", tc.reason, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s\n%v", tc.reason, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s\n-want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

// FuzzParse checks the config parser never panics and that whatever it
// accepts either validates or fails with an error that names a key.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `{"stateDir":"/x","timeouts":{"build":"1h"}}`,
		`{"health":{"systemd":false,"tcp":["127.0.0.1:22"],"http":["http://localhost/x"]}}`,
		`{"verify":{"mode":"ssh","allowedSigners":"/a"},"auth":{"tokenFile":"/t"}}`,
		`{"flake":"git+https://h/r?ref=main#h","poll":{"interval":"5m","jitter":"0s"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "cannot parse config") {
				t.Fatalf("Parse error does not say what failed: %v", err)
			}
			return
		}
		c.Defaults()
		if err := c.Validate(); err != nil && !strings.Contains(err.Error(), ":") {
			t.Fatalf("Validate error names no key: %v", err)
		}
		if c.StateDir == "" || c.Timeouts.Build == 0 || c.Health.Systemd == nil {
			t.Fatalf("Defaults left a field empty: %+v", c)
		}
	})
}

// TestFlagUsageMatchesFlags: the --help text and the flags registered are
// one list.
func TestFlagUsageMatchesFlags(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	Flags(fs)
	var registered, documented []string
	fs.VisitAll(func(f *flag.Flag) { registered = append(registered, f.Name) })
	for _, line := range strings.Split(FlagUsage, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "--") {
			documented = append(documented, strings.TrimPrefix(f[0], "--"))
		}
	}
	sort.Strings(registered)
	sort.Strings(documented)
	if diff := cmp.Diff(registered, documented); diff != "" {
		t.Errorf("FlagUsage and the registered flags differ: -registered, +documented:\n%s", diff)
	}
}

// TestKeysUsageListsEveryKey: every JSON key of Config is in KeysUsage
// (what --help prints and the NixOS module is written against).
func TestKeysUsageListsEveryKey(t *testing.T) {
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			key := prefix + name
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(Duration(0)) {
				walk(key+".", f.Type)
				continue
			}
			listed := strings.Contains(KeysUsage, "  "+key+" ")
			if prefix == "timeouts." {
				listed = strings.Contains(KeysUsage, "timeouts.fetch|eval|build|switch|health") && strings.Contains("fetch|eval|build|switch|health", name)
			}
			if !listed {
				t.Errorf("config key %s is not in KeysUsage", key)
			}
		}
	}
	walk("", reflect.TypeOf(Config{}))
}

func TestRebootWindow(t *testing.T) {
	at := func(hm string) time.Time {
		tm, err := time.Parse("15:04", hm)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	cases := map[string]struct {
		reason string
		w      RebootWindow
		now    string
		want   bool
	}{
		"NoWindow":       {reason: "no window: any time", now: "12:00", want: true},
		"Inside":         {reason: "inside a window", w: RebootWindow{"01:00", "05:00"}, now: "03:00", want: true},
		"Outside":        {reason: "outside it", w: RebootWindow{"01:00", "05:00"}, now: "06:00", want: false},
		"Midnight":       {reason: "a window across midnight, late side", w: RebootWindow{"23:00", "04:00"}, now: "23:30", want: true},
		"MidnightEarly":  {reason: "a window across midnight, early side", w: RebootWindow{"23:00", "04:00"}, now: "02:00", want: true},
		"MidnightMiddle": {reason: "a window across midnight, the day between", w: RebootWindow{"23:00", "04:00"}, now: "12:00", want: false},
		"UpperExcluded":  {reason: "the upper end is the first minute outside", w: RebootWindow{"01:00", "05:00"}, now: "05:00", want: false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := (Reboot{Allow: "window", Window: tc.w}).InWindow(at(tc.now)); got != tc.want {
				t.Errorf("%s: InWindow(%s) = %v, want %v", tc.reason, tc.now, got, tc.want)
			}
		})
	}
}
