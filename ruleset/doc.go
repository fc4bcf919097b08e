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
// # Split format
//
// So that a follower's cost follows its own plan rather than the size of
// the estate, [Split] cuts a ruleset into content-addressed, immutable
// parts named by a small root ([EncodeRoot], the payload a leader signs).
// The root is text: "# reyes.root/v1", "# " and the header with the number
// of bins of each binned kind (and the change list, below) as compact JSON, then one "<sha256>  <name>"
// line per part, sorted by name, as sha256sum writes them, so that
// `sha256sum -c root` in a directory of the parts checks them with stock
// tools. A part is "reyes.part/v1 <kind> <bin>/<bins>" and one
// "<key>\t<compact JSON>" line per key, keys ascending: groups ("g", the
// group and its rules), group members ("m", the member interfaces of each
// group that has any), interfaces ("i") and addresses ("a", the interfaces
// that have each) are spread over a power of two of bins by the SHA-256 of
// the key ([BinOf]); the VPCs and the findings are one part each. Members
// are apart from rules because they churn (autoscaling) while rules rarely
// change, and a host needs the rules of its own groups but the members of
// the groups their rules refer to only. A part's name holds its kind and
// bin, its size and the first 128 bits of its SHA-256 (the root line
// holds the whole digest, which is what readers verify), so a part that
// changes gets a new name
// and a part listed by two roots is the same bytes. [LoadView] reads only
// the parts one host needs (its addresses' bins, then its interfaces', its
// groups' rules, the rules of the groups those refer to and the members of
// these),
// verifies each against the root (size and SHA-256, before parsing
// anything), and decodes only the lines it needs; [Join] reads them all
// and returns the whole ruleset. Every part read is checked against one
// root, so parts of two publishes never mix. [DecodeRoot] and the part
// reader are as strict as [Decode]: one canonical encoding, errors naming
// the part, the line, the key and a JSON pointer.
//
// Under autoscaling nearly every bin changes at nearly every publish, but
// the records one host's plan is made from rarely do. So the root's header
// may carry a change list ([Changes]): the SHA-256 of the root it replaced
// and a Bloom filter (salted with that digest, about 14 bits per key, no
// false negatives) of the records whose lines differ between the two,
// named "kind:key" ([ViewKey]; "vpcs:" for the VPCs). A leader computes it
// with [ChangedKeys], which reads only the bins whose parts changed. A
// [View] lists the records it was made from (View.Keys, every key it
// looked up, found or not): a follower that accepted the root the list is
// from, and none of whose view's records the filter holds, gets the same
// view from the new root without reading a part ([Changes.Unchanged]); a
// false positive (about 1 in 1,000 keys) costs it only the read it would
// make without the list.
//
// This package does no I/O of its own (LoadView and Join read parts through
// the caller's FetchFunc) and reads no clock: callers pass times in.
// Signing belongs to package sign, rendering to package render.
package ruleset
