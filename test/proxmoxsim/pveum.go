package proxmoxsim

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// The token's privileges come from the same set-up script a user runs on
// their cluster (deploy/proxmox/), never from a second description of it.
// RunPveumScript runs that script with bash, as written, with two
// stand-ins on its PATH, since neither can run here:
//
//   - pveum records its arguments (one call a file) and exits 0;
//   - pveversion prints "pve-manager/<release>/..." for the release played.
//
// Each recorded call is then parsed as pveum parses it and applied as the
// API method behind it applies it, in order, to a fresh user.cfg:
//
//   - pve-access-control src/PVE/CLI/pveum.pm at
//     1398ef8d0b5351284240239ec580060afa05fd29, $cmddef: the command words
//     (and their aliases useradd, roleadd, aclmod, ...), the positional
//     parameters, and acl modify's fixed delete=0;
//   - pve-common src/PVE/JSONSchema.pm at
//     ac6c61bf135f4e0bb261c4b95cec2071677da99e, get_options: options start
//     with - or --, take "--name value" or "--name=value", may be shortened
//     to a unique prefix (Getopt::Long), boolean options take an optional
//     value (none means 1), list options may repeat;
//   - the method's parameters are validated against the release's schema
//     (so "VM.Monitor" is an invalid privilege on PVE 9, and
//     "VM.GuestAgent.Audit" on PVE 8).
//
// A call the real pveum would refuse (an unknown role, a user that does not
// exist, an invalid privilege) fails RunPveumScript with pveum's message.
// The script must therefore not branch on pveum's exit status: the
// stand-in always succeeds.
func RunPveumScript(api *API, script string, env ...string) (*Access, error) {
	dir, err := os.MkdirTemp("", "proxmoxsim-pveum-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin, calls := filepath.Join(dir, "bin"), filepath.Join(dir, "calls")
	for _, d := range []string{bin, calls} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	stubs := map[string]string{
		// stand-in for pveum: records each call, one file a call, NUL-separated.
		"pveum": `#!/bin/sh
n=$(ls "$PROXMOXSIM_PVEUM_CALLS" | wc -l)
f="$PROXMOXSIM_PVEUM_CALLS/$(printf '%06d' "$n")"
for a in "$@"; do printf '%s\0' "$a"; done > "$f"
`,
		// stand-in for pveversion: the release played.
		"pveversion": `#!/bin/sh
echo "pve-manager/$PROXMOXSIM_PVE_RELEASE/0000000000000000 (running kernel: proxmoxsim)"
`,
	}
	for name, body := range stubs {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command("bash", script)
	cmd.Env = append([]string{
		"PATH=" + bin + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + dir,
		"PROXMOXSIM_PVEUM_CALLS=" + calls,
		"PROXMOXSIM_PVE_RELEASE=" + api.Version,
	}, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", script, err, out.String())
	}
	entries, err := os.ReadDir(calls)
	if err != nil {
		return nil, err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	a := NewAccess(api)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(calls, e.Name()))
		if err != nil {
			return nil, err
		}
		args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		if err := a.Pveum(api, args...); err != nil {
			return nil, fmt.Errorf("%s: pveum %s: %w", filepath.Base(script), strings.Join(args, " "), err)
		}
	}
	return a, nil
}

// pveumCommand is one $cmddef entry: the API method behind it and its
// positional parameters.
type pveumCommand struct {
	method, path string
	args         []string
	fixed        map[string]string
}

var pveumCommands = map[string]pveumCommand{
	"user add":       {"POST", "/access/users", []string{"userid"}, nil},
	"user token add": {"POST", "/access/users/{userid}/token/{tokenid}", []string{"userid", "tokenid"}, nil},
	"group add":      {"POST", "/access/groups", []string{"groupid"}, nil},
	"role add":       {"POST", "/access/roles", []string{"roleid"}, nil},
	"role modify":    {"PUT", "/access/roles/{roleid}", []string{"roleid"}, nil},
	"acl modify":     {"PUT", "/access/acl", []string{"path"}, map[string]string{"delete": "0"}},
	"pool add":       {"POST", "/pools", []string{"poolid"}, nil},
	"pool modify":    {"PUT", "/pools", []string{"poolid"}, nil},
}

var pveumAliases = map[string]string{
	"useradd": "user add", "groupadd": "group add", "roleadd": "role add", "aclmod": "acl modify",
}

// Pveum applies one pveum call (its arguments, without "pveum") to a.
func (a *Access) Pveum(api *API, args ...string) error {
	if len(args) == 0 {
		return fmt.Errorf("no command")
	}
	var name string
	var rest []string
	if alias, ok := pveumAliases[args[0]]; ok {
		name, rest = alias, args[1:]
	} else {
		for n := 3; n >= 1; n-- {
			if len(args) >= n {
				if _, ok := pveumCommands[strings.Join(args[:n], " ")]; ok {
					name, rest = strings.Join(args[:n], " "), args[n:]
					break
				}
			}
		}
	}
	c, ok := pveumCommands[name]
	if !ok {
		return fmt.Errorf("proxmoxsim: pveum command %q is not simulated (add it to pveumCommands with its API method)", strings.Join(args, " "))
	}
	ep := api.Endpoint(c.method, c.path)
	if ep == nil {
		return fmt.Errorf("no such API method %s %s in Proxmox VE %s", c.method, c.path, api.Version)
	}
	params, err := getOptions(ep.Parameters, rest, c.args)
	if err != nil {
		return err
	}
	for k, v := range c.fixed {
		params[k] = v
	}
	v := &validator{privileges: api.privileges}
	if e := v.validateParams(ep.Parameters, params); len(e) > 0 {
		return paramError(e)
	}
	return a.apply(name, params)
}

// getOptions is JSONSchema's get_options for pveum's argument list.
func getOptions(schema *Prop, args, argParams []string) (map[string]string, error) {
	names := make([]string, 0, len(schema.Properties))
	for k := range schema.Properties {
		names = append(names, k)
	}
	sort.Strings(names)
	opts := map[string]string{}
	var positional []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		opt, isOpt := strings.CutPrefix(arg, "--")
		if !isOpt {
			opt, isOpt = strings.CutPrefix(arg, "-")
		}
		if !isOpt || opt == "" {
			positional = append(positional, arg)
			continue
		}
		opt, val, hasVal := strings.Cut(opt, "=")
		var match []string
		for _, n := range names {
			if n == opt {
				match = []string{n}
				break
			}
			if strings.HasPrefix(n, opt) {
				match = append(match, n)
			}
		}
		if len(match) != 1 {
			return nil, fmt.Errorf("unable to parse option (%s: unknown or ambiguous)", arg)
		}
		p := schema.Properties[match[0]]
		if !hasVal {
			switch {
			case p.Type == "boolean" && (i+1 >= len(args) || strings.HasPrefix(args[i+1], "-")):
				val = ""
			case i+1 < len(args):
				i++
				val = args[i]
			default:
				return nil, fmt.Errorf("unable to parse option (%s needs a value)", arg)
			}
		}
		if p.Type == "boolean" {
			if val == "" {
				val = "1"
			} else if b, ok := parseBoolean(val); ok {
				val = b
			} else {
				return nil, fmt.Errorf("unable to parse boolean option")
			}
		}
		if old, ok := opts[match[0]]; ok && strings.HasSuffix(p.FormatName, "-list") {
			val = old + "," + val
		}
		opts[match[0]] = val
	}
	if len(positional) < len(argParams) {
		return nil, fmt.Errorf("not enough arguments")
	}
	if len(positional) > len(argParams) {
		return nil, fmt.Errorf("too many arguments")
	}
	for i, name := range argParams {
		opts[name] = positional[i]
	}
	return opts, nil
}

