package proxmoxsim

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// The VM options qemu-server knows (PVE::QemuServer $confdesc, plus the
// indexed devices), with the JSON type the API returns them in. A config
// update naming anything else is refused, as Proxmox refuses it ("property is
// not defined in schema and the schema does not allow additional
// properties"), so a misspelt or unsupported option fails here as it would on
// a real node.
type optType int

const (
	optString optType = iota
	optInt
	optBool
	optNumber
)

var options = map[string]optType{
	"acpi": optBool, "affinity": optString, "agent": optString, "amd-sev": optString, "arch": optString,
	"args": optString, "audio0": optString, "autostart": optBool, "balloon": optInt, "bios": optString,
	"boot": optString, "bootdisk": optString, "cdrom": optString, "cicustom": optString,
	"cipassword": optString, "citype": optString, "ciupgrade": optBool, "ciuser": optString,
	"cores": optInt, "cpu": optString, "cpulimit": optNumber, "cpuunits": optInt,
	"description": optString, "freeze": optBool, "hookscript": optString, "hotplug": optString,
	"hugepages": optString, "ivshmem": optString, "keephugepages": optBool, "keyboard": optString,
	"kvm": optBool, "localtime": optBool, "lock": optString, "machine": optString, "memory": optString,
	"meta": optString, "migrate_downtime": optNumber, "migrate_speed": optInt, "name": optString,
	"nameserver": optString, "numa": optBool, "onboot": optBool, "ostype": optString,
	"protection": optBool, "reboot": optBool, "rng0": optString, "scsihw": optString,
	"searchdomain": optString, "shares": optInt, "smbios1": optString, "smp": optInt,
	"sockets": optInt, "spice_enhancements": optString, "sshkeys": optString, "startdate": optString,
	"startup": optString, "tablet": optBool, "tags": optString, "tdf": optBool, "template": optBool,
	"vcpus": optInt, "vga": optString, "vmgenid": optString, "vmstatestorage": optString,
	"watchdog": optString,
}

var indexedOptionRE = regexp.MustCompile(`^(ide[0-3]|sata[0-5]|scsi([0-9]|[12][0-9]|30)|virtio([0-9]|1[0-5])|efidisk0|tpmstate0|net([0-9]|[12][0-9]|3[01])|ipconfig([0-9]|[12][0-9]|3[01])|serial[0-3]|parallel[0-2]|usb[0-9]|hostpci([0-9]|1[0-5])|numa[0-7]|unused\d+|virtiofs[0-9])$`)

func optionType(opt string) (optType, bool) {
	if t, ok := options[opt]; ok {
		return t, true
	}
	return optString, indexedOptionRE.MatchString(opt)
}

// checkValue validates one option's value as pve-common's JSONSchema does
// for its type: booleans are 0/1 (or the words Proxmox accepts), integers
// are integers. It returns the stored form.
func checkValue(opt, v string) (string, error) {
	t, ok := optionType(opt)
	if !ok {
		return "", fmt.Errorf("property is not defined in schema and the schema does not allow additional properties")
	}
	switch t {
	case optBool:
		switch strings.ToLower(v) {
		case "1", "true", "yes", "on":
			return "1", nil
		case "0", "false", "no", "off":
			return "0", nil
		}
		return "", fmt.Errorf("type check ('boolean') failed - got '%s'", v)
	case optInt:
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return "", fmt.Errorf("type check ('integer') failed - got '%s'", v)
		}
	case optNumber:
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			return "", fmt.Errorf("type check ('number') failed - got '%s'", v)
		}
	}
	return v, nil
}

// jsonValue is an option's value as the API returns it: integers and
// booleans as bare JSON numbers (bpg reads a quoted "1" as false),
// everything else, property strings included, as a string.
func jsonValue(opt, v string) any {
	t, _ := optionType(opt)
	switch t {
	case optInt, optBool:
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil {
			return n
		}
	case optNumber:
		f, err := strconv.ParseFloat(v, 64)
		if err == nil {
			return f
		}
	}
	return v
}

// MinVMID and MaxVMID bound a VM id (pve-common's 'pve-vmid' standard
// option: minimum 100, maximum 999999999).
const (
	MinVMID = 100
	MaxVMID = 999999999
)

func checkVMID(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("type check ('integer') failed - got '%s'", s)
	}
	if n < MinVMID {
		return 0, fmt.Errorf("value must have a minimum value of %d", MinVMID)
	}
	if n > MaxVMID {
		return 0, fmt.Errorf("value must have a maximum value of %d", MaxVMID)
	}
	return n, nil
}
