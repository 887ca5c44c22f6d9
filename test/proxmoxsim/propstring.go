package proxmoxsim

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// A property string is Proxmox's "key=value,key=value" encoding of one
// option (a drive, a NIC, the agent). Proxmox parses what a client sends
// and stores it re-printed: the default key's value first and bare, then
// the other keys sorted, sizes in their short form (pve-common
// PVE::JSONSchema::print_property_string and format_size). The simulator
// does the same, so what bpg reads back is what Proxmox would store.
type props struct {
	def  string // the default key's value ("" when absent)
	keys map[string]string
}

// defaultKeys is the default key of each property-string option
// (qemu-server's format definitions: drive 'file', agent 'enabled', memory
// 'current', cpu 'cputype', vga 'type').
func defaultKey(opt string) string {
	switch {
	case isDrive(opt):
		return "file"
	case opt == "agent":
		return "enabled"
	case opt == "memory":
		return "current"
	case opt == "cpu":
		return "cputype"
	case opt == "vga":
		return "type"
	case opt == "boot":
		return "legacy"
	}
	return ""
}

// nicModels are the keys that name a NIC model and carry its MAC address
// (qemu-server $nic_model_list: "virtio=BC:24:11:..." stands for
// model=virtio,macaddr=BC:24:11:...).
var nicModels = map[string]bool{"virtio": true, "e1000": true, "e1000e": true, "rtl8139": true, "vmxnet3": true}

func parseProps(opt, s string) (props, error) {
	p := props{keys: map[string]string{}}
	dk := defaultKey(opt)
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		switch {
		case !ok && isNet(opt) && nicModels[part]:
			// the model is the NIC's default key: "virtio,bridge=vmbr0"
			p.keys["model"] = part
		case !ok && dk != "":
			p.def = part
		case !ok:
			return p, fmt.Errorf("value without key, but schema does not define a default key")
		case k == dk:
			p.def = v
		case isNet(opt) && nicModels[k]:
			p.keys["model"] = k
			if v != "" {
				p.keys["macaddr"] = v
			}
		default:
			p.keys[k] = v
		}
	}
	return p, nil
}

// String prints p as Proxmox stores it.
func (p props) String(opt string) string {
	var out []string
	if p.def != "" {
		out = append(out, p.def)
	}
	keys := make([]string, 0, len(p.keys))
	for k := range p.keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if isNet(opt) {
		if m := p.keys["model"]; m != "" {
			out = append(out, m+"="+p.keys["macaddr"])
		}
	}
	for _, k := range keys {
		v := p.keys[k]
		if isNet(opt) && (k == "model" || k == "macaddr") {
			continue
		}
		if k == "size" {
			if n, err := parseSize(v); err == nil {
				v = formatSize(n)
			}
		}
		out = append(out, k+"="+v)
	}
	return strings.Join(out, ",")
}

var sizeRE = regexp.MustCompile(`^(\d+(?:\.\d+)?)([KMGT])?$`)

// parseSize reads a size as pve-common's parse_size does: a number of bytes,
// or a number with a K, M, G or T suffix.
func parseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("unable to parse size %q", s)
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, err
	}
	mult := map[string]float64{"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m[2]]
	return int64(f * mult), nil
}

// formatSize prints a size as pve-common's format_size does: the largest
// unit that divides it exactly.
func formatSize(n int64) string {
	units := []string{"K", "M", "G", "T"}
	if n%1024 != 0 {
		return strconv.FormatInt(n, 10)
	}
	v, u := n/1024, 0
	for u < len(units)-1 && v%1024 == 0 {
		v /= 1024
		u++
	}
	return strconv.FormatInt(v, 10) + units[u]
}

var (
	driveRE = regexp.MustCompile(`^(ide[0-3]|sata[0-5]|scsi([0-9]|[12][0-9]|30)|virtio([0-9]|1[0-5])|efidisk0|tpmstate0)$`)
	netRE   = regexp.MustCompile(`^net([0-9]|[12][0-9]|3[01])$`)
)

func isDrive(opt string) bool { return driveRE.MatchString(opt) }
func isNet(opt string) bool   { return netRE.MatchString(opt) }
