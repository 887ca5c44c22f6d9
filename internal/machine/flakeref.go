package machine

import (
	"regexp"
	"sync"

	"github.com/homelab-infra/homelab-infra/internal/flakeref"
)

// A claim's flake ref is written to the VM's /etc/nix-flake-target at first
// boot and followed by the nix-gitops agent, whose parser (internal/flakeref)
// is the judge: a ref it refuses stops the machine at first boot (exit 78),
// and nix.flakeRef cannot change afterwards. So a ref is valid when the
// agent's parser takes it and it matches FlakeRefRules, the rules the XRD
// enforces too (TestXRDMatchesModel keeps the two equal). The rules are
// narrower than the parser (only what a regular expression can say for
// sure: no %-escapes, names of the usual characters, #HOST required) so that
// whatever the XRD admits the agent follows; TestFlakeRefRulesWithinParser
// and the differential test hold that.

// Parts of FlakeRefPattern.
const (
	frHost  = `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`
	frPort  = `(:[0-9]{1,5})?`
	frPath  = `(/[A-Za-z0-9._~-]+)+/?`
	frRef   = `[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*`
	frDir   = `[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*`
	frQuery = `(\?(ref=` + frRef + `(&dir=` + frDir + `)?|dir=` + frDir + `(&ref=` + frRef + `)?))?`
)

// FlakeRefPattern is the form of a flake ref the agent follows: a git URL
// (https, http, ssh with an optional user, file), a repository path,
// optional ref= and dir=, and #HOST.
const FlakeRefPattern = `^git\+(https?://` + frHost + frPort + `|ssh://([a-z_][a-z0-9_-]*@)?` + frHost + frPort + `|file://)` +
	frPath + frQuery + `#[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`

// FlakeRefRule is one rule of a flake ref: Pattern must match (or, with
// Refuse, must not), else Message.
type FlakeRefRule struct {
	Pattern string
	Refuse  bool
	Message string
}

// FlakeRefRules are the rules of spec.nix.flakeRef, in the XRD's order. The
// messages never quote the ref: it may carry a secret.
var FlakeRefRules = []FlakeRefRule{
	{
		Pattern: `^git\+https?://[^/?#]*@|^[a-z+]+://[^/?#@]*:[^/?#@]*@`, Refuse: true,
		Message: "carries credentials: remove them from the URL (it is written to the VM's /etc/nix-flake-target, the claim's status and Git); the agent reads a token file or an SSH deploy key instead (services.nix-gitops.auth)",
	},
	{
		Pattern: `[?&]rev=`, Refuse: true,
		Message: "pins a commit with rev=, but the agent follows a branch and builds each commit it verified; use ?ref=BRANCH",
	},
	{
		Pattern: `ref=[^&#]*\.lock[&#]`, Refuse: true,
		Message: "has a ref= ending in .lock, which git refuses as a ref name; name the branch",
	},
	{
		Pattern: FlakeRefPattern,
		Message: "is not a flake ref the nix-gitops agent follows: write git+https://, git+http://, git+ssh:// or git+file:// with a repository path, optionally ?ref=BRANCH and &dir=FOLDER, then #HOST, e.g. git+https://git.lab.home.arpa/homelab-infra?ref=main#dns01 (github:, gitlab:, path: and git:// refs are not followed; the agent fetches with git)",
	},
}

var flakeRefRuleREs = sync.OnceValue(func() []*regexp.Regexp {
	out := make([]*regexp.Regexp, len(FlakeRefRules))
	for i, r := range FlakeRefRules {
		out[i] = regexp.MustCompile(r.Pattern)
	}
	return out
})

// CheckFlakeRef returns what is wrong with a flake ref, each problem once, in
// the XRD's words; none when the agent will follow it.
func CheckFlakeRef(ref string) []string {
	var msgs []string
	for i, re := range flakeRefRuleREs() {
		if re.MatchString(ref) == FlakeRefRules[i].Refuse {
			msgs = append(msgs, FlakeRefRules[i].Message)
		}
	}
	if len(msgs) > 0 {
		return msgs
	}
	if _, err := flakeref.Parse(ref); err != nil {
		// The rules are narrower than the parser, so this is a bug in
		// them; refuse all the same, in the parser's words.
		return []string{"is not a flake ref the nix-gitops agent follows: " + err.Error()}
	}
	return nil
}
