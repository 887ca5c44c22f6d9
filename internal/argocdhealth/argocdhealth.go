// Package argocdhealth runs Argo CD's resource health checks outside Argo CD:
// ours, from deploy/argocd/argocd-cm.yaml, and Argo CD's built-in ones, read
// from its module (resource_customizations/). Argo CD's controller cannot be
// built from the module proxy, so this is how the control-plane suite checks
// that Argo CD would judge the objects the real Crossplane writes as we mean.
//
// What it follows from Argo CD v3.5.7 (util/lua/lua.go):
//   - lookup order: an argocd-cm script for the exact "<group>/<kind>" key
//     (just "<kind>" for the core group), then an argocd-cm wildcard key
//     (glob; only the one-key `resource.customizations` form can hold one,
//     as `*` is not allowed in a ConfigMap key), then a built-in script for
//     the exact key, then a built-in wildcard folder ("_" stands for "*");
//   - argocd-cm scripts run with only the package, base, table and a safe os
//     library open; built-in scripts with every standard library;
//   - the object is the global `obj`; the script returns a table whose
//     `status` must be a known health code, or the result is Unknown;
//   - a script gets one second.
package argocdhealth

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

// The health codes Argo CD accepts from a script.
const (
	Healthy     = "Healthy"
	Progressing = "Progressing"
	Degraded    = "Degraded"
	Suspended   = "Suspended"
	Missing     = "Missing"
	Unknown     = "Unknown"
)

var codes = map[string]bool{Healthy: true, Progressing: true, Degraded: true, Suspended: true, Missing: true, Unknown: true}

// Status is what a health script returned.
type Status struct {
	Status  string
	Message string
	// Script names the script that decided: the argocd-cm key, or the
	// built-in folder.
	Script string
}

// Checks are the health scripts Argo CD would consult.
type Checks struct {
	// Overrides are argocd-cm's scripts by key.
	Overrides map[string]string
	// BuiltinDir is Argo CD's resource_customizations folder ("" for none).
	BuiltinDir string
}

// Load reads the health scripts from an argocd-cm ConfigMap manifest; the
// built-in scripts are read from builtinDir when one is needed.
func Load(configMap, builtinDir string) (*Checks, error) {
	b, err := os.ReadFile(configMap)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", configMap, err)
	}
	var cm struct {
		Kind string            `json:"kind"`
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(b, &cm); err != nil {
		return nil, fmt.Errorf("cannot decode %s: %w", configMap, err)
	}
	if cm.Kind != "ConfigMap" {
		return nil, fmt.Errorf("%s: kind is %q, not ConfigMap", configMap, cm.Kind)
	}
	c := &Checks{Overrides: map[string]string{}, BuiltinDir: builtinDir}
	if raw, ok := cm.Data["resource.customizations"]; ok {
		var custom map[string]struct {
			HealthLua string `json:"health.lua"`
		}
		if err := yaml.Unmarshal([]byte(raw), &custom); err != nil {
			return nil, fmt.Errorf("cannot decode %s data.resource.customizations: %w", configMap, err)
		}
		for k, v := range custom {
			if v.HealthLua != "" {
				c.Overrides[k] = v.HealthLua
			}
		}
	}
	// The split form: resource.customizations.health.<group>_<kind>.
	for k, v := range cm.Data {
		if rest, ok := strings.CutPrefix(k, "resource.customizations.health."); ok {
			g, kind, found := strings.Cut(rest, "_")
			key := kind
			if found && g != "" {
				key = g + "/" + kind
			}
			c.Overrides[key] = v
		}
	}
	for k := range c.Overrides {
		if _, err := path.Match(k, ""); err != nil {
			return nil, fmt.Errorf("%s: health key %q is not a valid pattern: %w", configMap, k, err)
		}
	}
	return c, nil
}

