package secrets

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/homelab-infra/homelab-infra/internal/securefile"
	"github.com/homelab-infra/homelab-infra/internal/vault"
)

var onTmpfs = securefile.OnTmpfs

// fileOwner is a resolved owner, group and mode.
type fileOwner = securefile.Owner

// owner resolves a secret's owner and group. pending is true when either
// does not exist yet: the file is then written root:root with the owner's
// bits only, and given away after the switch (which creates service users).
func owner(s Secret) (o fileOwner, pending bool, err error) {
	uid, uerr := lookupUser(s.Owner)
	gid, gerr := lookupGroup(s.Group)
	if uerr != nil || gerr != nil {
		var unknownU user.UnknownUserError
		var unknownG user.UnknownGroupError
		if (uerr == nil || errors.As(uerr, &unknownU)) && (gerr == nil || errors.As(gerr, &unknownG)) {
			return fileOwner{UID: 0, GID: 0, Mode: s.mode() & 0o700}, true, nil
		}
		return fileOwner{}, false, errors.Join(uerr, gerr)
	}
	return fileOwner{UID: uid, GID: gid, Mode: s.mode()}, false, nil
}

func lookupUser(name string) (int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(u.Uid)
}

func lookupGroup(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}

func writeSecret(path string, data []byte, o fileOwner) error {
	return securefile.Write(path, data, o, false)
}

// FixOwners gives every declared secret's files to their owner and group,
// and sets their mode, where those exist now. It talks to no one: NixOS's
// activation runs it (nix-gitops secrets --fix-owners) right after it has
// created users and before it starts units, and the agent runs it after
// every switch. A file whose owner still does not exist is an error naming
// the option.
func FixOwners(f *File) error {
	var errs []error
	for _, name := range Names(f) {
		s := f.Secrets[name]
		o, pending, err := owner(s)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("secrets.%s: %w", name, err))
			continue
		case pending:
			errs = append(errs, fmt.Errorf("secrets.%s: owner %q or group %q does not exist: declare it (users.users / users.groups), or fix secrets.%s.owner", name, s.Owner, s.Group, name))
			continue
		}
		for _, p := range files(s) {
			if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
				continue // not written yet: Check reports it
			}
			if err := os.Chown(p, o.UID, o.GID); err != nil {
				errs = append(errs, fmt.Errorf("secrets.%s: %w", name, err))
			} else if err := os.Chmod(p, o.Mode); err != nil {
				errs = append(errs, fmt.Errorf("secrets.%s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

func files(s Secret) []string {
	if s.PKI != nil {
		return []string{s.Path, s.KeyPath}
	}
	return []string{s.Path}
}

// Check is the health gate's "secrets in place": every declared secret's
// files exist, are regular and not empty, and have the declared owner,
// group and mode; a certificate has not expired and its key is there. It
// reads only the files, never Vault.
func Check(f *File, now time.Time) error {
	var errs []error
	for _, name := range Names(f) {
		s := f.Secrets[name]
		o, pending, err := owner(s)
		if err != nil || pending {
			errs = append(errs, fmt.Errorf("secrets.%s: owner %q or group %q does not exist", name, s.Owner, s.Group))
			continue
		}
		for _, p := range files(s) {
			fi, err := os.Lstat(p)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("secrets.%s: %s is missing", name, p))
				continue
			case !fi.Mode().IsRegular() || fi.Size() == 0:
				errs = append(errs, fmt.Errorf("secrets.%s: %s is not a file with content", name, p))
				continue
			case !securefile.Owner(o).Matches(p):
				st := fi.Sys().(*syscall.Stat_t)
				errs = append(errs, fmt.Errorf("secrets.%s: %s is %d:%d %04o, want %s:%s %s", name, p, st.Uid, st.Gid, fi.Mode().Perm(), s.Owner, s.Group, s.Mode))
			}
		}
		if s.PKI != nil {
			if c, err := readCert(s.Path); err != nil {
				errs = append(errs, fmt.Errorf("secrets.%s: %w", name, err))
			} else if now.After(c.NotAfter) {
				errs = append(errs, fmt.Errorf("secrets.%s: the certificate in %s expired at %s", name, s.Path, c.NotAfter.UTC().Format(time.RFC3339)))
			}
		}
	}
	return errors.Join(errs...)
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := vault.ParseLeaf(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// currentCert returns the certificate in place when it can stay: it is for
// the declared names, its key is there, and less than two thirds of its
// lifetime has passed (renewal then leaves a third for retries, as
// cert-manager does by default).
func currentCert(s Secret, now time.Time) (*x509.Certificate, bool) {
	c, err := readCert(s.Path)
	if err != nil {
		return nil, false
	}
	if fi, err := os.Stat(s.KeyPath); err != nil || fi.Size() == 0 {
		return nil, false
	}
	if c.Subject.CommonName != s.PKI.CommonName || !sameNames(c, s.PKI) {
		return nil, false
	}
	life := c.NotAfter.Sub(c.NotBefore)
	renewAt := c.NotBefore.Add(life * 2 / 3)
	return c, now.Before(renewAt)
}

// sameNames tells whether the certificate carries exactly the declared
// alternative names (Vault adds the common name as a DNS name).
func sameNames(c *x509.Certificate, p *PKI) bool {
	want := append([]string{p.CommonName}, p.AltNames...)
	got := slices.Clone(c.DNSNames)
	slices.Sort(want)
	want = slices.Compact(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		return false
	}
	var ips []string
	for _, ip := range c.IPAddresses {
		ips = append(ips, ip.String())
	}
	wantIPs := slices.Clone(p.IPSANs)
	slices.Sort(ips)
	slices.Sort(wantIPs)
	return slices.Equal(ips, wantIPs)
}
