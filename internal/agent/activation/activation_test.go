package activation

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCurrent(t *testing.T) {
	dir := t.TempDir()
	profile := filepath.Join(dir, "system")
	if _, ok, err := Current(profile); ok || err != nil {
		t.Errorf("a missing profile: ok %v, err %v; want not ok and no error", ok, err)
	}
	if err := os.Symlink("/nix/store/x-nixos-system", filepath.Join(dir, "system-7-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("system-7-link", profile); err != nil {
		t.Fatal(err)
	}
	g, ok, err := Current(profile)
	if err != nil || !ok || g.Number != 7 || g.StorePath != "/nix/store/x-nixos-system" {
		t.Errorf("Current = %+v, %v, %v", g, ok, err)
	}
	bad := filepath.Join(dir, "weird")
	if err := os.Symlink("/nix/store/y", bad); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Current(bad); err == nil || !strings.Contains(err.Error(), "weird-N-link") {
		t.Errorf("a profile that is not a generation link: %v", err)
	}
}

func TestKernelChanged(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, files map[string]string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		for f, content := range files {
			if strings.HasPrefix(content, "->") {
				if err := os.Symlink(strings.TrimPrefix(content, "->"), filepath.Join(p, f)); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := os.WriteFile(filepath.Join(p, f), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	kernelA := mk("linux-a", map[string]string{"bzImage": "kernel A"})
	kernelB := mk("linux-b", map[string]string{"bzImage": "kernel B"})
	cases := map[string]struct {
		reason string
		booted map[string]string
		next   map[string]string
		want   bool
	}{
		"SameSymlinks":   {reason: "NixOS: kernel and initrd are symlinks to the same store paths", booted: map[string]string{"kernel": "->" + kernelA + "/bzImage", "initrd": "i"}, next: map[string]string{"kernel": "->" + kernelA + "/bzImage", "initrd": "i"}, want: false},
		"OtherKernel":    {reason: "a different kernel store path", booted: map[string]string{"kernel": "->" + kernelA + "/bzImage"}, next: map[string]string{"kernel": "->" + kernelB + "/bzImage"}, want: true},
		"SameContent":    {reason: "the stand-in's kernel files: same content in different toplevels", booted: map[string]string{"kernel": "k1", "initrd": "i1"}, next: map[string]string{"kernel": "k1", "initrd": "i1"}, want: false},
		"OtherInitrd":    {reason: "an initrd change needs a reboot too", booted: map[string]string{"kernel": "k1", "initrd": "i1"}, next: map[string]string{"kernel": "k1", "initrd": "i2"}, want: true},
		"ModulesAppear":  {reason: "kernel-modules present on one side only", booted: map[string]string{"kernel": "k1"}, next: map[string]string{"kernel": "k1", "kernel-modules": "m"}, want: true},
		"NothingToCheck": {reason: "neither side has kernel files", booted: map[string]string{}, next: map[string]string{}, want: false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			booted := mk(name+"-booted", tc.booted)
			next := mk(name+"-next", tc.next)
			got, err := KernelChanged(booted, next)
			if err != nil || got != tc.want {
				t.Errorf("%s: KernelChanged = %v, %v; want %v", tc.reason, got, err, tc.want)
			}
		})
	}
	if got, err := KernelChanged(filepath.Join(dir, "absent"), kernelA); got || err != nil {
		t.Errorf("no booted system (not NixOS): %v, %v; want no change", got, err)
	}
}

func TestBootDiff(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, files map[string]string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		for f, c := range files {
			if err := os.WriteFile(filepath.Join(p, f), []byte(c), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	base := map[string]string{"kernel": "k", "initrd": "i", "kernel-params": "console=ttyS0"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range base {
			m[a] = b
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	cases := map[string]struct {
		reason string
		next   map[string]string
		booted map[string]string
		want   []string
	}{
		"Same":         {reason: "nothing that boot loads changed", next: base, want: nil},
		"KernelParams": {reason: "a new kernel command line takes effect at boot (autoUpgrade compares only kernel, initrd, modules)", next: with("kernel-params", "console=ttyS0 quiet"), want: []string{"kernel-params"}},
		"FirmwareBoth": {reason: "firmware compared where both have it", booted: with("firmware", "a"), next: with("firmware", "b"), want: []string{"firmware"}},
		"FirmwareOne":  {reason: "firmware on one side only is not compared", next: with("firmware", "b"), want: nil},
		"KernelInitrd": {reason: "each differing file is named", next: with("initrd", "i2"), want: []string{"initrd"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b := tc.booted
			if b == nil {
				b = base
			}
			got, err := BootDiff(mk(name+"-booted", b), mk(name+"-next", tc.next))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s: -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestInhibitorsChanged(t *testing.T) {
	dir := t.TempDir()
	mk := func(name, json string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if json != "" {
			if err := os.WriteFile(filepath.Join(p, "switch-inhibitors"), []byte(json), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	cases := map[string]struct {
		reason, old, next string
		want              []string
	}{
		"Equal":   {reason: "same values", old: `{"a":"1"}`, next: `{"a":"1"}`},
		"Changed": {reason: "a value that changed refuses switch", old: `{"a":"1","b":"x"}`, next: `{"a":"2","b":"x"}`, want: []string{"a: 1 -> 2"}},
		"Added":   {reason: "a name only the new system has does not count", old: `{"a":"1"}`, next: `{"a":"1","b":"2"}`},
		"Removed": {reason: "a name only the running system has does not count", old: `{"a":"1","b":"2"}`, next: `{"a":"1"}`},
		"NoFiles": {reason: "systems older than 26.05 have no file: an empty object"},
		"OneFile": {reason: "a file on one side only", next: `{"a":"1"}`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := InhibitorsChanged(mk(name+"-old", tc.old), mk(name+"-new", tc.next))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s: -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
	if _, err := InhibitorsChanged(mk("bad", `[1]`), mk("ok", `{}`)); err == nil {
		t.Errorf("an unreadable switch-inhibitors must be an error, not an empty set")
	}
}

func TestFind(t *testing.T) {
	dir := t.TempDir()
	profile := filepath.Join(dir, "system")
	for n, target := range map[string]string{"1": "/nix/store/a", "2": "/nix/store/b", "3": "/nix/store/a"} {
		if err := os.Symlink(target, profile+"-"+n+"-link"); err != nil {
			t.Fatal(err)
		}
	}
	if g, ok := Find(profile, "/nix/store/a"); !ok || g.Number != 3 {
		t.Errorf("Find a = %+v, %v; want the newest generation of it, 3", g, ok)
	}
	if _, ok := Find(profile, "/nix/store/c"); ok {
		t.Errorf("Find of a path in no generation must fail")
	}
}
