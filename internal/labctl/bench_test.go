package labctl_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/homelab-infra/homelab-infra/internal/labctl"
	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

// BenchmarkValidate1000 runs labctl validate over a generated repo of 1,000
// machines (claims and Nix hosts); the goal is under 1 s per run. Figures are
// printed by go test -bench, never asserted.
func BenchmarkValidate1000(b *testing.B) {
	const n = 1000
	good := goodClaim(b)
	root := b.TempDir()
	fixture := fixtureRepo(b, nil)
	for _, p := range []string{repo.XRDPath, repo.CompositionPath} {
		copyFile(b, filepath.Join(fixture, p), filepath.Join(root, p))
	}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("vm%04d", i)
		c := runtime.DeepCopyJSON(good)
		c["metadata"].(map[string]any)["name"] = name
		s := c["spec"].(map[string]any)
		s["hostname"] = name
		s["network"] = map[string]any{
			"ip": fmt.Sprintf("10.1.%d.%d", 1+i/250, 1+i%250), "cidr": "10.1.0.0/16", "gateway": "10.1.0.1",
		}
		s["proxmox"].(map[string]any)["vmId"] = int64(2000 + i)
		s["nix"] = map[string]any{"flakeRef": "git+https://git.lab.home.arpa/homelab-infra?ref=main#" + name}
		writeYAML(b, filepath.Join(root, repo.ClaimsDir, name+".yaml"), c)
		write(b, filepath.Join(root, repo.HostsDir, name, "configuration.nix"), []byte("{ ... }: { }\n"))
	}
	if r := labctl.Validate(context.Background(), root); !r.OK() || r.Claims != n {
		b.Fatalf("the generated repo must validate with %d claims: %d claims, problems %v", n, r.Claims, r.Problems)
	}
	b.ResetTimer()
	cpu := testenv.CPUTime()
	for i := 0; i < b.N; i++ {
		labctl.Validate(context.Background(), root)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/validate")
	// CPU time on all cores; on 2 idle cores wall time is about half of it.
	testenv.ReportCPU(b, cpu)
}
