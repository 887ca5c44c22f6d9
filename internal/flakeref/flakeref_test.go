package flakeref

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParseNeverEchoesCredentials: whatever else is wrong with a ref, the
// agent's message (in the journal, exit 78) must not repeat a token in it.
func TestParseNeverEchoesCredentials(t *testing.T) {
	for _, in := range []string{
		"git+https://u:s3cret@host/re%zzpo#h",
		"git+https://u:s3cret@host/re po#h",
		"git+file://u:s3cret@host/x#h",
		"https://u:s3cret@host/repo#h",
		"git+https://s3cret@host#h",
		"git+ssh://git:s3cret@host/repo#h",
	} {
		_, err := Parse(in)
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Parse(%q): want an error without the secret, got %v", in, err)
		}
	}
}

func TestParse(t *testing.T) {
	cases := map[string]struct {
		reason  string
		in      string
		want    Ref
		fetch   string
		wantErr string // substring of the error; "" means no error
	}{
		"HTTPSBranchHost": {
			reason: "the form cloud-init writes: https, a branch and a host",
			in:     "git+https://git.lab.home.arpa/homelab-infra?ref=main#dns01",
			want:   Ref{Transport: "https", Remote: "https://git.lab.home.arpa/homelab-infra", Branch: "main", Host: "dns01"},
			fetch:  "refs/heads/main",
		},
		"SSHWithUserDirAndFullRef": {
			reason: "ssh URLs carry a user name; dir= selects a sub-folder; a full ref is kept as is",
			in:     "git+ssh://git@git.example:2222/org/repo.git?ref=refs/tags/v1&dir=nix/flake#web-1",
			want:   Ref{Transport: "ssh", Remote: "ssh://git@git.example:2222/org/repo.git", Branch: "refs/tags/v1", Dir: "nix/flake", Host: "web-1"},
			fetch:  "refs/tags/v1",
		},
		"FileNoRefNoHost": {
			reason: "no ref means the remote's HEAD; no host means the machine's hostname",
			in:     "git+file:///srv/repo",
			want:   Ref{Transport: "file", Remote: "file:///srv/repo"},
			fetch:  "HEAD",
		},
		"SlashBranch": {
			reason: "per-host branches like hosts/dns01 are how rollouts move machines",
			in:     "git+http://127.0.0.1:8080/repo.git?ref=hosts/dns01#dns01",
			want:   Ref{Transport: "http", Remote: "http://127.0.0.1:8080/repo.git", Branch: "hosts/dns01", Host: "dns01"},
			fetch:  "refs/heads/hosts/dns01",
		},
		"Empty":         {reason: "an empty target file is a mistake", in: "  ", wantErr: "empty"},
		"NotGit":        {reason: "github: refs are not followed", in: "github:org/repo#h", wantErr: "not a URL"},
		"PathScheme":    {reason: "path: is not a git repository", in: "path:///srv/repo#h", wantErr: "not supported"},
		"GitProtocol":   {reason: "Nix rejects git+git://", in: "git+git://host/repo#h", wantErr: "not supported"},
		"Token":         {reason: "a token in the URL would leak into argv and logs", in: "git+https://u:secret@host/repo#h", wantErr: "tokenFile"},
		"HTTPSUser":     {reason: "the https user name comes from tokenUser", in: "git+https://u@host/repo#h", wantErr: "tokenUser"},
		"Rev":           {reason: "the agent follows a branch, a pinned rev makes it follow nothing", in: "git+https://host/repo?rev=0123456789abcdef0123456789abcdef01234567#h", wantErr: "rev="},
		"UnknownParam":  {reason: "typos must not be ignored", in: "git+https://host/repo?branch=main#h", wantErr: "branch="},
		"TwoRefs":       {reason: "ambiguous", in: "git+https://host/repo?ref=a&ref=b#h", wantErr: "2 times"},
		"BadRef":        {reason: "git would refuse it later, with a worse message", in: "git+https://host/repo?ref=a..b#h", wantErr: "ref="},
		"DirEscapes":    {reason: "dir must stay inside the repository", in: "git+https://host/repo?dir=../x#h", wantErr: "dir="},
		"AttrFragment":  {reason: "the fragment is a host name, not an attribute path", in: "git+https://host/repo#nixosConfigurations.h", wantErr: "host name"},
		"FileRelative":  {reason: "file URLs need an absolute path", in: "git+file://srv/repo#h", wantErr: "host in a file URL"},
		"NoHostHTTPS":   {reason: "https needs a server", in: "git+https:///repo#h", wantErr: "no host"},
		"NoRepoPath":    {reason: "a server alone is not a repository", in: "git+https://host#h", wantErr: "no repository path"},
		"WhiteSpaceMid": {reason: "a stray space would split argv", in: "git+https://host/re po#h", wantErr: "white space"},
		"TrailingNewline": {
			reason: "the target file ends with a newline",
			in:     "git+https://host/repo?ref=main#h\n",
			want:   Ref{Transport: "https", Remote: "https://host/repo", Branch: "main", Host: "h"},
			fetch:  "refs/heads/main",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("%s\nParse(%q) error = %v, want one containing %q", tc.reason, tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s\nParse(%q): %v", tc.reason, tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s\nParse(%q): -want, +got:\n%s", tc.reason, tc.in, diff)
			}
			if got.FetchRef() != tc.fetch {
				t.Errorf("%s\nFetchRef() = %q, want %q", tc.reason, got.FetchRef(), tc.fetch)
			}
			again, err := Parse(got.String())
			if err != nil || !cmp.Equal(again, got) {
				t.Errorf("%s\nround trip of %q via %q: %v, -want, +got:\n%s", tc.reason, tc.in, got.String(), err, cmp.Diff(got, again))
			}
		})
	}
}

// FuzzParse checks that Parse never panics, and that whatever it accepts
// round-trips through String and never carries credentials or a rev.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"git+https://git.lab.home.arpa/homelab-infra?ref=main#dns01",
		"git+ssh://git@host:22/repo.git?ref=refs/heads/x&dir=a/b#h",
		"git+file:///srv/repo",
		"git+http://127.0.0.1:1/r?ref=hosts/a#b",
		"git+https://u:p@h/r#x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(r.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %+v, but its String %q does not parse: %v", s, r, r.String(), err)
		}
		if !cmp.Equal(again, r) {
			t.Fatalf("round trip of %q: -want, +got:\n%s", s, cmp.Diff(r, again))
		}
		if strings.ContainsAny(r.Remote, "?#") || strings.Contains(r.Branch, "..") {
			t.Fatalf("Parse(%q) accepted %+v", s, r)
		}
		if r.Host != "" && !ValidHost(r.Host) {
			t.Fatalf("Parse(%q) accepted host %q", s, r.Host)
		}
	})
}