// script finds the script for key in Argo CD's order. A key that matches
// two wildcard overrides is an error: Argo CD would pick one at random (it
// ranges over a map).
func (c *Checks) script(key string) (name, script string, openLibs bool, err error) {
	if s, ok := c.Overrides[key]; ok {
		return "argocd-cm " + key, s, false, nil
	}
	var hits []string
	for k := range c.Overrides {
		if m, _ := path.Match(k, key); m {
			hits = append(hits, k)
		}
	}
	sort.Strings(hits)
	if len(hits) > 1 {
		return "", "", false, fmt.Errorf("%s matches several argocd-cm health keys (%s); Argo CD would pick one at random", key, strings.Join(hits, ", "))
	}
	if len(hits) == 1 {
		return "argocd-cm " + hits[0], c.Overrides[hits[0]], false, nil
	}
	if c.BuiltinDir == "" {
		return "", "", false, fmt.Errorf("no argocd-cm health check for %s", key)
	}
	if b, err := os.ReadFile(filepath.Join(c.BuiltinDir, key, "health.lua")); err == nil {
		return "built-in " + key, string(b), true, nil
	}
	// Built-in wildcards are folders with "_" for "*" (e.g. _.crossplane.io/_).
	dirs, err := filepath.Glob(filepath.Join(c.BuiltinDir, "*", "*", "health.lua"))
	if err != nil {
		return "", "", false, fmt.Errorf("cannot list Argo CD's built-in health checks: %w", err)
	}
	sort.Strings(dirs)
	for _, f := range dirs {
		rel, _ := filepath.Rel(c.BuiltinDir, filepath.Dir(f))
		if !strings.Contains(rel, "_") {
			continue
		}
		if m, _ := path.Match(strings.ReplaceAll(filepath.ToSlash(rel), "_", "*"), key); m {
			b, err := os.ReadFile(f)
			if err != nil {
				return "", "", false, fmt.Errorf("cannot read %s: %w", f, err)
			}
			return "built-in " + rel, string(b), true, nil
		}
	}
	return "", "", false, fmt.Errorf("no health check for %s, neither in argocd-cm nor built into Argo CD", key)
}

// Assess returns the health Argo CD would give obj.
func (c *Checks) Assess(obj map[string]any) (Status, error) {
	key := configMapKey(obj)
	name, script, openLibs, err := c.script(key)
	if err != nil {
		return Status{}, err
	}
	st, err := run(script, obj, openLibs)
	if err != nil {
		return Status{}, fmt.Errorf("health check %s: %w", name, err)
	}
	st.Script = name
	return st, nil
}

// configMapKey is Argo CD's key for an object's kind: "<group>/<kind>", or
// "<kind>" for the core group.
func configMapKey(obj map[string]any) string {
	av, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	if g, _, found := strings.Cut(av, "/"); found {
		return g + "/" + kind
	}
	return kind
}

func run(script string, obj map[string]any, openLibs bool) (Status, error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	defer L.Close()
	if !openLibs {
		// Argo CD also opens a safe os library; none of our scripts uses os,
		// so it is left out rather than imitated.
		for _, lib := range []struct {
			name string
			open lua.LGFunction
		}{
			{lua.LoadLibName, lua.OpenPackage},
			{lua.BaseLibName, lua.OpenBase},
			{lua.TabLibName, lua.OpenTable},
		} {
			if err := L.CallByParam(lua.P{Fn: L.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
				return Status{}, fmt.Errorf("cannot open Lua library %s: %w", lib.name, err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	L.SetContext(ctx)
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(script); err != nil {
		return Status{}, fmt.Errorf("cannot run the script: %w", err)
	}
	ret := L.Get(-1)
	t, ok := ret.(*lua.LTable)
	if !ok {
		return Status{}, fmt.Errorf("the script returned %s, not a table", ret.Type())
	}
	st := Status{Status: lua.LVAsString(t.RawGetString("status")), Message: lua.LVAsString(t.RawGetString("message"))}
	if !codes[st.Status] {
		return Status{Status: Unknown, Message: fmt.Sprintf("the script returned status %q, which Argo CD does not know", st.Status)}, nil
	}
	return st, nil
}

// toLua converts a decoded JSON object into Lua values as Argo CD does:
// objects become tables keyed by string, arrays 1-based sequences.
func toLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(x)
	case string:
		return lua.LString(x)
	case float64:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
	case int:
		return lua.LNumber(x)
	case map[string]any:
		t := L.CreateTable(0, len(x))
		for k, e := range x {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []any:
		t := L.CreateTable(len(x), 0)
		for _, e := range x {
			t.Append(toLua(L, e))
		}
		return t
	default:
		return lua.LString(fmt.Sprint(x))
	}
}
