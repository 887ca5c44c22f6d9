package labctl

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"sigs.k8s.io/yaml"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"

	"github.com/homelab-infra/homelab-infra/internal/compose"
	"github.com/homelab-infra/homelab-infra/internal/fluxbuild"
	"github.com/homelab-infra/homelab-infra/internal/function"
	"github.com/homelab-infra/homelab-infra/internal/machine"
	"github.com/homelab-infra/homelab-infra/internal/repo"
)

// RenderOptions say what to print.
type RenderOptions struct {
	// UserDataOnly prints only the user-data of each claim, as the VM gets it.
	UserDataOnly bool
}

// Rendered is one claim's composed resources, in the function's order.
type Rendered struct {
	Claim     *repo.Claim
	Resources []RenderedResource
	UserData  string
	Status    map[string]any
}

// RenderedResource is one composed resource.
type RenderedResource struct {
	Name   string
	Object map[string]any
}

// Render composes the claims in the given files (or names of claims in
// crossplane/claims), or every claim there when args is empty, by running the
// composition function in-process on the XR Crossplane would make of each,
// with the function input read from crossplane/composition.yaml.
func Render(ctx context.Context, root string, args []string) ([]*Rendered, error) {
	return RenderFrom(ctx, root, args, nil)
}

// RenderFrom is Render where the argument "-" reads claims from stdin.
func RenderFrom(ctx context.Context, root string, args []string, stdin io.Reader) ([]*Rendered, error) {
	input, err := repo.CompositionInput(filepath.Join(root, repo.CompositionPath))
	if err != nil {
		return nil, err
	}
	claims, err := findClaims(root, args, stdin)
	if err != nil {
		return nil, err
	}
	// What the API server would refuse never reaches the function: render
	// refuses it too, in the API server's words, naming file and field.
	_, schema, err := claimValidator(filepath.Join(root, repo.XRDPath))
	if err != nil {
		return nil, err
	}
	in, _ := machine.ParseInput(input)
	for _, c := range claims {
		if r, err := filepath.Rel(root, c.File); err == nil && !strings.HasPrefix(r, "..") {
			c.File = r // messages and output name files as the user sees them
		}
		var modelErrs machine.Errors
		if in != nil {
			modelErrs = machine.Validate(c.Spec, in)
		}
		var msgs []string
		for _, e := range schema.Validate(ctx, c.Object) {
			if covered(modelErrs, e.Field) {
				continue // the function says it below, in the model's words
			}
			if strings.HasPrefix(e.Field, "spec.bootstrap.sshAuthorizedKeys") {
				e.BadValue = "(value not shown)" // it may be a pasted private key
			}
			msgs = append(msgs, c.Where()+": "+e.Error())
		}
		if len(msgs) > 0 {
			return nil, fmt.Errorf("the API server would refuse the claim, nothing rendered:\n%s", strings.Join(msgs, "\n"))
		}
	}
	f := &function.Function{}
	var out []*Rendered
	for _, c := range claims {
		if r, err := filepath.Rel(root, c.File); err == nil && !strings.HasPrefix(r, "..") {
			c.File = r // messages and output name files as the user sees them
		}
		// Offline there is no cluster to name the other machines;
		// validate checks the repo's claims against each other.
		req, err := function.NewRequest(repo.XRFor(c), input, nil, function.Offline())
		if err != nil {
			return nil, fmt.Errorf("%s: cannot build the function request: %w", c.Where(), err)
		}
		rsp, err := f.RunFunction(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("%s: cannot run the function: %w", c.Where(), err)
		}
		if ph := placeholders(req, rsp, c.Spec); ph != nil {
			// The wrapping token lives in the cluster and is a credential:
			// render shows where it comes from, never its value.
			for name, rs := range ph {
				req.RequiredResources[name] = rs
			}
			if rsp, err = f.RunFunction(ctx, req); err != nil {
				return nil, fmt.Errorf("%s: cannot run the function: %w", c.Where(), err)
			}
		}
		// The snippet follows once the machine holds its identities, the
		// VM once the snippet exists, and the provider makes it once it
		// knows the id is free: run the function again as Crossplane will
		// then, until it composes the VM or refuses the claim.
		for i := 0; i < 3 && !function.Composed(rsp) && len(rsp.GetDesired().GetResources()) > 0; i++ {
			again, err := function.NewRequest(repo.XRFor(c), input, function.Applied(rsp), nil)
			if err != nil {
				return nil, fmt.Errorf("%s: cannot build the function request: %w", c.Where(), err)
			}
			again.RequiredResources = req.RequiredResources
			req = again
			if rsp, err = f.RunFunction(ctx, req); err != nil {
				return nil, fmt.Errorf("%s: cannot run the function: %w", c.Where(), err)
			}
		}
		r, err := rendered(c, req, rsp)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func rendered(c *repo.Claim, req *fnv1.RunFunctionRequest, rsp *fnv1.RunFunctionResponse) (*Rendered, error) {
	var fatal []string
	for _, res := range rsp.GetResults() {
		if res.GetSeverity() == fnv1.Severity_SEVERITY_FATAL {
			fatal = append(fatal, res.GetMessage())
		}
	}
	if len(fatal) > 0 {
		return nil, fmt.Errorf("%s: %s", c.Where(), strings.Join(fatal, "\n"))
	}
	var need []string
	for name, sel := range rsp.GetRequirements().GetResources() {
		if _, given := req.GetRequiredResources()[name]; !given {
			need = append(need, fmt.Sprintf("%s %s/%s", sel.GetKind(), sel.GetNamespace(), sel.GetMatchName()))
		}
	}
	if len(need) > 0 {
		sort.Strings(need)
		return nil, fmt.Errorf("%s: the claim's keys come from %s, which lives in the cluster; labctl render cannot read it (use inline sshAuthorizedKeys to render offline)", c.Where(), strings.Join(need, ", "))
	}
	r := &Rendered{Claim: c}
	names := make([]string, 0, len(rsp.GetDesired().GetResources()))
	for n := range rsp.GetDesired().GetResources() {
		// The identity Leases are the cluster's record of who holds a VM
		// id, host name or address, not part of the machine.
		if !compose.IsIdentity(n) {
			names = append(names, n)
		}
	}
	// The function's order: the snippet before the VM that boots with it.
	sort.Slice(names, func(i, j int) bool { return rank(names[i]) < rank(names[j]) })
	for _, n := range names {
		obj, err := toMap(rsp.GetDesired().GetResources()[n].GetResource())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Where(), err)
		}
		r.Resources = append(r.Resources, RenderedResource{Name: n, Object: obj})
		if n == compose.UserData {
			r.UserData = userData(obj)
		}
	}
	if st, err := toMap(rsp.GetDesired().GetComposite().GetResource()); err == nil {
		r.Status, _ = st["status"].(map[string]any)
	}
	return r, nil
}

