// Package inventory holds the AWS-shaped input of reyes: per region, the
// VPCs, security groups (with their ingress permissions), network interfaces
// and managed prefix lists that the EC2 API describes, with addresses already
// parsed into [net/netip] types, and the grammars of the AWS names in them
// (resource IDs, account IDs, region codes).
//
// It imports no AWS SDK package, so that ruleset.Build, render and their
// users (a policy test in CI, say) do not build the SDK. Package sgsource
// fills an [Inventory] from the EC2 API or from a directory of AWS CLI JSON;
// any other source (a CMDB, a CSV file) can build one directly.
//
// This package does not decide policy and checks nothing on its own: excluded
// groups, membership and the validation of rules belong to package ruleset.
package inventory
