package main

import (
	"fmt"
	"runtime/debug"
)

// version is set at link time (-ldflags "-X main.version=v1.2.3") by a
// release build; otherwise the module's version, "(devel)" in a checkout.
var version = ""

type versionCmd struct {
	Output string `short:"o" enum:"text,json,yaml" default:"text" help:"Output format: text, json or yaml."`
}

// buildVersion is what labctl version prints.
type buildVersion struct {
	Version  string `json:"version"`
	Commit   string `json:"commit,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
}

func currentVersion() buildVersion {
	v := buildVersion{Version: version}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Go = info.GoVersion
	if v.Version == "" {
		v.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func (c *versionCmd) Run(g *globals) error {
	v := currentVersion()
	if c.Output != "text" {
		return printData(g.Stdout, c.Output, v)
	}
	line := "labctl " + v.Version
	if v.Commit != "" {
		line += " commit " + v.Commit
		if v.Modified {
			line += " (modified)"
		}
	}
	_, err := fmt.Fprintf(g.Stdout, "%s %s\n", line, v.Go)
	return err
}
