package labctl_test

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"

	"github.com/homelab-infra/homelab-infra/internal/agent/config"
	"github.com/homelab-infra/homelab-infra/internal/cloudinit"
	"github.com/homelab-infra/homelab-infra/internal/function"
	"github.com/homelab-infra/homelab-infra/internal/labctl"
	"github.com/homelab-infra/homelab-infra/internal/machine"
	"github.com/homelab-infra/homelab-infra/internal/machine/machinetest"
	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/schemacheck"
)

// A mutation sets one field of a claim's spec (a dotted path) to a value,
// or removes it (del).
type mutation struct {
	path string
	val  any
	del  bool
}

func (m mutation) String() string {
	if m.del {
		return m.path + " removed"
	}
	s := fmt.Sprintf("%v", m.val)
	if len(s) > 60 {
		s = s[:40] + fmt.Sprintf("...(%d chars)", len(s))
	}
	return fmt.Sprintf("%s=%q", m.path, s)
}

func (m mutation) apply(spec map[string]any) {
	parts := strings.Split(m.path, ".")
	cur := spec
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[p] = next
		}
		cur = next
	}
	if m.del {
		delete(cur, parts[len(parts)-1])
		return
	}
	cur[parts[len(parts)-1]] = runtime.DeepCopyJSONValue(m.val)
}

