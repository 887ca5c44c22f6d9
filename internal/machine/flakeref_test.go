package machine_test

import (
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/flakeref"
	"github.com/homelab-infra/homelab-infra/internal/machine"
)

// flakeRefs are refs a user writes: those the agent follows, and the forms
// that passed every layer and stopped the machine at first boot.
var flakeRefs = map[string]bool{
	"git+https://git.lab.home.arpa/homelab-infra?ref=main#dns01":                                              true,
	"git+https://git.lab.home.arpa/homelab-infra#dns01":                                                       true,
	"git+http://10.0.10.2:3000/lab/infra.git?ref=hosts/dns01#dns01":                                           true,
	"git+ssh://git@git.lab.home.arpa/homelab-infra.git?ref=main#dns01":                                        true,
	"git+ssh://git.lab.home.arpa:2222/homelab-infra?dir=nix&ref=v1#dns01":                                     true,
	"git+file:///srv/homelab-infra?ref=main&dir=sub/flake#dns01":                                              true,
	"git+https://git.lab.home.arpa/homelab-infra/?ref=release-1.2#web-1":                                      true,
	"github:me/homelab-infra#dns01":                                                                           false,
	"gitlab:me/homelab-infra#dns01":                                                                           false,
	"sourcehut:~me/homelab-infra#dns01":                                                                       false,
	"path:/srv/homelab-infra#dns01":                                                                           false,
	"git://git.lab.home.arpa/homelab-infra#dns01":                                                             false,
	"git+git://git.lab.home.arpa/homelab-infra#dns01":                                                         false,
	"https://git.lab.home.arpa/homelab-infra#dns01":                                                           false,
	"git+https://git.lab.home.arpa/homelab-infra?rev=0123456789abcdef0123456789abcdef01234567#dns01":          false,
	"git+https://git.lab.home.arpa/homelab-infra?ref=main&rev=0123456789abcdef0123456789abcdef01234567#dns01": false,
	"git+https://git.lab.home.arpa/homelab-infra?ref=main&shallow=1#dns01":                                    false,
	"git+https://git.lab.home.arpa/homelab-infra?ref=main&submodules=1#dns01":                                 false,
	"git+https://ops:glpat-s3cret@git.lab.home.arpa/homelab-infra#dns01":                                      false,
	"git+https://glpat-s3cret@git.lab.home.arpa/homelab-infra#dns01":                                          false,
	"git+ssh://git:s3cret@git.lab.home.arpa/homelab-infra#dns01":                                              false,
	"git+https://git.lab.home.arpa/homelab-infra?access_token=s3cret#dns01":                                   false,
	"git+https://git.lab.home.arpa/homelab-infra?ref=main&ref=dev#dns01":                                      false,
	"git+https://git.lab.home.arpa/homelab-infra?ref=a..b#dns01":                                              false,
	"git+https://git.lab.home.arpa/homelab-infra?ref=main.lock#dns01":                                         false,
	"git+https://git.lab.home.arpa/homelab-infra?ref=feat+x#dns01":                                            false,
	"git+https://git.lab.home.arpa/homelab-infra?ref=ma%69n#dns01":                                            false,
	"git+https://git.lab.home.arpa/homelab-infra?dir=../x#dns01":                                              false,
	"git+https://git.lab.home.arpa/homelab-infra#nixosConfigurations.dns01":                                   false,
	"git+https://git.lab.home.arpa/homelab-infra":                                                             false,
	"git+https://git.lab.home.arpa#dns01":                                                                     false,
	"git+https://git.lab.home.arpa/#dns01":                                                                    false,
	"git+file://srv/homelab-infra#dns01":                                                                      false,
	"git+https://git.lab.home.arpa/home lab#dns01":                                                            false,
	"git+https://git.lab.home.arpa/homelab-infra#DNS01":                                                       false,
	"git+https://git.lab.home.arpa:https/homelab-infra#dns01":                                                 false,
	"git+https://git.lab.home.arpa/homelab-infra;ref=main#dns01":                                              false,
}

// TestFlakeRefRules: the model (and so the XRD, which has its rules) takes
// exactly the refs the agent follows, minus what no regular expression can
// vouch for; a ref with credentials is refused without being quoted.
func TestFlakeRefRules(t *testing.T) {
	for ref, want := range flakeRefs {
		msgs := machine.CheckFlakeRef(ref)
		if got := len(msgs) == 0; got != want {
			t.Errorf("%s: valid %v, want %v (%v)", ref, got, want, msgs)
		}
		if want {
			if _, err := flakeref.Parse(ref); err != nil {
				t.Errorf("%s: the model takes it, the agent refuses it: %v", ref, err)
			}
		}
		for _, m := range msgs {
			if strings.Contains(m, "s3cret") {
				t.Errorf("%s: the message quotes the secret: %s", ref, m)
			}
		}
	}
}

// FuzzFlakeRefWithinParser: whatever the model (and the XRD) admits, the
// agent follows. A ref that passed the XRD and stopped the agent at first
// boot cost a VM: nix.flakeRef cannot change.
func FuzzFlakeRefWithinParser(f *testing.F) {
	for ref := range flakeRefs {
		f.Add(ref)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		if len(machine.CheckFlakeRef(ref)) > 0 {
			return
		}
		r, err := flakeref.Parse(ref)
		if err != nil {
			t.Fatalf("%q: admitted, but the agent refuses it: %v", ref, err)
		}
		if r.Host == "" {
			t.Fatalf("%q: admitted without #HOST", ref)
		}
	})
}
