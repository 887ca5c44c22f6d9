package config

import "flag"

// FlagUsage lists the flags that override config keys, for --help.
const FlagUsage = `Flags that override the config file (every path the agent uses can be moved):
  --config PATH               config file (JSON)              [/etc/nix-gitops/config.json]
  --flake REF                 flake ref to follow             (key flake; default: read --flake-file)
  --flake-file PATH           file holding the flake ref      (flakeTargetFile) [/etc/nix-flake-target]
  --hostname NAME             host for a ref without #host    (hostname)
  --state-dir DIR             state.json, clone, lock         (stateDir) [/var/lib/nix-gitops]
  --profile PATH              system profile                  (profile) [/nix/var/nix/profiles/system]
  --booted-system PATH        running kernel's system         (bootedSystem) [/run/booted-system]
  --current-system PATH       activated system                (currentSystem) [/run/current-system]
  --allow-non-fast-forward    accept a force-push or downgrade once (allowNonFastForward)
  --on-kernel-change MODE     switch|boot                     (onKernelChange) [switch]
  --verify MODE               none|ssh|gpg                    (verify.mode) [none]
  --allowed-signers PATH      allowed signers / public keys   (verify.allowedSigners)
  --ssh-key PATH              SSH deploy key file             (auth.sshKeyFile)
  --ssh-known-hosts PATH      pinned known_hosts              (auth.sshKnownHosts)
  --token-file PATH           HTTPS token file                (auth.tokenFile)
  --poll-interval DURATION    daemon poll interval            (poll.interval) [5m]
  --metrics-textfile PATH     node_exporter textfile          (metrics.textfile)
  --metrics-listen ADDR       daemon metrics on localhost, or off (metrics.listen) [127.0.0.1:9971]
  --log-format FORMAT         text|json                       (log.format) [text]
  --log-level LEVEL           debug|info|warn|error           (log.level) [info]
`

// Flags registers the override flags on fs. After fs.Parse, the returned
// function lays every flag that was given over c; flags not given leave
// the file's value alone.
func Flags(fs *flag.FlagSet) (configPath *string, apply func(c *Config)) {
	configPath = fs.String("config", DefaultConfigFile, "config file (JSON)")
	var (
		str = map[string]*string{}
		set = map[string]func(c *Config){}
	)
	s := func(name, usage string, field func(c *Config) *string) {
		str[name] = fs.String(name, "", usage)
		set[name] = func(c *Config) { *field(c) = *str[name] }
	}
	s("flake", "flake ref to follow", func(c *Config) *string { return &c.Flake })
	s("flake-file", "file holding the flake ref", func(c *Config) *string { return &c.FlakeTargetFile })
	s("hostname", "host for a ref without #host", func(c *Config) *string { return &c.Hostname })
	s("state-dir", "state folder", func(c *Config) *string { return &c.StateDir })
	s("profile", "system profile", func(c *Config) *string { return &c.Profile })
	s("booted-system", "booted system link", func(c *Config) *string { return &c.BootedSystem })
	s("current-system", "current system link", func(c *Config) *string { return &c.CurrentSystem })
	s("on-kernel-change", "switch|boot", func(c *Config) *string { return &c.OnKernelChange })
	s("verify", "none|ssh|gpg", func(c *Config) *string { return &c.Verify.Mode })
	s("allowed-signers", "allowed signers file", func(c *Config) *string { return &c.Verify.AllowedSigners })
	s("ssh-key", "SSH deploy key file", func(c *Config) *string { return &c.Auth.SSHKeyFile })
	s("ssh-known-hosts", "pinned known_hosts file", func(c *Config) *string { return &c.Auth.SSHKnownHosts })
	s("token-file", "HTTPS token file", func(c *Config) *string { return &c.Auth.TokenFile })
	s("metrics-textfile", "node_exporter textfile", func(c *Config) *string { return &c.Metrics.Textfile })
	s("metrics-listen", "daemon metrics address", func(c *Config) *string { return &c.Metrics.Listen })
	s("log-format", "text|json", func(c *Config) *string { return &c.Log.Format })
	s("log-level", "debug|info|warn|error", func(c *Config) *string { return &c.Log.Level })
	nff := fs.Bool("allow-non-fast-forward", false, "accept a force-push or downgrade")
	set["allow-non-fast-forward"] = func(c *Config) { c.AllowNonFastForward = *nff }
	poll := fs.Duration("poll-interval", 0, "daemon poll interval")
	set["poll-interval"] = func(c *Config) { c.Poll.Interval = Duration(*poll) }
	return configPath, func(c *Config) {
		fs.Visit(func(f *flag.Flag) {
			if fn, ok := set[f.Name]; ok {
				fn(c)
			}
		})
	}
}

// WasSet reports whether the flag name was given on fs's command line.
func WasSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}