// edgeValues are, per field, the values a user writes: good ones, edge
// ones at each limit, and the mistakes that cost a machine.
func edgeValues(t *testing.T) map[string][]any {
	lines := machinetest.KeyLines(t)
	ed := lines["ssh-ed25519"]
	edData := strings.Fields(ed)[1]
	s := func(vs ...string) []any {
		out := make([]any, len(vs))
		for i, v := range vs {
			out[i] = v
		}
		return out
	}
	list := func(vs ...string) []any { return s(vs...) }
	long := func(n int) string { return strings.Repeat("a", n) }
	var refs []any
	for _, r := range []string{
		"git+https://git.lab.home.arpa/homelab-infra?ref=main#dns01", "git+ssh://git@git.lab.home.arpa/infra.git?ref=hosts/dns01#dns01",
		"git+file:///srv/infra?dir=nix#dns01", "git+http://10.0.10.2:3000/lab/infra#dns01",
		"github:me/infra#dns01", "gitlab:me/infra#dns01", "sourcehut:~me/infra#dns01", "path:/srv/infra#dns01", "git://git.lab/infra#dns01",
		"git+git://git.lab/infra#dns01", "git+https://git.lab/infra?rev=0123456789abcdef0123456789abcdef01234567#dns01",
		"git+https://git.lab/infra?ref=main&shallow=1#dns01", "git+https://ops:tok3n@git.lab/infra#dns01", "git+https://tok3n@git.lab/infra#dns01",
		"git+https://git.lab/infra?ref=main&ref=dev#dns01", "git+https://git.lab/infra?ref=a..b#dns01", "git+https://git.lab/infra?ref=x.lock#dns01",
		"git+https://git.lab/infra?dir=../x#dns01", "git+https://git.lab/infra#DNS01", "git+https://git.lab/infra", "git+https://git.lab#dns01",
		"git+file://srv/infra#dns01", "git+https://git.lab/in fra#dns01", "git+https://git.lab/infra?ref=feat%2Fx#dns01",
		"git+https://git.lab/" + long(1000) + "#dns01", "git+https://git.lab/" + long(1020) + "#dns01",
	} {
		refs = append(refs, r)
	}
	return map[string][]any{
		"class":               s("small", "large", "huge", "Small", "", "-a", long(63), long(64)),
		"hostname":            s("web01", "DNS01", "dns_01", "-dns", "dns-", long(63), long(64), "a", "dns01.lab", ""),
		"domain":              s("example.org", "lab..home.arpa", ".lab", "lab.", "Lab.Home", long(63)+".arpa", long(64)+".arpa", strings.Repeat(long(50)+".", 5)+"arpa", "a_b.c", ""),
		"network.ip":          s("10.0.10.54", "10.0.10.0", "10.0.10.255", "10.0.10.1", "10.0.20.5", "10.0.10.300", "010.0.10.53", "fd00::53", "::ffff:10.0.10.53", "", " 10.0.10.53", "10.0.10.53/24"),
		"network.cidr":        s("10.0.10.0/24", "10.0.10.5/24", "10.0.10.0/31", "10.0.10.52/30", "10.0.0.0/8", "10.0.0.0/7", "10.0.10.0", "fd00::/64", "10.0.10.0/024", "", "10.0.8.0/21"),
		"network.gateway":     s("10.0.10.254", "10.0.10.0", "10.0.10.255", "10.0.11.1", "10.0.10.53", "gw", ""),
		"network.dhcp":        {true, false, "yes"},
		"network.dns":         {[]any{}, list("10.0.10.2"), list("10.0.10.1", "10.0.10.1"), list("10.0.10.1", "10.0.10.2", "10.0.10.3", "10.0.10.4"), list("resolver.lab"), list("fd00::1")},
		"proxmox.node":        s("pve2", "PVE1", "pve 1", long(63), long(64), ""),
		"proxmox.storage":     s("ceph", "1local", "local lvm", long(63), long(64), "Local_LVM.1"),
		"proxmox.bridge":      s("vmbr1", "vmbr0123456789012", "vmbr01234567890", "0vmbr", "vmbr.10", ""),
		"proxmox.vlan":        {int64(1), int64(0), int64(4094), int64(4095), int64(-1), "10", 10.5},
		"proxmox.vmId":        {int64(100), int64(99), int64(999999999), int64(1000000000), 1053.5, "1053", int64(9002), int64(0)},
		"image":               s("nixos-26.05", "ubuntu-24.04", "Nixos", "nixos-", ""),
		"nix.flakeRef":        refs,
		"bootstrap.adminUser": s("admin", "root", "Ops", "_ops", "ops-1", long(32), long(33), "", "1ops"),
		"bootstrap.sshAuthorizedKeys": {
			list(lines["ssh-rsa"]), list(lines["ecdsa-sha2-nistp384"]), list(lines["sk-ssh-ed25519@openssh.com"]), []any{}, list(""),
			list("ssh-ed25519 " + edData[:len(edData)-1] + " ops@laptop"), list("ssh-rsa " + edData + " ops@laptop"),
			list("ssh-ed25519 " + edData), list(`from="10.0.0.0/8" ` + ed), list(ed + " " + long(2048)), list(privateKey),
			list(strings.Fields(lines["ssh-rsa"])[0] + " " + strings.Fields(lines["ssh-rsa"])[1][:200] + " ops@laptop"),
			list(ed, ed), func() []any {
				var ks []any
				for i := 0; i < 33; i++ {
					ks = append(ks, ed)
				}
				return ks
			}(),
		},
		"bootstrap.sshAuthorizedKeysSecretRef": {
			map[string]any{"name": "ops-keys"}, map[string]any{"key": "keys"}, map[string]any{"name": "Ops_Keys"},
			map[string]any{"name": "ops-keys", "key": "a b"}, map[string]any{"name": "ops-keys", "namespace": "Team"},
		},
		"role": s("web", "DNS", "dns server", long(64), ""),
		"tags": {[]any{}, list("apps"), list("core", "core"), list("Core!"), list("a_b.c-d"), list(long(63)), list(long(64)),
			func() []any {
				var ts []any
				for i := 0; i < 17; i++ {
					ts = append(ts, fmt.Sprintf("t%d", i))
				}
				return ts
			}()},
		"secrets": {
			map[string]any{"role": "dns01", "wrappingTokenSecretRef": map[string]any{"name": "dns01-vault"}},
			map[string]any{"wrappingTokenSecretRef": map[string]any{"name": "dns01-vault"}},
			map[string]any{"role": "dns 01", "wrappingTokenSecretRef": map[string]any{"name": "dns01-vault"}},
			map[string]any{"role": strings.Repeat("r", 129), "wrappingTokenSecretRef": map[string]any{"name": "dns01-vault"}},
			map[string]any{"role": "dns01", "wrappingTokenSecretRef": map[string]any{"key": "token"}},
		},
	}
}

