package rollout

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func testPolicy() Policy {
	return Policy{APIVersion: "homelab.dev/v1alpha1", Kind: "RolloutPolicy", Canary: 1, WaveSize: 2, Parallelism: 2, MaxInFlight: 4,
		HostBudget: Duration(60e9), StaleAfter: Duration(60e9),
		Gates: Gates{DNS: &DNSGate{Roles: []string{"dns"}, Paths: []string{"nix/modules/dns-unbound.nix"}}, Reboot: true}}
}

// waves renders a plan's waves as "name[gate]: host host".
func waves(p Plan) []string {
	var out []string
	for _, w := range p.Waves {
		var hs []string
		for _, m := range w.Hosts {
			hs = append(hs, m.Host)
		}
		name := w.Name
		if w.Gate != "" {
			name += "[" + w.Gate + "]"
		}
		out = append(out, name+": "+strings.Join(hs, " "))
	}
	return out
}

func TestMakePlan(t *testing.T) {
	const target = "cccccccccccccccccccccccccccccccccccccccc"
	fleet := []Machine{
		{Host: "web3", Role: "web", From: "a"}, {Host: "web1", Role: "web", From: "a"}, {Host: "web2", Role: "web"},
		{Host: "dns01", Role: "dns", Tags: []string{"core"}, From: "a"}, {Host: "docker01", Role: "docker", Tags: []string{"core"}, From: "a"},
		{Host: "web4", Role: "web", From: "a"},
	}
	cases := map[string]struct {
		reason   string
		machines []Machine
		sel      Selector
		policy   func(*Policy)
		want     []string
		skipped  []Skip
		group    string
		err      string
	}{
		"AllMachines": {
			reason: "the canary first and alone, then waves of two by name; the DNS machine last, behind its gate",
			sel:    Selector{},
			want:   []string{"canary: docker01", "wave-2: web1 web2", "wave-3: web3 web4", "wave-4[dns]: dns01"},
			group:  "all",
		},
		"ByRole": {
			reason: "a role selects its machines",
			sel:    Selector{Roles: []string{"web"}},
			want:   []string{"canary: web1", "wave-2: web2 web3", "wave-3: web4"},
			group:  "role-web",
		},
		"ByTag": {
			reason: "a tag selects its machines; a DNS canary is gated too",
			sel:    Selector{Tags: []string{"core"}},
			policy: func(p *Policy) { p.Gates.DNS.Roles = []string{"dns", "docker"} },
			want:   []string{"canary[dns]: dns01", "wave-2[dns]: docker01"},
			group:  "tag-core",
		},
		"ByHost": {
			reason: "host names select machines",
			sel:    Selector{Hosts: []string{"web4", "web1"}},
			want:   []string{"canary: web1", "wave-2: web4"},
			group:  "host-web1-web4",
		},
		"DNSModuleTouched": {
			reason: "a change that touches the DNS module is gated on every machine it reaches",
			machines: []Machine{{Host: "web1", Role: "web", From: "a", Changed: []string{"nix/modules/dns-unbound.nix"}},
				{Host: "web2", Role: "web", From: "b", Changed: []string{"README.md"}}},
			want:  []string{"canary: web2", "wave-2[dns]: web1"},
			group: "all",
		},
		"SkipsAtAndPastTarget": {
			reason: "a machine already at the target, or past it, is left alone: refs never move backwards",
			machines: []Machine{{Host: "web1", Role: "web", From: target}, {Host: "web2", Role: "web", From: "d", Ahead: true},
				{Host: "web3", Role: "web", From: "a"}},
			want:    []string{"canary: web3"},
			skipped: []Skip{{Host: "web1", Reason: reasonAtTarget}, {Host: "web2", Reason: "its deploy ref is past the target (d): a rollout never moves a ref backwards"}},
			group:   "all",
		},
		"NothingSelected": {
			reason: "a selector that matches no claim is an error naming it",
			sel:    Selector{Roles: []string{"mail"}},
			err:    "role=mail matches no Machine claim",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			pol := testPolicy()
			if tc.policy != nil {
				tc.policy(&pol)
			}
			ms := tc.machines
			if ms == nil {
				ms = fleet
			}
			p, err := MakePlan(Input{Target: target, Policy: pol, Machines: ms, Selector: tc.sel})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("%s\nerr = %v, want one containing %q", tc.reason, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s\n%v", tc.reason, err)
			}
			if diff := cmp.Diff(tc.want, waves(p)); diff != "" {
				t.Errorf("%s\nwaves (-want, +got):\n%s", tc.reason, diff)
			}
			if diff := cmp.Diff(tc.skipped, p.Skipped); diff != "" {
				t.Errorf("%s\nskipped (-want, +got):\n%s", tc.reason, diff)
			}
			if p.Group != tc.group {
				t.Errorf("%s\ngroup = %q, want %q", tc.reason, p.Group, tc.group)
			}
		})
	}
}

func TestParsePolicy(t *testing.T) {
	repoPolicy, err := os.ReadFile("../../" + PolicyPath)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		reason string
		yaml   string
		err    []string
	}{
		"TheRepos": {reason: "the repo's own policy is valid", yaml: string(repoPolicy)},
		"UnknownField": {
			reason: "a misspelt gate is refused, never silently off",
			yaml:   strings.Replace(string(repoPolicy), "gates:", "gate:", 1),
			err:    []string{`unknown field "gate"`},
		},
		"BadValues": {
			reason: "each bad field is named with its fix",
			yaml:   "apiVersion: homelab.dev/v1alpha1\nkind: RolloutPolicy\ncanary: 0\nwaveSize: 2\nparallelism: 3\nmaxInFlight: 1\nhostBudget: 1m\nstaleAfter: 0s\n",
			err:    []string{"canary: 0: want 1 or more", "parallelism 3 is more than waveSize 2", "staleAfter: want a positive duration"},
		},
		"BadDuration": {
			reason: "a duration must be a Go duration",
			yaml:   "soak: 5 minutes\n",
			err:    []string{`want a duration such as "90s"`},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParsePolicy([]byte(tc.yaml))
			if len(tc.err) == 0 {
				if err != nil {
					t.Fatalf("%s\n%v", tc.reason, err)
				}
				return
			}
			for _, e := range tc.err {
				if err == nil || !strings.Contains(err.Error(), e) {
					t.Errorf("%s\nerr = %v, want it to contain %q", tc.reason, err, e)
				}
			}
		})
	}
}
