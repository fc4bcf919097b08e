package inventory

import "net/netip"

// Inventory is an AWS-shaped snapshot of the estate: everything reyes needs
// from the EC2 API, for every configured region of every account read.
type Inventory struct {
	// Regions holds what each region of each account describes: one entry
	// per (Account, Name), sorted by Account and then Name.
	Regions []Region
}

// Region holds what one EC2 region describes to one account.
type Region struct {
	// Account is the 12-digit ID of the account whose view this is, or
	// empty for an inventory of the caller's account alone (the layout of
	// one directory per region). In an estate of several accounts every
	// Region names its account, and two accounts may describe the same
	// object (a shared VPC, a participant's interface): ruleset.Build
	// merges them.
	Account string
	// Name is the region code, such as "eu-west-1".
	Name              string
	VPCs              []VPC
	SecurityGroups    []SecurityGroup
	NetworkInterfaces []NetworkInterface
	// PrefixLists holds the entries of every managed prefix list that a
	// security group rule in this region refers to.
	PrefixLists []PrefixList
	// SecurityGroupVPCAssociations are the security group VPC associations
	// (DescribeSecurityGroupVpcAssociations) of the account's groups, in
	// every state. Only AssociationsKnown says whether they were read.
	SecurityGroupVPCAssociations []SecurityGroupVPCAssociation
	// AssociationsKnown: the associations were described (an offline dump
	// without security-group-vpc-associations.json leaves it false).
	AssociationsKnown bool
	// TransitGateways and TransitGatewayAttachments are the region's
	// transit gateways (DescribeTransitGateways) and VPC attachments
	// (DescribeTransitGatewayVpcAttachments), in every state;
	// TransitGatewaysKnown says whether both were read.
	TransitGateways           []TransitGateway
	TransitGatewayAttachments []TransitGatewayVPCAttachment
	TransitGatewaysKnown      bool
}

// SecurityGroupVPCAssociation is a security group associated with a VPC
// other than its own (same region): interfaces in that VPC may use it.
type SecurityGroupVPCAssociation struct {
	GroupID      string
	GroupOwnerID string
	VPCID        string
	VPCOwnerID   string
	// State is AWS' word: "associated" is the only state in which the
	// group may be used in the VPC; "associating", "association-failed",
	// "disassociating", "disassociated" and "disassociation-failed" are
	// not.
	State string
}

// TransitGateway is one transit gateway and whether it supports security
// group referencing (Options.SecurityGroupReferencingSupport "enable").
type TransitGateway struct {
	ID      string
	OwnerID string
	// State is AWS' word ("available", "pending", "deleted", ...).
	State string
	// SecurityGroupReferencing is Options.SecurityGroupReferencingSupport
	// == "enable" (the default is "disable").
	SecurityGroupReferencing bool
}

// TransitGatewayVPCAttachment is one VPC attached to a transit gateway.
type TransitGatewayVPCAttachment struct {
	ID               string
	TransitGatewayID string
	VPCID            string
	VPCOwnerID       string
	// State is AWS' word ("available", "pendingAcceptance", "deleted", ...).
	State string
	// SecurityGroupReferencing is Options.SecurityGroupReferencingSupport
	// == "enable" (the default for a new attachment).
	SecurityGroupReferencing bool
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
	// PeeringConnectionID is VpcPeeringConnectionId, set for a reference
	// through a VPC peering connection.
	PeeringConnectionID string
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