// apply is the effect of the API method behind one pveum command on
// user.cfg (pve-access-control src/PVE/API2/*.pm: create_user,
// generate_token, create_group, create_role, update_acl; pve-manager's
// create_pool and update_pool), with their refusals.
func (a *Access) apply(cmd string, p map[string]string) error {
	switch cmd {
	case "user add":
		if a.Users[p["userid"]] != nil {
			return fmt.Errorf("create user failed: user '%s' already exists", p["userid"])
		}
		a.Users[p["userid"]] = &User{ID: p["userid"], Tokens: map[string]*Token{}}
	case "user token add":
		u := a.Users[p["userid"]]
		if u == nil {
			return fmt.Errorf("user '%s' does not exist", p["userid"])
		}
		if u.Tokens[p["tokenid"]] != nil {
			return fmt.Errorf("Token already exists.")
		}
		privsep := p["privsep"] != "0" // default 1
		u.Tokens[p["tokenid"]] = &Token{Privsep: privsep}
	case "group add":
		if a.Groups[p["groupid"]] != nil {
			return fmt.Errorf("group '%s' already exists", p["groupid"])
		}
		a.Groups[p["groupid"]] = map[string]bool{}
	case "role add":
		if a.Roles[p["roleid"]] != nil {
			return fmt.Errorf("role '%s' already exists", p["roleid"])
		}
		if strings.HasPrefix(p["roleid"], "PVE") {
			return fmt.Errorf("cannot use reserved role name prefix 'PVE'")
		}
		privs := map[string]bool{}
		for _, x := range splitList(p["privs"]) {
			privs[x] = true
		}
		a.Roles[p["roleid"]] = privs
	case "role modify":
		// update_role (pve-access-control src/PVE/API2/Role.pm; the copy
		// the search tools hold names no commit): the privileges replace
		// the role's, or are added with append.
		role := a.Roles[p["roleid"]]
		if role == nil {
			return fmt.Errorf("role '%s' does not exist", p["roleid"])
		}
		if p["append"] != "1" {
			clear(role)
		}
		for _, x := range splitList(p["privs"]) {
			role[x] = true
		}
	case "acl modify":
		path, ok := normalizePath(p["path"])
		if !ok || !checkACLPath(path) {
			return fmt.Errorf("invalid ACL path '%s'", p["path"])
		}
		propagate := p["propagate"] != "0" // default 1
		for _, role := range splitList(p["roles"]) {
			if a.Roles[role] == nil {
				return fmt.Errorf("role '%s' does not exist", role)
			}
			var who []string
			for _, g := range splitList(p["groups"]) {
				if a.Groups[g] == nil {
					return fmt.Errorf("group '%s' does not exist", g)
				}
				who = append(who, "@"+g)
			}
			for _, u := range splitList(p["users"]) {
				if a.Users[u] == nil {
					return fmt.Errorf("user '%s' does not exist", u)
				}
				who = append(who, u)
			}
			for _, t := range splitList(p["tokens"]) {
				m := tokenRE.FindStringSubmatch(t)
				if m == nil || a.Users[m[1]] == nil || a.Users[m[1]].Tokens[m[4]] == nil {
					return fmt.Errorf("no such token '%s' for user '%s'", tokenName(t), tokenUser(t))
				}
				who = append(who, t)
			}
			for _, w := range who {
				a.setACL(path, w, role, propagate)
			}
		}
	case "pool add":
		if a.Pools[p["poolid"]] != nil {
			return fmt.Errorf("pool '%s' already exists", p["poolid"])
		}
		a.Pools[p["poolid"]] = &Pool{VMs: map[int]bool{}, Storages: map[string]bool{}}
	case "pool modify":
		pool := a.Pools[p["poolid"]]
		if pool == nil {
			return fmt.Errorf("pool '%s' does not exist", p["poolid"])
		}
		for _, v := range splitList(p["vms"]) {
			id, _ := strconv.Atoi(v)
			if other := a.PoolOf(id); other != "" && other != p["poolid"] {
				return fmt.Errorf("VM %d belongs already to pool '%s'", id, other)
			}
			pool.VMs[id] = p["delete"] != "1"
		}
		for _, s := range splitList(p["storage"]) {
			pool.Storages[s] = p["delete"] != "1"
		}
	}
	return nil
}