func rank(name string) string {
	switch name {
	case compose.UserData:
		return "0"
	case compose.VM:
		return "1"
	}
	return "2" + name
}

func toMap(s *structpb.Struct) (map[string]any, error) {
	b, err := protojson.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("cannot encode a composed resource: %w", err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("cannot decode a composed resource: %w", err)
	}
	return m, nil
}

// userData is the snippet's content: spec.forProvider.sourceRaw[0].data.
func userData(file map[string]any) string {
	spec, _ := file["spec"].(map[string]any)
	fp, _ := spec["forProvider"].(map[string]any)
	raw, _ := fp["sourceRaw"].([]any)
	if len(raw) == 0 {
		return ""
	}
	first, _ := raw[0].(map[string]any)
	data, _ := first["data"].(string)
	return data
}

// findClaims resolves render's arguments: claim files, or names (or host
// names) of claims in crossplane/claims; none means every claim there.
func findClaims(root string, args []string, stdin io.Reader) ([]*repo.Claim, error) {
	dir := filepath.Join(root, repo.ClaimsDir)
	if len(args) == 0 {
		return folderClaims(dir)
	}
	var all, byName []*repo.Claim
	for _, a := range args {
		if a == "-" {
			cs, err := stdinClaims(root, stdin)
			if err != nil {
				return nil, err
			}
			all = append(all, cs...)
			continue
		}
		if exists(a) {
			objs, err := fluxbuild.File(a)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", a, err)
			}
			docs := docsOf(objs)
			for i := range docs {
				docs[i].File = a
			}
			cs, err := claimsOf(docs)
			if err != nil {
				return nil, err
			}
			all = append(all, cs...)
			continue
		}
		if byName == nil {
			var err error
			if byName, err = folderClaims(dir); err != nil {
				return nil, err
			}
		}
		found := false
		for _, c := range byName {
			if c.Name == a || c.Spec.Hostname == a {
				all = append(all, c)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("%s is neither a file nor the name of a claim in %s", a, repo.ClaimsDir)
		}
	}
	return all, nil
}

