// Package version says which build of reyes is running: the module version
// and the VCS revision that runtime/debug.ReadBuildInfo records. Every
// binary prints it with --version, and the follower records it with each
// apply so that "reyesctl status" can say which binary loaded the rules.
//
// It reads nothing but the running binary's build information.
package version

import (
	"fmt"
	"runtime/debug"
)

// Info describes a build.
type Info struct {
	// Module is the main module's path.
	Module string `json:"module,omitempty"`
	// Version is the main module's version: a tag or pseudo-version when
	// built with "go install module@version", "(devel)" when built from a
	// checkout (the revision then says which).
	Version string `json:"version"`
	// Revision is the VCS commit the binary was built from, if known.
	Revision string `json:"revision,omitempty"`
	// Time is the commit time (RFC 3339), if known.
	Time string `json:"time,omitempty"`
	// Modified: the working tree had uncommitted changes.
	Modified bool `json:"modified,omitempty"`
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string `json:"go,omitempty"`
}

// Get returns the running binary's build information. Without any (a
// binary built without module support) Version is "unknown".
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "unknown"}
	}
	return FromBuildInfo(bi)
}

// FromBuildInfo extracts an Info from bi.
func FromBuildInfo(bi *debug.BuildInfo) Info {
	in := Info{Module: bi.Main.Path, Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if in.Version == "" {
		in.Version = "unknown"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}

// Short is the version, with the first 12 digits of the revision (and
// "+dirty" for a modified tree) when known: "v1.2.0", "(devel) 0123456789ab+dirty".
func (in Info) Short() string {
	s := in.Version
	if in.Revision != "" {
		rev := in.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		s += " " + rev
		if in.Modified {
			s += "+dirty"
		}
	}
	return s
}

// String is the line --version prints: "NAME VERSION (revision R, TIME, go1.x)".
func (in Info) String() string {
	s := in.Version
	var extra string
	if in.Revision != "" {
		extra = "revision " + in.Revision
		if in.Modified {
			extra += " (modified)"
		}
		if in.Time != "" {
			extra += ", " + in.Time
		}
	}
	if in.GoVersion != "" {
		if extra != "" {
			extra += ", "
		}
		extra += in.GoVersion
	}
	if extra != "" {
		s = fmt.Sprintf("%s (%s)", s, extra)
	}
	return s
}

// Line is what a binary named name prints for --version.
func Line(name string) string { return name + " " + Get().String() }
