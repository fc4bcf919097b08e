// Package reyes chains the other packages into the two pipelines: the
// Leader, which builds a ruleset from an inventory source and publishes it
// signed, and the Follower, which fetches, verifies and applies it on every
// host. Both are plain structs a program fills in and runs (RunOnce, or Run
// on an interval); the binaries' command line lives in package internal/cli
// and only builds these from flags.
//
// The package holds:
//   - the pipelines ([Leader], [Follower]) and their results;
//   - stores: where signed objects live ([Store]; an S3 object, any
//     S3-compatible server included, or a local file), with size caps,
//     conditional reads and atomic writes; a [PartStore] also holds, next to
//     its root object, the immutable parts a root names and the history of
//     published roots ([Objects]), which the Leader's garbage collection
//     reads;
//   - freshness and rollback ([FreshnessPolicy]): whether a verified
//     ruleset header may replace the last accepted one;
//   - state ([State], [LoadState], [SaveState]): the last accepted ruleset,
//     kept in a state directory and written atomically;
//   - host identity ([Identify], [IdentityOptions]): which ENIs of the
//     ruleset are this host, from explicit groups or addresses, IMDSv2, or the
//     host's own addresses;
//   - status and metrics ([Status], [LoadStatus], [RecordConfigFailure]):
//     what the follower's last apply loaded and with which settings, its last
//     run and drift check, for "reyesctl status", the metrics file and the
//     "unchanged" decision.
//
// What it does not do: it does not sign or verify (package sign), parse or
// build rulesets (package ruleset), render rules (package render), touch
// the kernel (package apply), or read flags and configuration files
// (package internal/cli). Those are plain Go calls that this package only
// chains.
package reyes
