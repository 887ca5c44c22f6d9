package proxmoxsim

import (
	"fmt"
	"strconv"
	"strings"
)

// bootDevice picks what the firmware boots. QEMU runs with -boot strict=on
// (config_to_command in qemu-server src/PVE/QemuServer.pm at
// dab637268eb2944128a6ecff219ffebd571b0968), so only devices given a boot
// index are tried: those of 'boot: order=a;b;c', or, when the config sets
// no order, the legacy order "cdn" ($boot_fmt: "this is also the fallback
// if boot: is not given at all"), in which a hard disk (c) means the
// disk named by 'bootdisk' (its schema: "Enable booting from specified
// disk"), then the CD-ROMs (d), then the NICs (n). The first device that
// holds an OS boots; a NIC boots nothing here (no PXE server), nor does an
// empty disk or a CD-ROM without an OS.
func (s *Sim) bootDevice(v *vm) (string, string) {
	var order []string
	p, _ := parseProps("boot", v.conf["boot"])
	if o := p.keys["order"]; o != "" {
		order = strings.Split(o, ";")
	} else {
		order = legacyBootOrder(v.conf, or(p.keys["legacy"], p.def))
	}
	for _, dev := range order {
		val, ok := v.conf[dev]
		if !ok || !isDrive(dev) {
			continue
		}
		dp, _ := parseProps(dev, val)
		if vol := s.volumes[dp.def]; vol != nil && vol.os {
			return dev, ""
		}
	}
	if len(order) == 0 {
		return "", "no bootable disk (no device has a boot index: boot is unset and bootdisk names no disk)"
	}
	return "", fmt.Sprintf("no bootable disk (boot order %s)", strings.Join(order, ";"))
}

// legacyBootOrder is the boot order of a legacy 'boot' string (default
// "cdn"): c the bootdisk, d every CD-ROM (a cloud-init drive counts as a
// disk), n every NIC.
func legacyBootOrder(conf map[string]string, legacy string) []string {
	if legacy == "" {
		legacy = "cdn"
	}
	var order []string
	for _, c := range legacy {
		switch c {
		case 'c':
			if d := conf["bootdisk"]; d != "" {
				if _, ok := conf[d]; ok {
					order = append(order, d)
				}
			}
		case 'd':
			for _, bus := range []string{"ide", "sata", "scsi", "virtio"} {
				for i := 0; i < 31; i++ {
					name := bus + strconv.Itoa(i)
					val, ok := conf[name]
					if !ok {
						continue
					}
					p, _ := parseProps(name, val)
					if p.keys["media"] == "cdrom" && !isCloudInit(p.def) {
						order = append(order, name)
					}
				}
			}
		case 'n':
			for i := 0; i < 32; i++ {
				if _, ok := conf["net"+strconv.Itoa(i)]; ok {
					order = append(order, "net"+strconv.Itoa(i))
				}
			}
		}
	}
	return order
}
