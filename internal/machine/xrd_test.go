package machine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	extv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/homelab-infra/homelab-infra/internal/machine"
	"github.com/homelab-infra/homelab-infra/internal/repo"
	"github.com/homelab-infra/homelab-infra/internal/schemacheck"
	"github.com/homelab-infra/homelab-infra/internal/testenv"
)

func xrdSchema(t *testing.T) extv1.JSONSchemaProps {
	t.Helper()
	xrd, err := schemacheck.ReadXRD(filepath.Join(testenv.RepoRoot(t), repo.XRDPath))
	if err != nil {
		t.Fatal(err)
	}
	if len(xrd.Spec.Versions) != 1 {
		t.Fatalf("want one XRD version, got %d", len(xrd.Spec.Versions))
	}
	s := extv1.JSONSchemaProps{}
	if err := json.Unmarshal(xrd.Spec.Versions[0].Schema.OpenAPIV3Schema.Raw, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestXRDMatchesModel walks crossplane/xrd.yaml and the Go model side by side
// and fails on any difference in field names, types, required fields and
// patterns, so the schema and the model cannot drift apart.
func TestXRDMatchesModel(t *testing.T) {
	s := xrdSchema(t)
	var problems []string
	compare("spec", s.Properties["spec"], reflect.TypeOf(machine.Spec{}), &problems)
	compare("status", s.Properties["status"], reflect.TypeOf(machine.Status{}), &problems)
	for _, p := range problems {
		t.Error(p)
	}

	got := map[string]string{}
	collectPatterns("spec", s.Properties["spec"], got)
	if diff := cmp.Diff(machine.Patterns, got); diff != "" {
		t.Errorf("patterns in crossplane/xrd.yaml differ from machine.Patterns (-model, +xrd):\n%s", diff)
	}

	at := func(path ...string) extv1.JSONSchemaProps {
		cur := s
		for _, p := range path {
			if p == "[]" {
				if cur.Items == nil || cur.Items.Schema == nil {
					return extv1.JSONSchemaProps{}
				}
				cur = *cur.Items.Schema
				continue
			}
			cur = cur.Properties[p]
		}
		return cur
	}
	f := func(v *float64) any {
		if v == nil {
			return "unset"
		}
		return *v
	}
	i := func(v *int64) any {
		if v == nil {
			return "unset"
		}
		return *v
	}
	limits := map[string][2]any{
		"spec.proxmox.vlan minimum":                    {float64(machine.MinVLAN), f(at("spec", "proxmox", "vlan").Minimum)},
		"spec.proxmox.vlan maximum":                    {float64(machine.MaxVLAN), f(at("spec", "proxmox", "vlan").Maximum)},
		"spec.proxmox.vmId minimum":                    {float64(machine.MinVMID), f(at("spec", "proxmox", "vmId").Minimum)},
		"spec.proxmox.vmId maximum":                    {float64(machine.MaxVMID), f(at("spec", "proxmox", "vmId").Maximum)},
		"spec.network.dns maxItems":                    {int64(machine.MaxDNSServers), i(at("spec", "network", "dns").MaxItems)},
		"spec.tags maxItems":                           {int64(machine.MaxTags), i(at("spec", "tags").MaxItems)},
		"spec.hostname maxLength":                      {int64(machine.MaxLabelLength), i(at("spec", "hostname").MaxLength)},
		"spec.domain maxLength":                        {int64(machine.MaxDomainLen), i(at("spec", "domain").MaxLength)},
		"spec.bootstrap.sshAuthorizedKeys maxItems":    {int64(machine.MaxSSHKeys), i(at("spec", "bootstrap", "sshAuthorizedKeys").MaxItems)},
		"spec.bootstrap.sshAuthorizedKeys[] maxLength": {int64(machine.MaxSSHKeyLen), i(at("spec", "bootstrap", "sshAuthorizedKeys", "[]").MaxLength)},
	}
	for name, l := range limits {
		if l[0] != l[1] {
			t.Errorf("%s: model %v, xrd %v", name, l[0], l[1])
		}
	}
}

func compare(path string, s extv1.JSONSchemaProps, typ reflect.Type, problems *[]string) {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	bad := func(format string, a ...any) { *problems = append(*problems, path+": "+fmt.Sprintf(format, a...)) }
	switch typ.Kind() {
	case reflect.String:
		if s.Type != "string" {
			bad("model string, xrd %q", s.Type)
		}
	case reflect.Bool:
		if s.Type != "boolean" {
			bad("model bool, xrd %q", s.Type)
		}
	case reflect.Int64, reflect.Int:
		if s.Type != "integer" {
			bad("model integer, xrd %q", s.Type)
		}
	case reflect.Slice:
		if s.Type != "array" || s.Items == nil || s.Items.Schema == nil {
			bad("model list, xrd %q", s.Type)
			return
		}
		compare(path+"[]", *s.Items.Schema, typ.Elem(), problems)
	case reflect.Struct:
		if s.Type != "object" {
			bad("model object, xrd %q", s.Type)
			return
		}
		fields := map[string]bool{}
		var required []string
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			tag := f.Tag.Get("json")
			name, opts, _ := strings.Cut(tag, ",")
			if name == "" || name == "-" {
				continue
			}
			fields[name] = true
			if !strings.Contains(opts, "omitempty") {
				required = append(required, name)
			}
			ps, ok := s.Properties[name]
			if !ok {
				bad("model field %q is missing from the xrd", name)
				continue
			}
			compare(path+"."+name, ps, f.Type, problems)
		}
		for name := range s.Properties {
			if !fields[name] {
				bad("xrd field %q is missing from the model", name)
			}
		}
		sort.Strings(required)
		xr := append([]string{}, s.Required...)
		sort.Strings(xr)
		if diff := cmp.Diff(required, xr, cmpEmpty); diff != "" {
			bad("required fields differ (-model (no omitempty), +xrd):\n%s", diff)
		}
	default:
		bad("model kind %s has no xrd counterpart", typ.Kind())
	}
}

var cmpEmpty = cmp.Transformer("nilIsEmpty", func(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
})

var celMatches = regexp.MustCompile(`^self\.matches\(r?["'](.*)["']\)$`)

func collectPatterns(path string, s extv1.JSONSchemaProps, out map[string]string) {
	if s.Pattern != "" {
		out[path] = s.Pattern
	}
	for _, v := range s.XValidations {
		if m := celMatches.FindStringSubmatch(v.Rule); m != nil {
			out[path] = m[1]
		}
	}
	for name, p := range s.Properties {
		collectPatterns(path+"."+name, p, out)
	}
	if s.Items != nil && s.Items.Schema != nil {
		collectPatterns(path+"[]", *s.Items.Schema, out)
	}
}

// TestXRDIsValid derives the XR and claim CRDs with Crossplane's own code and
// validates them as the API server does on create: structural schema, CEL
// rules that compile and fit the cost budget.
func TestXRDIsValid(t *testing.T) {
	xrd, err := schemacheck.ReadXRD(filepath.Join(testenv.RepoRoot(t), repo.XRDPath))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(*xrd.Spec.Scope); got != "LegacyCluster" {
		t.Errorf("scope: want LegacyCluster, got %s", got)
	}
	xr, claim, err := schemacheck.XRDCRDs(xrd)
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range []*extv1.CustomResourceDefinition{xr, claim} {
		// The owner is the XRD object, whose uid exists only in a cluster.
		crd = crd.DeepCopy()
		crd.OwnerReferences = nil
		if err := schemacheck.Check(context.Background(), crd); err != nil {
			t.Error(err)
		}
	}
	if xr.Spec.Names.Kind != machine.XRKind || claim.Spec.Names.Kind != machine.ClaimKind || xr.Spec.Scope != extv1.ClusterScoped || claim.Spec.Scope != extv1.NamespaceScoped {
		t.Errorf("want cluster-scoped %s and namespaced %s, got %s (%s) and %s (%s)", machine.XRKind, machine.ClaimKind, xr.Spec.Names.Kind, xr.Spec.Scope, claim.Spec.Names.Kind, claim.Spec.Scope)
	}
	var cols []string
	for _, c := range claim.Spec.Versions[0].AdditionalPrinterColumns {
		cols = append(cols, c.Name)
	}
	for _, want := range []string{"HOSTNAME", "IP", "NODE", "READY"} {
		if !contains(cols, want) {
			t.Errorf("claim printer columns %v lack %s", cols, want)
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestXRDRulesAreTheModels: the XRD's rules for the flake ref and the admin
// keys are the model's, in its order and words, so that the API server,
// the function and labctl refuse the same refs and keys with one message.
func TestXRDRulesAreTheModels(t *testing.T) {
	s := xrdSchema(t)
	var got []machine.FlakeRefRule
	for _, v := range s.Properties["spec"].Properties["nix"].Properties["flakeRef"].XValidations {
		rule, refuse := strings.CutPrefix(v.Rule, "!")
		m := celMatches.FindStringSubmatch(rule)
		if m == nil {
			t.Errorf("spec.nix.flakeRef: rule %q is not a self.matches() rule of the model", v.Rule)
			continue
		}
		got = append(got, machine.FlakeRefRule{Pattern: m[1], Refuse: refuse, Message: v.Message})
		if v.Reason == nil || *v.Reason != extv1.FieldValueForbidden {
			t.Errorf("spec.nix.flakeRef: rule %q: want reason FieldValueForbidden, so that the API server does not echo a ref with a token", v.Rule)
		}
	}
	if diff := cmp.Diff(machine.FlakeRefRules, got); diff != "" {
		t.Errorf("spec.nix.flakeRef's rules differ from machine.FlakeRefRules (-model, +xrd):\n%s", diff)
	}
	keys := s.Properties["spec"].Properties["bootstrap"].Properties["sshAuthorizedKeys"].Items.Schema.XValidations
	if len(keys) != 2 || keys[1].Message != machine.MsgSSHKey {
		t.Errorf("spec.bootstrap.sshAuthorizedKeys[]: want the private-key rule, then the key rule with machine.MsgSSHKey, got %+v", keys)
	}
}
