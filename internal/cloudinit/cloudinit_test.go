package cloudinit_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/homelab-infra/homelab-infra/internal/cloudinit"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestRenderGolden pins the user-data byte for byte: the VM test boots it.
func TestRenderGolden(t *testing.T) {
	got, err := cloudinit.Render(config())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "dns01.user-data.golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("cannot read golden file (go test -update creates it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("user-data (-want, +got):\n%s", diff)
	}
}

// TestRenderContract checks the bootstrap contract in notes/team.md, each
// part on its own, so a golden refresh cannot quietly drop one.
func TestRenderContract(t *testing.T) {
	ud, err := cloudinit.Render(config())
	if err != nil {
		t.Fatal(err)
	}
	s := string(ud)
	for _, want := range []struct{ reason, text string }{
		{"first line is the header", cloudinit.Header + "\n"},
		{"host name", "\nhostname: dns01\n"},
		{"fqdn", "\nfqdn: dns01.lab.home.arpa\n"},
		{"admin user", "- name: ops\n"},
		{"sudo without a password", "sudo: ALL=(ALL) NOPASSWD:ALL\n"},
		{"password locked", "lock_passwd: true\n"},
		{"flake target file", "path: /etc/nix-flake-target\n"},
		{"flake ref on one line", "git+https://git.lab.home.arpa/homelab-infra?ref=main#dns01\n"},
		{"apply unit started without blocking cloud-init", "- --no-block\n"},
		{"the apply unit", "- nix-gitops-apply.service\n"},
	} {
		if !strings.Contains(s, want.text) {
			t.Errorf("%s: user-data lacks %q:\n%s", want.reason, want.text, s)
		}
	}
	if !strings.HasPrefix(s, cloudinit.Header+"\n") {
		t.Errorf("user-data must start with %s", cloudinit.Header)
	}
}

func TestRenderRejectsIncompleteConfig(t *testing.T) {
	cases := map[string]struct {
		reason string
		mutate func(*cloudinit.Config)
		want   string
	}{
		"NoKeys":    {reason: "a user without keys could never log in", mutate: func(c *cloudinit.Config) { c.Keys = nil }, want: "authorized keys"},
		"NoFlake":   {reason: "the agent needs a flake ref", mutate: func(c *cloudinit.Config) { c.FlakeRef = "" }, want: "flake ref"},
		"NoHost":    {reason: "the host name is required", mutate: func(c *cloudinit.Config) { c.Hostname = "" }, want: "hostname"},
		"MultiLine": {reason: "/etc/nix-flake-target holds one line", mutate: func(c *cloudinit.Config) { c.FlakeRef += "\nrm -rf /" }, want: "one line"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := config()
			tc.mutate(&c)
			_, err := cloudinit.Render(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: want an error mentioning %q, got %v", tc.reason, tc.want, err)
			}
		})
	}
}
