package inventory

import "net/netip"

// Inventory is an AWS-shaped snapshot of the estate: everything reyes needs
// from the EC2 API, for every configured region.
type Inventory struct {
	Regions []Region
}

// Region holds what one EC2 region describes.
type Region struct {
	// Name is the region code, such as "eu-west-1".
	Name              string
	VPCs              []VPC
	SecurityGroups    []SecurityGroup
	NetworkInterfaces []NetworkInterface
	// PrefixLists holds the entries of every managed prefix list that a
	// security group rule in this region refers to.
	PrefixLists []PrefixList
}

// VPC is one VPC and its associated CIDR blocks.
type VPC struct {
	ID      string
	OwnerID string
	// CIDRs are the associated IPv4 and IPv6 blocks (state "associated"
	// only; disassociated blocks are left out by the sources).
	CIDRs []netip.Prefix
}

// SecurityGroup is one security group with its ingress rules. Egress rules
// are not mirrored by reyes and are not kept.
type SecurityGroup struct {
	ID          string
	Name        string
	Description string
	OwnerID     string
	VPCID       string
	Ingress     []Permission
}

// Permission is one IpPermission of a security group, as AWS returns it.
type Permission struct {
	// Protocol is AWS' IpProtocol: "tcp", "udp", "icmp", "icmpv6", "-1" or a
	// protocol number such as "50".
	Protocol string
	// FromPort and ToPort are nil when AWS omits them (protocol -1). For
	// ICMP they hold the type and the code; -1 means all.
	FromPort, ToPort *int32
	CIDRs            []netip.Prefix // IpRanges and Ipv6Ranges
	Groups           []GroupRef     // UserIdGroupPairs
	PrefixListIDs    []string       // PrefixListIds
}

// GroupRef is a reference to another security group (a UserIdGroupPair).
type GroupRef struct {
	GroupID string
	UserID  string
	VPCID   string
	// PeeringStatus is set for a reference through a VPC peering
	// connection ("active", "deleted", ...). A reference whose peering is
	// not active is stale in AWS: it allows nothing.
	PeeringStatus string
}

// NetworkInterface is one ENI. Security groups attach to ENIs, not to
// instances: every private address of the ENI is a member of every group in
// Groups.
type NetworkInterface struct {
	ID            string
	VPCID         string
	OwnerID       string
	Description   string
	InterfaceType string
	InstanceID    string // empty for ENIs without an instance (RDS, ELB, Lambda, ...)
	MAC           string
	// Addresses holds every private IPv4 address (primary and secondary)
	// and every IPv6 address. Public and Elastic IPs are not members.
	Addresses []netip.Addr
	// Prefixes holds the delegated prefixes (Ipv4Prefixes, /28, then
	// Ipv6Prefixes, /80): EKS prefix delegation hands their addresses to
	// pods, and AWS treats every address in them as the interface's, so
	// they are members of the interface's groups too.
	Prefixes []netip.Prefix
	Groups   []string // security group IDs
}

// PrefixList is a managed prefix list and its entries.
type PrefixList struct {
	ID      string
	Entries []netip.Prefix
}
