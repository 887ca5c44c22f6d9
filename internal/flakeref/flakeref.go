// Package flakeref parses the flake references that nix-gitops follows:
// git+https://…, git+http://…, git+ssh://… and git+file://…, with the query
// parameters ref= and dir= and a #host fragment, for example
//
//	git+https://git.lab.home.arpa/homelab-infra?ref=main#dns01
//	git+ssh://git@git.lab.home.arpa/homelab-infra.git?ref=hosts/dns01&dir=nix#dns01
//	git+file:///srv/homelab-infra?ref=main#dns01
//
// The agent fetches the ref with git itself and builds the exact commit it
// verified from its own clone (design D9), so a ref here is a branch or tag
// the agent follows, never a pinned rev: rev= is refused. Credentials in the
// URL are refused too: they would end up in process arguments and logs; the
// agent takes a token file or an SSH key file instead.
package flakeref

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Ref is a parsed flake reference.
type Ref struct {
	// Transport is the git transport: "https", "http", "ssh" or "file".
	Transport string
	// Remote is the URL git fetches from, without the "git+" prefix, the
	// query and the fragment, e.g. https://host/repo or file:///srv/repo.
	Remote string
	// Branch is the ref= parameter as written ("main", "refs/heads/main",
	// "refs/tags/v1"); empty means the remote's HEAD.
	Branch string
	// Dir is the dir= parameter: the flake's folder inside the repository.
	Dir string
	// Host is the #fragment: the nixosConfigurations attribute to build.
	// Empty means the machine's hostname (as nixos-rebuild does).
	Host string
}

var (
	hostRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]*$`)
	// A conservative subset of git-check-ref-format: what people write.
	refRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._/+-]*$`)
)

// Parse parses s. Errors name what is wrong and how to write it instead;
// they never repeat credentials the ref carries (Redact).
func Parse(s string) (Ref, error) {
	r, err := parse(s)
	if err != nil {
		return Ref{}, errors.New(strings.ReplaceAll(err.Error(), strings.TrimSpace(s), Redact(strings.TrimSpace(s))))
	}
	return r, nil
}

// Redact is s with any user info of its URL (user:token@) replaced, so that a
// message may quote a ref a user wrote with a secret in it.
func Redact(s string) string {
	_, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndexByte(rest[:end], '@')
	if at < 0 {
		return s
	}
	return s[:len(s)-len(rest)] + "REDACTED@" + rest[at+1:]
}

