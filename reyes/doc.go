// Package reyes wires the other packages into the two programs: the leader,
// which builds a ruleset from the EC2 API and publishes it signed, and the
// follower, which fetches, verifies and applies it on every host.
//
// The package holds:
//   - stores: where signed objects live ([Store]; an S3 object, any
//     S3-compatible server included, or a local file), with size caps,
//     conditional reads and atomic writes;
//   - freshness and rollback ([FreshnessPolicy]): whether a verified
//     ruleset header may replace the last accepted one;
//   - state ([State], [LoadState], [SaveState]): the last accepted ruleset,
//     kept in a state directory and written atomically;
//   - status ([Status], [LoadStatus]): what the follower's last apply
//     loaded and with which settings, its last run and drift check, for
//     "reyesctl status", the metrics file and the "unchanged" decision;
//   - and, filled in by later work: configuration (YAML file, REYES_*
//     environment, flags), host identity, the Leader and Follower pipelines
//     and metrics.
//
// What it does not do: it does not sign or verify (package sign), parse or
// build rulesets (package ruleset), render rules (package render) or touch
// the kernel (package apply). Those are plain Go calls that this package
// only chains.
package reyes
