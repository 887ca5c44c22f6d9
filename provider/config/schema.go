package config

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/bpg/terraform-provider-proxmox/proxmoxtf/provider"
	tfjson "github.com/hashicorp/terraform-json"
	"github.com/hashicorp/terraform-plugin-go/tfprotov5"
	"github.com/hashicorp/terraform-plugin-sdk/v2/helper/schema"
	"github.com/zclconf/go-cty/cty"
)

// providerSource is the name Terraform knows bpg's provider by; Upjet wants
// exactly one provider in the schema document.
const providerSource = "registry.terraform.io/bpg/proxmox"

// TerraformSchema is bpg's provider schema as `terraform providers schema
// -json` prints it, taken from the Go provider itself (the version go.mod
// pins), so no terraform CLI takes part in generating the provider.
func TerraformSchema(p *schema.Provider) ([]byte, error) {
	resp, err := schema.NewGRPCProviderServer(p).GetProviderSchema(context.Background(), &tfprotov5.GetProviderSchemaRequest{})
	if err != nil {
		return nil, fmt.Errorf("cannot read bpg's provider schema: %w", err)
	}
	for _, d := range resp.Diagnostics {
		if d.Severity == tfprotov5.DiagnosticSeverityError {
			return nil, fmt.Errorf("cannot read bpg's provider schema: %s: %s", d.Summary, d.Detail)
		}
	}
	ps := &tfjson.ProviderSchema{ResourceSchemas: map[string]*tfjson.Schema{}}
	if ps.ConfigSchema, err = jsonSchema(resp.Provider); err != nil {
		return nil, fmt.Errorf("provider configuration: %w", err)
	}
	for name, s := range resp.ResourceSchemas {
		if ps.ResourceSchemas[name], err = jsonSchema(s); err != nil {
			return nil, fmt.Errorf("resource %s: %w", name, err)
		}
	}
	return json.Marshal(&tfjson.ProviderSchemas{
		FormatVersion: "1.0",
		Schemas:       map[string]*tfjson.ProviderSchema{providerSource: ps},
	})
}

// BPGProvider is bpg's SDKv2 provider, the one whose VM and file resources
// the Machine API composes.
func BPGProvider() *schema.Provider { return provider.ProxmoxVirtualEnvironment() }

func jsonSchema(s *tfprotov5.Schema) (*tfjson.Schema, error) {
	if s == nil {
		return nil, nil
	}
	b, err := jsonBlock(s.Block)
	return &tfjson.Schema{Version: uint64(s.Version), Block: b}, err
}

var nesting = map[tfprotov5.SchemaNestedBlockNestingMode]tfjson.SchemaNestingMode{
	tfprotov5.SchemaNestedBlockNestingModeSingle: tfjson.SchemaNestingModeSingle,
	tfprotov5.SchemaNestedBlockNestingModeGroup:  tfjson.SchemaNestingModeGroup,
	tfprotov5.SchemaNestedBlockNestingModeList:   tfjson.SchemaNestingModeList,
	tfprotov5.SchemaNestedBlockNestingModeSet:    tfjson.SchemaNestingModeSet,
	tfprotov5.SchemaNestedBlockNestingModeMap:    tfjson.SchemaNestingModeMap,
}

func jsonBlock(b *tfprotov5.SchemaBlock) (*tfjson.SchemaBlock, error) {
	out := &tfjson.SchemaBlock{
		Attributes:      map[string]*tfjson.SchemaAttribute{},
		NestedBlocks:    map[string]*tfjson.SchemaBlockType{},
		Description:     b.Description,
		DescriptionKind: descriptionKind(b.DescriptionKind),
		Deprecated:      b.Deprecated,
	}
	for _, a := range b.Attributes {
		raw, err := a.Type.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", a.Name, err)
		}
		var t cty.Type
		if err := t.UnmarshalJSON(raw); err != nil {
			return nil, fmt.Errorf("attribute %s: %w", a.Name, err)
		}
		out.Attributes[a.Name] = &tfjson.SchemaAttribute{
			AttributeType:   t,
			Description:     a.Description,
			DescriptionKind: descriptionKind(a.DescriptionKind),
			Deprecated:      a.Deprecated,
			Required:        a.Required,
			Optional:        a.Optional,
			Computed:        a.Computed,
			Sensitive:       a.Sensitive,
		}
	}
	for _, nb := range b.BlockTypes {
		inner, err := jsonBlock(nb.Block)
		if err != nil {
			return nil, fmt.Errorf("block %s: %w", nb.TypeName, err)
		}
		mode, ok := nesting[nb.Nesting]
		if !ok {
			return nil, fmt.Errorf("block %s: unknown nesting mode %v", nb.TypeName, nb.Nesting)
		}
		out.NestedBlocks[nb.TypeName] = &tfjson.SchemaBlockType{
			NestingMode: mode,
			Block:       inner,
			MinItems:    uint64(nb.MinItems),
			MaxItems:    uint64(nb.MaxItems),
		}
	}
	return out, nil
}

func descriptionKind(k tfprotov5.StringKind) tfjson.SchemaDescriptionKind {
	if k == tfprotov5.StringKindMarkdown {
		return tfjson.SchemaDescriptionKindMarkdown
	}
	return tfjson.SchemaDescriptionKindPlain
}