func parse(s string) (Ref, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Ref{}, errors.New("flake ref is empty: write e.g. git+https://git.example/repo?ref=main#host")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return Ref{}, fmt.Errorf("flake ref %q contains white space", s)
	}
	scheme, _, ok := strings.Cut(s, "://")
	if !ok {
		return Ref{}, fmt.Errorf("flake ref %q is not a URL: write e.g. git+https://git.example/repo?ref=main#host", s)
	}
	transport, ok := strings.CutPrefix(scheme, "git+")
	if !ok {
		return Ref{}, fmt.Errorf("flake ref scheme %q is not supported: the agent follows git repositories, write git+https://, git+ssh:// or git+file://", scheme)
	}
	switch transport {
	case "https", "http", "ssh", "file":
	default:
		return Ref{}, fmt.Errorf("flake ref scheme %q is not supported: write git+https://, git+http://, git+ssh:// or git+file://", scheme)
	}
	u, err := url.Parse(strings.TrimPrefix(s, "git+"))
	if err != nil {
		// url.Error quotes the URL whole: keep only its reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Ref{}, fmt.Errorf("cannot parse flake ref %q: %w", s, err)
	}
	r := Ref{Transport: transport}
	if u.User != nil {
		if _, hasPassword := u.User.Password(); hasPassword {
			return Ref{}, errors.New("flake ref carries a password or token in its URL: remove it and set the agent's tokenFile (--token-file) instead")
		}
		if transport != "ssh" {
			return Ref{}, fmt.Errorf("flake ref carries a user name in its %s URL: remove it and set tokenUser instead", transport)
		}
	}
	switch transport {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return Ref{}, fmt.Errorf("flake ref %q has a host in a file URL: write git+file:///absolute/path", s)
		}
		if !strings.HasPrefix(u.Path, "/") {
			return Ref{}, fmt.Errorf("flake ref %q needs an absolute path: write git+file:///absolute/path", s)
		}
	default:
		if u.Host == "" {
			return Ref{}, fmt.Errorf("flake ref %q has no host", s)
		}
		if u.Path == "" || u.Path == "/" {
			return Ref{}, fmt.Errorf("flake ref %q has no repository path", s)
		}
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Ref{}, fmt.Errorf("cannot parse the query of flake ref %q: %w", s, err)
	}
	for k, v := range q {
		if len(v) != 1 {
			return Ref{}, fmt.Errorf("flake ref parameter %s= is given %d times: give it once", k, len(v))
		}
		switch k {
		case "ref":
			r.Branch = v[0]
			if !validRef(r.Branch) {
				return Ref{}, fmt.Errorf("flake ref parameter ref=%q is not a valid git ref name", r.Branch)
			}
		case "dir":
			r.Dir = strings.Trim(v[0], "/")
			if r.Dir == "" || strings.Contains("/"+r.Dir+"/", "/../") || strings.Contains("/"+r.Dir+"/", "/./") || strings.Contains(r.Dir, "//") {
				return Ref{}, fmt.Errorf("flake ref parameter dir=%q must be a relative folder inside the repository, without . or ..", v[0])
			}
		case "rev":
			return Ref{}, errors.New("flake ref parameter rev= pins a commit, but the agent follows a branch: remove rev= and use ref=BRANCH")
		default:
			return Ref{}, fmt.Errorf("flake ref parameter %s= is not supported: use ref= and dir=", k)
		}
	}
	if u.Fragment != "" {
		if !hostRE.MatchString(u.Fragment) {
			return Ref{}, fmt.Errorf("flake ref fragment #%s is not a host name: write #HOST, the name under nixosConfigurations (letters, digits, _ and -)", u.Fragment)
		}
		r.Host = u.Fragment
	}
	// Keep the remote exactly as written (escaping included), minus query
	// and fragment.
	rest := strings.TrimPrefix(s, "git+")
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i]
	}
	r.Remote = rest
	return r, nil
}

func validRef(s string) bool {
	if !refRE.MatchString(s) || strings.Contains(s, "..") || strings.Contains(s, "//") ||
		strings.HasSuffix(s, "/") || strings.HasSuffix(s, ".") || strings.HasSuffix(s, ".lock") ||
		strings.Contains(s, "/.") || strings.Contains(s, "@{") {
		return false
	}
	return true
}

// FetchRef is the full ref name git fetches: refs/heads/<branch> for a
// plain branch name, the name itself when it starts with refs/, and HEAD
// when no branch was given.
func (r Ref) FetchRef() string {
	switch {
	case r.Branch == "":
		return "HEAD"
	case strings.HasPrefix(r.Branch, "refs/"):
		return r.Branch
	default:
		return "refs/heads/" + r.Branch
	}
}

// WithHost returns r with Host set to host when r has none.
func (r Ref) WithHost(host string) Ref {
	if r.Host == "" {
		r.Host = host
	}
	return r
}

// String renders r as a flake ref again, e.g. for status output.
func (r Ref) String() string {
	var b strings.Builder
	b.WriteString("git+")
	b.WriteString(r.Remote)
	var q []string
	if r.Branch != "" {
		q = append(q, "ref="+url.QueryEscape(r.Branch))
	}
	if r.Dir != "" {
		q = append(q, "dir="+url.QueryEscape(r.Dir))
	}
	if len(q) > 0 {
		b.WriteString("?" + strings.Join(q, "&"))
	}
	if r.Host != "" {
		b.WriteString("#" + r.Host)
	}
	return b.String()
}

// Attr is the attribute path of the host's system toplevel.
func (r Ref) Attr() string {
	return "nixosConfigurations." + r.Host + ".config.system.build.toplevel"
}

// ValidHost reports whether h can be used as the #host fragment.
func ValidHost(h string) bool { return hostRE.MatchString(h) }
