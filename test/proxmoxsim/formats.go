package proxmoxsim

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// The named formats a parameter may refer to. The schema data names them
// but does not define them (its README: "the simulator has to implement
// those itself"); each one here follows the code that registers it:
//
//   - pve-common src/PVE/JSONSchema.pm at ac6c61bf135f4e0bb261c4b95cec2071677da99e
//     (check_format's "-list" and "-opt" suffixes, and the subs named below);
//   - pve-access-control src/PVE/AccessControl.pm at 680953712740c5f1c96810c819a03a1649901786
//     (verify_poolname, verify_rolename, verify_groupname);
//   - pve-access-control src/PVE/Auth/Plugin.pm at 9590c6bdfe8ad0cea171516ebfeb86af241171d1
//     (verify_username as pve-userid) and AccessControl.pm (pve_verify_tokenid,
//     verify_privname against the release's privileges);
//   - qemu-server src/PVE/QemuServer/Network.pm at d0a3df9d4051bb423b11436a6c881574b11e6935
//     ($ipconfig_fmt, registered as pve-qm-ipconfig);
//   - qemu-server src/PVE/QemuServer.pm at dab637268eb2944128a6ecff219ffebd571b0968
//     ($boot_fmt as pve-qm-boot, verify_bootdev as pve-qm-bootdev,
//     $cicustom_fmt as pve-qm-cicustom, verify_volume_id_or_qm_path,
//     parse_hotplug_features).
//
// A format whose code the simulator does not have is not checked (it never
// refuses what it cannot cite); the validator records it, and
// Sim.UncheckedFormats lists what went unchecked.
var simpleFormats = map[string]func(string) error{
	"string":   func(string) error { return nil },
	"pve-vmid": reFormat(`^[1-9][0-9]{2,8}$`, "value does not look like a valid VM ID"),
	"pve-node": reFormat(`^([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$`, "value does not look like a valid node name"),
	"pve-storage-id": func(s string) error {
		if !storageIDRE.MatchString(s) {
			return fmt.Errorf("storage ID '%s' contains illegal characters", s)
		}
		return nil
	},
	"pve-configid": func(s string) error {
		if !regexp.MustCompile(`(?i)^[a-z][a-z0-9_]+$`).MatchString(s) {
			return fmt.Errorf("invalid configuration ID '%s'", s)
		}
		return nil
	},
	"urlencoded": func(s string) error {
		if !regexp.MustCompile(`^[-%a-zA-Z0-9_.!~*'()]*$`).MatchString(s) {
			return fmt.Errorf("invalid urlencoded string: %s", s)
		}
		return nil
	},
	"ipv4": func(s string) error {
		if !isIPv4(s) {
			return fmt.Errorf("value does not look like a valid IPv4 address")
		}
		return nil
	},
	"ipv6": func(s string) error {
		if !isIPv6(s) {
			return fmt.Errorf("value does not look like a valid IPv6 address")
		}
		return nil
	},
	"ip": func(s string) error {
		if !isIPv4(s) && !isIPv6(s) {
			return fmt.Errorf("value does not look like a valid IP address")
		}
		return nil
	},
	"CIDRv4": func(s string) error {
		if !isCIDR(s, isIPv4, 32) {
			return fmt.Errorf("value does not look like a valid IPv4 CIDR network")
		}
		return nil
	},
	"CIDRv6": func(s string) error {
		if !isCIDR(s, isIPv6, 128) {
			return fmt.Errorf("value does not look like a valid IPv6 CIDR network")
		}
		return nil
	},
	"CIDR": func(s string) error {
		if !isCIDR(s, isIPv4, 32) && !isCIDR(s, isIPv6, 128) {
			return fmt.Errorf("value does not look like a valid CIDR network")
		}
		return nil
	},
	// pve_verify_ipv4_config and pve_verify_ipv6_config.
	"pve-ipv4-config": func(s string) error {
		if s == "dhcp" || s == "manual" || isCIDR(s, isIPv4, 32) {
			return nil
		}
		return fmt.Errorf("value does not look like a valid ipv4 network configuration")
	},
	"pve-ipv6-config": func(s string) error {
		if s == "auto" || s == "dhcp" || s == "manual" || isCIDR(s, isIPv6, 128) {
			return nil
		}
		return fmt.Errorf("value does not look like a valid ipv6 network configuration")
	},
	"dns-name": func(s string) error {
		if !dnsNameRE.MatchString(s) {
			return fmt.Errorf("value does not look like a valid DNS name")
		}
		return nil
	},
	"address": func(s string) error {
		if !isIPv4(s) && !isIPv6(s) && !dnsNameRE.MatchString(s) {
			return fmt.Errorf("value does not look like a valid address: %s", s)
		}
		return nil
	},
	"disk-size": func(s string) error {
		if _, err := parseSize(s); err != nil {
			return fmt.Errorf("value does not look like a valid disk size: %s", s)
		}
		return nil
	},
	"pve-iface": func(s string) error {
		if !regexp.MustCompile(`(?i)^[a-z][a-z0-9_]{1,20}([:\.]\d+)?$`).MatchString(s) {
			return fmt.Errorf("invalid network interface name '%s'", s)
		}
		return nil
	},
	"pve-startup-order": func(s string) error {
		for _, p := range strings.Split(s, ",") {
			if strings.TrimSpace(p) == "" {
				continue
			}
			if !regexp.MustCompile(`^((order=)?\d+|up=\d+|down=\d+)$`).MatchString(p) {
				return fmt.Errorf("unable to parse startup options")
			}
		}
		return nil
	},
	"pve-poolid": func(s string) error {
		if !accessNameRE.MatchString(s) {
			return fmt.Errorf("pool name '%s' contains invalid characters", s)
		}
		return nil
	},
	"pve-roleid": func(s string) error {
		if !accessNameRE.MatchString(s) {
			return fmt.Errorf("role name '%s' contains invalid characters", s)
		}
		return nil
	},
	"pve-groupid": func(s string) error {
		if !accessNameRE.MatchString(s) {
			return fmt.Errorf("group name '%s' contains invalid characters", s)
		}
		return nil
	},
	"pve-userid": func(s string) error {
		if len(s) < 3 {
			return fmt.Errorf("user name '%s' is too short", s)
		}
		if len(s) > 64 {
			return fmt.Errorf("user name '%s' is too long (%d > 64)", s, len(s))
		}
		if !userIDRE.MatchString(s) {
			return fmt.Errorf("value '%s' does not look like a valid user name", s)
		}
		return nil
	},
	"pve-tokenid": func(s string) error {
		if !tokenRE.MatchString(s) {
			return fmt.Errorf("value '%s' does not look like a valid token ID", s)
		}
		return nil
	},
	// verify_volume_id_or_qm_path: 'none', 'cdrom', an absolute path, or a
	// volume id (parse_volume_id: "<storage>:<name>").
	"pve-volume-id-or-qm-path": func(s string) error {
		if s == "none" || s == "cdrom" || strings.HasPrefix(s, "/") {
			return nil
		}
		return checkVolumeID(s)
	},
	"pve-volume-id-or-absolute-path": func(s string) error {
		if strings.HasPrefix(s, "/") {
			return nil
		}
		return checkVolumeID(s)
	},
	"pve-volume-id": checkVolumeID,
	// verify_bootdev: a drive (but efidisk/tpmstate), or netN, usbN, hostpciN.
	"pve-qm-bootdev": func(s string) error {
		if (isDrive(s) && !strings.HasPrefix(s, "efidisk") && !strings.HasPrefix(s, "tpmstate")) ||
			regexp.MustCompile(`^(net([0-9]|[12][0-9]|3[01])|usb([0-9]|1[0-4])|hostpci([0-9]|1[0-5]))$`).MatchString(s) {
			return nil
		}
		return fmt.Errorf("invalid boot device '%s'", s)
	},
	// parse_hotplug_features.
	"pve-hotplug-features": func(s string) error {
		if s == "0" || s == "1" {
			return nil
		}
		for _, f := range splitList(s) {
			if !regexp.MustCompile(`^(network|disk|cpu|memory|usb|cloudinit)$`).MatchString(f) {
				return fmt.Errorf("unable to parse hotplug option")
			}
		}
		return nil
	},
}

