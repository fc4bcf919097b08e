// Package ruleset holds reyes' canonical ruleset: the types, the builder from
// an AWS-shaped inventory (package inventory, which imports no AWS SDK), the
// strict versioned codec and validation.
//
// A [Ruleset] is what a leader publishes and a follower loads. It names its
// format, scope, serial and validity window, and lists VPCs, security groups
// (with ingress rules whose prefix lists are already expanded) and network
// interfaces (whose addresses are the members of their groups). Everything is
// typed with [net/netip] and sorted, so the same inventory always encodes to
// the same bytes.
//
// [Decode] is strict: unknown fields, duplicate keys, keys in another case
// or written with an escape, a wrong format version, oversize input and any
// invalid address, port or protocol reject the whole ruleset. The codec is
// encoding/json/v2 (github.com/go-json-experiment/json), whose exact name
// matching needs no key scanner of its own; [Encode] writes the same bytes
// encoding/json wrote, so signatures and golden files do not change.
//
// This package does no I/O and reads no clock: callers pass times in.
// Signing belongs to package sign, rendering to package render.
package ruleset