// variants are the claim variants: every edge value alone, removals, and
// seeded random pairs of two fields.
func variants(t *testing.T) [][]mutation {
	vals := edgeValues(t)
	paths := make([]string, 0, len(vals))
	for p := range vals {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var out [][]mutation
	for _, p := range paths {
		for _, v := range vals[p] {
			out = append(out, []mutation{{path: p, val: v}})
		}
		out = append(out, []mutation{{path: p, del: true}})
	}
	r := rand.New(rand.NewSource(19))
	for len(out) < 600 {
		a, b := paths[r.Intn(len(paths))], paths[r.Intn(len(paths))]
		if a == b {
			continue
		}
		out = append(out, []mutation{
			{path: a, val: vals[a][r.Intn(len(vals[a]))]},
			{path: b, val: vals[b][r.Intn(len(vals[b]))]},
		})
	}
	return out
}

// verdict is what one layer said of a claim: the fields it refused, and
// each field's messages.
type verdict struct {
	fields map[string][]string
}

func (v verdict) ok() bool { return len(v.fields) == 0 }

func (v verdict) String() string {
	if v.ok() {
		return "accepted"
	}
	var b strings.Builder
	for _, f := range v.sorted() {
		fmt.Fprintf(&b, "\n      %s: %s", f, strings.Join(v.fields[f], " | "))
	}
	return "refused" + b.String()
}

func (v verdict) sorted() []string {
	fs := make([]string, 0, len(v.fields))
	for f := range v.fields {
		fs = append(fs, f)
	}
	sort.Strings(fs)
	return fs
}

func (v *verdict) add(field, msg string) {
	if v.fields == nil {
		v.fields = map[string][]string{}
	}
	v.fields[field] = append(v.fields[field], msg)
}

// TestDifferential runs generated claim variants through every layer that
// judges a claim before a VM exists: the XRD's schema and CEL rules (as the
// API server runs them), the composition function, labctl validate, and,
// for a claim the function composes, the agent reading the flake target the
// function wrote into the user-data. Any disagreement fails, naming the
// variant and what each layer said. The XRD may admit what the function
// refuses only where no OpenAPI or CEL rule can tell (inexpressible), and
// then the function's message must be the model's for that rule.
func TestDifferential(t *testing.T) {
	input, claimSchema := repoRules(t)
	bases := map[string]map[string]any{"dns01": goodClaim(t), "docker01": exampleClaim(t, "docker01.yaml")}
	type job struct {
		base string
		muts []mutation
	}
	var jobs []job
	for _, muts := range variants(t) {
		for _, b := range []string{"dns01", "docker01"} {
			jobs = append(jobs, job{b, muts})
		}
	}
	// Variants are independent: one worker a core, each with its own repo
	// for labctl validate, whose claim file each variant rewrites.
	results := make([][]string, len(jobs))
	// Buffered and filled first: a worker stopped by t.Fatal leaves no
	// sender blocked.
	next := make(chan int, len(jobs))
	for i := range jobs {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for w := 0; w < goruntime.GOMAXPROCS(0); w++ {
		labRoot := fixtureRepo(t, nil, "dns01", "docker01")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] = differ(t, jobs[i].base, bases[jobs[i].base], jobs[i].muts, claimSchema, input, labRoot)
			}
		}()
	}
	wg.Wait()
	n := len(jobs)
	var disagreements []string
	for _, r := range results {
		disagreements = append(disagreements, r...)
	}
	t.Logf("%d claim variants through the XRD, the function, labctl validate and the agent", n)
	if n < 500 {
		t.Errorf("want hundreds of variants, have %d", n)
	}
	for _, d := range disagreements {
		t.Error(d)
	}
}

