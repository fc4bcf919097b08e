// Package synth generates synthetic, deterministic estates of security
// groups for tests and benchmarks.
//
// [Generate] turns a [Config] (a seed and the sizes of the estate) into an
// [inventory.Inventory] shaped like what the EC2 API describes: regions with
// VPCs (every VPC with its "default" group and a self-referencing rule, some
// VPCs with an IPv6 block), security groups with a realistic mix of ingress
// rules (tcp and udp ports and ranges, icmp and icmpv6 with types, all
// traffic, protocol numbers; sources that are groups of the same VPC, the
// group itself, groups of another VPC, IPv4 and IPv6 CIDR blocks and managed
// prefix lists), and network interfaces with one to five groups, secondary
// IPv4 addresses and sometimes an IPv6 address, with or without an
// instance. IDs have the long AWS form (sg- and 17 lowercase hex digits);
// every address is unique in the estate (IPv4 10.<vpc>.x.y). The same Config
// always gives the same Inventory, in the canonical form that
// sgsource.ReadDir returns, so sgsource.WriteDir can turn it into an
// offline inventory directory.
//
// [Small], [Medium] and [Large] are the presets the benchmarks use; Large is
// the size of the performance targets (5,000 groups, 50,000 interfaces,
// 100,000 addresses, 20,000 rules).
//
// This package does not model egress rules, tags, subnets, peering or
// anything else reyes does not read, and its estates are not meant to be
// realistic in their exact numbers, only in their shape.
package synth
