package proxmoxsim

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
)

// Access is the cluster's user.cfg as far as permissions go: users, their
// API tokens, roles, ACLs and pools. Permissions are computed as
// pve-access-control computes them:
//
//   - roles(): pve-access-control src/PVE/AccessControl.pm at
//     680953712740c5f1c96810c819a03a1649901786, sub roles: for every ACL
//     path that is the checked path or above it, the entries of the token,
//     else of the user, else of the user's groups, apply; an entry above
//     the checked path only if it propagates; a deeper path's entries
//     replace what came from above; a token without privilege separation
//     has its user's roles.
//   - permissions(): src/PVE/RPCEnvironment.pm at
//     9590c6bdfe8ad0cea171516ebfeb86af241171d1, $compile_acl_path: roles
//     granted on /pool/<pool> apply to the pool's VMs and storages (never
//     over NoAccess, never replacing a role the path already has); the
//     privileges are the union of the roles'; a privilege-separated
//     token's are intersected with its user's.
//   - check / check_any / check_vm_perm / exec_api2_perm_check (the same
//     file): a missing privilege raises "Permission check failed (<path>,
//     <priv>)" (check_any: the privileges joined by "|"), HTTP 403.
type Access struct {
	// Users maps user ids (crossplane@pve) to their groups.
	Users map[string]*User
	// Roles maps a role to its privileges. PVE's built-in roles are added
	// by NewAccess.
	Roles map[string]map[string]bool
	// ACL maps a normalized path to its entries.
	ACL map[string][]ACLEntry
	// Pools maps a pool to its member VM ids and storages.
	Pools map[string]*Pool
	// Groups maps a group to its members.
	Groups map[string]map[string]bool
}

// User is one user and its API tokens.
type User struct {
	ID     string
	Tokens map[string]*Token // by token name
}

// Token is an API token: its secret, and whether its privileges are
// separated from its user's (privsep, on by default).
type Token struct {
	Secret  string
	Privsep bool
}

// ACLEntry grants a role on a path to a user, a group (@name) or a token
// (user@realm!name).
type ACLEntry struct {
	Who       string
	Role      string
	Propagate bool
}

// Pool is a resource pool's members.
type Pool struct {
	VMs      map[int]bool
	Storages map[string]bool
}

// NewAccess returns a user.cfg with only PVE's built-in roles: NoAccess,
// Administrator (every privilege of the release) and PVETemplateUser, the
// special roles of AccessControl.pm's create_roles that do not depend on
// its privilege groups.
func NewAccess(api *API) *Access {
	a := &Access{Users: map[string]*User{}, Roles: map[string]map[string]bool{}, ACL: map[string][]ACLEntry{},
		Pools: map[string]*Pool{}, Groups: map[string]map[string]bool{}}
	admin := map[string]bool{}
	for _, p := range api.Privileges() {
		admin[p] = true
	}
	a.Roles["NoAccess"] = map[string]bool{}
	a.Roles["Administrator"] = admin
	a.Roles["PVETemplateUser"] = map[string]bool{"VM.Clone": true, "VM.Audit": true}
	return a
}

// tokenRE is AccessControl.pm's $token_full_regex: user@realm!token.
var tokenRE = regexp.MustCompile(`^(([^\s:/]+)@([A-Za-z][A-Za-z0-9.\-_]+))!([A-Za-z][A-Za-z0-9.\-_]+)$`)

// normalizePath is AccessControl.pm's normalize_path.
func normalizePath(p string) (string, bool) {
	if p == "" {
		return "", false
	}
	p = regexp.MustCompile(`/+`).ReplaceAllString(p, "/")
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		p = "/"
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if !regexp.MustCompile(`^[[:alnum:].\-_/]+$`).MatchString(p) {
		return "", false
	}
	return p, true
}