var (
	storageIDRE  = regexp.MustCompile(`(?i)^[a-z][a-z0-9\-_.]*[a-z0-9]$`)
	dnsNameRE    = regexp.MustCompile(`^(([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)\.)*([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$`)
	accessNameRE = regexp.MustCompile(`^[A-Za-z0-9.\-_]+$`)
	userIDRE     = regexp.MustCompile(`^([^\s:/]+)@([A-Za-z][A-Za-z0-9.\-_]+)$`)
)

func regexpMust(p string) *regexp.Regexp { return regexp.MustCompile(p) }

// propertyFormats are named formats that are property strings, with their
// keys as the registering code declares them.
var propertyFormats = map[string]map[string]*Prop{
	"pve-qm-ipconfig": {
		"ip":  {Type: "string", FormatName: "pve-ipv4-config", Optional: true},
		"gw":  {Type: "string", FormatName: "ipv4", Optional: true, Requires: "ip"},
		"ip6": {Type: "string", FormatName: "pve-ipv6-config", Optional: true},
		"gw6": {Type: "string", FormatName: "ipv6", Optional: true, Requires: "ip6"},
	},
	"pve-qm-boot": {
		"legacy": {Type: "string", Optional: true, DefaultKey: true, Pattern: "[acdn]{1,4}"},
		"order":  {Type: "string", Optional: true, FormatName: "pve-qm-bootdev-list"},
	},
	"pve-qm-cicustom": {
		"meta":    {Type: "string", Optional: true, FormatName: "pve-volume-id"},
		"network": {Type: "string", Optional: true, FormatName: "pve-volume-id"},
		"user":    {Type: "string", Optional: true, FormatName: "pve-volume-id"},
		"vendor":  {Type: "string", Optional: true, FormatName: "pve-volume-id"},
	},
}