// differ runs one variant through every layer and returns the disagreements.
func differ(t *testing.T, baseName string, base map[string]any, muts []mutation, claimSchema *schemacheck.Validator, input []byte, labRoot string) []string {
	var disagreements []string
	claim := runtime.DeepCopyJSON(base)
	spec := claim["spec"].(map[string]any)
	for _, m := range muts {
		m.apply(spec)
	}
	xrd := xrdVerdict(t, claimSchema, claim)
	fn, target := functionVerdict(t, claim, input)
	lab := labctlVerdict(t, labRoot, claim)
	name := fmt.Sprintf("%s with %v", baseName, muts)
	report := func(why string) {
		disagreements = append(disagreements, fmt.Sprintf("%s: %s\n    xrd: %v\n    function: %v\n    labctl validate: %v", name, why, xrd, fn, lab))
	}
	switch {
	case !xrd.ok() && fn.ok():
		report("the API server refuses what the function composes")
	case xrd.ok() && !fn.ok():
		for _, f := range fn.sorted() {
			if why := inexpressible(f, fn.fields[f]); why == "" {
				report("the API server admits what the function refuses at " + f + ", and an XRD rule could say so")
			}
		}
	case !xrd.ok() && !fn.ok() && xrd.typeErrors():
		// A value of the wrong type stops the API server's CEL
		// rules and the model's decoding alike: both must name it.
		for _, f := range xrd.sorted() {
			if strings.Contains(strings.Join(xrd.fields[f], ""), "must be of type") && fn.fields[f] == nil {
				report("the function does not name the mistyped field " + f)
			}
		}
	case !xrd.ok() && !fn.ok():
		for _, f := range xrd.sorted() {
			if fn.fields[f] == nil {
				report("the API server names " + f + ", the function does not")
			}
		}
		for _, f := range fn.sorted() {
			if xrd.fields[f] == nil && inexpressible(f, fn.fields[f]) == "" {
				report("the function names " + f + ", the API server does not, and an XRD rule could")
			}
		}
	}
	switch {
	case fn.ok() != lab.ok():
		report("labctl validate and the function disagree")
	case xrd.typeErrors():
		// labctl reports the schema's other findings beside the
		// model's type errors; it must name all the function's.
		for _, f := range fn.sorted() {
			if lab.fields[f] == nil {
				report("labctl validate does not name " + f)
			}
		}
	case !sameFields(fn, lab):
		report("labctl validate and the function name different fields")
	}
	if fn.ok() {
		if err := agentReads(t, target); err != nil {
			report("composed, but the agent refuses the flake target at first boot: " + err.Error())
		}
	}
	return disagreements
}

// inexpressible says why no XRD rule can refuse what the function refuses
// at field, or "" when one could.
func inexpressible(field string, msgs []string) string {
	switch {
	case field == "spec.class" || field == "spec.image":
		return "classes and images live in the Composition's function input, not in the XRD"
	case field == "spec.proxmox.vmId" && strings.Contains(strings.Join(msgs, ""), "is the template VM"):
		return "template ids live in the function input"
	case field == "spec.network.dns" && strings.Contains(strings.Join(msgs, ""), "defaults.dns"):
		return "the site's nameservers live in the function input"
	case strings.HasPrefix(field, "spec.bootstrap.sshAuthorizedKeys["):
		for _, m := range msgs {
			if !strings.HasSuffix(m, machine.MsgSSHKey) {
				return ""
			}
		}
		return "CEL cannot decode base64: a key whose data is garbled past its header is found by parsing it"
	}
	return ""
}

// typeErrors tells whether the verdict holds a value of the wrong type.
func (v verdict) typeErrors() bool {
	for _, msgs := range v.fields {
		if strings.Contains(strings.Join(msgs, ""), "must be of type") {
			return true
		}
	}
	return false
}

func sameFields(a, b verdict) bool {
	return strings.Join(a.sorted(), ",") == strings.Join(b.sorted(), ",")
}

// xrdVerdict is the API server's: the claim CRD's schema and CEL rules. An
// unknown field is not its refusal (it prunes it), so that check, which is
// labctl's own, is left out.
func xrdVerdict(t *testing.T, v *schemacheck.Validator, claim map[string]any) verdict {
	var out verdict
	for _, e := range v.Validate(context.Background(), claim) {
		if strings.HasPrefix(e.Detail, "unknown field") {
			continue
		}
		out.add(e.Field, e.Error())
	}
	return out
}

