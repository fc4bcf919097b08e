package ruleset

import (
	"net/netip"
	"time"
)

// Format is the format identifier of the current encoding. Decode rejects
// any other value.
const Format = "reyes.ruleset/v1"

// Type is the payload type of a ruleset, so that a signed object of another
// kind can never be mistaken for one.
const Type = "security-groups"

// Protocol numbers with a meaning of their own in security group rules.
const (
	ProtoAll    = -1 // AWS "-1": every protocol
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// Ruleset is the canonical, validated set of security groups and members
// that a leader publishes. A Ruleset is a value: methods do not modify it and
// it is safe for concurrent reads. Build and Decode return it sorted; Encode
// sorts nothing and expects a Ruleset from one of them (or one that passes
// Validate and was Canonicalized).
type Ruleset struct {
	Header
	VPCs       []VPC       `json:"vpcs"`
	Groups     []Group     `json:"groups"`
	Interfaces []Interface `json:"interfaces"`
}

// Header describes a ruleset: what it is, for whom, and for how long.
type Header struct {
	// Format is always [Format].
	Format string `json:"format"`
	// Type is always [Type].
	Type string `json:"type"`
	// Scope names the estate this ruleset is for; a follower is configured
	// with the scope it expects and rejects any other.
	Scope string `json:"scope"`
	// Serial increases with every publish; followers refuse a serial lower
	// than the last one they accepted (rollback).
	Serial uint64 `json:"serial"`
	// GeneratedAt is when the leader built the ruleset (UTC).
	GeneratedAt time.Time `json:"generated_at"`
	// NotAfter is when the ruleset stops being valid (UTC).
	NotAfter time.Time `json:"not_after"`
}

// VPC is one VPC and its IPv4 and IPv6 CIDR blocks.
type VPC struct {
	ID     string         `json:"id"`
	Region string         `json:"region"`
	Owner  string         `json:"owner,omitempty"`
	CIDRs  []netip.Prefix `json:"cidrs"`
}

// Group is one security group. Rules only allow; the union of the rules of
// all of an interface's groups applies to it.
type Group struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Region string `json:"region"`
	VPC    string `json:"vpc"`
	Owner  string `json:"owner,omitempty"`
	// Excluded groups keep their members (other groups may refer to them)
	// but their own rules are not mirrored: Rules is empty.
	Excluded bool   `json:"excluded,omitzero"`
	Rules    []Rule `json:"rules"`
}

// Rule is one canonical ingress rule: a protocol and port range (or ICMP
// type and code) allowed from a set of sources.
type Rule struct {
	// Protocol is ProtoAll (-1) or an IP protocol number 0..255.
	Protocol int `json:"proto"`
	// FromPort and ToPort bound the destination ports for TCP and UDP
	// (0..65535, From <= To). For ICMP and ICMPv6, FromPort is the type and
	// ToPort the code, -1 meaning any. For every other protocol both are -1.
	FromPort int `json:"from"`
	ToPort   int `json:"to"`
	// CIDRs are source prefixes, with referenced prefix lists expanded.
	CIDRs []netip.Prefix `json:"cidrs,omitempty"`
	// Groups are referenced source groups by ID. A reference to a group
	// that is not in the ruleset (stale, or another account's) allows
	// nothing.
	Groups []string `json:"groups,omitempty"`
}

// Interface is one network interface (ENI) and the groups it belongs to.
type Interface struct {
	ID     string `json:"id"`
	Region string `json:"region"`
	VPC    string `json:"vpc"`
	// Addrs holds every private IPv4 (primary and secondary) and every IPv6
	// address of the interface.
	Addrs []netip.Addr `json:"addrs"`
	// Prefixes holds the interface's delegated prefixes (IPv4 /28 and
	// IPv6 /80, EKS prefix delegation): every address in them is a member
	// of the interface's groups. Never /0. Omitted when empty, so rulesets
	// without delegated prefixes encode as before.
	Prefixes []netip.Prefix `json:"prefixes,omitempty"`
	Groups   []string       `json:"groups"`
}

// AllPorts reports whether the rule covers every port (or every ICMP type).
func (r Rule) AllPorts() bool {
	switch r.Protocol {
	case ProtoTCP, ProtoUDP:
		return r.FromPort == 0 && r.ToPort == 65535
	case ProtoICMP, ProtoICMPv6:
		return r.FromPort == -1
	default:
		return true
	}
}