func (a *Access) setACL(path, who, role string, propagate bool) {
	for i, e := range a.ACL[path] {
		if e.Who == who && e.Role == role {
			a.ACL[path][i].Propagate = propagate
			return
		}
	}
	a.ACL[path] = append(a.ACL[path], ACLEntry{Who: who, Role: role, Propagate: propagate})
}

func tokenUser(t string) string { u, _, _ := strings.Cut(t, "!"); return u }
func tokenName(t string) string { _, n, _ := strings.Cut(t, "!"); return n }

// checkACLPath is AccessControl.pm's check_path: the ACL paths PVE knows.
func checkACLPath(p string) bool {
	return aclPathRE.MatchString(p)
}

var aclPathRE = regexpMust(`^(/|/access|/access/groups|/access/groups/[[:alnum:].\-_]+|/access/realm|/access/realm/[[:alnum:].\-_]+|/nodes|/nodes/[[:alnum:].\-_]+|/pool|/pool/[[:alnum:].\-_]+|/sdn|/sdn/zones/[[:alnum:].\-_]+|/sdn/zones/[[:alnum:].\-_]+/[[:alnum:].\-_]+|/sdn/zones/[[:alnum:].\-_]+/[[:alnum:].\-_]+/[1-9][0-9]{0,3}|/sdn/vnets/[[:alnum:].\-_]+|/storage|/storage/[[:alnum:].\-_]+|/vms|/vms/[1-9][0-9]{2,})$`)

// SetTokenSecret gives token id (user@realm!name) the secret the simulator
// accepts for it (pveum prints a generated one; the test picks it).
func (a *Access) SetTokenSecret(id, secret string) error {
	m := tokenRE.FindStringSubmatch(id)
	if m == nil || a.Users[m[1]] == nil || a.Users[m[1]].Tokens[m[4]] == nil {
		return fmt.Errorf("no API token %s in the set-up", id)
	}
	a.Users[m[1]].Tokens[m[4]].Secret = secret
	return nil
}

// Tokens lists the API tokens of the set-up (user@realm!name), sorted.
func (a *Access) Tokens() []string {
	var out []string
	for uid, u := range a.Users {
		for name := range u.Tokens {
			out = append(out, uid+"!"+name)
		}
	}
	sort.Strings(out)
	return out
}

// authenticate finds the token an Authorization header's
// "PVEAPIToken=<id>=<secret>" names (AccessControl.pm verify_token).
func (a *Access) authenticate(header string) (string, bool) {
	v, ok := strings.CutPrefix(header, "PVEAPIToken=")
	if !ok {
		return "", false
	}
	i := strings.LastIndex(v, "=")
	if i < 0 {
		return "", false
	}
	id, secret := v[:i], v[i+1:]
	m := tokenRE.FindStringSubmatch(id)
	if m == nil || a.Users[m[1]] == nil {
		return "", false
	}
	t := a.Users[m[1]].Tokens[m[4]]
	if t == nil || t.Secret == "" || t.Secret != secret {
		return "", false
	}
	return id, true
}