// folderClaims are the claims Flux would apply from the claims folder.
func folderClaims(dir string) ([]*repo.Claim, error) {
	objs, errs := fluxbuild.Build(dir)
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return nil, fmt.Errorf("%s", strings.Join(msgs, "\n"))
	}
	return claimsOf(docsOf(objs))
}

// claimsOf parses the Machine claims among docs.
func claimsOf(docs []repo.Doc) ([]*repo.Claim, error) {
	var claims []*repo.Claim
	for _, d := range docs {
		if !repo.IsClaim(d) {
			continue
		}
		c, err := repo.ParseClaim(d)
		if err != nil {
			return nil, err
		}
		claims = append(claims, c)
	}
	return claims, nil
}

// stdinClaims reads the claims on stdin ("-").
func stdinClaims(root string, stdin io.Reader) ([]*repo.Claim, error) {
	if stdin == nil {
		return nil, fmt.Errorf("-: no standard input to read a claim from")
	}
	docs, err := stdinDocs(root, stdin)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", StdinName, err)
	}
	claims, err := claimsOf(docs)
	if err != nil {
		return nil, err
	}
	if len(claims) == 0 {
		return nil, fmt.Errorf("%s: no %s %s claim on standard input", StdinName, machine.APIVersion, machine.ClaimKind)
	}
	return claims, nil
}

// StdinName names standard input in messages.
const StdinName = "(stdin)"

// List is the rendered resources as one v1 List, the form kubectl prints
// for -o json.
func List(rs []*Rendered) map[string]any {
	items := []any{}
	for _, r := range rs {
		for _, res := range r.Resources {
			items = append(items, res.Object)
		}
	}
	return map[string]any{"apiVersion": "v1", "kind": "List", "items": items}
}

// Print writes the rendered claims as YAML documents. Each claim's user-data
// follows its resources as a comment block, decoded: exactly the file the VM
// reads on first boot. The output stays valid multi-document YAML.
func Print(w io.Writer, rs []*Rendered, o RenderOptions) error {
	for _, r := range rs {
		if o.UserDataOnly {
			if _, err := io.WriteString(w, r.UserData); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(w, "# Machine %s/%s (%s)\n", r.Claim.Namespace, r.Claim.Name, r.Claim.Where())
		for _, res := range r.Resources {
			b, err := yaml.Marshal(res.Object)
			if err != nil {
				return fmt.Errorf("cannot print %s: %w", res.Name, err)
			}
			fmt.Fprintf(w, "---\n# composed resource %q\n%s", res.Name, b)
		}
		fmt.Fprintf(w, "# user-data of %s, decoded (the snippet the VM boots with):\n", r.Claim.Name)
		for _, l := range strings.Split(strings.TrimRight(r.UserData, "\n"), "\n") {
			fmt.Fprintf(w, "#   %s\n", l)
		}
	}
	return nil
}

// placeholders answers the function's request for the wrapping-token
// Secret with a stand-in whose token names the Secret, when that is the one
// Secret the claim needs; nil otherwise.
func placeholders(req *fnv1.RunFunctionRequest, rsp *fnv1.RunFunctionResponse, s *machine.Spec) map[string]*fnv1.Resources {
	sel, ok := rsp.GetRequirements().GetResources()[function.WrappingTokenRequirement]
	missing := 0
	for name := range rsp.GetRequirements().GetResources() {
		if _, given := req.GetRequiredResources()[name]; !given {
			missing++
		}
	}
	if !ok || missing != 1 || s.Secrets == nil {
		return nil
	}
	ns, name := sel.GetNamespace(), sel.GetMatchName()
	key := orDefault(s.Secrets.WrappingTokenSecretRef.Key, machine.DefaultWrappingTokenKey)
	token := "WRAPPING-TOKEN-FROM-SECRET-" + ns + "/" + name + "/" + key
	data := map[string]any{key: base64.StdEncoding.EncodeToString([]byte(token))}
	obj, err := structpb.NewStruct(map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"data":     data,
	})
	if err != nil {
		return nil
	}
	return map[string]*fnv1.Resources{function.WrappingTokenRequirement: {Items: []*fnv1.Resource{{Resource: obj}}}}
}
