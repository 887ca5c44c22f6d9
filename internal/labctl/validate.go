// Package labctl is the operator CLI's logic: validate the repo, render
// claims into the resources Crossplane would create, scaffold a machine.
// cmd/labctl only parses flags.
package labctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/homelab-infra/homelab-infra/internal/fluxbuild"
	"github.com/homelab-infra/homelab-infra/internal/machine"
	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/schemacheck"
)

// Problem is one thing wrong in the repo: the file (or folder) and a message
// that starts with the field it is about.
type Problem struct {
	File    string `json:"file"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Field == "" || strings.HasPrefix(p.Message, p.Field) {
		return p.File + ": " + p.Message
	}
	return p.File + ": " + p.Field + ": " + p.Message
}

// Report is the outcome of Validate.
type Report struct {
	Problems []Problem `json:"problems"`
	// Notes are checks that could not run here, and oddities that are not
	// errors.
	Notes  []string `json:"notes,omitempty"`
	Claims int      `json:"claims"`
	Hosts  int      `json:"hosts"`
	// Manifests counts the GitOps and package files checked (manifests.go);
	// Schemas tells whether they were checked against CRD schemas too.
	Manifests int  `json:"manifests"`
	Schemas   bool `json:"schemasChecked"`
	// Against is the revision the claims' edits were checked against.
	Against string `json:"against,omitempty"`
}

// PrintNotes writes the notes, one a line (diagnostics: stderr).
func (r *Report) PrintNotes(w io.Writer) {
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}

// OK tells whether the repo passed.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Print writes every problem, one a line, and a summary.
func (r *Report) Print(w io.Writer) {
	for _, p := range r.Problems {
		fmt.Fprintln(w, p.String())
	}
	counts := fmt.Sprintf("%d claims, %d hosts", r.Claims, r.Hosts)
	if r.Manifests > 0 {
		schemas := "schemas not checked: give --schemas"
		if r.Schemas {
			schemas = "schemas checked"
		}
		counts += fmt.Sprintf(", %d manifests (%s)", r.Manifests, schemas)
	}
	if r.Against != "" {
		counts += ", edits against " + r.Against
	}
	if r.OK() {
		fmt.Fprintf(w, "ok: %s\n", counts)
		return
	}
	fmt.Fprintf(w, "%d problems (%s checked)\n", len(r.Problems), counts)
}

type validator struct {
	root   string
	opts   ValidateOptions
	report *Report
	// newHost is a host about to be added (labctl new machine).
	newHost string
	// namespaces are the Namespaces Flux applies from the claims folder;
	// repoClaims its claims (when only given files are checked).
	namespaces map[string]bool
	repoClaims []*repo.Claim
	// unreadable: Flux could not build the claims folder.
	unreadable bool
	// givenClaims are the claims of the files given on the command line.
	givenClaims []*repo.Claim
}

// ValidateOptions tune Validate.
type ValidateOptions struct {
	// Nixpkgs is a nixpkgs folder (holding lib/) for the host-secrets check;
	// "" uses the one flake.lock pins, if it is in the Nix store.
	Nixpkgs string
	// Schemas are folders of CRDs to check deploy/ and crossplane/ against;
	// none leaves that part out (noted in the report).
	Schemas []string
	// Claims, when given, are the only claim files checked ("-" is Stdin),
	// as if they were in crossplane/claims: against the XRD and the model,
	// the repo's hosts, and the repo's other claims.
	Claims []string
	Stdin  io.Reader
	// UncheckedGroups are API groups whose kinds are not checked against a
	// schema (their CRDs are not at hand).
	UncheckedGroups []string
	// Against is a Git revision whose claims the edits are checked against
	// (transition rules): "" is the branch's upstream when it has one,
	// "none" checks no edits.
	Against string
}

func (v *validator) add(path, fieldPath, msg string) {
	v.report.Problems = append(v.report.Problems, Problem{File: v.rel(path), Field: fieldPath, Message: msg})
}

func (v *validator) rel(path string) string {
	if r, err := filepath.Rel(v.root, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

// Validate checks the whole repository at root:
//   - the XRD is a valid CRD source and the Composition's function input parses;
//   - every claim passes the XRD's schema (as Crossplane's generated claim CRD
//     would enforce it, CEL included; unknown fields too) and the model's rules
//     against the function input (the function's own checks);
//   - every claim's flake ref points at a host in nix/hosts/;
//   - every host has a claim, or is listed in crossplane/unclaimed-hosts.txt;
//   - no two claims share a host name, static IP, VM id or name;
//   - every host whose Nix config declares secrets has a Vault role in its
//     claim (spec.secrets), when nix and nixpkgs' lib are at hand.
func Validate(ctx context.Context, root string) *Report {
	return ValidateWith(ctx, root, ValidateOptions{})
}

// ValidateWith is Validate with options.
func ValidateWith(ctx context.Context, root string, o ValidateOptions) *Report {
	v := &validator{root: root, opts: o, report: &Report{}}
	xrdPath := filepath.Join(root, repo.XRDPath)
	compPath := filepath.Join(root, repo.CompositionPath)

	_, claimSchema, err := claimValidator(xrdPath)
	if err != nil {
		v.add(xrdPath, "", err.Error())
	}
	in, err := repo.LoadInput(compPath)
	if err != nil {
		v.add(compPath, "", strings.TrimPrefix(err.Error(), compPath+": "))
	}

	if len(o.Claims) > 0 {
		v.given(ctx, claimSchema, in)
		v.edits(ctx, v.givenClaims, claimSchema)
		sort.SliceStable(v.report.Problems, func(i, j int) bool { return v.report.Problems[i].File < v.report.Problems[j].File })
		return v.report
	}
	claims := v.claims(ctx, filepath.Join(root, repo.ClaimsDir), claimSchema, in)
	v.report.Claims = len(claims)
	if !v.unreadable {
		v.edits(ctx, claims, claimSchema)
	}
	v.duplicates(claims)
	v.hosts(claims)
	if hosts, err := repo.Hosts(filepath.Join(root, repo.HostsDir)); err == nil {
		v.secrets(claims, hosts)
	}
	v.manifests(ctx, o.Schemas)
	sort.SliceStable(v.report.Problems, func(i, j int) bool { return v.report.Problems[i].File < v.report.Problems[j].File })
	return v.report
}

func (v *validator) claims(ctx context.Context, dir string, schema *schemacheck.Validator, in *machine.Input) []*repo.Claim {
	docs := v.fluxDocs(dir)
	v.namespaces = namespacesOf(docs)
	// Documents are independent: check them on every core, then report in
	// file order so the output is the same on every run.
	type result struct {
		claim    *repo.Claim
		problems []Problem
	}
	results := make([]result, len(docs))
	next := make(chan int, len(docs))
	for i := range docs {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fv := &validator{root: v.root, report: &Report{}, namespaces: v.namespaces}
				results[i].claim = fv.claim(ctx, docs[i], schema, in)
				results[i].problems = fv.report.Problems
			}
		}()
	}
	wg.Wait()
	var claims []*repo.Claim
	for _, r := range results {
		if r.claim != nil {
			claims = append(claims, r.claim)
		}
		v.report.Problems = append(v.report.Problems, r.problems...)
	}
	return claims
}

// fluxDocs is what Flux would apply from the claims folder (internal/
// fluxbuild): every YAML file in it and its sub-folders, parsed as kustomize
// parses it. A file that fails the build is a problem: it fails the whole
// revision.
func (v *validator) fluxDocs(dir string) []repo.Doc {
	if _, err := os.Stat(dir); err != nil {
		v.add(dir, "", fmt.Sprintf("cannot list the claims: %v", err))
		return nil
	}
	objs, errs := fluxbuild.Build(dir)
	for _, e := range errs {
		v.add(e.File, "", e.Err.Error())
	}
	v.unreadable = len(errs) > 0
	return docsOf(objs)
}

// loadRepoClaims reads the repo's claims folder as Flux applies it: the
// other claims and the namespaces that given claims are checked against.
func (v *validator) loadRepoClaims() {
	objs, _ := fluxbuild.Build(filepath.Join(v.root, repo.ClaimsDir))
	docs := docsOf(objs)
	v.namespaces = namespacesOf(docs)
	for _, d := range docs {
		if repo.IsClaim(d) {
			if c, err := repo.ParseClaim(d); err == nil {
				v.repoClaims = append(v.repoClaims, c)
			}
		}
	}
}

// docsOf numbers the objects of each file in their order.
func docsOf(objs []fluxbuild.Object) []repo.Doc {
	docs := make([]repo.Doc, len(objs))
	index := map[string]int{}
	for i, o := range objs {
		docs[i] = repo.Doc{File: o.File, Index: index[o.File], Object: o.Object}
		index[o.File]++
	}
	return docs
}

// namespacesOf are the Namespaces among docs.
func namespacesOf(docs []repo.Doc) map[string]bool {
	ns := map[string]bool{}
	for _, d := range docs {
		if a, k := d.Kind(); a == "v1" && k == "Namespace" {
			md, _ := d.Object["metadata"].(map[string]any)
			if name, _ := md["name"].(string); name != "" {
				ns[name] = true
			}
		}
	}
	return ns
}

// given checks only the claim files named on the command line, as if they
// were in crossplane/claims: each replaces the repo's claim of the same
// namespace and name.
func (v *validator) given(ctx context.Context, schema *schemacheck.Validator, in *machine.Input) {
	v.loadRepoClaims()
	var claims []*repo.Claim
	for _, f := range v.opts.Claims {
		if f != "-" {
			claims = append(claims, v.file(ctx, f, schema, in)...)
			continue
		}
		if v.opts.Stdin == nil {
			v.add(StdinName, "", "no standard input to read a claim from")
			continue
		}
		docs, err := stdinDocs(v.root, v.opts.Stdin)
		if err != nil {
			v.add(StdinName, "", err.Error())
			continue
		}
		claims = append(claims, v.docs(ctx, docs, schema, in)...)
	}
	v.givenClaims = claims
	v.checkGiven(claims)
}

// stdinDocs reads standard input as Flux would read it as a file in
// crossplane/claims.
func stdinDocs(root string, stdin io.Reader) ([]repo.Doc, error) {
	b, err := io.ReadAll(stdin)
	if err != nil {
		return nil, fmt.Errorf("cannot read standard input: %w", err)
	}
	objs, err := fluxbuild.Bytes(filepath.Join(root, repo.ClaimsDir, "stdin.yaml"), b)
	if err != nil {
		return nil, err
	}
	docs := docsOf(objs)
	for i := range docs {
		docs[i].File = StdinName
	}
	return docs, nil
}

// checkDocs is `labctl validate` of claim documents not yet written: newHost
// is a host that is about to be added to nix/hosts with them.
func checkDocs(ctx context.Context, root string, docs []repo.Doc, newHost string) *Report {
	v := &validator{root: root, report: &Report{}, newHost: newHost}
	v.loadRepoClaims()
	_, schema, err := claimValidator(filepath.Join(root, repo.XRDPath))
	if err != nil {
		v.add(repo.XRDPath, "", err.Error())
	}
	in, err := repo.LoadInput(filepath.Join(root, repo.CompositionPath))
	if err != nil {
		v.add(repo.CompositionPath, "", err.Error())
	}
	v.checkGiven(v.docs(ctx, docs, schema, in))
	return v.report
}

// checkGiven checks given claims against the repo's others and its hosts.
func (v *validator) checkGiven(claims []*repo.Claim) {
	v.report.Claims = len(claims)
	others := v.repoClaims
	mine := map[string]bool{}
	for _, c := range claims {
		mine[c.Namespace+"/"+c.Name] = true
	}
	// The repo's claims first: a clash is reported on the later claim,
	// which must be the given one.
	var all []*repo.Claim
	for _, o := range others {
		if !mine[o.Namespace+"/"+o.Name] {
			all = append(all, o)
		}
	}
	all = append(all, claims...)
	// Problems of the other claims are theirs, not the given files'.
	before := len(v.report.Problems)
	v.duplicates(all)
	kept := v.report.Problems[:before]
	given := map[string]bool{}
	for _, c := range claims {
		given[v.rel(c.Where())] = true
	}
	for _, p := range v.report.Problems[before:] {
		if given[p.File] {
			kept = append(kept, p)
		}
	}
	v.report.Problems = kept
	v.flakeHosts(claims)
}

func (v *validator) file(ctx context.Context, f string, schema *schemacheck.Validator, in *machine.Input) []*repo.Claim {
	objs, err := fluxbuild.File(f)
	if err != nil {
		v.add(f, "", err.Error())
		return nil
	}
	docs := docsOf(objs)
	for i := range docs {
		docs[i].File = f // as the user named it
	}
	return v.docs(ctx, docs, schema, in)
}

func (v *validator) docs(ctx context.Context, docs []repo.Doc, schema *schemacheck.Validator, in *machine.Input) []*repo.Claim {
	var claims []*repo.Claim
	for _, d := range docs {
		if c := v.claim(ctx, d, schema, in); c != nil {
			claims = append(claims, c)
		}
	}
	return claims
}

// claim checks one document; it returns the claim when its spec could be read.
func (v *validator) claim(ctx context.Context, d repo.Doc, schema *schemacheck.Validator, in *machine.Input) *repo.Claim {
	where := d.Where()
	apiVersion, kind := d.Kind()
	switch {
	case apiVersion == "v1" && kind == "Namespace":
		return nil
	case !repo.IsClaim(d):
		v.add(where, "kind", fmt.Sprintf("%s %s is not a Machine claim; crossplane/claims holds only %s %s claims (and their Namespace)", apiVersion, kind, machine.APIVersion, machine.ClaimKind))
		return nil
	}

	c, parseErr := repo.ParseClaim(d)
	var modelErrs machine.Errors
	if parseErr == nil {
		switch {
		case c.Namespace == "":
			v.add(where, "metadata.namespace", "metadata.namespace is required; claims live in a namespace such as infra-machines")
		case v.namespaces != nil && !v.namespaces[c.Namespace]:
			v.add(where, "metadata.namespace", fmt.Sprintf("metadata.namespace: %s is not a Namespace in %s; Flux applies the claim only into a namespace that exists, and prunes one it applied before: keep its Namespace in %s (namespace.yaml)", c.Namespace, repo.ClaimsDir, repo.ClaimsDir))
		}
		modelErrs = machine.Validate(c.Spec, in)
		for _, e := range modelErrs {
			v.add(where, e.Field, e.Error())
		}
	}
	var typeErrs machine.Errors
	if errors.As(parseErr, &typeErrs) {
		// Values of the wrong type: reported by field, as the model
		// words them, in place of the schema's words.
		modelErrs = typeErrs
		for _, e := range typeErrs {
			v.add(where, e.Field, e.Error())
		}
	}
	if schema != nil {
		for _, e := range schema.Validate(ctx, d.Object) {
			if e.Field == "metadata.namespace" && e.Type == field.ErrorTypeRequired || covered(modelErrs, e.Field) {
				continue // already reported, in the model's words
			}
			if strings.HasPrefix(e.Field, "spec.bootstrap.sshAuthorizedKeys") {
				e.BadValue = "(value not shown)" // it may be a pasted private key
			}
			v.add(where, e.Field, e.Error())
		}
	}
	if parseErr != nil {
		if typeErrs == nil {
			v.add(where, "spec", strings.TrimPrefix(parseErr.Error(), where+": "))
		}
		return nil
	}
	return c
}

// covered tells whether the model already reported a problem at or below path.
func covered(errs machine.Errors, path string) bool {
	for _, e := range errs {
		if e.Field == path || strings.HasPrefix(e.Field, path+".") || strings.HasPrefix(e.Field, path+"[") {
			return true
		}
	}
	return false
}

func (v *validator) duplicates(claims []*repo.Claim) {
	check := func(field string, key func(*repo.Claim) string, what string) {
		first := map[string]*repo.Claim{}
		for _, c := range claims {
			k := key(c)
			if k == "" {
				continue
			}
			if o, ok := first[k]; ok {
				v.add(c.Where(), field, fmt.Sprintf("%s: %s is also the %s of %s; each machine needs its own", field, k, what, v.rel(o.Where())))
				continue
			}
			first[k] = c
		}
	}
	check("metadata.name", func(c *repo.Claim) string {
		if c.Name == "" {
			return ""
		}
		return c.Namespace + "/" + c.Name
	}, "namespace/name")
	check("spec.hostname", func(c *repo.Claim) string { return c.Spec.Hostname }, "host name")
	check("spec.network.ip", func(c *repo.Claim) string {
		if c.Spec.Network.DHCP {
			return ""
		}
		return c.Spec.Network.IP
	}, "static IP")
	check("spec.proxmox.vmId", func(c *repo.Claim) string {
		if c.Spec.Proxmox.VMID == nil {
			return ""
		}
		return fmt.Sprint(*c.Spec.Proxmox.VMID)
	}, "VM id")
}

func (v *validator) hosts(claims []*repo.Claim) {
	hostsDir := filepath.Join(v.root, repo.HostsDir)
	hosts, err := repo.Hosts(hostsDir)
	if err != nil {
		// Go on with no hosts: every claim's flake ref is then reported.
		v.add(hostsDir, "", err.Error())
	}
	v.report.Hosts = len(hosts)
	unclaimedPath := filepath.Join(v.root, repo.UnclaimedPath)
	unclaimed, err := repo.Unclaimed(unclaimedPath)
	if err != nil {
		v.add(unclaimedPath, "", err.Error())
	}

	claimed := v.flakeHosts(claims)
	isHost := map[string]bool{}
	for _, h := range hosts {
		isHost[h] = true
	}
	for _, h := range hosts {
		_, listed := unclaimed[h]
		switch {
		case !claimed[h] && !listed && !v.unreadable: // else its claim may be in the failed build
			v.add(filepath.Join(hostsDir, h), "", fmt.Sprintf("host %s has no claim in %s; add one (labctl new machine %s) or list it in %s if it is meant to have none", h, repo.ClaimsDir, h, repo.UnclaimedPath))
		case claimed[h] && listed:
			v.add(unclaimedPath, "", fmt.Sprintf("line %d: host %s is listed as unclaimed but has a claim; remove the line", unclaimed[h], h))
		}
	}
	for h, line := range unclaimed {
		if !isHost[h] {
			v.add(unclaimedPath, "", fmt.Sprintf("line %d: %s is not a host in %s; remove the line or add the host", line, h, repo.HostsDir))
		}
	}
}

// flakeHosts reports claims whose flake ref names no host in nix/hosts, and
// returns the hosts the claims name.
func (v *validator) flakeHosts(claims []*repo.Claim) map[string]bool {
	hosts, _ := repo.Hosts(filepath.Join(v.root, repo.HostsDir))
	isHost := map[string]bool{}
	for _, h := range hosts {
		isHost[h] = true
	}
	if v.newHost != "" {
		isHost[v.newHost] = true
	}
	claimed := map[string]bool{}
	for _, c := range claims {
		attr := repo.FlakeAttr(c.Spec)
		if attr == "" {
			continue // a malformed ref, reported above
		}
		claimed[attr] = true
		if !isHost[attr] {
			v.add(c.Where(), "spec.nix.flakeRef", fmt.Sprintf("spec.nix.flakeRef names host %q, but %s/%s/configuration.nix does not exist; add the host (labctl new machine %s) or fix the flake ref",
				attr, repo.HostsDir, attr, attr))
		}
	}
	return claimed
}

func orDefault(s, d string) string {
	if s != "" {
		return s
	}
	return d
}

// exists tells whether a path exists.
func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