// functionVerdict runs the function as Crossplane would: on the XR of the
// claim, answering what it requires (no other machines; a Secret with a
// valid key or token where it asks for one). It returns the refused fields,
// or the flake target written into the user-data when it composed.
func functionVerdict(t *testing.T, claim map[string]any, input []byte) (verdict, string) {
	c, err := repo.ParseClaim(repo.Doc{File: "claim.yaml", Object: claim})
	var out verdict
	if err != nil {
		// The function decodes the same spec and refuses it the same way.
		for _, l := range strings.Split(err.Error(), "\n") {
			l = strings.TrimPrefix(l, "claim.yaml: ")
			out.add(fieldOf(l), l)
		}
		return out, ""
	}
	required := function.Offline()
	f := &function.Function{}
	var rsp *fnv1.RunFunctionResponse
	// The Secrets, the identities, the snippet, then the VM (Applied: what
	// Crossplane and the provider have made of the last response).
	for round := 0; round < 5; round++ {
		req, err := function.NewRequest(repo.XRFor(c), input, function.Applied(rsp), required)
		if err != nil {
			t.Fatal(err)
		}
		if rsp, err = f.RunFunction(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		for _, r := range rsp.GetResults() {
			if r.GetSeverity() != fnv1.Severity_SEVERITY_FATAL {
				continue
			}
			lines := strings.Split(r.GetMessage(), "\n")
			for _, l := range lines[1:] {
				out.add(fieldOf(l), l)
			}
			if len(lines) == 1 {
				out.add("(none)", r.GetMessage())
			}
		}
		if !out.ok() {
			return out, ""
		}
		for name, sel := range rsp.GetRequirements().GetResources() {
			if _, ok := required[name]; ok {
				continue
			}
			required[name] = []map[string]any{standInSecret(sel.GetMatchName(), sel.GetNamespace())}
		}
		if vm := rsp.GetDesired().GetResources()["vm"]; vm != nil {
			break
		}
	}
	ud, err := userDataOf(rsp)
	if err != nil {
		t.Fatalf("%v: %v", claim["spec"], err)
	}
	return out, ud
}

// standInSecret answers the function's request for a Secret: a valid key
// line and a wrapping token under every key it may read.
func standInSecret(name, ns string) map[string]any {
	key := "c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUFGTEo2VmVaL25CcWM5Z0M1VzU5eTV1SnhxMmljUzUwNHNjTHp4NjRpbEYgb3BzQHdvcmtzdGF0aW9u"
	data := map[string]any{machine.DefaultSecretKey: key, machine.DefaultWrappingTokenKey: "czEzLnRva2Vu", "keys": key, "token": "czEzLnRva2Vu"}
	return map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": name, "namespace": ns}, "data": data}
}

// userDataOf is the /etc/nix-flake-target content of the composed snippet.
func userDataOf(rsp *fnv1.RunFunctionResponse) (string, error) {
	file := rsp.GetDesired().GetResources()["user-data"]
	if file == nil {
		return "", fmt.Errorf("no user-data composed")
	}
	raw, _ := file.GetResource().AsMap()["spec"].(map[string]any)["forProvider"].(map[string]any)["sourceRaw"].([]any)
	data, _ := raw[0].(map[string]any)["data"].(string)
	var ud struct {
		WriteFiles []struct {
			Path    string `json:"path"`
			Content string `json:"content"`
		} `json:"write_files"`
	}
	if err := yaml.Unmarshal([]byte(data), &ud); err != nil {
		return "", fmt.Errorf("cannot read the user-data: %w", err)
	}
	for _, f := range ud.WriteFiles {
		if f.Path == cloudinit.FlakeTargetPath {
			return f.Content, nil
		}
	}
	return "", fmt.Errorf("the user-data writes no %s", cloudinit.FlakeTargetPath)
}

// agentReads runs the agent's own config on the target file cloud-init
// writes, as nix-gitops-apply.service does at first boot.
func agentReads(t *testing.T, target string) error {
	p := filepath.Join(t.TempDir(), "nix-flake-target")
	if err := os.WriteFile(p, []byte(target), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &config.Config{FlakeTargetFile: p, Hostname: "dns01"}
	_, err := c.Target()
	return err
}

// labctlVerdict runs labctl validate on a repo holding the claim, its
// namespace and the hosts, and keeps what it says of the claim's file;
// whether the flake ref's host exists in nix/hosts is the repo's business,
// not the claim's validity.
func labctlVerdict(t *testing.T, root string, claim map[string]any) verdict {
	writeYAML(t, filepath.Join(root, repo.ClaimsDir, "claim.yaml"), claim)
	r := labctl.Validate(context.Background(), root)
	var out verdict
	for _, p := range r.Problems {
		if p.File != filepath.Join(repo.ClaimsDir, "claim.yaml") || strings.Contains(p.Message, "; add the host (labctl new machine") {
			continue
		}
		out.add(p.Field, p.String())
	}
	return out
}

// fieldOf is the field a model message starts with ("spec.x.y: value
// detail" or "spec.x.y detail").
func fieldOf(line string) string {
	i := strings.IndexAny(line, ": ")
	if i < 0 {
		return line
	}
	return line[:i]
}
