package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/certportal/certportal/sqlite"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
// When it is not, the module version and the VCS stamp that the go command
// records in the binary are used (see buildInfo).
var version = ""

// versionInfo is what `certportal version` prints.
type versionInfo struct {
	// Version is -X main.version, else the main module's version (a
	// tag for `go install ...@v1.2.3`), else "dev".
	Version string `json:"version"`
	// Revision, Time and Modified describe the commit the binary was built
	// from (vcs.revision, vcs.time, vcs.modified), when the go command
	// stamped it (-buildvcs, on by default inside a git checkout).
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	// GoVersion is the Go release that compiled the binary.
	GoVersion string `json:"go"`
	Platform  string `json:"platform"`
	// Schema is the newest database schema this binary knows: it migrates
	// an older database up to it and refuses a newer one.
	Schema int64 `json:"schema"`
}

// buildInfo collects versionInfo from -ldflags and runtime/debug.
func buildInfo() versionInfo {
	v := versionInfo{Version: version, GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH, Schema: sqlite.KnownSchemaVersion()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.time":
				v.Time = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if v.Version == "" {
		v.Version = "dev"
	}
	return v
}

// buildVersion is the one-line version: "v1.2.3", or "dev (1a2b3c4d5e6f,
// modified)" for a build from a checkout.
func buildVersion() string {
	v := buildInfo()
	var extra []string
	if v.Revision != "" {
		extra = append(extra, v.Revision[:min(12, len(v.Revision))])
	}
	if v.Time != "" {
		extra = append(extra, v.Time)
	}
	if v.Modified {
		extra = append(extra, "modified")
	}
	if len(extra) == 0 {
		return v.Version
	}
	return v.Version + " (" + strings.Join(extra, ", ") + ")"
}

func (a *app) versionCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "version",
		Short: "Print the version, the commit it was built from, the Go version and the database schema it knows",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			v := buildInfo()
			if a.jsonOut {
				return printJSON(a.stdout, v)
			}
			fmt.Fprintln(a.stdout, "certportal", buildVersion())
			fmt.Fprintf(a.stdout, "built with %s for %s\n", v.GoVersion, v.Platform)
			fmt.Fprintf(a.stdout, "database schema %d (older databases are migrated at start, newer ones refused)\n", v.Schema)
			return nil
		},
	}
	a.jsonFlag(c)
	return c
}
