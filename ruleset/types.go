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
	// Findings lists what the ruleset cannot mirror as AWS would: stale
	// references, references into accounts that were not read, members
	// whose traffic does not come from their own addresses. Omitted when
	// empty, so estates without any encode as before.
	Findings []Finding `json:"findings,omitempty"`
}

// Kinds of Finding.
const (
	// FindingUnreadAccount: a rule refers to a group of an account that
	// was not read. The reference allows nothing.
	FindingUnreadAccount = "unread-account"
	// FindingStaleReference: a rule refers to a group that AWS would not
	// honour from where the rule applies (deleted group, peering not
	// active, no transit gateway path with security group referencing,
	// association not in state associated, data not read). It allows
	// nothing, as in AWS.
	FindingStaleReference = "stale-reference"
	// FindingClientIP: a rule refers to a group whose members include
	// load balancers that preserve client IP addresses (network and
	// gateway load balancers): the traffic they forward arrives from the
	// clients, not from the members, and an address-based mirror cannot
	// reproduce what AWS allows for it.
	FindingClientIP = "client-ip"
)

// Finding is one thing Build could not mirror faithfully, for the leader
// to log and for reyesctl inspect to list.
type Finding struct {
	// Kind is one of the Finding* constants.
	Kind string `json:"kind"`
	// Group is the group whose rule the finding is about.
	Group string `json:"group"`
	// Ref is the referenced group, if any.
	Ref string `json:"ref,omitempty"`
	// Account is the account of Ref when it was not read.
	Account string `json:"account,omitempty"`
	// Detail says what happened, in words.
	Detail string `json:"detail"`
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
	// Groups are referenced source groups by ID: every member of each is a
	// source. A reference to a group that is not in the ruleset (stale, or
	// another account's) allows nothing.
	Groups []string `json:"groups,omitempty"`
	// Scoped are references that AWS honours only for some of the
	// referenced group's members (those in some VPCs), and only where the
	// rule applies in one VPC: for an interface in VPC, the members of
	// Group whose interfaces are in one of From are sources.
	Scoped []ScopedRef `json:"scoped,omitempty"`
}

// ScopedRef is a group reference honoured only between some VPCs.
type ScopedRef struct {
	// Group is the referenced group.
	Group string `json:"group"`
	// VPC is the VPC of the interfaces the rule protects.
	VPC string `json:"vpc"`
	// From are the VPCs whose members of Group are sources there, sorted.
	From []string `json:"from"`
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
