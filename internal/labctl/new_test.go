package labctl_test

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-infra/homelab-infra/internal/labctl"
	"github.com/homelab-infra/homelab-infra/internal/repo"
)

// TestNewMachineNeverWritesWhatValidateRefuses is a property test: for
// random `labctl new machine` flags, drawn from good values, edge values and
// mistakes a user makes, either nothing is written, or what is written
// passes labctl validate. A scaffold that writes a claim validate refuses
// would hand the user a broken commit.
func TestNewMachineNeverWritesWhatValidateRefuses(t *testing.T) {
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAFLJ6VeZ/nBqc9gC5W59y5uJxq2icS504scLzx64ilF ops@workstation"
	// Mostly the first, good value, so that most draws differ from a good
	// command line in one or two flags.
	pick := func(r *rand.Rand, vs ...string) string {
		if r.Intn(10) < 8 {
			return vs[0]
		}
		return vs[r.Intn(len(vs))]
	}
	names := []string{"web01", "dns01", "Web01", "web_01", "-web", strings.Repeat("a", 63), strings.Repeat("a", 64), "a", "web01.lab", ""}
	classes := []string{"small", "medium", "large", "huge", "Small", ""}
	roles := []string{"web", "dns", "Web", "web server", strings.Repeat("r", 64), "x"}
	namespaces := []string{"infra-machines", "other", "Infra", "infra_machines", strings.Repeat("n", 64), ""}
	ips := []string{"", "10.0.10.80", "10.0.10.53", "10.0.10.0", "10.0.10.255", "10.0.20.5", "10.0.10.300", "fd00::5"}
	cidrs := []string{"", "10.0.10.0/24", "10.0.10.5/24", "10.0.10.0/31", "10.0.0.0/7", "banana"}
	gateways := []string{"", "10.0.10.1", "10.0.10.80", "10.0.11.1", "10.0.10.255"}
	dnss := []string{"", "10.0.10.1", "10.0.10.1,10.0.10.1", "resolver.lab", "10.0.10.1,10.0.10.2,10.0.10.3,10.0.10.4"}
	tags := []string{"", "core", "core,core", "Core!", "web", strings.Repeat("t", 64)}
	users := []string{"ops", "root", "Ops", "_ops", strings.Repeat("u", 33)}
	keys := []string{key, key[:len(key)-20], "ssh-rsa " + key[len("ssh-ed25519 "):], "not a key", ""}
	refs := []string{"", "git+https://git.lab.home.arpa/homelab-infra?ref=main#web01", "github:me/lab#web01", "git+https://git.lab.home.arpa/homelab-infra?rev=abc#web01",
		"git+https://user:token@git.lab.home.arpa/homelab-infra#web01", "git+https://git.lab.home.arpa/homelab-infra#other", "git+https://git.lab.home.arpa/homelab-infra"}
	vmids := []int64{0, 0, 0, 1053, 99, 9002, 100, 1000000000}

	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ",")
	}
	r := rand.New(rand.NewSource(19))
	wrote, refused := 0, 0
	for i := 0; i < 150; i++ {
		n := labctl.NewMachine{
			Name: pick(r, names...), Namespace: pick(r, namespaces...), Class: pick(r, classes...), Role: pick(r, roles...),
			Tags: split(pick(r, tags...)), AdminUser: pick(r, users...), SSHKeys: split(pick(r, keys...)), FlakeRef: pick(r, refs...),
			VMID: vmids[r.Intn(len(vmids))*r.Intn(2)],
		}
		if r.Intn(2) == 0 {
			n.IP, n.CIDR, n.Gateway, n.DNS = pick(r, ips[1:]...), pick(r, cidrs[1:]...), pick(r, gateways[1:]...), split(pick(r, dnss[1:]...))
			if r.Intn(5) == 0 {
				n.IP, n.CIDR, n.Gateway = pick(r, ips...), pick(r, cidrs...), pick(r, gateways...)
			}
		}
		root := fixtureRepo(t, map[string]map[string]any{"dns01": goodClaim(t)}, "dns01")
		_, err := labctl.Scaffold(root, n)
		files := 0
		_ = filepath.Walk(filepath.Join(root, repo.ClaimsDir), func(p string, fi os.FileInfo, _ error) error {
			if fi != nil && !fi.IsDir() {
				files++
			}
			return nil
		})
		if err != nil {
			refused++
			if files != 2 { // namespace.yaml and dns01.yaml
				t.Errorf("%+v: refused (%v), but a claim file was written", n, err)
			}
			if n.Name != "" && n.Name != "dns01" {
				if _, serr := os.Stat(filepath.Join(root, repo.HostsDir, n.Name)); serr == nil {
					t.Errorf("%+v: refused (%v), but the host folder was written", n, err)
				}
			}
			continue
		}
		wrote++
		if rep := labctl.Validate(context.Background(), root); !rep.OK() {
			t.Errorf("%+v: written, but labctl validate refuses it:\n%v", n, problems(rep))
		}
	}
	t.Logf("%d scaffolds written, %d refused", wrote, refused)
	if wrote < 5 || refused < 5 {
		t.Errorf("the draw must write some and refuse some: %d written, %d refused", wrote, refused)
	}
}

func problems(r *labctl.Report) string {
	var b strings.Builder
	for _, p := range r.Problems {
		fmt.Fprintln(&b, p.String())
	}
	return b.String()
}