// roles is AccessControl.pm's roles() for a user or token on path: role ->
// propagate flag.
func (a *Access) roles(who, path string) map[string]bool {
	if m := tokenRE.FindStringSubmatch(who); m != nil {
		u := a.Users[m[1]]
		if u == nil || u.Tokens[m[4]] == nil {
			return map[string]bool{}
		}
		if !u.Tokens[m[4]].Privsep {
			return a.roles(m[1], path)
		}
	}
	paths := make([]string, 0, len(a.ACL))
	for p := range a.ACL {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	roles := map[string]bool{}
	for _, p := range paths {
		final := p == path
		if !(p == "/" || final || strings.HasPrefix(path, p+"/")) {
			continue
		}
		apply := func(match func(ACLEntry) bool) bool {
			var got map[string]bool
			for _, e := range a.ACL[p] {
				if match(e) && (final || e.Propagate) {
					if got == nil {
						got = map[string]bool{}
					}
					got[e.Role] = e.Propagate
				}
			}
			if got != nil {
				roles = got // overwrite previous settings
				return true
			}
			return false
		}
		if apply(func(e ACLEntry) bool { return e.Who == who && strings.Contains(who, "!") }) {
			continue
		}
		if apply(func(e ACLEntry) bool { return e.Who == who && !strings.Contains(who, "!") }) {
			continue // user privs always override group privs
		}
		apply(func(e ACLEntry) bool {
			g, ok := strings.CutPrefix(e.Who, "@")
			return ok && a.Groups[g][who]
		})
	}
	if _, no := roles["NoAccess"]; no {
		return map[string]bool{"NoAccess": roles["NoAccess"]}
	}
	return roles
}

// Permissions is RPCEnvironment's permissions(): the privileges who holds
// on path.
func (a *Access) Permissions(who, path string) map[string]bool {
	if who == "root@pam" {
		return a.Roles["Administrator"]
	}
	var user string
	if m := tokenRE.FindStringSubmatch(who); m != nil {
		u := a.Users[m[1]]
		if u == nil || u.Tokens[m[4]] == nil {
			return map[string]bool{}
		}
		if !u.Tokens[m[4]].Privsep {
			return a.Permissions(m[1], path)
		}
		user = m[1]
	}
	roles := a.roles(who, path)
	if _, no := roles["NoAccess"]; !no {
		for _, pool := range a.poolsOf(path) {
			for r := range a.roles(who, "/pool/"+pool) {
				if r == "NoAccess" {
					roles = map[string]bool{"NoAccess": false}
					break
				}
				if _, ok := roles[r]; !ok {
					roles[r] = false
				}
			}
		}
	}
	privs := map[string]bool{}
	for r := range roles {
		for p := range a.Roles[r] {
			privs[p] = true
		}
	}
	if user != "" && user != "root@pam" {
		up := a.Permissions(user, path)
		for p := range privs {
			if !up[p] {
				delete(privs, p)
			}
		}
	}
	return privs
}

// poolsOf names the pools whose member path is (a VM's /vms/<id>, a
// storage's /storage/<id>).
func (a *Access) poolsOf(path string) []string {
	var out []string
	for name, p := range a.Pools {
		if id, ok := strings.CutPrefix(path, "/vms/"); ok {
			var n int
			if _, err := fmt.Sscan(id, &n); err == nil && p.VMs[n] {
				out = append(out, name)
			}
		}
		if st, ok := strings.CutPrefix(path, "/storage/"); ok && p.Storages[st] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// PoolOf names the pool VM id is a member of ("" for none).
func (a *Access) PoolOf(id int) string {
	for name, p := range a.Pools {
		if p.VMs[id] {
			return name
		}
	}
	return ""
}

// permError is raise_perm_exc: 403 "Permission check failed (<what>)".
func permError(what string) *apiError {
	msg := "Permission check failed"
	if what != "" {
		msg += " (" + what + ")"
	}
	return fail(http.StatusForbidden, "%s", msg)
}

// check is RPCEnvironment's check: every privilege on path.
func (a *Access) check(who, path string, privs ...string) *apiError {
	have := a.Permissions(who, path)
	for _, p := range privs {
		if !have[p] {
			return permError(path + ", " + p)
		}
	}
	return nil
}

// checkAny is RPCEnvironment's check_any: one of the privileges on path.
func (a *Access) checkAny(who, path string, privs ...string) *apiError {
	have := a.Permissions(who, path)
	for _, p := range privs {
		if have[p] {
			return nil
		}
	}
	return permError(path + ", " + strings.Join(privs, "|"))
}

// checkVMPerm is check_vm_perm without a pool argument (the form every
// call the simulator serves uses): the privileges on /vms/<id>, which
// permissions() already extends by the VM's pool.
func (a *Access) checkVMPerm(who string, id int, any bool, privs ...string) *apiError {
	path := fmt.Sprintf("/vms/%d", id)
	if any {
		return a.checkAny(who, path, privs...)
	}
	return a.check(who, path, privs...)
}

// checkAPI2 is check_api2_permissions and exec_api2_perm_check: "user:
// all" lets any authenticated caller in (the method checks in code),
// otherwise the check tree decides, with {param} placeholders in paths
// taken from the call's parameters; no permission block means root only.
func (a *Access) checkAPI2(perm *Permissions, who string, params map[string]string) *apiError {
	if who == "root@pam" {
		return nil
	}
	if perm == nil {
		return permError("user != root@pam")
	}
	if perm.User == "all" || perm.User == "world" {
		return nil
	}
	if perm.Check == nil {
		return permError("")
	}
	_, err := a.execCheck(perm.Check, who, params, false)
	return err
}

func (a *Access) execCheck(check []any, who string, params map[string]string, noerr bool) (bool, *apiError) {
	if len(check) == 0 {
		return false, permError("")
	}
	test, _ := check[0].(string)
	switch test {
	case "and":
		for _, sub := range check[1:] {
			c, _ := sub.([]any)
			if _, err := a.execCheck(c, who, params, false); err != nil {
				return false, err
			}
		}
		return true, nil
	case "or":
		for _, sub := range check[1:] {
			c, _ := sub.([]any)
			if ok, _ := a.execCheck(c, who, params, true); ok {
				return true, nil
			}
		}
		if noerr {
			return false, nil
		}
		return false, permError("")
	case "perm":
		if len(check) < 3 {
			return false, permError("")
		}
		tmpl, _ := check[1].(string)
		var privs []string
		list, _ := check[2].([]any)
		for _, p := range list {
			privs = append(privs, fmt.Sprint(p))
		}
		opts := map[string]string{}
		for i := 3; i+1 < len(check); i += 2 {
			opts[fmt.Sprint(check[i])] = fmt.Sprint(check[i+1])
		}
		if rp := opts["require_param"]; rp != "" {
			if _, ok := params[rp]; !ok {
				if noerr {
					return false, nil
				}
				return false, permError("")
			}
		}
		path, _ := normalizePath(templateReplace(tmpl, params))
		var err *apiError
		if opts["any"] == "1" {
			err = a.checkAny(who, path, privs...)
		} else {
			err = a.check(who, path, privs...)
		}
		if err != nil {
			if noerr {
				return false, nil
			}
			return false, err
		}
		return true, nil
	}
	// userid-param, userid-group, perm-modify: not on the methods the
	// simulator serves to a token.
	if noerr {
		return false, nil
	}
	return false, permError("")
}

var placeholderRE = regexp.MustCompile(`\{(\w+)\}`)

// templateReplace is PVE::Tools::template_replace.
func templateReplace(t string, params map[string]string) string {
	return placeholderRE.ReplaceAllStringFunc(t, func(m string) string {
		return params[strings.Trim(m, "{}")]
	})
}