func reFormat(pattern, msg string) func(string) error {
	re := regexp.MustCompile(pattern)
	return func(s string) error {
		if !re.MatchString(s) {
			return fmt.Errorf("%s", msg)
		}
		return nil
	}
}

// checkVolumeID is pve-storage's parse_volume_id.
func checkVolumeID(s string) error {
	if !regexp.MustCompile(`^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$`).MatchString(s) {
		return fmt.Errorf("unable to parse volume ID '%s'", s)
	}
	return nil
}

func isIPv4(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4()
}

func isIPv6(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is6() && !strings.Contains(s, "%")
}

// isCIDR is pve_verify_cidrv4/v6: an address, "/", and a prefix length
// above 7 and at most max.
func isCIDR(s string, addr func(string) bool, max int) bool {
	a, n, ok := strings.Cut(s, "/")
	if !ok || !addr(a) {
		return false
	}
	l, err := strconv.Atoi(n)
	return err == nil && n[0] != '+' && l > 7 && l <= max
}

// checkFormat is check_format for one value: an inline property string, a
// named property string, a "-list" or "-alist" of a named format (each
// element checked, an empty list allowed), an "-opt" format (empty
// allowed), or a named format.
func (v *validator) checkFormat(s *Prop, val, path string) error {
	if s.Format != nil {
		_, err := v.parsePropertyString(s.Format, val, path)
		return err
	}
	name := s.FormatName
	if name == "regex" {
		return nil
	}
	if base, ok := listFormat(name); ok {
		for _, x := range splitList(val) {
			if err := v.checkNamed(base, x, path); err != nil {
				return err
			}
		}
		return nil
	}
	if base, ok := strings.CutSuffix(name, "-opt"); ok {
		if val == "" {
			return nil
		}
		return v.checkNamed(base, val, path)
	}
	return v.checkNamed(name, val, path)
}

func listFormat(name string) (string, bool) {
	if b, ok := strings.CutSuffix(name, "-alist"); ok {
		return b, true
	}
	return strings.CutSuffix(name, "-list")
}

func (v *validator) checkNamed(name, val, path string) error {
	if name == "pve-priv" && v.privileges != nil {
		// AccessControl.pm verify_privname.
		if !v.privileges[val] {
			return fmt.Errorf("invalid privilege '%s'", val)
		}
		return nil
	}
	if f := simpleFormats[name]; f != nil {
		return f(val)
	}
	if pf := propertyFormats[name]; pf != nil {
		_, err := v.parsePropertyString(pf, val, path)
		return err
	}
	v.uncheckedFormat(name)
	return nil
}

func (v *validator) uncheckedFormat(name string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.unchecked == nil {
		v.unchecked = map[string]int{}
	}
	v.unchecked[name]++
}

// Unchecked lists the named formats met but not checked, sorted.
func (v *validator) Unchecked() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return sortedKeys(v.unchecked)
}

// knownFormat reports whether the simulator checks named format name.
func knownFormat(name string) bool {
	if name == "regex" {
		return true
	}
	if b, ok := listFormat(name); ok {
		name = b
	} else if b, ok := strings.CutSuffix(name, "-opt"); ok {
		name = b
	}
	return name == "pve-priv" || simpleFormats[name] != nil || propertyFormats[name] != nil
}
