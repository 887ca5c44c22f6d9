package vm

// No build tag: the mount-table filter of the VM suite is tested by make unit.

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// mountsUnder are the lines of a mount table (/proc/self/mounts) whose mount
// point is one of folders or inside one, sorted. The VM suite compares them
// before and after a test: what the test could mount (debootstrap's /proc
// and /sys, the image build's chroot mounts) is under its own folders, its
// work folder and the image cache, while other suites on the same machine
// mount elsewhere (a CNI network namespace under /run/netns, say) and must
// not fail it.
func mountsUnder(table string, folders []string) []string {
	var out []string
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		mp := unescapeMount(f[1])
		for _, d := range folders {
			if d = filepath.Clean(d); mp == d || strings.HasPrefix(mp, d+"/") || d == "/" {
				out = append(out, line)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// unescapeMount undoes the kernel's octal escapes of a mount table's fields
// (\040 for a space, \011 a tab, \012 a newline, \134 a backslash).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func TestMountsUnder(t *testing.T) {
	const (
		work = "/tmp/TestClaimBootsAndConverges123/001"
		// A home folder with a space: the table has it as \040.
		cache    = "/home/ci user/.cache/homelab-infra/vm-image"
		cacheEsc = `/home/ci\040user/.cache/homelab-infra/vm-image`
	)
	// The host's table; each case adds lines before and after the test.
	host := []string{
		"/dev/vda1 / ext4 rw,relatime 0 0",
		"proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0",
		"tmpfs /tmp tmpfs rw 0 0",
	}
	cases := map[string]struct {
		reason     string
		before     []string
		after      []string
		wantBefore []string
		wantAfter  []string
	}{
		"Unchanged": {
			reason: "a test that mounted nothing",
		},
		"OtherSuite": {
			reason: "another suite's network namespace, mounted on the host during the test, is not the test's",
			after:  []string{"nsfs /run/netns/cni-1234 nsfs rw 0 0", "shm /run/containerd/io.containerd.grpc.v1.cri/sandboxes/ab/shm tmpfs rw 0 0"},
		},
		"LeakInCache": {
			reason:    "a /proc the image build left mounted in the cache is the test's leak",
			after:     []string{"proc " + cacheEsc + "/image-0123.tmp/root/proc proc rw 0 0"},
			wantAfter: []string{"proc " + cacheEsc + "/image-0123.tmp/root/proc proc rw 0 0"},
		},
		"LeakInWork": {
			reason:    "a mount in the test's work folder, its name escaped by the kernel",
			after:     []string{`tmpfs ` + work + `/a\040b tmpfs rw 0 0`},
			wantAfter: []string{`tmpfs ` + work + `/a\040b tmpfs rw 0 0`},
		},
		"Sibling": {
			reason: "a folder whose name only starts like the test's is not the test's",
			after:  []string{"tmpfs " + work + "0 tmpfs rw 0 0"},
		},
		"There": {
			reason:     "one that was there before the test is in both tables, so the check passes",
			before:     []string{"proc " + cacheEsc + "/base-1/root/proc proc rw 0 0"},
			after:      []string{"proc " + cacheEsc + "/base-1/root/proc proc rw 0 0"},
			wantBefore: []string{"proc " + cacheEsc + "/base-1/root/proc proc rw 0 0"},
			wantAfter:  []string{"proc " + cacheEsc + "/base-1/root/proc proc rw 0 0"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			folders := []string{work, cache + "/"}
			table := func(extra []string) string { return strings.Join(append(slices.Clone(host), extra...), "\n") + "\n" }
			if diff := cmp.Diff(tc.wantBefore, mountsUnder(table(tc.before), folders)); diff != "" {
				t.Errorf("%s: before (-want, +got):\n%s", tc.reason, diff)
			}
			if diff := cmp.Diff(tc.wantAfter, mountsUnder(table(tc.after), folders)); diff != "" {
				t.Errorf("%s: after (-want, +got):\n%s", tc.reason, diff)
			}
		})
	}
}
