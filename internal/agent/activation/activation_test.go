package activation

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
